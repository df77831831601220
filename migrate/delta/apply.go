package delta

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
	"github.com/mimmigrate/mimmigrate/migrate/sink"
)

// Applier applies change events in the order they come: a transaction's
// events once its completion is seen, in one PostgreSQL transaction; a
// dirty operation at once. Several units go in one PostgreSQL transaction
// and round trip (never a part of one). A table being copied or repaired
// is held: its events wait, and are applied when it is released (being
// idempotent, those the copy already holds change nothing).
type Applier struct {
	m    *Mapping
	mmu  sync.Mutex // the mapping is used by one goroutine at a time
	sink *sink.Postgres
	log  *slog.Logger
	// HoldCap bounds the events held per table; past it they are dropped
	// and the table must be repaired after its release.
	holdCap int
	// StaleTx: a transaction whose completion has not come after this is
	// applied as it is.
	staleTx time.Duration

	mu      sync.Mutex
	held    map[string]*hold
	pending map[string]*txn
	stats   *Stats
	// track is told the keys of the changes applied.
	track *tracker
}

type hold struct {
	events  []mnesia.Event
	dropped bool
}

type txn struct {
	events []mnesia.Event
	first  time.Time
}

// NewApplier applies into the sink through the mapping.
func NewApplier(m *Mapping, s *sink.Postgres, stats *Stats, log *slog.Logger) *Applier {
	return &Applier{m: m, sink: s, log: log, holdCap: 1 << 20, staleTx: 10 * time.Second,
		held: map[string]*hold{}, pending: map[string]*txn{}, stats: stats}
}

// Hold makes a table's events wait.
func (a *Applier) Hold(tables ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range tables {
		if a.held[t] == nil {
			a.held[t] = &hold{}
		}
	}
}

// Drop holds tables and forgets their events held or waiting for their
// transaction: events from before a gap (an overflow, a lost forwarder),
// which the repair after the gap covers; applied after it they would
// bring rows back to older values.
func (a *Applier) Drop(tables ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	gone := map[string]bool{}
	for _, t := range tables {
		gone[t] = true
		a.held[t] = &hold{}
	}
	for k, tx := range a.pending {
		kept := tx.events[:0]
		for _, e := range tx.events {
			if !gone[e.Table] {
				kept = append(kept, e)
			}
		}
		if tx.events = kept; len(kept) == 0 {
			delete(a.pending, k)
		}
	}
}

