package dets_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/mnesiaread/dets"
)

func readOurs(t *testing.T, path string) ([]term.Term, *dets.Report, *dets.File) {
	t.Helper()
	f, err := dets.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []term.Term
	rep, err := f.Objects(func(obj []byte) error {
		v, err := term.Decode(obj)
		if err != nil {
			return err
		}
		got = append(got, v)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return got, rep, f
}

func sameMultiset(t *testing.T, what string, got, want []term.Term) {
	t.Helper()
	g, w := testenv.Canonical(t, got), testenv.Canonical(t, want)
	if len(g) != len(w) {
		t.Errorf("%s: %d objects, want %d", what, len(g), len(w))
		return
	}
	for i := range g {
		if g[i] != w[i] {
			t.Errorf("%s: object sets differ", what)
			return
		}
	}
}

func TestClosedFiles(t *testing.T) {
	dir := t.TempDir()
	for _, typ := range []string{"set", "bag", "duplicate_bag"} {
		t.Run(typ, func(t *testing.T) {
			file, exp := filepath.Join(dir, typ+".DAT"), filepath.Join(dir, typ+".etf")
			testenv.RunEscript(t, filepath.Join("testdata", "dets.escript"), "gen", file, typ, "2000", exp)
			got, rep, f := readOurs(t, file)
			sameMultiset(t, typ, got, testenv.TermListFile(t, exp))
			if !f.Header.ClosedProperly || f.Header.Type.String() != typ || f.Header.KeyPos != 2 || !f.Header.MD5OK {
				t.Errorf("header: %+v", f.Header)
			}
			if len(rep.Orphans) != 0 || len(rep.Damage) != 0 {
				t.Errorf("clean file: orphans %v damage %v", rep.Orphans, rep.Damage)
			}
			if int64(len(got)) != int64(f.Header.NoObjects) {
				t.Errorf("%d objects, header says %d", len(got), f.Header.NoObjects)
			}
		})
	}
}

// A file grown after a clean close and never closed again: the header's
// counters are stale. Erlang's repair drops the 10 000-byte object (OTP
// #8513); we return everything that was inserted.
func TestNeverClosedFile(t *testing.T) {
	dir := t.TempDir()
	file, exp := filepath.Join(dir, "dirty.DAT"), filepath.Join(dir, "dirty.etf")
	testenv.RunEscript(t, filepath.Join("testdata", "dets.escript"), "dirty", file, exp)
	orig, _ := os.ReadFile(file)
	got, rep, f := readOurs(t, file)
	if f.Header.ClosedProperly {
		t.Error("the file was never closed, yet the header says it was")
	}
	want := testenv.TermListFile(t, exp)
	sameMultiset(t, "never-closed file", got, want)
	// What Erlang recovers, on a copy (its repair rewrites the file).
	cp := filepath.Join(dir, "copy.DAT")
	os.WriteFile(cp, orig, 0o644)
	out := filepath.Join(dir, "erl.etf")
	testenv.RunEscript(t, filepath.Join("testdata", "dets.escript"), "read", cp, out)
	erl := testenv.TermListFile(t, out)
	if len(erl) >= len(want) {
		t.Logf("Erlang's repair recovered all %d objects here", len(erl))
	} else {
		t.Logf("Erlang's repair recovered %d of %d objects; we %d", len(erl), len(want), len(got))
	}
	if len(got) < len(erl) {
		t.Errorf("we recover %d objects, Erlang %d", len(got), len(erl))
	}
	// Reading never changes the file.
	if after, _ := os.ReadFile(file); string(after) != string(orig) {
		t.Error("the reader modified its input")
	}
	_ = rep
}

// Damage: truncation, flipped bytes, zeroed blocks. No panic; every object
// whose collection is untouched comes out; the damage is reported.
func TestDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	file, exp := filepath.Join(dir, "set.DAT"), filepath.Join(dir, "set.etf")
	testenv.RunEscript(t, filepath.Join("testdata", "dets.escript"), "gen", file, "set", "3000", exp)
	orig, _ := os.ReadFile(file)
	want := testenv.TermListFile(t, exp)
	cases := map[string]func([]byte) []byte{
		"truncated to 60%":  func(b []byte) []byte { return b[:len(b)*6/10] },
		"truncated to 99%":  func(b []byte) []byte { return b[:len(b)*99/100] },
		"zeroed 64 KiB":     func(b []byte) []byte { z(b, len(b)/3, 65536); return b },
		"flipped bytes":     func(b []byte) []byte { flip(b, len(b)/2, 40, 997); return b },
		"zeroed part table": func(b []byte) []byte { z(b, 312, 1024); return b },
		"zeroed header":     func(b []byte) []byte { z(b, 20, 40); return b },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "damaged.DAT")
			os.WriteFile(path, damage(append([]byte(nil), orig...)), 0o644)
			f, err := dets.Open(path)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			defer f.Close()
			n := 0
			rep, err := f.Objects(func(obj []byte) error {
				if _, err := term.Decode(obj); err != nil {
					t.Errorf("returned a bad object: %v", err)
				}
				n++
				return nil
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d of %d objects, %d orphans (%d recovered objects), %d damage reports", n, len(want), len(rep.Orphans), rep.RecoveredObjects, len(rep.Damage))
			if name == "zeroed header" && (len(f.Header.Problems) == 0 || n != len(want)) {
				t.Errorf("zeroed header: problems %v, %d of %d objects", f.Header.Problems, n, len(want))
			}
			if name == "zeroed part table" && n < len(want) {
				// The hash structure is gone; the scan finds every collection.
				t.Errorf("recovered %d of %d objects from the scan alone", n, len(want))
			}
			if n > len(want) {
				t.Errorf("more objects (%d) than were stored (%d)", n, len(want))
			}
		})
	}
}

