package migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CheckpointTable is where an export into PostgreSQL keeps its progress.
const CheckpointTable = "mimmigrate_export"

// PGSink writes rows into PostgreSQL with COPY, each chunk in one
// transaction together with its checkpoint.
type PGSink struct {
	Pool   *pgxpool.Pool
	Target Target
	id     string
}

// NewPGSink connects a pool of conns connections.
func NewPGSink(ctx context.Context, url string, conns int, tg Target) (*PGSink, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(max(2, conns))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return &PGSink{Pool: pool, Target: tg}, nil
}

// Close closes the pool.
func (s *PGSink) Close() { s.Pool.Close() }

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

// Checkpoints implements Sink. With no checkpoint of this identity, every
// target table must be empty.
func (s *PGSink) Checkpoints(ctx context.Context, identity string) (map[string]Checkpoint, error) {
	s.id = identity
	if _, err := s.Pool.Exec(ctx, checkpointDDL); err != nil {
		return nil, err
	}
	rows, err := s.Pool.Query(ctx, `SELECT source_table, source, records, rows_written, rejects, skipped, done FROM `+CheckpointTable)
	if err != nil {
		return nil, err
	}
	out := map[string]Checkpoint{}
	other := ""
	for rows.Next() {
		var t, src string
		var c Checkpoint
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
	for _, t := range s.Target.Tables() {
		for _, tt := range t.Targets {
			var n int64
			if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+pgx.Identifier{tt}.Sanitize()+` LIMIT 1) x`).Scan(&n); err != nil {
				return nil, err
			}
			if n > 0 {
				if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{tt}.Sanitize()).Scan(&n); err != nil {
					return nil, err
				}
				full[tt] = n
			}
		}
	}
	if len(full) > 0 {
		return nil, &NotEmptyError{Tables: full}
	}
	return out, nil
}

// Fresh empties every target table and the checkpoints.
func (s *PGSink) Fresh(ctx context.Context) error {
	if _, err := s.Pool.Exec(ctx, checkpointDDL); err != nil {
		return err
	}
	names := []string{CheckpointTable}
	for _, t := range s.Target.Tables() {
		for _, tt := range t.Targets {
			names = append(names, pgx.Identifier{tt}.Sanitize())
		}
	}
	_, err := s.Pool.Exec(ctx, `TRUNCATE `+strings.Join(dedup(names), ", ")+` RESTART IDENTITY CASCADE`)
	return err
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// NextID implements Sink.
func (s *PGSink) NextID(ctx context.Context, table, column string) (int64, error) {
	var n int64
	err := s.Pool.QueryRow(ctx, `SELECT coalesce(max(`+pgx.Identifier{column}.Sanitize()+`), 0) + 1 FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n)
	return n, err
}

// MamUsers implements Sink.
func (s *PGSink) MamUsers(ctx context.Context) (map[string]int32, error) {
	if !s.Target.Mongoose {
		return nil, nil
	}
	rows, err := s.Pool.Query(ctx, `SELECT id, server, user_name FROM mam_server_user`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int32{}
	for rows.Next() {
		var id int32
		var server, user string
		if err := rows.Scan(&id, &server, &user); err != nil {
			return nil, err
		}
		out[server+"\x00"+user] = id
	}
	return out, rows.Err()
}

// restartDelete removes what an earlier, unfinished export of a table
// wrote (motd is shared by two tables: each deletes only its own rows).
func restartDelete(tg Target, t Table) []string {
	if tg.Mongoose && (t.Name == "archive_prefs" || t.Name == "mam_prefs") {
		// the archive ids it added stay: they are reused on the next run
		return []string{`DELETE FROM mam_config`}
	}
	switch t.Name {
	case "motd":
		return []string{`DELETE FROM motd WHERE username = ''`}
	case "motd_users":
		return []string{`DELETE FROM motd WHERE username <> ''`}
	}
	var out []string
	for i := len(t.Targets) - 1; i >= 0; i-- {
		out = append(out, `DELETE FROM `+pgx.Identifier{t.Targets[i]}.Sanitize())
	}
	return out
}

// Write implements Sink.
func (s *PGSink) Write(ctx context.Context, c *Chunk) error {
	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if c.Restart {
		for _, q := range restartDelete(s.Target, c.Table) {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
	}
	for _, tt := range c.Table.Targets {
		rows := c.Rows[tt]
		if len(rows) == 0 {
			continue
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{tt}, s.Target.Columns(tt), pgx.CopyFromRows(rows)); err != nil {
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

// serials are the serial columns of ejabberd's schema: advanced after the
// load so that ejabberd's own inserts do not collide with exported ids.
var serials = [][2]string{{"privacy_list", "id"}, {"pubsub_node", "nodeid"}, {"pubsub_state", "stateid"}, {"spool", "seq"}, {"archive", "id"}}

// SequenceSQL sets each serial column's sequence past the highest id.
func SequenceSQL(tg Target) []string {
	var out []string
	list := serials
	if tg.Mongoose {
		list = mimSerials
	}
	for _, s := range list {
		t, c := pgx.Identifier{s[0]}.Sanitize(), pgx.Identifier{s[1]}.Sanitize()
		out = append(out, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', '%s'), coalesce(max(%s), 0) + 1, false) FROM %s;`, s[0], s[1], c, t))
	}
	return out
}

// Finish implements Sink.
func (s *PGSink) Finish(ctx context.Context) error {
	for _, q := range SequenceSQL(s.Target) {
		if _, err := s.Pool.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
