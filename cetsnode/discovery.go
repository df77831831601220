package cetsnode

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// DiscoveryStore is where nodes find each other: MongooseIM's
// discovery_nodes table in PostgreSQL in production.
type DiscoveryStore interface {
	// Heartbeat writes node's row of cluster (taking the lowest free
	// node_num when it has none) with the store's clock, deletes the other
	// rows not updated for expire, and lists the cluster's nodes, node
	// included, sorted.
	Heartbeat(ctx context.Context, cluster, node, address string, expire time.Duration) (Heartbeat, error)
	// Remove deletes a node's row.
	Remove(ctx context.Context, cluster, node string) error
	// JoinLock serializes joins across the cluster.
	JoinLock(ctx context.Context, cluster string) (unlock func(), err error)
}

// Heartbeat is what one discovery round found.
type Heartbeat struct {
	Nodes      []term.Atom
	NodeNum    int
	Registered bool     // the node's row was (re)created
	Expired    []string // rows deleted as stale
}

// Discovery keeps this node's row in the store, reads the others' and
// connects and joins them: every check runs the heartbeat, connects to the
// nodes listed and joins those not yet in our segments.
type Discovery struct {
	store   DiscoveryStore
	cluster string // as configured; the protocol version is appended
	address string
	expire  time.Duration
	// Check intervals: every initial during the first initialPhase, then
	// regular; afterError when the store failed; a node going down
	// triggers a check at once.
	initial, regular, afterError, initialPhase time.Duration

	c        *Cluster
	kick     chan struct{}
	mu       sync.Mutex
	nodes    []term.Atom
	unavail  map[term.Atom]string
	works    bool
	lastErr  error
	num      int
	started  time.Time
	stopped  bool
	checking sync.Mutex
}

// FullName is the cluster name as stored: the configured name and the
// protocol version.
func (d *Discovery) FullName() string { return d.cluster + "-" + ProtocolVersion }

// JoinLock implements JoinLocker through the store.
func (d *Discovery) JoinLock(ctx context.Context) (func(), error) {
	return d.store.JoinLock(ctx, d.FullName())
}

// Kick asks for a check now.
func (d *Discovery) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run checks until ctx ends.
func (d *Discovery) Run(ctx context.Context) {
	d.started = time.Now()
	for {
		err := d.Check(ctx)
		wait := d.regular
		switch {
		case err != nil:
			wait = d.afterError
		case time.Since(d.started) < d.initialPhase:
			wait = d.initial
		}
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		case <-time.After(wait):
		}
	}
}

// Stop makes the node stay out: no more checks join anything.
func (d *Discovery) Stop() {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
}

// Check runs one discovery round.
func (d *Discovery) Check(ctx context.Context) error {
	d.checking.Lock()
	defer d.checking.Unlock()
	d.mu.Lock()
	stopped := d.stopped
	d.mu.Unlock()
	if stopped {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	hb, err := d.store.Heartbeat(cctx, d.FullName(), string(d.c.self), d.address, d.expire)
	cancel()
	d.mu.Lock()
	d.works, d.lastErr = err == nil, err
	if err == nil {
		d.nodes, d.num = hb.Nodes, hb.NodeNum
	}
	d.mu.Unlock()
	if err != nil {
		d.c.log.Warn("discovery: the store failed", "err", err)
		return err
	}
	if hb.Registered {
		d.c.log.Info("discovery: registered", "cluster", d.FullName(), "node_num", hb.NodeNum)
	}
	if len(hb.Expired) > 0 {
		d.c.log.Warn("discovery: expired nodes removed", "nodes", hb.Expired)
	}
	// Connect to every listed node at once (an unreachable one costs its
	// dial timeout, not the others'), then join them one at a time.
	unavail := map[term.Atom]string{}
	var umu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range hb.Nodes {
		if n == d.c.self || d.c.t.Connected(n) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if err := d.c.t.Connect(cctx, n); err != nil {
				umu.Lock()
				unavail[n] = err.Error()
				umu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, n := range hb.Nodes {
		if _, down := unavail[n]; down || n == d.c.self || !d.c.t.Connected(n) {
			continue
		}
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := d.c.Join(jctx, string(n))
		cancel()
		if err != nil && !errors.Is(err, ErrAlreadyJoined) {
			// Reachable: the next check retries the join.
			d.c.log.Warn("discovery: join failed", "node", n, "err", err)
		}
	}
	d.mu.Lock()
	d.unavail = unavail
	d.mu.Unlock()
	return nil
}

// DiscoveryState is what discovery knows now.
type DiscoveryState struct {
	Nodes       []term.Atom
	Unavailable map[term.Atom]string
	Works       bool
	LastError   string
	NodeNum     int
}

// State reports discovery's view.
func (d *Discovery) State() DiscoveryState {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := DiscoveryState{Nodes: append([]term.Atom(nil), d.nodes...), Unavailable: map[term.Atom]string{}, Works: d.works, NodeNum: d.num}
	for k, v := range d.unavail {
		s.Unavailable[k] = v
	}
	if d.lastErr != nil {
		s.LastError = d.lastErr.Error()
	}
	return s
}
