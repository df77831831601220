package disklog_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/mnesiaread/disklog"
)

// readAll reads every item with our reader.
func readAll(t *testing.T, path string) ([]term.Term, *disklog.Reader) {
	t.Helper()
	r, err := disklog.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []term.Term
	for {
		item, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, r
		}
		if err != nil {
			t.Fatal(err)
		}
		v, err := term.Decode(item)
		if err != nil {
			t.Fatalf("item: %v", err)
		}
		out = append(out, v)
	}
}

func TestReadLogsWrittenByErlang(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []string{"gen", "gen_open"} {
		file, exp := filepath.Join(dir, mode+".LOG"), filepath.Join(dir, mode+".etf")
		testenv.RunEscript(t, filepath.Join("testdata", "disklog.escript"), mode, file, exp)
		want, _ := term.Elems(testenv.TermFile(t, exp))
		got, r := readAll(t, file)
		if len(got) != len(want) {
			t.Fatalf("%s: %d items, want %d", mode, len(got), len(want))
		}
		for i := range want {
			if !term.Equal(got[i], want[i]) {
				t.Errorf("%s item %d: %s", mode, i, term.Format(got[i]))
			}
		}
		wantState := disklog.Closed
		if mode == "gen_open" {
			wantState = disklog.Opened
		}
		if r.State != wantState || len(r.Damage) != 0 || r.BadBytes != 0 {
			t.Errorf("%s: state %v damage %v", mode, r.State, r.Damage)
		}
	}
}

// Damaged logs: a truncated tail, flipped bytes, a zeroed block. Every item
// outside the damage comes out, the damage is reported where it is, and we
// recover at least what Erlang recovers from the same file.
func TestDamagedLogs(t *testing.T) {
	dir := t.TempDir()
	clean, exp := filepath.Join(dir, "clean.LOG"), filepath.Join(dir, "exp.etf")
	testenv.RunEscript(t, filepath.Join("testdata", "disklog.escript"), "gen", clean, exp)
	want, _ := term.Elems(testenv.TermFile(t, exp))
	orig, _ := os.ReadFile(clean)
	// Item offsets of the clean file, to know which items a damage touches.
	r, _ := disklog.Open(clean)
	var offsets []int64
	for {
		_, off, err := r.Next()
		if err != nil {
			break
		}
		offsets = append(offsets, off)
	}
	r.Close()
	offsets = append(offsets, int64(len(orig)))

	cases := []struct {
		name   string
		damage func(b []byte) []byte
		lo, hi int64 // damaged byte range
	}{
		{"truncated tail", func(b []byte) []byte { return b[:len(b)-37] }, int64(len(orig)) - 37, int64(len(orig))},
		{"truncated in the big item", func(b []byte) []byte { return b[:offsets[301]+5000] }, offsets[301] + 5000, int64(len(orig))},
		{"flipped magic", func(b []byte) []byte { b[offsets[100]+5] ^= 0xFF; return b }, offsets[100] + 5, offsets[100] + 6},
		{"flipped size", func(b []byte) []byte { b[offsets[150]] = 0x7F; return b }, offsets[150], offsets[150] + 1},
		{"zeroed block", func(b []byte) []byte {
			for i := offsets[200] + 3; i < offsets[200]+700; i++ {
				b[i] = 0
			}
			return b
		}, offsets[200] + 3, offsets[200] + 700},
		{"flipped MD5", func(b []byte) []byte { b[offsets[301]+10] ^= 1; return b }, offsets[301] + 10, offsets[301] + 11},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "damaged.LOG")
			os.Remove(path)
			if err := os.WriteFile(path, c.damage(append([]byte(nil), orig...)), 0o644); err != nil {
				t.Fatal(err)
			}
			got, r := readAll(t, path)
			// Every item entirely outside [lo, hi) must be there, in order.
			var intact []term.Term
			for i := range want {
				if offsets[i+1] <= c.lo || offsets[i] >= c.hi {
					intact = append(intact, want[i])
				}
			}
			j := 0
			for _, g := range got {
				if j < len(intact) && term.Equal(g, intact[j]) {
					j++
				}
			}
			if j != len(intact) {
				t.Errorf("recovered %d of %d intact items (%d items read)", j, len(intact), len(got))
			}
			if len(r.Damage) == 0 {
				t.Fatal("no damage reported")
			}
			// The damage is reported from the start of the item it hit.
			itemStart := offsets[0]
			for _, o := range offsets {
				if o <= c.lo {
					itemStart = o
				}
			}
			if d := r.Damage[0]; d.Offset < itemStart || d.Offset > c.hi || d.Offset+d.Length < c.lo {
				t.Errorf("damage reported at %d+%d, the damage is at %d..%d (in the item at %d)", d.Offset, d.Length, c.lo, c.hi, itemStart)
			}
			// Erlang, read-only and after its repair, recovers no more.
			for _, mode := range []string{"read", "repair"} {
				cp := filepath.Join(dir, mode+".LOG")
				os.Remove(cp)
				os.WriteFile(cp, c.damage(append([]byte(nil), orig...)), 0o644)
				out := filepath.Join(dir, mode+".etf")
				testenv.RunEscript(t, filepath.Join("testdata", "disklog.escript"), mode, cp, out)
				res := testenv.TermFile(t, out).(term.Tuple)
				erl, _ := term.Elems(res[0])
				if len(erl) > len(got) {
					t.Errorf("Erlang's %s recovers %d items, we %d", mode, len(erl), len(got))
				}
				t.Logf("%s: we recover %d items, Erlang's %s %d (bad bytes %s)", c.name, len(got), mode, len(erl), term.Format(res[1]))
			}
		})
	}
}

// Logs we write are read back by Erlang's disk_log, item for item.
func TestWriterReadByErlang(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ours.LOG")
	w, err := disklog.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var terms []term.Term
	for i := 0; i < 200; i++ {
		terms = append(terms, term.Tuple{term.Atom("rec"), int64(i), term.Binary(fmt.Sprintf("value %d", i))})
	}
	big := make(term.Binary, 100000)
	terms = append(terms, term.Tuple{term.Atom("big"), big})
	for _, tm := range terms {
		b, _ := term.Encode(tm)
		if err := w.WriteItem(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := disklog.Create(path); err == nil {
		t.Error("Create overwrote an existing file")
	}
	out := filepath.Join(dir, "read.etf")
	testenv.RunEscript(t, filepath.Join("testdata", "disklog.escript"), "read", path, out)
	res := testenv.TermFile(t, out).(term.Tuple)
	got, _ := term.Elems(res[0])
	if len(got) != len(terms) || !term.Equal(res[1], int64(0)) {
		t.Fatalf("Erlang read %d items (bad %s), want %d", len(got), term.Format(res[1]), len(terms))
	}
	for i := range terms {
		if !term.Equal(got[i], terms[i]) {
			t.Errorf("item %d: %s", i, term.Format(got[i]))
		}
	}
	if _, r := readAll(t, path); r.State != disklog.Closed {
		t.Error("not marked closed")
	}
}

func TestNotALog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	os.WriteFile(p, []byte("hello, world"), 0o644)
	if _, err := disklog.Open(p); !errors.Is(err, disklog.ErrNotALog) {
		t.Errorf("got %v", err)
	}
}
