package mnesiaread

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Dump is a text dump: mnesia:dump_to_textfile/1 or ejabberdctl dump. The
// first term is {tables, [{Tab, [{record_name, R}, {attributes, As}]}]};
// every term after it is a record with element 1 set to its table's name,
// all printed with ~p to a latin-1 file. A dump records neither table types
// nor copy lists: its tables have Type "" (unknown) and Storage "dump".
type Dump struct {
	path     string
	utf8     bool
	tables   map[string]Table
	byRecord map[string]string // record name -> table, when unambiguous
	problems []Problem
	progress func(file string, done, total int64)
}

// DumpOptions configure OpenDump.
type DumpOptions struct {
	// UTF8 reads the file as UTF-8 text (a dump written with ~tp to a UTF-8
	// file). Mnesia and ejabberd write latin-1; a coding comment at the top
	// of the file also selects the encoding.
	UTF8 bool
}

// OpenDump reads a dump's header.
func OpenDump(path string, opt DumpOptions) (*Dump, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &Dump{path: path, utf8: opt.UTF8, tables: map[string]Table{}, byRecord: map[string]string{}}
	tr := term.NewTextReader(f, term.TextOptions{UTF8: opt.UTF8})
	v, err := tr.Next()
	if errors.Is(err, io.EOF) {
		return nil, formatError("%s is empty", path)
	}
	if err != nil {
		return nil, &FormatError{Msg: path + " is not a Mnesia text dump", Err: err}
	}
	hdr, ok := v.(term.Tuple)
	if !ok || len(hdr) != 2 || !term.IsAtom(hdr[0], "tables") {
		return nil, formatError("%s is not a Mnesia text dump: it does not start with {tables, [...]} (found %s)", path, short(term.Format(v)))
	}
	defs, ok := term.Elems(hdr[1])
	if !ok {
		return nil, fmt.Errorf("%s: the {tables, ...} header does not hold a list", path)
	}
	records := map[string][]string{}
	for _, e := range defs {
		td, ok := e.(term.Tuple)
		if !ok || len(td) != 2 {
			return nil, fmt.Errorf("%s: bad table entry %s in the header", path, short(term.Format(e)))
		}
		name, ok := td[0].(term.Atom)
		if !ok {
			return nil, fmt.Errorf("%s: bad table name %s in the header", path, short(term.Format(td[0])))
		}
		opts, _ := term.Elems(td[1])
		t := tableFromDef(string(name), term.List(opts))
		if _, ok := term.Proplist(td[1], "type"); !ok {
			t.Type = "" // not recorded
		}
		t.Copies = map[string][]string{}
		t.Def = nil
		t.Storage = StorageDump
		d.tables[t.Name] = t
		records[t.RecordName] = append(records[t.RecordName], t.Name)
	}
	for r, ts := range records {
		if len(ts) == 1 {
			d.byRecord[r] = ts[0]
		}
	}
	return d, nil
}

// Kind implements Source.
func (d *Dump) Kind() string { return "dump" }

// Node implements Source: a dump does not name its node.
func (d *Dump) Node() string { return "" }

// Tables implements Source.
func (d *Dump) Tables() []Table {
	out := make([]Table, 0, len(d.tables))
	for _, t := range d.tables {
		out = append(out, t)
	}
	return sortTables(out)
}

// Problems implements Source.
func (d *Dump) Problems() []Problem { return d.problems }

// Close implements Source.
func (d *Dump) Close() error { return nil }

// Records implements Source. Records come in file order; element 1 becomes
// the table's record name again. A term that cannot be read is reported
// with its line and offset and skipped.
func (d *Dump) Records(sel []string, fn func(table string, rec []byte) error) error {
	f, err := os.Open(d.path)
	if err != nil {
		return err
	}
	defer f.Close()
	d.problems = d.problems[:0]
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	tr := term.NewTextReader(f, term.TextOptions{UTF8: d.utf8})
	file := baseName(d.path)
	var last int64
	bad := func(table, detail string) {
		d.problems = append(d.problems, Problem{Kind: ProblemDamage, File: file, Offset: tr.StartOffset(), Table: table,
			Detail: fmt.Sprintf("line %d: %s", tr.StartLine(), detail)})
	}
	var buf []byte
	header := true
	for {
		v, err := tr.Next()
		if d.progress != nil {
			if errors.Is(err, io.EOF) {
				d.progress(file, size, size)
			} else if tr.StartOffset()-last >= 1<<20 {
				last = tr.StartOffset()
				d.progress(file, last, size)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		var te *term.TextError
		if errors.As(err, &te) {
			bad("", te.Msg+fmt.Sprintf(" (at line %d, column %d)", te.Line, te.Col))
			continue
		}
		if err != nil {
			return err
		}
		if header {
			header = false
			continue
		}
		rec, ok := v.(term.Tuple)
		if !ok || len(rec) == 0 {
			bad("", "not a record: "+short(term.Format(v)))
			continue
		}
		first, _ := rec[0].(term.Atom)
		t, ok := d.tables[string(first)]
		if !ok {
			if name, found := d.byRecord[string(first)]; found && first != "" {
				t, ok = d.tables[name], true
			}
		}
		if !ok {
			bad(string(first), "record of a table the header does not list: "+short(term.Format(v)))
			continue
		}
		if !wanted(sel, t.Name) {
			continue
		}
		if n := len(t.Attributes); n > 0 && len(rec) != n+1 {
			bad(t.Name, fmt.Sprintf("record has %d fields, the table %d: %s", len(rec)-1, n, short(term.Format(v))))
			continue
		}
		rec[0] = term.Atom(t.RecordName)
		if buf, err = term.Append(buf[:0], rec, term.EncodeOptions{}); err != nil {
			bad(t.Name, err.Error())
			continue
		}
		if err := fn(t.Name, buf); err != nil {
			return err
		}
	}
}
