package migrate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// xel is an XML element read out of a stored term; kids hold *xel and
// string (character data).
type xel struct {
	name  string
	attrs [][2]string
	kids  []any
}

func (e *xel) attr(name string) (string, bool) {
	for _, a := range e.attrs {
		if a[0] == name {
			return a[1], true
		}
	}
	return "", false
}

// cdata is the element's text: its character data children concatenated.
func (e *xel) cdata() string {
	var b strings.Builder
	for _, k := range e.kids {
		if s, ok := k.(string); ok {
			b.WriteString(s)
		}
	}
	return b.String()
}

// parseXel reads a stored element ({xmlel, ...} or 2.x {xmlelement, ...}).
func parseXel(t term.Term, depth int) (*xel, error) {
	if depth > maxXMLDepth {
		return nil, fmt.Errorf("XML nested deeper than %d", maxXMLDepth)
	}
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 4 || !(term.IsAtom(tu[0], "xmlel") || term.IsAtom(tu[0], "xmlelement")) {
		return nil, fmt.Errorf("not an XML element: %s", short(t))
	}
	name, err := iolist(nil, tu[1])
	if err != nil || len(name) == 0 {
		return nil, fmt.Errorf("element name: %s", short(tu[1]))
	}
	e := &xel{name: string(name)}
	attrs, ok := term.Elems(tu[2])
	if !ok {
		return nil, fmt.Errorf("attributes of <%s> are not a list", name)
	}
	for _, a := range attrs {
		kv, ok := a.(term.Tuple)
		if !ok || len(kv) != 2 {
			return nil, fmt.Errorf("attribute of <%s> is not a pair: %s", name, short(a))
		}
		k, err1 := iolist(nil, kv[0])
		v, err2 := iolist(nil, kv[1])
		if err1 != nil || err2 != nil || len(k) == 0 {
			return nil, fmt.Errorf("attribute of <%s>: %s", name, short(a))
		}
		e.attrs = append(e.attrs, [2]string{string(k), string(v)})
	}
	kids, ok := term.Elems(tu[3])
	if !ok {
		return nil, fmt.Errorf("children of <%s> are not a list", name)
	}
	for _, k := range kids {
		if c, ok := k.(term.Tuple); ok && len(c) == 2 && term.IsAtom(c[0], "xmlcdata") {
			s, err := iolist(nil, c[1])
			if err != nil {
				return nil, fmt.Errorf("xmlcdata in <%s>: %w", name, err)
			}
			e.kids = append(e.kids, string(s))
			continue
		}
		ke, err := parseXel(k, depth+1)
		if err != nil {
			return nil, err
		}
		e.kids = append(e.kids, ke)
	}
	return e, nil
}

// appendXel writes an element as fxml:element_to_binary does.
func appendXel(dst []byte, e *xel) []byte {
	dst = append(dst, '<')
	dst = append(dst, e.name...)
	for _, a := range e.attrs {
		dst = append(dst, ' ')
		dst = append(dst, a[0]...)
		dst = append(dst, '=', '\'')
		dst = escapeAttr(dst, []byte(a[1]))
		dst = append(dst, '\'')
	}
	if len(e.kids) == 0 {
		return append(dst, '/', '>')
	}
	dst = append(dst, '>')
	for _, k := range e.kids {
		switch k := k.(type) {
		case string:
			dst = escapeText(dst, []byte(k))
		case *xel:
			dst = appendXel(dst, k)
		}
	}
	dst = append(dst, '<', '/')
	dst = append(dst, e.name...)
	return append(dst, '>')
}

// clientNS are the namespaces the stanza codec treats as its own.
func clientNS(ns string) bool {
	return ns == "jabber:client" || ns == "jabber:server" || ns == "jabber:component:accept"
}

// nsOf is an element's namespace: its xmlns attribute, else the parent's.
func nsOf(e *xel, parent string) string {
	if ns, ok := e.attr("xmlns"); ok {
		return ns
	}
	return parent
}

// jidText writes a #jid{} record (or a {U, S, R} tuple) as jid:encode does.
func jidText(t term.Term) (string, error) {
	if tu, ok := t.(term.Tuple); ok && len(tu) == 7 && term.IsAtom(tu[0], "jid") {
		return ljidText(term.Tuple{tu[1], tu[2], tu[3]})
	}
	if tu, ok := t.(term.Tuple); ok && len(tu) >= 4 && term.IsAtom(tu[0], "jid") {
		// ejabberd 2.x #jid{user, server, resource, luser, lserver, lresource}
		return ljidText(term.Tuple{tu[1], tu[2], tu[3]})
	}
	return ljidText(t)
}

// timestampUsec reads an erlang:timestamp() {Mega, Sec, Micro}.
func timestampUsec(t term.Term) (int64, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 3 {
		return 0, reject("timestamp is not {Mega, Sec, Micro}: %s", short(t))
	}
	mega, ok1 := term.Int(tu[0])
	sec, ok2 := term.Int(tu[1])
	micro, ok3 := term.Int(tu[2])
	if !ok1 || !ok2 || !ok3 || mega < 0 || sec < 0 || micro < 0 || mega > 1<<20 {
		return 0, reject("timestamp is not {Mega, Sec, Micro}: %s", short(t))
	}
	return (mega*1_000_000+sec)*1_000_000 + micro, nil
}

// xmppStamp writes a time as xmpp_util:encode_timestamp does: UTC, the
// microseconds only when not zero.
func xmppStamp(usec int64) string {
	t := time.UnixMicro(usec).UTC()
	s := t.Format("2006-01-02T15:04:05")
	if us := usec % 1_000_000; us > 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s + "Z"
}

