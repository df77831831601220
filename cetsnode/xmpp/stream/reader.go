// Package stream reads and writes XMPP streams (RFC 6120 §4): the stream
// header, then one top-level element after another. The reader is the
// server's attack surface, so it accepts only the restricted XML RFC 6120
// §11.1 allows — no DTD, no entity declarations or references other than
// the predefined ones, no processing instructions, no comments — and it
// bounds what a peer can make it hold: a top-level element's size in
// bytes (max_stanza_size) and its nesting depth. Elements are built as
// codec.Element, the same tree ejabberd's fxml parser builds (names with
// their prefixes, xmlns attributes kept, attributes in document order),
// so that what is stored is written exactly as ejabberd writes it.
package stream

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Namespaces of the stream layer.
const (
	NSStreams = "http://etherx.jabber.org/streams"
	NSClient  = "jabber:client"
)

// Error is a stream error (RFC 6120 §4.9): its defined condition and a
// human-readable text. Sending it ends the stream.
type Error struct {
	Condition string
	Text      string
}

func (e *Error) Error() string {
	if e.Text == "" {
		return "stream error " + e.Condition
	}
	return fmt.Sprintf("stream error %s: %s", e.Condition, e.Text)
}

// ErrEnd is the peer closing its stream (</stream:stream>).
var ErrEnd = errors.New("end of stream")

// Limits bound what one peer can make the reader hold.
type Limits struct {
	// MaxStanzaSize is the most bytes a top-level element (with the
	// whitespace before it) may take (ejabberd's max_stanza_size);
	// 0 means 262144, the value Debian's ejabberd.yml sets.
	MaxStanzaSize int
	// MaxDepth is the deepest nesting inside a top-level element
	// (default 100).
	MaxDepth int
}

// DefaultMaxStanzaSize is Debian's ejabberd.yml max_stanza_size.
const DefaultMaxStanzaSize = 262144

const (
	defaultMaxDepth = 100
	maxHeaderSize   = 8192 // the XML declaration and the stream header
)

// Header is a stream header's attributes.
type Header struct {
	To, From, ID, Version, Lang string
	// NS is the default namespace (jabber:client for c2s).
	NS string
}

// Reader reads one stream from a peer. It is not safe for concurrent use.
type Reader struct {
	src    *meter
	dec    *xml.Decoder
	lim    Limits
	prefix string // the streams namespace's prefix in this stream ("stream")
	header bool   // the header was read
}

// meter counts the bytes the decoder takes and fails past a limit.
type meter struct {
	r     *bufio.Reader
	n     int64
	limit int64
	over  error
}

func (m *meter) ReadByte() (byte, error) {
	if m.n >= m.limit {
		return 0, m.over
	}
	c, err := m.r.ReadByte()
	if err == nil {
		m.n++
	}
	return c, err
}

// Read makes meter an io.Reader too (the decoder only uses ReadByte).
func (m *meter) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c, err := m.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = c
	return 1, nil
}

// NewReader reads a stream from r. The caller keeps r: after STARTTLS
// and SASL the stream restarts with a new Reader (on the TLS layer, or on
// the same r).
func NewReader(r *bufio.Reader, lim Limits) *Reader {
	if lim.MaxStanzaSize <= 0 {
		lim.MaxStanzaSize = DefaultMaxStanzaSize
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = defaultMaxDepth
	}
	m := &meter{r: r, limit: maxHeaderSize, over: &Error{Condition: "policy-violation", Text: "Stream header is too big"}}
	d := xml.NewDecoder(m)
	d.Strict = true
	return &Reader{src: m, dec: d, lim: lim}
}

// Buffered is how many bytes the peer sent that were not read yet. After
// <starttls/> it must be 0: bytes sent before the TLS handshake are
// plaintext injected into the encrypted stream.
func (r *Reader) Buffered() int { return r.src.r.Buffered() }

// token reads the next token, refusing what restricted XML forbids.
func (r *Reader) token() (xml.Token, error) {
	t, err := r.dec.RawToken()
	if err != nil {
		var se *Error
		switch {
		case errors.As(err, &se):
			return nil, se
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, io.EOF
		}
		var syn *xml.SyntaxError
		if errors.As(err, &syn) {
			if strings.Contains(syn.Msg, "unexpected EOF") {
				return nil, io.EOF
			}
			return nil, &Error{Condition: "not-well-formed", Text: syn.Msg}
		}
		return nil, err // the connection's error
	}
	switch t := t.(type) {
	case xml.Directive:
		return nil, &Error{Condition: "restricted-xml", Text: "DTDs and entity declarations are not allowed"}
	case xml.Comment:
		return nil, &Error{Condition: "restricted-xml", Text: "Comments are not allowed"}
	case xml.ProcInst:
		if t.Target != "xml" || r.header {
			return nil, &Error{Condition: "restricted-xml", Text: "Processing instructions are not allowed"}
		}
	}
	return t, nil
}

