// Package stanza reads and makes the three XMPP stanzas (message,
// presence, iq) as codec.Element trees, writing them the way ejabberd
// 23.01's codec does on the wire: attributes in the order xml:lang, to,
// from, type, id; an error reply's <error/> where ejabberd puts it.
package stanza

import (
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Namespaces.
const (
	NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSClient  = "jabber:client"
)

// Attr is an attribute's value ("" when absent).
func Attr(el *codec.Element, name string) string {
	v, _ := el.Attr(name)
	return v
}

// Kind reports whether el is a stanza: message, presence or iq.
func Kind(el *codec.Element) (string, bool) {
	switch el.Name {
	case "message", "presence", "iq":
		return el.Name, true
	}
	return "", false
}

// Payload is an iq's first child element (its query), or nil.
func Payload(el *codec.Element) *codec.Element {
	for _, k := range el.Kids {
		if c, ok := k.(*codec.Element); ok {
			return c
		}
	}
	return nil
}

// NS is an element's own xmlns attribute.
func NS(el *codec.Element) string { return Attr(el, "xmlns") }

// Address returns a copy of el's attributes in ejabberd's order with
// xml:lang, to and from set ("" leaves one out), type and id kept, then
// the others (top-level xmlns dropped: the stream's default).
func Address(el *codec.Element, lang, to, from string) *codec.Element {
	out := &codec.Element{Name: el.Name, Kids: el.Kids}
	typ, id := Attr(el, "type"), Attr(el, "id")
	if lang == "" {
		lang = Attr(el, "xml:lang")
	}
	for _, a := range [][2]string{{"xml:lang", lang}, {"to", to}, {"from", from}, {"type", typ}, {"id", id}} {
		if a[1] != "" {
			out.Attrs = append(out.Attrs, a)
		}
	}
	for _, a := range el.Attrs {
		switch a[0] {
		case "xml:lang", "to", "from", "type", "id", "xmlns":
		default:
			out.Attrs = append(out.Attrs, a)
		}
	}
	return out
}

// Error is a stanza error (RFC 6120 §8.3).
type Error struct {
	Type, Condition, Text string
	// App is an application-specific condition (written first, as
	// ejabberd's codec writes a pubsub error), or nil.
	App *codec.Element
}

// errorTypes are the RFC 6120 §8.3.3 types ejabberd gives each condition.
var errorTypes = map[string]string{
	"bad-request": "modify", "conflict": "cancel", "feature-not-implemented": "cancel", "forbidden": "auth",
	"gone": "cancel", "internal-server-error": "wait", "item-not-found": "cancel", "jid-malformed": "modify",
	"not-acceptable": "modify", "not-allowed": "cancel", "not-authorized": "auth", "policy-violation": "modify",
	"recipient-unavailable": "wait", "redirect": "modify", "registration-required": "auth",
	"remote-server-not-found": "cancel", "remote-server-timeout": "wait", "resource-constraint": "wait",
	"service-unavailable": "cancel", "subscription-required": "auth", "undefined-condition": "cancel",
	"unexpected-request": "wait",
}

// NewError is an error with the condition's usual type.
func NewError(condition, text string) *Error {
	t := errorTypes[condition]
	if t == "" {
		t = "cancel"
	}
	return &Error{Type: t, Condition: condition, Text: text}
}

// Element is the <error/> element.
func (e *Error) Element(lang string) *codec.Element {
	el := &codec.Element{Name: "error", Attrs: [][2]string{{"type", e.Type}}}
	if e.App != nil {
		el.Kids = append(el.Kids, e.App)
	}
	el.Kids = append(el.Kids, &codec.Element{Name: e.Condition, Attrs: [][2]string{{"xmlns", NSStanzas}}})
	if e.Text != "" {
		el.Kids = append(el.Kids, &codec.Element{Name: "text", Attrs: [][2]string{{"xml:lang", lang}, {"xmlns", NSStanzas}}, Kids: []any{e.Text}})
	}
	return el
}

// ErrorReply is ejabberd's error reply to a stanza: addressed back (to
// the sender, from the recipient), type error, the same id, the original
// children with the <error/> — last in an iq, first in a message or
// presence, as ejabberd's codec writes them.
func ErrorReply(el *codec.Element, e *Error, lang string) *codec.Element {
	out := Address(el, lang, Attr(el, "from"), Attr(el, "to"))
	out.SetAttr("type", "error")
	kids := make([]any, 0, len(el.Kids)+1)
	if el.Name == "iq" {
		kids = append(append(kids, el.Kids...), e.Element(lang))
	} else {
		kids = append(append(kids, e.Element(lang)), el.Kids...)
	}
	out.Kids = kids
	// Keep the attribute order: set type where it belongs.
	return Address(out, lang, Attr(out, "to"), Attr(out, "from"))
}

// Result is the result of an iq, from its recipient, with a payload.
func Result(iq *codec.Element, lang string, payload ...*codec.Element) *codec.Element {
	out := Address(&codec.Element{Name: "iq", Attrs: [][2]string{{"type", "result"}, {"id", Attr(iq, "id")}}}, lang, Attr(iq, "from"), Attr(iq, "to"))
	for _, p := range payload {
		out.Kids = append(out.Kids, p)
	}
	return out
}

// IsError reports whether a stanza is an error (errors are never answered
// with errors).
func IsError(el *codec.Element) bool { return Attr(el, "type") == "error" }

// Canonical is a stanza as ejabberd decodes and writes it on a client
// stream (codec.CanonicalStanza without the top-level xmlns): an error
// is a *codec.StanzaError worded as ejabberd's bad-request text.
func Canonical(el *codec.Element, to, from, lang string) (*codec.Element, error) {
	out, err := codec.CanonicalStanza(el, from, to, lang, nil)
	if err != nil {
		return nil, err
	}
	if n := len(out.Attrs); n > 0 && out.Attrs[n-1][0] == "xmlns" {
		out.Attrs = out.Attrs[:n-1]
	}
	return out, nil
}

// RawError is ejabberd's error reply to a stanza it could not decode
// (xmpp:make_error of the element as received): the attributes as sent
// with from and to swapped (each dropped when the other was absent) and
// type error, the children as sent and the error last.
func RawError(el *codec.Element, e *Error, lang string) *codec.Element {
	to, hasTo := el.Attr("to")
	from, hasFrom := el.Attr("from")
	attrs := append([][2]string(nil), el.Attrs...)
	keystore := func(k, v string) {
		for i, a := range attrs {
			if a[0] == k {
				attrs[i][1] = v
				return
			}
		}
		attrs = append(attrs, [2]string{k, v})
	}
	keydelete := func(k string) {
		for i, a := range attrs {
			if a[0] == k {
				attrs = append(attrs[:i], attrs[i+1:]...)
				return
			}
		}
	}
	if hasTo {
		keystore("from", to)
	} else {
		keydelete("from")
	}
	if hasFrom {
		keystore("to", from)
	} else {
		keydelete("to")
	}
	keystore("type", "error")
	kids := append(append([]any(nil), el.Kids...), e.Element(lang))
	return &codec.Element{Name: el.Name, Attrs: attrs, Kids: kids}
}
