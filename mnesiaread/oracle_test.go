package mnesiaread_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/mnesiaread"
	"github.com/mimmigrate/mimmigrate/mnesiaread/disklog"
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "erl", all...)
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
		if e.IsDir() { // ejabberd's spool holds certs/ and such
			continue
		}
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
	l := testenv.TermListFile(t, path)
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

// covers checks that got holds every record of want (a superset).
func covers(t *testing.T, got, want map[string][]term.Term) (extra int) {
	t.Helper()
	for tab, w := range want {
		gset := map[string]int{}
		for _, s := range testenv.Canonical(t, got[tab]) {
			gset[s]++
		}
		for _, s := range testenv.Canonical(t, w) {
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
		gs, ws := testenv.Canonical(t, g), testenv.Canonical(t, w)
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
			// Counting reads the tables in parallel: same counts, same
			// problems in the same order.
			d2, err := mnesiaread.OpenDir(dir, mnesiaread.DirOptions{})
			if err != nil {
				t.Fatal(err)
			}
			counts, err := mnesiaread.Count(d2, nil)
			if err != nil {
				t.Fatal(err)
			}
			for tab, recs := range got {
				if counts[tab] != int64(len(recs)) {
					t.Errorf("Count: %s has %d records, Records gave %d", tab, counts[tab], len(recs))
				}
			}
			if fmt.Sprint(d2.Problems()) != fmt.Sprint(d.Problems()) {
				t.Errorf("Count's problems %v\nRecords' problems %v", d2.Problems(), d.Problems())
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

// logItems lists a log's items with their offsets and ends.
func logItems(t *testing.T, path string) (items []term.Term, offsets []int64, ends []int64) {
	t.Helper()
	r, err := disklog.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		item, off, err := r.Next()
		if err != nil {
			return
		}
		v, _ := term.Decode(item)
		items, offsets, ends = append(items, v), append(offsets, off), append(ends, r.Offset())
	}
}

// A node killed after logging a presume_abort commit but before its
// decision: the outcome is unknown. By default the transaction is left out
// and reported; --include-uncertain applies it.
func TestUncertainTransaction(t *testing.T) {
	dir, node := scenario(t, "ops")
	latest := filepath.Join(dir, "LATEST.LOG")
	items, _, ends := logItems(t, latest)
	cut := -1
	for i, it := range items {
		if c, ok := term.IsRecord(it, "commit", 8); ok {
			if _, ok := term.IsRecord(c[2], "decision", 5); ok {
				cut = i // the last presume_abort commit
			}
		}
	}
	if cut < 0 {
		t.Fatal("the scenario logged no presume_abort transaction")
	}
	b, _ := os.ReadFile(latest)
	if err := os.WriteFile(latest, b[:ends[cut]], 0o644); err != nil {
		t.Fatal(err)
	}
	commit := items[cut].(term.Tuple)
	d, err := mnesiaread.OpenDir(dir, mnesiaread.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	without := ours(t, d)
	uncertain := 0
	for _, p := range d.Problems() {
		if p.Kind == mnesiaread.ProblemUncertain {
			uncertain++
			if p.File != "LATEST.LOG" || !strings.Contains(p.Detail, "user") {
				t.Errorf("uncertain report: %s", p)
			}
		}
	}
	if uncertain != 1 {
		t.Errorf("%d uncertain transactions reported, want 1", uncertain)
	}
	d2, _ := mnesiaread.OpenDir(dir, mnesiaread.DirOptions{IncludeUncertain: true})
	with := ours(t, d2)
	// The transaction deleted users 100..110.
	has := func(m map[string][]term.Term, id int64) bool {
		for _, r := range m["user"] {
			if term.Equal(r.(term.Tuple)[1], id) {
				return true
			}
		}
		return false
	}
	if !has(without, 105) || has(with, 105) {
		t.Errorf("user 105: left out %v, applied %v (commit %s)", has(without, 105), has(with, 105), short(term.Format(commit)))
	}
	// Mnesia, on this node alone, treats the missing decision as an abort;
	// we hold all it loads (and the big DETS object its repair drops).
	mnesia := oracle(t, dir, node)
	covers(t, without, mnesia)
	if !has(mnesia, 105) {
		t.Error("Mnesia applied the undecided transaction; the default should follow it")
	}
}

// An interrupted log dump leaves PREVIOUS.LOG (LATEST.LOG renamed as the
// dump starts); it is replayed before LATEST.LOG.
// TestCommitInFlightDuringDump: a directory copy lags the running node by
// a commit that was logged but not yet applied in RAM when Mnesia's dumper
// rewrote the table's DCD from RAM (see mgen:inflight). The node serves the
// record; neither file holds it, and Mnesia's own restart loses it. We read
// what the restart loads, in both cases: the record lost when the DCD was
// rewritten, kept when the dump appended to the DCL.
func TestCommitInFlightDuringDump(t *testing.T) {
	for _, sc := range []struct {
		name string
		kept bool
	}{{"inflight", false}, {"inflight_appended", true}} {
		t.Run(sc.name, func(t *testing.T) {
			dir, node := scenario(t, sc.name)
			has := func(recs []term.Term) bool {
				for _, r := range recs {
					if tu, ok := r.(term.Tuple); ok && len(tu) == 3 && term.IsAtom(tu[1], "in_flight") {
						return true
					}
				}
				return false
			}
			if !has(truth(t, dir)["t"]) {
				t.Fatal("the running node did not have the record")
			}
			d, err := mnesiaread.OpenDir(dir, mnesiaread.DirOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := ours(t, d)
			mnesia := oracle(t, dir, node)
			sameTables(t, got, mnesia)
			if has(got["t"]) != sc.kept || has(mnesia["t"]) != sc.kept {
				t.Errorf("in the files: ours %v, Mnesia's restart %v; want %v", has(got["t"]), has(mnesia["t"]), sc.kept)
			}
		})
	}
}

func TestPreviousLog(t *testing.T) {
	dir, node := scenario(t, "ops")
	if err := os.Rename(filepath.Join(dir, "LATEST.LOG"), filepath.Join(dir, "PREVIOUS.LOG")); err != nil {
		t.Fatal(err)
	}
	d, err := mnesiaread.OpenDir(dir, mnesiaread.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := ours(t, d)
	sameTables(t, got, truth(t, dir))
	covers(t, got, oracle(t, dir, node))
	noted := false
	for _, p := range d.Problems() {
		noted = noted || (p.File == "PREVIOUS.LOG" && p.Kind == mnesiaread.ProblemNote)
	}
	if !noted {
		t.Error("PREVIOUS.LOG not reported")
	}
}

// Damaged files in a directory: nothing panics, every record outside the
// damage comes out, and the damage is reported in the right file near the
// right offset.
func TestDamagedDirectory(t *testing.T) {
	dir, _ := scenario(t, "ops")
	clean := truth(t, dir)
	cases := []struct {
		file       string
		at, length int64 // negative at: from the end
		table      string
	}{
		{"user.DCD", 4000, 3000, "user"},
		{"dset.DAT", 9000, 64, "dset"},
		{"LATEST.LOG", -300, 300, "user"},
		{"dbag.DCD", 100, 5, "dbag"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			cp := copyDir(t, dir)
			path := filepath.Join(cp, c.file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			at := c.at
			if at < 0 {
				at += int64(len(b))
			}
			if c.file == "LATEST.LOG" {
				b = b[:at] // a truncated tail
			} else {
				for i := at; i < at+c.length && i < int64(len(b)); i++ {
					b[i] ^= 0xA5
				}
			}
			os.WriteFile(path, b, 0o644)
			d, err := mnesiaread.OpenDir(cp, mnesiaread.DirOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := ours(t, d)
			reported := false
			for _, p := range d.Problems() {
				if p.Kind == mnesiaread.ProblemDamage && p.File == c.file {
					reported = true
					if p.Offset < 0 || p.Offset > at+c.length {
						t.Errorf("damage reported at %d, it is at %d..%d: %s", p.Offset, at, at+c.length, p)
					}
				}
			}
			if !reported {
				t.Errorf("no damage reported in %s", c.file)
			}
			// Every other table is intact; the damaged one loses at most the
			// records in the items the damage touched (for a DCD: counted).
			maxLoss := int(c.length/16) + 2
			if strings.HasSuffix(c.file, ".DCD") {
				_, offs, ends := logItems(t, filepath.Join(dir, c.file))
				maxLoss = 0
				for i := range offs {
					if ends[i] > at && offs[i] < at+c.length {
						maxLoss++
					}
				}
			}
			for tab, want := range clean {
				g := len(got[tab])
				if tab != c.table && g != len(want) {
					t.Errorf("table %s: %d records, want %d (it was not damaged)", tab, g, len(want))
				}
				if tab == c.table && g < len(want)-maxLoss {
					t.Errorf("table %s: %d of %d records survive; the damage touched %d", tab, g, len(want), maxLoss)
				}
			}
		})
	}
}
