// Package cutover moves the users of a legacy ejabberd cluster to the Go
// nodes: a sequence of steps whose state is kept in PostgreSQL, so that a
// cutover interrupted at any point is resumed (or aborted, before the Go
// nodes serve) by running the command again.
package cutover

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// StateTable holds the one cutover of a database.
const StateTable = "mimmigrate_cutover"

const stateDDL = `CREATE TABLE IF NOT EXISTS ` + StateTable + ` (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    source text NOT NULL,
    nodes text NOT NULL,
    step text NOT NULL,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    logins_stopped_at timestamptz,
    ready_at timestamptz,
    note text NOT NULL DEFAULT ''
)`

// Steps, in order. A state names the last step done.
const (
	StepNone         = ""
	StepPreflight    = "preflight"     // checked
	StepPreverified  = "preverified"   // compared while the legacy cluster serves; sync notes the keys that change
	StepLoginsClosed = "logins_closed" // the legacy listeners stopped, sessions closed
	StepDrained      = "drained"       // sync applied every change
	StepVerified     = "verified"      // verify found no difference
	StepReady        = "ready"         // the Go nodes serve
	StepLegacyDown   = "legacy_stopped"
	StepAborted      = "aborted"
)

// order ranks the steps.
var order = map[string]int{StepNone: 0, StepPreflight: 1, StepPreverified: 2, StepLoginsClosed: 3, StepDrained: 4,
	StepVerified: 5, StepReady: 6, StepLegacyDown: 7}

// State is where a cutover stands.
type State struct {
	Source          string     `json:"source"`
	Nodes           string     `json:"nodes"`
	Step            string     `json:"step"`
	StartedAt       time.Time  `json:"started_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	LoginsStoppedAt *time.Time `json:"logins_stopped_at"`
	ReadyAt         *time.Time `json:"ready_at"`
	Note            string     `json:"note"`
}

// Done reports whether a step is done.
func (s *State) Done(step string) bool {
	return s != nil && s.Step != StepAborted && order[s.Step] >= order[step]
}

// Downtime is from the moment logins stopped to the moment the Go nodes
// served (0 until both happened).
func (s *State) Downtime() time.Duration {
	if s == nil || s.LoginsStoppedAt == nil || s.ReadyAt == nil {
		return 0
	}
	return s.ReadyAt.Sub(*s.LoginsStoppedAt)
}

// Read reads the cutover of a database; nil when none was started.
func Read(ctx context.Context, pool *pgxpool.Pool) (*State, error) {
	st := &State{}
	err := pool.QueryRow(ctx, `SELECT source, nodes, step, started_at, updated_at, logins_stopped_at, ready_at, note FROM `+StateTable+` WHERE id = 1`).
		Scan(&st.Source, &st.Nodes, &st.Step, &st.StartedAt, &st.UpdatedAt, &st.LoginsStoppedAt, &st.ReadyAt, &st.Note)
	switch {
	case mimsql.Absent(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return st, nil
}

// Serving reports whether a cutover made the Go nodes serve (a standby
// node that starts then serves at once).
func Serving(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	st, err := Read(ctx, pool)
	if err != nil {
		return false, err
	}
	return st.Done(StepReady), nil
}

// record stores a step as done.
func record(ctx context.Context, pool *pgxpool.Pool, source, nodes, step string, extra string) error {
	if _, err := pool.Exec(ctx, stateDDL); err != nil {
		return err
	}
	q := `INSERT INTO ` + StateTable + ` (id, source, nodes, step, started_at, updated_at) VALUES (1, $1, $2, $3, now(), now())
ON CONFLICT (id) DO UPDATE SET source = $1, nodes = $2, step = $3, updated_at = now()` + extra
	_, err := pool.Exec(ctx, q, source, nodes, step)
	return err
}
