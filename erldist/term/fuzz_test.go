package term_test

import (
	"compress/zlib"
	"io"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

func zlibWriter(w io.Writer) *zlib.Writer { return zlib.NewWriter(w) }

// FuzzDecode: any input either fails with an error or decodes to a term that
// encodes and decodes back to an equal term. Never a panic or a hang.
func FuzzDecode(f *testing.F) {
	f.Add(funAndBinaryKeyMap)
	for _, t := range []term.Term{
		term.Tuple{term.Atom("rex"), term.Charlist("25")},
		term.List{term.Binary("x"), 1.5, int64(-7), int64(1) << 50},
		term.ImproperList{Elems: []term.Term{term.Atom("alias")}, Tail: term.Ref{Node: "n@h", Creation: 5, ID: []uint32{1, 2, 3}}},
		term.Map{{Key: term.Tuple{term.Atom("a")}, Value: term.Pid{Node: "n@h", ID: 1, Creation: 4}}},
		term.Export{Module: "erlang", Function: "node", Arity: 0},
		term.BitBinary{Bytes: []byte{0xE0}, Bits: 3},
		term.Port{Node: "n@h", ID: 1 << 40, Creation: 4},
	} {
		b, err := term.Encode(t)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{131, 80, 0, 0, 0, 2, 120, 156, 75, 100, 0, 0, 0, 203, 0, 98})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, n, err := term.DecodePrefix(b)
		if err != nil {
			return
		}
		if n2, err := term.Len(b); err != nil || n2 != n {
			t.Fatalf("Len = %d, %v; DecodePrefix used %d", n2, err, n)
		}
		enc, err := term.Encode(got)
		if err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", got, err)
		}
		back, err := term.Decode(enc)
		if err != nil {
			t.Fatalf("cannot decode our own encoding of %#v: %v", got, err)
		}
		if !term.Equal(got, back) {
			t.Fatalf("round trip changed %#v into %#v", got, back)
		}
		_ = term.Format(got)
	})
}
