package cetsnode

import (
	"context"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// TestAdminCallsInARow: calls in quick succession to one node all get
// their answer over one connection. Dialing per call under one name and
// creation failed now and then (the node still held the last connection
// and answered nok), as the demo's cutover saw in CI.
func TestAdminCallsInARow(t *testing.T) {
	cookie := "c" + testenv.RandomID(12)
	calls := 0
	n := &erldist.Node{Name: "adm" + testenv.RandomID(6) + "@127.0.0.1", Cookie: cookie, ListenAddr: "127.0.0.1:0",
		RPC: map[string]erldist.RPCFunc{"mimmigrate:echo/1": func(_ term.Atom, args term.List) term.Term {
			calls++
			return args[0]
		}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a := &Admin{Client: &erldist.Client{Cookie: cookie, Name: "t" + testenv.RandomID(4) + "@127.0.0.1", DialTimeout: 3 * time.Second}}
	defer a.Close()
	var first *erldist.Conn
	for i := 0; i < 200; i++ {
		res, err := a.Call(ctx, n.Name, "mimmigrate", "echo", int64(i))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if v, _ := term.Int(res); v != int64(i) {
			t.Fatalf("call %d answered %s", i, term.Format(res))
		}
		c, _ := a.conn(ctx, n.Name)
		if first == nil {
			first = c
		} else if c != first {
			t.Fatalf("call %d went over a new connection", i)
		}
	}
	// A connection the node closed is replaced on the next call.
	first.Close()
	<-first.Done()
	if _, err := a.Call(ctx, n.Name, "mimmigrate", "echo", int64(1)); err != nil {
		t.Fatalf("call after the connection closed: %v", err)
	}
	if c, _ := a.conn(ctx, n.Name); c == first {
		t.Fatal("the closed connection is still used")
	}
	if calls != 201 {
		t.Fatalf("the node served %d calls, want 201", calls)
	}
}
