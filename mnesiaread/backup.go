package mnesiaread

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/mnesiaread/disklog"
)

// Backup is a Mnesia backup file: mnesia:backup/1, ejabberdctl backup, an
// installed FALLBACK.BUP, or one written by WriteBackup. It is a disk_log:
// a backup_log header, the schema section ({schema, Tab, CreateList} rows,
// the schema table's own first), then every disc table's records with
// element 1 set to the table name.
type Backup struct {
	path     string
	node     string
	version  string // backup format version
	mnesia   string
	schema   term.List // the schema table's create list
	tables   map[string]Table
	order    []string
	problems []Problem
	progress func(file string, done, total int64)
}

// OpenBackup reads a backup's header and schema section.
func OpenBackup(path string) (*Backup, error) {
	r, err := disklog.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := &Backup{path: path, tables: map[string]Table{}}
	first := true
	for {
		item, off, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		v, err := term.Decode(item)
		if err != nil {
			return nil, fmt.Errorf("%s at %d: %w", path, off, err)
		}
		if first {
			h, ok := term.IsRecord(v, "log_header", 6)
			if !ok || !term.IsAtom(h[1], "backup_log") {
				return nil, formatError("%s is a disk_log but not a Mnesia backup (first item %s)", path, short(term.Format(v)))
			}
			b.version, _ = term.Text(h[2])
			b.mnesia, _ = term.Text(h[3])
			b.node = atomText(h[4])
			switch b.version {
			case "1.2", "1.1", "0.1":
			default:
				return nil, fmt.Errorf("%s: backup format version %q is not known", path, b.version)
			}
			first = false
			continue
		}
		row, ok := term.IsRecord(v, "schema", 3)
		if !ok {
			break // the schema section ends at the first record
		}
		tab := atomText(row[1])
		def, ok := createList(row[2])
		if !ok {
			continue // version 0.1 rows such as {schema, cookie, ...}
		}
		if tab == "schema" {
			b.schema = def
			continue
		}
		t := tableFromDef(tab, def)
		t.Storage = StorageBackup
		if len(t.Copies[StorageDisc])+len(t.Copies[StorageDiscOnly]) == 0 {
			t.Storage = StorageNone // RAM tables: definition only
		}
		b.tables[tab] = t
		b.order = append(b.order, tab)
	}
	if first {
		return nil, formatError("%s is empty", path)
	}
	for _, dm := range r.Damage {
		b.problems = append(b.problems, Problem{Kind: ProblemDamage, File: baseName(path), Offset: dm.Offset, Detail: dm.String()})
	}
	return b, nil
}

