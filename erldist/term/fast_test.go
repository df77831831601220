package term

import (
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzFastDecode holds the direct decoder to the general one (erlang_go and
// normalise): for every input the walker accepts, either the direct path
// gives up or it returns exactly what the general path returns, Go types and
// all.
func FuzzFastDecode(f *testing.F) {
	for _, t := range []Term{
		Tuple{Atom("passwd"), Tuple{Binary("üser"), Binary("example.com")}, Binary(""), int64(-1), int64(1) << 40},
		Tuple{Atom("roster"), List{}, Charlist("abc"), List{int64(1), int64(300)}, Atom("none"), Atom("true")},
		Tuple{Atom("xmlel"), Binary("message"), List{Tuple{Binary("to"), Binary("a@b")}}, List{Tuple{Atom("xmlcdata"), Binary("hi")}}},
		List{1.5, -2.25, Tuple{}, List{Atom("a")}, Atom("undefined"), Atom("false")},
		ImproperList{Elems: []Term{Atom("a"), int64(255)}, Tail: Binary("t")},
		List{new(big.Int).Lsh(big.NewInt(1), 70), int64(-1) << 62, int64(1) << 31},
		Tuple{Atom("ok"), Pid{Node: "n@h", ID: 1, Creation: 4}},
	} {
		b, err := Encode(t)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// latin-1 atoms, a string tail, a list tail, an empty LIST_EXT
	f.Add([]byte{131, 104, 2, 100, 0, 2, 'a', 0xE9, 115, 1, 0xFF})
	f.Add([]byte{131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 2, 'h', 'i'})
	f.Add([]byte{131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 106})
	f.Add([]byte{131, 108, 0, 0, 0, 0, 106})
	f.Add([]byte{131, 108, 0, 0, 0, 0, 109, 0, 0, 0, 0})
	if files, _ := filepath.Glob("testdata/fuzz/FuzzDecode/*"); len(files) > 0 {
		for _, name := range files {
			if b, ok := corpusBytes(name); ok {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 || b[0] != tagVersion || b[1] == tagCompressed {
			return
		}
		w := walker{b: b}
		end, err := w.term(1, 0)
		if err != nil || end != len(b) || w.special {
			return
		}
		fast, fend, ok := fastDecode(b, 1)
		general, gerr := decodeGeneral(b, false)
		if !ok {
			return
		}
		if fend != len(b) {
			t.Fatalf("direct decoder ended at %d of %d", fend, len(b))
		}
		if gerr != nil {
			t.Fatalf("direct decoder accepted %x, general refused it: %v", b, gerr)
		}
		if !reflect.DeepEqual(fast, general) {
			t.Fatalf("%x:\n direct  %#v\n general %#v", b, fast, general)
		}
	})
}

// corpusBytes reads a Go fuzz corpus file holding one []byte.
func corpusBytes(name string) ([]byte, bool) {
	text, err := os.ReadFile(name)
	if err != nil {
		return nil, false
	}
	for _, line := range strings.Split(string(text), "\n") {
		if rest, ok := strings.CutPrefix(line, "[]byte("); ok {
			s, err := strconv.Unquote(strings.TrimSuffix(rest, ")"))
			if err == nil {
				return []byte(s), true
			}
		}
	}
	return nil, false
}
