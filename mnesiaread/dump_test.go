package mnesiaread_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/mnesiaread"
)

// loadText has a fresh node load a dump with mnesia:load_textfile/1 and
// returns what its tables then hold.
func loadText(t *testing.T, file string) map[string][]term.Term {
	t.Helper()
	out := filepath.Join(t.TempDir(), "loaded.etf")
	runErl(t, "load-"+strings.ToLower(filepath.Base(t.TempDir()))+"@localhost", filepath.Join(t.TempDir(), "fresh"),
		"-run", "mgen", "loadtext", file, out)
	return tablesFile(t, out)
}

// A dump written by mnesia:dump_to_textfile/1 reads back as the tables
// were, and as mnesia:load_textfile/1 reads the same file.
func TestReadMnesiaDump(t *testing.T) {
	for _, sc := range []string{"varied", "ops"} {
		t.Run(sc, func(t *testing.T) {
			dir, node := scenario(t, sc)
			out := t.TempDir()
			mnesiaBackup(t, dir, node, out)
			file := filepath.Join(out, "dump.txt")
			src, err := mnesiaread.Open(file, mnesiaread.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if src.Kind() != "dump" {
				t.Fatalf("opened as %s", src.Kind())
			}
			got := ours(t, src)
			if len(src.Problems()) != 0 {
				t.Errorf("problems: %v", src.Problems())
			}
			// The disc tables hold what the node held.
			sameTables(t, got, truth(t, dir))
			// Every table, RAM ones included, as Mnesia's own loader reads
			// it. Except bags: a dump does not say a table is a bag, so
			// load_textfile creates a set and keeps one record per key
			// (the truth above has them all, and so do we).
			loaded := loadText(t, file)
			if len(loaded) == 0 {
				t.Fatal("load_textfile loaded no tables")
			}
			sameTables(t, without(got, "dbag", "obag"), without(loaded, "dbag", "obag"))
			for _, tab := range src.Tables() {
				if tab.Storage != mnesiaread.StorageDump || tab.Type != "" {
					t.Errorf("table %s: storage %q type %q", tab.Name, tab.Storage, tab.Type)
				}
			}
		})
	}
}

// A damaged dump: the bad terms are reported with their lines, the others
// come out.
func TestReadDamagedDump(t *testing.T) {
	dir, node := scenario(t, "varied")
	out := t.TempDir()
	mnesiaBackup(t, dir, node, out)
	raw, err := os.ReadFile(filepath.Join(out, "dump.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	// Break records: garble one of each table, add a record of an unknown
	// table, and cut the file in the middle of its last record.
	var damaged []string
	broken, inserted := 0, false
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "{vd,{5,vd},"):
			l = strings.Replace(l, "},", "} ", 1)
			broken++
		case strings.HasPrefix(l, "{vo,{5,vo},"):
			l = strings.Replace(l, ",", " ? ", 1)
			broken++
		}
		damaged = append(damaged, l)
		if !inserted && strings.HasSuffix(l, ".\n") { // after the header
			damaged = append(damaged, "{nosuchtable,1,2}.\n")
			inserted = true
		}
	}
	if broken != 2 {
		t.Fatalf("did not find the records to break in:\n%s", raw)
	}
	text := strings.Join(damaged, "")
	text = strings.TrimSuffix(text, "\n")
	last := strings.LastIndex(text, "\n")
	lastRec := text[last+1:]
	text = text[:last+1] + lastRec[:len(lastRec)/2]
	lastTable := strings.TrimPrefix(lastRec[:3], "{")
	file := filepath.Join(out, "damaged.txt")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := mnesiaread.OpenDump(file, mnesiaread.DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := ours(t, d)
	want := truth(t, dir)
	lost := map[string]int{"vd": 1, "vo": 1}
	lost[lastTable]++
	for tab, n := range lost {
		if len(got[tab]) != len(want[tab])-n {
			t.Errorf("%s: %d records of %d", tab, len(got[tab]), len(want[tab]))
		}
	}
	probs := d.Problems()
	if len(probs) != 4 {
		t.Fatalf("problems: %v", probs)
	}
	for _, p := range probs {
		if p.Kind != mnesiaread.ProblemDamage || !strings.HasPrefix(p.Detail, "line ") || p.Offset <= 0 {
			t.Errorf("problem %v", p)
		}
	}
}

// Open tells the kinds of file apart.
func TestOpenDetectsKind(t *testing.T) {
	dir, node := scenario(t, "ops")
	out := t.TempDir()
	mnesiaBackup(t, dir, node, out)
	for path, kind := range map[string]string{
		dir:                              "directory",
		filepath.Join(out, "backup.BUP"): "backup",
		filepath.Join(out, "dump.txt"):   "dump",
		filepath.Join(dir, "dset.DAT"):   "dets",
	} {
		src, err := mnesiaread.Open(path, mnesiaread.OpenOptions{})
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if src.Kind() != kind {
			t.Errorf("%s opened as %s, want %s", path, src.Kind(), kind)
		}
	}
	// A single DETS file gives its table's records.
	src, _ := mnesiaread.Open(filepath.Join(dir, "dset.DAT"), mnesiaread.OpenOptions{})
	n, err := mnesiaread.Count(src, nil)
	if err != nil || n["dset"] == 0 {
		t.Errorf("dset.DAT: %v, %v", n, err)
	}
	junk := filepath.Join(out, "junk")
	os.WriteFile(junk, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 0o644)
	if _, err := mnesiaread.Open(junk, mnesiaread.OpenOptions{}); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("junk: %v", err)
	}
	text := filepath.Join(out, "text")
	os.WriteFile(text, []byte("hello.\n"), 0o644)
	if _, err := mnesiaread.Open(text, mnesiaread.OpenOptions{}); err == nil || !strings.Contains(err.Error(), "not a Mnesia text dump") {
		t.Errorf("text: %v", err)
	}
}
