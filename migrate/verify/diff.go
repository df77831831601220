package verify

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// Diff is what differs between a source and a database, by what repairs
// it: the Mnesia keys whose rows must be rewritten, and rows of the
// database that no record of the source accounts for at all.
type Diff struct {
	// Keys: per Mnesia table, the keys whose rows differ.
	Keys map[string][]term.Term
	// Strays: database rows whose key no source record has.
	Strays []Stray
	// Rows: rows missing from or extra in the database.
	Missing, Extra int64
}

// Stray is a database row to delete, as its columns print as text.
type Stray struct {
	Table string
	spec  schema.VerifySpec
	vals  []*string
}

// Differences compares the source with the database as Verify does, and
// names what differs by Mnesia key (a second pass over the tables that
// differ, only when something does).
func Differences(ctx context.Context, src migrate.Source, pool *pgxpool.Pool, opt Options) (*Diff, error) {
	plan, err := migrate.MakePlan(src, opt.Schema, opt.Tables)
	if err != nil {
		return nil, err
	}
	targets, _ := targetsOf(plan.Tables)
	want := map[string]*rowSet{}
	for _, tt := range targets {
		want[tt] = &rowSet{}
	}
	if _, err := mapSource(ctx, src, opt, plan.Tables, want); err != nil {
		return nil, err
	}
	d := &Diff{Keys: map[string][]term.Term{}}
	missing, extra := map[string]map[digest]int{}, map[string]map[digest]int{}
	for _, tt := range targets {
		got := &rowSet{}
		if err := readTable(ctx, pool, opt.Schema.Verify(tt), tt, got); err != nil {
			return nil, err
		}
		w := want[tt]
		w.sort()
		got.sort()
		missing[tt], extra[tt] = diffSorted(w.ds, got.ds)
		for _, n := range missing[tt] {
			d.Missing += int64(n)
		}
		for _, n := range extra[tt] {
			d.Extra += int64(n)
		}
	}
	if d.Missing == 0 && d.Extra == 0 {
		return d, nil
	}
	// The extra rows, by the digest of their key columns.
	type extraRow struct {
		table string
		vals  []*string
	}
	extraByKey := map[digest][]extraRow{}
	for _, tt := range targets {
		if len(extra[tt]) == 0 {
			continue
		}
		spec := opt.Schema.Verify(tt)
		left := extra[tt]
		err := scanTable(ctx, pool, spec, tt, func(canon []string, raw []*string) {
			dg := rowDigest(canon)
			if left[dg] == 0 {
				return
			}
			left[dg]--
			k := rowDigest(append([]string{tt}, canon[:min(spec.KeyCols, len(canon))]...))
			extraByKey[k] = append(extraByKey[k], extraRow{tt, slices.Clone(raw)})
		})
		if err != nil {
			return nil, err
		}
	}
	// Second pass over the tables that differ: the keys of the records
	// whose rows are missing, and of those whose key columns the extra
	// rows share.
	var again []schema.Table
	for _, t := range plan.Tables {
		for _, tt := range t.Targets {
			if len(missing[tt]) > 0 || len(extra[tt]) > 0 {
				again = append(again, t)
				break
			}
		}
	}
	found := map[digest]bool{}
	seen := map[string]bool{}
	keyCols := map[string]int{}
	for _, tt := range targets {
		keyCols[tt] = opt.Schema.Verify(tt).KeyCols
	}
	err = eachMapped(ctx, src, opt, again, func(table string, key []byte, ops []schema.Op) {
		hit := false
		for _, op := range ops {
			canon := canonValues(op)
			if m := missing[op.Table]; m[rowDigest(canon)] > 0 {
				hit = true
			}
			k := rowDigest(append([]string{op.Table}, canon[:min(keyCols[op.Table], len(canon))]...))
			if _, ok := extraByKey[k]; ok {
				found[k] = true
				hit = true
			}
		}
		id := table + "\x00" + string(key)
		if hit && !seen[id] {
			seen[id] = true
			kt, err := term.Decode(append([]byte{131}, key...))
			if err == nil {
				d.Keys[table] = append(d.Keys[table], kt)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for k, rows := range extraByKey {
		if found[k] {
			continue
		}
		for _, r := range rows {
			d.Strays = append(d.Strays, Stray{Table: r.table, spec: opt.Schema.Verify(r.table), vals: r.vals})
		}
	}
	sort.Slice(d.Strays, func(i, j int) bool { return d.Strays[i].Table < d.Strays[j].Table })
	return d, nil
}

// targetsOf lists the SQL tables the Mnesia tables fill, sorted.
func targetsOf(tables []schema.Table) ([]string, map[string]bool) {
	var targets []string
	seen := map[string]bool{}
	for _, t := range tables {
		for _, tt := range t.Targets {
			if !seen[tt] {
				seen[tt] = true
				targets = append(targets, tt)
			}
		}
	}
	sort.Strings(targets)
	return targets, seen
}

func canonValues(op schema.Op) []string {
	cv := op.CanonValues()
	vals := make([]string, len(cv))
	for i, v := range cv {
		vals[i] = canonical(v)
	}
	return vals
}

// eachMapped maps the source's records as an export would and calls fn
// with each record's table, key (its encoding, without the version byte)
// and rows. Records that cannot be mapped are passed over.
func eachMapped(ctx context.Context, src migrate.Source, opt Options, tables []schema.Table, fn func(table string, key []byte, ops []schema.Op)) error {
	if len(tables) == 0 {
		return nil
	}
	mapping := opt.Schema.NewMapping(opt.Scope)
	if err := migrate.NotePass(ctx, src, tables, mapping); err != nil {
		return err
	}
	mappers := map[string]*migrate.Mapper{}
	var names []string
	for _, t := range tables {
		mappers[t.Name] = migrate.NewMapper(opt.Schema, mapping.Mapper(t.Name))
		names = append(names, t.Name)
	}
	var mu sync.Mutex // fn is called for one record at a time
	return src.Stream(ctx, names, func(table string, raw []byte) error {
		v, err := term.Decode(raw)
		if err != nil {
			return nil
		}
		ops, err := mappers[table].Map(v)
		if err != nil {
			return nil
		}
		key, err := term.Element(raw, 2)
		if err != nil {
			return nil
		}
		mu.Lock()
		fn(table, key, ops)
		mu.Unlock()
		return nil
	})
}

// scanTable reads a table's rows: their canonical form (what a row's
// digest is made of) and their columns as the select list prints them
// (nil: NULL). Both slices are reused for the next row.
func scanTable(ctx context.Context, pool *pgxpool.Pool, spec schema.VerifySpec, table string, fn func(canon []string, raw []*string)) error {
	sel, isTime := selectList(spec)
	from := spec.From
	if from == "" {
		from = pgx.Identifier{table}.Sanitize()
	}
	rows, err := pool.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+from)
	if err != nil {
		return fmt.Errorf("reading %s: %w", table, err)
	}
	return scanRows(rows, isTime, fn)
}

// scanRows reads the rows of a select list (selectList) and calls fn with
// each row's canonical form and its columns as printed (both reused for
// the next row). It closes rows.
func scanRows(rows pgx.Rows, isTime []bool, fn func(canon []string, raw []*string)) error {
	defer rows.Close()
	n := len(isTime)
	raw := make([]*string, n)
	ptrs := make([]any, n)
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	canon := make([]string, n)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i := range raw {
			canon[i] = canonText(raw[i], isTime[i])
		}
		fn(canon, raw)
	}
	return rows.Err()
}

// selectList is the select list that prints a table's compared columns.
func selectList(spec schema.VerifySpec) ([]string, []bool) {
	cols := spec.Columns
	isTime := make([]bool, len(cols))
	sel := make([]string, len(cols))
	for i, c := range cols {
		name := c
		if !strings.Contains(c, ".") {
			name = pgx.Identifier{c}.Sanitize()
		}
		sel[i] = name + "::text"
		for _, ts := range spec.Timestamps {
			if c == ts {
				isTime[i] = true
				sel[i] = fmt.Sprintf("to_char(%s, 'YYYY-MM-DD HH24:MI:SS.US')", name)
			}
		}
	}
	return sel, isTime
}

// canonText is a column as canonical writes the value.
func canonText(v *string, isTime bool) string {
	switch {
	case v == nil:
		return canonical(nil)
	case isTime:
		// as canonical prints a time: no trailing zeros in the fraction
		return strings.TrimRight(strings.TrimRight(*v, "0"), ".")
	}
	return *v
}

// DeleteSQL is the statement that deletes one row equal to the stray (a
// row of a table read through a join is deleted through the rows it
// depends on, and gets no statement).
func (s Stray) DeleteSQL() (string, []any, bool) {
	t := pgx.Identifier{s.Table}.Sanitize()
	conds, args, ok := s.match()
	if !ok {
		return "", nil, false
	}
	return "DELETE FROM " + t + " WHERE ctid = (SELECT ctid FROM " + t + " WHERE " + conds + " LIMIT 1)", args, true
}

// ExistsSQL is the query that tells whether a row equal to the stray is
// still there (none for a table read through a join).
func (s Stray) ExistsSQL() (string, []any, bool) {
	conds, args, ok := s.match()
	if !ok {
		return "", nil, false
	}
	return "SELECT EXISTS (SELECT 1 FROM " + pgx.Identifier{s.Table}.Sanitize() + " WHERE " + conds + ")", args, true
}

// Values are the stray's columns as the select list prints them (nil:
// NULL).
func (s Stray) Values() []*string { return s.vals }

// NewStray is a stray of a table, from its Values.
func NewStray(sc schema.Schema, table string, vals []*string) Stray {
	return Stray{Table: table, spec: sc.Verify(table), vals: vals}
}

// match is the condition that selects rows equal to the stray.
func (s Stray) match() (string, []any, bool) {
	if s.spec.From != "" || len(s.vals) != len(s.spec.Columns) {
		return "", nil, false
	}
	sel, _ := selectList(s.spec)
	var conds []string
	var args []any
	for i, expr := range sel {
		if s.vals[i] == nil {
			conds = append(conds, pgx.Identifier{s.spec.Columns[i]}.Sanitize()+" IS NULL")
			continue
		}
		args = append(args, *s.vals[i])
		conds = append(conds, fmt.Sprintf("%s = $%d", expr, len(args)))
	}
	return strings.Join(conds, " AND "), args, true
}
