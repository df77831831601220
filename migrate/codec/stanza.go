package codec

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Element is an XML element read out of a stored term; Kids hold *Element
// and string (character data).
type Element struct {
	Name  string
	Attrs [][2]string
	Kids  []any
}

// Attr is the value of an attribute.
func (e *Element) Attr(name string) (string, bool) {
	for _, a := range e.Attrs {
		if a[0] == name {
			return a[1], true
		}
	}
	return "", false
}

// Text is the element's text: its character data children concatenated.
func (e *Element) Text() string {
	var b strings.Builder
	for _, k := range e.Kids {
		if s, ok := k.(string); ok {
			b.WriteString(s)
		}
	}
	return b.String()
}

// ParseElement reads a stored element ({xmlel, ...} or 2.x {xmlelement,
// ...}).
func ParseElement(t term.Term) (*Element, error) { return parseElement(t, 0) }

func parseElement(t term.Term, depth int) (*Element, error) {
	if depth > maxXMLDepth {
		return nil, fmt.Errorf("XML nested deeper than %d", maxXMLDepth)
	}
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 4 || !(term.IsAtom(tu[0], "xmlel") || term.IsAtom(tu[0], "xmlelement")) {
		return nil, fmt.Errorf("not an XML element: %s", term.Short(t))
	}
	name, err := Iolist(nil, tu[1])
	if err != nil || len(name) == 0 {
		return nil, fmt.Errorf("element name: %s", term.Short(tu[1]))
	}
	e := &Element{Name: string(name)}
	attrs, ok := term.Elems(tu[2])
	if !ok {
		return nil, fmt.Errorf("attributes of <%s> are not a list", name)
	}
	for _, a := range attrs {
		kv, ok := a.(term.Tuple)
		if !ok || len(kv) != 2 {
			return nil, fmt.Errorf("attribute of <%s> is not a pair: %s", name, term.Short(a))
		}
		k, err1 := Iolist(nil, kv[0])
		v, err2 := Iolist(nil, kv[1])
		if err1 != nil || err2 != nil || len(k) == 0 {
			return nil, fmt.Errorf("attribute of <%s>: %s", name, term.Short(a))
		}
		e.Attrs = append(e.Attrs, [2]string{string(k), string(v)})
	}
	kids, ok := term.Elems(tu[3])
	if !ok {
		return nil, fmt.Errorf("children of <%s> are not a list", name)
	}
	for _, k := range kids {
		if c, ok := k.(term.Tuple); ok && len(c) == 2 && term.IsAtom(c[0], "xmlcdata") {
			s, err := Iolist(nil, c[1])
			if err != nil {
				return nil, fmt.Errorf("xmlcdata in <%s>: %w", name, err)
			}
			e.Kids = append(e.Kids, string(s))
			continue
		}
		ke, err := parseElement(k, depth+1)
		if err != nil {
			return nil, err
		}
		e.Kids = append(e.Kids, ke)
	}
	return e, nil
}

// SetAttr sets an attribute, in place when the element has it.
func (e *Element) SetAttr(name, value string) {
	for i, a := range e.Attrs {
		if a[0] == name {
			e.Attrs[i][1] = value
			return
		}
	}
	e.Attrs = append(e.Attrs, [2]string{name, value})
}

// Child is the first child element of that name, or nil.
func (e *Element) Child(name string) *Element {
	for _, k := range e.Kids {
		if c, ok := k.(*Element); ok && c.Name == name {
			return c
		}
	}
	return nil
}

// AppendElement writes an element as fxml:element_to_binary does.
func AppendElement(dst []byte, e *Element) []byte {
	dst = append(dst, '<')
	dst = append(dst, e.Name...)
	for _, a := range e.Attrs {
		dst = append(dst, ' ')
		dst = append(dst, a[0]...)
		dst = append(dst, '=', '\'')
		dst = EscapeAttr(dst, []byte(a[1]))
		dst = append(dst, '\'')
	}
	if len(e.Kids) == 0 {
		return append(dst, '/', '>')
	}
	dst = append(dst, '>')
	for _, k := range e.Kids {
		switch k := k.(type) {
		case string:
			dst = EscapeText(dst, []byte(k))
		case *Element:
			dst = AppendElement(dst, k)
		}
	}
	dst = append(dst, '<', '/')
	dst = append(dst, e.Name...)
	return append(dst, '>')
}

