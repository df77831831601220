package mnesiaread

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/mnesiaread/dets"
	"github.com/mimmigrate/mimmigrate/mnesiaread/disklog"
)

// DirOptions configure OpenDir.
type DirOptions struct {
	// Node is the node whose directory this is. Empty: the node named in the
	// logs' headers.
	Node string
	// IncludeUncertain applies transactions whose outcome is unknown (their
	// decision was never logged here): Mnesia would wait for other nodes to
	// tell. By default they are left out and reported.
	IncludeUncertain bool
	// Progress, when set, is told the bytes read so far of each file.
	Progress func(file string, done, total int64)
}

// Dir is a Mnesia directory read as Mnesia's startup would load it.
type Dir struct {
	path     string
	opts     DirOptions
	node     string
	version  string // Mnesia version from the log headers
	defs     map[string]term.List
	tables   map[string]Table
	ops      map[string][]pendingOp // logged operations per table, in order
	problems []Problem
}

type pendingOp struct {
	pass     int
	key, val term.Term
	op       term.Atom
	dets     bool
}

// Files left by interrupted operations (mnesia_lib's file names). Index
// files of disc_only tables (Tab_N.DAT) are never opened: Mnesia rebuilds them.
var transientExts = []string{".TMP", ".DMP", ".LOGTMP", ".BUPTMP", ".ETSTMP"}

// OpenDir reads a Mnesia directory's schema, decisions and logs. Table data
// is read later, by Records.
func OpenDir(path string, opts DirOptions) (*Dir, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", path)
	}
	d := &Dir{path: path, opts: opts, defs: map[string]term.List{}, tables: map[string]Table{}, ops: map[string][]pendingOp{}}
	if err := d.inventory(); err != nil {
		return nil, err
	}
	if err := d.readSchema(); err != nil {
		return nil, err
	}
	decisions, err := d.readDecisions()
	if err != nil {
		return nil, err
	}
	if d.node == "" {
		d.node = opts.Node
	}
	if err := d.replayLogs(decisions); err != nil {
		return nil, err
	}
	d.buildTables()
	return d, nil
}

func (d *Dir) file(name string) string { return filepath.Join(d.path, name) }

func (d *Dir) exists(name string) bool {
	_, err := os.Stat(d.file(name))
	return err == nil
}

func (d *Dir) note(file, detail string) {
	d.problems = append(d.problems, Problem{Kind: ProblemNote, File: file, Offset: -1, Detail: detail})
}

// inventory notes the files that say something happened: a fallback
// waiting to be installed, leftovers of interrupted dumps.
func (d *Dir) inventory() error {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case n == "FALLBACK.BUP":
			d.note(n, "an installed fallback: at its next start Mnesia would restore the whole database from it (read it with: mimmigrate read "+d.file(n)+")")
		case n == "PREVIOUS.LOG":
			d.note(n, "a transaction log dump was interrupted; it is replayed before LATEST.LOG")
		case n == "DECISION.LOG" || n == "PDECISION.LOG":
			d.note(n, "a decision log of an old Mnesia version (converted at startup); not read")
		case strings.HasPrefix(n, "MnesiaCore."):
			d.note(n, "a Mnesia core dump: Mnesia crashed here once")
		}
		for _, ext := range transientExts {
			if strings.HasSuffix(n, ext) {
				d.note(n, "left by an interrupted dump, copy or repair; not read (usable as a last resort)")
			}
		}
	}
	return nil
}

// readSchema reads schema.DAT (or schema.DMP): {schema, Tab, CreateList}.
func (d *Dir) readSchema() error {
	name := "schema.DAT"
	if !d.exists(name) {
		if !d.exists("schema.DMP") {
			return formatError("%s holds no schema.DAT: not a Mnesia directory (or the schema was RAM only)", d.path)
		}
		name = "schema.DMP"
	}
	f, err := dets.Open(d.file(name))
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := f.Objects(func(obj []byte) error {
		v, err := term.Decode(obj)
		if err != nil {
			return err
		}
		row, ok := term.IsRecord(v, "schema", 3)
		if !ok {
			d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: name, Offset: -1, Detail: "schema row of another shape: " + term.Format(v)})
			return nil
		}
		tab, _ := row[1].(term.Atom)
		def, ok := createList(row[2])
		if !ok {
			d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: name, Offset: -1, Table: string(tab), Detail: "unreadable table definition"})
			return nil
		}
		d.defs[string(tab)] = def
		return nil
	}, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	d.detsProblems(name, "", f, rep)
	return nil
}

