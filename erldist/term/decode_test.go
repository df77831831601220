package term_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	erlang "github.com/okeuday/erlang_go/v2/erlang"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Captured from OTP 25.2.3: term_to_binary({fun(X)->X end, #{<<"k">> => 1}}).
var funAndBinaryKeyMap = []byte{131, 104, 2, 112, 0, 0, 0, 160, 1, 6, 83, 97, 170, 70, 21, 144, 209, 189, 241, 235, 98, 209, 166,
	235, 8, 0, 0, 0, 42, 0, 0, 0, 1, 100, 0, 8, 101, 114, 108, 95, 101, 118, 97, 108, 97, 42, 98, 0, 50,
	155, 13, 88, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110, 111, 104, 111, 115, 116, 0, 0, 0,
	9, 0, 0, 0, 0, 0, 0, 0, 0, 104, 6, 97, 1, 106, 100, 0, 4, 110, 111, 110, 101, 100, 0, 4, 110, 111, 110,
	101, 116, 0, 0, 0, 0, 108, 0, 0, 0, 1, 104, 5, 100, 0, 6, 99, 108, 97, 117, 115, 101, 97, 1, 108, 0, 0,
	0, 1, 104, 3, 100, 0, 3, 118, 97, 114, 97, 1, 100, 0, 1, 88, 106, 106, 108, 0, 0, 0, 1, 104, 3, 100, 0,
	3, 118, 97, 114, 97, 1, 100, 0, 1, 88, 106, 106, 116, 0, 0, 0, 1, 109, 0, 0, 0, 1, 107, 97, 1}

// The defects the layer exists to cover: erlang_go alone fails on these.
func TestErlangGoDefectsAreCovered(t *testing.T) {
	if _, err := erlang.BinaryToTerm(funAndBinaryKeyMap); err == nil {
		t.Fatal("erlang_go decoded a NEW_FUN_EXT + binary-keyed map; the workaround may be obsolete")
	}
	got, err := term.Decode(funAndBinaryKeyMap)
	if err != nil {
		t.Fatal(err)
	}
	tu := got.(term.Tuple)
	fun, ok := tu[0].(term.Fun)
	if !ok || fun.Raw[0] != 112 || len(fun.Raw) != 1+160 {
		t.Errorf("fun: got %#v", tu[0])
	}
	m, ok := tu[1].(term.Map)
	if !ok || len(m) != 1 || !term.Equal(m[0].Key, term.Binary("k")) || !term.Equal(m[0].Value, int64(1)) {
		t.Errorf("map: got %#v", tu[1])
	}
	// Re-encoding gives the same bytes back (the fun is kept verbatim).
	enc, err := term.Encode(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, funAndBinaryKeyMap) {
		t.Errorf("re-encoding differs:\n got %v\nwant %v", enc, funAndBinaryKeyMap)
	}

	// A bignum's sign byte is negative when it is not 0 (binary_to_term of
	// <<131,110,1,2,5>> is -5); erlang_go reads only 1 as negative.
	for _, b := range [][]byte{{131, 110, 1, 2, 5}, {131, 104, 1, 110, 1, 2, 5}} {
		v, err := term.Decode(b)
		if err != nil || !term.Equal(v, int64(-5)) && !term.Equal(v, term.Tuple{int64(-5)}) {
			t.Errorf("Decode(%v) = %#v, %v; want -5", b, v, err)
		}
	}

	// erlang_go turns true/false/undefined into Go values; the layer gives atoms back.
	got, err = term.Decode([]byte{131, 104, 3, 119, 4, 't', 'r', 'u', 'e', 119, 5, 'f', 'a', 'l', 's', 'e', 119, 9, 'u', 'n', 'd', 'e', 'f', 'i', 'n', 'e', 'd'})
	if err != nil || !term.Equal(got, term.Tuple{term.True, term.False, term.Undefined}) {
		t.Errorf("true/false/undefined: got %#v, %v", got, err)
	}
	// A pid whose node name is a 255-byte small atom: erlang_go's uint8 size
	// arithmetic overflows and it returns an empty node name.
	long := term.Atom(strings.Repeat("n", 250) + "@host")
	pid := term.Pid{Node: long, ID: 7, Serial: 1, Creation: 4}
	enc, err = term.Encode(pid)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := erlang.BinaryToTerm(enc); err == nil && len(v.(erlang.OtpErlangPid).Node) == 256 {
		t.Log("erlang_go now decodes 255-byte node names; the widening may be obsolete")
	}
	if got, err := term.Decode(enc); err != nil || !term.Equal(got, pid) {
		t.Errorf("255-byte node name: got %#v, %v", got, err)
	}

	// ATOM_CACHE_REF is 82, not erlang_go's 78; neither may appear outside a dist header.
	for _, b := range [][]byte{{131, 82, 0}, {131, 78, 0}} {
		if _, err := term.Decode(b); err == nil {
			t.Errorf("%v: accepted an atom cache reference", b)
		}
	}
}

func TestLenSplitsConcatenatedTerms(t *testing.T) {
	a, _ := term.Encode(term.Tuple{term.Atom("rex"), term.Charlist("25")})
	b, _ := term.Encode(term.Map{{Key: term.Binary("k"), Value: term.List{int64(1), int64(2)}}})
	buf := append(append([]byte{}, a...), b...)
	n, err := term.Len(buf)
	if err != nil || n != len(a) {
		t.Fatalf("Len = %d, %v; want %d", n, err, len(a))
	}
	second, m, err := term.DecodePrefix(buf[n:])
	if err != nil || m != len(b) {
		t.Fatalf("DecodePrefix = %d, %v", m, err)
	}
	if _, ok := second.(term.Map); !ok {
		t.Errorf("second term: %#v", second)
	}
	if _, err := term.Decode(buf); err == nil {
		t.Error("Decode accepted two terms")
	}
}

// Every proper prefix of a valid term is an error, never a panic or a
// wrong value: erlang_go on its own silently accepts short binaries.
func TestTruncatedInputIsAnError(t *testing.T) {
	full, err := term.Encode(term.Tuple{
		term.Atom("passwd"), term.Tuple{term.Binary("alice"), term.Binary("example.com")},
		term.Tuple{term.Atom("scram"), term.Binary("c3Q="), term.Binary("c2s="), term.Binary("c2FsdA=="), term.Atom("sha"), int64(4096)},
		term.Map{{Key: term.Binary("k"), Value: 1.5}}, term.Pid{Node: "a@b", ID: 1, Serial: 2, Creation: 3},
		term.Ref{Node: "a@b", Creation: 9, ID: []uint32{1, 2, 3}}, int64(1) << 40, term.Charlist("abc"),
		term.ImproperList{Elems: []term.Term{term.Atom("alias")}, Tail: term.Atom("x")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(full); i++ {
		if _, err := term.Decode(full[:i]); err == nil {
			t.Errorf("prefix of %d/%d bytes decoded without error", i, len(full))
		}
		var de *term.DecodeError
		if _, err := term.Len(full[:i]); !errors.As(err, &de) {
			t.Errorf("prefix of %d bytes: Len error %v is not a DecodeError", i, err)
		}
	}
	if _, err := term.Decode(full); err != nil {
		t.Fatal(err)
	}
}

func TestHostileLengths(t *testing.T) {
	cases := map[string][]byte{
		"binary of 4 GiB":      {131, 109, 255, 255, 255, 255, 0},
		"list of 4G elements":  {131, 108, 255, 255, 255, 255, 106},
		"tuple of 4G elements": {131, 105, 255, 255, 255, 255, 97, 1},
		"map of 4G pairs":      {131, 116, 255, 255, 255, 255},
		"big of 4 GiB":         {131, 111, 255, 255, 255, 255, 0, 1},
		"compressed 4 GiB":     {131, 80, 255, 255, 255, 255, 120, 156},
		"compressed liar":      append([]byte{131, 80, 0, 0, 0, 100}, zlibOf([]byte{97, 1})...),
		"ref of 65535 words":   {131, 90, 255, 255, 119, 1, 'a', 0, 0, 0, 0},
		"fun of 5 bytes":       {131, 112, 0, 0, 0, 5, 0},
		"bitstring bits 0":     {131, 77, 0, 0, 0, 1, 0, 0},
		"local ext":            {131, 121, 0},
		"unknown tag":          {131, 1},
		"no version":           {104, 0},
		"empty":                {},
	}
	for name, b := range cases {
		if _, err := term.Decode(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	deep := []byte{131}
	for i := 0; i <= term.MaxDepth+1; i++ {
		deep = append(deep, 104, 1)
	}
	deep = append(deep, 106)
	if _, err := term.Decode(deep); err == nil {
		t.Error("nesting beyond MaxDepth accepted")
	}
}

func TestEncodeLegacyForms(t *testing.T) {
	pid := term.Pid{Node: "ejabberd@vm-jabber0", ID: 5, Serial: 0, Creation: 2}
	b, err := term.Append(nil, term.Tuple{term.Atom("é"), pid}, term.EncodeOptions{Legacy: true})
	if err != nil {
		t.Fatal(err)
	}
	// SMALL_TUPLE, SMALL_ATOM_EXT (latin-1), PID_EXT with one creation byte.
	if b[1] != 104 || b[3] != 115 || b[4] != 1 || b[5] != 0xE9 || b[6] != 103 || b[len(b)-1] != 2 {
		t.Errorf("legacy encoding: %v", b)
	}
	back, err := term.Decode(b)
	if err != nil || !term.Equal(back, term.Tuple{term.Atom("é"), pid}) {
		t.Errorf("legacy round trip: %#v, %v", back, err)
	}
	if _, err := term.Append(nil, term.Atom("фу"), term.EncodeOptions{Legacy: true}); err == nil {
		t.Error("non-latin-1 atom encoded for a legacy node")
	}
	if _, err := term.Append(nil, term.Map{}, term.EncodeOptions{Legacy: true}); err == nil {
		t.Error("map encoded for a legacy node")
	}
	for _, bad := range []term.Term{nil, "go string", []any{1}, struct{}{}} {
		if _, err := term.Encode(bad); err == nil {
			t.Errorf("Encode(%#v) accepted a non-term", bad)
		}
	}
}

func zlibOf(b []byte) []byte {
	var buf bytes.Buffer
	w := zlibWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// Equal terms in different encodings have one canonical form.
func TestCanonicalForms(t *testing.T) {
	same := [][][]byte{
		{{131, 100, 0, 3, 'f', 'o', 'o'}, {131, 115, 3, 'f', 'o', 'o'}, {131, 118, 0, 3, 'f', 'o', 'o'}, {131, 119, 3, 'f', 'o', 'o'}},
		{{131, 115, 1, 0xE9}, {131, 119, 2, 0xC3, 0xA9}},                                      // 'é' latin-1 and UTF-8
		{{131, 107, 0, 2, 1, 2}, {131, 108, 0, 0, 0, 2, 97, 1, 97, 2, 106}},                   // "\1\2" and [1,2]
		{{131, 97, 5}, {131, 98, 0, 0, 0, 5}, {131, 110, 1, 0, 5}, {131, 110, 3, 0, 5, 0, 0}}, // 5 four ways
		{{131, 104, 2, 107, 0, 1, 'a', 100, 0, 1, 'b'}, {131, 104, 2, 108, 0, 0, 0, 1, 97, 'a', 106, 119, 1, 'b'}},
	}
	for i, group := range same {
		var first string
		for j, b := range group {
			c, err := term.CanonicalBody(b[1:])
			if err != nil {
				t.Fatalf("group %d form %d: %v", i, j, err)
			}
			v, err := term.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			viaTerm, err := term.CanonicalKey(v)
			if err != nil || viaTerm != c {
				t.Errorf("group %d form %d: canonical from bytes and from the term differ", i, j)
			}
			if j == 0 {
				first = c
			} else if c != first {
				t.Errorf("group %d: form %d has another canonical form", i, j)
			}
		}
	}
	a, _ := term.CanonicalKey(int64(1))
	b, _ := term.CanonicalKey(1.0)
	if a == b {
		t.Error("1 and 1.0 share a canonical form (they are not =:=)")
	}
}
