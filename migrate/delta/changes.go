package delta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
	"github.com/mimmigrate/mimmigrate/migrate/sink"
	"github.com/mimmigrate/mimmigrate/migrate/source"
	"github.com/mimmigrate/mimmigrate/migrate/verify"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// ChangesTable holds the Mnesia keys a sync changed since a cutover asked
// it to note them: the keys a final check must look at again. An empty
// key stands for the whole table; a table named "stray:" and a SQL table
// holds a row of it that no key accounted for (its columns, a list).
const ChangesTable = "mimmigrate_sync_changes"

const changesDDL = `CREATE TABLE IF NOT EXISTS ` + ChangesTable + ` (
    source text NOT NULL,
    tab text NOT NULL,
    key bytea NOT NULL,
    PRIMARY KEY (source, tab, key)
)`

// tracker notes the keys the sync changes while noting is asked for, until
// the next status report writes them.
type tracker struct {
	mu    sync.Mutex
	since *time.Time // nil: not noting
	keys  map[string]map[string]bool
}

func (t *tracker) on() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.since != nil
}

// touch notes a key (its encoding without the version byte).
func (t *tracker) touch(table string, key term.Term) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.since == nil {
		return
	}
	b, err := term.AppendBody(nil, key, term.EncodeOptions{})
	if err != nil {
		b = nil // cannot happen for a decoded key; the whole table then
	}
	t.add(table, string(b))
}

// whole notes that a table changed in a way no key names.
func (t *tracker) whole(table string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.since != nil {
		t.add(table, "")
	}
}

func (t *tracker) add(table, key string) {
	if t.keys == nil {
		t.keys = map[string]map[string]bool{}
	}
	if t.keys[table] == nil {
		t.keys[table] = map[string]bool{}
	}
	t.keys[table][key] = true
}

// set starts (or stops, nil) noting: what was noted before is dropped.
func (t *tracker) set(since *time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if (since == nil) == (t.since == nil) && (since == nil || since.Equal(*t.since)) {
		return
	}
	t.since, t.keys = since, nil
}

// take hands over what was noted.
func (t *tracker) take() (map[string]map[string]bool, *time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.keys
	t.keys = nil
	return k, t.since
}

// putBack returns keys that could not be written.
func (t *tracker) putBack(keys map[string]map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.since == nil {
		return
	}
	for tab, ks := range keys {
		for k := range ks {
			t.add(tab, k)
		}
	}
}

// writeChanges adds keys to the changes table.
func writeChanges(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, source string, keys map[string]map[string]bool) error {
	var tabs []string
	var ks [][]byte
	for tab, set := range keys {
		for k := range set {
			tabs = append(tabs, tab)
			ks = append(ks, []byte(k))
		}
	}
	if len(tabs) == 0 {
		return nil
	}
	_, err := q.Exec(ctx, `INSERT INTO `+ChangesTable+` (source, tab, key) SELECT $1, t, k FROM unnest($2::text[], $3::bytea[]) AS u(t, k) ON CONFLICT DO NOTHING`,
		source, tabs, ks)
	return err
}

