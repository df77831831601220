package mnesia

import (
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Running nodes that disagree on a table's copies cannot be produced on
// demand with real Mnesia (its schema transactions keep them in step); this
// injects two nodes' answers that differ, in addition to the real-cluster tests.
func TestDisagreeingNodes(t *testing.T) {
	nodes := term.List{term.Atom("a@h"), term.Atom("b@h")}
	sys := func() map[term.Atom]term.Term {
		return map[term.Atom]term.Term{"db_nodes": nodes, "running_db_nodes": nodes, "tables": term.List{term.Atom("t")},
			"version": term.Charlist("4.21.3"), "local_tables": term.List{term.Atom("t")}}
	}
	info := func(disc term.List) map[term.Atom]term.Term {
		return map[term.Atom]term.Term{"type": term.Atom("set"), "record_name": term.Atom("t"),
			"attributes": term.List{term.Atom("k"), term.Atom("v")}, "ram_copies": term.List{},
			"disc_copies": disc, "disc_only_copies": term.List{}, "local_content": term.False,
			"majority": term.False, "index": term.List{}, "where_to_read": term.Atom("a@h"),
			"size": int64(3), "memory": int64(100), "storage_type": term.Atom("disc_copies")}
	}
	s := &Session{opts: Options{Params: DefaultParams()}, Target: "a@h", raw: map[string]*nodeRaw{
		"a@h": {name: "a@h", status: NodeRunning, sys: sys(), wordSize: 8,
			tables: map[string]map[term.Atom]term.Term{"t": info(nodes)}},
		"b@h": {name: "b@h", status: NodeRunning, sys: sys(), wordSize: 8,
			tables: map[string]map[term.Atom]term.Term{"t": info(term.List{term.Atom("b@h")})}},
	}}
	snap := s.build()
	if snap.Cluster.Agree || snap.Tables[0].Agree {
		t.Fatal("disagreement not noticed")
	}
	d := snap.Tables[0].Disagreements
	if len(d) != 1 || d[0].Field != "disc_copies" || d[0].Values["a@h"] != "a@h,b@h" || d[0].Values["b@h"] != "b@h" {
		t.Errorf("disagreements: %+v", d)
	}
	found := false
	for _, diag := range snap.Diagnostics {
		found = found || (diag.Code == CodeCopiesDiffer && diag.Severity == SevCritical && diag.Table == "t")
	}
	if !found {
		t.Errorf("no copies-differ diagnostic: %+v", snap.Diagnostics)
	}
	// Memory of an ets copy is reported in words.
	if mb := snap.Tables[0].PerNode["a@h"].MemoryBytes; mb == nil || *mb != 800 {
		t.Errorf("memory bytes: %v", mb)
	}
}

// DETS files near the 2 GiB limit get warnings, then a critical diagnostic.
func TestDETSLimitThresholds(t *testing.T) {
	p := DefaultParams()
	mk := func(bytes int64) *Snapshot {
		return &Snapshot{Target: "a@h", Settings: p,
			Cluster: Cluster{DBNodes: []string{"a@h"}},
			Nodes:   []Node{{Name: "a@h", Status: NodeRunning, DBNodes: []string{"a@h"}}},
			Tables: []Table{{Name: "archive_msg", Type: "bag", Copies: map[string]CopyType{"a@h": CopyDiscOnly},
				Loaded: true, WhereToRead: "a@h",
				PerNode: map[string]NodeTable{"a@h": {StorageType: CopyDiscOnly, MemoryBytes: &bytes, WhereToRead: "a@h"}}}}}
	}
	for _, c := range []struct {
		bytes int64
		sev   string
	}{{1 << 30, ""}, {1700 << 20, SevWarning}, {1950 << 20, SevCritical}} {
		got := ""
		for _, d := range diagnose(mk(c.bytes)) {
			if d.Code == CodeDETSLimit {
				got = d.Severity
			}
		}
		if got != c.sev {
			t.Errorf("%d bytes: severity %q, want %q", c.bytes, got, c.sev)
		}
	}
	// The plan keeps a very large disc_only table on disc only.
	big := int64(3 << 30)
	s := mk(big)
	s.Tables[0].MemoryBytes = &big
	if steps := plan(s); len(steps) != 0 {
		t.Errorf("plan for a large disc_only table: %+v", steps)
	}
	small := int64(1 << 20)
	s.Tables[0].MemoryBytes = &small
	if steps := plan(s); len(steps) != 1 || steps[0].To != CopyDisc {
		t.Errorf("plan for a small disc_only table: %+v", steps)
	}
}

// Two nodes that created the same indexes in another order (ejabberd's
// session table on a joined node does) agree: indexes and copy lists are
// sets.
func TestIndexOrderAgrees(t *testing.T) {
	nodes := term.List{term.Atom("a@h"), term.Atom("b@h")}
	sys := map[term.Atom]term.Term{"db_nodes": nodes, "running_db_nodes": nodes, "tables": term.List{term.Atom("t")},
		"version": term.Charlist("4.21.3"), "local_tables": term.List{term.Atom("t")}}
	info := func(index, ram term.List) map[term.Atom]term.Term {
		return map[term.Atom]term.Term{"type": term.Atom("set"), "record_name": term.Atom("t"),
			"attributes": term.List{term.Atom("k"), term.Atom("us"), term.Atom("usr")}, "ram_copies": ram,
			"disc_copies": term.List{}, "disc_only_copies": term.List{}, "local_content": term.False,
			"majority": term.False, "index": index, "where_to_read": term.Atom("a@h"),
			"size": int64(0), "memory": int64(100), "storage_type": term.Atom("ram_copies")}
	}
	s := &Session{opts: Options{Params: DefaultParams()}, Target: "a@h", raw: map[string]*nodeRaw{
		"a@h": {name: "a@h", status: NodeRunning, sys: sys, wordSize: 8,
			tables: map[string]map[term.Atom]term.Term{"t": info(term.List{int64(4), int64(3)}, nodes)}},
		"b@h": {name: "b@h", status: NodeRunning, sys: sys, wordSize: 8,
			tables: map[string]map[term.Atom]term.Term{"t": info(term.List{int64(3), int64(4)}, term.List{term.Atom("b@h"), term.Atom("a@h")})}},
	}}
	snap := s.build()
	if !snap.Tables[0].Agree {
		t.Errorf("the same indexes and copies in another order: %+v", snap.Tables[0].Disagreements)
	}
}
