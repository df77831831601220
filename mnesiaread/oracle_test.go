package mnesiaread_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/mnesiaread"
)

// beamDir holds the compiled test generator (see TestMain).
var beamDir string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "mnesiaread-beam-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		if _, err := exec.LookPath("erlc"); err == nil {
			if out, err := exec.Command("erlc", "-o", dir, filepath.Join("testdata", "mgen.erl")).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "erlc mgen.erl: %v\n%s", err, out)
				return 1
			}
			beamDir = dir
		}
		return m.Run()
	}()
	os.Exit(code)
}

func needErlang(t *testing.T) {
	t.Helper()
	testenv.Erl(t)
	if beamDir == "" {
		t.Skip("erlc is not installed (Debian package erlang-base)")
	}
}

// runErl runs one mgen function on a node named name with Mnesia in dir.
func runErl(t *testing.T, name, dir string, args ...string) {
	t.Helper()
	all := append([]string{"-noshell", "-sname", name, "-pa", beamDir, "-mnesia", "dir", fmt.Sprintf("%q", dir)}, args...)
	cmd := exec.Command("erl", all...)
	cmd.Dir = filepath.Dir(dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("erl %v: %v\n%s", args, err, out)
	}
}

// scenario runs a generator and returns its directory and node name.
func scenario(t *testing.T, fn string) (dir, node string) {
	t.Helper()
	needErlang(t)
	alive := "mgen-" + testenv.RandomID(6)
	dir = filepath.Join(t.TempDir(), "db")
	runErl(t, alive+"@localhost", dir, "-s", "mgen", fn)
	return dir, alive + "@localhost"
}

// copyDir copies a directory (flat, as Mnesia's is).
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// oracle is what Mnesia itself loads from (a copy of) the directory.
func oracle(t *testing.T, dir, node string) map[string][]term.Term {
	t.Helper()
	cp := copyDir(t, dir)
	out := filepath.Join(t.TempDir(), "oracle.etf")
	runErl(t, node, cp, "-run", "mgen", "oracle", out)
	return tablesFile(t, out)
}

// truth is the generator's live view of its tables just before it crashed.
func truth(t *testing.T, dir string) map[string][]term.Term {
	t.Helper()
	return tablesFile(t, filepath.Join(filepath.Dir(dir), "truth.etf"))
}

// tablesFile reads a term_to_binary([{Table, Records}]).
func tablesFile(t *testing.T, path string) map[string][]term.Term {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := term.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := term.Elems(v)
	if !ok {
		t.Fatalf("oracle: %s", term.Format(v))
	}
	res := map[string][]term.Term{}
	for _, e := range l {
		tu := e.(term.Tuple)
		recs, _ := term.Elems(tu[1])
		res[string(tu[0].(term.Atom))] = recs
	}
	return res
}

func ours(t *testing.T, src mnesiaread.Source) map[string][]term.Term {
	t.Helper()
	res := map[string][]term.Term{}
	for _, tab := range src.Tables() {
		if tab.HasData() {
			res[tab.Name] = []term.Term{}
		}
	}
	err := mnesiaread.Decoded(src, nil, func(tab string, r term.Term) error {
		res[tab] = append(res[tab], r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func canon(t *testing.T, recs []term.Term) []string {
	t.Helper()
	out := make([]string, len(recs))
	for i, r := range recs {
		k, err := term.CanonicalKey(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = k
	}
	sort.Strings(out)
	return out
}

// covers checks that got holds every record of want (a superset).
func covers(t *testing.T, got, want map[string][]term.Term) (extra int) {
	t.Helper()
	for tab, w := range want {
		gset := map[string]int{}
		for _, s := range canon(t, got[tab]) {
			gset[s]++
		}
		for _, s := range canon(t, w) {
			if gset[s] == 0 {
				r, _ := term.Decode(append([]byte{131}, []byte(s)...))
				t.Errorf("table %s: Mnesia has %s, we do not", tab, short(term.Format(r)))
			}
			gset[s]--
		}
		extra += len(got[tab]) - len(w)
	}
	return extra
}

// sameTables compares two readings table by table, record by record.
func sameTables(t *testing.T, got, want map[string][]term.Term) {
	t.Helper()
	for tab, w := range want {
		g, ok := got[tab]
		if !ok {
			t.Errorf("table %s: missing (Mnesia has %d records)", tab, len(w))
			continue
		}
		gs, ws := canon(t, g), canon(t, w)
		if strings.Join(gs, "\x00") == strings.Join(ws, "\x00") {
			continue
		}
		t.Errorf("table %s: %d records, Mnesia %d", tab, len(g), len(w))
		wset := map[string]bool{}
		for _, s := range ws {
			wset[s] = true
		}
		gset := map[string]bool{}
		for i, s := range gs {
			gset[s] = true
			if !wset[s] {
				r, _ := term.Decode(append([]byte{131}, []byte(s)...))
				t.Errorf("  extra: %s", short(term.Format(r)))
				_ = i
			}
		}
		for _, s := range ws {
			if !gset[s] {
				r, _ := term.Decode(append([]byte{131}, []byte(s)...))
				t.Errorf("  missing: %s", short(term.Format(r)))
			}
		}
	}
	for tab, g := range got {
		if _, ok := want[tab]; !ok && len(g) > 0 {
			t.Errorf("table %s: %d records Mnesia does not have", tab, len(g))
		}
	}
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// Each scenario's directory, read by us, equals what Mnesia loads from it.
func TestDirectoryMatchesMnesia(t *testing.T) {
	for _, sc := range []string{"ops", "counters", "big", "clean"} {
		t.Run(sc, func(t *testing.T) {
			dir, node := scenario(t, sc)
			before := snapshot(t, dir)
			d, err := mnesiaread.OpenDir(dir, mnesiaread.DirOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Node() != node {
				t.Errorf("node %q, want %q", d.Node(), node)
			}
			got := ours(t, d)
			mnesia := oracle(t, dir, node)
			if sc == "counters" {
				// Mnesia's startup replays a disc_only counter with
				// dets:update_counter, which (unlike the live update) does
				// not stop at zero: {dc, c, -6} where the live node had 0.
				// We do as the startup does.
				sameTables(t, got, mnesia)
			} else {
				sameTables(t, got, truth(t, dir))
			}
			if extra := covers(t, got, mnesia); extra > 0 {
				t.Logf("Mnesia's own startup on a copy loads %d records fewer (its DETS repair drops large objects, OTP #8513)", extra)
			}
			for _, p := range d.Problems() {
				t.Logf("problem: %s", p)
				if p.Kind == mnesiaread.ProblemDamage || p.Kind == mnesiaread.ProblemUncertain {
					t.Errorf("a sound directory reported %s", p)
				}
			}
			if after := snapshot(t, dir); after != before {
				t.Error("reading changed the directory")
			}
		})
	}
}

// snapshot is a fingerprint of a directory's names, sizes and contents.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&b, "%s %d %x\n", e.Name(), len(data), data)
	}
	return b.String()
}