// NoteChanges asks the running sync of a source to note every key it
// changes from now on (the keys noted before are forgotten), and waits
// until it says it does.
func NoteChanges(ctx context.Context, pool *pgxpool.Pool, source string, wait time.Duration) error {
	if _, err := pool.Exec(ctx, changesDDL); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `DELETE FROM `+ChangesTable+` WHERE source = $1`, source); err != nil {
		return err
	}
	var from time.Time
	err := pool.QueryRow(ctx, `UPDATE `+StatusTable+` SET note_from = clock_timestamp() WHERE source = $1 RETURNING note_from`, source).Scan(&from)
	if errors.Is(err, pgx.ErrNoRows) {
		return errors.New("no sync of this source has run")
	}
	if err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		var noting *time.Time
		var phase string
		if err := pool.QueryRow(ctx, `SELECT noting, phase FROM `+StatusTable+` WHERE source = $1`, source).Scan(&noting, &phase); err != nil {
			return err
		}
		if noting != nil && noting.Equal(from) {
			return nil
		}
		if phase == "stopped" {
			return errors.New("sync stopped")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sync did not start noting its changes within %s (a sync of an earlier mimmigrate does not: restart it)", wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StopNoting tells the sync to stop noting changes and forgets them.
func StopNoting(ctx context.Context, pool *pgxpool.Pool, source string) error {
	_, err := pool.Exec(ctx, `UPDATE `+StatusTable+` SET note_from = NULL WHERE source = $1`, source)
	if mimsql.Absent(err) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = pool.Exec(ctx, `DELETE FROM `+ChangesTable+` WHERE source = $1`, source)
	if mimsql.Absent(err) {
		return nil
	}
	return err
}

const strayPrefix = "stray:"

// AddChanges adds keys, whole tables and rows no key accounts for to
// what is checked again.
func AddChanges(ctx context.Context, pool *pgxpool.Pool, source string, keys map[string][]term.Term, whole []string, strays []verify.Stray) error {
	if _, err := pool.Exec(ctx, changesDDL); err != nil {
		return err
	}
	set := map[string]map[string]bool{}
	add := func(t, k string) {
		if set[t] == nil {
			set[t] = map[string]bool{}
		}
		set[t][k] = true
	}
	for t, ks := range keys {
		for _, k := range ks {
			b, err := term.AppendBody(nil, k, term.EncodeOptions{})
			if err != nil {
				return err
			}
			add(t, string(b))
		}
	}
	for _, t := range whole {
		add(t, "")
	}
	for _, st := range strays {
		var row term.List
		for _, v := range st.Values() {
			if v == nil {
				row = append(row, term.Atom("null"))
			} else {
				row = append(row, term.Binary(*v))
			}
		}
		b, err := term.AppendBody(nil, row, term.EncodeOptions{})
		if err != nil {
			return err
		}
		add(strayPrefix+st.Table, string(b))
	}
	return writeChanges(ctx, pool, source, set)
}

// Changes are the keys to check again, per Mnesia table, and the tables
// to check whole.
type Changes struct {
	Keys  map[string][]term.Term
	Whole []string
	// Strays: rows of SQL tables no key accounted for (nil: NULL).
	Strays []StrayRow
}

// StrayRow is a row no key accounted for.
type StrayRow struct {
	Table string
	Vals  []*string
}

// ReadChanges reads what sync noted for a source.
func ReadChanges(ctx context.Context, pool *pgxpool.Pool, source string) (*Changes, error) {
	rows, err := pool.Query(ctx, `SELECT tab, key FROM `+ChangesTable+` WHERE source = $1`, source)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	c := &Changes{Keys: map[string][]term.Term{}}
	whole := map[string]bool{}
	for rows.Next() {
		var tab string
		var key []byte
		if err := rows.Scan(&tab, &key); err != nil {
			return nil, err
		}
		if len(key) == 0 {
			whole[tab] = true
			continue
		}
		k, err := term.Decode(append([]byte{131}, key...))
		if sql, ok := strings.CutPrefix(tab, strayPrefix); ok {
			if row, isList := k.(term.List); err == nil && isList {
				sr := StrayRow{Table: sql}
				for _, v := range row {
					if b, ok := v.(term.Binary); ok {
						str := string(b)
						sr.Vals = append(sr.Vals, &str)
					} else {
						sr.Vals = append(sr.Vals, nil)
					}
				}
				c.Strays = append(c.Strays, sr)
			}
			continue
		}
		if err != nil {
			whole[tab] = true
			continue
		}
		c.Keys[tab] = append(c.Keys[tab], k)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for t := range whole {
		c.Whole = append(c.Whole, t)
		delete(c.Keys, t)
	}
	sort.Strings(c.Whole)
	return c, nil
}

// CheckConfig is what CheckChanges compares.
type CheckConfig struct {
	Source  *source.Node
	Sink    *sink.Postgres
	Schema  schema.Schema
	Scope   *schema.Scope
	Tables  []string // empty: every mapped, non-optional table
	Timeout time.Duration
	// MaxReport bounds the mismatches listed per table.
	MaxReport int
}

// CheckResult is what CheckChanges found.
type CheckResult struct {
	Keys  int64          // keys compared one by one
	Whole []string       // Mnesia tables compared whole
	Diff  []verify.Table // per SQL table
	Rows  int64          // rows the keys' records map to
	Query int64          // database queries
	Took  time.Duration
	Read  time.Duration // of which reading Mnesia
}

// Differing is the count of rows that differ.
func (r *CheckResult) Differing() int64 {
	var n int64
	for _, t := range r.Diff {
		n += t.Missing + t.Extra + t.Different
	}
	return n
}

// CheckChanges compares what sync noted with the legacy cluster: each
// noted key's rows with what its records map to now, and the tables noted
// whole in full. Every other key compared equal when the noting began
// and has not changed since (on either side: its changes are the noted
// ones), so this proves the whole database in a time that depends on the
// changes, not on the size of the data.
func CheckChanges(ctx context.Context, cfg CheckConfig, ch *Changes) (*CheckResult, error) {
	began := time.Now()
	plan, err := migrate.MakePlan(cfg.Source, cfg.Schema, cfg.Tables)
	if err != nil {
		return nil, err
	}
	types := map[string]string{}
	for _, t := range cfg.Source.Snapshot().Tables {
		types[t.Name] = t.Type
	}
	var names []string
	for _, t := range plan.Tables {
		names = append(names, t.Name)
	}
	res := &CheckResult{}
	whole := map[string]bool{}
	for _, t := range ch.Whole {
		if slices.Contains(names, t) {
			whole[t] = true
		}
	}
	// A row no key accounted for when every table was compared was a
	// change in flight when it is gone now; one still there makes the
	// tables that fill its SQL table compared whole.
	for _, sr := range ch.Strays {
		q, args, ok := verify.NewStray(cfg.Schema, sr.Table, sr.Vals).ExistsSQL()
		there := true
		if ok {
			if err := cfg.Sink.DB.Pool.QueryRow(ctx, q, args...).Scan(&there); err != nil {
				return nil, err
			}
		}
		if there {
			for _, t := range plan.Tables {
				if slices.Contains(t.Targets, sr.Table) {
					whole[t.Name] = true
				}
			}
		}
	}
	reader := &keyReader{src: cfg.Source, timeout: cfg.Timeout}
	m, err := NewMapping(ctx, cfg.Schema, cfg.Scope, plan.Tables, types, cfg.Sink, reader.read)
	if err != nil {
		return nil, err
	}
	var rows []verify.KeyRows
	readStart := time.Now()
	for _, t := range names {
		keys := ch.Keys[t]
		if whole[t] || len(keys) == 0 {
			continue
		}
		recs, err := reader.readMany(ctx, t, keys)
		if err != nil {
			return nil, err
		}
		for i, k := range keys {
			// The rows a key owns and what they must be (not how a write
			// replaces them: a row updated in place is compared too).
			dels, mapped, err := m.keyOps(t, k, recs[i])
			if err != nil && !isRejected(err) {
				return nil, err
			}
			rows = append(rows, verify.KeyRows{Table: t, Key: k, Ops: append(dels, mapped...)})
		}
	}
	res.Read = time.Since(readStart)
	kr, err := verify.CompareKeys(ctx, cfg.Sink.DB.Pool, cfg.Schema, rows, cfg.MaxReport)
	if err != nil {
		return nil, err
	}
	res.Keys, res.Query = kr.Keys, kr.Queries
	res.Diff = kr.Tables
	for _, t := range kr.Tables {
		res.Rows += t.Source
	}
	for _, t := range kr.Whole {
		whole[t] = true
	}
	if len(whole) > 0 {
		for t := range whole {
			res.Whole = append(res.Whole, t)
		}
		sort.Strings(res.Whole)
		// The key results of the tables compared whole are replaced.
		full, err := verify.Verify(ctx, cfg.Source, cfg.Sink.DB.Pool, verify.Options{Schema: cfg.Schema, Scope: cfg.Scope, Tables: res.Whole, MaxReport: cfg.MaxReport})
		if err != nil {
			return nil, err
		}
		replaced := map[string]bool{}
		for _, t := range full.Tables {
			replaced[t.Table] = true
		}
		kept := res.Diff[:0]
		for _, t := range res.Diff {
			if !replaced[t.Table] {
				kept = append(kept, t)
			}
		}
		res.Diff = append(kept, full.Tables...)
	}
	res.Took = time.Since(began)
	return res, nil
}

// keyReader reads keys' records on the node each table is read on.
type keyReader struct {
	src     *source.Node
	timeout time.Duration
}

func (r *keyReader) read(ctx context.Context, table string, key term.Term) ([]term.Term, error) {
	recs, err := r.readMany(ctx, table, []term.Term{key})
	if err != nil {
		return nil, err
	}
	return recs[0], nil
}

// readMany reads the keys' records, 2 000 keys a call.
func (r *keyReader) readMany(ctx context.Context, table string, keys []term.Term) ([][]term.Term, error) {
	node := r.src.Where(table)
	c, err := r.src.Conn(ctx, node)
	if err != nil {
		return nil, err
	}
	out := make([][]term.Term, 0, len(keys))
	const per = 2000
	for start := 0; start < len(keys); start += per {
		part := keys[start:min(start+per, len(keys))]
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		v, err := c.Eval(cctx, `[mnesia:dirty_read(T, K) || K <- Keys]`, map[string]term.Term{"T": term.Atom(table), "Keys": term.List(part)})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("reading %s on %s: %w", table, node, err)
		}
		lists, ok := term.Elems(v)
		if !ok || len(lists) != len(part) {
			return nil, fmt.Errorf("reading %s on %s: %s", table, node, term.Short(v))
		}
		for _, l := range lists {
			recs, ok := term.Elems(l)
			if !ok {
				return nil, fmt.Errorf("reading %s on %s: %s", table, node, term.Short(l))
			}
			out = append(out, recs)
		}
	}
	return out, nil
}

// PreCheck compares every table while the legacy cluster serves (sync
// noting the keys that change already): the keys that differ now (changes
// in flight, mostly) are added to the noted ones, and so are the rows no
// key accounts for (the check after the drain looks whether they are
// gone).
func PreCheck(ctx context.Context, cfg CheckConfig) (*verify.Diff, error) {
	plan, err := migrate.MakePlan(cfg.Source, cfg.Schema, cfg.Tables)
	if err != nil {
		return nil, err
	}
	d, err := verify.Differences(ctx, cfg.Source, cfg.Sink.DB.Pool, verify.Options{Schema: cfg.Schema, Scope: cfg.Scope, Tables: cfg.Tables})
	if err != nil {
		return nil, err
	}
	var whole []string
	var strays []verify.Stray
	for _, st := range d.Strays {
		if _, _, ok := st.ExistsSQL(); ok {
			strays = append(strays, st)
			continue
		}
		for _, t := range plan.Tables {
			if slices.Contains(t.Targets, st.Table) && !slices.Contains(whole, t.Name) {
				whole = append(whole, t.Name)
			}
		}
	}
	return d, AddChanges(ctx, cfg.Sink.DB.Pool, cfg.Source.Identity(), d.Keys, whole, strays)
}
