package mnesia

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The snapshots in testdata/snapshots were captured from the real test
// clusters of cmd/mimmigrate (MIMMIGRATE_CAPTURE_SNAPSHOTS=DIR go test
// -run 'TestBrokenEjabberdCluster|TestPlainMnesiaCluster|TestTableNotLoaded|TestInspectRabbitMQ'
// ./cmd/mimmigrate/): a two-node ejabberd 23.01 cluster with five tables
// dropped from the second node, which is stopped (broken), then after
// remove-node (repaired); three plain erl nodes with a table of every kind
// and master nodes set on one; a table waiting for a stopped node; a
// RabbitMQ node. These tests run the pure functions on them: what each
// finds, and what each mutation of a real snapshot makes them find.

// load reads a captured snapshot, its diagnostics and plan dropped.
func load(t *testing.T, name string) *Snapshot {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "snapshots", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	s.Diagnostics, s.Plan = nil, nil
	return &s
}

// short names a snapshot's nodes n1, n2, … in db node order, for readable
// expectations.
func short(s *Snapshot) func(string) string {
	names := map[string]string{}
	for i, n := range sortedDBNodes(s) {
		names[n] = fmt.Sprintf("n%d", i+1)
	}
	return func(n string) string {
		if v, ok := names[n]; ok {
			return v
		}
		return n
	}
}

func codes(s *Snapshot, ds []Diagnostic) []string {
	sh := short(s)
	out := []string{}
	for _, d := range ds {
		f := []string{d.Severity, d.Code}
		for _, x := range []string{sh(d.Node), d.Table} {
			if x != "" {
				f = append(f, x)
			}
		}
		out = append(out, strings.Join(f, " "))
	}
	sort.Strings(out)
	return out
}

func sortedDBNodes(s *Snapshot) []string {
	out := append([]string(nil), s.Cluster.DBNodes...)
	sort.Strings(out)
	return out
}

func nodeNamed(s *Snapshot, short string) string {
	for i, n := range sortedDBNodes(s) {
		if fmt.Sprintf("n%d", i+1) == short {
			return n
		}
	}
	return short
}

func nodeByName(s *Snapshot, name string) *Node {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i]
		}
	}
	return nil
}

func tableNamed(s *Snapshot, name string) *Table {
	for i := range s.Tables {
		if s.Tables[i].Name == name {
			return &s.Tables[i]
		}
	}
	return nil
}

func i64(v int64) *int64 { return &v }

