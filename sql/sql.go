// Package sql holds the SQL schemas mimmigrate writes into, as
// golang-migrate migrations embedded in the binary, and applies them.
//
// Each schema is a directory of numbered migrations:
//
//	ejabberd            ejabberd's pg.sql (one virtual host per database)
//	ejabberd-multihost  ejabberd's pg.new.sql (server_host columns)
//	mongooseim          MongooseIM 6.x priv/pg.sql (server columns, pass_details)
//	discovery           discovery_nodes, where mimmigrate's cluster nodes find each other
//
// A database records which schema it holds, and at which version, in its
// own migrations table (mimmigrate_migrations_<schema>), so that two
// schemas never mistake each other's version for their own.
package sql

import (
	"context"
	dbsql "database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/stdlib"
)

//go:embed ejabberd/*.sql ejabberd-multihost/*.sql mongooseim/*.sql discovery/*.sql
var migrations embed.FS

// Schemas are the schema names, sorted.
func Schemas() []string {
	entries, _ := fs.ReadDir(migrations, ".")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// Latest is the newest version of a schema, or 0 for an unknown one.
func Latest(schema string) uint {
	entries, err := fs.ReadDir(migrations, schema)
	if err != nil {
		return 0
	}
	var v uint
	for _, e := range entries {
		n, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		if x, err := strconv.ParseUint(n, 10, 32); err == nil && uint(x) > v {
			v = uint(x)
		}
	}
	return v
}

// UpSQL returns the text of a schema's migration to version v.
func UpSQL(schema string, v uint) (string, error) {
	entries, err := fs.ReadDir(migrations, schema)
	if err != nil {
		return "", fmt.Errorf("no schema %q", schema)
	}
	prefix := fmt.Sprintf("%06d_", v)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && strings.HasSuffix(e.Name(), ".up.sql") {
			b, err := migrations.ReadFile(schema + "/" + e.Name())
			return string(b), err
		}
	}
	return "", fmt.Errorf("schema %s has no version %d", schema, v)
}

// MigrationsTable is the table where a database records its version of
// schema.
func MigrationsTable(schema string) string {
	return "mimmigrate_migrations_" + strings.ReplaceAll(schema, "-", "_")
}

// ErrUnknownSchema: no such schema in this binary.
var ErrUnknownSchema = errors.New("unknown schema")

// Status is what a database holds of a schema.
type Status struct {
	Schema  string
	Version uint // 0: none
	Dirty   bool // a migration failed half way
	Latest  uint
	// Foreign lists the schema's tables that exist in the database although
	// it has no record of the schema: created by hand or by another tool.
	Foreign []string
	// Others are the other target schemas the database records (its
	// tables are theirs, not this schema's).
	Others []string
}

// Inspect reports which version of schema the database holds.
func Inspect(ctx context.Context, mdb *DB, schema string) (Status, error) {
	db := mdb.SQL()
	st := Status{Schema: schema, Latest: Latest(schema)}
	if st.Latest == 0 {
		return st, fmt.Errorf("%w %q (known: %s)", ErrUnknownSchema, schema, strings.Join(Schemas(), ", "))
	}
	var err error
	if st.Version, st.Dirty, err = recorded(ctx, db, schema); err != nil {
		return st, err
	}
	for _, other := range Schemas() {
		if other == schema || other == "discovery" || schema == "discovery" {
			continue
		}
		if v, _, err := recorded(ctx, db, other); err != nil {
			return st, err
		} else if v > 0 {
			st.Others = append(st.Others, other)
		}
	}
	if st.Version == 0 {
		tables, err := schemaTables(schema)
		if err != nil {
			return st, err
		}
		for _, t := range tables {
			var found bool
			if err := db.QueryRowContext(ctx, `SELECT to_regclass(current_schema() || '.' || $1) IS NOT NULL`, t).Scan(&found); err != nil {
				return st, err
			}
			if found {
				st.Foreign = append(st.Foreign, t)
			}
		}
	}
	return st, nil
}

// Why a database cannot take rows of a schema (NotReadyError.Reason).
const (
	NotReadyDirty   = "dirty"   // a migration of the schema failed half way
	NotReadyOther   = "other"   // the database holds another target schema
	NotReadyForeign = "foreign" // the schema's tables exist, made by other means
	NotReadyMissing = "missing" // the schema is not there
	NotReadyVersion = "version" // the schema is at another version than this release writes
)

// NotReadyError says why a database cannot take rows of a schema.
type NotReadyError struct {
	Reason string
	Status Status
}