// offlineXML is what ejabberd writes into spool.xml for an offline
// message: the stored packet decoded by the stanza codec (sub-elements left
// as they are), from and to set from the record, a <delay/> from the
// virtual host stamped with the message time appended (unless one from
// the same host is there), and encoded again — attributes and the codec's
// own children (body, subject, thread; priority, show, status) in the
// codec's order.
func offlineXML(dst []byte, packet term.Term, from, to, vhost string, usec int64) ([]byte, error) {
	p, err := parseXel(packet, 0)
	if err != nil {
		return dst, reject("packet: %v", err)
	}
	top := nsOf(p, "jabber:client")
	if !clientNS(top) {
		return dst, reject("packet namespace %q is not a client stanza's", top)
	}
	var own [][]*xel // the codec's children, in encoding order
	var els []any    // everything else, in stored order
	var typ string
	switch p.name {
	case "message":
		bodies, subjects, thread := []*xel{}, []*xel{}, []*xel{}
		for _, k := range p.kids {
			c, ok := k.(*xel)
			if !ok {
				continue
			}
			ns := nsOf(c, top)
			switch {
			case c.name == "body" && clientNS(ns):
				bodies = append(bodies, textChild(c))
			case c.name == "subject" && clientNS(ns):
				subjects = append(subjects, textChild(c))
			case c.name == "thread" && clientNS(ns):
				th := &xel{name: "thread"}
				if parent, ok := c.attr("parent"); ok && parent != "" {
					th.attrs = append(th.attrs, [2]string{"parent", parent})
				}
				if s := c.cdata(); s != "" {
					th.kids = []any{s}
				}
				thread = []*xel{th}
			default:
				els = append(els, c)
			}
		}
		own = [][]*xel{bodies, subjects, thread}
		typ, _ = p.attr("type")
		switch typ {
		case "", "normal":
			typ = ""
		case "chat", "groupchat", "headline", "error":
		default:
			return dst, reject("message type %q", typ)
		}
	case "presence":
		var priority, show []*xel
		status := []*xel{}
		for _, k := range p.kids {
			c, ok := k.(*xel)
			if !ok {
				continue
			}
			ns := nsOf(c, top)
			switch {
			case c.name == "status" && clientNS(ns):
				status = append(status, textChild(c))
			case c.name == "show" && clientNS(ns):
				v := c.cdata()
				switch v {
				case "away", "chat", "dnd", "xa":
				default:
					return dst, reject("presence show %q", v)
				}
				show = []*xel{{name: "show", kids: []any{v}}}
			case c.name == "priority" && clientNS(ns):
				n, err := strconv.Atoi(c.cdata())
				if err != nil || n < -128 || n > 127 {
					return dst, reject("presence priority %q", c.cdata())
				}
				priority = []*xel{{name: "priority", kids: []any{strconv.Itoa(n)}}}
			default:
				els = append(els, c)
			}
		}
		own = [][]*xel{priority, show, status}
		typ, _ = p.attr("type")
		switch typ {
		case "", "available":
			typ = ""
		case "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error":
		default:
			return dst, reject("presence type %q", typ)
		}
	case "iq":
		for _, k := range p.kids {
			if c, ok := k.(*xel); ok {
				els = append(els, c)
			}
		}
		typ, _ = p.attr("type")
		switch typ {
		case "get", "set", "result", "error":
		default:
			return dst, reject("iq type %q", typ)
		}
	default:
		return dst, reject("packet <%s> is not a stanza", p.name)
	}
	// The delay, unless one from this host is there already.
	hasDelay := false
	for _, k := range els {
		c := k.(*xel)
		if c.name == "delay" && nsOf(c, top) == "urn:xmpp:delay" {
			if f, ok := c.attr("from"); ok && strings.EqualFold(f, vhost) {
				if _, ok := c.attr("stamp"); ok {
					hasDelay = true
				}
			}
		}
	}
	if !hasDelay {
		els = append(els, &xel{name: "delay",
			attrs: [][2]string{{"from", vhost}, {"stamp", xmppStamp(usec)}, {"xmlns", "urn:xmpp:delay"}},
			kids:  []any{"Offline Storage"}})
	}
	out := &xel{name: p.name}
	if lang, _ := p.attr("xml:lang"); lang != "" {
		out.attrs = append(out.attrs, [2]string{"xml:lang", lang})
	}
	if to != "" {
		out.attrs = append(out.attrs, [2]string{"to", to})
	}
	if from != "" {
		out.attrs = append(out.attrs, [2]string{"from", from})
	}
	if typ != "" {
		out.attrs = append(out.attrs, [2]string{"type", typ})
	}
	if id, _ := p.attr("id"); id != "" {
		out.attrs = append(out.attrs, [2]string{"id", id})
	}
	out.attrs = append(out.attrs, [2]string{"xmlns", "jabber:client"})
	out.kids = els
	for _, group := range own {
		for _, c := range group {
			out.kids = append(out.kids, c)
		}
	}
	return appendXel(dst, out), nil
}

// textChild re-encodes a body, subject or status: its xml:lang and text.
func textChild(c *xel) *xel {
	out := &xel{name: c.name}
	if lang, _ := c.attr("xml:lang"); lang != "" {
		out.attrs = [][2]string{{"xml:lang", lang}}
	}
	if s := c.cdata(); s != "" {
		out.kids = []any{s}
	}
	return out
}