func TestDiagnoseSnapshots(t *testing.T) {
	cases := []struct {
		name, snapshot string
		mutate         func(s *Snapshot)
		want           []string
	}{
		{"broken ejabberd cluster", "brokenejabberdcluster-broken", nil, []string{
			"warning remote-only n2 muc_room", "warning remote-only n2 offline_msg", "warning remote-only n2 private_storage",
			"warning remote-only n2 roster", "warning remote-only n2 vcard",
			"warning single-copy n1 muc_room", "warning single-copy n1 offline_msg", "warning single-copy n1 private_storage",
			"warning single-copy n1 roster", "warning single-copy n1 vcard",
			"warning stopped-db-node n2"}},
		{"repaired ejabberd cluster", "brokenejabberdcluster-repaired", nil, []string{}},
		{"rabbitmq", "inspectrabbitmq", nil, []string{}},
		// n1 = a (t_disc on a and b, t_ram on a, t_single on a, t_ord
		// everywhere), n2 = b (master nodes set), n3 = c.
		{"plain mnesia cluster", "plainmnesiacluster", nil, []string{
			"warning master-nodes-set n2", "warning no-disc-copy t_ram",
			"warning remote-only n2 t_ram", "warning remote-only n2 t_single",
			"warning remote-only n3 t_disc", "warning remote-only n3 t_ram", "warning remote-only n3 t_single",
			"warning single-copy n1 t_ram", "warning single-copy n1 t_single"}},
		{"table waiting for a stopped node", "tablenotloaded", nil, []string{
			"critical table-not-loaded n1 shared", "warning stopped-db-node n2"}},
		// Mutations of real snapshots: each branch of diagnose.
		{"a node answers without Mnesia", "brokenejabberdcluster-broken", func(s *Snapshot) {
			s.Nodes[1].Status = NodeMnesiaStopped
		}, []string{"warning mnesia-not-running n2"}},
		{"a running node cannot be reached", "brokenejabberdcluster-broken", func(s *Snapshot) {
			s.Nodes[1].Status = NodeUnreachable
		}, []string{"warning unreachable-db-node n2"}},
		{"a node with another view of the db nodes", "plainmnesiacluster", func(s *Snapshot) {
			n := nodeByName(s, nodeNamed(s, "n2"))
			n.DBNodes = n.DBNodes[:1]
		}, []string{"critical db-nodes-differ n2"}},
		{"a schema in RAM", "brokenejabberdcluster-repaired", func(s *Snapshot) {
			s.Nodes[0].SchemaCopy = CopyRAM
		}, []string{"warning ram-schema n1 schema"}},
		{"waiting lock requests", "brokenejabberdcluster-repaired", func(s *Snapshot) {
			s.Nodes[0].LockQueue = []Lock{{Table: "passwd", Key: "alice", Kind: "write", Owner: "<0.1.0>"}}
		}, []string{"info lock-queue n1"}},
		{"running nodes disagree on a table", "plainmnesiacluster", func(s *Snapshot) {
			t := tableNamed(s, "t_disc")
			t.Agree = false
			t.Disagreements = []Disagreement{{Field: "disc_copies", Values: map[string]string{"a": "x", "b": "y"}}}
		}, []string{"critical copies-differ t_disc"}},
		{"a DETS file at 80% of 2 GiB", "brokenejabberdcluster-repaired", func(s *Snapshot) {
			t := tableNamed(s, "passwd")
			nt := t.PerNode[s.Target]
			nt.MemoryBytes = i64(DETSLimit / 10 * 8)
			t.PerNode[s.Target] = nt
		}, []string{"warning dets-size-limit n1 passwd"}},
		{"a DETS file at 95% of 2 GiB", "brokenejabberdcluster-repaired", func(s *Snapshot) {
			t := tableNamed(s, "passwd")
			nt := t.PerNode[s.Target]
			nt.MemoryBytes = i64(DETSLimit / 100 * 95)
			t.PerNode[s.Target] = nt
		}, []string{"critical dets-size-limit n1 passwd"}},
		{"an index listed twice after set-copy", "brokenejabberdcluster-repaired", func(s *Snapshot) {
			t := tableNamed(s, "roster")
			nt := t.PerNode[s.Target]
			nt.Indexes = []string{"us", "us"}
			t.PerNode[s.Target] = nt
		}, []string{"warning duplicate-index n1 roster"}},
		{"a table's every copy is in RAM", "brokenejabberdcluster-repaired", func(s *Snapshot) {
			t := tableNamed(s, "passwd")
			for n := range t.Copies {
				if t.Copies[n] != CopyNone {
					t.Copies[n] = CopyRAM
				}
			}
		}, []string{"warning no-disc-copy passwd"}},
		{"a volatile table in RAM is no problem", "brokenejabberdcluster-repaired", func(s *Snapshot) {
			t := tableNamed(s, "passwd")
			t.Volatile = true
			for n := range t.Copies {
				if t.Copies[n] != CopyNone {
					t.Copies[n] = CopyRAM
				}
			}
		}, []string{}},
		{"the only holder of a table is stopped", "brokenejabberdcluster-broken", func(s *Snapshot) {
			s.Nodes[0].Status, s.Nodes[1].Status = NodeStopped, NodeRunning
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := load(t, c.snapshot)
			got := codes(s, diagnose(s))
			if c.mutate != nil {
				base := got
				c.mutate(s)
				got = codes(s, diagnose(s))
				if c.want == nil {
					// The remote-only copies of the stopped holder's
					// tables become critical: nothing holding them runs.
					crit := 0
					for _, g := range got {
						if strings.HasPrefix(g, "critical remote-only n2") {
							crit++
						}
					}
					if crit != 5 {
						t.Errorf("critical remote-only on n2: %d of 5 in %v", crit, got)
					}
					return
				}
				// What the mutation adds to what the snapshot had.
				added := []string{}
				for _, g := range got {
					if !slices.Contains(base, g) {
						added = append(added, g)
					}
				}
				got = added
			}
			if c.want != nil && fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("diagnostics:\n got  %v\n want %v", got, c.want)
			}
		})
	}
}