func z(b []byte, at, n int) {
	for i := at; i < at+n && i < len(b); i++ {
		b[i] = 0
	}
}

func flip(b []byte, at, n, step int) {
	for i := 0; i < n; i++ {
		if p := at + i*step; p < len(b) {
			b[p] ^= 0x5A
		}
	}
}

func TestNotDETS(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.DAT")
	os.WriteFile(p, make([]byte, 4000), 0o644)
	if _, err := dets.Open(p); !errors.Is(err, dets.ErrNotDETS) {
		t.Errorf("got %v", err)
	}
}

// tearSlot finds a live slot whose collection is not a power of two in
// size and makes the slot claim the whole block, as a file copied while a
// collection was rewritten in place can show; it returns the slot's offset.
func tearSlot(t *testing.T, b []byte) int {
	t.Helper()
	u := func(off int) int { return int(binary.BigEndian.Uint32(b[off:])) }
	for part := 0; part < 256; part++ {
		pp := u(312 + 4*part)
		if pp == 0 || pp+2048 > len(b) {
			continue
		}
		for sg := 0; sg < 512; sg++ {
			seg := u(pp + 4*sg)
			if seg == 0 || seg+2048 > len(b) {
				continue
			}
			for sl := 0; sl < 256; sl++ {
				at := seg + 8*sl
				size, pos := u(at), u(at+4)
				if pos == 0 || size < 100 || size&(size-1) == 0 || pos+8 > len(b) || u(pos) != size {
					continue
				}
				binary.BigEndian.PutUint32(b[at:], uint32(1<<bits.Len(uint(size-1))))
				return at
			}
		}
	}
	t.Fatal("no slot to tear")
	return 0
}

