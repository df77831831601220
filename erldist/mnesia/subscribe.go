package mnesia

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// forwarderSource is a module (its own name in place of
// mimmigrate_forwarder_module) compiled and
// loaded on a node that holds active replicas of the tables (only there
// may a process subscribe); start/6 spawns the forwarder and returns its
// pid. The module leaves with its forwarder: when the forwarder ends, for
// whatever reason it can see, it deletes its module and has the old code
// purged once it is gone, so no code stays on the node. (A fun evaluated
// by erl_eval would leave nothing either, but interpreted code made each
// of the node's writes about 50 µs slower, compiled about 15 µs.)
//
// The forwarder subscribes to {table, T, simple} for each table (detailed
// events make Mnesia read every written key's old records, five times
// the cost of a write to a disc_only table) and to activity, links to our
// pid (when our node goes away the link ends it, and its subscriptions
// die with it) and monitors mnesia_subscr (when Mnesia stops there, it
// says so and exits). Mnesia sends it events from the committing
// processes; it never makes them wait: events are queued here, and sent
// to us in numbered batches with nosuspend, one batch per credit we gave.
// When one table's queued events pass Cap, that table is unsubscribed,
// its queued events dropped, and we are told (overflow): its rows must be
// repaired. A transaction's completion is forwarded only when one of its
// events was.
const forwarderSource = `-module(mimmigrate_forwarder_module).
-export([start/6]).
start(Batch, Cap, Credit0, Dest, Ref, Tabs) ->
    spawn(fun() ->
        process_flag(trap_exit, true),
        try run(Batch, Cap, Credit0, Dest, Ref, Tabs)
        after
            code:delete(mimmigrate_forwarder_module),
            timer:apply_after(500, code, soft_purge, [mimmigrate_forwarder_module])
        end
    end).
run(Batch, Cap, Credit0, Dest, Ref, Tabs) ->
    link(Dest),
    MRef = erlang:monitor(process, mnesia_subscr),
    Sub = fun(T) -> case mnesia:subscribe({table, T, simple}) of
                        {ok, _} -> ok;
                        {error, E} -> {error, E}
                    end end,
    {ok, _} = mnesia:subscribe(activity),
    Dest ! {Ref, subscribed, self(), [{T, Sub(T)} || T <- Tabs]},
    %% Flush sends the oldest Batch events, if there is credit.
    Flush = fun(Q, N, Counts, Credit, Seq) when N > 0, Credit > 0 ->
                    {Rest, Out} = if N > Batch -> lists:split(N - Batch, Q); true -> {[], Q} end,
                    Sent = lists:reverse(Out),
                    {message_queue_len, InBox} = process_info(self(), message_queue_len),
                    case erlang:send(Dest, {Ref, events, Seq, length(Rest) + InBox, [B || {_, B} <- Sent]}, [nosuspend]) of
                        ok ->
                            Counts1 = lists:foldl(fun({T, _}, Acc) ->
                                          case maps:get(T, Acc, 0) of
                                              1 -> maps:remove(T, Acc);
                                              0 -> Acc;
                                              X -> Acc#{T => X - 1}
                                          end end, Counts, Sent),
                            {Rest, length(Rest), Counts1, Credit - 1, Seq + 1};
                        _ ->
                            {Q, N, Counts, Credit, Seq}
                    end;
               (Q, N, Counts, Credit, Seq) ->
                    {Q, N, Counts, Credit, Seq}
            end,
    Loop = fun L(Q, N, Counts, Open, Credit, Seq, Off) ->
        Wait = if N > 0, Credit > 0 -> 0; true -> 1000 end,
        receive
            {mnesia_table_event, Ev} ->
                %% Simple events name the table in the record (or in the
                %% {Tab, Key} of a delete): {Op, Record, ActivityId}.
                T = element(1, element(2, Ev)),
                Tid = element(3, Ev),
                C = maps:get(T, Counts, 0) + 1,
                Dropped = maps:is_key(T, Off),
                if Dropped ->
                    L(Q, N, Counts, Open, Credit, Seq, Off);
                C > Cap ->
                    mnesia:unsubscribe({table, T, simple}),
                    Keep = [I || I = {T1, _} <- Q, T1 =/= T],
                    Dest ! {Ref, overflow, T},
                    L(Keep, length(Keep), maps:remove(T, Counts), Open, Credit, Seq, Off#{T => true});
                N + 1 >= Batch ->
                    %% A full batch goes at once, however busy the mailbox.
                    Open1 = case Tid of {tid, _, _} -> Open#{Tid => true}; _ -> Open end,
                    Item = {T, term_to_binary({erlang:system_time(microsecond), Ev})},
                    {Q1, N1, Counts1, Credit1, Seq1} = Flush([Item | Q], N + 1, Counts#{T => C}, Credit, Seq),
                    L(Q1, N1, Counts1, Open1, Credit1, Seq1, Off);
                true ->
                    Open1 = case Tid of {tid, _, _} -> Open#{Tid => true}; _ -> Open end,
                    Item = {T, term_to_binary({erlang:system_time(microsecond), Ev})},
                    L([Item | Q], N + 1, Counts#{T => C}, Open1, Credit, Seq, Off)
                end;
            {mnesia_activity_event, {complete, Tid}} ->
                case maps:is_key(Tid, Open) of
                    true ->
                        Item = {'$complete', term_to_binary({erlang:system_time(microsecond), {complete, Tid}})},
                        L([Item | Q], N + 1, Counts, maps:remove(Tid, Open), Credit, Seq, Off);
                    false ->
                        L(Q, N, Counts, Open, Credit, Seq, Off)
                end;
            {Ref, credit, K} ->
                L(Q, N, Counts, Open, Credit + K, Seq, Off);
            {Ref, subscribe, T} ->
                Dest ! {Ref, subscribed, self(), [{T, Sub(T)}]},
                L(Q, N, Counts, Open, Credit, Seq, maps:remove(T, Off));
            {Ref, stop} ->
                exit(normal);
            {'EXIT', Dest, _} ->
                exit(normal);
            {'DOWN', MRef, _, _, Why} ->
                Dest ! {Ref, mnesia_down, Why},
                exit(normal)
        after Wait ->
            if N =:= 0 ->
                %% Idle: say so, so that a lag counted from the last
                %% batch does not stay.
                Dest ! {Ref, idle},
                L(Q, N, Counts, Open, Credit, Seq, Off);
            true ->
                {Q1, N1, Counts1, Credit1, Seq1} = Flush(Q, N, Counts, Credit, Seq),
                if N1 =:= N, Credit1 =:= Credit, Credit > 0 ->
                    %% nosuspend: the distribution buffer is busy
                    receive after 10 -> ok end;
                true -> ok
                end,
                L(Q1, N1, Counts1, Open, Credit1, Seq1, Off)
            end
        end
    end,
    Loop([], 0, #{}, #{}, Credit0, 0, #{}).
`

