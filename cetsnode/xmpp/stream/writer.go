package stream

import (
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Namespaces of the elements the stream layer writes.
const (
	NSStreamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
	NSTLS          = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL         = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSBind         = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession      = "urn:ietf:params:xml:ns:xmpp-session"
	NSStanzas      = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// Close ends our side of the stream.
const Close = "</stream:stream>"

// AppendHeader writes the server's stream header as ejabberd 23.01 writes
// it, attribute for attribute: the XML declaration, then stream:stream
// with id, version (when the peer sent one), xml:lang, the streams
// namespace, from and the default namespace.
func AppendHeader(dst []byte, id, version, lang, from string) []byte {
	dst = append(dst, "<?xml version='1.0'?><stream:stream id='"...)
	dst = codec.EscapeAttr(dst, []byte(id))
	dst = append(dst, '\'')
	if version != "" {
		dst = append(dst, " version='"...)
		dst = codec.EscapeAttr(dst, []byte(version))
		dst = append(dst, '\'')
	}
	dst = append(dst, " xml:lang='"...)
	dst = codec.EscapeAttr(dst, []byte(lang))
	dst = append(dst, "' xmlns:stream='"+NSStreams+"'"...)
	if from != "" {
		dst = append(dst, " from='"...)
		dst = codec.EscapeAttr(dst, []byte(from))
		dst = append(dst, '\'')
	}
	return append(dst, " xmlns='"+NSClient+"'>"...)
}

// AppendError writes a stream error as ejabberd does: the condition, and
// the text (when there is one) in the peer's language.
func AppendError(dst []byte, e *Error, lang string) []byte {
	el := &codec.Element{Name: "stream:error", Kids: []any{
		&codec.Element{Name: e.Condition, Attrs: [][2]string{{"xmlns", NSStreamErrors}}},
	}}
	if e.Text != "" {
		el.Kids = append(el.Kids, &codec.Element{Name: "text",
			Attrs: [][2]string{{"xml:lang", lang}, {"xmlns", NSStreamErrors}}, Kids: []any{e.Text}})
	}
	return codec.AppendElement(dst, el)
}
