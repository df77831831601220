package delta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
	"github.com/mimmigrate/mimmigrate/migrate/sink"
	"github.com/mimmigrate/mimmigrate/migrate/source"
)

// Config configures a sync.
type Config struct {
	Source *source.Node
	Sink   *sink.Postgres
	Schema schema.Schema
	Scope  *schema.Scope
	Tables []string // empty: every mapped, non-optional table
	// Forwarder bounds each forwarder.
	Forwarder mnesia.ForwarderOptions
	Timeout   time.Duration
	Log       *slog.Logger
	// Interval between reports (default 1 s).
	Interval time.Duration
	// Report is told the state of the sync every Interval.
	Report func(Snapshot)
	// Progress is told the records copied per table.
	Progress func(table string, records int64)
	// Phase is told each phase as it starts: subscribing, copying,
	// repairing, live.
	Phase func(phase string)
}

// Syncer is a running sync.
type Syncer struct {
	cfg     Config
	src     *source.Node
	plan    migrate.Plan
	types   map[string]string
	mapping *Mapping
	app     *Applier
	stats   *Stats

	mu      sync.Mutex
	fwds    map[string]*mnesia.Forwarder // node -> its forwarder
	tableAt map[string]*mnesia.Forwarder // table -> its forwarder
	batches chan fwdBatch
	notices chan fwdNotice
	repairs chan []string

	started     time.Time
	phase       string
	statusReady bool
	// track notes the keys changed while a cutover asks for it.
	track tracker
}

type fwdBatch struct {
	f *mnesia.Forwarder
	b mnesia.Batch
}

type fwdNotice struct {
	f *mnesia.Forwarder
	n mnesia.Notice
}

