// Package sink writes an export's rows: into PostgreSQL with COPY, each
// chunk in one transaction with its checkpoint (Postgres); into a file
// psql loads in one transaction (File); or nowhere (Dry). It also holds
// the rejects writer and the write-beside-then-rename file every command
// that writes a file uses.
package sink

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// CheckpointTable is where an export into PostgreSQL keeps its progress.
const CheckpointTable = "mimmigrate_export"

// Postgres writes rows into PostgreSQL with COPY, each chunk in one
// transaction together with its checkpoint.
type Postgres struct {
	DB     *mimsql.DB
	Schema schema.Schema
	id     string
}

// NewPostgres writes the schema's rows into db.
func NewPostgres(db *mimsql.DB, sc schema.Schema) *Postgres { return &Postgres{DB: db, Schema: sc} }

const checkpointDDL = `CREATE TABLE IF NOT EXISTS ` + CheckpointTable + ` (
    source_table text PRIMARY KEY,
    source text NOT NULL,
    records bigint NOT NULL,
    rows_written bigint NOT NULL,
    rejects bigint NOT NULL,
    skipped bigint NOT NULL,
    done boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)`

// NotEmptyError: the target tables hold rows that no checkpoint of this
// export accounts for.
type NotEmptyError struct {
	Tables map[string]int64
	Other  string // the identity of another export's checkpoints, if any
}

func (e *NotEmptyError) Error() string {
	var parts []string
	for t, n := range e.Tables {
		parts = append(parts, fmt.Sprintf("%s: %d rows", t, n))
	}
	sort.Strings(parts)
	if e.Other != "" {
		return "the database holds an export from another source (" + e.Other + ")"
	}
	return "the target tables are not empty (" + strings.Join(parts, ", ") + ")"
}

// targets are the SQL tables the schema's Mnesia tables fill.
func targets(sc schema.Schema) []string {
	var names []string
	seen := map[string]bool{}
	for _, t := range sc.Tables() {
		for _, tt := range t.Targets {
			if !seen[tt] {
				seen[tt] = true
				names = append(names, tt)
			}
		}
	}
	return names
}

// Checkpoints implements migrate.Sink. With no checkpoint of this
// identity, every target table must be empty.
func (s *Postgres) Checkpoints(ctx context.Context, identity string) (map[string]migrate.Checkpoint, error) {
	s.id = identity
	if _, err := s.DB.Exec(ctx, checkpointDDL); err != nil {
		return nil, err
	}
	rows, err := s.DB.Query(ctx, `SELECT source_table, source, records, rows_written, rejects, skipped, done FROM `+CheckpointTable)
	if err != nil {
		return nil, err
	}
	out := map[string]migrate.Checkpoint{}
	other := ""
	for rows.Next() {
		var t, src string
		var c migrate.Checkpoint
		if err := rows.Scan(&t, &src, &c.Records, &c.Rows, &c.Rejects, &c.Skipped, &c.Done); err != nil {
			return nil, err
		}
		if src != identity {
			other = src
			continue
		}
		out[t] = c
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if other != "" {
		return nil, &NotEmptyError{Other: other}
	}
	if len(out) > 0 {
		return out, nil
	}
	full := map[string]int64{}
	for _, tt := range targets(s.Schema) {
		var n int64
		if err := s.DB.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+pgx.Identifier{tt}.Sanitize()+` LIMIT 1) x`).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			if err := s.DB.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{tt}.Sanitize()).Scan(&n); err != nil {
				return nil, err
			}
			full[tt] = n
		}
	}
	if len(full) > 0 {
		return nil, &NotEmptyError{Tables: full}
	}
	return out, nil
}

// Fresh empties every target table and the checkpoints.
func (s *Postgres) Fresh(ctx context.Context) error {
	if _, err := s.DB.Exec(ctx, checkpointDDL); err != nil {
		return err
	}
	names := []string{CheckpointTable}
	for _, tt := range targets(s.Schema) {
		names = append(names, pgx.Identifier{tt}.Sanitize())
	}
	_, err := s.DB.Exec(ctx, `TRUNCATE `+strings.Join(names, ", ")+` RESTART IDENTITY CASCADE`)
	return err
}

// Query implements schema.Querier.
func (s *Postgres) Query(ctx context.Context, sql string, row func([]any) error) error {
	rows, err := s.DB.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return err
		}
		if err := row(vals); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Write implements migrate.Sink. A chunk read from a live table may hold
// a key twice (a walk of a table being written is no snapshot: a record
// that moves is seen again): when COPY meets a unique key already there,
// the chunk is written again row by row, the rows whose key is there
// skipped (the live delta and its repair make the key's rows right).
func (s *Postgres) Write(ctx context.Context, c *migrate.Chunk) error {
	err := s.write(ctx, c, false)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return s.write(ctx, c, true)
	}
	return err
}