func short(s string) string {
	if len(s) > 100 {
		return s[:97] + "..."
	}
	return s
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Kind implements Source.
func (b *Backup) Kind() string { return "backup" }

// Node implements Source.
func (b *Backup) Node() string { return b.node }

// MnesiaVersion is the version of Mnesia that wrote the backup.
func (b *Backup) MnesiaVersion() string { return b.mnesia }

// SchemaDef is the schema table's own create list.
func (b *Backup) SchemaDef() term.List { return b.schema }

// Tables implements Source.
func (b *Backup) Tables() []Table {
	out := make([]Table, 0, len(b.tables))
	for _, t := range b.tables {
		out = append(out, t)
	}
	return sortTables(out)
}

// Problems implements Source.
func (b *Backup) Problems() []Problem { return b.problems }

// Close implements Source.
func (b *Backup) Close() error { return nil }

// Records implements Source. Element 1 of each record becomes the table's
// record name again.
func (b *Backup) Records(sel []string, fn func(table string, rec []byte) error) error {
	r, err := disklog.Open(b.path)
	if err != nil {
		return err
	}
	defer r.Close()
	b.problems = b.problems[:0]
	var buf []byte
	file := baseName(b.path)
	var last int64
	for {
		item, off, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if b.progress != nil && off-last >= 1<<20 {
			b.progress(file, off, r.Size())
			last = off
		}
		first, err := term.Element(item, 1)
		if err != nil {
			b.problems = append(b.problems, Problem{Kind: ProblemDamage, File: baseName(b.path), Offset: off, Detail: "item is not a record"})
			continue
		}
		tab, _, err := readAtomBody(first)
		if err != nil || tab == "log_header" || tab == "schema" {
			continue
		}
		t, ok := b.tables[string(tab)]
		if !ok {
			b.problems = append(b.problems, Problem{Kind: ProblemDamage, File: baseName(b.path), Offset: off, Table: string(tab), Detail: "record of a table the backup's schema does not define"})
			continue
		}
		if !wanted(sel, t.Name) {
			continue
		}
		rec := item
		if t.RecordName != t.Name {
			if buf, err = withFirst(buf[:0], item, term.Atom(t.RecordName)); err != nil {
				return err
			}
			rec = buf
		}
		if err := fn(t.Name, rec); err != nil {
			return err
		}
	}
	for _, dm := range r.Damage {
		b.problems = append(b.problems, Problem{Kind: ProblemDamage, File: baseName(b.path), Offset: dm.Offset, Detail: dm.String()})
	}
	if b.progress != nil {
		b.progress(file, r.Size(), r.Size())
	}
	return nil
}

// withFirst appends rec (an encoded tuple) with its first element replaced
// by atom, working on the bytes.
func withFirst(dst, rec []byte, atom term.Atom) ([]byte, error) {
	start, end, err := term.ElementSpan(rec, 1)
	if err != nil {
		return dst, err
	}
	dst = append(dst, rec[:start]...)
	if dst, err = term.AppendBody(dst, atom, term.EncodeOptions{}); err != nil {
		return dst, err
	}
	return append(dst, rec[end:]...), nil
}

// BackupOptions configure WriteBackup.
type BackupOptions struct {
	// Rename maps old node names to new ones in every table's copy lists,
	// as ejabberdctl mnesia_change_nodename does.
	Rename map[string]string
	// Node names the writer in the header (default: the source's node, renamed).
	Node string
	// MnesiaVersion goes in the header (default: the source's, or "4.21.3").
	MnesiaVersion string
	// Progress is called after each table with the records written so far.
	Progress func(table string, records int64)
}

// schemaSource is a source that knows the schema table's create list.
type schemaSource interface {
	SchemaDef() term.List
	MnesiaVersion() string
}

// BackupReport says what WriteBackup wrote.
type BackupReport struct {
	Tables   int
	Records  int64
	PerTable map[string]int64
}

// WriteBackup writes a Mnesia backup of everything src holds to path (which
// must not exist): a real node restores it with mnesia:restore/2 or
// mnesia:install_fallback/1. On error the partial file is removed.
func WriteBackup(src Source, path string, opt BackupOptions) (rep BackupReport, err error) {
	w, err := disklog.Create(path)
	if err != nil {
		return rep, err
	}
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	rename := func(n string) string {
		if to, ok := opt.Rename[n]; ok {
			return to
		}
		return n
	}
	node := opt.Node
	if node == "" {
		node = rename(src.Node())
	}
	if node == "" {
		node = "nonode@nohost"
	}
	version := opt.MnesiaVersion
	var schemaDef term.List
	if ss, ok := src.(schemaSource); ok {
		schemaDef = ss.SchemaDef()
		if version == "" {
			version = ss.MnesiaVersion()
		}
	}
	if version == "" {
		version = "4.21.3"
	}
	now := time.Now()
	header := term.Tuple{term.Atom("log_header"), term.Atom("backup_log"), term.Charlist("1.2"), term.Charlist(version),
		term.Atom(node), term.Tuple{int64(now.Unix() / 1e6), int64(now.Unix() % 1e6), int64(now.Nanosecond() / 1000)}}
	var buf []byte
	write := func(t term.Term) error {
		var err error
		if buf, err = term.Append(buf[:0], t, term.EncodeOptions{}); err != nil {
			return err
		}
		return w.WriteItem(buf)
	}
	if err := write(header); err != nil {
		return rep, err
	}
	tables := src.Tables()
	if schemaDef == nil {
		schemaDef = synthesizeSchemaDef(node)
	}
	if err := write(term.Tuple{term.Atom("schema"), term.Atom("schema"), renameDef(schemaDef, rename)}); err != nil {
		return rep, err
	}
	for _, t := range tables {
		def := t.Def
		if def == nil {
			def = synthesizeDef(t, node)
		}
		if err := write(term.Tuple{term.Atom("schema"), term.Atom(t.Name), renameDef(def, rename)}); err != nil {
			return rep, err
		}
	}
	rep.PerTable = map[string]int64{}
	var names []string
	for _, t := range tables {
		if t.HasData() {
			names = append(names, t.Name)
		}
	}
	rep.Tables = len(tables)
	var recBuf []byte
	current := ""
	err = src.Records(names, func(table string, rec []byte) error {
		if table != current && current != "" && opt.Progress != nil {
			opt.Progress(current, rep.Records)
		}
		current = table
		// In a backup, element 1 is the table name.
		var err error
		if recBuf, err = withFirst(recBuf[:0], rec, term.Atom(table)); err != nil {
			return fmt.Errorf("table %s: %w", table, err)
		}
		rep.Records++
		rep.PerTable[table]++
		return w.WriteItem(recBuf)
	})
	if err != nil {
		return rep, err
	}
	if opt.Progress != nil && current != "" {
		opt.Progress(current, rep.Records)
	}
	return rep, w.Close()
}

// renameDef rewrites node names in a create list's copy lists.
func renameDef(def term.List, rename func(string) string) term.List {
	out := make(term.List, len(def))
	for i, e := range def {
		out[i] = e
		kv, ok := e.(term.Tuple)
		if !ok || len(kv) != 2 {
			continue
		}
		switch {
		case term.IsAtom(kv[0], "ram_copies"), term.IsAtom(kv[0], "disc_copies"), term.IsAtom(kv[0], "disc_only_copies"):
			nodes, _ := term.Elems(kv[1])
			renamed := make(term.List, len(nodes))
			for j, n := range nodes {
				renamed[j] = term.Atom(rename(atomText(n)))
			}
			out[i] = term.Tuple{kv[0], renamed}
		}
	}
	return out
}

// synthesizeSchemaDef is the schema table's create list for a source that
// has none (a text dump).
func synthesizeSchemaDef(node string) term.List {
	return term.List{
		term.Tuple{term.Atom("name"), term.Atom("schema")},
		term.Tuple{term.Atom("type"), term.Atom("set")},
		term.Tuple{term.Atom("ram_copies"), term.List{}},
		term.Tuple{term.Atom("disc_copies"), term.List{term.Atom(node)}},
		term.Tuple{term.Atom("disc_only_copies"), term.List{}},
		term.Tuple{term.Atom("record_name"), term.Atom("schema")},
		term.Tuple{term.Atom("attributes"), term.List{term.Atom("table"), term.Atom("cstruct")}},
	}
}

// synthesizeDef is a create list for a table known only by its record (a
// text dump): a disc_copies set on node.
func synthesizeDef(t Table, node string) term.List {
	attrs := make(term.List, len(t.Attributes))
	for i, a := range t.Attributes {
		attrs[i] = term.Atom(a)
	}
	typ := t.Type
	if typ == "" {
		typ = "set"
	}
	return term.List{
		term.Tuple{term.Atom("name"), term.Atom(t.Name)},
		term.Tuple{term.Atom("type"), term.Atom(typ)},
		term.Tuple{term.Atom("ram_copies"), term.List{}},
		term.Tuple{term.Atom("disc_copies"), term.List{term.Atom(node)}},
		term.Tuple{term.Atom("disc_only_copies"), term.List{}},
		term.Tuple{term.Atom("record_name"), term.Atom(t.RecordName)},
		term.Tuple{term.Atom("attributes"), attrs},
	}
}

// RenameBackup copies a backup to out, renaming nodes in the schema
// section and header: the offline mnesia_change_nodename. It reports the
// tables the schema defines and the records copied.
func RenameBackup(in, out string, rename map[string]string) (rep BackupReport, err error) {
	if _, err := OpenBackup(in); err != nil {
		return rep, err
	}
	r, err := disklog.Open(in)
	if err != nil {
		return rep, err
	}
	defer r.Close()
	w, err := disklog.Create(out)
	if err != nil {
		return rep, err
	}
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	ren := func(n string) string {
		if to, ok := rename[n]; ok {
			return to
		}
		return n
	}
	var buf []byte
	inSchema := true
	for {
		item, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, err
		}
		if inSchema {
			v, err := term.Decode(item)
			if err != nil {
				return rep, err
			}
			switch {
			case isHeader(v):
				h := append(term.Tuple(nil), v.(term.Tuple)...)
				h[4] = term.Atom(ren(atomText(h[4])))
				v = h
			case isSchemaRow(v):
				row := v.(term.Tuple)
				if def, ok := createList(row[2]); ok {
					if !term.IsAtom(row[1], "schema") {
						rep.Tables++
					}
					v = term.Tuple{row[0], row[1], renameDef(def, ren)}
				} else if term.IsAtom(row[1], "db_nodes") {
					nodes, _ := term.Elems(row[2])
					l := make(term.List, len(nodes))
					for i, n := range nodes {
						l[i] = term.Atom(ren(atomText(n)))
					}
					v = term.Tuple{row[0], row[1], l}
				}
			default:
				inSchema = false
			}
			if inSchema {
				if buf, err = term.Append(buf[:0], v, term.EncodeOptions{}); err != nil {
					return rep, err
				}
				item = buf
			}
		}
		if !inSchema {
			rep.Records++
		}
		if err := w.WriteItem(item); err != nil {
			return rep, err
		}
	}
	if len(r.Damage) > 0 {
		return rep, fmt.Errorf("%s is damaged (%s): not renamed", in, r.Damage[0])
	}
	return rep, w.Close()
}

func isHeader(v term.Term) bool    { _, ok := term.IsRecord(v, "log_header", 6); return ok }
func isSchemaRow(v term.Term) bool { _, ok := term.IsRecord(v, "schema", 3); return ok }