// Run subscribes, copies what is not copied yet (or repairs what an
// earlier run copied), then applies changes until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{started: time.Now(), cfg: cfg, src: cfg.Source, stats: NewStats(), fwds: map[string]*mnesia.Forwarder{},
		tableAt: map[string]*mnesia.Forwarder{}, batches: make(chan fwdBatch, 16),
		notices: make(chan fwdNotice, 64), repairs: make(chan []string, 64), types: map[string]string{}}
	phase := func(p string) {
		s.mu.Lock()
		s.phase = p
		s.mu.Unlock()
		if cfg.Phase != nil {
			cfg.Phase(p)
		}
	}
	plan, err := migrate.MakePlan(cfg.Source, cfg.Schema, cfg.Tables)
	if err != nil {
		return err
	}
	s.plan = plan
	for _, t := range cfg.Source.Snapshot().Tables {
		s.types[t.Name] = t.Type
	}
	names := s.names()
	// Whatever ends the sync, its status says it stopped.
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		s.saveStatus(sctx, "stopped", s.stats.Take(0))
	}()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer s.stopForwarders()

	// What an earlier export or sync of this source finished is repaired,
	// not copied again.
	checks, err := cfg.Sink.Checkpoints(ctx, cfg.Source.Identity())
	if err != nil {
		return err
	}
	var repair, copyNow []string
	for _, t := range names {
		if checks[t].Done {
			repair = append(repair, t)
		} else {
			copyNow = append(copyNow, t)
		}
	}
	s.mapping, err = NewMapping(ctx, cfg.Schema, cfg.Scope, plan.Tables, s.types, cfg.Sink, s.readKey)
	if err != nil {
		return err
	}
	s.app = NewApplier(s.mapping, cfg.Sink, s.stats, cfg.Log)
	s.app.track = &s.track
	if err := s.loadNoting(ctx); err != nil {
		return err
	}
	s.app.Hold(names...)
	for _, t := range names {
		s.stats.SetState(t, "subscribing", "")
	}
	phase("subscribing")
	if err := s.subscribe(ctx, names); err != nil {
		return err
	}
	// The applier: one goroutine, so that changes of one key keep their
	// order whichever forwarder they come from.
	var wg sync.WaitGroup
	applyErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case fb := <-s.batches:
				if n := fb.b.Notice; n != nil {
					// An overflow or a subscription, in its place among
					// the events: what came before an overflow is from
					// before the gap, and the repair that follows the
					// subscription starts only once the events before it
					// are handled.
					if n.Kind == "overflow" && s.forwards(fb.f, n.Table) {
						s.app.Drop(n.Table)
					}
					select {
					case s.notices <- fwdNotice{fb.f, *n}:
					case <-ctx.Done():
						return
					}
					continue
				}
				// Late events of a table that moved to another forwarder
				// are dropped: the repair after the move covers them.
				fb.b.Events = s.own(fb.f, fb.b.Events)
				if err := s.app.Handle(ctx, fb.b); err != nil {
					applyErr <- err
					cancel(err)
					return
				}
				fb.f.Credit(1)
			case <-tick.C:
				if err := s.app.Tick(ctx); err != nil {
					applyErr <- err
					cancel(err)
					return
				}
			}
		}
	}()
	wg.Add(1)
	go func() { defer wg.Done(); s.report(ctx) }()
	defer wg.Wait()
	defer cancel(nil)

	if len(copyNow) > 0 {
		phase("copying")
		for _, t := range copyNow {
			s.stats.SetState(t, "copying", "")
		}
		// A node lost during the copy (a walk that failed) moves its
		// tables' forwarders and walks; the copy resumes from its
		// checkpoints.
		for failures := 0; ; {
			_, err := migrate.Export(ctx, cfg.Source, cfg.Sink, migrate.Options{Schema: cfg.Schema, Scope: cfg.Scope,
				Tables: copyNow, Progress: cfg.Progress})
			if err == nil {
				break
			}
			if failures++; ctx.Err() != nil || failures > 5 {
				return fmt.Errorf("copying: %w", err)
			}
			cfg.Log.Warn("copying failed: resuming", "error", err)
			if err := s.backOff(ctx, failures); err != nil {
				return err
			}
		}
		// The copy assigned ids: continue after them.
		if err := s.reloadMapping(ctx); err != nil {
			return err
		}
		// A walk of a table being written is no snapshot (a record that
		// moves may be seen twice or not at all): what was copied is
		// compared and repaired like the rest.
		repair = append(repair, copyNow...)
	}
	if len(repair) > 0 {
		phase("repairing")
		if err := s.repair(ctx, repair); err != nil {
			return err
		}
	}
	phase("live")
	for {
		select {
		case <-ctx.Done():
			select {
			case err := <-applyErr:
				return err
			default:
			}
			if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
				return c
			}
			return ctx.Err()
		case fn := <-s.notices:
			if err := s.handleNotice(ctx, fn); err != nil {
				return err
			}
		case tables := <-s.repairs:
			if err := s.repair(ctx, tables); err != nil {
				return err
			}
		}
	}
}

func (s *Syncer) names() []string {
	var out []string
	for _, t := range s.plan.Tables {
		out = append(out, t.Name)
	}
	return out
}

// reloadMapping continues the ids after those the copy wrote.
func (s *Syncer) reloadMapping(ctx context.Context) error {
	m, err := NewMapping(ctx, s.cfg.Schema, s.cfg.Scope, s.plan.Tables, s.types, s.cfg.Sink, s.readKey)
	if err != nil {
		return err
	}
	// The new mapping has not seen the pubsub nodes the copy saw.
	if err := migrate.NotePass(ctx, s.src, s.plan.Tables, m.m); err != nil {
		return err
	}
	s.app.mmu.Lock()
	s.mapping, s.app.m = m, m
	s.app.mmu.Unlock()
	return nil
}

// release applies a held table's events; if some were dropped, the
// table is repaired.
func (s *Syncer) release(ctx context.Context, table string) error {
	dropped, err := s.app.Release(ctx, table)
	if err != nil {
		return err
	}
	if dropped {
		s.cfg.Log.Warn("events were dropped while the table was held: repairing it", "table", table)
		s.queueRepair(table)
		return nil
	}
	s.stats.SetState(table, "live", "")
	return nil
}

func (s *Syncer) queueRepair(tables ...string) {
	s.app.Hold(tables...)
	select {
	case s.repairs <- tables:
	default:
		go func() { s.repairs <- tables }()
	}
}