func (e *NotReadyError) Error() string {
	st := e.Status
	switch e.Reason {
	case NotReadyDirty:
		return fmt.Sprintf("the %s schema in the database is dirty (a migration failed half way)", st.Schema)
	case NotReadyOther:
		return fmt.Sprintf("the database holds the %s schema, not %s", strings.Join(st.Others, ", "), st.Schema)
	case NotReadyForeign:
		return fmt.Sprintf("the database has %s tables mimmigrate did not create", st.Schema)
	case NotReadyMissing:
		return fmt.Sprintf("the database has no %s schema", st.Schema)
	}
	return fmt.Sprintf("the database's %s schema is at version %d; this export writes version %d", st.Schema, st.Version, st.Latest)
}

// Ready says whether the database can take rows of the schema: it holds
// the schema at the version this release writes, cleanly.
func (st Status) Ready() error {
	reason := ""
	switch {
	case st.Dirty:
		reason = NotReadyDirty
	case st.Version == 0 && len(st.Others) > 0:
		reason = NotReadyOther
	case st.Version == 0 && len(st.Foreign) > 0:
		reason = NotReadyForeign
	case st.Version == 0:
		reason = NotReadyMissing
	case st.Version != st.Latest:
		reason = NotReadyVersion
	default:
		return nil
	}
	return &NotReadyError{Reason: reason, Status: st}
}

// migrationDriver is golang-migrate's driver on a database/sql handle of
// its own (closing the driver closes the handle and the connection it
// holds, not the pool).
func migrationDriver(db *DB, schema string) (database.Driver, error) {
	return pgxmigrate.WithInstance(stdlib.OpenDBFromPool(db.Pool), &pgxmigrate.Config{MigrationsTable: MigrationsTable(schema), StatementTimeout: 10 * time.Minute})
}

