package term_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// latin1 turns Pretty's runes (all ≤ 255 by construction) into the bytes a
// latin-1 file holds.
func latin1(s string) []byte {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		b = append(b, byte(r))
	}
	return b
}

// TestPrettyMatchesErlang prints hand-picked and random terms and compares
// each, byte for byte, with io_lib:format("~p") from the real OTP.
func TestPrettyMatchesErlang(t *testing.T) {
	count := "1500"
	if testing.Short() {
		count = "200"
	}
	rows := prettyRows(t, count)
	bad := 0
	for i, r := range rows {
		row := r.(term.Tuple)
		want := string(row[1].(term.Binary))
		got := string(latin1(term.Pretty(row[0])))
		if got != want {
			bad++
			if bad <= 5 {
				t.Errorf("row %d: Pretty differs from ~p\n--- erlang\n%s\n--- ours\n%s\n--- first difference at byte %d", i, want, got, firstDiff(got, want))
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d terms print differently", bad, len(rows))
	}
}

// prettyRows runs the oracle: {Term, ~p text} for the fixed terms and count
// random ones.
func prettyRows(t *testing.T, count string) term.List {
	t.Helper()
	escript := testenv.Escript(t)
	out := filepath.Join(t.TempDir(), "pretty.etf")
	if b, err := exec.Command(escript, filepath.Join("testdata", "pretty.escript"), "20261122", count, out).CombinedOutput(); err != nil {
		t.Fatalf("pretty.escript: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := term.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return rows.(term.List)
}

func firstDiff(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func TestErlangFloat(t *testing.T) {
	for f, want := range map[float64]string{
		0.1: "0.1", 100.0: "100.0", 1e22: "1.0e22", 123456.0: "123456.0",
		1e-5: "1.0e-5", 0.001: "0.001", -2.5e-10: "-2.5e-10", 1e15: "1.0e15",
	} {
		if got := term.ErlangFloat(f); got != want {
			t.Errorf("ErlangFloat(%v) = %s, want %s", f, got, want)
		}
	}
}