func TestPlanSnapshots(t *testing.T) {
	cases := []struct {
		snapshot string
		want     []string // table n: from -> to
	}{
		// The stopped node is left out; the RAM-only tables stay in RAM;
		// everything else becomes disc_copies on the running node.
		{"brokenejabberdcluster-broken", nil},
		{"plainmnesiacluster", []string{
			"t_disc n3: none -> disc_copies",
			"t_ram n1: ram_copies -> disc_copies", "t_ram n2: none -> disc_copies", "t_ram n3: none -> disc_copies",
			"t_single n1: disc_only_copies -> disc_copies", "t_single n2: none -> disc_copies", "t_single n3: none -> disc_copies"}},
		{"tablenotloaded", []string{}},
	}
	for _, c := range cases {
		s := load(t, c.snapshot)
		sh := short(s)
		got := []string{}
		for _, p := range plan(s) {
			if p.Node == "" || !strings.HasPrefix(p.Command, "mimmigrate set-copy --node "+s.Target) {
				t.Errorf("%s: step %+v", c.snapshot, p)
			}
			got = append(got, fmt.Sprintf("%s %s: %s -> %s", p.Table, sh(p.Node), p.From, p.To))
		}
		sort.Strings(got)
		if c.want == nil {
			for _, g := range got {
				if strings.Contains(g, " n2:") || strings.Contains(g, "-> ram_copies") && !strings.HasPrefix(g, "session") {
					t.Errorf("%s: step %s (the stopped node is left out; only volatile tables go to RAM)", c.snapshot, g)
				}
			}
			if len(got) == 0 {
				t.Errorf("%s: no plan", c.snapshot)
			}
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s:\n got  %v\n want %v", c.snapshot, got, c.want)
		}
	}
}

