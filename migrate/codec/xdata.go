package codec

import (
	"fmt"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// mod_push keeps a session's publish options in Mnesia as the xmpp
// library's #xdata{} record; its SQL backend stores them as XML,
// fxml:element_to_binary(xmpp:encode(XData)). xdataXML writes that XML:
// <x type='…' xmlns='jabber:x:data'> with title, reported, instructions,
// items and fields in the codec's order; a field's var, type and label
// attributes (left out when empty), then its extra elements, <required/>,
// desc, values and options. Checked against the real codec in the tests.
//
//	{xdata, Type, Instructions, Title, Reported, Items, Fields}
//	{xdata_field, Label, Type, Var, Required, Desc, Values, Options, SubEls}
//	{xdata_option, Label, Value}

func AppendXData(dst []byte, t term.Term) ([]byte, error) {
	x, ok := term.IsRecord(t, "xdata", 7)
	if !ok {
		return dst, fmt.Errorf("not an xdata record: %s", term.Short(t))
	}
	typ, ok := x[1].(term.Atom)
	if !ok {
		return dst, fmt.Errorf("xdata type %s", term.Short(x[1]))
	}
	dst = append(dst, "<x type='"...)
	dst = EscapeAttr(dst, []byte(typ))
	dst = append(dst, "' xmlns='jabber:x:data'>"...)
	open := len(dst)
	var err error
	if !term.IsAtom(x[3], "undefined") {
		if dst, err = textElement(dst, "title", x[3]); err != nil {
			return dst, err
		}
	}
	if !term.IsAtom(x[4], "undefined") {
		if fs, ok := term.Elems(x[4]); ok && len(fs) == 0 {
			dst = append(dst, "<reported/>"...)
		} else {
			dst = append(dst, "<reported>"...)
			if dst, err = xdataFields(dst, x[4]); err != nil {
				return dst, err
			}
			dst = append(dst, "</reported>"...)
		}
	}
	instr, ok := term.Elems(x[2])
	if !ok {
		return dst, fmt.Errorf("xdata instructions %s", term.Short(x[2]))
	}
	for _, i := range instr {
		if dst, err = textElement(dst, "instructions", i); err != nil {
			return dst, err
		}
	}
	items, ok := term.Elems(x[5])
	if !ok {
		return dst, fmt.Errorf("xdata items %s", term.Short(x[5]))
	}
	for _, it := range items {
		fs, ok := term.Elems(it)
		if ok && len(fs) == 0 {
			dst = append(dst, "<item/>"...)
			continue
		}
		dst = append(dst, "<item>"...)
		if dst, err = xdataFields(dst, it); err != nil {
			return dst, err
		}
		dst = append(dst, "</item>"...)
	}
	if dst, err = xdataFields(dst, x[6]); err != nil {
		return dst, err
	}
	if len(dst) == open {
		return append(dst[:open-1], "/>"...), nil
	}
	return append(dst, "</x>"...), nil
}

func xdataFields(dst []byte, t term.Term) ([]byte, error) {
	fields, ok := term.Elems(t)
	if !ok {
		return dst, fmt.Errorf("xdata fields %s", term.Short(t))
	}
	for _, f := range fields {
		r, ok := term.IsRecord(f, "xdata_field", 9)
		if !ok {
			return dst, fmt.Errorf("not an xdata_field record: %s", term.Short(f))
		}
		label, err1 := textOf(r[1])
		variable, err2 := textOf(r[3])
		desc, err3 := textOf(r[5])
		if err := firstOf(err1, err2, err3); err != nil {
			return dst, err
		}
		dst = append(dst, "<field"...)
		if variable != "" {
			dst = xmlAttr(dst, "var", variable)
		}
		if !term.IsAtom(r[2], "undefined") {
			typ, ok := r[2].(term.Atom)
			if !ok {
				return dst, fmt.Errorf("field type %s", term.Short(r[2]))
			}
			dst = xmlAttr(dst, "type", string(typ))
		}
		if label != "" {
			dst = xmlAttr(dst, "label", label)
		}
		start := len(dst)
		dst = append(dst, '>')
		subs, ok := term.Elems(r[8])
		if !ok {
			return dst, fmt.Errorf("field elements %s", term.Short(r[8]))
		}
		for _, s := range subs {
			if dst, err1 = AppendXML(dst, s); err1 != nil {
				return dst, err1
			}
		}
		if term.IsAtom(r[4], "true") {
			dst = append(dst, "<required/>"...)
		}
		if desc != "" {
			dst = append(dst, "<desc>"...)
			dst = EscapeText(dst, []byte(desc))
			dst = append(dst, "</desc>"...)
		}
		values, ok := term.Elems(r[6])
		if !ok {
			return dst, fmt.Errorf("field values %s", term.Short(r[6]))
		}
		for _, v := range values {
			if dst, err1 = textElement(dst, "value", v); err1 != nil {
				return dst, err1
			}
		}
		options, ok := term.Elems(r[7])
		if !ok {
			return dst, fmt.Errorf("field options %s", term.Short(r[7]))
		}
		for _, o := range options {
			or, ok := term.IsRecord(o, "xdata_option", 3)
			if !ok {
				return dst, fmt.Errorf("not an xdata_option record: %s", term.Short(o))
			}
			ol, err := textOf(or[1])
			if err != nil {
				return dst, err
			}
			dst = append(dst, "<option"...)
			if ol != "" {
				dst = xmlAttr(dst, "label", ol)
			}
			dst = append(dst, '>')
			if dst, err = textElement(dst, "value", or[2]); err != nil {
				return dst, err
			}
			dst = append(dst, "</option>"...)
		}
		if len(dst) == start+1 {
			dst = append(dst[:start], "/>"...)
		} else {
			dst = append(dst, "</field>"...)
		}
	}
	return dst, nil
}

// textElement writes <name>text</name>, or <name/> for empty text.
func textElement(dst []byte, name string, t term.Term) ([]byte, error) {
	s, err := textOf(t)
	if err != nil {
		return dst, err
	}
	if s == "" {
		return append(append(append(dst, '<'), name...), "/>"...), nil
	}
	dst = append(append(append(dst, '<'), name...), '>')
	dst = EscapeText(dst, []byte(s))
	return append(append(append(dst, "</"...), name...), '>'), nil
}

func xmlAttr(dst []byte, name, value string) []byte {
	dst = append(append(append(dst, ' '), name...), "='"...)
	dst = EscapeAttr(dst, []byte(value))
	return append(dst, '\'')
}

// textOf reads a binary or byte list.
func textOf(t term.Term) (string, error) {
	if s, ok := term.Text(t); ok {
		if _, isAtom := t.(term.Atom); !isAtom {
			return s, nil
		}
	}
	return "", fmt.Errorf("not text: %s", term.Short(t))
}

func firstOf(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