// candidates lists the running nodes that hold an active replica of the
// table, the node the source was opened on first.
func (s *Syncer) candidates(table string, exclude string) []string {
	snap := s.src.Snapshot()
	var out []string
	for _, t := range snap.Tables {
		if t.Name != table {
			continue
		}
		for node, nt := range t.PerNode {
			if nt.WhereToRead == node && node != exclude {
				out = append(out, node)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i] == s.src.Node()) != (out[j] == s.src.Node()) {
			return out[i] == s.src.Node()
		}
		return out[i] < out[j]
	})
	return out
}

// subscribe starts forwarders for the tables, as few as possible: the
// node the source was opened on takes every table it holds actively.
func (s *Syncer) subscribe(ctx context.Context, tables []string) error {
	return s.subscribeExcept(ctx, tables, "")
}

func (s *Syncer) subscribeExcept(ctx context.Context, tables []string, exclude string) error {
	byNode := map[string][]string{}
	for _, t := range tables {
		cands := s.candidates(t, exclude)
		if len(cands) == 0 {
			return &migrate.InputError{Msg: fmt.Sprintf("no running node holds an active copy of %s: its changes cannot be followed", t),
				Hint: "a table held only in RAM or disc copies on nodes that are down cannot be subscribed"}
		}
		node := cands[0]
		// Prefer a node that already forwards.
		for _, c := range cands {
			if _, ok := byNode[c]; ok {
				node = c
				break
			}
		}
		byNode[node] = append(byNode[node], t)
	}
	for node, tabs := range byNode {
		s.mu.Lock()
		f := s.fwds[node]
		s.mu.Unlock()
		if f != nil {
			// The node forwards already: its forwarder takes the tables
			// too (each says "subscribed", and is repaired then).
			for _, t := range tabs {
				if err := f.Subscribe(t); err != nil {
					return err
				}
			}
		} else {
			c, err := s.src.Conn(ctx, node)
			if err != nil {
				return err
			}
			if f, err = mnesia.StartForwarder(ctx, c, node, tabs, s.cfg.Forwarder, s.cfg.Timeout); err != nil {
				return err
			}
		}
		s.mu.Lock()
		started := s.fwds[node] == nil
		s.fwds[node] = f
		for _, t := range tabs {
			s.tableAt[t] = f
			s.stats.SetState(t, "", node)
			s.src.SetWhere(t, node)
		}
		s.mu.Unlock()
		if started {
			go s.pump(ctx, f)
		}
	}
	return nil
}