// createList accepts a create list, or an old-style cstruct tuple.
func createList(t term.Term) (term.List, bool) {
	if l, ok := term.Elems(t); ok {
		return l, true
	}
	return nil, false
}

func (d *Dir) detsProblems(file, table string, f *dets.File, rep *dets.Report) {
	if !f.Header.ClosedProperly {
		d.problems = append(d.problems, Problem{Kind: ProblemNote, File: file, Offset: -1, Table: table,
			Detail: "DETS file not closed properly: read without trusting its header counters"})
	}
	for _, p := range f.Header.Problems {
		d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: file, Offset: 0, Table: table, Detail: "header: " + p})
	}
	for _, dm := range rep.Damage {
		d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: file, Offset: dm.Offset, Table: table, Detail: dm.Reason})
	}
	for _, o := range rep.Orphans {
		what := "an older version of a live object: left out"
		if o.Recovered {
			what = "no live object has its key: recovered"
		}
		d.problems = append(d.problems, Problem{Kind: ProblemOrphan, File: file, Offset: o.Offset, Table: table,
			Detail: fmt.Sprintf("%d object(s) with key %s outside the hash structure; %s", o.Objects, o.Key, what)})
	}
}

// logItems reads every item of a log, decoded, reporting its damage.
func (d *Dir) logItems(name string, fn func(v term.Term, offset int64) error) error {
	return d.logRaw(name, func(item []byte, off int64) error {
		v, err := term.Decode(item)
		if err != nil {
			d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: name, Offset: off, Detail: err.Error()})
			return nil
		}
		return fn(v, off)
	})
}

// logRaw reads every item of a log as bytes (valid during the call).
func (d *Dir) logRaw(name string, fn func(item []byte, offset int64) error) error {
	if !d.exists(name) {
		return nil
	}
	r, err := disklog.Open(d.file(name))
	if err != nil {
		if errors.Is(err, disklog.ErrNotALog) {
			kind, detail := ProblemDamage, strings.TrimPrefix(err.Error(), d.file(name)+": ")+": skipped"
			if st, err := os.Stat(d.file(name)); err == nil && st.Size() == 0 {
				kind, detail = ProblemNote, "empty file (caught as it was being created): skipped"
			}
			d.problems = append(d.problems, Problem{Kind: kind, File: name, Offset: 0, Detail: detail})
			return nil
		}
		return err
	}
	defer r.Close()
	last := int64(0)
	for {
		item, off, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if d.opts.Progress != nil && r.Offset()-last >= 1<<20 {
			d.opts.Progress(name, r.Offset(), r.Size())
			last = r.Offset()
		}
		if err := fn(item, off); err != nil {
			return err
		}
	}
	if d.opts.Progress != nil {
		d.opts.Progress(name, r.Size(), r.Size())
	}
	for _, dm := range r.Damage {
		d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: name, Offset: dm.Offset, Detail: dm.String()})
	}
	return nil
}

// isLogHeader reports whether an encoded item is a {log_header, ...} record.
func isLogHeader(item []byte) bool {
	if len(item) < 3 || item[1] != 104 || item[2] != 6 {
		return false
	}
	first, err := term.Element(item, 1)
	if err != nil {
		return false
	}
	a, _, err := readAtomBody(first)
	return err == nil && a == "log_header"
}

func readAtomBody(b []byte) (term.Atom, int, error) {
	v, err := term.Decode(append([]byte{131}, b...))
	if err != nil {
		return "", 0, err
	}
	a, ok := v.(term.Atom)
	if !ok {
		return "", 0, errors.New("not an atom")
	}
	return a, len(b), nil
}

