package mnesia

import (
	"fmt"
	"sort"
	"strings"
)

// Diagnostic codes (stable: scripts match on them).
const (
	CodeStoppedDBNode   = "stopped-db-node"
	CodeMnesiaStopped   = "mnesia-not-running"
	CodeUnreachable     = "unreachable-db-node"
	CodeDBNodesDiffer   = "db-nodes-differ"
	CodeNotLoaded       = "table-not-loaded"
	CodeNoDiscCopy      = "no-disc-copy"
	CodeSingleCopy      = "single-copy"
	CodeRemoteOnly      = "remote-only"
	CodeDETSLimit       = "dets-size-limit"
	CodeCopiesDiffer    = "copies-differ"
	CodeMasterNodes     = "master-nodes-set"
	CodeRAMSchema       = "ram-schema"
	CodeLockQueue       = "lock-queue"
	CodeTableDisagrees  = "table-definition-differs"
	CodeDuplicateIndex  = "duplicate-index"
	definitionFieldsSep = ", "
)

func setCopyCmd(target, table, node string, to CopyType) string {
	return fmt.Sprintf("mimmigrate set-copy --node %s --table %s --on %s --type %s", target, table, node, to)
}

// diagnose lists what blocks failover or risks data, each with a fix.
func diagnose(s *Snapshot) []Diagnostic {
	var out []Diagnostic
	add := func(sev, code, node, table, fix, format string, args ...any) {
		out = append(out, Diagnostic{Severity: sev, Code: code, Node: node, Table: table,
			Message: fmt.Sprintf(format, args...), Fix: fix})
	}
	status := map[string]string{}
	var running []string
	for _, n := range s.Nodes {
		status[n.Name] = n.Status
		if n.Status == NodeRunning {
			running = append(running, n.Name)
		}
	}
	isUp := func(n string) bool { return status[n] == NodeRunning }

	// Nodes.
	for _, n := range s.Nodes {
		switch n.Status {
		case NodeStopped:
			add(SevWarning, CodeStoppedDBNode, n.Name, "",
				fmt.Sprintf("mimmigrate remove-node --node %s %s", s.Target, n.Name),
				"%s is a db node in the schema but is not running (start it, or remove it if it is gone for good)", n.Name)
		case NodeMnesiaStopped:
			add(SevWarning, CodeMnesiaStopped, n.Name, "",
				fmt.Sprintf("start Mnesia on %s (ejabberdctl start, or mnesia:start()), or: mimmigrate remove-node --node %s %s", n.Name, s.Target, n.Name),
				"%s answers, but Mnesia is not running on it", n.Name)
		case NodeUnreachable:
			add(SevWarning, CodeUnreachable, n.Name, "",
				fmt.Sprintf("check the network path and cookie from here to %s: mimmigrate inspect --node %s", n.Name, n.Name),
				"Mnesia lists %s as running, but mimmigrate cannot reach it: %s", n.Name, n.Error)
		case NodeRunning:
			if strings.Join(n.DBNodes, ",") != strings.Join(s.Cluster.DBNodes, ",") {
				add(SevCritical, CodeDBNodesDiffer, n.Name, "",
					fmt.Sprintf("restart Mnesia on %s so it reloads the schema, then run inspect again", n.Name),
					"%s has db nodes [%s], %s has [%s]", n.Name, strings.Join(n.DBNodes, ", "), s.Target, strings.Join(s.Cluster.DBNodes, ", "))
			}
			if n.SchemaCopy == CopyRAM {
				add(SevWarning, CodeRAMSchema, n.Name, "schema", setCopyCmd(s.Target, "schema", n.Name, CopyDisc),
					"%s keeps the schema in RAM only: after a restart it has no disc tables and must rejoin", n.Name)
			}
			if len(n.MasterNodeTables) > 0 {
				add(SevWarning, CodeMasterNodes, n.Name, "",
					fmt.Sprintf("on %s: mnesia:set_master_nodes([])", n.Name),
					"%s has master nodes set for %d table(s) (%s): it loads them only from those nodes", n.Name,
					len(n.MasterNodeTables), abbreviate(n.MasterNodeTables, 5))
			}
			if len(n.LockQueue) > 0 {
				add(SevInfo, CodeLockQueue, n.Name, "",
					fmt.Sprintf("if it does not drain, look for a stuck transaction: mnesia:system_info(lock_queue) on %s", n.Name),
					"%s has %d lock request(s) waiting and %d lock(s) held", n.Name, len(n.LockQueue), len(n.HeldLocks))
			}
		}
	}

	multi := len(s.Cluster.DBNodes) > 1
	for _, t := range s.Tables {
		if !t.Agree {
			var parts []string
			for _, d := range t.Disagreements {
				parts = append(parts, d.Field+": "+describeValues(d.Values))
			}
			add(SevCritical, CodeCopiesDiffer, "", t.Name,
				"restart Mnesia on the node with the stale view so it reloads the schema, then run inspect again",
				"running nodes disagree on %s: %s", t.Name, strings.Join(parts, "; "))
		}
		if t.Name == "schema" {
			continue
		}
		holders := holdersOf(t)
		var upHolders, discHolders []string
		for _, n := range holders {
			if isUp(n) {
				upHolders = append(upHolders, n)
			}
			if t.Copies[n].OnDisc() {
				discHolders = append(discHolders, n)
			}
		}
		// Not loaded on some running node.
		for _, n := range running {
			nt, ok := t.PerNode[n]
			if !ok || nt.WhereToRead != "nowhere" {
				continue
			}
			var stoppedHolders []string
			for _, h := range holders {
				if !isUp(h) {
					stoppedHolders = append(stoppedHolders, h)
				}
			}
			why := "none of its copies is loaded"
			fix := fmt.Sprintf("on %s: mnesia:force_load_table(%s) (only if no other node has newer data)", n, t.Name)
			if len(stoppedHolders) > 0 {
				why = "it waits for " + strings.Join(stoppedHolders, ", ") + ", which is not running"
				fix = fmt.Sprintf("start %s; or, if it is lost: on %s, mnesia:force_load_table(%s)", stoppedHolders[0], n, t.Name)
			}
			add(SevCritical, CodeNotLoaded, n, t.Name, fix, "%s is not loaded on %s: %s", t.Name, n, why)
		}
		if len(discHolders) == 0 && !t.Volatile && len(holders) > 0 {
			on := firstOf(upHolders, s.Target)
			add(SevWarning, CodeNoDiscCopy, "", t.Name, setCopyCmd(s.Target, t.Name, on, CopyDisc),
				"%s has no disc copy on any node: it is lost when every node holding it stops", t.Name)
		}
		if multi && !t.LocalContent && len(holders) == 1 {
			fix := "add a db node and give it a copy with mimmigrate set-copy"
			if other := otherNode(s.Cluster.DBNodes, holders[0], isUp); other != "" {
				fix = setCopyCmd(s.Target, t.Name, other, desiredFor(t, s.Settings))
				if !isUp(other) {
					fix = "after starting " + other + ": " + fix
				}
			}
			add(SevWarning, CodeSingleCopy, holders[0], t.Name, fix,
				"%s has a copy only on %s: if that node fails, the table is unavailable", t.Name, holders[0])
		}
		if multi && !t.LocalContent && len(holders) > 0 {
			for _, n := range s.Cluster.DBNodes {
				if t.Copies[n] != CopyNone {
					continue
				}
				sev := SevWarning
				extra := ""
				if len(upHolders) == 0 {
					sev = SevCritical
					extra = "; no node holding it runs now"
				}
				fix := setCopyCmd(s.Target, t.Name, n, desiredFor(t, s.Settings))
				if !isUp(n) {
					fix = "after starting " + n + ": " + fix
				}
				add(sev, CodeRemoteOnly, n, t.Name, fix,
					"%s holds no copy of %s (remote only): it cannot start on its own%s", n, t.Name, extra)
			}
		}
		for _, n := range SortedKeys(t.PerNode) {
			if idx := t.PerNode[n].Indexes; len(idx) > len(unique(idx)) {
				add(SevWarning, CodeDuplicateIndex, n, t.Name,
					fmt.Sprintf("restart Mnesia on %s (ejabberdctl restart there, or mnesia:stop() and mnesia:start()): it reloads the index list from the schema", n),
					"%s's running Mnesia lists the indexes of %s as [%s] where the schema has [%s]: every write updates an index twice (Mnesia 4.x does this after change_table_copy_type of an indexed table)",
					n, t.Name, strings.Join(idx, ", "), strings.Join(unique(idx), ", "))
			}
		}
		for _, n := range SortedKeys(t.PerNode) {
			nt := t.PerNode[n]
			if nt.StorageType != CopyDiscOnly || nt.MemoryBytes == nil || *nt.MemoryBytes < s.Settings.DETSWarnBytes {
				continue
			}
			sev := SevWarning
			if *nt.MemoryBytes >= s.Settings.DETSCritBytes {
				sev = SevCritical
			}
			add(sev, CodeDETSLimit, n, t.Name,
				fmt.Sprintf("move it out (mimmigrate export), delete old rows, or if RAM allows: %s", setCopyCmd(s.Target, t.Name, n, CopyDisc)),
				"%s on %s is a %s DETS file, %d%% of the 2 GiB limit: writes fail at the limit",
				t.Name, n, HumanBytes(*nt.MemoryBytes), *nt.MemoryBytes*100/DETSLimit)
		}
	}
	sevRank := map[string]int{SevCritical: 0, SevWarning: 1, SevInfo: 2}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if sevRank[a.Severity] != sevRank[b.Severity] {
			return sevRank[a.Severity] < sevRank[b.Severity]
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		return a.Table < b.Table
	})
	if out == nil {
		out = []Diagnostic{}
	}
	return out
}