// pump hands a forwarder's batches to the applier and its notices to the
// controller.
func (s *Syncer) pump(ctx context.Context, f *mnesia.Forwarder) {
	batches, notices := f.Batches(), f.Notices()
	for batches != nil || notices != nil {
		select {
		case <-ctx.Done():
			return
		case b, ok := <-batches:
			if !ok {
				batches = nil
				continue
			}
			select {
			case s.batches <- fwdBatch{f, b}:
			case <-ctx.Done():
				return
			}
		case n, ok := <-notices:
			if !ok {
				notices = nil
				continue
			}
			if n.Kind == "overflow" || n.Kind == "subscribed" {
				continue // handled among the batches
			}
			select {
			case s.notices <- fwdNotice{f, n}:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (s *Syncer) handleNotice(ctx context.Context, fn fwdNotice) error {
	n := fn.n
	switch n.Kind {
	case "overflow":
		s.cfg.Log.Warn("a table's changes came faster than they were applied: it is subscribed again and repaired", "table", n.Table, "node", fn.f.Node)
		s.stats.Overflowed(n.Table)
		s.stats.SetState(n.Table, "unsubscribed", "")
		s.app.Hold(n.Table)
		return fn.f.Subscribe(n.Table)
	case "subscribed":
		if n.Err != nil {
			return n.Err
		}
		s.queueRepair(n.Table)
	case "gone", "mnesia_down":
		s.mu.Lock()
		if s.fwds[fn.f.Node] != fn.f {
			s.mu.Unlock()
			return nil // already replaced
		}
		delete(s.fwds, fn.f.Node)
		var tabs []string
		for t, tf := range s.tableAt {
			if tf == fn.f {
				tabs = append(tabs, t)
				delete(s.tableAt, t)
			}
		}
		s.mu.Unlock()
		fn.f.Stop()
		sort.Strings(tabs)
		s.cfg.Log.Warn("the forwarder's node went away: its tables move to another node and are repaired", "node", fn.f.Node, "why", n.Err, "tables", len(tabs))
		s.app.Drop(tabs...)
		for _, t := range tabs {
			s.stats.SetState(t, "unsubscribed", "")
		}
		for exclude := fn.f.Node; ; exclude = "" {
			// Another node first; the same one again if none is left
			// (it may have restarted, or only our connection was lost).
			err := s.subscribeExcept(ctx, tabs, exclude)
			if err == nil {
				break
			}
			s.cfg.Log.Warn("no node to forward from yet; retrying", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
		}
		s.queueRepair(tabs...)
	}
	return nil
}

// readKey reads a key's records on the node the table's forwarder runs on.
func (s *Syncer) readKey(ctx context.Context, table string, key term.Term) ([]term.Term, error) {
	node := s.src.Where(table)
	c, err := s.src.Conn(ctx, node)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	v, err := c.Call(cctx, "mnesia", "dirty_read", term.Atom(table), key)
	if err != nil {
		return nil, err
	}
	recs, ok := term.Elems(v)
	if !ok {
		return nil, &erldist.Error{Kind: erldist.KindBadRPC, Node: node, Msg: fmt.Sprintf("reading %s on %s: %s", table, node, term.Short(v))}
	}
	return recs, nil
}

// forwards reports whether a forwarder is the one of a table.
func (s *Syncer) forwards(f *mnesia.Forwarder, table string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tableAt[table] == f
}

// own keeps the events of the tables the forwarder forwards (and the
// completions of transactions).
func (s *Syncer) own(f *mnesia.Forwarder, evs []mnesia.Event) []mnesia.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := evs[:0]
	for _, e := range evs {
		if e.Kind == mnesia.EventComplete || s.tableAt[e.Table] == f {
			kept = append(kept, e)
		}
	}
	return kept
}

func (s *Syncer) stopForwarders() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.fwds {
		f.Stop()
	}
}

// report gives the state every interval; while a cutover waits for the
// drain (sync notes changed keys then), the status row is written every
// 200 ms, so that the drain ends as soon as nothing is left.
func (s *Syncer) report(ctx context.Context) {
	const fast = 200 * time.Millisecond
	t := time.NewTicker(min(s.cfg.Interval, fast))
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := time.Since(last) >= s.cfg.Interval-fast/2
		if !due && !s.track.on() {
			continue
		}
		s.mu.Lock()
		var backlog int64
		for _, f := range s.fwds {
			backlog += f.Queued()
		}
		s.mu.Unlock()
		backlog += int64(s.app.Pending()) + int64(len(s.batches))
		var sn Snapshot
		if due {
			sn = s.stats.Take(backlog)
			last = time.Now()
		} else {
			sn = s.stats.Peek(backlog)
		}
		s.mu.Lock()
		ph := s.phase
		s.mu.Unlock()
		s.saveStatus(ctx, ph, sn)
		if due && s.cfg.Report != nil {
			s.cfg.Report(sn)
		}
	}
}

// expand adds the tables that share a SQL table with the given ones (a
// repair compares whole SQL tables).
func (s *Syncer) expand(tables []string) []string {
	out := slices.Clone(tables)
	for changed := true; changed; {
		changed = false
		targets := map[string]bool{}
		for _, t := range s.plan.Tables {
			if slices.Contains(out, t.Name) {
				for _, tt := range t.Targets {
					targets[tt] = true
				}
			}
		}
		for _, t := range s.plan.Tables {
			if slices.Contains(out, t.Name) {
				continue
			}
			for _, tt := range t.Targets {
				if targets[tt] {
					out = append(out, t.Name)
					changed = true
					break
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
