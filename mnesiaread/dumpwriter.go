package mnesiaread

import (
	"bufio"
	"io"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// DumpWriter writes what ejabberdctl dump and mnesia:dump_to_textfile
// write (the inverse of OpenDump): a {tables, [...]} header, then every
// record with element 1 set to its table, each printed as ~p prints it,
// latin-1. mnesia:load_textfile reads it; the header also names non-set
// types (a real dump omits them), so that bags load as bags.
type DumpWriter struct {
	w *bufio.Writer
}

// NewDumpWriter writes to w, buffered unless w is a *bufio.Writer: Flush
// at the end.
func NewDumpWriter(w io.Writer) *DumpWriter {
	if bw, ok := w.(*bufio.Writer); ok {
		return &DumpWriter{w: bw}
	}
	return &DumpWriter{w: bufio.NewWriterSize(w, 1<<20)}
}

// Header writes the table definitions.
func (d *DumpWriter) Header(tables []Table) error {
	defs := make(term.List, 0, len(tables))
	for _, t := range tables {
		attrs := make(term.List, len(t.Attributes))
		for i, a := range t.Attributes {
			attrs[i] = term.Atom(a)
		}
		opts := term.List{
			term.Tuple{term.Atom("record_name"), term.Atom(t.RecordName)},
			term.Tuple{term.Atom("attributes"), attrs},
		}
		if t.Type != "" && t.Type != "set" {
			opts = append(opts, term.Tuple{term.Atom("type"), term.Atom(t.Type)})
		}
		defs = append(defs, term.Tuple{term.Atom(t.Name), opts})
	}
	return d.print(term.Tuple{term.Atom("tables"), defs})
}

// Record writes one record of a table.
func (d *DumpWriter) Record(t Table, rec term.Term) error {
	if tu, ok := rec.(term.Tuple); ok && len(tu) > 0 {
		cp := append(term.Tuple(nil), tu...)
		cp[0] = term.Atom(t.Name)
		rec = cp
	}
	return d.print(rec)
}

// Flush writes what is buffered.
func (d *DumpWriter) Flush() error { return d.w.Flush() }

func (d *DumpWriter) print(v term.Term) error {
	for _, r := range term.Pretty(v) {
		d.w.WriteByte(byte(r)) // latin-1: Pretty's characters are all below 256
	}
	_, err := d.w.WriteString(".\n")
	return err
}
