package cetsnode

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// The session API across two nodes: register on one, look up by bare and
// full JID on the other, unregister, count; a node going down takes its
// sessions with it. Routes: the later registration of a domain wins.
func TestSessionsAndRoutes(t *testing.T) {
	cookie := "c" + testenv.RandomID(10)
	mk := func() (*Cluster, *Sessions, *Routes) {
		n := &erldist.Node{Name: "sess" + testenv.RandomID(6) + "@127.0.0.1", Cookie: cookie, ListenAddr: "127.0.0.1:0"}
		c := newTestCluster(n)
		s, r := NewSessions(c), NewRoutes(c)
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return c, s, r
	}
	ctx := context.Background()
	a, sa, ra := mk()
	b, sb, rb := mk()
	if err := b.Join(ctx, string(a.Self())); err != nil {
		t.Fatal(err)
	}
	for _, res := range []string{"phone", "laptop"} {
		if err := sa.Register(ctx, Session{Server: "example.com", User: "alice", Resource: res, Available: true, Priority: 5}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sb.Register(ctx, Session{Server: "example.com", User: "bob", Resource: "web"}); err != nil {
		t.Fatal(err)
	}
	if got := sb.Bare("example.com", "alice"); len(got) != 2 || got[0].Node != a.Self() || got[0].Priority != 5 || !got[0].Available {
		t.Fatalf("alice seen from b: %+v", got)
	}
	full := sb.Full("example.com", "alice", "phone")
	if len(full) != 1 || full[0].Resource != "phone" || full[0].SID == nil {
		t.Fatalf("alice/phone seen from b: %+v", full)
	}
	if sa.Count() != 3 || sb.Count() != 3 {
		t.Fatalf("counts %d %d", sa.Count(), sb.Count())
	}
	if err := sa.Unregister(ctx, full[0]); err != nil {
		t.Fatal(err)
	}
	if got := sb.Bare("example.com", "alice"); len(got) != 1 || got[0].Resource != "laptop" {
		t.Fatalf("after unregister: %+v", got)
	}
	if got := sa.Bare("example.com", "nobody"); len(got) != 0 {
		t.Fatalf("nobody: %+v", got)
	}
	ra.Register(ctx, "conf.example.com")
	time.Sleep(2 * time.Millisecond)
	rb.Register(ctx, "conf.example.com")
	if n, ok := ra.Lookup("conf.example.com"); !ok || n != b.Self() {
		t.Fatalf("route: %s %v", n, ok)
	}
	// a goes down: b drops alice's remaining session, keeps bob's.
	closeNode(a)
	deadline := time.Now().Add(5 * time.Second)
	for sb.Count() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("b still holds %d sessions", sb.Count())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := sb.Bare("example.com", "bob"); len(got) != 1 {
		t.Fatalf("bob: %+v", got)
	}
}

// Session ids are unique on a node even when many sessions open at once
// (the XMPP service keys its connections by them: two alike would hand
// one user's stanzas to another's connection).
func TestNewSIDUnique(t *testing.T) {
	c := NewCluster(ClusterOptions{})
	ss := NewSessions(c)
	seen := sync.Map{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				sid := term.Format(ss.NewSID())
				if _, dup := seen.LoadOrStore(sid, true); dup {
					t.Errorf("session id %s made twice", sid)
					return
				}
			}
		}()
	}
	wg.Wait()
}
