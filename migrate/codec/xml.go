// Package codec writes, byte for byte, the formats ejabberd and MongooseIM
// store in SQL columns: XML as fxml writes it, Erlang terms as
// misc:term_to_expr prints them, exml terms, jiffy JSON and xdata forms.
package codec

import (
	"fmt"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// AppendXML appends an XML element stored in Mnesia as ejabberd's own
// writer (fxml:element_to_binary) prints it, byte for byte: no declaration,
// attributes in stored order and single-quoted, an element without
// children as <x/>, text escaped as fxml escapes it.
//
// It reads every shape ejabberd ever stored: {xmlel, Name, Attrs,
// Children} (13.x and later), {xmlelement, Name, Attrs, Children} (2.x,
// with strings as byte lists) and {xmlcdata, Data}; names, values and text
// may be binaries, byte lists or iolists, as ejabberd's own upgrade code
// (iolist_to_binary) accepts them.
func AppendXML(dst []byte, el term.Term) ([]byte, error) {
	return appendNode(dst, el, 0)
}

const maxXMLDepth = 10000

func appendNode(dst []byte, n term.Term, depth int) ([]byte, error) {
	if depth > maxXMLDepth {
		return dst, fmt.Errorf("XML nested deeper than %d", maxXMLDepth)
	}
	tu, ok := n.(term.Tuple)
	if !ok || len(tu) == 0 {
		return dst, fmt.Errorf("not an XML node: %s", term.Short(n))
	}
	tag, _ := tu[0].(term.Atom)
	switch {
	case tag == "xmlcdata" && len(tu) == 2:
		text, err := Iolist(nil, tu[1])
		if err != nil {
			return dst, fmt.Errorf("xmlcdata: %w", err)
		}
		return EscapeText(dst, text), nil
	case (tag == "xmlel" || tag == "xmlelement") && len(tu) == 4:
	default:
		return dst, fmt.Errorf("not an XML node: %s", term.Short(n))
	}
	name, err := Iolist(nil, tu[1])
	if err != nil || len(name) == 0 {
		return dst, fmt.Errorf("element name: %s", term.Short(tu[1]))
	}
	dst = append(dst, '<')
	dst = append(dst, name...)
	attrs, ok := term.Elems(tu[2])
	if !ok {
		return dst, fmt.Errorf("attributes of <%s> are not a list", name)
	}
	var kb, vb []byte
	for _, a := range attrs {
		kv, ok := a.(term.Tuple)
		if !ok || len(kv) != 2 {
			return dst, fmt.Errorf("attribute of <%s> is not a pair: %s", name, term.Short(a))
		}
		if kb, err = Iolist(kb[:0], kv[0]); err != nil || len(kb) == 0 {
			return dst, fmt.Errorf("attribute name in <%s>: %s", name, term.Short(kv[0]))
		}
		if vb, err = Iolist(vb[:0], kv[1]); err != nil {
			return dst, fmt.Errorf("attribute %s of <%s>: %w", kb, name, err)
		}
		dst = append(dst, ' ')
		dst = append(dst, kb...)
		dst = append(dst, '=', '\'')
		dst = EscapeAttr(dst, vb)
		dst = append(dst, '\'')
	}
	children, ok := term.Elems(tu[3])
	if !ok {
		return dst, fmt.Errorf("children of <%s> are not a list", name)
	}
	if len(children) == 0 {
		return append(dst, '/', '>'), nil
	}
	dst = append(dst, '>')
	for _, c := range children {
		if dst, err = appendNode(dst, c, depth+1); err != nil {
			return dst, err
		}
	}
	dst = append(dst, '<', '/')
	dst = append(dst, name...)
	return append(dst, '>'), nil
}

// iolist appends the bytes of an iolist (binary, byte list, nested lists
// of both; an atom counts as its name) to dst.
func Iolist(dst []byte, t term.Term) ([]byte, error) {
	switch v := t.(type) {
	case term.Binary:
		return append(dst, v...), nil
	case term.Charlist:
		return append(dst, v...), nil
	case term.Atom:
		return append(dst, v...), nil
	case term.List:
		var err error
		for _, e := range v {
			if n, ok := term.Int(e); ok {
				if n < 0 || n > 255 {
					return dst, fmt.Errorf("%d is not a byte", n)
				}
				dst = append(dst, byte(n))
				continue
			}
			if dst, err = Iolist(dst, e); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case term.ImproperList:
		dst, err := Iolist(dst, term.List(v.Elems))
		if err != nil {
			return dst, err
		}
		if _, ok := v.Tail.(term.Binary); !ok {
			return dst, fmt.Errorf("improper list with tail %s", term.Short(v.Tail))
		}
		return Iolist(dst, v.Tail)
	}
	return dst, fmt.Errorf("not text: %s", term.Short(t))
}

// escapeText escapes character data as fxml does: the five predefined
// entities, line ends raw.
func EscapeText(dst, s []byte) []byte { return escape(dst, s, false) }

// escapeAttr escapes an attribute value as fxml does: as text, but '>'
// stays and tab, CR and LF become character references.
func EscapeAttr(dst, s []byte) []byte { return escape(dst, s, true) }

func escape(dst, s []byte, attr bool) []byte {
	for _, c := range s {
		switch {
		case c == '&':
			dst = append(dst, "&amp;"...)
		case c == '<':
			dst = append(dst, "&lt;"...)
		case c == '\'':
			dst = append(dst, "&apos;"...)
		case c == '"':
			dst = append(dst, "&quot;"...)
		case c == '>' && !attr:
			dst = append(dst, "&gt;"...)
		case c == '\n' && attr:
			dst = append(dst, "&#xA;"...)
		case c == '\t' && attr:
			dst = append(dst, "&#x9;"...)
		case c == '\r' && attr:
			dst = append(dst, "&#xD;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
