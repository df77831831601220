package term_test

import (
	"encoding/json"
	"math/big"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

func TestAppendJSON(t *testing.T) {
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	for _, c := range []struct {
		t    term.Term
		want string
	}{
		{int64(42), `42`},
		{int64(1) << 53, `{"int":"9007199254740992"}`},
		{huge, `{"int":"123456789012345678901234567890"}`},
		{3.14, `{"float":3.14}`},
		{1e22, `{"float":1.0e22}`},
		{term.True, `true`},
		{term.Undefined, `null`},
		{term.Atom("chat"), `{"atom":"chat"}`},
		{term.Binary("héllo \"q\"\n\x00"), `"héllo \"q\"\n\u0000"`},
		{term.Binary{0xff, 0}, `{"binary":"/wA="}`},
		{term.BitBinary{Bytes: []byte{0xE0}, Bits: 3}, `{"bitstring":"4A==","bits":3}`},
		{term.Charlist("abc"), `{"string":"abc"}`},
		{term.List{int64(1092), int64(1091)}, `{"string":"фу"}`},
		{term.List{int64(1), int64(2)}, `[1,2]`},
		{term.List{}, `[]`},
		{term.ImproperList{Elems: []term.Term{term.Atom("a")}, Tail: term.Atom("b")}, `{"improper":[{"atom":"a"}],"tail":{"atom":"b"}}`},
		{term.Tuple{term.Binary("u"), term.Binary("h")}, `{"tuple":["u","h"]}`},
		{term.Map{{Key: term.Atom("k"), Value: int64(1)}}, `{"map":[[{"atom":"k"},1]]}`},
		{term.Pid{Node: "n@h", ID: 42, Serial: 1}, `{"pid":{"node":"n@h","id":42,"serial":1}}`},
		{term.Ref{Node: "n@h", ID: []uint32{1, 2, 3}}, `{"ref":{"node":"n@h","id":[1,2,3]}}`},
		{term.Export{Module: "m", Function: "f", Arity: 1}, `{"fun":"fun m:f/1"}`},
	} {
		got := string(term.AppendJSON(nil, c.t))
		if got != c.want {
			t.Errorf("%s: %s, want %s", term.Format(c.t), got, c.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%s: invalid JSON %s", term.Format(c.t), got)
		}
	}
}

// Every term of the ~p oracle's corpus gives valid JSON.
func TestAppendJSONValid(t *testing.T) {
	for _, r := range prettyRows(t, "200") {
		v := r.(term.Tuple)[0]
		if b := term.AppendJSON(nil, v); !json.Valid(b) {
			t.Errorf("%s: invalid JSON %s", term.Format(v), b)
		}
	}
}
