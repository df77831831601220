package jid

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// corpus is every kind of string a JID part meets: ASCII with each
// special character, case, spaces and controls; Latin, Greek, Cyrillic
// and German case folding (ß, ǰ), compatibility forms NFKC folds (ﬀ, ①,
// full-width), right-to-left scripts (valid and broken bidi), unassigned
// and prohibited code points, and over-long parts; plus random mixes.
func corpus() []string {
	out := []string{
		"", "a", "User", "ALICE", "user.name", "user_1-2", "a b", "a\tb", "a\x00b", "a\x7fb",
		"\"q\"", "a&b", "a'b", "a/b", "a:b", "a<b", "a>b", "a@b", "a=b", "a+b", "a#b", "a%b", "a~b", "a\\b",
		"Ünïcødé", "straße", "ǰ", "ΣΑΣ", "Привет", "ﬀ", "①", "ＡＢＣ", "ⅷ", "\u00a0x", "x\u200by", "x\u00adz",
		"\u05d0\u05d1", "\u05d0a", "a\u05d0", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u0627a\u0627",
		"\u0221", "\u0378", "\U0001F600", "\ue000", "\ufffd", "\u2000", "\u3000x", "\u2028",
		"localhost", "LocalHost", "example.com", "Example.COM", "bücher.example", "xn--bcher-kva.example",
		"a..b", ".a", "a.", "a b.c", "münchen.DE",
		"User@Example.COM/Res", "user@example.com/Res ource", "a/b@c", "example.com.", "@a", "a@", "a@b/", "a@b@c",
		"a@b/c/d", "a@b/c@d", "ÄB@Ü.DE/Ö", "a\u00a0b@c", "juliet@example.com/balcony", "x@y/\u05d0", "a@b.c/ ",
		strings.Repeat("a", 1023), strings.Repeat("a", 1024), strings.Repeat("ä", 511), strings.Repeat("ä", 512),
		strings.Repeat("ﬀ", 400), "\xff", "a\xc3", "\xed\xa0\x80",
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("aAzZ09.-_ @/&'\":<>ßÄäΣσǰﬀ①\u00a0\u200b\u05d0\u0627\u0221\u2000\U0001F600ÅÉ\u0301\u0300")
	for range 400 {
		n := 1 + r.IntN(12)
		var b strings.Builder
		for range n {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		out = append(out, b.String())
	}
	return out
}

// TestMatchesEjabberd runs every string of the corpus through ejabberd's
// own jid module (the xmpp library's NIFs, as installed with ejabberd) and
// through ours.
func TestMatchesEjabberd(t *testing.T) {
	if why := testenv.EjabberdAvailable(); why != "" {
		t.Skip(why)
	}
	strs := corpus()
	list := make(term.List, len(strs))
	for i, s := range strs {
		list[i] = term.Binary(s)
	}
	b, err := term.Encode(list)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.etf"), filepath.Join(dir, "out.etf")
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.RunEscript(t, filepath.Join("testdata", "oracle.escript"), in, out)
	results := testenv.TermListFile(t, out)
	if len(results) != len(strs) {
		t.Fatalf("%d results for %d strings", len(results), len(strs))
	}
	show := func(v string, err error) string {
		if err != nil {
			return "error"
		}
		return fmt.Sprintf("%q", v)
	}
	erl := func(v term.Term) string {
		if b, ok := v.(term.Binary); ok {
			return fmt.Sprintf("%q", string(b))
		}
		return "error"
	}
	for i, s := range strs {
		r := results[i].(term.Tuple)
		for _, c := range []struct {
			what string
			fn   func(string) (string, error)
		}{{"nodeprep", Nodeprep}, {"nameprep", Nameprep}, {"resourceprep", Resourceprep}} {
			k := map[string]int{"nodeprep": 0, "nameprep": 1, "resourceprep": 2}[c.what]
			if got, want := show(c.fn(s)), erl(r[k]); got != want {
				t.Errorf("%s(%q) = %s, ejabberd %s", c.what, s, got, want)
			}
		}
		want := "error"
		// ejabberd accepts a domain that nameprep maps to nothing (a
		// zero-width space): a JID with an empty domain, which we refuse.
		if tu, ok := r[3].(term.Tuple); ok && erl(tu[1]) != `""` {
			want = fmt.Sprintf("%s|%s|%s", erl(tu[0]), erl(tu[1]), erl(tu[2]))
		}
		got := "error"
		if j, err := Parse(s); err == nil {
			got = fmt.Sprintf("%q|%q|%q", j.Local, j.Domain, j.Resource)
		}
		if got != want {
			t.Errorf("Parse(%q) = %s, ejabberd %s", s, got, want)
		}
	}
}

func TestString(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{"User@Example.COM/Res", "user@example.com/Res"}, {"example.com", "example.com"}, {"a@b", "a@b"}, {"b/r", "b/r"},
	} {
		j, err := Parse(c.in)
		if err != nil || j.String() != c.out {
			t.Errorf("%q: %q %v", c.in, j.String(), err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		if _, err := Parse("Juliet@Example.com/balcony"); err != nil {
			b.Fatal(err)
		}
	}
}
