package codec

import (
	"fmt"
	"strconv"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// AppendJiffy appends a term as jiffy:encode does for the values room
// options hold: binaries as strings, true/false/null as themselves, other
// atoms as strings, integers, floats, lists as arrays.
func AppendJiffy(dst []byte, v term.Term) ([]byte, error) { return appendJiffy(dst, v, 0) }

func appendJiffy(dst []byte, v term.Term, depth int) ([]byte, error) {
	if depth > 20 {
		return dst, fmt.Errorf("nested too deep")
	}
	switch x := v.(type) {
	case term.Atom:
		if x == "true" || x == "false" || x == "null" {
			return append(dst, x...), nil
		}
		return AppendJiffyString(dst, string(x)), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case term.Binary:
		return AppendJiffyString(dst, string(x)), nil
	case float64:
		return strconv.AppendFloat(dst, x, 'g', -1, 64), nil
	}
	if n, ok := term.Int(v); ok {
		return strconv.AppendInt(dst, n, 10), nil
	}
	if l, ok := term.Elems(v); ok {
		dst = append(dst, '[')
		for i, e := range l {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJiffy(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	return dst, fmt.Errorf("%s has no JSON form", term.Short(v))
}

// AppendJiffyString appends a JSON string as jiffy does: UTF-8 kept, ", \ and
// control characters escaped, / not escaped.
func AppendJiffyString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
