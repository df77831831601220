package cetsnode

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// owned records: {rec, Key, OwnerNode, Value}
var ownedOpts = TableOptions{KeyPos: 2, Owner: func(r Record) term.Atom { a, _ := r[2].(term.Atom); return a }}

func startCluster(t *testing.T, cookie string) *Cluster { return startClusterTB(t, cookie) }

func startClusterTB(t testing.TB, cookie string) *Cluster {
	t.Helper()
	n := &erldist.Node{Name: "cets" + testenv.RandomID(6) + "@127.0.0.1", Cookie: cookie, ListenAddr: "127.0.0.1:0",
		Timeouts: erldist.Timeouts{Tick: 2 * time.Second, Peer: 4 * time.Second, Write: 5 * time.Second, Call: 10 * time.Second}}
	c := newTestCluster(n)
	c.Table("t", ownedOpts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return c
}

// testNodes are the erldist nodes of the in-process clusters.
var testNodes sync.Map // *Cluster -> *erldist.Node

// newTestCluster makes a cluster over a real erldist node on loopback.
func newTestCluster(n *erldist.Node) *Cluster {
	c := NewCluster(ClusterOptions{})
	c.SetTransport(NewDistTransport(n, c))
	testNodes.Store(c, n)
	return c
}

// closeNode stops a cluster's node: its peers see it go down.
func closeNode(c *Cluster) {
	if n, ok := testNodes.Load(c); ok {
		n.(*erldist.Node).Close()
	}
}

func rec(key string, owner term.Atom, v int) Record {
	return Record{term.Atom("rec"), term.Binary(key), owner, int64(v)}
}

func sameEverywhere(t *testing.T, cs ...*Cluster) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		want := term.Format(encodeEntries(cs[0].Tables()[0].Dump()))
		diff := ""
		for _, c := range cs[1:] {
			if got := term.Format(encodeEntries(c.Tables()[0].Dump())); got != want {
				diff = fmt.Sprintf("%s holds %d records, %s %d", cs[0].Self(), cs[0].Tables()[0].Size(), c.Self(), c.Tables()[0].Size())
			}
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(diff)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReplicationJoinDown(t *testing.T) {
	cookie := "c" + testenv.RandomID(10)
	ctx := context.Background()
	a, b, c := startCluster(t, cookie), startCluster(t, cookie), startCluster(t, cookie)
	// Data before anyone joins: each node's own, and one key on two nodes.
	for i, n := range []*Cluster{a, b, c} {
		for k := range 50 {
			if err := n.Tables()[0].Insert(ctx, rec(fmt.Sprintf("%d-%d", i, k), n.Self(), k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.Tables()[0].Insert(ctx, rec("shared", a.Self(), 1))
	time.Sleep(2 * time.Millisecond)
	b.Tables()[0].Insert(ctx, rec("shared", b.Self(), 2)) // the later write
	if err := b.Join(ctx, string(a.Self())); err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctx, string(b.Self())); err != nil {
		t.Fatal(err)
	}
	if err := c.Join(ctx, string(a.Self())); err != ErrAlreadyJoined {
		t.Fatalf("joining again: %v", err)
	}
	for _, n := range []*Cluster{a, b, c} {
		if got := n.Tables()[0].Nodes(); len(got) != 2 {
			t.Fatalf("%s replicates to %v", n.Self(), got)
		}
	}
	sameEverywhere(t, a, b, c)
	if r, _ := c.Tables()[0].Lookup(term.Binary("shared")); !term.Equal(r[3], int64(2)) {
		t.Fatalf("conflict: last writer should win, got %s", term.Format(r))
	}
	if n := a.Tables()[0].Size(); n != 151 {
		t.Fatalf("%d records after the joins, want 151", n)
	}

	// Concurrent writers on every node; each write returns once every
	// peer has it.
	var wg sync.WaitGroup
	for i, n := range []*Cluster{a, b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 300 {
				key := fmt.Sprintf("w%d-%d", i, k)
				if err := n.Tables()[0].Insert(ctx, rec(key, n.Self(), k)); err != nil {
					t.Error(err)
					return
				}
				for _, other := range []*Cluster{a, b, c} {
					if _, ok := other.Tables()[0].Lookup(term.Binary(key)); !ok {
						t.Errorf("%s lacks %s after the insert returned", other.Self(), key)
						return
					}
				}
				if k%3 == 0 {
					n.Tables()[0].Delete(ctx, term.Binary(key))
				}
			}
		}()
	}
	wg.Wait()
	sameEverywhere(t, a, b, c)

	// insert_new: one winner among concurrent attempts on every node.
	var wins atomic.Int32
	for _, n := range []*Cluster{a, b, c} {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := n.Tables()[0].InsertNew(ctx, rec("unique", n.Self(), 7))
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("insert_new won %d times", wins.Load())
	}
	sameEverywhere(t, a, b, c)

	// c goes away: a and b drop it and its records.
	cRecs := 0
	a.Tables()[0].Each(func(r Record) {
		if r[2] == c.Self() {
			cRecs++
		}
	})
	closeNode(c)
	deadline := time.Now().Add(5 * time.Second)
	for len(a.Tables()[0].Nodes()) != 1 || len(b.Tables()[0].Nodes()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("c still a member: %v %v", a.Tables()[0].Nodes(), b.Tables()[0].Nodes())
		}
		time.Sleep(10 * time.Millisecond)
	}
	sameEverywhere(t, a, b)
	left := 0
	a.Tables()[0].Each(func(r Record) {
		if r[2] == c.Self() {
			left++
		}
	})
	if cRecs == 0 || left != 0 {
		t.Fatalf("c's records: %d before, %d after it went down", cRecs, left)
	}
	if d := a.Tables()[0].Downs(); len(d) != 1 || d[0].Node != c.Self() || d[0].Removed != cRecs {
		t.Fatalf("down history: %+v", d)
	}

	// A fourth node with records of its own joins and gets everything.
	d := startCluster(t, cookie)
	d.Tables()[0].Insert(ctx, rec("d-own", d.Self(), 1))
	if err := d.Join(ctx, string(a.Self())); err != nil {
		t.Fatal(err)
	}
	sameEverywhere(t, a, b, d)
	if _, ok := b.Tables()[0].Lookup(term.Binary("d-own")); !ok {
		t.Fatal("the joining node's record did not reach b")
	}
}