// A slot that disagrees with its block's header: Erlang's repair reads the
// block by its own header, and so must we (not drop it as damage).
func TestTornSlot(t *testing.T) {
	dir := t.TempDir()
	file, exp := filepath.Join(dir, "set.DAT"), filepath.Join(dir, "set.etf")
	testenv.RunEscript(t, filepath.Join("testdata", "dets.escript"), "gen", file, "set", "3000", exp)
	b, _ := os.ReadFile(file)
	tearSlot(t, b)
	binary.BigEndian.PutUint32(b[8:], 0) // not closed: Erlang repairs, by a scan
	torn := filepath.Join(dir, "torn.DAT")
	os.WriteFile(torn, b, 0o644)
	got, rep, _ := readOurs(t, torn)
	sameMultiset(t, "torn slot", got, testenv.TermListFile(t, exp))
	cp := filepath.Join(dir, "copy.DAT")
	os.WriteFile(cp, b, 0o644)
	out := filepath.Join(dir, "erl.etf")
	testenv.RunEscript(t, filepath.Join("testdata", "dets.escript"), "read", cp, out)
	sameMultiset(t, "torn slot, Erlang's repair", got, testenv.TermListFile(t, out))
	if len(rep.Damage) != 1 {
		t.Errorf("damage: %v", rep.Damage)
	}
}

// A node halted while DETS closes a file whose hash table it was growing
// (DETS grows it while idle after a bulk insert; here, as when a node halts
// right after mnesia:stop): slots on disk name collections that the growth
// has since overwritten, and some point inside newer blocks. Found on a
// 1 M-record table made for the benchmark; Erlang's repair, which reads
// every block by its own header, kept all but two objects there, and so
// must we. The timing is real, so several are tried until one leaves such
// a file.
func TestHaltDuringGrowth(t *testing.T) {
	dir := t.TempDir()
	timings := [][2]string{{"300", "0"}, {"500", "0"}, {"300", "5"}, {"400", "2"}, {"600", "5"}, {"200", "0"}, {"450", "3"}, {"350", "1"}, {"700", "0"}, {"250", "2"}}
	for i, tm := range timings {
		file, exp := filepath.Join(dir, fmt.Sprintf("grow%d.DAT", i)), filepath.Join(dir, "grow.etf")
		testenv.RunEscript(t, filepath.Join("testdata", "dets.escript"), "grow", file, "60000", tm[0], tm[1], exp)
		orig, _ := os.ReadFile(file)
		got, rep, _ := readOurs(t, file)
		if len(rep.Damage) == 0 {
			t.Logf("sleep %s ms, halt %s ms into the close: the file is consistent (%d objects); trying another timing", tm[0], tm[1], len(got))
			continue
		}
		want := testenv.TermListFile(t, exp)
		cp := filepath.Join(dir, "copy.DAT")
		os.WriteFile(cp, orig, 0o644)
		out := filepath.Join(dir, "erl.etf")
		testenv.RunEscript(t, filepath.Join("testdata", "dets.escript"), "read", cp, out)
		erl := testenv.TermListFile(t, out)
		t.Logf("sleep %s ms, halt %s ms into the close: %d damage reports, %d orphans; %d objects of %d, Erlang's repair %d",
			tm[0], tm[1], len(rep.Damage), len(rep.Orphans), len(got), len(want), len(erl))
		// Nothing invented: every object we give was inserted, once.
		inserted := map[string]bool{}
		for _, k := range testenv.Canonical(t, want) {
			inserted[k] = true
		}
		seen := map[string]bool{}
		for _, k := range testenv.Canonical(t, got) {
			if !inserted[k] || seen[k] {
				t.Fatalf("an object that was not inserted, or twice: %x", k)
			}
			seen[k] = true
		}
		// Everything Erlang's repair keeps, we give.
		for _, k := range testenv.Canonical(t, erl) {
			if !seen[k] {
				t.Errorf("Erlang's repair keeps an object we lose: %x", k)
			}
		}
		if len(got) < len(erl) {
			t.Errorf("we recover %d objects, Erlang's repair %d", len(got), len(erl))
		}
		return
	}
	t.Fatalf("none of %d timings left a file whose growth was cut short", len(timings))
}
