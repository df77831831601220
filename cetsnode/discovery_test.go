package cetsnode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// memoryDiscovery is a DiscoveryStore in memory with a clock the test
// moves: for unit tests of the discovery algorithm, in addition to the
// tests on real PostgreSQL (TestGoCluster, TestPostgresDiscovery).
type memoryDiscovery struct {
	mu    sync.Mutex
	now   int64
	rows  map[string]memRow // node -> row
	lock  sync.Mutex
	fails bool
}

type memRow struct {
	cluster string
	num     int
	updated int64
}

func newMemoryDiscovery() *memoryDiscovery {
	return &memoryDiscovery{now: 1_000_000, rows: map[string]memRow{}}
}

// age makes a node's row older by d (as if it had not been updated).
func (m *memoryDiscovery) age(node string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.rows[node]; ok {
		r.updated -= int64(d / time.Second)
		m.rows[node] = r
	}
}

func (m *memoryDiscovery) Heartbeat(_ context.Context, cluster, self, _ string, expire time.Duration) (Heartbeat, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var hb Heartbeat
	if m.fails {
		return hb, errors.New("the store is down")
	}
	used := map[int]bool{}
	for name, r := range m.rows {
		if r.cluster != cluster || name == self {
			continue
		}
		if m.now-r.updated > int64(expire/time.Second) {
			hb.Expired = append(hb.Expired, name)
			delete(m.rows, name)
			continue
		}
		used[r.num] = true
		hb.Nodes = append(hb.Nodes, term.Atom(name))
	}
	r, ok := m.rows[self]
	if !ok || r.cluster != cluster {
		r = memRow{cluster: cluster, num: 1}
		for used[r.num] {
			r.num++
		}
		hb.Registered = true
	}
	r.updated = m.now
	m.rows[self] = r
	hb.NodeNum = r.num
	hb.Nodes = append(hb.Nodes, term.Atom(self))
	sort.Slice(hb.Nodes, func(i, j int) bool { return hb.Nodes[i] < hb.Nodes[j] })
	return hb, nil
}

func (m *memoryDiscovery) Remove(_ context.Context, _, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rows, node)
	return nil
}

func (m *memoryDiscovery) JoinLock(ctx context.Context, _ string) (func(), error) {
	m.lock.Lock()
	return m.lock.Unlock, nil
}

func (m *memoryDiscovery) has(node string) (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rows[node]
	return r.num, ok
}

// startMem starts a node on the memory store, on loopback.
func startMem(t *testing.T, store DiscoveryStore, cookie string) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.Cookie, cfg.Store = "disc"+testenv.RandomID(6)+"@127.0.0.1", cookie, store
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.CheckInterval, cfg.NetTickTime, cfg.ExpireTime = 100*time.Millisecond, 2*time.Second, time.Hour
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The discovery algorithm on a store the test controls: nodes register
// with the lowest free number and join every node listed; a node that
// stops keeps its row until it expires by the store's clock, never
// another node's own row; leave takes the node out for good, remove drops
// a dead node at once; a failing store is reported and checked again.
func TestDiscoveryAlgorithm(t *testing.T) {
	store := newMemoryDiscovery()
	cookie := "c" + testenv.RandomID(10)
	a, b, c := startMem(t, store, cookie), startMem(t, store, cookie), startMem(t, store, cookie)
	all := []*Node{a, b, c}
	joined := func(ns ...*Node) func() bool {
		return func() bool {
			for _, n := range ns {
				if len(n.Sessions.T.Nodes()) != len(ns)-1 {
					return false
				}
			}
			return true
		}
	}
	eventually(t, "three nodes joined", joined(all...))
	nums := map[int]bool{}
	for _, n := range all {
		num, ok := store.has(n.Name())
		if !ok {
			t.Fatalf("%s has no row", n.Name())
		}
		nums[num] = true
	}
	if len(nums) != 3 || !nums[1] || !nums[2] || !nums[3] {
		t.Errorf("node numbers %v, want 1, 2 and 3", nums)
	}
	ctx := context.Background()
	if err := c.Sessions.Register(ctx, Session{Server: "example.com", User: "carol", Resource: "r"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "carol's session everywhere", func() bool { return len(a.Sessions.Bare("example.com", "carol")) == 1 })

	// c stops: dropped by the others with its sessions, its row stays
	// until it expires.
	c.Close()
	eventually(t, "c dropped", joined(a, b))
	if len(a.Sessions.Bare("example.com", "carol")) != 0 {
		t.Error("the stopped node's session survived it")
	}
	if _, ok := store.has(c.Name()); !ok {
		t.Error("the stopped node's row went before it expired")
	}
	// The status is the last discovery check's view: the next one sees c's
	// row without c.
	eventually(t, "c unavailable in the status", func() bool {
		st := a.Status(ctx)
		return slices.Contains(st.UnavailableNodes, c.Name()) && !st.Healthy
	})
	store.age(c.Name(), 2*time.Hour)
	eventually(t, "c's row expired", func() bool { _, ok := store.has(c.Name()); return !ok })
	for _, n := range []*Node{a, b} {
		if _, ok := store.has(n.Name()); !ok {
			t.Errorf("%s's own row expired", n.Name())
		}
	}
	eventually(t, "healthy again", func() bool { return a.Status(ctx).Healthy })

	// A new node takes the freed number.
	d := startMem(t, store, cookie)
	eventually(t, "d joined", joined(a, b, d))
	if num, _ := store.has(d.Name()); num != 3 {
		t.Errorf("d got node_num %d, want the free 3", num)
	}

	// The store fails: discovery says so; it works again: healthy.
	store.mu.Lock()
	store.fails = true
	store.mu.Unlock()
	eventually(t, "failure seen", func() bool { return !a.Status(ctx).DiscoveryWorks })
	store.mu.Lock()
	store.fails = false
	store.mu.Unlock()
	eventually(t, "works again", func() bool { return a.Status(ctx).DiscoveryWorks })

	// d leaves: stays out, its row goes; a second leave is refused.
	if err := d.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "d out", joined(a, b))
	time.Sleep(500 * time.Millisecond) // discovery rounds: d must not come back
	if len(d.Sessions.T.Nodes()) != 0 {
		t.Error("d rejoined after leave")
	}
	if _, ok := store.has(d.Name()); ok {
		t.Error("d's row survived leave")
	}
	if err := d.Leave(ctx); !errors.Is(err, ErrNotInCluster) {
		t.Errorf("second leave: %v", err)
	}
	if err := d.Join(ctx, a.Name()); !errors.Is(err, ErrLeft) {
		t.Errorf("join after leave: %v", err)
	}

	// remove: refused while the node answers; a dead node goes at once.
	if err := a.Remove(ctx, b.Name()); !errors.Is(err, ErrNodeIsAlive) {
		t.Errorf("remove of a live node: %v", err)
	}
	if err := a.Join(ctx, b.Name()); !errors.Is(err, ErrAlreadyJoined) {
		t.Errorf("join of a joined node: %v", err)
	}
	b.Sessions.Register(ctx, Session{Server: "example.com", User: "bob", Resource: "r"})
	eventually(t, "bob's session on a", func() bool { return len(a.Sessions.Bare("example.com", "bob")) == 1 })
	b.Close()
	eventually(t, "a sees b go", func() bool { return len(a.Sessions.T.Nodes()) == 0 })
	if err := a.Remove(ctx, b.Name()); err != nil {
		t.Fatal(err)
	}
	if _, ok := store.has(b.Name()); ok {
		t.Error("the removed node's row survived")
	}
	eventually(t, "b's session gone", func() bool { return len(a.Sessions.Bare("example.com", "bob")) == 0 })
}

