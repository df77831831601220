package term_test

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"errors"
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
		if j := term.AppendJSON(nil, got); !json.Valid(j) {
			t.Fatalf("%s: invalid JSON %s", term.Format(got), j)
		}
		// What Pretty prints (as a dump would hold it) reads back the same.
		if !hasIdentity(got) && !hasLocalFun(got) && depth(got) <= 100 {
			text := append(latin1(term.Pretty(got)), ".\n"...)
			w, err := term.NewTextReader(bytes.NewReader(text), term.TextOptions{}).Next()
			if err != nil || !term.Equal(got, w) {
				t.Fatalf("%s printed as %q reads back as %v, %v", term.Format(got), text, w, err)
			}
		}
	})
}

// FuzzTextReader: any text either fails with a *TextError (and the reader
// goes on) or gives terms that Pretty prints back to text read as the same
// terms. Never a panic or a hang.
func FuzzTextReader(f *testing.F) {
	for _, s := range []string{
		"{a,1}.\n", "[1,2|3].", "<<\"x\"/utf8, 1:3>>.", "#{a => <<>>}.", "'q\\x{263A}'.",
		"16#ff. $\\^A. -1.5e-3.", "{passwd,{<<\"u\">>,<<\"h\">>},<<\"p\">>}.\n{x}.\n",
		"<0.1.2>. #Ref<0.1.2.3>.", "\"a\" \"b\". % c\n", "{bad.\n{good}.\n", "fun m:f/1.",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(textReaderProperty)
}

func textReaderProperty(t *testing.T, b []byte) {
	tr := term.NewTextReader(bytes.NewReader(b), term.TextOptions{MaxTermBytes: 1 << 16})
	for i := 0; i < 1000; i++ {
		v, err := tr.Next()
		if err == io.EOF {
			return
		}
		var te *term.TextError
		if errors.As(err, &te) {
			continue
		}
		if err != nil {
			t.Fatalf("non-syntax error: %v", err)
		}
		// Pretty indents each level: deep terms print quadratically large.
		if hasIdentity(v) || depth(v) > 100 {
			continue
		}
		text := latin1(term.Pretty(v))
		back := term.NewTextReader(bytes.NewReader(append(text, ".\n"...)), term.TextOptions{})
		w, err := back.Next()
		if err != nil || !term.Equal(v, w) {
			t.Fatalf("%s printed as %q reads back as %v, %v", term.Format(v), text, w, err)
		}
	}
}

// hasIdentity: pids, refs and ports print without their node.
func hasIdentity(t term.Term) bool {
	switch v := t.(type) {
	case term.Pid, term.Ref, term.Port:
		return true
	case term.Tuple:
		return anyIdentity(v)
	case term.List:
		return anyIdentity(v)
	case term.ImproperList:
		return anyIdentity(v.Elems) || hasIdentity(v.Tail)
	case term.Map:
		for _, p := range v {
			if hasIdentity(p.Key) || hasIdentity(p.Value) {
				return true
			}
		}
	}
	return false
}

func anyIdentity(ts []term.Term) bool {
	for _, e := range ts {
		if hasIdentity(e) {
			return true
		}
	}
	return false
}

func depth(t term.Term) int {
	var elems []term.Term
	switch v := t.(type) {
	case term.Tuple:
		elems = v
	case term.List:
		elems = v
	case term.ImproperList:
		elems = append(append(elems, v.Elems...), v.Tail)
	case term.Map:
		for _, p := range v {
			elems = append(elems, p.Key, p.Value)
		}
	default:
		return 0
	}
	d := 0
	for _, e := range elems {
		d = max(d, depth(e))
	}
	return d + 1
}
