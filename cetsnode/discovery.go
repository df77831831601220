package cetsnode

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// ProtocolVersion goes into the cluster name in the database, so that
// nodes speaking different versions of the replication protocol never
// meet (as MongooseIM appends the CETS version).
const ProtocolVersion = "mimcets1"

// Discovery keeps this node's row in discovery_nodes (MongooseIM's
// layout), reads the others' and connects and joins them: every check runs
// the heartbeat with the database's clock, takes the lowest free node_num,
// removes rows not updated for ExpireTime (never our own), connects to the
// nodes listed and joins those not yet in our segments.
type Discovery struct {
	Pool    *pgxpool.Pool
	Cluster string // as configured; the protocol version is appended
	Address string
	// ExpireTime: rows older are deleted (default 3600 s, MongooseIM's).
	ExpireTime time.Duration
	// Check intervals: every Initial during the first InitialPhase, then
	// Regular; AfterError when the database failed; a node going down
	// triggers a check at once.
	Initial, Regular, AfterError, InitialPhase time.Duration

	c        *Cluster
	sessions *Sessions
	routes   *Routes
	kick     chan struct{}
	mu       sync.Mutex
	nodes    []term.Atom
	unavail  map[term.Atom]string
	works    bool
	lastErr  error
	lastOK   time.Time
	num      int
	started  time.Time
	stopped  bool
	checking sync.Mutex
}

// FullName is the cluster name as stored: the configured name and the
// protocol version.
func (d *Discovery) FullName() string { return d.Cluster + "-" + ProtocolVersion }

// NewDiscovery attaches discovery to a cluster.
func NewDiscovery(c *Cluster, pool *pgxpool.Pool, cluster string) *Discovery {
	d := &Discovery{Pool: pool, Cluster: cluster, c: c, kick: make(chan struct{}, 1), unavail: map[term.Atom]string{},
		ExpireTime: time.Hour, Initial: 5 * time.Second, Regular: 5 * time.Minute, AfterError: time.Second, InitialPhase: 5 * time.Minute}
	prev := c.OnDown
	c.OnDown = func(peer term.Atom) {
		if prev != nil {
			prev(peer)
		}
		d.Kick()
	}
	c.JoinLock = d.joinLock
	return d
}

// UseSessions lets the node's RPC register sessions in this table.
func (d *Discovery) UseSessions(s *Sessions) { d.sessions = s }

// UseRoutes lets the node's RPC register routes in this table.
func (d *Discovery) UseRoutes(r *Routes) { d.routes = r }

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
		wait := d.Regular
		switch {
		case err != nil:
			wait = d.AfterError
		case time.Since(d.started) < d.InitialPhase:
			wait = d.Initial
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
	nodes, err := d.heartbeat(cctx)
	cancel()
	d.mu.Lock()
	d.works, d.lastErr = err == nil, err
	if err == nil {
		d.nodes, d.lastOK = nodes, time.Now()
	}
	d.mu.Unlock()
	if err != nil {
		d.c.Log.Warn("discovery: database check failed", "err", err)
		return err
	}
	// Connect to every listed node at once (an unreachable one costs its
	// dial timeout, not the others'), then join them one at a time.
	unavail := map[term.Atom]string{}
	var umu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n == d.c.self || d.c.Node.Conn(n) != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if _, err := d.c.Node.Connect(cctx, string(n)); err != nil {
				umu.Lock()
				unavail[n] = err.Error()
				umu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, n := range nodes {
		if _, down := unavail[n]; down || n == d.c.self || d.c.Node.Conn(n) == nil {
			continue
		}
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := d.c.Join(jctx, string(n))
		cancel()
		if err != nil && !errors.Is(err, ErrAlreadyJoined) {
			// Reachable: the next check retries the join.
			d.c.Log.Warn("discovery: join failed", "node", n, "err", err)
		}
	}
	d.mu.Lock()
	d.unavail = unavail
	d.mu.Unlock()
	return nil
}

// heartbeat writes our row, expires stale rows and lists the cluster.
func (d *Discovery) heartbeat(ctx context.Context) ([]term.Atom, error) {
	self := string(d.c.self)
	var now int64
	if err := d.Pool.QueryRow(ctx, "SELECT CAST(extract(epoch from now()) AS bigint)").Scan(&now); err != nil {
		return nil, err
	}
	rows, err := d.Pool.Query(ctx, "SELECT node_name, node_num, updated_timestamp FROM discovery_nodes WHERE cluster_name = $1", d.FullName())
	if err != nil {
		return nil, err
	}
	type row struct {
		name string
		num  int
		ts   int64
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.name, &r.num, &r.ts); err != nil {
			rows.Close()
			return nil, err
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	expire := int64(d.ExpireTime / time.Second)
	present := false
	used := map[int]bool{}
	var nodes []term.Atom
	var expired []string
	for _, r := range all {
		if r.name == self {
			present = true
			d.setNum(r.num)
			continue
		}
		if now-r.ts > expire {
			expired = append(expired, r.name)
			continue
		}
		used[r.num] = true
		nodes = append(nodes, term.Atom(r.name))
	}
	if present {
		if _, err := d.Pool.Exec(ctx, "UPDATE discovery_nodes SET updated_timestamp = $1, address = $2 WHERE node_name = $3",
			now, d.Address, self); err != nil {
			return nil, err
		}
	} else {
		num := 1
		for used[num] {
			num++
		}
		tx, err := d.Pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		_, err = tx.Exec(ctx, "DELETE FROM discovery_nodes WHERE node_name = $1", self)
		if err == nil {
			_, err = tx.Exec(ctx, `INSERT INTO discovery_nodes (cluster_name, node_name, node_num, address, updated_timestamp)
				VALUES ($1, $2, $3, $4, $5)`, d.FullName(), self, num, d.Address, now)
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		if err != nil {
			tx.Rollback(ctx)
			return nil, fmt.Errorf("registering in discovery_nodes (node_num %d): %w", num, err)
		}
		d.setNum(num)
		d.c.Log.Info("discovery: registered", "cluster", d.FullName(), "node_num", num)
	}
	if len(expired) > 0 {
		if _, err := d.Pool.Exec(ctx, `DELETE FROM discovery_nodes WHERE cluster_name = $1 AND node_name <> $2 AND $3 - updated_timestamp > $4`,
			d.FullName(), self, now, expire); err != nil {
			return nil, err
		}
		d.c.Log.Warn("discovery: expired nodes removed from discovery_nodes", "nodes", expired)
	}
	nodes = append(nodes, d.c.self)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i] < nodes[j] })
	return nodes, nil
}

func (d *Discovery) setNum(n int) {
	d.mu.Lock()
	d.num = n
	d.mu.Unlock()
}

// Remove deletes a node's row.
func (d *Discovery) Remove(ctx context.Context, node string) error {
	_, err := d.Pool.Exec(ctx, "DELETE FROM discovery_nodes WHERE node_name = $1 AND cluster_name = $2", node, d.FullName())
	return err
}

// joinLock serializes joins across the cluster with a PostgreSQL advisory
// lock (held on one connection for the join's length).
func (d *Discovery) joinLock(ctx context.Context) (func(), error) {
	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	key := "mimmigrate-join:" + d.FullName()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", key); err != nil {
		conn.Release()
		return nil, err
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock(hashtext($1))", key); err != nil {
			conn.Conn().Close(uctx) // the lock goes with the session
		}
		conn.Release()
	}, nil
}

// State is what discovery knows now.
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
