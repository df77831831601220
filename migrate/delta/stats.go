package delta

import (
	"sort"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
)

// Stats count what a sync did, per table, and its lag.
type Stats struct {
	mu     sync.Mutex
	tables map[string]*TableStats
	// lag: when the last applied event was made on the legacy node, and
	// the lags of the applied batches since the last snapshot.
	lastAt   time.Time
	lags     []time.Duration
	dbErr    string
	dbErrAt  time.Time
	repaired int64
	// the previous snapshot's applied counts, for the rates
	prevAt      time.Time
	prevApplied map[string]int64
}

// TableStats is one table's counts.
type TableStats struct {
	Table    string `json:"table"`
	Received int64  `json:"received"`
	Applied  int64  `json:"applied"`
	Rejected int64  `json:"rejected"`
	Repaired int64  `json:"repaired_rows"`
	Overflow int64  `json:"overflows"`
	// Rate: changes applied per second over the last interval.
	Rate  float64 `json:"events_per_second"`
	State string  `json:"state"` // copying, live, repairing, unsubscribed
	Node  string  `json:"node"`  // where its forwarder runs
}

// NewStats starts the counts.
func NewStats() *Stats { return &Stats{tables: map[string]*TableStats{}} }

func (s *Stats) table(t string) *TableStats {
	ts := s.tables[t]
	if ts == nil {
		ts = &TableStats{Table: t}
		s.tables[t] = ts
	}
	return ts
}

func (s *Stats) received(t string, n int64) {
	s.mu.Lock()
	s.table(t).Received += n
	s.mu.Unlock()
}

func (s *Stats) rejected(t string, n int64) {
	s.mu.Lock()
	s.table(t).Rejected += n
	s.mu.Unlock()
}

// Repaired counts rows a repair rewrote.
func (s *Stats) Repaired(t string, n int64) {
	s.mu.Lock()
	s.table(t).Repaired += n
	s.repaired += n
	s.mu.Unlock()
}

// Overflowed counts a table's overflow.
func (s *Stats) Overflowed(t string) {
	s.mu.Lock()
	s.table(t).Overflow++
	s.mu.Unlock()
}

// SetState records a table's state and node.
func (s *Stats) SetState(t, state, node string) {
	s.mu.Lock()
	ts := s.table(t)
	ts.State = state
	if node != "" {
		ts.Node = node
	}
	s.mu.Unlock()
}

func (s *Stats) applied(units [][]mnesia.Event) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var last time.Time
	for _, u := range units {
		for _, e := range u {
			s.table(e.Table).Applied++
			if e.At.After(last) {
				last = e.At
			}
		}
	}
	if !last.IsZero() {
		s.lastAt = last
		s.lags = append(s.lags, now.Sub(last))
	}
	s.dbErr = ""
}

func (s *Stats) dbDown(err error) {
	s.mu.Lock()
	if s.dbErr == "" {
		s.dbErrAt = time.Now()
	}
	s.dbErr = err.Error()
	s.mu.Unlock()
}

// Snapshot is the state of a sync at one moment.
type Snapshot struct {
	At     time.Time    `json:"at"`
	Tables []TableStats `json:"tables"`
	// Applied and Received: events, all tables.
	Applied  int64 `json:"applied"`
	Received int64 `json:"received"`
	// Rate: changes applied per second over the interval, all tables.
	Rate     float64 `json:"events_per_second"`
	Repaired int64   `json:"repaired_rows"`
	// LagSeconds: the largest delay between a change on the legacy node
	// and its commit in PostgreSQL over the interval; 0 when idle.
	LagSeconds float64 `json:"lag_seconds"`
	// LagEvents: events received and not yet applied, and queued on the
	// legacy nodes.
	LagEvents int64 `json:"lag_events"`
	// LastChange: when the newest applied change was made.
	LastChange *time.Time `json:"last_change,omitempty"`
	DBError    string     `json:"db_error,omitempty"`
	// Lags are the lags of the applied batches in the interval (for
	// percentiles; not in the JSON lines).
	Lags []time.Duration `json:"-"`
}

// Take returns the counts and starts a new interval.
func (s *Stats) Take(backlog int64) Snapshot { return s.snapshot(backlog, true) }

// Peek is Take without starting the next interval (the rates and lags
// go on accumulating).
func (s *Stats) Peek(backlog int64) Snapshot { return s.snapshot(backlog, false) }

func (s *Stats) snapshot(backlog int64, take bool) Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := Snapshot{At: time.Now(), LagEvents: backlog, Repaired: s.repaired, DBError: s.dbErr, Lags: s.lags}
	secs := sn.At.Sub(s.prevAt).Seconds()
	for name, ts := range s.tables {
		t := *ts
		if !s.prevAt.IsZero() && secs > 0 {
			t.Rate = float64(ts.Applied-s.prevApplied[name]) / secs
		}
		sn.Tables = append(sn.Tables, t)
		sn.Applied += ts.Applied
		sn.Received += ts.Received
		sn.Rate += t.Rate
	}
	sort.Slice(sn.Tables, func(i, j int) bool { return sn.Tables[i].Table < sn.Tables[j].Table })
	for _, l := range s.lags {
		sn.LagSeconds = max(sn.LagSeconds, l.Seconds())
	}
	if !s.lastAt.IsZero() {
		t := s.lastAt
		sn.LastChange = &t
	}
	if !take {
		sn.Lags = nil
		return sn
	}
	s.prevAt = sn.At
	if s.prevApplied == nil {
		s.prevApplied = map[string]int64{}
	}
	for name, ts := range s.tables {
		s.prevApplied[name] = ts.Applied
	}
	s.lags = nil
	return sn
}