// Header reads the XML declaration (optional) and the stream header.
func (r *Reader) Header() (Header, error) {
	for {
		t, err := r.token()
		if err != nil {
			return Header{}, err
		}
		switch t := t.(type) {
		case xml.ProcInst:
			continue // the XML declaration
		case xml.CharData:
			if len(strings.TrimSpace(string(t))) == 0 {
				continue
			}
			return Header{}, &Error{Condition: "not-well-formed", Text: "Text before the stream header"}
		case xml.StartElement:
			return r.startStream(t)
		default:
			return Header{}, &Error{Condition: "invalid-xml", Text: "A stream header was expected"}
		}
	}
}

func (r *Reader) startStream(t xml.StartElement) (Header, error) {
	r.header = true
	h := Header{}
	streamsPrefix := ""
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns" && a.Value == NSStreams:
			streamsPrefix = a.Name.Local
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			h.NS = a.Value
		case a.Name.Space == "" && a.Name.Local == "to":
			h.To = a.Value
		case a.Name.Space == "" && a.Name.Local == "from":
			h.From = a.Value
		case a.Name.Space == "" && a.Name.Local == "id":
			h.ID = a.Value
		case a.Name.Space == "" && a.Name.Local == "version":
			h.Version = a.Value
		case a.Name.Space == "xml" && a.Name.Local == "lang":
			h.Lang = a.Value
		}
	}
	if t.Name.Local != "stream" || t.Name.Space == "" || t.Name.Space != streamsPrefix {
		return h, &Error{Condition: "invalid-namespace"}
	}
	r.prefix = streamsPrefix
	return h, nil
}

// Next reads the next top-level element. It returns ErrEnd when the peer
// closes its stream, io.EOF when the connection ends, and an *Error for
// anything the peer sent that is not allowed.
func (r *Reader) Next() (*codec.Element, error) {
	if !r.header {
		return nil, &Error{Condition: "invalid-xml", Text: "A stream header was expected"}
	}
	over := &Error{Condition: "policy-violation", Text: "XML stanza is too big"}
	var stack []*codec.Element
	var names []xml.Name
	for {
		if len(stack) == 0 {
			// Between elements: the next one (and any whitespace before
			// it) may take MaxStanzaSize bytes.
			r.src.limit = r.src.n + int64(r.lim.MaxStanzaSize)
			r.src.over = over
		}
		t, err := r.token()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if len(stack) >= r.lim.MaxDepth {
				return nil, &Error{Condition: "policy-violation", Text: "XML nested too deeply"}
			}
			el, err := element(t)
			if err != nil {
				return nil, err
			}
			if len(stack) > 0 {
				parent := stack[len(stack)-1]
				parent.Kids = append(parent.Kids, el)
			}
			stack = append(stack, el)
			names = append(names, t.Name)
		case xml.EndElement:
			if len(stack) == 0 {
				if t.Name.Local == "stream" && t.Name.Space == r.prefix {
					return nil, ErrEnd
				}
				return nil, &Error{Condition: "not-well-formed", Text: "Unexpected end tag"}
			}
			if t.Name != names[len(names)-1] {
				return nil, &Error{Condition: "not-well-formed", Text: fmt.Sprintf("Element %s closed by %s", qname(names[len(names)-1]), qname(t.Name))}
			}
			el := stack[len(stack)-1]
			stack, names = stack[:len(stack)-1], names[:len(names)-1]
			if len(stack) == 0 {
				return el, nil
			}
		case xml.CharData:
			if len(stack) == 0 {
				if len(strings.TrimSpace(string(t))) > 0 {
					return nil, &Error{Condition: "not-well-formed", Text: "Text between stanzas"}
				}
				continue // whitespace keepalive
			}
			if len(t) == 0 { // an empty CDATA section
				continue
			}
			parent := stack[len(stack)-1]
			if n := len(parent.Kids); n > 0 {
				if s, ok := parent.Kids[n-1].(string); ok {
					parent.Kids[n-1] = s + string(t)
					continue
				}
			}
			parent.Kids = append(parent.Kids, string(t))
		}
	}
}

// element builds an element from its start tag, names and attributes as
// written (prefix:local), refusing an attribute given twice.
func element(t xml.StartElement) (*codec.Element, error) {
	el := &codec.Element{Name: qname(t.Name)}
	if len(t.Attr) > 0 {
		el.Attrs = make([][2]string, 0, len(t.Attr))
	}
	for _, a := range t.Attr {
		name := qname(a.Name)
		for _, seen := range el.Attrs {
			if seen[0] == name {
				return nil, &Error{Condition: "not-well-formed", Text: "Attribute " + name + " given twice"}
			}
		}
		el.Attrs = append(el.Attrs, [2]string{name, a.Value})
	}
	return el, nil
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// ParseElement reads one element written on its own (a stanza stored in
// the database), with the stream's restrictions and limits.
func ParseElement(b []byte, lim Limits) (*codec.Element, error) {
	if lim.MaxStanzaSize <= 0 || lim.MaxStanzaSize < len(b) {
		lim.MaxStanzaSize = len(b) + 1
	}
	r := NewReader(bufio.NewReader(bytes.NewReader(b)), lim)
	r.header = true
	return r.Next()
}
