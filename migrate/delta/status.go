package delta

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// StatusTable is where a running sync says how it stands (a cutover's
// preflight and drain read it).
const StatusTable = "mimmigrate_sync"

const statusDDL = `CREATE TABLE IF NOT EXISTS ` + StatusTable + ` (
    source text PRIMARY KEY,
    schema_name text NOT NULL,
    phase text NOT NULL,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    applied bigint NOT NULL,
    lag_seconds double precision NOT NULL,
    lag_events bigint NOT NULL,
    repaired_rows bigint NOT NULL,
    last_change timestamptz,
    db_error text NOT NULL DEFAULT ''
);
ALTER TABLE ` + StatusTable + ` ADD COLUMN IF NOT EXISTS note_from timestamptz, ADD COLUMN IF NOT EXISTS noting timestamptz`

// Status is a sync's last report.
type Status struct {
	Source     string
	Schema     string
	Phase      string
	StartedAt  time.Time
	UpdatedAt  time.Time
	Applied    int64
	LagSeconds float64
	LagEvents  int64
	Repaired   int64
	LastChange *time.Time
}

// saveStatus records the sync's state, with the keys noted since the last
// report, in one transaction (a failure is only logged: the database may
// be the thing that is down). The row tells whether a cutover asks for
// changed keys to be noted.
func (s *Syncer) saveStatus(ctx context.Context, phase string, sn Snapshot) {
	db := s.cfg.Sink.DB
	if !s.statusReady {
		if _, err := db.Exec(ctx, statusDDL); err != nil {
			return
		}
		if _, err := db.Exec(ctx, changesDDL); err != nil {
			return
		}
		s.statusReady = true
	}
	keys, noting := s.track.take()
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if err := writeChanges(ctx, tx, s.src.Identity(), keys); err != nil {
			return err
		}
		var from *time.Time
		err := tx.QueryRow(ctx, `INSERT INTO `+StatusTable+` (source, schema_name, phase, started_at, updated_at, applied, lag_seconds, lag_events, repaired_rows, last_change, db_error, noting)
VALUES ($1, $2, $3, $4, now(), $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (source) DO UPDATE SET schema_name = $2, phase = $3, started_at = $4, updated_at = now(), applied = $5,
  lag_seconds = $6, lag_events = $7, repaired_rows = $8, last_change = $9, db_error = $10, noting = $11
RETURNING note_from`,
			s.src.Identity(), s.cfg.Schema.Name(), phase, s.started, sn.Applied, sn.LagSeconds, sn.LagEvents, sn.Repaired, sn.LastChange, sn.DBError, noting).Scan(&from)
		if err != nil {
			return err
		}
		s.track.set(from)
		return nil
	})
	if err != nil {
		s.track.putBack(keys)
		s.cfg.Log.Debug("saving the sync's status", "error", err)
	}
}

// loadNoting reads whether a cutover asks for changed keys to be noted
// (a sync started again goes on noting them).
func (s *Syncer) loadNoting(ctx context.Context) error {
	if _, err := s.cfg.Sink.DB.Exec(ctx, statusDDL); err != nil {
		return err
	}
	if _, err := s.cfg.Sink.DB.Exec(ctx, changesDDL); err != nil {
		return err
	}
	s.statusReady = true
	var from *time.Time
	err := s.cfg.Sink.DB.Pool.QueryRow(ctx, `SELECT note_from FROM `+StatusTable+` WHERE source = $1`, s.src.Identity()).Scan(&from)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	s.track.set(from)
	return nil
}

// ReadStatus reads the last report of the sync of a source; nil when no
// sync of it ever ran.
func ReadStatus(ctx context.Context, pool *pgxpool.Pool, source string) (*Status, error) {
	st := &Status{}
	err := pool.QueryRow(ctx, `SELECT source, schema_name, phase, started_at, updated_at, applied, lag_seconds, lag_events, repaired_rows, last_change
FROM `+StatusTable+` WHERE source = $1`, source).Scan(&st.Source, &st.Schema, &st.Phase, &st.StartedAt, &st.UpdatedAt,
		&st.Applied, &st.LagSeconds, &st.LagEvents, &st.Repaired, &st.LastChange)
	switch {
	case mimsql.Absent(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return st, nil
}
