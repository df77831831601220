package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/mnesiaread"
)

// ReadCmd prints what a Mnesia directory, backup, dump or DETS file holds.
type ReadCmd struct {
	sourceFlags
	Table   []string `short:"t" help:"Only this table (repeatable)." placeholder:"TABLE"`
	Format  string   `enum:"jsonl,erlang" default:"jsonl" help:"jsonl: one JSON object per record (docs/term-json.md); erlang: as ~p prints it, in the layout of ejabberdctl dump."`
	Summary bool     `help:"Instead of the records: every table with its row count, storage and nodes, and what was damaged, orphaned or uncertain."`
	JSON    bool     `help:"With --summary: print it as JSON."`
	Sort    bool     `help:"Print tables by name and each table's records in a fixed order, so that the output of two sources can be diffed. Holds one table at a time in memory; reads a backup or dump once per table."`
}

// sourceFlags are the options of every command that reads Mnesia files.
type sourceFlags struct {
	Path             string `arg:"" help:"A Mnesia directory, a backup file, a text dump (ejabberdctl dump) or a single DETS file." type:"path" placeholder:"PATH"`
	Node             string `help:"The node whose directory this is (default: the node its logs name)." placeholder:"NODE"`
	IncludeUncertain bool   `name:"include-uncertain" help:"Apply transactions whose outcome this node never learnt (Mnesia would wait for other nodes)."`
	UTF8             bool   `name:"utf8" help:"Read a text dump as UTF-8 (Mnesia and ejabberd write latin-1)."`
}

// open opens the source, with a progress bar on a terminal.
func (f *sourceFlags) open(g *Globals) (mnesiaread.Source, *progress, error) {
	st, err := os.Stat(f.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, &userError{msg: f.Path + ": no such file or directory"}
		}
		return nil, nil, err
	}
	p := newProgress(g, sourceBytes(f.Path, st), "reading")
	src, err := mnesiaread.Open(f.Path, mnesiaread.OpenOptions{
		Node: f.Node, IncludeUncertain: f.IncludeUncertain, UTF8: f.UTF8, Progress: p.update,
	})
	if err != nil {
		p.done()
		if mnesiaread.IsFormatError(err) {
			return nil, nil, &userError{msg: err.Error(), hint: "give a Mnesia directory (e.g. /var/lib/ejabberd), a backup, an ejabberdctl dump or a .DAT file"}
		}
		return nil, nil, err
	}
	return src, p, nil
}

// sourceBytes is how much a full read goes through: the file, or the data
// files of a directory.
func sourceBytes(path string, st os.FileInfo) int64 {
	if !st.IsDir() {
		return st.Size()
	}
	var n int64
	entries, _ := os.ReadDir(path)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}

// notNamed words a node or table the source lacks as bad input, listing
// what it has.
func notNamed(err error) error {
	var nn *mnesiaread.NotNamedError
	if errors.As(err, &nn) {
		if nn.What == "node" {
			return &userError{msg: nn.Error(), hint: "the nodes it names are: " + joinOrDash(nn.Known)}
		}
		return &userError{msg: nn.Error(), hint: "the tables are: " + strings.Join(nn.Known, ", ")}
	}
	return err
}

