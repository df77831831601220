package term_test

import (
	"bytes"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

func readAll(t *testing.T, r io.Reader, opt term.TextOptions) []term.Term {
	t.Helper()
	tr := term.NewTextReader(r, opt)
	var out []term.Term
	for {
		v, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, v)
	}
}

// TestParseMatchesConsult reads a file of varied literal syntax and compares
// every term with what file:consult makes of the same file.
func TestParseMatchesConsult(t *testing.T) {
	src := filepath.Join("testdata", "syntax.txt")
	out := filepath.Join(t.TempDir(), "consult.etf")
	runEscript(t, "consult", src, out)
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := term.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The file's coding comment switches the reader to UTF-8, as for consult.
	got := readAll(t, f, term.TextOptions{})
	wl := want.(term.List)
	if len(got) != len(wl) {
		t.Fatalf("read %d terms, file:consult read %d", len(got), len(wl))
	}
	for i := range wl {
		if !term.Equal(got[i], wl[i]) {
			t.Errorf("term %d: got %s, Erlang %s", i+1, term.Format(got[i]), term.Format(wl[i]))
		}
	}
}

// TestParseReadsPretty reads back everything Pretty's oracle printed (~p,
// latin-1, as dump files hold it) and requires the original values.
func TestParseReadsPretty(t *testing.T) {
	rows := prettyRows(t, "300")
	var text bytes.Buffer
	var originals []term.Term
	for _, r := range rows {
		row := r.(term.Tuple)
		if hasLocalFun(row[0]) {
			continue
		}
		originals = append(originals, row[0])
		text.Write(row[1].(term.Binary))
		text.WriteString(".\n")
	}
	got := readAll(t, &text, term.TextOptions{})
	if len(got) != len(originals) {
		t.Fatalf("read %d terms, wrote %d", len(got), len(originals))
	}
	for i := range got {
		if !term.Equal(got[i], originals[i]) {
			t.Errorf("term %d: read %s, wrote %s", i, term.Format(got[i]), term.Format(originals[i]))
		}
	}
}

func hasLocalFun(t term.Term) bool {
	switch v := t.(type) {
	case term.Fun:
		return true
	case term.Tuple:
		for _, e := range v {
			if hasLocalFun(e) {
				return true
			}
		}
	case term.List:
		for _, e := range v {
			if hasLocalFun(e) {
				return true
			}
		}
	}
	return false
}

func TestParseValues(t *testing.T) {
	for src, want := range map[string]term.Term{
		"<0.42.7>":             term.Pid{Node: "nonode@nohost", ID: 42, Serial: 7},
		"#Ref<0.1.2.3>":        term.Ref{Node: "nonode@nohost", ID: []uint32{3, 2, 1}},
		"#Port<0.5>":           term.Port{Node: "nonode@nohost", ID: 5},
		"<<\"é\">>":            term.Binary{0xE9}, // the character é, as one byte, as in Erlang
		"[a|[b|[c|d]]]":        term.ImproperList{Elems: []term.Term{term.Atom("a"), term.Atom("b"), term.Atom("c")}, Tail: term.Atom("d")},
		"99999999999999999999": func() term.Term { b, _ := new(big.Int).SetString("99999999999999999999", 10); return b }(),
		"{a, 1}.":              term.Tuple{term.Atom("a"), int64(1)},
	} {
		got, err := term.ParseText(src)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if !term.Equal(got, want) {
			t.Errorf("%s: got %s, want %s", src, term.Format(got), term.Format(want))
		}
	}
}

// TestParseLatin1 checks that a latin-1 file's bytes are characters: the
// UTF-8 bytes of "é" inside a binary stay those two bytes, as
// mnesia:load_textfile reads them.
func TestParseLatin1(t *testing.T) {
	got := readAll(t, strings.NewReader("{t,<<\"caf\xc3\xa9\">>,\"\xe9t\xe9\",'\xe9t\xe9'}.\n"), term.TextOptions{})
	want := term.Tuple{term.Atom("t"), term.Binary("caf\xc3\xa9"), term.Charlist("\xe9t\xe9"), term.Atom("été")}
	if len(got) != 1 || !term.Equal(got[0], want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	for src, want := range map[string]string{
		"{a,b":                   "line 1, column 5: unexpected end of file",
		"{a b}":                  "expected ',' or '}'",
		"X":                      "variable X",
		"#Fun<erl_eval.1.2>":     "lost its code",
		"#rec{a=1}":              "record syntax",
		"\"abc":                  "unexpected end of file",
		"<<1.5:8/float>>":        "32 or 64",
		"<<\"x\"/latin9>>":       "unknown binary type",
		"1 2":                    "unexpected text",
		"'\\x{110000}'":          "bad \\x{...} escape",
		"<<-1/utf8>>":            "bad utf8",
		"case":                   "reserved word",
		"#{a => }":               "unexpected '}'",
		"[1|2|3]":                "expected ']'",
		"<0.1>":                  "a pid is",
		"<<1:2/binary>>":         "binary segment needs a binary",
		"{a,<<\"x\":2/binary>>}": "binary segment needs a binary",
	} {
		_, err := term.ParseText(src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", src, err, want)
		}
	}
}

// TestParseResync: a bad term is reported with its line and skipped; the
// terms after it are read.
func TestParseResync(t *testing.T) {
	text := "{a,1}.\n{b,#Fun<m.1.2>,\n  [x,y]}.\n{c,3}.\n{d,\"unterminated}.\n{e,5}.\n"
	tr := term.NewTextReader(strings.NewReader(text), term.TextOptions{})
	var got []string
	var errs []string
	for {
		v, err := tr.Next()
		if err == io.EOF {
			break
		}
		var te *term.TextError
		if errors.As(err, &te) {
			errs = append(errs, te.Error())
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, term.Format(v))
	}
	if strings.Join(got, " ") != "{a,1} {c,3}" {
		t.Errorf("terms read: %v", got)
	}
	// The unterminated string runs to the end of the file.
	if len(errs) != 2 || !strings.HasPrefix(errs[0], "line 2,") {
		t.Errorf("errors: %q", errs)
	}
}

func TestParseTooLong(t *testing.T) {
	text := "{a,\"" + strings.Repeat("x", 5000) + "\"}.\n{b}.\n"
	tr := term.NewTextReader(strings.NewReader(text), term.TextOptions{MaxTermBytes: 1000})
	_, err := tr.Next()
	if err == nil || !strings.Contains(err.Error(), "longer than 1000 bytes") {
		t.Fatalf("error %v", err)
	}
	v, err := tr.Next()
	if err != nil || !term.Equal(v, term.Tuple{term.Atom("b")}) {
		t.Fatalf("after the long term: %v, %v", v, err)
	}
}

func TestParseDeep(t *testing.T) {
	s := strings.Repeat("[", 200000) + strings.Repeat("]", 200000)
	if _, err := term.ParseText(s); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("error %v", err)
	}
	s = strings.Repeat("{", 5000) + strings.Repeat("}", 5000)
	if _, err := term.ParseText(s); err != nil {
		t.Fatal(err)
	}
}
