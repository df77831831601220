package codec

import (
	"bytes"
	"encoding/binary"
	"math/big"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

const ejabberdEbin = "/usr/lib/x86_64-linux-gnu/ejabberd-23.01-1/ebin"

func randomTerm(r *rand.Rand, depth int) term.Term {
	atoms := []term.Atom{"title", "affiliations", "owner", "none", "true", "false", "undefined", "Quoted Atom", "with'quote", "é", "a@b", "subject_author", "[]"}
	n := 9
	if depth > 3 {
		n = 5
	}
	switch r.Intn(n) {
	case 0:
		return atoms[r.Intn(len(atoms))]
	case 1:
		return int64(r.Intn(2000) - 1000)
	case 2:
		v := new(big.Int).Lsh(big.NewInt(int64(r.Intn(1000)+1)), uint(64+r.Intn(40)))
		if r.Intn(2) == 0 {
			v.Neg(v)
		}
		return v
	case 3:
		return term.Binary(randomText(r, 8))
	case 4:
		return term.Binary([]byte{0, 1, 0xff, '"', '\\', 0x7f, 0xc3})[:r.Intn(8)]
	case 5:
		return term.Charlist("Room name")
	case 6:
		var l term.List
		for range r.Intn(4) {
			l = append(l, randomTerm(r, depth+1))
		}
		return l
	case 7:
		tu := term.Tuple{atoms[r.Intn(len(atoms))]}
		for range r.Intn(4) {
			tu = append(tu, randomTerm(r, depth+1))
		}
		return tu
	default:
		return term.Tuple{term.Atom("jid"), term.Binary("bob"), term.Binary("example.org"), term.Binary("res"),
			term.Binary("bob"), term.Binary("example.org"), term.Binary("res")}
	}
}

// Our Erlang text for SQL columns equals ejabberd 23.01's own
// misc:term_to_expr/1 byte for byte, and ejabberd's misc:expr_to_term/1
// reads it back as the same term: checked with ejabberd's code on random
// room-option-like terms.
func TestErlangTextMatchesEjabberd(t *testing.T) {
	escript := testenv.Escript(t)
	if _, err := os.Stat(filepath.Join(ejabberdEbin, "misc.beam")); err != nil {
		t.Skipf("ejabberd 23.01 is not installed (apt-get install ejabberd): %v", err)
	}
	r := rand.New(rand.NewSource(2))
	var terms term.List
	var ours []byte
	for range 2000 {
		v := term.Term(term.List{term.Tuple{term.Atom("title"), randomTerm(r, 0)}, randomTerm(r, 0)})
		terms = append(terms, v)
		text := AppendErlangText(nil, v)
		ours = binary.BigEndian.AppendUint32(ours, uint32(len(text)))
		ours = append(ours, text...)
	}
	dir := t.TempDir()
	in, oursFile, out := filepath.Join(dir, "in.etf"), filepath.Join(dir, "ours.bin"), filepath.Join(dir, "out.bin")
	enc, err := term.Encode(terms)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(in, enc, 0o644)
	os.WriteFile(oursFile, ours, 0o644)
	if b, err := exec.Command(escript, "testdata/term_to_expr.escript", ejabberdEbin, in, oursFile, out).CombinedOutput(); err != nil {
		t.Fatalf("term_to_expr.escript: %v\n%s", err, b)
	}
	want, _ := os.ReadFile(out)
	for i, v := range terms {
		n := binary.BigEndian.Uint32(want)
		exp, back := want[4:4+n], want[4+n]
		want = want[5+n:]
		got := AppendErlangText(nil, v)
		if !bytes.Equal(got, exp) {
			t.Fatalf("term %d:\nours:     %q\nejabberd: %q", i, got, exp)
		}
		if back != 1 {
			t.Fatalf("term %d: ejabberd does not read our text back: %q", i, got)
		}
	}
}
