package mnesia

import (
	"slices"
	"sort"
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// build merges what the nodes answered into a Snapshot.
func (s *Session) build() *Snapshot {
	target := s.raw[s.Target]
	snap := &Snapshot{Schema: SchemaVersion, Target: s.Target, Settings: s.opts.Params}

	// Cluster, as the target sees it; running lists are merged over all nodes.
	dbNodes := atoms(target.sys["db_nodes"])
	runningSet := map[string]bool{}
	for _, r := range s.raw {
		if r.status == NodeRunning {
			for _, n := range atoms(r.sys["running_db_nodes"]) {
				runningSet[n] = true
			}
		}
	}
	snap.Cluster = Cluster{
		DBNodes:          dbNodes,
		RunningDBNodes:   atoms(target.sys["running_db_nodes"]),
		ExtraDBNodes:     atoms(target.sys["extra_db_nodes"]),
		StoppedDBNodes:   []string{},
		MasterNodeTables: map[string][]string{},
		Agree:            true,
	}
	for _, n := range dbNodes {
		if !runningSet[n] {
			snap.Cluster.StoppedDBNodes = append(snap.Cluster.StoppedDBNodes, n)
		}
	}

	// Nodes.
	names := make([]string, 0, len(s.raw))
	for n := range s.raw {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := s.raw[n]
		node := Node{Name: n, Status: r.status, Product: r.product, OTPRelease: r.otp, ERTSVersion: r.erts,
			WordSize: r.wordSize, HeldLocks: []Lock{}, LockQueue: []Lock{}, SchemaCopy: CopyNone}
		if r.err != nil {
			node.Error = r.err.Error()
		}
		if r.status == NodeRunning {
			node.MnesiaVersion = text(r.sys["version"])
			node.Directory = text(r.sys["directory"])
			node.SchemaLocation = text(r.sys["schema_location"])
			node.UseDir = term.IsAtom(r.sys["use_dir"], "true")
			node.DBNodes = atoms(r.sys["db_nodes"])
			node.RunningDBNodes = atoms(r.sys["running_db_nodes"])
			node.ExtraDBNodes = atoms(r.sys["extra_db_nodes"])
			node.MasterNodeTables = atoms(r.sys["master_node_tables"])
			node.HeldLocks = locks(r.sys["held_locks"])
			node.LockQueue = locks(r.sys["lock_queue"])
			node.LocalTables = len(atoms(r.sys["local_tables"]))
			node.Transactions, _ = term.Int(r.sys["transaction_commits"])
			node.TransactionFails, _ = term.Int(r.sys["transaction_failures"])
			if len(node.MasterNodeTables) > 0 {
				snap.Cluster.MasterNodeTables[n] = node.MasterNodeTables
			}
			if strings.Join(node.DBNodes, ",") != strings.Join(dbNodes, ",") {
				snap.Cluster.Agree = false
			}
		}
		if schema, ok := target.tables["schema"]; ok {
			node.SchemaCopy = copyOf(schema, n)
		}
		snap.Nodes = append(snap.Nodes, node)
	}

	// Tables: the target's list, plus any only other nodes know.
	tableNames := map[string]bool{}
	for _, r := range s.raw {
		for t := range r.tables {
			tableNames[t] = true
		}
	}
	var sorted []string
	for t := range tableNames {
		sorted = append(sorted, t)
	}
	sort.Strings(sorted)
	allNodes := append([]string(nil), dbNodes...)
	for _, t := range sorted {
		tab := s.table(t, allNodes)
		if !tab.Agree {
			snap.Cluster.Agree = false
		}
		snap.Tables = append(snap.Tables, tab)
	}
	snap.Diagnostics = diagnose(snap)
	snap.Plan = plan(snap)
	return snap
}

// table merges one table's info from all running nodes.
func (s *Session) table(name string, dbNodes []string) Table {
	target := s.raw[s.Target]
	canon, ok := target.tables[name]
	if !ok {
		for _, n := range sortedRunning(s.raw) {
			if info, ok := s.raw[n].tables[name]; ok {
				canon = info
				break
			}
		}
	}
	attrs := atoms0(canon["attributes"])
	tab := Table{
		Name:         name,
		Type:         text(canon["type"]),
		RecordName:   text(canon["record_name"]),
		Attributes:   attrs,
		Copies:       map[string]CopyType{},
		WhereToRead:  text(canon["where_to_read"]),
		LocalContent: term.IsAtom(canon["local_content"], "true"),
		Majority:     term.IsAtom(canon["majority"], "true"),
		Indexes:      unique(indexNames(canon["index"], attrs)),
		Agree:        true,
		PerNode:      map[string]NodeTable{},
	}
	tab.Loaded = tab.WhereToRead != "" && tab.WhereToRead != "nowhere"
	nodes := append([]string(nil), dbNodes...)
	for _, ct := range []term.Atom{"ram_copies", "disc_copies", "disc_only_copies"} {
		nodes = append(nodes, atoms(canon[ct])...)
	}
	for _, n := range nodes {
		tab.Copies[n] = copyOf(canon, n)
	}
	tab.Volatile = isVolatile(s.productName(), tab)

	// Per node view, and the properties every node must agree on.
	compare := map[string]map[string]string{}
	for _, n := range sortedRunning(s.raw) {
		r := s.raw[n]
		info, ok := r.tables[name]
		if !ok {
			continue
		}
		nt := NodeTable{
			StorageType: storageType(info["storage_type"]),
			WhereToRead: text(info["where_to_read"]),
			LoadNode:    text(info["load_node"]),
			LoadReason:  text(info["load_reason"]),
			MasterNodes: atoms(info["master_nodes"]),
			Indexes:     indexNames(info["index"], atoms0(info["attributes"])),
		}
		if v, ok := term.Int(info["size"]); ok {
			nt.Size = &v
		}
		if nt.StorageType != CopyNone {
			if v, ok := term.Int(info["memory"]); ok {
				if nt.StorageType != CopyDiscOnly && r.wordSize > 0 {
					v *= int64(r.wordSize) // ets reports words, dets bytes
				}
				nt.MemoryBytes = &v
			}
		}
		tab.PerNode[n] = nt
		for field, value := range map[string]string{
			"type":        text(info["type"]),
			"record_name": text(info["record_name"]),
			"attributes":  strings.Join(atoms0(info["attributes"]), ","),
			// Lists that are sets: their order differs from node to
			// node (two nodes that created the same indexes in another
			// order agree).
			"ram_copies":       setText(atoms(info["ram_copies"])),
			"disc_copies":      setText(atoms(info["disc_copies"])),
			"disc_only_copies": setText(atoms(info["disc_only_copies"])),
			"local_content":    text(info["local_content"]),
			"majority":         text(info["majority"]),
			"index":            setText(nt.Indexes),
		} {
			if compare[field] == nil {
				compare[field] = map[string]string{}
			}
			compare[field][n] = value
		}
	}
	var fields []string
	for f := range compare {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		vals := compare[f]
		distinct := map[string]bool{}
		for _, v := range vals {
			distinct[v] = true
		}
		if len(distinct) > 1 {
			tab.Agree = false
			tab.Disagreements = append(tab.Disagreements, Disagreement{Field: f, Values: vals})
		}
	}

	// Size: from the node the target reads from when it reports one, else
	// any node with a loaded local copy. Memory: the largest local copy.
	if nt, ok := tab.PerNode[tab.WhereToRead]; ok && nt.Size != nil && nt.StorageType != CopyNone {
		tab.Size = nt.Size
	}
	for _, n := range sortedRunning(s.raw) {
		nt, ok := tab.PerNode[n]
		if !ok || nt.StorageType == CopyNone {
			continue
		}
		if tab.Size == nil && nt.Size != nil && nt.WhereToRead != "nowhere" {
			tab.Size = nt.Size
		}
		if nt.MemoryBytes != nil && (tab.MemoryBytes == nil || *nt.MemoryBytes > *tab.MemoryBytes) {
			tab.MemoryBytes = nt.MemoryBytes
		}
	}
	if tab.Size == nil {
		if nt, ok := tab.PerNode[s.Target]; ok && tab.Loaded {
			tab.Size = nt.Size
		}
	}
	return tab
}

func (s *Session) productName() string {
	return s.raw[s.Target].product.Name
}

func sortedRunning(raw map[string]*nodeRaw) []string {
	var out []string
	for n, r := range raw {
		if r.status == NodeRunning {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// copyOf reads a node's copy type from a table_info proplist.
func copyOf(info map[term.Atom]term.Term, node string) CopyType {
	for _, ct := range []CopyType{CopyRAM, CopyDisc, CopyDiscOnly} {
		for _, n := range atoms(info[term.Atom(ct)]) {
			if n == node {
				return ct
			}
		}
	}
	return CopyNone
}

func storageType(t term.Term) CopyType {
	switch text(t) {
	case "ram_copies":
		return CopyRAM
	case "disc_copies":
		return CopyDisc
	case "disc_only_copies":
		return CopyDiscOnly
	}
	return CopyNone // unknown: no local copy
}

// atoms0 reads a list of atoms in its own order.
func atoms0(t term.Term) []string {
	elems, _ := term.Elems(t)
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		if a, ok := e.(term.Atom); ok {
			out = append(out, string(a))
		}
	}
	return out
}

// indexNames maps index positions (2 = the first attribute) to attribute names.
func indexNames(t term.Term, attrs []string) []string {
	elems, _ := term.Elems(t)
	out := []string{}
	for _, e := range elems {
		if tu, ok := e.(term.Tuple); ok && len(tu) > 0 { // {Pos, Type} in newer Mnesia
			e = tu[0]
		}
		if p, ok := term.Int(e); ok && p >= 2 && int(p-2) < len(attrs) {
			out = append(out, attrs[p-2])
		} else {
			out = append(out, term.Format(e))
		}
	}
	return out
}

// unique drops repeated names, keeping the first of each.
// setText writes a list whose order means nothing: sorted, once each.
func setText(xs []string) string {
	u := unique(xs)
	sort.Strings(u)
	return strings.Join(u, ",")
}

func unique(xs []string) []string {
	out := []string{}
	for _, x := range xs {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// locks reads held_locks / lock_queue entries: {{Tab, Key}, Kind, Owner, ...}.
func locks(t term.Term) []Lock {
	elems, _ := term.Elems(t)
	out := []Lock{}
	for _, e := range elems {
		l := Lock{}
		if tu, ok := e.(term.Tuple); ok && len(tu) >= 3 {
			if oid, ok := tu[0].(term.Tuple); ok && len(oid) == 2 {
				l.Table, l.Key = text(oid[0]), term.Format(oid[1])
			} else {
				l.Table = text(tu[0])
			}
			l.Kind = text(tu[1])
			l.Owner = term.Format(tu[len(tu)-1])
			if len(tu) >= 5 { // lock queue: {Oid, Op, Pid, Tid, WaitForTid}
				l.Owner = term.Format(tu[3])
			}
		} else {
			l.Kind = term.Format(e)
		}
		out = append(out, l)
	}
	return out
}