// Held lists the tables held.
func (a *Applier) Held() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for t := range a.held {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Release applies a held table's events and lets the next ones through.
// It reports whether events were dropped while it was held (the table
// must then be repaired again).
func (a *Applier) Release(ctx context.Context, table string) (dropped bool, err error) {
	a.mu.Lock()
	h := a.held[table]
	a.mu.Unlock()
	if h == nil {
		return false, nil
	}
	// Apply what is held, then let the table go in the same critical
	// section as the last batch, so no event slips between.
	for {
		a.mu.Lock()
		evs := h.events
		h.events = nil
		if len(evs) == 0 {
			delete(a.held, table)
			a.mu.Unlock()
			return h.dropped, nil
		}
		a.mu.Unlock()
		units := make([][]mnesia.Event, len(evs))
		for i := range evs {
			units[i] = evs[i : i+1]
		}
		if err := a.apply(ctx, units); err != nil {
			a.mu.Lock()
			h.events = append(evs, h.events...)
			a.mu.Unlock()
			return false, err
		}
	}
}

// Handle takes one batch of a forwarder: events of held tables wait,
// transactions wait for their completion, the rest is applied.
func (a *Applier) Handle(ctx context.Context, b mnesia.Batch) error {
	var units [][]mnesia.Event
	a.mu.Lock()
	for _, e := range b.Events {
		switch {
		case e.Kind == mnesia.EventComplete:
			k := e.TidKey()
			if t := a.pending[k]; t != nil {
				units = append(units, t.events)
				delete(a.pending, k)
			}
		case !a.m.Maps(e.Table):
		case a.held[e.Table] != nil:
			h := a.held[e.Table]
			a.stats.received(e.Table, 1)
			if len(h.events) >= a.holdCap {
				h.events, h.dropped = nil, true
			}
			if !h.dropped {
				h.events = append(h.events, e)
			}
		case e.Dirty:
			a.stats.received(e.Table, 1)
			units = append(units, []mnesia.Event{e})
		default:
			a.stats.received(e.Table, 1)
			k := e.TidKey()
			t := a.pending[k]
			if t == nil {
				t = &txn{first: time.Now()}
				a.pending[k] = t
			}
			t.events = append(t.events, e)
		}
	}
	units = append(units, a.stale(time.Now())...)
	a.mu.Unlock()
	return a.apply(ctx, units)
}

// Tick applies transactions whose completion never came.
func (a *Applier) Tick(ctx context.Context) error {
	a.mu.Lock()
	units := a.stale(time.Now())
	a.mu.Unlock()
	return a.apply(ctx, units)
}

func (a *Applier) stale(now time.Time) [][]mnesia.Event {
	var out [][]mnesia.Event
	for k, t := range a.pending {
		if now.Sub(t.first) > a.staleTx {
			a.log.Warn("a transaction's completion did not come: applied as it is", "events", len(t.events))
			out = append(out, t.events)
			delete(a.pending, k)
		}
	}
	return out
}

// Pending is the number of events waiting for their transaction's
// completion or for their table's release.
func (a *Applier) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, t := range a.pending {
		n += len(t.events)
	}
	for _, h := range a.held {
		n += len(h.events)
	}
	return n
}

// apply maps the units and applies them in one PostgreSQL transaction;
// when PostgreSQL refuses a unit, the others are applied without it and
// it is counted as rejected. A lost connection is retried until ctx ends.
func (a *Applier) apply(ctx context.Context, units [][]mnesia.Event) error {
	if len(units) == 0 {
		return nil
	}
	opsOf := make([][]schema.Op, 0, len(units))
	kept := make([][]mnesia.Event, 0, len(units))
	a.mmu.Lock()
	for _, u := range units {
		var ops []schema.Op
		for i := range u {
			o, err := a.m.Ops(ctx, &u[i])
			var rj *Rejected
			switch {
			case errors.As(err, &rj):
				a.stats.rejected(u[i].Table, 1)
				a.log.Warn("a change cannot be stored", "table", rj.Table, "key", rj.Key, "reason", rj.Reason)
			case err != nil:
				a.mmu.Unlock()
				return err
			}
			ops = append(ops, o...)
		}
		opsOf = append(opsOf, ops)
		kept = append(kept, u)
	}
	a.mmu.Unlock()
	backoff := 200 * time.Millisecond
	for {
		err := a.sink.ApplyUnits(ctx, opsOf)
		var ue *sink.UnitError
		switch {
		case err == nil:
			a.stats.applied(kept)
			if a.track != nil && a.track.on() {
				for _, u := range kept {
					for i := range u {
						a.track.touch(u[i].Table, u[i].Key)
					}
				}
			}
			return nil
		case errors.As(err, &ue):
			u := ue.Unit
			a.log.Warn("PostgreSQL refused a change", "table", firstTable(kept[u]), "error", ue.Err)
			a.stats.rejected(firstTable(kept[u]), int64(len(kept[u])))
			opsOf = append(opsOf[:u:u], opsOf[u+1:]...)
			kept = append(kept[:u:u], kept[u+1:]...)
			continue
		case ctx.Err() != nil:
			return context.Cause(ctx)
		}
		a.stats.dbDown(err)
		a.log.Warn("PostgreSQL: retrying", "error", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func firstTable(u []mnesia.Event) string {
	if len(u) > 0 {
		return u[0].Table
	}
	return ""
}
