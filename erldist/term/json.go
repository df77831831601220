package term

import (
	"encoding/base64"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends t as JSON (docs/term-json.md). Every term has exactly
// one JSON form and every JSON form below names one term:
//
//	integer          42, or {"int":"123456789012345678901234"} beyond ±2^53
//	float            {"float":3.14}
//	atom             true, false, null (undefined), else {"atom":"name"}
//	binary           "text" when valid UTF-8, else {"binary":"<base64>"}
//	bitstring        {"bitstring":"<base64>","bits":N}
//	list             [...]; a printable list of characters {"string":"text"}
//	improper list    {"improper":[...],"tail":T}
//	tuple            {"tuple":[...]}
//	map              {"map":[[K,V],...]}
//	pid, port, ref   {"pid":{"node":"n@h","id":42,"serial":0}}, {"port":{"node":..,"id":..}},
//	                 {"ref":{"node":..,"id":[..]}}
//	fun              {"fun":"fun m:f/1"} or {"fun":"#Fun<m.1.2>"}
func AppendJSON(dst []byte, t Term) []byte {
	switch v := t.(type) {
	case int64:
		if v > -(1<<53) && v < 1<<53 {
			return strconv.AppendInt(dst, v, 10)
		}
		dst = append(dst, `{"int":"`...)
		dst = strconv.AppendInt(dst, v, 10)
		return append(dst, `"}`...)
	case int:
		return AppendJSON(dst, int64(v))
	case *big.Int:
		if v.IsInt64() {
			return AppendJSON(dst, v.Int64())
		}
		dst = append(dst, `{"int":"`...)
		dst = v.Append(dst, 10)
		return append(dst, `"}`...)
	case float64:
		dst = append(dst, `{"float":`...)
		dst = append(dst, ErlangFloat(v)...)
		return append(dst, '}')
	case Atom:
		switch v {
		case True:
			return append(dst, "true"...)
		case False:
			return append(dst, "false"...)
		case Undefined:
			return append(dst, "null"...)
		}
		dst = append(dst, `{"atom":`...)
		dst = appendJSONString(dst, string(v))
		return append(dst, '}')
	case Binary:
		if utf8.Valid(v) {
			return appendJSONString(dst, string(v))
		}
		dst = append(dst, `{"binary":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, v)
		return append(dst, `"}`...)
	case BitBinary:
		dst = append(dst, `{"bitstring":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, v.Bytes)
		dst = append(dst, `","bits":`...)
		bits := 8*len(v.Bytes) - 8 + int(v.Bits)
		if len(v.Bytes) == 0 {
			bits = 0
		}
		dst = strconv.AppendInt(dst, int64(bits), 10)
		return append(dst, '}')
	case Charlist:
		if s, ok := printableText(v.List()); ok {
			return appendTagged(dst, "string", s)
		}
		return appendJSONList(dst, v.List())
	case List:
		if s, ok := printableText(v); ok {
			return appendTagged(dst, "string", s)
		}
		return appendJSONList(dst, v)
	case ImproperList:
		dst = append(dst, `{"improper":`...)
		dst = appendJSONList(dst, v.Elems)
		dst = append(dst, `,"tail":`...)
		dst = AppendJSON(dst, v.Tail)
		return append(dst, '}')
	case Tuple:
		dst = append(dst, `{"tuple":`...)
		dst = appendJSONList(dst, v)
		return append(dst, '}')
	case Map:
		dst = append(dst, `{"map":[`...)
		for i, p := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '[')
			dst = AppendJSON(dst, p.Key)
			dst = append(dst, ',')
			dst = AppendJSON(dst, p.Value)
			dst = append(dst, ']')
		}
		return append(dst, "]}"...)
	case Pid:
		dst = append(dst, `{"pid":{"node":`...)
		dst = appendJSONString(dst, string(v.Node))
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendUint(dst, uint64(v.ID), 10)
		dst = append(dst, `,"serial":`...)
		dst = strconv.AppendUint(dst, uint64(v.Serial), 10)
		return append(dst, "}}"...)
	case Port:
		dst = append(dst, `{"port":{"node":`...)
		dst = appendJSONString(dst, string(v.Node))
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendUint(dst, v.ID, 10)
		return append(dst, "}}"...)
	case Ref:
		dst = append(dst, `{"ref":{"node":`...)
		dst = appendJSONString(dst, string(v.Node))
		dst = append(dst, `,"id":[`...)
		for i, w := range v.ID {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendUint(dst, uint64(w), 10)
		}
		return append(dst, "]}}"...)
	case Export, Fun:
		return appendTagged(dst, "fun", writeAtomic(v))
	}
	return appendTagged(dst, "unknown", Format(t))
}

func appendTagged(dst []byte, tag, s string) []byte {
	dst = append(dst, `{"`...)
	dst = append(dst, tag...)
	dst = append(dst, `":`...)
	dst = appendJSONString(dst, s)
	return append(dst, '}')
}

func appendJSONList(dst []byte, l []Term) []byte {
	dst = append(dst, '[')
	for i, e := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSON(dst, e)
	}
	return append(dst, ']')
}

// printableText is io_lib:printable_unicode_list: a non-empty list of
// characters that Erlang's ~tp prints as a string.
func printableText(l List) (string, bool) {
	if len(l) == 0 {
		return "", false
	}
	rs := make([]rune, len(l))
	for i, e := range l {
		n, ok := Int(e)
		if !ok {
			return "", false
		}
		switch {
		case n >= 32 && n <= 126, n >= 160 && n < 0xD800, n > 0xDFFF && n < 0xFFFE, n > 0xFFFF && n <= 0x10FFFF:
		case n == '\n', n == '\r', n == '\t', n == '\v', n == '\b', n == '\f', n == 27:
		default:
			return "", false
		}
		rs[i] = rune(n)
	}
	return string(rs), true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s (valid UTF-8) as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, `\"`...)
		case '\\':
			dst = append(dst, `\\`...)
		case '\n':
			dst = append(dst, `\n`...)
		case '\r':
			dst = append(dst, `\r`...)
		case '\t':
			dst = append(dst, `\t`...)
		default:
			dst = append(dst, `\u00`...)
			dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
