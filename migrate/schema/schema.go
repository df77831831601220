// Package schema is the contract between the export engine and the
// per-schema mappers: a Schema says which Mnesia tables it maps into which
// SQL tables, and a Mapper turns one record into row operations (insert,
// or delete by key). The engine (package migrate), the sinks and verify
// know nothing of any schema beyond this.
package schema

import (
	"context"
	"sync"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Schema is one target SQL schema.
type Schema interface {
	// Name is the schema's name as `--schema` takes it and the sql
	// package knows its migrations.
	Name() string
	// SingleHost reports whether the schema holds one virtual host (its
	// tables have no server column).
	SingleHost() bool
	// Tables lists the Mnesia tables the schema maps, in export order.
	Tables() []Table
	// Columns lists a SQL table's columns in the order Op values come.
	Columns(sqlTable string) []string
	// XMLColumns are the columns ("table.column") the server parses as
	// XML when it reads them.
	XMLColumns() []string
	// Serials are the serial columns whose sequences are advanced past
	// the highest id after a load.
	Serials() []Serial
	// Verify says how verify reads a SQL table back.
	Verify(sqlTable string) VerifySpec
	// Restart lists what removes the rows an unfinished earlier export of
	// a Mnesia table wrote, before it starts over.
	Restart(table string) []Op
	// NewMapping starts the mapping of one export or verify.
	NewMapping(scope *Scope) Mapping
}

// Table is one Mnesia table a schema maps.
type Table struct {
	Name    string   // the Mnesia table
	Targets []string // the SQL tables it fills
	// Optional tables (a cache) are exported only when asked for by name.
	Optional bool
	// After tables are exported once the others are done (their rows
	// refer to ids the others assign).
	After bool
	// GroupByKey: a chunk never splits the records of one key, and Less
	// (when set) orders the records of a chunk (a user's offline messages
	// in their time order).
	GroupByKey bool
	Less       func(a, b term.Term) bool
	// Needs are tables whose records the mapping must see (Mapping.Note)
	// before it maps this one.
	Needs []string
	// InPlace: SQL tables whose rows other keys' rows hang on through
	// foreign keys that delete with them (a pubsub node's items), with
	// the columns a row is found by. A record written again updates such
	// a row in place: its key's delete and insert would take the others
	// along.
	InPlace map[string][]string
}

// Serial is a serial column of a SQL table.
type Serial struct{ Table, Column string }

// VerifySpec is how verify reads a SQL table: the columns compared (as
// text, in the order of the rows' canonical form), the FROM clause (the
// table itself when empty) and how many leading columns name a row in a
// report.
type VerifySpec struct {
	Columns []string
	From    string
	KeyCols int
	// Timestamps are the columns that hold SQL timestamps: compared as
	// the canonical form writes times.
	Timestamps []string
	// Shared: rows that records of several keys map to and that no key's
	// delete removes (the owners of assigned ids). A key's check finds
	// its row there, however many keys share it.
	Shared bool
}

// Mapping is the state the tables of one export or verify share (ids it
// assigns, pubsub nodes it has seen).
type Mapping interface {
	// Load reads what the database holds already that the mapping must
	// continue from (ids in use). restarting reports whether a table
	// starts over (its earlier rows are deleted first).
	Load(ctx context.Context, q Querier, restarting func(table string) bool) error
	// Note shows the mapping a record of a table some other table Needs.
	Note(table string, rec term.Tuple)
	// Mapper returns the mapper of one table's records. A mapper is used
	// by one goroutine at a time.
	Mapper(table string) Mapper
}

// Mapper maps one Mnesia table's records to row operations.
type Mapper interface {
	// Map returns the inserts that store a record. An error is a *Reject
	// (the record cannot be stored) or a *Skip (it belongs to a virtual
	// host that is not exported).
	Map(rec term.Tuple) ([]Op, error)
	// Delete returns what removes the rows of every record with this
	// Mnesia key (what mnesia:delete/1 of the key removes).
	Delete(key term.Term) ([]Op, error)
}

// Querier runs a read-only query against the target; a target that is
// not a database (a file, a dry run) answers with no rows.
type Querier interface {
	Query(ctx context.Context, sql string, row func(vals []any) error) error
}

// DeleteTargets removes every row of the SQL tables a Mnesia table fills,
// in the reverse of their order (rows that refer to others go first).
func DeleteTargets(t Table) []Op {
	var out []Op
	for i := len(t.Targets) - 1; i >= 0; i-- {
		out = append(out, Del(t.Targets[i]))
	}
	return out
}

// Funcs is a Mapper made of a table's two functions over the state S
// they share (the schema's mapper of that table).
type Funcs[S any] struct {
	State S
	MapFn func(S, term.Tuple) ([]Op, error)
	DelFn func(S, term.Term) ([]Op, error)
}

// Map implements Mapper.
func (f Funcs[S]) Map(rec term.Tuple) ([]Op, error) {
	if len(rec) == 0 {
		return nil, Rejectf("not a record: %s", term.Short(rec))
	}
	return f.MapFn(f.State, rec)
}

// Delete implements Mapper.
func (f Funcs[S]) Delete(key term.Term) ([]Op, error) { return f.DelFn(f.State, key) }

// IDs hands out consecutive ids of a serial column that the export fills
// itself, continuing after the ids a database holds. Safe for concurrent
// use.
type IDs struct {
	mu   sync.Mutex
	next int64
}

// Take reserves n consecutive ids and returns the first.
func (c *IDs) Take(n int) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := max(c.next, 1)
	c.next = first + int64(n)
	return first
}

// Load continues after the highest id of table.column the target holds.
func (c *IDs) Load(ctx context.Context, q Querier, table, column string) error {
	return q.Query(ctx, `SELECT coalesce(max(`+column+`), 0) + 1 FROM `+table, func(v []any) error {
		if n, ok := term.Int(v[0]); ok {
			c.mu.Lock()
			c.next = n
			c.mu.Unlock()
		}
		return nil
	})
}