// clientNS are the namespaces the stanza codec treats as its own.
func clientNS(ns string) bool {
	return ns == "jabber:client" || ns == "jabber:server" || ns == "jabber:component:accept"
}

// nsOf is an element's namespace: its xmlns attribute, else the parent's.
func nsOf(e *Element, parent string) string {
	if ns, ok := e.Attr("xmlns"); ok {
		return ns
	}
	return parent
}

// XMPPStamp writes a time as xmpp_util:encode_timestamp does: UTC, the
// microseconds only when not zero.
func XMPPStamp(usec int64) string {
	t := time.UnixMicro(usec).UTC()
	s := t.Format("2006-01-02T15:04:05")
	if us := usec % 1_000_000; us > 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s + "Z"
}

// AppendOfflineStanza appends what ejabberd writes into spool.xml for an offline
// message: the stored packet decoded by the stanza codec (sub-elements left
// as they are), from and to set from the record, a <delay/> from the
// virtual host stamped with the message time appended (unless one from
// the same host is there), and encoded again — attributes and the codec's
// own children (body, subject, thread; priority, show, status) in the
// codec's order.
func AppendOfflineStanza(dst []byte, packet term.Term, from, to, vhost string, usec int64) ([]byte, error) {
	p, err := ParseElement(packet)
	if err != nil {
		return dst, fmt.Errorf("packet: %v", err)
	}
	out, err := CanonicalStanza(p, from, to, "", func(els []any, top string) []any {
		// The delay, unless one from this host is there already.
		for _, k := range els {
			c := k.(*Element)
			if c.Name == "delay" && nsOf(c, top) == "urn:xmpp:delay" {
				if f, ok := c.Attr("from"); ok && strings.EqualFold(f, vhost) {
					if _, ok := c.Attr("stamp"); ok {
						return els
					}
				}
			}
		}
		return append(els, &Element{Name: "delay",
			Attrs: [][2]string{{"from", vhost}, {"stamp", XMPPStamp(usec)}, {"xmlns", "urn:xmpp:delay"}},
			Kids:  []any{"Offline Storage"}})
	})
	if err != nil {
		return dst, err
	}
	return AppendElement(dst, out), nil
}