// Run prints the records or the summary.
func (c *ReadCmd) Run(g *Globals) error {
	if c.JSON && !c.Summary {
		return &userError{msg: "--json goes with --summary", hint: "records print as JSON lines by default (--format jsonl)"}
	}
	start := time.Now()
	src, prog, err := c.open(g)
	if err != nil {
		return err
	}
	defer src.Close()
	tables, err := mnesiaread.SelectTables(src, c.Table)
	err = notNamed(err)
	if err != nil {
		prog.done()
		return err
	}
	var names []string
	for _, t := range tables {
		names = append(names, t.Name)
	}
	if c.Summary {
		counts, err := mnesiaread.Count(src, names)
		prog.done()
		if err != nil {
			return err
		}
		return c.printSummary(g, src, tables, counts, time.Since(start))
	}
	w := bufio.NewWriterSize(g.stdout, 1<<20)
	var rw recordWriter
	switch c.Format {
	case "erlang":
		rw = &erlangWriter{d: mnesiaread.NewDumpWriter(w)} // w is flushed below
	default:
		rw = &jsonWriter{w: w}
	}
	if err := rw.header(tables); err != nil {
		return err
	}
	byName := map[string]mnesiaread.Table{}
	for _, t := range tables {
		byName[t.Name] = t
	}
	emit := func(table string, rec term.Term) error {
		if g.ctx.Err() != nil {
			return g.ctx.Err()
		}
		return rw.record(byName[table], rec)
	}
	if !c.Sort {
		err = mnesiaread.Decoded(src, names, emit)
	} else {
		// One table at a time, in name order, each sorted by its records'
		// canonical encoding: the same data prints the same whatever the
		// source. A backup or dump is read once per table.
		for _, name := range names {
			var held []term.Term
			var keys []string
			err = mnesiaread.Decoded(src, []string{name}, func(_ string, rec term.Term) error {
				k, err := term.CanonicalKey(rec)
				if err != nil {
					return err
				}
				held, keys = append(held, rec), append(keys, k)
				return nil
			})
			if err != nil {
				break
			}
			idx := make([]int, len(held))
			for i := range idx {
				idx[i] = i
			}
			sort.SliceStable(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })
			for _, i := range idx {
				if err = emit(name, held[i]); err != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
	}
	prog.done()
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	warnProblems(g, src.Problems(), "read --summary")
	return nil
}

// warnProblems says on stderr, in one line, what the reader met.
func warnProblems(g *Globals, ps []mnesiaread.Problem, where string) {
	n := map[string]int{}
	for _, p := range ps {
		n[p.Kind]++
	}
	var parts []string
	for _, k := range []string{mnesiaread.ProblemDamage, mnesiaread.ProblemOrphan, mnesiaread.ProblemUncertain} {
		if n[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(g.stderr, "mimmigrate: warning: the source has problems (%s): see mimmigrate %s\n", strings.Join(parts, ", "), where)
	}
}

type recordWriter interface {
	header(tables []mnesiaread.Table) error
	record(t mnesiaread.Table, rec term.Term) error
}

// jsonWriter writes {"table":T,"record":R,"fields":{...}} lines; records
// whose arity does not match the table's attributes carry "values":[...].
type jsonWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (j *jsonWriter) header([]mnesiaread.Table) error { return nil }

func (j *jsonWriter) record(t mnesiaread.Table, rec term.Term) error {
	j.buf = appendRecordJSON(j.buf[:0], t, rec)
	j.buf = append(j.buf, '\n')
	_, err := j.w.Write(j.buf)
	return err
}

func appendRecordJSON(b []byte, t mnesiaread.Table, rec term.Term) []byte {
	b = append(b, `{"table":`...)
	b = term.AppendJSON(b, term.Binary(t.Name))
	tu, ok := rec.(term.Tuple)
	if !ok || len(tu) == 0 {
		b = append(b, `,"term":`...)
		b = term.AppendJSON(b, rec)
		return append(b, '}')
	}
	b = append(b, `,"record":`...)
	if a, ok := tu[0].(term.Atom); ok {
		b = term.AppendJSON(b, term.Binary(a))
	} else {
		b = term.AppendJSON(b, tu[0])
	}
	if len(t.Attributes) == len(tu)-1 {
		b = append(b, `,"fields":{`...)
		for i, name := range t.Attributes {
			if i > 0 {
				b = append(b, ',')
			}
			b = term.AppendJSON(b, term.Binary(name))
			b = append(b, ':')
			b = term.AppendJSON(b, tu[i+1])
		}
		return append(b, "}}"...)
	}
	b = append(b, `,"values":[`...)
	for i, v := range tu[1:] {
		if i > 0 {
			b = append(b, ',')
		}
		b = term.AppendJSON(b, v)
	}
	return append(b, "]}"...)
}

// erlangWriter writes records as ejabberdctl dump does.
type erlangWriter struct{ d *mnesiaread.DumpWriter }

func (e *erlangWriter) header(tables []mnesiaread.Table) error { return e.d.Header(tables) }

func (e *erlangWriter) record(t mnesiaread.Table, rec term.Term) error { return e.d.Record(t, rec) }

// summary is read --summary --json (docs/read-json.md).
type summary struct {
	Schema   string           `json:"schema"`
	Kind     string           `json:"kind"`
	Path     string           `json:"path"`
	Node     string           `json:"node,omitempty"`
	Tables   []summaryTable   `json:"tables"`
	Records  int64            `json:"records"`
	Bytes    int64            `json:"bytes"`
	Seconds  float64          `json:"seconds"`
	Problems []summaryProblem `json:"problems"`
}

type summaryTable struct {
	Name       string              `json:"name"`
	Type       string              `json:"type"`
	RecordName string              `json:"record_name"`
	Attributes []string            `json:"attributes"`
	Storage    string              `json:"storage"`
	Copies     map[string][]string `json:"copies"`
	Records    int64               `json:"records"`
}

type summaryProblem struct {
	Kind   string `json:"kind"`
	File   string `json:"file,omitempty"`
	Offset int64  `json:"offset"`
	Table  string `json:"table,omitempty"`
	Detail string `json:"detail"`
}

func (c *ReadCmd) printSummary(g *Globals, src mnesiaread.Source, tables []mnesiaread.Table, counts mnesiaread.Counts, took time.Duration) error {
	st, _ := os.Stat(c.Path)
	s := summary{Schema: "mimmigrate.read-summary/1", Kind: src.Kind(), Path: c.Path, Node: src.Node(), Seconds: took.Seconds(), Problems: []summaryProblem{}}
	if st != nil {
		s.Bytes = sourceBytes(c.Path, st)
	}
	for _, t := range tables {
		copies := t.Copies
		if copies == nil {
			copies = map[string][]string{}
		}
		attrs := t.Attributes
		if attrs == nil {
			attrs = []string{}
		}
		s.Tables = append(s.Tables, summaryTable{Name: t.Name, Type: t.Type, RecordName: t.RecordName, Attributes: attrs,
			Storage: t.Storage, Copies: copies, Records: counts[t.Name]})
		s.Records += counts[t.Name]
	}
	for _, p := range src.Problems() {
		s.Problems = append(s.Problems, summaryProblem{Kind: p.Kind, File: p.File, Offset: p.Offset, Table: p.Table, Detail: p.Detail})
	}
	if c.JSON {
		printJSON(g, s)
		return nil
	}
	w := g.stdout
	fmt.Fprintf(w, "%s %s", s.Kind, s.Path)
	if s.Node != "" {
		fmt.Fprintf(w, " (node %s)", s.Node)
	}
	fmt.Fprintf(w, ": %d tables, %d records, %s read in %.1fs\n\n", len(s.Tables), s.Records, compactBytes(s.Bytes), s.Seconds)
	cols := newColumns(w)
	cols.row("TABLE", "TYPE", "STORAGE", "RECORDS", "COPIES")
	for _, t := range s.Tables {
		cols.row(t.Name, orDash(t.Type), t.Storage, fmt.Sprint(t.Records), copiesText(t.Copies))
	}
	cols.flush()
	var notes, problems []mnesiaread.Problem
	for _, p := range src.Problems() {
		if p.Kind == mnesiaread.ProblemNote {
			notes = append(notes, p)
		} else {
			problems = append(problems, p)
		}
	}
	for _, sec := range []struct {
		title string
		ps    []mnesiaread.Problem
	}{{"Notes", notes}, {"Problems", problems}} {
		if len(sec.ps) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%d):\n", sec.title, len(sec.ps))
		for _, p := range sec.ps {
			fmt.Fprintf(w, "  %s\n", wrap(p.String(), 100, "    "))
		}
	}
	if len(problems) == 0 {
		fmt.Fprintln(w, "\nNo damage, orphans or uncertain transactions.")
	}
	return nil
}

func copiesText(c map[string][]string) string {
	var parts []string
	for _, k := range []string{"disc_copies", "disc_only_copies", "ram_copies"} {
		if len(c[k]) > 0 {
			parts = append(parts, strings.TrimSuffix(k, "_copies")+": "+strings.Join(c[k], " "))
		}
	}
	return joinOrDash(parts)
}
