// Package delta carries the changes of a live Mnesia cluster into SQL:
// the forwarders of erldist/mnesia report every write and delete of the
// exported tables, and each becomes row operations through the same
// per-schema mappers as the export (schema.Mapper).
//
// Every operation a change becomes is idempotent and says what the rows
// of a key or of a record must be, never what to add to them: a write to
// a set table replaces the key's rows, a write to a bag inserts the
// record's rows unless they are there, a delete removes the key's rows, a
// delete_object of a bag the record's rows. So events may be applied
// after a copy that already holds some of them (subscribe first, copy,
// then apply what came meanwhile), or after a repair, and the rows end as
// Mnesia's records are.
package delta

import (
	"context"
	"errors"
	"fmt"

	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// KeyReader reads a key's current records (mnesia:dirty_read on a node
// that holds the table).
type KeyReader func(ctx context.Context, table string, key term.Term) ([]term.Term, error)

// Mapping maps the changes of the exported tables.
type Mapping struct {
	sc      schema.Schema
	m       schema.Mapping
	mappers map[string]*migrate.Mapper
	inPlace map[string]map[string][]string // table -> Table.InPlace
	bag     map[string]bool
	noted   map[string]bool // tables other tables' mappers need to see
	read    KeyReader
}

// NewMapping maps changes of the tables (their Mnesia types: set, bag,
// ordered_set) for a schema. The mapping continues from what the database
// holds (Load).
func NewMapping(ctx context.Context, sc schema.Schema, scope *schema.Scope, tables []schema.Table, types map[string]string, q schema.Querier, read KeyReader) (*Mapping, error) {
	m := &Mapping{sc: sc, m: sc.NewMapping(scope), mappers: map[string]*migrate.Mapper{}, inPlace: map[string]map[string][]string{}, bag: map[string]bool{},
		noted: map[string]bool{}, read: read}
	if err := m.m.Load(ctx, q, func(string) bool { return false }); err != nil {
		return nil, err
	}
	for _, t := range tables {
		m.mappers[t.Name] = migrate.NewMapper(sc, m.m.Mapper(t.Name))
		m.inPlace[t.Name] = t.InPlace
		m.bag[t.Name] = types[t.Name] == "bag"
		for _, n := range t.Needs {
			m.noted[n] = true
		}
	}
	return m, nil
}

// Note shows the mapping a record of a table others need (a pubsub node
// before its items), as an export's first pass does.
func (m *Mapping) Note(table string, rec term.Tuple) {
	if m.noted[table] {
		m.m.Note(table, rec)
	}
}

// Maps reports whether a table's changes are mapped.
func (m *Mapping) Maps(table string) bool { return m.mappers[table] != nil }

// Rejected is a change whose record cannot be stored (as an export
// rejects it).
type Rejected struct {
	Table  string
	Key    term.Term
	Reason string
}

func (r *Rejected) Error() string {
	return fmt.Sprintf("%s %s: %s", r.Table, term.Short(r.Key), r.Reason)
}

// Ops maps one change. A change of a virtual host that is not exported
// maps to nothing; a record that cannot be stored is a *Rejected along
// with the operations that remove its key's rows (they no longer hold
// what Mnesia holds).
func (m *Mapping) Ops(ctx context.Context, e *mnesia.Event) ([]schema.Op, error) {
	mp := m.mappers[e.Table]
	if mp == nil {
		return nil, nil
	}
	switch e.Kind {
	case mnesia.EventDelete:
		ops, err := mp.Delete(e.Key)
		return ops, m.classify(e, err)
	case mnesia.EventWrite:
		m.Note(e.Table, e.Record)
		rows, rerr := mp.Map(e.Record)
		if rerr = m.classify(e, rerr); rerr != nil && !isRejected(rerr) {
			return nil, rerr
		}
		if m.bag[e.Table] {
			out := make([]schema.Op, len(rows))
			for i, r := range rows {
				out[i] = r.Absent()
			}
			return out, rerr
		}
		ops, err := mp.Delete(e.Key)
		if err = m.classify(e, err); err != nil {
			return nil, err
		}
		return m.replace(e.Table, ops, rows), rerr
	case mnesia.EventDeleteObject:
		if m.bag[e.Table] {
			rows, err := mp.Map(e.Record)
			if err = m.classify(e, err); err != nil {
				if isRejected(err) {
					return nil, nil // a record that was never stored
				}
				return nil, err
			}
			out := make([]schema.Op, len(rows))
			for i, r := range rows {
				out[i] = r.RowDelete()
			}
			return out, nil
		}
		// A set's delete_object removes the key only if it held that
		// record: its rows become what the key holds now.
		return m.Rewrite(ctx, e.Table, e.Key)
	}
	return nil, nil
}

// Rewrite is what makes a key's rows what Mnesia holds for it now.
func (m *Mapping) Rewrite(ctx context.Context, table string, key term.Term) ([]schema.Op, error) {
	if m.mappers[table] == nil {
		return nil, nil
	}
	recs, err := m.read(ctx, table, key)
	if err != nil {
		return nil, err
	}
	return m.rewriteOps(table, key, recs)
}

// rewriteOps replaces a key's rows by those of its records.
func (m *Mapping) rewriteOps(table string, key term.Term, recs []term.Term) ([]schema.Op, error) {
	dels, rows, err := m.keyOps(table, key, recs)
	if err != nil && !isRejected(err) {
		return nil, err
	}
	return m.replace(table, dels, rows), err
}

// keyOps are the deletes that remove a key's rows and the rows its
// records map to (with a *Rejected when a record cannot be stored).
func (m *Mapping) keyOps(table string, key term.Term, recs []term.Term) (dels, rows []schema.Op, err error) {
	mp := m.mappers[table]
	if mp == nil {
		return nil, nil, nil
	}
	e := &mnesia.Event{Table: table, Key: key}
	dels, err = mp.Delete(key)
	if err = m.classify(e, err); err != nil {
		return nil, nil, err
	}
	var rejected error
	for _, r := range recs {
		rec, ok := r.(term.Tuple)
		if !ok {
			continue
		}
		m.Note(table, rec)
		mapped, err := mp.Map(rec)
		if err = m.classify(e, err); err != nil {
			if isRejected(err) {
				rejected = err
				continue
			}
			return nil, nil, err
		}
		rows = append(rows, mapped...)
	}
	return dels, rows, rejected
}

// replace is what makes a key's rows the rows of its records: the key's
// deletes, then the rows. A row others hang on (Table.InPlace) is not
// deleted but updated in place by its row, which would delete theirs.
func (m *Mapping) replace(table string, dels, rows []schema.Op) []schema.Op {
	in := m.inPlace[table]
	if len(in) == 0 || len(rows) == 0 {
		return append(dels, rows...)
	}
	out := make([]schema.Op, 0, len(dels)+len(rows))
	for _, d := range dels {
		if _, ok := in[d.Table]; !ok {
			out = append(out, d)
		}
	}
	for _, r := range rows {
		if cols, ok := in[r.Table]; ok && r.Kind == schema.Insert {
			r = r.UpsertOn(cols...)
		}
		out = append(out, r)
	}
	return out
}

// classify turns a mapper's error into nothing (a virtual host that is
// not exported: its changes are not ours), a *Rejected, or itself.
func (m *Mapping) classify(e *mnesia.Event, err error) error {
	if err == nil {
		return nil
	}
	var skip *schema.Skip
	var rj *schema.Reject
	switch {
	case errors.As(err, &skip):
		return nil
	case errors.As(err, &rj):
		return &Rejected{Table: e.Table, Key: e.Key, Reason: rj.Reason}
	}
	return err
}

func isRejected(err error) bool {
	var r *Rejected
	return errors.As(err, &r)
}