// The PostgreSQL store keeps MongooseIM's discovery_nodes as the memory
// store keeps its rows: the lowest free number, the database's clock,
// expiry of others' rows only, remove; it creates the table once when
// nodes start together.
func TestPostgresDiscovery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := testenv.DB(t, testenv.PostgresDB(t))
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = NewPostgresDiscovery(ctx, db) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent creation: %v", err)
		}
	}
	p, err := NewPostgresDiscovery(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	hb := func(node string, expire time.Duration) Heartbeat {
		h, err := p.Heartbeat(ctx, "c-mimcets1", node, "127.0.0.1", expire)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := hb("a@h", time.Hour); h.NodeNum != 1 || !h.Registered || fmt.Sprint(h.Nodes) != "[a@h]" {
		t.Fatalf("first: %+v", h)
	}
	if h := hb("b@h", time.Hour); h.NodeNum != 2 || fmt.Sprint(h.Nodes) != "[a@h b@h]" {
		t.Fatalf("second: %+v", h)
	}
	if h := hb("a@h", time.Hour); h.NodeNum != 1 || h.Registered {
		t.Fatalf("again: %+v", h)
	}
	// Another cluster does not see them.
	if h, _ := p.Heartbeat(ctx, "other-mimcets1", "x@h", "", time.Hour); h.NodeNum != 1 || len(h.Nodes) != 1 {
		t.Fatalf("other cluster: %+v", h)
	}
	// b's row is made old: a expires it, never its own.
	if _, err := db.Exec(ctx, "UPDATE discovery_nodes SET updated_timestamp = updated_timestamp - 7200 WHERE node_name IN ('a@h', 'b@h')"); err != nil {
		t.Fatal(err)
	}
	if h := hb("a@h", time.Hour); fmt.Sprint(h.Expired) != "[b@h]" || fmt.Sprint(h.Nodes) != "[a@h]" {
		t.Fatalf("expiry: %+v", h)
	}
	if h := hb("c@h", time.Hour); h.NodeNum != 2 {
		t.Fatalf("freed number: %+v", h)
	}
	if err := p.Remove(ctx, "c-mimcets1", "c@h"); err != nil {
		t.Fatal(err)
	}
	if h := hb("a@h", time.Hour); fmt.Sprint(h.Nodes) != "[a@h]" {
		t.Fatalf("after remove: %+v", h)
	}
	unlock, err := p.JoinLock(ctx, "c-mimcets1")
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := p.JoinLock(lctx, "c-mimcets1"); err == nil {
		t.Error("the join lock was taken twice")
	}
	lcancel()
	unlock()
	if u, err := p.JoinLock(ctx, "c-mimcets1"); err != nil {
		t.Errorf("join lock after unlock: %v", err)
	} else {
		u()
	}
}