func (s *Postgres) write(ctx context.Context, c *migrate.Chunk, skipTaken bool) error {
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := s.execOps(ctx, tx, c.Restart); err != nil {
		return err
	}
	for _, tt := range c.Table.Targets {
		rows := c.Rows[tt]
		if len(rows) == 0 {
			continue
		}
		if skipTaken {
			var b pgx.Batch
			q := insertSQL(schema.Op{Table: tt}, s.Schema.Columns(tt)) + " ON CONFLICT DO NOTHING"
			for _, r := range rows {
				b.Queue(q, r...)
			}
			if err := tx.SendBatch(ctx, &b).Close(); err != nil {
				return describeCopyError(tt, err)
			}
			continue
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{tt}, s.Schema.Columns(tt), pgx.CopyFromRows(rows)); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23505" {
				return err
			}
			return describeCopyError(tt, err)
		}
	}
	cp := c.Check
	if _, err := tx.Exec(ctx, `INSERT INTO `+CheckpointTable+` (source_table, source, records, rows_written, rejects, skipped, done)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (source_table) DO UPDATE SET source = $2, records = $3, rows_written = $4, rejects = $5, skipped = $6, done = $7, updated_at = now()`,
		c.Table.Name, s.id, cp.Records, cp.Rows, cp.Rejects, cp.Skipped, cp.Done); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Apply runs row operations in one transaction, in their order: deletes
// as they are, inserts as INSERTs (the way single records of a live
// change are applied, where COPY's batches do not fit).
func (s *Postgres) Apply(ctx context.Context, ops []schema.Op) error {
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := s.execOps(ctx, tx, ops); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (s *Postgres) execOps(ctx context.Context, tx pgx.Tx, ops []schema.Op) error {
	for _, op := range ops {
		q, args, err := s.opSQL(op)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return describeCopyError(op.Table, err)
		}
	}
	return nil
}

// opSQL is the statement of one row operation.
func (s *Postgres) opSQL(op schema.Op) (string, []any, error) {
	switch op.Kind {
	case schema.Delete:
		q, args := op.SQL()
		return q, args, nil
	case schema.Insert:
		return insertSQL(op, s.Schema.Columns(op.Table)), op.Values, nil
	case schema.InsertAbsent, schema.DeleteRow:
		q, args := op.RowSQL(s.Schema.Columns(op.Table))
		return q, args, nil
	case schema.Upsert:
		q, args := op.UpsertSQL(s.Schema.Columns(op.Table))
		return q, args, nil
	}
	return "", nil, fmt.Errorf("row operation of kind %d", op.Kind)
}

// UnitError is the unit of ApplyUnits that PostgreSQL refused.
type UnitError struct {
	Unit int
	Err  error
}

func (e *UnitError) Error() string { return e.Err.Error() }
func (e *UnitError) Unwrap() error { return e.Err }

// ApplyUnits runs units of row operations (each what one Mnesia
// transaction or dirty operation changed), in their order, in one
// transaction and one round trip. When PostgreSQL refuses a statement the
// error is a *UnitError naming its unit, and nothing is applied.
func (s *Postgres) ApplyUnits(ctx context.Context, units [][]schema.Op) error {
	var b pgx.Batch
	var unitOf []int
	var tables []string
	for u, ops := range units {
		for _, op := range ops {
			q, args, err := s.opSQL(op)
			if err != nil {
				return err
			}
			b.Queue(q, args...)
			unitOf = append(unitOf, u)
			tables = append(tables, op.Table)
		}
	}
	if len(unitOf) == 0 {
		return nil
	}
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	res := tx.SendBatch(ctx, &b)
	for i := range unitOf {
		if _, err := res.Exec(); err != nil {
			res.Close()
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				return &UnitError{Unit: unitOf[i], Err: describeCopyError(tables[i], err)}
			}
			return err
		}
	}
	if err := res.Close(); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// insertSQL is an INSERT of an op's values into the schema's columns.
func insertSQL(op schema.Op, columns []string) string {
	cols := make([]string, len(columns))
	ph := make([]string, len(columns))
	for i, c := range columns {
		cols[i], ph[i] = pgx.Identifier{c}.Sanitize(), fmt.Sprintf("$%d", i+1)
	}
	return `INSERT INTO ` + pgx.Identifier{op.Table}.Sanitize() + ` (` + strings.Join(cols, ", ") + `) VALUES (` + strings.Join(ph, ", ") + `)`
}

// describeCopyError names the table and what PostgreSQL refused.
func describeCopyError(table string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := fmt.Sprintf("PostgreSQL refused rows for %s: %s", table, pe.Message)
		if pe.Detail != "" {
			msg += " (" + pe.Detail + ")"
		}
		return errors.New(msg)
	}
	return fmt.Errorf("writing %s: %w", table, err)
}

// SequenceSQL sets each serial column's sequence past the highest id.
func SequenceSQL(sc schema.Schema) []string {
	var out []string
	for _, s := range sc.Serials() {
		t, c := pgx.Identifier{s.Table}.Sanitize(), pgx.Identifier{s.Column}.Sanitize()
		out = append(out, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', '%s'), coalesce(max(%s), 0) + 1, false) FROM %s;`, s.Table, s.Column, c, t))
	}
	return out
}

// Finish implements migrate.Sink.
func (s *Postgres) Finish(ctx context.Context) error {
	for _, q := range SequenceSQL(s.Schema) {
		if _, err := s.DB.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
