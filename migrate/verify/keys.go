package verify

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// KeyRows is what the database must hold for one Mnesia key: the
// operations that would rewrite the key (its deletes select the rows the
// key owns; its inserts are what those rows must be).
type KeyRows struct {
	Table string // the Mnesia table
	Key   term.Term
	Ops   []schema.Op
}

// KeyResult is the comparison of some keys.
type KeyResult struct {
	Result
	// Keys compared, and queries run.
	Keys, Queries int64
	// Whole: Mnesia tables with a key whose rows its deletes do not
	// select (a row a cascade removes): only a whole comparison of
	// those tables proves them.
	Whole []string
}

// CompareKeys compares, key by key, the rows the database holds for each
// key with those its records map to, as Verify compares whole tables.
func CompareKeys(ctx context.Context, pool *pgxpool.Pool, sc schema.Schema, keys []KeyRows, maxReport int) (*KeyResult, error) {
	res := &KeyResult{Keys: int64(len(keys))}
	tables := map[string]*Table{}
	tableOf := func(t string) *Table {
		if tables[t] == nil {
			tables[t] = &Table{Table: t}
		}
		return tables[t]
	}
	whole := map[string]bool{}
	type query struct {
		key    int
		table  string
		isTime []bool
	}
	var queries []query
	batch := &pgx.Batch{}
	type sharedRow struct {
		key   int
		table string
		spec  schema.VerifySpec
		canon []string
	}
	var shared []sharedRow
	want := make([]map[string][]digest, len(keys))
	for i, k := range keys {
		want[i] = map[string][]digest{}
		selected := map[string]bool{}
		seen := map[string]bool{}
		for _, op := range k.Ops {
			if op.Kind != schema.Delete {
				continue
			}
			spec := sc.Verify(op.Table)
			if len(spec.Columns) == 0 {
				continue
			}
			sel, isTime := selectList(spec)
			from, alias := spec.From, ""
			if from == "" {
				from = pgx.Identifier{op.Table}.Sanitize()
			} else if f := strings.Fields(from); len(f) > 1 {
				alias = f[1]
			}
			var args []any
			q := "SELECT " + strings.Join(sel, ", ") + " FROM " + from + op.WhereSQL(alias, &args)
			id := q + fmt.Sprint(args...)
			if seen[id] {
				continue
			}
			seen[id] = true
			selected[op.Table] = true
			batch.Queue(q, args...)
			queries = append(queries, query{i, op.Table, isTime})
		}
		for _, op := range k.Ops {
			if op.Kind != schema.Insert {
				continue
			}
			if !selected[op.Table] {
				spec := sc.Verify(op.Table)
				switch {
				case len(spec.Columns) == 0:
				case spec.Shared:
					shared = append(shared, sharedRow{key: i, table: op.Table, spec: spec, canon: canonValues(op)})
				default:
					whole[k.Table] = true
				}
				continue
			}
			want[i][op.Table] = append(want[i][op.Table], rowDigest(canonValues(op)))
			tableOf(op.Table).Source++
		}
	}
	res.Queries = int64(len(queries))
	got := make([]map[string][]digest, len(keys))
	for i := range got {
		got[i] = map[string][]digest{}
	}
	// The queries go in pipelined batches.
	const perBatch = 2000
	for start := 0; start < len(queries); start += perBatch {
		part := &pgx.Batch{QueuedQueries: batch.QueuedQueries[start:min(start+perBatch, len(queries))]}
		br := pool.SendBatch(ctx, part)
		for j := range part.QueuedQueries {
			qi := queries[start+j]
			rows, err := br.Query()
			if err == nil {
				err = scanRows(rows, qi.isTime, func(canon []string, _ []*string) {
					got[qi.key][qi.table] = append(got[qi.key][qi.table], rowDigest(canon))
					tableOf(qi.table).Database++
				})
			}
			if err != nil {
				br.Close()
				return nil, fmt.Errorf("reading %s: %w", qi.table, err)
			}
		}
		if err := br.Close(); err != nil {
			return nil, err
		}
	}
	for i, k := range keys {
		names := map[string]bool{}
		for t := range want[i] {
			names[t] = true
		}
		for t := range got[i] {
			names[t] = true
		}
		for t := range names {
			w, g := want[i][t], got[i][t]
			sort.Slice(w, func(a, b int) bool { return string(w[a][:]) < string(w[b][:]) })
			sort.Slice(g, func(a, b int) bool { return string(g[a][:]) < string(g[b][:]) })
			missing, extra := diffSorted(w, g)
			tv := tableOf(t)
			var m, x int
			for _, c := range missing {
				m += c
			}
			for _, c := range extra {
				x += c
			}
			tv.Missing += int64(m)
			tv.Extra += int64(x)
			if (m > 0 || x > 0) && len(tv.Mismatches) < maxReport {
				kind := "different"
				switch {
				case x == 0:
					kind = "missing"
				case m == 0:
					kind = "extra"
				}
				tv.Mismatches = append(tv.Mismatches, Mismatch{Table: t, Kind: kind, Key: k.Table + " " + term.Short(k.Key), Count: max(m, x)})
			}
		}
	}
	// A shared row must be there (rows with its key columns, one of them
	// equal).
	for _, sr := range shared {
		sel, isTime := selectList(sr.spec)
		from := sr.spec.From
		if from == "" {
			from = pgx.Identifier{sr.table}.Sanitize()
		}
		var conds []string
		var args []any
		for c := 0; c < min(sr.spec.KeyCols, len(sel)); c++ {
			if sr.canon[c] == canonical(nil) || isTime[c] {
				continue
			}
			args = append(args, sr.canon[c])
			conds = append(conds, fmt.Sprintf("%s = $%d", sel[c], len(args)))
		}
		q := "SELECT " + strings.Join(sel, ", ") + " FROM " + from
		if len(conds) > 0 {
			q += " WHERE " + strings.Join(conds, " AND ")
		}
		want := rowDigest(sr.canon)
		found := false
		rows, err := pool.Query(ctx, q, args...)
		if err == nil {
			err = scanRows(rows, isTime, func(canon []string, _ []*string) {
				found = found || rowDigest(canon) == want
			})
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", sr.table, err)
		}
		res.Queries++
		tv := tableOf(sr.table)
		tv.Source++
		if found {
			tv.Database++
			continue
		}
		tv.Missing++
		if len(tv.Mismatches) < maxReport {
			k := keys[sr.key]
			tv.Mismatches = append(tv.Mismatches, Mismatch{Table: sr.table, Kind: "missing", Key: k.Table + " " + term.Short(k.Key), Count: 1})
		}
	}
	for _, tv := range tables {
		res.Tables = append(res.Tables, *tv)
	}
	sort.Slice(res.Tables, func(i, j int) bool { return res.Tables[i].Table < res.Tables[j].Table })
	for t := range whole {
		res.Whole = append(res.Whole, t)
	}
	sort.Strings(res.Whole)
	return res, nil
}
