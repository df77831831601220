package mnesia

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

func dialErl(t *testing.T, n *testenv.ErlNode) *erldist.Conn {
	t.Helper()
	cl := &erldist.Client{Cookie: n.Cookie, Name: "fw" + testenv.RandomID(6) + "@localhost", DialTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cl.Dial(ctx, n.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// collect reads batches until n events (completions included) arrived.
func collect(t *testing.T, f *Forwarder, n int, limit time.Duration) []Event {
	t.Helper()
	var out []Event
	deadline := time.After(limit)
	for len(out) < n {
		select {
		case b, ok := <-f.Batches():
			if !ok {
				var why error
				for nt := range f.Notices() {
					if nt.Err != nil {
						why = nt.Err
					}
				}
				t.Fatalf("the forwarder ended after %d events: %v", len(out), why)
			}
			out = append(out, b.Events...)
			if err := f.Credit(1); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatalf("%d events of %d within %s", len(out), n, limit)
		}
	}
	return out
}

func TestForwarderEvents(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{Mnesia: true})
	n.Eval(t, `{atomic, ok} = mnesia:create_table(kv, [{attributes, [k, v]}, {disc_copies, [node()]}]), `+
		`{atomic, ok} = mnesia:create_table(bg, [{type, bag}, {attributes, [k, v]}, {disc_only_copies, [node()]}]), ok`)
	c := dialErl(t, n)
	ctx := context.Background()
	f, err := StartForwarder(ctx, c, n.Name, []string{"kv", "bg"}, ForwarderOptions{}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	n.Eval(t, `mnesia:dirty_write({kv, a, 1}), `+
		`{atomic, ok} = mnesia:transaction(fun() -> mnesia:write({kv, b, 2}), mnesia:write({bg, x, 1}), mnesia:write({bg, x, 2}) end), `+
		`mnesia:dirty_delete(kv, a), mnesia:dirty_delete_object({bg, x, 1}), ok`)
	evs := collect(t, f, 7, 10*time.Second)
	var got []string
	for _, e := range evs {
		s := e.Kind
		if e.Kind != EventComplete {
			s += " " + e.Table + " " + term.Format(e.Key)
			if e.Dirty {
				s += " dirty"
			}
		}
		got = append(got, s)
	}
	want := []string{
		"write kv a dirty",
		"write kv b", "write bg x", "write bg x", "complete",
		"delete kv a dirty",
		"delete_object bg x dirty",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if evs[4].TidKey() != evs[1].TidKey() || evs[1].TidKey() != evs[3].TidKey() {
		t.Errorf("the transaction's events and completion have different ids: %s %s", evs[1].TidKey(), evs[4].TidKey())
	}
	if age := time.Since(evs[0].At); age < 0 || age > time.Minute {
		t.Errorf("event time %s is off by %s", evs[0].At, age)
	}
}

// A process not holding our credit queues on the node: past the cap the
// table is unsubscribed and said to overflow, the other tables go on.
func TestForwarderOverflow(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{Mnesia: true})
	n.Eval(t, `{atomic, ok} = mnesia:create_table(big, [{attributes, [k, v]}]), {atomic, ok} = mnesia:create_table(small, [{attributes, [k, v]}]), ok`)
	c := dialErl(t, n)
	f, err := StartForwarder(context.Background(), c, n.Name, []string{"big", "small"}, ForwarderOptions{Cap: 500, Batch: 100, Credit: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	// One batch of credit: 100 events leave, the rest queue, 500 overflow.
	n.Eval(t, `[mnesia:dirty_write({big, I, I}) || I <- lists:seq(1, 2000)], ok`)
	select {
	case nt := <-f.Notices():
		if nt.Kind != "overflow" || nt.Table != "big" {
			t.Fatalf("notice %+v, want overflow of big", nt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no overflow")
	}
	if out := n.Eval(t, `lists:member(big, [T || {table, T, _} <- mnesia:system_info(subscribers)]) orelse proplists:get_value(subscribers, mnesia:table_info(big, all))`); strings.Contains(out, "<") {
		t.Errorf("big is still subscribed: %s", out)
	}
	n.Eval(t, `mnesia:dirty_write({small, 1, 1}), ok`)
	var small bool
	deadline := time.After(10 * time.Second)
	for !small {
		select {
		case b := <-f.Batches():
			for _, e := range b.Events {
				if e.Table == "small" {
					small = true
				}
			}
			f.Credit(1)
		case <-deadline:
			t.Fatal("small's event did not come after big overflowed")
		}
	}
	// Subscribed again, big's events flow.
	if err := f.Subscribe("big"); err != nil {
		t.Fatal(err)
	}
	select {
	case nt := <-f.Notices():
		if nt.Kind != "subscribed" || nt.Err != nil {
			t.Fatalf("notice %+v", nt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to subscribe")
	}
	n.Eval(t, `mnesia:dirty_write({big, again, 1}), ok`)
	evs := collect(t, f, 1, 10*time.Second)
	if evs[len(evs)-1].Table != "big" || term.Format(evs[len(evs)-1].Key) != "again" {
		t.Errorf("after resubscribing: %+v", evs[len(evs)-1])
	}
}

// The forwarder is linked to us: when our connection goes, it goes, and
// its subscriptions with it; no code stays loaded on the node.
func TestForwarderLeavesNothing(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{Mnesia: true})
	n.Eval(t, `{atomic, ok} = mnesia:create_table(kv, [{attributes, [k, v]}]), ok`)
	c := dialErl(t, n)
	f, err := StartForwarder(context.Background(), c, n.Name, []string{"kv"}, ForwarderOptions{}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	subs := `length(mnesia:table_info(kv, subscribers))`
	if got := n.Eval(t, subs); got != "1" {
		t.Fatalf("subscribers of kv: %s", got)
	}
	mods := `length([M || M <- erlang:loaded(), lists:prefix("mimmigrate", atom_to_list(M))])`
	if got := n.Eval(t, mods); got != "1" {
		t.Fatalf("the forwarder's module is not loaded while it runs: %s", got)
	}
	_ = f
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for n.Eval(t, subs) != "0" {
		if time.Now().After(deadline) {
			t.Fatal("the subscription outlived our connection")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Its module, current and old code, leaves with it.
	deadline = time.Now().Add(10 * time.Second)
	for n.Eval(t, mods) != "0" {
		if time.Now().After(deadline) {
			t.Fatalf("modules left loaded: %s", n.Eval(t, `[M || M <- erlang:loaded(), lists:prefix("mimmigrate", atom_to_list(M))]`))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A table the node has no active copy of cannot be subscribed.
	c2 := dialErl(t, n)
	if _, err := StartForwarder(context.Background(), c2, n.Name, []string{"nosuch"}, ForwarderOptions{}, 10*time.Second); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("subscribing a table that does not exist: %v", err)
	}
}
