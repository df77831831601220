package mnesiaread_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/mnesiaread"
)

// mnesiaBackup has a node started on (a copy of) dir write mnesia:backup/1
// and dump_to_textfile/1 into out.
func mnesiaBackup(t *testing.T, dir, node, out string) {
	t.Helper()
	runErl(t, node, copyDir(t, dir), "-run", "mgen", "dump", out)
}

// restoreOn has a fresh node named node restore file; it returns the tables
// the node then holds.
func restoreOn(t *testing.T, node, file, mode string) map[string][]term.Term {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.etf")
	runErl(t, node, filepath.Join(t.TempDir(), "fresh"), "-run", "mgen", "restore", file, out, mode)
	return tablesFile(t, out)
}

// A backup made by Mnesia reads back as the directory it came from.
func TestReadMnesiaBackup(t *testing.T) {
	dir, node := scenario(t, "ops")
	out := t.TempDir()
	mnesiaBackup(t, dir, node, out)
	b, err := mnesiaread.OpenBackup(filepath.Join(out, "backup.BUP"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Node() != node || b.Kind() != "backup" {
		t.Errorf("node %q kind %q", b.Node(), b.Kind())
	}
	got := ours(t, b)
	sameTables(t, got, truth(t, dir))
	for _, tab := range b.Tables() {
		if tab.Name == "ram" && tab.HasData() {
			t.Error("a RAM table has data in a backup")
		}
		if tab.Name == "other_name" && tab.RecordName != "rec" {
			t.Errorf("other_name's record name: %q", tab.RecordName)
		}
	}
	if len(b.Problems()) != 0 {
		t.Errorf("problems: %v", b.Problems())
	}
}

// Backups we write from a dead node's directory are restored by real
// nodes: mnesia:restore/2 and install_fallback/1, on a node of the same
// name, and renamed for a node of another name.
func TestWriteBackupRestoredByMnesia(t *testing.T) {
	dir, node := scenario(t, "ops")
	want := truth(t, dir)
	d, err := mnesiaread.OpenDir(dir, mnesiaread.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newNode := "renamed-" + testenv.RandomID(6) + "@localhost"
	for _, c := range []struct {
		name, node, mode string
		rename           map[string]string
	}{
		{"same node, restore", node, "restore", nil},
		{"same node, fallback", node, "fallback", nil},
		{"renamed, restore", newNode, "restore", map[string]string{node: newNode}},
		{"renamed, fallback", newNode, "fallback", map[string]string{node: newNode}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "ours.BUP")
			rep, err := mnesiaread.WriteBackup(d, file, mnesiaread.BackupOptions{Rename: c.rename})
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for _, recs := range want {
				total += len(recs)
			}
			if rep.Records != int64(total) {
				t.Errorf("wrote %d records, the tables hold %d", rep.Records, total)
			}
			restored := restoreOn(t, c.node, file, c.mode)
			expect := want
			if c.mode == "restore" { // idx is skipped: see mgen:restore/3
				expect = without(want, "idx")
			}
			sameTables(t, restored, expect)
			// And our own reader reads it back alike.
			b, err := mnesiaread.OpenBackup(file)
			if err != nil {
				t.Fatal(err)
			}
			sameTables(t, ours(t, b), want)
		})
	}
}

// rename-node on a backup Mnesia wrote: the renamed node restores it.
func TestRenameMnesiaBackup(t *testing.T) {
	dir, node := scenario(t, "ops")
	out := t.TempDir()
	mnesiaBackup(t, dir, node, out)
	newNode := "moved-" + testenv.RandomID(6) + "@localhost"
	renamed := filepath.Join(out, "renamed.BUP")
	if _, err := mnesiaread.RenameBackup(filepath.Join(out, "backup.BUP"), renamed, map[string]string{node: newNode}); err != nil {
		t.Fatal(err)
	}
	b, err := mnesiaread.OpenBackup(renamed)
	if err != nil {
		t.Fatal(err)
	}
	if b.Node() != newNode {
		t.Errorf("header node %q", b.Node())
	}
	for _, tab := range b.Tables() {
		for ct, nodes := range tab.Copies {
			for _, n := range nodes {
				if n == node {
					t.Errorf("%s still lists %s in %s", tab.Name, node, ct)
				}
			}
		}
	}
	sameTables(t, restoreOn(t, newNode, renamed, "fallback"), truth(t, dir))
	if _, err := mnesiaread.RenameBackup(filepath.Join(out, "backup.BUP"), renamed, nil); err == nil {
		t.Error("RenameBackup overwrote an existing file")
	}
	if _, err := os.Stat(renamed); err != nil {
		t.Error("the existing output was removed")
	}
}

func without(m map[string][]term.Term, tables ...string) map[string][]term.Term {
	out := map[string][]term.Term{}
	for k, v := range m {
		if !slices.Contains(tables, k) {
			out[k] = v
		}
	}
	return out
}
