// Package mnesiaread reads Mnesia data without Erlang: a node's Mnesia
// directory (as Mnesia itself would load it at startup), a backup file, or a
// text dump. Every source yields the same thing: table definitions and a
// stream of records as Erlang terms, plus a report of what was damaged,
// orphaned or uncertain. Inputs are only ever opened for reading, and the
// records stream: memory does not grow with the size of the files.
package mnesiaread

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Table is a table as the source knows it.
type Table struct {
	Name       string
	Type       string // set, bag, ordered_set (or duplicate_bag for raw DETS)
	RecordName string
	Attributes []string
	// Copies maps a copy type (ram_copies, disc_copies, disc_only_copies) to
	// the nodes holding one, from the schema.
	Copies       map[string][]string
	LocalContent bool
	// Storage is how this source holds the table's data: disc_copies (DCD
	// and DCL), disc_only_copies (DETS), backup, dump, or none (a RAM table:
	// only its definition is here).
	Storage string
	// Def is the schema's create list ([{name, T}, {type, set}, ...]): what
	// a backup needs to recreate the table.
	Def term.List
}

// HasData reports whether the source holds the table's records.
func (t Table) HasData() bool { return t.Storage != StorageNone }

// Storage kinds.
const (
	StorageDisc     = "disc_copies"
	StorageDiscOnly = "disc_only_copies"
	StorageBackup   = "backup"
	StorageDump     = "dump"
	StorageNone     = "none"
)

// Problem is something a reader met: damage, orphans, uncertain
// transactions, leftovers of an interrupted operation.
type Problem struct {
	Kind   string // see the Problem kinds
	File   string // base name of the file, when it concerns one
	Offset int64  // byte offset in File, or -1
	Table  string
	Detail string
}

// Problem kinds.
const (
	ProblemDamage    = "damage"    // unreadable bytes, skipped
	ProblemOrphan    = "orphan"    // DETS collection outside the hash structure
	ProblemUncertain = "uncertain" // a transaction whose outcome is unknown
	ProblemNote      = "note"      // worth knowing: not closed, leftovers, fallback
)

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Kind)
	if p.File != "" {
		b.WriteString(" in " + p.File)
		if p.Offset >= 0 {
			fmt.Fprintf(&b, " at %d", p.Offset)
		}
	}
	if p.Table != "" {
		b.WriteString(" (table " + p.Table + ")")
	}
	b.WriteString(": " + p.Detail)
	return b.String()
}

// Source is a place records come from.
type Source interface {
	// Kind is "directory", "backup" or "dump".
	Kind() string
	// Node is the node that wrote the data, when it says so.
	Node() string
	// Tables lists the tables, sorted by name.
	Tables() []Table
	// Records streams the records of the named tables (all when tables is
	// empty), table by table. rec is the record's term_to_binary, valid only
	// during the call; its first element is the record name.
	Records(tables []string, fn func(table string, rec []byte) error) error
	// Problems lists what the source met so far (complete after Records).
	Problems() []Problem
	Close() error
}

// Nodes lists the nodes a source names: the node that wrote it and every
// holder of a table copy.
func Nodes(src Source) []string {
	set := map[string]bool{}
	if n := src.Node(); n != "" {
		set[n] = true
	}
	for _, t := range src.Tables() {
		for _, nodes := range t.Copies {
			for _, n := range nodes {
				set[n] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// NotNamedError is a node or table the source does not have.
type NotNamedError struct {
	What, Name string // "node" or "table", and its name
	Kind       string // the source's kind
	Known      []string
}

func (e *NotNamedError) Error() string {
	if e.What == "node" {
		return fmt.Sprintf("node %s does not appear in %s", e.Name, e.Kind)
	}
	return fmt.Sprintf("no table %q in %s", e.Name, e.Kind)
}

// CheckNodes returns a *NotNamedError for the first of nodes the source
// does not name (see Nodes).
func CheckNodes(src Source, nodes ...string) error {
	known := Nodes(src)
	for _, n := range nodes {
		if !slices.Contains(known, n) {
			return &NotNamedError{What: "node", Name: n, Kind: src.Kind(), Known: known}
		}
	}
	return nil
}

// SelectTables returns the named tables, sorted by name, or every table
// when none is named; a name the source does not have is a *NotNamedError.
func SelectTables(src Source, names []string) ([]Table, error) {
	all := src.Tables()
	if len(names) == 0 {
		return all, nil
	}
	byName := map[string]Table{}
	known := make([]string, 0, len(all))
	for _, t := range all {
		byName[t.Name] = t
		known = append(known, t.Name)
	}
	var out []Table
	for _, n := range names {
		t, ok := byName[n]
		if !ok {
			return nil, &NotNamedError{What: "table", Name: n, Kind: src.Kind(), Known: known}
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Counts is a per-table row count.
type Counts map[string]int64

// Count streams the named tables and counts their records (a directory
// reads several tables at once).
func Count(s Source, tables []string) (Counts, error) {
	if pc, ok := s.(interface {
		CountRecords([]string) (Counts, error)
	}); ok {
		return pc.CountRecords(tables)
	}
	c := Counts{}
	err := s.Records(tables, func(t string, _ []byte) error { c[t]++; return nil })
	return c, err
}

// Decoded is Records with the records decoded.
func Decoded(s Source, tables []string, fn func(table string, rec term.Term) error) error {
	return s.Records(tables, func(t string, b []byte) error {
		v, err := term.Decode(b)
		if err != nil {
			return fmt.Errorf("table %s: %w", t, err)
		}
		return fn(t, v)
	})
}

// tableFromDef builds a Table from a schema create list.
func tableFromDef(name string, def term.List) Table {
	t := Table{Name: name, Def: def, Copies: map[string][]string{}, Type: "set", RecordName: name}
	for _, e := range def {
		kv, ok := e.(term.Tuple)
		if !ok || len(kv) != 2 {
			continue
		}
		k, _ := kv[0].(term.Atom)
		switch k {
		case "type":
			t.Type = atomText(kv[1])
		case "record_name":
			t.RecordName = atomText(kv[1])
		case "attributes":
			l, _ := term.Elems(kv[1])
			for _, a := range l {
				t.Attributes = append(t.Attributes, atomText(a))
			}
		case "ram_copies", "disc_copies", "disc_only_copies":
			l, _ := term.Elems(kv[1])
			for _, n := range l {
				t.Copies[string(k)] = append(t.Copies[string(k)], atomText(n))
			}
			sort.Strings(t.Copies[string(k)])
		case "local_content":
			t.LocalContent = term.IsAtom(kv[1], "true")
		}
	}
	return t
}

// storageOn says how node holds table t, from the schema.
func (t Table) storageOn(node string) string {
	for _, ct := range []string{StorageDisc, StorageDiscOnly, "ram_copies"} {
		for _, n := range t.Copies[ct] {
			if n == node {
				if ct == "ram_copies" {
					return StorageNone
				}
				return ct
			}
		}
	}
	return ""
}

func atomText(t term.Term) string {
	if a, ok := t.(term.Atom); ok {
		return string(a)
	}
	return term.Format(t)
}

func sortTables(ts []Table) []Table {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts
}

// wanted reports whether table is selected (all when sel is empty).
func wanted(sel []string, table string) bool {
	if len(sel) == 0 {
		return true
	}
	for _, s := range sel {
		if s == table {
			return true
		}
	}
	return false
}

// uniqueProblems drops repeated problems, keeping the first of each.
func uniqueProblems(ps []Problem) []Problem {
	seen := make(map[Problem]bool, len(ps))
	out := make([]Problem, 0, len(ps))
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
