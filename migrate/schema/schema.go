// Package schema is the contract between the export engine and the
// per-schema mappers: a Schema says which Mnesia tables it maps into which
// SQL tables, and a Mapper turns one record into row operations (insert,
// or delete by key). The engine (package migrate), the sinks and verify
// know nothing of any schema beyond this.
package schema

import (
	"context"

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

// Int reads an integer a Querier returned (int16, int32 or int64 by the
// column's type).
func Int(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case int16:
		return int64(n), true
	case int:
		return int64(n), true
	}
	return 0, false
}