// otherNode picks a db node other than not, running ones first.
func otherNode(nodes []string, not string, isUp func(string) bool) string {
	fallback := ""
	for _, n := range nodes {
		if n == not {
			continue
		}
		if isUp(n) {
			return n
		}
		if fallback == "" {
			fallback = n
		}
	}
	return fallback
}

// holdersOf lists the nodes with a copy of t, sorted.
func holdersOf(t Table) []string {
	var out []string
	for _, n := range SortedKeys(t.Copies) {
		if t.Copies[n] != CopyNone {
			out = append(out, n)
		}
	}
	return out
}

// SortedKeys returns a map's keys in order.
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func firstOf(xs []string, fallback string) string {
	if len(xs) > 0 {
		return xs[0]
	}
	return fallback
}

func abbreviate(xs []string, n int) string {
	if len(xs) <= n {
		return strings.Join(xs, ", ")
	}
	return strings.Join(xs[:n], ", ") + fmt.Sprintf(", and %d more", len(xs)-n)
}

func describeValues(vals map[string]string) string {
	var parts []string
	for _, n := range SortedKeys(vals) {
		v := vals[n]
		if v == "" {
			v = "[]"
		}
		parts = append(parts, n+"="+v)
	}
	return strings.Join(parts, definitionFieldsSep)
}

// HumanBytes prints a byte count with a binary unit.
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