// Event kinds.
const (
	EventWrite        = "write"
	EventDelete       = "delete"
	EventDeleteObject = "delete_object"
	EventComplete     = "complete" // a transaction's events are all delivered
)

// Event is one change Mnesia reported on the node that forwards it.
type Event struct {
	Kind  string
	Table string
	// Record: the record written (write) or the object deleted
	// (delete_object).
	Record term.Tuple
	// Key: the key of a delete (for the others, the record's key).
	Key term.Term
	// Tid is the activity: a transaction ({tid, N, Pid}) or a dirty
	// operation ({dirty, Pid}); Dirty tells which.
	Tid   term.Term
	Dirty bool
	At    time.Time // when the forwarder received it
}

// TidKey is a transaction id as a map key.
func (e *Event) TidKey() string { return term.Format(e.Tid) }

// Batch is one numbered batch of events.
type Batch struct {
	Seq    int64
	Events []Event
	// Queued: the events still queued in the forwarder after it.
	Queued int64
	// Notice: instead of events, an overflow or a subscription, in its
	// place among the batches (it comes as a notice too): the events of
	// the table before it are from before the gap.
	Notice *Notice
}

// Notice is something the forwarder says besides events.
type Notice struct {
	Kind  string // "subscribed", "overflow", "mnesia_down", "gone" (the forwarder or the connection ended)
	Table string
	Err   error // subscribed: the table could not be subscribed; gone: why
}

// ForwarderOptions bound a forwarder.
type ForwarderOptions struct {
	// Cap: events of one table queued on the legacy node at most before
	// the table overflows (default 100000).
	Cap int
	// Batch: events per message at most (default 2000).
	Batch int
	// Credit: batches unacknowledged at most (default 4).
	Credit int
}

func (o *ForwarderOptions) defaults() {
	if o.Cap <= 0 {
		o.Cap = 100000
	}
	if o.Batch <= 0 {
		o.Batch = 2000
	}
	if o.Credit <= 0 {
		o.Credit = 4
	}
}

// Forwarder is a running forwarder: change events of tables on one node.
type Forwarder struct {
	Node    string
	conn    *erldist.Conn
	pid     term.Pid
	ref     term.Ref
	batches chan Batch
	notices chan Notice
	stop    func()
	done    chan struct{}
	once    sync.Once
	queued  atomic.Int64 // events queued on the node, as it last said
}