// CanonicalStanza is a stanza as ejabberd's codec writes it after
// decoding it: the attributes xml:lang, to, from, type, id (to, from and
// lang as given, "" keeps the stanza's own lang), xmlns jabber:client; the
// children the codec does not know first, in their order (extend may add
// to them), then its own (body, subject, thread; priority, show, status)
// normalised, in its order; text between children dropped.
func CanonicalStanza(p *Element, from, to, lang string, extend func(els []any, top string) []any) (*Element, error) {
	top := nsOf(p, "jabber:client")
	if !clientNS(top) {
		return nil, fmt.Errorf("packet namespace %q is not a client stanza's", top)
	}
	var own [][]*Element // the codec's children, in encoding order
	var els []any        // everything else, in stored order
	var typ string
	switch p.Name {
	case "message":
		bodies, subjects, thread := []*Element{}, []*Element{}, []*Element{}
		for _, k := range p.Kids {
			c, ok := k.(*Element)
			if !ok {
				continue
			}
			ns := nsOf(c, top)
			switch {
			case c.Name == "body" && clientNS(ns):
				bodies = append(bodies, textChild(c))
			case c.Name == "subject" && clientNS(ns):
				subjects = append(subjects, textChild(c))
			case c.Name == "thread" && clientNS(ns):
				th := &Element{Name: "thread"}
				if parent, ok := c.Attr("parent"); ok && parent != "" {
					th.Attrs = append(th.Attrs, [2]string{"parent", parent})
				}
				if s := c.Text(); s != "" {
					th.Kids = []any{s}
				}
				thread = []*Element{th}
			default:
				els = append(els, c)
			}
		}
		own = [][]*Element{bodies, subjects, thread}
		typ, _ = p.Attr("type")
		switch typ {
		case "chat", "groupchat", "headline", "error":
		default:
			typ = "" // normal; an unknown type too (RFC 6121 §5.2.2)
		}
	case "presence":
		var priority, show []*Element
		status := []*Element{}
		for _, k := range p.Kids {
			c, ok := k.(*Element)
			if !ok {
				continue
			}
			ns := nsOf(c, top)
			switch {
			case c.Name == "status" && clientNS(ns):
				status = append(status, textChild(c))
			case c.Name == "show" && clientNS(ns):
				v := c.Text()
				switch v {
				case "away", "chat", "dnd", "xa":
				case "": // no show (the codec reads empty cdata as absent)
					continue
				default:
					return nil, badValue("cdata", "show", top)
				}
				show = []*Element{{Name: "show", Kids: []any{v}}}
			case c.Name == "priority" && clientNS(ns):
				if c.Text() == "" {
					continue
				}
				n, err := strconv.Atoi(c.Text())
				if err != nil {
					return nil, badValue("cdata", "priority", top)
				}
				priority = []*Element{{Name: "priority", Kids: []any{strconv.Itoa(n)}}}
			default:
				els = append(els, c)
			}
		}
		own = [][]*Element{priority, show, status}
		typ, _ = p.Attr("type")
		switch typ {
		case "", "available":
			typ = ""
		case "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error":
		default:
			return nil, badValue("attribute 'type'", "presence", top)
		}
	case "iq":
		for _, k := range p.Kids {
			if c, ok := k.(*Element); ok {
				els = append(els, c)
			}
		}
		typ, _ = p.Attr("type")
		switch typ {
		case "get", "set", "result", "error":
		default:
			return nil, badValue("attribute 'type'", "iq", top)
		}
		if id, _ := p.Attr("id"); id == "" {
			return nil, &StanzaError{Text: fmt.Sprintf("Missing attribute 'id' in tag <iq/> qualified by namespace '%s'", top)}
		}
	default:
		return nil, fmt.Errorf("packet <%s> is not a stanza", p.Name)
	}
	if extend != nil {
		els = extend(els, top)
	}
	out := &Element{Name: p.Name}
	if lang == "" {
		lang, _ = p.Attr("xml:lang")
	}
	if lang != "" {
		out.Attrs = append(out.Attrs, [2]string{"xml:lang", lang})
	}
	if to != "" {
		out.Attrs = append(out.Attrs, [2]string{"to", to})
	}
	if from != "" {
		out.Attrs = append(out.Attrs, [2]string{"from", from})
	}
	if typ != "" {
		out.Attrs = append(out.Attrs, [2]string{"type", typ})
	}
	if id, _ := p.Attr("id"); id != "" {
		out.Attrs = append(out.Attrs, [2]string{"id", id})
	}
	out.Attrs = append(out.Attrs, [2]string{"xmlns", "jabber:client"})
	out.Kids = els
	for _, group := range own {
		for _, c := range group {
			out.Kids = append(out.Kids, c)
		}
	}
	return out, nil
}

// ElementTerm is an element as fxml keeps it: {xmlel, Name, [{K, V}],
// Children} with {xmlcdata, Text} (ParseElement reads it back).
func ElementTerm(e *Element) term.Term {
	attrs := make(term.List, len(e.Attrs))
	for i, a := range e.Attrs {
		attrs[i] = term.Tuple{term.Binary(a[0]), term.Binary(a[1])}
	}
	kids := make(term.List, 0, len(e.Kids))
	for _, k := range e.Kids {
		switch k := k.(type) {
		case *Element:
			kids = append(kids, ElementTerm(k))
		case string:
			kids = append(kids, term.Tuple{term.Atom("xmlcdata"), term.Binary(k)})
		}
	}
	return term.Tuple{term.Atom("xmlel"), term.Binary(e.Name), attrs, kids}
}

// StanzaError is a stanza the codec cannot decode, worded as ejabberd's
// xmpp:io_format_error words it.
type StanzaError struct{ Text string }

func (e *StanzaError) Error() string { return e.Text }

func badValue(what, tag, ns string) error {
	return &StanzaError{Text: fmt.Sprintf("Bad value of %s in tag <%s/> qualified by namespace '%s'", what, tag, ns)}
}

// textChild re-encodes a body, subject or status: its xml:lang and text.
func textChild(c *Element) *Element {
	out := &Element{Name: c.Name}
	if lang, _ := c.Attr("xml:lang"); lang != "" {
		out.Attrs = [][2]string{{"xml:lang", lang}}
	}
	if s := c.Text(); s != "" {
		out.Kids = []any{s}
	}
	return out
}
