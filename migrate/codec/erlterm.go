package codec

import "github.com/mimmigrate/mimmigrate/erldist/term"

// AppendErlangText appends t as ejabberd writes an Erlang term into an SQL
// text column (misc:term_to_expr: io_lib:print(T, 1, 999999, -1), on one
// line, latin-1), which ejabberd reads back with erl_scan and
// erl_parse:parse_term. UTF-8 inside binaries stays as raw bytes, as
// ejabberd stores it.
func AppendErlangText(dst []byte, t term.Term) []byte {
	for _, r := range term.PrettyWidth(t, 999999) {
		dst = append(dst, byte(r)) // Pretty's characters are all below 256
	}
	return dst
}
