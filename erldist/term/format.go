package term

import (
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Format writes t on one line the way Erlang's ~p would print a short term:
// printable lists as "strings", printable binaries as <<"text">>, atoms quoted
// where Erlang quotes them. It is for messages and human output.
func Format(t Term) string {
	var sb strings.Builder
	format(&sb, t)
	return sb.String()
}

func format(sb *strings.Builder, t Term) {
	switch v := t.(type) {
	case Atom:
		sb.WriteString(QuoteAtom(v))
	case int64:
		sb.WriteString(strconv.FormatInt(v, 10))
	case int:
		sb.WriteString(strconv.Itoa(v))
	case *big.Int:
		sb.WriteString(v.String())
	case float64:
		sb.WriteString(formatFloat(v))
	case Binary:
		sb.WriteString("<<")
		if len(v) > 0 && printableBytes(v) {
			writeQuoted(sb, string(v), '"')
		} else {
			for i, c := range v {
				if i > 0 {
					sb.WriteByte(',')
				}
				sb.WriteString(strconv.Itoa(int(c)))
			}
		}
		sb.WriteString(">>")
	case BitBinary:
		sb.WriteString("<<")
		for i, c := range v.Bytes {
			if i > 0 {
				sb.WriteByte(',')
			}
			if i == len(v.Bytes)-1 && v.Bits != 8 {
				sb.WriteString(strconv.Itoa(int(c) >> (8 - v.Bits)))
				sb.WriteString(":" + strconv.Itoa(int(v.Bits)))
			} else {
				sb.WriteString(strconv.Itoa(int(c)))
			}
		}
		sb.WriteString(">>")
	case Charlist:
		if printableBytes([]byte(v)) {
			writeQuoted(sb, string(v), '"')
		} else {
			format(sb, v.List())
		}
	case Tuple:
		sb.WriteByte('{')
		for i, e := range v {
			if i > 0 {
				sb.WriteByte(',')
			}
			format(sb, e)
		}
		sb.WriteByte('}')
	case List:
		if s, ok := Text(v); ok && len(v) > 0 && printableBytes([]byte(s)) {
			writeQuoted(sb, s, '"')
			return
		}
		sb.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				sb.WriteByte(',')
			}
			format(sb, e)
		}
		sb.WriteByte(']')
	case ImproperList:
		sb.WriteByte('[')
		for i, e := range v.Elems {
			if i > 0 {
				sb.WriteByte(',')
			}
			format(sb, e)
		}
		sb.WriteByte('|')
		format(sb, v.Tail)
		sb.WriteByte(']')
	case Map:
		sb.WriteString("#{")
		for i, p := range v {
			if i > 0 {
				sb.WriteByte(',')
			}
			format(sb, p.Key)
			sb.WriteString(" => ")
			format(sb, p.Value)
		}
		sb.WriteByte('}')
	case Pid:
		sb.WriteString(v.String())
	case Port:
		sb.WriteString(v.String())
	case Ref:
		sb.WriteString(v.String())
	case Export:
		sb.WriteString("fun " + QuoteAtom(v.Module) + ":" + QuoteAtom(v.Function) + "/" + strconv.Itoa(v.Arity))
	case Fun:
		sb.WriteString("#Fun<>")
	default:
		sb.WriteString("?")
	}
}

func formatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	// Erlang prints the shortest text that reads back exactly, always with a
	// fraction: 1.0, 0.1, 1.0e20.
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if i := strings.IndexByte(s, 'e'); i >= 0 {
		mant, exp := s[:i], s[i+1:]
		if !strings.Contains(mant, ".") {
			mant += ".0"
		}
		exp = strings.TrimPrefix(exp, "+")
		if strings.HasPrefix(exp, "-0") {
			exp = "-" + exp[2:]
		} else {
			exp = strings.TrimPrefix(exp, "0")
		}
		return mant + "e" + exp
	}
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// printableBytes follows io_lib:printable_latin1_list: printable latin-1
// characters and the common whitespace escapes.
func printableBytes(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= 32 && c <= 126, c >= 160:
		case c == '\n', c == '\r', c == '\t', c == '\v', c == '\b', c == '\f', c == 27:
		default:
			return false
		}
	}
	return true
}

func writeQuoted(sb *strings.Builder, s string, q byte) {
	sb.WriteByte(q)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case q, '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		case '\v':
			sb.WriteString(`\v`)
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		case 27:
			sb.WriteString(`\e`)
		default:
			if c < 32 || c == 127 {
				sb.WriteString(`\` + strconv.FormatInt(int64(c), 8))
			} else if c >= 128 {
				sb.WriteRune(rune(c)) // latin-1 byte shown as its character
			} else {
				sb.WriteByte(c)
			}
		}
	}
	sb.WriteByte(q)
}

var reservedWords = map[string]bool{
	"after": true, "and": true, "andalso": true, "band": true, "begin": true, "bnot": true,
	"bor": true, "bsl": true, "bsr": true, "bxor": true, "case": true, "catch": true,
	"cond": true, "div": true, "end": true, "fun": true, "if": true, "let": true, "not": true,
	"of": true, "or": true, "orelse": true, "receive": true, "rem": true, "try": true,
	"when": true, "xor": true,
}

// QuoteAtom returns the atom as Erlang source would write it, quoted when needed.
func QuoteAtom(a Atom) string {
	s := string(a)
	if atomNeedsQuotes(s) {
		var sb strings.Builder
		sb.WriteByte('\'')
		for _, r := range s {
			switch {
			case r == '\'' || r == '\\':
				sb.WriteByte('\\')
				sb.WriteRune(r)
			case r == '\n':
				sb.WriteString(`\n`)
			case r < 32:
				sb.WriteString(`\` + strconv.FormatInt(int64(r), 8))
			default:
				sb.WriteRune(r)
			}
		}
		sb.WriteByte('\'')
		return sb.String()
	}
	return s
}

func atomNeedsQuotes(s string) bool {
	if s == "" || reservedWords[s] {
		return true
	}
	for i, r := range s {
		lower := (r >= 'a' && r <= 'z') || (r >= 0xDF && r <= 0xFF && r != 0xF7)
		upper := (r >= 'A' && r <= 'Z') || (r >= 0xC0 && r <= 0xDE && r != 0xD7)
		if i == 0 {
			if !lower {
				return true
			}
			continue
		}
		if !(lower || upper || (r >= '0' && r <= '9') || r == '_' || r == '@') {
			return true
		}
	}
	return false
}

// Short is a term for an error message: Format cut to 60 characters.
func Short(t Term) string {
	s := Format(t)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