// Queued is the number of events queued on the node, as the forwarder
// last said (with its last batch, or 0 when it said it was idle).
func (f *Forwarder) Queued() int64 { return f.queued.Load() }

// StartForwarder evaluates the forwarder on node over c and subscribes it
// to the tables. It returns once the subscriptions are answered: the
// tables that could not be subscribed are in the error.
func StartForwarder(ctx context.Context, c *erldist.Conn, node string, tables []string, opt ForwarderOptions, timeout time.Duration) (*Forwarder, error) {
	opt.defaults()
	f := &Forwarder{Node: node, conn: c, ref: c.MakeRef(), batches: make(chan Batch, opt.Credit+1),
		notices: make(chan Notice, 64), done: make(chan struct{})}
	msgs, unroute := c.Route(f.ref, opt.Credit+8)
	f.stop = unroute
	tabs := make(term.List, len(tables))
	for i, t := range tables {
		tabs[i] = term.Atom(t)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	module := "mimmigrate_fwd_" + randomHex(8)
	err := LoadModule(cctx, c, module, strings.ReplaceAll(forwarderSource, "mimmigrate_forwarder_module", module))
	var v term.Term
	if err == nil {
		v, err = c.Call(cctx, term.Atom(module), "start", int64(opt.Batch), int64(opt.Cap), int64(opt.Credit), c.Self(), f.ref, tabs)
	}
	cancel()
	if err != nil {
		unroute()
		return nil, fmt.Errorf("starting the forwarder on %s: %w", node, err)
	}
	var ok bool
	if f.pid, ok = v.(term.Pid); !ok {
		unroute()
		return nil, fmt.Errorf("starting the forwarder on %s: %s", node, term.Format(v))
	}
	mref, down, err := c.Monitor(f.pid)
	if err != nil {
		unroute()
		return nil, err
	}
	_ = mref
	// The first message is the subscriptions' answer.
	var failed []string
	select {
	case m := <-msgs:
		tu, _ := m.(term.Tuple)
		if len(tu) != 4 || !term.IsAtom(tu[1], "subscribed") {
			f.Stop()
			return nil, fmt.Errorf("the forwarder on %s answered %s", node, term.Format(m))
		}
		res, _ := term.Elems(tu[3])
		for _, r := range res {
			rt, _ := r.(term.Tuple)
			if len(rt) == 2 && !term.IsAtom(rt[1], "ok") {
				name, _ := term.Text(rt[0])
				failed = append(failed, fmt.Sprintf("%s (%s)", name, term.Format(rt[1])))
			}
		}
	case v := <-down:
		unroute()
		return nil, fmt.Errorf("the forwarder on %s exited at once: %s", node, term.Format(v))
	case <-time.After(timeout):
		f.Stop()
		return nil, fmt.Errorf("the forwarder on %s did not subscribe within %s", node, timeout)
	case <-ctx.Done():
		f.Stop()
		return nil, context.Cause(ctx)
	}
	if len(failed) > 0 {
		f.Stop()
		sort.Strings(failed)
		return nil, fmt.Errorf("%s cannot subscribe to %v: only a node with an active replica can", node, failed)
	}
	go f.read(msgs, down)
	return f, nil
}

// read turns the forwarder's messages into batches and notices.
func (f *Forwarder) read(msgs <-chan term.Term, down <-chan term.Term) {
	defer close(f.batches)
	defer close(f.notices)
	gone := func(err error) {
		select {
		case f.notices <- Notice{Kind: "gone", Err: err}:
		default:
		}
	}
	for {
		select {
		case <-f.done:
			return
		case <-f.conn.Done():
			gone(fmt.Errorf("the connection to %s was lost", f.Node))
			return
		case v := <-down:
			gone(fmt.Errorf("the forwarder on %s exited: %s", f.Node, term.Format(v)))
			return
		case m := <-msgs:
			tu, _ := m.(term.Tuple)
			switch {
			case len(tu) == 5 && term.IsAtom(tu[1], "events"):
				b, err := decodeBatch(tu)
				f.queued.Store(b.Queued)
				if err != nil {
					gone(fmt.Errorf("the forwarder on %s: %w", f.Node, err))
					f.Stop()
					return
				}
				select {
				case f.batches <- b:
				case <-f.done:
					return
				}
			case len(tu) == 2 && term.IsAtom(tu[1], "idle"):
				f.queued.Store(0)
			case len(tu) == 3 && term.IsAtom(tu[1], "overflow"):
				name, _ := term.Text(tu[2])
				f.ordered(Notice{Kind: "overflow", Table: name})
			case len(tu) == 4 && term.IsAtom(tu[1], "subscribed"):
				res, _ := term.Elems(tu[3])
				for _, r := range res {
					rt, _ := r.(term.Tuple)
					if len(rt) != 2 {
						continue
					}
					name, _ := term.Text(rt[0])
					n := Notice{Kind: "subscribed", Table: name}
					if !term.IsAtom(rt[1], "ok") {
						n.Err = fmt.Errorf("%s cannot subscribe to %s: %s", f.Node, name, term.Format(rt[1]))
					}
					f.ordered(n)
				}
			case len(tu) == 3 && term.IsAtom(tu[1], "mnesia_down"):
				f.notice(Notice{Kind: "mnesia_down", Err: fmt.Errorf("Mnesia stopped on %s", f.Node)})
			}
		}
	}
}

// ordered gives a notice among the batches, in its place, and as a
// notice.
func (f *Forwarder) ordered(n Notice) {
	select {
	case f.batches <- Batch{Notice: &n}:
	case <-f.done:
		return
	}
	f.notice(n)
}

func (f *Forwarder) notice(n Notice) {
	select {
	case f.notices <- n:
	case <-f.done:
	}
}

// decodeBatch reads {Ref, events, Seq, Queued, [Bin]}.
func decodeBatch(tu term.Tuple) (Batch, error) {
	seq, _ := term.Int(tu[2])
	queued, _ := term.Int(tu[3])
	items, _ := term.Elems(tu[4])
	b := Batch{Seq: seq, Queued: queued, Events: make([]Event, 0, len(items))}
	for _, it := range items {
		bin, ok := it.(term.Binary)
		if !ok {
			return b, fmt.Errorf("an event that is not a binary")
		}
		v, err := term.Decode(bin)
		if err != nil {
			return b, fmt.Errorf("an undecodable event: %w", err)
		}
		e, err := decodeEvent(v)
		if err != nil {
			return b, err
		}
		b.Events = append(b.Events, e)
	}
	return b, nil
}

// decodeEvent reads {Micros, Event}.
func decodeEvent(v term.Term) (Event, error) {
	var e Event
	tu, ok := v.(term.Tuple)
	if !ok || len(tu) != 2 {
		return e, fmt.Errorf("an event of an unknown shape: %s", term.Short(v))
	}
	us, _ := term.Int(tu[0])
	e.At = time.UnixMicro(us)
	ev, ok := tu[1].(term.Tuple)
	if !ok || len(ev) == 0 {
		return e, fmt.Errorf("an event of an unknown shape: %s", term.Short(v))
	}
	kind, _ := term.Text(ev[0])
	switch {
	case kind == "complete" && len(ev) == 2:
		e.Kind, e.Tid = EventComplete, ev[1]
		return e, nil
	case (kind == EventWrite || kind == EventDelete || kind == EventDeleteObject) && len(ev) == 3:
		// Simple events: {write, Record, Tid}, {delete_object, Record,
		// Tid}, {delete, {Tab, Key}, Tid}; a record's first element is
		// the table's name (Mnesia puts it there).
		e.Kind, e.Tid = kind, ev[2]
		if tid, ok := e.Tid.(term.Tuple); ok && len(tid) > 0 && term.IsAtom(tid[0], "dirty") {
			e.Dirty = true
		}
		rec, ok := ev[1].(term.Tuple)
		if !ok || len(rec) < 2 {
			return e, fmt.Errorf("a %s of an unknown shape: %s", kind, term.Short(ev[1]))
		}
		e.Table, _ = term.Text(rec[0])
		if kind == EventDelete {
			e.Key = rec[1]
		} else {
			e.Record, e.Key = rec, rec[1]
		}
		return e, nil
	}
	return e, fmt.Errorf("an event of an unknown kind: %s", term.Short(v))
}

// Batches delivers the batches in order; it is closed when the
// forwarder is gone (Notices says why).
func (f *Forwarder) Batches() <-chan Batch { return f.batches }

// Notices delivers what the forwarder says besides events.
func (f *Forwarder) Notices() <-chan Notice { return f.notices }

// Credit lets the forwarder send n more batches.
func (f *Forwarder) Credit(n int) error {
	return f.conn.Send(f.pid, term.Tuple{f.ref, term.Atom("credit"), int64(n)})
}

// Subscribe asks the forwarder to subscribe to a table again (after its
// overflow); the answer comes as a "subscribed" notice.
func (f *Forwarder) Subscribe(table string) error {
	return f.conn.Send(f.pid, term.Tuple{f.ref, term.Atom("subscribe"), term.Atom(table)})
}

// Stop ends the forwarder (its subscriptions die with it).
func (f *Forwarder) Stop() {
	f.once.Do(func() {
		close(f.done)
		if f.pid != (term.Pid{}) {
			f.conn.Send(f.pid, term.Tuple{f.ref, term.Atom("stop")})
		}
		f.stop()
	})
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