// readDecisions collects transaction outcomes: DECISION_TAB.LOG, then the
// decision records of PREVIOUS.LOG and LATEST.LOG (Mnesia scans both before
// replaying, perform_dump(scan_decisions)). It also learns the node name.
func (d *Dir) readDecisions() (map[string]term.Atom, error) {
	out := map[string]term.Atom{}
	note := func(dec term.Term) {
		tu, ok := dec.(term.Tuple)
		if !ok || len(tu) != 5 || !term.IsAtom(tu[0], "decision") {
			return
		}
		k, err := term.CanonicalKey(tu[1])
		if err != nil {
			return
		}
		outcome, _ := tu[2].(term.Atom)
		if prev := out[k]; prev == "committed" || prev == "aborted" {
			return // a definite outcome is not overridden
		}
		out[k] = outcome
	}
	header := func(v term.Term) {
		if h, ok := term.IsRecord(v, "log_header", 6); ok {
			if n, ok := h[4].(term.Atom); ok && d.node == "" && d.opts.Node == "" {
				d.node = string(n)
			}
			if vs, ok := term.Text(h[3]); ok {
				d.version = vs
			}
		}
	}
	err := d.logItems("DECISION_TAB.LOG", func(v term.Term, _ int64) error {
		header(v)
		if dl, ok := term.IsRecord(v, "decision_list", 2); ok {
			l, _ := term.Elems(dl[1])
			for _, dec := range l {
				note(dec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"PREVIOUS.LOG", "LATEST.LOG"} {
		err := d.logItems(name, func(v term.Term, _ int64) error {
			header(v)
			note(v)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// replayLogs applies the committed transactions of PREVIOUS.LOG and
// LATEST.LOG: schema operations to the definitions now, table operations
// kept per table for Records.
func (d *Dir) replayLogs(decisions map[string]term.Atom) error {
	for pass, name := range []string{"PREVIOUS.LOG", "LATEST.LOG"} {
		logVersion := "4.3"
		err := d.logItems(name, func(v term.Term, off int64) error {
			if h, ok := term.IsRecord(v, "log_header", 6); ok {
				if vs, ok := term.Text(h[2]); ok {
					logVersion = vs
				}
				return nil
			}
			c, ok := term.IsRecord(v, "commit", 8)
			if !ok {
				return nil // decisions, mnesia_up/down, master_nodes
			}
			if !d.committed(c[2], decisions, name, off, c) {
				return nil
			}
			ordered := func(t term.Term) []term.Term {
				l, _ := term.Elems(t)
				if logVersion < "4.3" { // older logs list ops in reverse
					r := make([]term.Term, len(l))
					for i := range l {
						r[i] = l[len(l)-1-i]
					}
					return r
				}
				return l
			}
			for _, op := range ordered(c[7]) {
				d.schemaOp(op, name, off)
			}
			for _, op := range ordered(c[4]) {
				d.tableOp(op, pass, false, name, off)
			}
			for _, op := range extOps(c[6]) {
				d.tableOp(op, pass, false, name, off)
			}
			for _, op := range ordered(c[5]) {
				d.tableOp(op, pass, true, name, off)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// committed decides a commit's fate as Mnesia's startup would, reporting
// the ones it would have to ask other nodes about.
func (d *Dir) committed(dec term.Term, decisions map[string]term.Atom, file string, off int64, c term.Tuple) bool {
	if term.IsAtom(dec, "presume_commit") {
		return true
	}
	tu, ok := dec.(term.Tuple)
	if !ok || len(tu) != 5 || !term.IsAtom(tu[0], "decision") {
		d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: file, Offset: off, Detail: "commit with an unknown decision: " + term.Format(dec)})
		return false
	}
	k, _ := term.CanonicalKey(tu[1])
	switch decisions[k] {
	case "committed":
		return true
	case "aborted":
		return false
	}
	outcome := "no outcome logged"
	if o := decisions[k]; o != "" {
		outcome = "outcome " + string(o)
	}
	tables := commitTables(c)
	detail := fmt.Sprintf("transaction %s (%s) touching %s: Mnesia would wait for %s to tell",
		term.Format(tu[1]), outcome, strings.Join(tables, ", "), nodeList(tu[3], tu[4]))
	if d.opts.IncludeUncertain {
		detail += "; applied (--include-uncertain)"
	} else {
		detail += "; left out (--include-uncertain applies it)"
	}
	d.problems = append(d.problems, Problem{Kind: ProblemUncertain, File: file, Offset: off, Detail: detail})
	return d.opts.IncludeUncertain
}

func nodeList(lists ...term.Term) string {
	var ns []string
	for _, l := range lists {
		e, _ := term.Elems(l)
		for _, n := range e {
			ns = append(ns, atomText(n))
		}
	}
	if len(ns) == 0 {
		return "the other nodes"
	}
	return strings.Join(ns, ", ")
}

func commitTables(c term.Tuple) []string {
	seen := map[string]bool{}
	for _, i := range []int{4, 5} {
		l, _ := term.Elems(c[i])
		for _, op := range l {
			if tu, ok := op.(term.Tuple); ok && len(tu) == 3 {
				if k, ok := tu[0].(term.Tuple); ok && len(k) == 2 {
					seen[atomText(k[0])] = true
				}
			}
		}
	}
	if len(seen) == 0 {
		return []string{"the schema"}
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// extOps returns the operations of external-backend copies kept in a
// commit's ext field ({ext_copies, [{Storage, Op}]}); their data cannot be
// read here, but their disc_copies semantics apply to our tables.
func extOps(ext term.Term) []term.Term {
	l, _ := term.Elems(ext)
	for _, e := range l {
		if tu, ok := e.(term.Tuple); ok && len(tu) == 2 && term.IsAtom(tu[0], "ext_copies") {
			ops, _ := term.Elems(tu[1])
			var out []term.Term
			for _, so := range ops {
				if p, ok := so.(term.Tuple); ok && len(p) == 2 {
					out = append(out, p[1])
				}
			}
			return out
		}
	}
	return nil
}

// tableOp keeps one {{Tab, Key}, Val, Op} for its table.
func (d *Dir) tableOp(op term.Term, pass int, dets bool, file string, off int64) {
	tu, ok := op.(term.Tuple)
	if !ok || len(tu) != 3 {
		d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: file, Offset: off, Detail: "operation of another shape: " + term.Format(op)})
		return
	}
	tk, ok := tu[0].(term.Tuple)
	kind, ok2 := tu[2].(term.Atom)
	if !ok || len(tk) != 2 || !ok2 {
		d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: file, Offset: off, Detail: "operation of another shape: " + term.Format(op)})
		return
	}
	tab := atomText(tk[0])
	d.ops[tab] = append(d.ops[tab], pendingOp{pass: pass, key: tk[1], val: tu[1], op: kind, dets: dets})
}

// schemaOp applies a committed schema operation to the table definitions.
func (d *Dir) schemaOp(op term.Term, file string, off int64) {
	tu, ok := op.(term.Tuple)
	if !ok || len(tu) < 3 || !term.IsAtom(tu[0], "op") {
		return
	}
	kind, _ := tu[1].(term.Atom)
	switch kind {
	case "rec":
		// {op, rec, Storage, {{schema, Tab}, [{schema, Tab, CreateList}], write | delete}}
		if len(tu) != 4 {
			return
		}
		item, ok := tu[3].(term.Tuple)
		if !ok || len(item) != 3 {
			return
		}
		tk, _ := item[0].(term.Tuple)
		if len(tk) != 2 || !term.IsAtom(tk[0], "schema") {
			return
		}
		tab := atomText(tk[1])
		if term.IsAtom(item[2], "delete") {
			delete(d.defs, tab)
			return
		}
		vals, _ := term.Elems(item[1])
		for _, v := range vals {
			if row, ok := term.IsRecord(v, "schema", 3); ok {
				if def, ok := createList(row[2]); ok {
					d.defs[tab] = def
				}
			}
		}
		return
	case "delete_table":
		if def, ok := createList(tu[len(tu)-1]); ok {
			delete(d.defs, tableFromDef("", def).defName())
		}
		return
	case "clear_table":
		if def, ok := createList(tu[len(tu)-1]); ok {
			tab := tableFromDef("", def).defName()
			d.ops[tab] = append(d.ops[tab], pendingOp{op: "clear_table"})
		}
		return
	}
	// Every other schema op carries the table's new create list last.
	if def, ok := createList(tu[len(tu)-1]); ok {
		if name := tableFromDef("", def).defName(); name != "" {
			d.defs[name] = def
		}
	}
}

// defName is the name in a create list.
func (t Table) defName() string {
	for _, e := range t.Def {
		if kv, ok := e.(term.Tuple); ok && len(kv) == 2 && term.IsAtom(kv[0], "name") {
			return atomText(kv[1])
		}
	}
	return ""
}

// buildTables decides, for each table, where its data is on this node.
func (d *Dir) buildTables() {
	for name, def := range d.defs {
		if name == "schema" {
			continue
		}
		t := tableFromDef(name, def)
		t.Storage = t.storageOn(d.node)
		dcd, dat := d.exists(name+".DCD"), d.exists(name+".DAT")
		switch {
		case t.Storage == StorageDisc && !dcd && dat:
			t.Storage = StorageDiscOnly // a legacy disc_copies table still in its DAT
		case t.Storage == "" && dcd:
			t.Storage = StorageDisc
			d.problems = append(d.problems, Problem{Kind: ProblemNote, Table: name, Offset: -1,
				Detail: fmt.Sprintf("the schema gives %s no copy here, but its files are here: read from them (was the node renamed?)", d.node)})
		case t.Storage == "" && dat:
			t.Storage = StorageDiscOnly
			d.problems = append(d.problems, Problem{Kind: ProblemNote, Table: name, Offset: -1,
				Detail: fmt.Sprintf("the schema gives %s no copy here, but its files are here: read from them (was the node renamed?)", d.node)})
		case t.Storage == "":
			t.Storage = StorageNone
		case t.Storage == StorageNone && dcd:
			t.Storage = StorageDisc // a RAM table saved with mnesia:dump_tables
		}
		d.tables[name] = t
	}
	for tab := range d.ops {
		if _, ok := d.tables[tab]; !ok && tab != "schema" {
			d.problems = append(d.problems, Problem{Kind: ProblemNote, Table: tab, Offset: -1,
				Detail: "the logs hold operations on a table the schema does not know: left out"})
		}
	}
}

// Kind implements Source.
func (d *Dir) Kind() string { return "directory" }

// Node implements Source.
func (d *Dir) Node() string { return d.node }

// MnesiaVersion is the version of Mnesia that wrote the logs.
func (d *Dir) MnesiaVersion() string { return d.version }

// SchemaDef is the schema table's own create list.
func (d *Dir) SchemaDef() term.List { return d.defs["schema"] }

// Tables implements Source.
func (d *Dir) Tables() []Table {
	out := make([]Table, 0, len(d.tables))
	for _, t := range d.tables {
		out = append(out, t)
	}
	return sortTables(out)
}

// Problems implements Source.
// Files read more than once (the logs, or every file when Records is
// called again) report their problems once.
func (d *Dir) Problems() []Problem { return uniqueProblems(d.problems) }

// Close implements Source.
func (d *Dir) Close() error { return nil }

// soloKeys: a DETS table with more keys than this is counted alone.
const soloKeys = 4 << 20

// detsKeys is the key count a table's DETS header gives, or 0.
func (d *Dir) detsKeys(t Table) int64 {
	if t.Storage != StorageDiscOnly {
		return 0
	}
	f, err := dets.Open(d.file(t.Name + ".DAT"))
	if err != nil {
		return 0
	}
	defer f.Close()
	return int64(f.Header.NoKeys)
}

// CountRecords counts each table's records as Records would give them,
// reading several tables at once (one per core), biggest files first.
// Problems are reported in table order, as Records reports them.
func (d *Dir) CountRecords(sel []string) (Counts, error) {
	var tabs []Table
	for _, t := range d.Tables() {
		if wanted(sel, t.Name) && t.HasData() {
			tabs = append(tabs, t)
		}
	}
	type result struct {
		n        int64
		problems []Problem
		err      error
	}
	res := make([]result, len(tabs))
	progress := d.opts.Progress
	if progress != nil {
		var mu sync.Mutex
		p := progress
		progress = func(name string, done, total int64) {
			mu.Lock()
			defer mu.Unlock()
			p(name, done, total)
		}
	}
	order := make([]int, len(tabs))
	size := make([]int64, len(tabs))
	solo := make([]bool, len(tabs))
	for i, t := range tabs {
		order[i] = i
		solo[i] = d.detsKeys(t) > soloKeys
		for _, ext := range []string{".DAT", ".DCD", ".DCL"} {
			if st, err := os.Stat(d.file(t.Name + ext)); err == nil {
				size[i] += st.Size()
			}
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(size[b], size[a]) })
	count := func(i int) {
		own := *d // the shared state is only read; problems are per table
		own.problems = nil
		own.opts.Progress = progress
		r := &res[i]
		r.err = own.tableRecords(tabs[i], func(string, []byte) error { r.n++; return nil })
		r.problems = own.problems
	}
	// Reading a DETS file holds its slot list (8 bytes a key): a table with
	// more keys than soloKeys is read alone, so that two such lists are
	// never held at once.
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(tabs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				count(i)
			}
		}()
	}
	for _, i := range order {
		if !solo[i] {
			jobs <- i
		}
	}
	close(jobs)
	wg.Wait()
	for _, i := range order {
		if solo[i] {
			count(i)
		}
	}
	c := Counts{}
	for i, t := range tabs {
		d.problems = append(d.problems, res[i].problems...)
		if res[i].err != nil {
			return c, res[i].err
		}
		c[t.Name] = res[i].n
	}
	return c, nil
}

// TableRecords streams one table's records, as Records does, and returns
// the problems met on the way. Unlike Records it may run for several
// tables at once: the directory's shared state is only read.
func (d *Dir) TableRecords(table string, fn func(rec []byte) error) ([]Problem, error) {
	for _, t := range d.Tables() {
		if t.Name != table {
			continue
		}
		if !t.HasData() {
			return nil, nil
		}
		own := *d
		own.problems = nil
		err := own.tableRecords(t, func(_ string, rec []byte) error { return fn(rec) })
		return uniqueProblems(own.problems), err
	}
	return nil, fmt.Errorf("no table %s", table)
}

// Records implements Source.
func (d *Dir) Records(sel []string, fn func(table string, rec []byte) error) error {
	for _, t := range d.Tables() {
		if !wanted(sel, t.Name) || !t.HasData() {
			continue
		}
		if err := d.tableRecords(t, fn); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dir) tableRecords(t Table, fn func(table string, rec []byte) error) error {
	ov := newOverlay(t.Name, t.Type, &d.problems)
	if t.Storage == StorageDisc && d.exists(t.Name+".DCD") {
		if err := d.logItems(t.Name+".DCL", func(v term.Term, off int64) error {
			if _, isHeader := term.IsRecord(v, "log_header", 6); isHeader {
				return nil
			}
			return d.overlayOp(ov, v, false, t.Name+".DCL", off)
		}); err != nil {
			return err
		}
	}
	pass := -1
	for _, op := range d.ops[t.Name] {
		if op.pass != pass {
			ov.newPass()
			pass = op.pass
		}
		if err := ov.add(op.key, op.val, op.op, op.dets && t.Storage == StorageDiscOnly); err != nil {
			d.problems = append(d.problems, Problem{Kind: ProblemDamage, Table: t.Name, Offset: -1, Detail: "logged operation: " + err.Error()})
		}
	}
	base := func(rec []byte) error {
		if ov.cleared {
			return nil
		}
		held, err := ov.holdBack(rec)
		if err != nil {
			d.problems = append(d.problems, Problem{Kind: ProblemDamage, Table: t.Name, Offset: -1, Detail: "record without a key: " + err.Error()})
			return nil
		}
		if held {
			return nil
		}
		return fn(t.Name, rec)
	}
	var err error
	if t.Storage == StorageDisc && d.exists(t.Name+".DCD") {
		err = d.logRaw(t.Name+".DCD", func(item []byte, _ int64) error {
			if isLogHeader(item) {
				return nil
			}
			return base(item)
		})
	} else {
		err = d.datRecords(t, base)
	}
	if err != nil {
		return err
	}
	var buf []byte
	return ov.finish(func(r term.Term) error {
		var err error
		if buf, err = term.Append(buf[:0], r, term.EncodeOptions{}); err != nil {
			return err
		}
		return fn(t.Name, buf)
	})
}

func (d *Dir) datRecords(t Table, fn func(rec []byte) error) error {
	name := t.Name + ".DAT"
	if !d.exists(name) {
		d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: name, Offset: -1, Table: t.Name,
			Detail: "the table's file is missing: only its logged operations are read"})
		return nil
	}
	f, err := dets.Open(d.file(name))
	if err != nil {
		d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: name, Offset: 0, Table: t.Name, Detail: err.Error()})
		return nil
	}
	defer f.Close()
	var progress func(int64)
	if d.opts.Progress != nil {
		progress = func(done int64) { d.opts.Progress(name, done, f.Size()) }
	}
	rep, err := f.Objects(fn, progress)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	d.detsProblems(name, t.Name, f, rep)
	return nil
}

// overlayOp adds a DCL item {{Tab, Key}, Val, Op} to the overlay.
func (d *Dir) overlayOp(ov *overlay, v term.Term, dets bool, file string, off int64) error {
	tu, ok := v.(term.Tuple)
	if ok && len(tu) == 3 {
		if tk, ok := tu[0].(term.Tuple); ok && len(tk) == 2 {
			if kind, ok := tu[2].(term.Atom); ok {
				if err := ov.add(tk[1], tu[1], kind, dets); err == nil {
					return nil
				}
			}
		}
	}
	d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: file, Offset: off, Table: ov.table, Detail: "operation of another shape: " + term.Format(v)})
	return nil
}
