package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// dirDigest hashes every file of a directory (names, sizes, contents).
func dirDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d %x\n", p, info.Size(), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// tableSizes has a node print "table size" lines for every table but the schema.
const tableSizes = `lists:flatten([io_lib:format("~s ~b~n", [T, mnesia:table_info(T, size)]) || T <- lists:sort(mnesia:system_info(tables)), T =/= schema])`

func parseSizes(t *testing.T, out string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("sizes: %q", out)
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		m[f[0]] = n
	}
	return m
}

// TestReadBackupFromEjabberdSpool runs read, backup and rename-node on the
// spool of a real ejabberd 23.01 node, and checks the results with the node
// itself, with ejabberdctl dump, and with fresh Erlang nodes that load what
// we wrote (mnesia:load_textfile, mnesia:install_fallback).
func TestReadBackupFromEjabberdSpool(t *testing.T) {
	if why := testenv.EjabberdAvailable(); why != "" {
		t.Skip(why)
	}
	e, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "crd"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy()
	if _, err := e.Populate(testenv.PopulateOptions{Users: 300, APIUsers: 30, Rooms: 5}); err != nil {
		t.Fatal(err)
	}
	liveOut, err := e.Eval(`Tabs = [T || T <- lists:sort(mnesia:system_info(local_tables)), T =/= schema, mnesia:table_info(T, storage_type) =/= ram_copies],
lists:flatten([io_lib:format("~s ~b~n", [T, mnesia:table_info(T, size)]) || T <- Tabs])`)
	if err != nil {
		t.Fatal(err)
	}
	live := parseSizes(t, liveOut)
	dump := filepath.Join(e.Base, "dump.txt")
	if out, err := e.Ctl("dump", dump); err != nil {
		t.Fatalf("ejabberdctl dump: %v %s", err, out)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	spool := e.SpoolDir()
	before := dirDigest(t, spool)

	// --summary --json: every disc table with the node's own row count.
	out, stderr, code := runCLI(t, "", "read", spool, "--summary", "--json")
	if code != 0 {
		t.Fatalf("read --summary: exit %d: %s", code, stderr)
	}
	var sum summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary JSON: %v\n%s", err, out)
	}
	got := map[string]int64{}
	for _, tb := range sum.Tables {
		if tb.Storage != "none" {
			got[tb.Name] = tb.Records
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(live) {
		t.Errorf("summary counts %v\nthe node had %v", got, live)
	}
	if sum.Schema != "mimmigrate.read-summary/1" || sum.Kind != "directory" || sum.Node != e.Name || sum.Records == 0 {
		t.Errorf("summary: kind %s node %s records %d", sum.Kind, sum.Node, sum.Records)
	}

	// JSON lines: one valid object per record.
	out, _, code = runCLI(t, "", "read", spool)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	perTable := map[string]int64{}
	for _, l := range lines {
		var rec struct {
			Table  string          `json:"table"`
			Fields json.RawMessage `json:"fields"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Fields == nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		perTable[rec.Table]++
	}
	if code != 0 || int64(len(lines)) != sum.Records || perTable["passwd"] != live["passwd"] {
		t.Errorf("jsonl: exit %d, %d lines for %d records, passwd %d", code, len(lines), sum.Records, perTable["passwd"])
	}

	// The directory and ejabberdctl's dump of it print the same records.
	fromDir, _, code1 := runCLI(t, "", "read", spool, "--format", "erlang", "--sort")
	fromDump, _, code2 := runCLI(t, "", "read", dump, "--format", "erlang", "--sort")
	_, recsDir, _ := strings.Cut(fromDir, ".\n") // headers differ: a dump does not know table types
	_, recsDump, _ := strings.Cut(fromDump, ".\n")
	if code1 != 0 || code2 != 0 || recsDir != recsDump || len(recsDir) < 10000 {
		t.Errorf("read --format erlang --sort: directory (exit %d, %d bytes) and dump (exit %d, %d bytes) differ",
			code1, len(recsDir), code2, len(recsDump))
	}

	// mnesia:load_textfile loads what --format erlang prints.
	text := filepath.Join(t.TempDir(), "records.txt")
	os.WriteFile(text, []byte(fromDir), 0o644)
	loader := testenv.StartErl(t, testenv.ErlOptions{Prefix: "load", Mnesia: true})
	loader.Eval(t, fmt.Sprintf(`{atomic, ok} = mnesia:load_textfile(%q)`, text))
	loaded := parseSizes(t, loader.Eval(t, tableSizes))
	for tab := range loaded {
		if _, disc := live[tab]; !disc {
			delete(loaded, tab) // RAM tables: only their definitions are in a directory
		}
	}
	if fmt.Sprint(loaded) != fmt.Sprint(live) {
		t.Errorf("load_textfile of our output: %v\nthe node had %v", loaded, live)
	}

	// backup with the node renamed; a fresh node of that name installs it
	// as its fallback and has every table.
	alive := "renamed-" + testenv.RandomID(6)
	newName := alive + "@localhost"
	bup := filepath.Join(t.TempDir(), "spool.BUP")
	out, stderr, code = runCLI(t, "", "backup", spool, "-o", bup, "--rename-node", e.Name+"="+newName)
	if code != 0 || !strings.Contains(out, "Wrote "+bup) {
		t.Fatalf("backup: exit %d\n%s%s", code, out, stderr)
	}
	fresh := testenv.StartErl(t, testenv.ErlOptions{Alive: alive, Mnesia: true})
	fresh.Eval(t, fmt.Sprintf(`ok = mnesia:install_fallback(%q), stopped = mnesia:stop(), ok = mnesia:start(),
ok = mnesia:wait_for_tables(mnesia:system_info(tables), 60000)`, bup))
	restored := parseSizes(t, fresh.Eval(t, tableSizes))
	for tab, n := range live {
		if restored[tab] != n {
			t.Errorf("after install_fallback: %s has %d records, the node had %d", tab, restored[tab], n)
		}
	}

	// rename-node on that backup, back to the original name.
	back := filepath.Join(t.TempDir(), "back.BUP")
	out, stderr, code = runCLI(t, "", "rename-node", bup, "--from", newName, "--to", e.Name, "-o", back)
	if code != 0 {
		t.Fatalf("rename-node: exit %d %s%s", code, out, stderr)
	}
	out, _, _ = runCLI(t, "", "read", back, "--summary", "--json")
	var sum2 summary
	json.Unmarshal([]byte(out), &sum2)
	if sum2.Node != e.Name || sum2.Records != sum.Records {
		t.Errorf("renamed back: node %s, %d records (want %s, %d)", sum2.Node, sum2.Records, e.Name, sum.Records)
	}

	// Refusals and bad input: one line, the right exit code.
	_, stderr, code = runCLI(t, "", "backup", spool, "-o", bup)
	oneLineError(t, stderr, code, exitRefused, "not confirmed", "left as it was")
	_, stderr, code = runCLI(t, "", "backup", spool, "-o", filepath.Join(spool, "x.BUP"), "-f")
	oneLineError(t, stderr, code, exitRefused, "input")
	_, stderr, code = runCLI(t, "", "backup", spool, "-o", filepath.Join(t.TempDir(), "y.BUP"), "--rename-node", "nobody@nowhere="+newName)
	oneLineError(t, stderr, code, exitUsage, "does not appear", e.Name)
	_, stderr, code = runCLI(t, "", "read", spool, "--table", "nosuch")
	oneLineError(t, stderr, code, exitUsage, "no table", "passwd")

	if after := dirDigest(t, spool); after != before {
		t.Error("reading changed the spool directory")
	}
}

func TestReadBadInput(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.bin")
	os.WriteFile(junk, []byte{0, 1, 2, 3, 0xff, 0xfe}, 0o644)
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("hello world.\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	notBackup := filepath.Join(dir, "dump.txt")
	os.WriteFile(notBackup, []byte("{tables,[{t,[{record_name,t},{attributes,[k,v]}]}]}.\n{t,1,2}.\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"read", filepath.Join(dir, "nope")}, exitUsage, []string{"no such file"}},
		{[]string{"read", junk}, exitUsage, []string{"neither"}},
		{[]string{"read", text}, exitUsage, []string{"not a Mnesia text dump"}},
		{[]string{"read", empty}, exitUsage, []string{"empty"}},
		{[]string{"read", notBackup, "--format", "xml"}, exitUsage, []string{"--format"}},
		{[]string{"rename-node", notBackup, "--from", "a@b", "--to", "c@d", "-o", filepath.Join(dir, "o")}, exitUsage, []string{"disk_log"}},
		{[]string{"rename-node", notBackup, "--from", "a", "--to", "c@d", "-o", filepath.Join(dir, "o")}, exitUsage, []string{"not a node name"}},
		{[]string{"backup", notBackup, "-o", filepath.Join(dir, "nodir", "x.BUP")}, exitUsage, []string{"no directory"}},
	} {
		_, stderr, code := runCLI(t, "", c.args...)
		oneLineError(t, stderr, code, c.code, c.want...)
	}
	// A dump is a source like any other: read and backup work on it.
	out, _, code := runCLI(t, "", "read", notBackup)
	if code != 0 || strings.TrimSpace(out) != `{"table":"t","record":"t","fields":{"k":1,"v":2}}` {
		t.Errorf("read dump: exit %d: %s", code, out)
	}
	out, _, code = runCLI(t, "", "backup", notBackup, "-o", filepath.Join(dir, "d.BUP"))
	if code != 0 {
		t.Errorf("backup of a dump: exit %d: %s", code, out)
	}
	out, _, _ = runCLI(t, "", "read", filepath.Join(dir, "d.BUP"), "--format", "erlang")
	if !strings.Contains(out, "{t,1,2}.") {
		t.Errorf("backup of a dump reads back as %q", out)
	}
}