// recorded is the version of a schema its migrations table records.
func recorded(ctx context.Context, db *dbsql.DB, schema string) (version uint, dirty bool, err error) {
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass(current_schema() || '.' || $1) IS NOT NULL`, MigrationsTable(schema)).Scan(&exists); err != nil {
		return 0, false, err
	}
	if !exists {
		return 0, false, nil
	}
	var v int64
	err = db.QueryRowContext(ctx, `SELECT version, dirty FROM `+MigrationsTable(schema)+` LIMIT 1`).Scan(&v, &dirty)
	if err != nil && !errors.Is(err, dbsql.ErrNoRows) {
		return 0, false, err
	}
	if err == nil && v > 0 {
		return uint(v), dirty, nil
	}
	return 0, dirty, nil
}

// schemaTables lists the tables a schema's migrations create.
func schemaTables(schema string) ([]string, error) {
	var out []string
	for v := uint(1); v <= Latest(schema); v++ {
		text, err := UpSQL(schema, v)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(text, "\n") {
			if name, ok := strings.CutPrefix(line, "CREATE TABLE "); ok {
				name, _, _ = strings.Cut(name, " ")
				if !slices.Contains(out, name) {
					out = append(out, name)
				}
			}
		}
	}
	return out, nil
}

// Migrate brings the database to the schema's latest version and returns
// the version it was at before. A database holding the schema's tables
// without a record of them is refused: see Status.Foreign.
func Migrate(ctx context.Context, db *DB, schema string) (from uint, err error) {
	st, err := Inspect(ctx, db, schema)
	if err != nil {
		return 0, err
	}
	if st.Dirty {
		return st.Version, fmt.Errorf("schema %s: migration to version %d failed half way; repair the database by hand, then record its version", schema, st.Version)
	}
	if len(st.Foreign) > 0 {
		return 0, &ForeignTablesError{Schema: schema, Tables: st.Foreign, Others: st.Others}
	}
	src, err := iofs.New(migrations, schema)
	if err != nil {
		return 0, err
	}
	drv, err := migrationDriver(db, schema)
	if err != nil {
		return 0, err
	}
	defer drv.Close()
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		return 0, err
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return st.Version, err
	}
	return st.Version, nil
}

// ForeignTablesError: the database has tables of the schema but no record
// of having the schema.
type ForeignTablesError struct {
	Schema string
	Tables []string
	Others []string // schemas the database records instead
}

func (e *ForeignTablesError) Error() string {
	names := e.Tables
	more := ""
	if len(names) > 4 {
		names, more = names[:4], fmt.Sprintf(" and %d more", len(e.Tables)-4)
	}
	if len(e.Others) > 0 {
		return fmt.Sprintf("the database holds schema %s, whose tables %s would share (%s%s)",
			strings.Join(e.Others, ", "), e.Schema, strings.Join(names, ", "), more)
	}
	return fmt.Sprintf("the database already has %d of schema %s's tables (%s%s) but no record of the schema",
		len(e.Tables), e.Schema, strings.Join(names, ", "), more)
}

// Shape is a schema's layout as PostgreSQL reports it: one line per column
// (table, column, type, nullability) and per index (table, name, unique).
type Shape []string

// shapeOf reads the layout of the tables in PostgreSQL schema ns.
func shapeOf(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*dbsql.Rows, error)
}, ns string, tables []string) (Shape, error) {
	var out Shape
	rows, err := q.QueryContext(ctx, `
		SELECT table_name, column_name, data_type, coalesce(character_maximum_length, 0), is_nullable
		FROM information_schema.columns WHERE table_schema = $1 AND table_name = ANY($2)`, ns, tables)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var t, c, typ, null string
		var n int
		if err := rows.Scan(&t, &c, &typ, &n, &null); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, fmt.Sprintf("column %s.%s %s(%d) nullable=%s", t, c, typ, n, null))
	}
	rows.Close()
	rows, err = q.QueryContext(ctx, `
		SELECT c.relname, i.relname, x.indisunique, pg_get_indexdef(x.indexrelid)
		FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = ANY($2)`, ns, tables)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var t, name, def string
		var unique bool
		if err := rows.Scan(&t, &name, &unique, &def); err != nil {
			rows.Close()
			return nil, err
		}
		// The definition names the schema; keep the column list only.
		_, cols, _ := strings.Cut(def, " USING ")
		out = append(out, fmt.Sprintf("index %s.%s unique=%v %s", t, name, unique, cols))
	}
	rows.Close()
	sort.Strings(out)
	return out, rows.Err()
}

// Expected is the layout the schema's latest version creates, built in a
// scratch PostgreSQL schema inside a transaction that is rolled back.
func Expected(ctx context.Context, mdb *DB, schema string) (Shape, error) {
	db := mdb.SQL()
	tables, err := schemaTables(schema)
	if err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	ns := fmt.Sprintf("mimmigrate_scratch_%d", time.Now().UnixNano())
	if _, err := tx.ExecContext(ctx, `CREATE SCHEMA `+ns); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `SET LOCAL search_path TO `+ns); err != nil {
		return nil, err
	}
	for v := uint(1); v <= Latest(schema); v++ {
		text, err := UpSQL(schema, v)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, text); err != nil {
			return nil, fmt.Errorf("schema %s version %d: %w", schema, v, err)
		}
	}
	return shapeOf(ctx, tx, ns, tables)
}

// Current is the layout of the schema's tables in the database's current
// schema (search_path).
func Current(ctx context.Context, mdb *DB, schema string) (Shape, error) {
	db := mdb.SQL()
	tables, err := schemaTables(schema)
	if err != nil {
		return nil, err
	}
	var ns string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&ns); err != nil {
		return nil, err
	}
	return shapeOf(ctx, db, ns, tables)
}

// Diff lists what one shape has that the other has not.
func Diff(want, have Shape) (missing, extra []string) {
	w, h := map[string]bool{}, map[string]bool{}
	for _, s := range want {
		w[s] = true
	}
	for _, s := range have {
		h[s] = true
		if !w[s] {
			extra = append(extra, s)
		}
	}
	for _, s := range want {
		if !h[s] {
			missing = append(missing, s)
		}
	}
	return missing, extra
}

// Adopt records that the database holds the schema's latest version when
// its tables were created by other means (ejabberd's own pg.sql, say) and
// match that version exactly; otherwise it says what differs.
func Adopt(ctx context.Context, db *DB, schema string) error {
	st, err := Inspect(ctx, db, schema)
	if err != nil {
		return err
	}
	if st.Version != 0 {
		return fmt.Errorf("the database already records schema %s version %d", schema, st.Version)
	}
	if len(st.Others) > 0 {
		return &ForeignTablesError{Schema: schema, Tables: st.Foreign, Others: st.Others}
	}
	want, err := Expected(ctx, db, schema)
	if err != nil {
		return err
	}
	have, err := Current(ctx, db, schema)
	if err != nil {
		return err
	}
	if missing, extra := Diff(want, have); len(missing)+len(extra) > 0 {
		return &MismatchError{Schema: schema, Missing: missing, Extra: extra}
	}
	drv, err := migrationDriver(db, schema)
	if err != nil {
		return err
	}
	defer drv.Close()
	return drv.SetVersion(int(st.Latest), false)
}

// MismatchError: the tables differ from what the schema creates.
type MismatchError struct {
	Schema         string
	Missing, Extra []string
}

func (e *MismatchError) Error() string {
	first := ""
	switch {
	case len(e.Missing) > 0:
		first = "missing " + e.Missing[0]
	case len(e.Extra) > 0:
		first = "unexpected " + e.Extra[0]
	}
	return fmt.Sprintf("the tables differ from schema %s version %d: %d missing, %d unexpected (first: %s)",
		e.Schema, Latest(e.Schema), len(e.Missing), len(e.Extra), first)
}