func TestPlanCopyChangeSnapshots(t *testing.T) {
	cases := []struct {
		snapshot, table, node string
		to                    CopyType
		want                  string // "call …", "noop", "refuse: …", "bad input: …"
		warning               string // a substring of one warning
	}{
		{"plainmnesiacluster", "t_single", "n2", CopyDiscOnly, "call mnesia:add_table_copy(t_single, N2, disc_only_copies)", "records are copied"},
		{"plainmnesiacluster", "t_ram", "n1", CopyDisc, "call mnesia:change_table_copy_type(t_ram, N1, disc_copies)", ""},
		{"plainmnesiacluster", "t_disc", "n2", CopyNone, "call mnesia:del_table_copy(t_disc, N2)", "single copy left"},
		{"plainmnesiacluster", "t_disc", "n1", CopyDisc, "noop", ""},
		{"plainmnesiacluster", "t_disc", "n1", CopyDiscOnly, "call mnesia:change_table_copy_type(t_disc, N1, disc_only_copies)", "indexes twice"},
		{"plainmnesiacluster", "t_single", "n1", CopyNone, "refuse: holds the last copy", ""},
		{"plainmnesiacluster", "t_ord", "n1", CopyDiscOnly, "refuse: ordered_set", ""},
		{"plainmnesiacluster", "schema", "n1", CopyNone, "refuse: removes the node", ""},
		{"plainmnesiacluster", "schema", "n1", CopyDiscOnly, "refuse: cannot be disc_only_copies", ""},
		{"plainmnesiacluster", "t_sngle", "n1", CopyDisc, "bad input: no table \"t_sngle\"", ""},
		{"plainmnesiacluster", "t_disc", "ghost@nowhere", CopyDisc, "bad input: not a db node", ""},
		{"brokenejabberdcluster-broken", "roster", "n2", CopyDisc, "refuse: is not running", ""},
		{"brokenejabberdcluster-repaired", "roster", "n1", CopyDisc, "call mnesia:change_table_copy_type(roster, N1, disc_copies)", "indexes twice"},
		{"brokenejabberdcluster-repaired", "passwd", "n1", CopyRAM, "call mnesia:change_table_copy_type(passwd, N1, ram_copies)", "no disc copy"},
	}
	for _, c := range cases {
		s := load(t, c.snapshot)
		node := nodeNamed(s, c.node)
		ch := PlanCopyChange(s, c.table, node, c.to)
		var got string
		switch {
		case ch.Refusal != nil && ch.Refusal.BadInput:
			got = "bad input: " + ch.Refusal.Reason
		case ch.Refusal != nil:
			got = "refuse: " + ch.Refusal.Reason
		case ch.NoOp:
			got = "noop"
		default:
			got = "call " + strings.ReplaceAll(ch.Call, node, strings.ToUpper(c.node))
		}
		want, _ := strings.CutPrefix(c.want, "")
		if strings.HasPrefix(want, "call ") || want == "noop" {
			if got != want {
				t.Errorf("%s %s on %s to %s: %s, want %s", c.snapshot, c.table, c.node, c.to, got, want)
			}
		} else if kind, reason, _ := strings.Cut(want, ": "); !strings.HasPrefix(got, kind+": ") || !strings.Contains(got, reason) {
			t.Errorf("%s %s on %s to %s: %s, want %s", c.snapshot, c.table, c.node, c.to, got, want)
		}
		if c.warning != "" && !strings.Contains(strings.Join(ch.Warnings, "\n"), c.warning) {
			t.Errorf("%s %s on %s to %s: warnings %q lack %q", c.snapshot, c.table, c.node, c.to, ch.Warnings, c.warning)
		}
	}
}

func TestPlanRemovalSnapshots(t *testing.T) {
	s := load(t, "brokenejabberdcluster-broken")
	n1, n2 := nodeNamed(s, "n1"), nodeNamed(s, "n2")
	r := PlanRemoval(s, n2)
	if r.Refusal != nil || len(r.Losing) == 0 {
		t.Fatalf("removal of the stopped node: %+v", r)
	}
	for _, l := range r.Losing {
		if len(l.Remaining) == 0 || l.Remaining[0] != n1 {
			t.Errorf("%s loses its copy without one left on n1: %+v", l.Table, l)
		}
	}
	for _, c := range []struct {
		node, want string
		bad        bool
	}{{n1, "the node the removal would run on", false}, {"ghost@nowhere", "not a db node", true}} {
		r := PlanRemoval(s, c.node)
		if r.Refusal == nil || !strings.Contains(r.Refusal.Reason, c.want) || r.Refusal.BadInput != c.bad {
			t.Errorf("removal of %s: %+v", c.node, r.Refusal)
		}
	}
	// The stopped node holding a table's only copy: refused.
	sole := load(t, "brokenejabberdcluster-broken")
	tbl := tableNamed(sole, "roster")
	tbl.Copies[n1], tbl.Copies[n2] = CopyNone, CopyDisc
	if r := PlanRemoval(sole, n2); r.Refusal == nil || !strings.Contains(r.Refusal.Reason, "last copy of roster") {
		t.Errorf("removal of the last copy's holder: %+v", r.Refusal)
	}
	// A running node: refused.
	up := load(t, "plainmnesiacluster")
	if r := PlanRemoval(up, nodeNamed(up, "n2")); r.Refusal == nil || !strings.Contains(r.Refusal.Reason, "is running") {
		t.Errorf("removal of a running node: %+v", r.Refusal)
	}
}
