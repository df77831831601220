package mnesia

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// walkerModule runs on the node that holds a table's copy: it walks the
// table with mnesia:select/4 and its continuations inside one async_dirty
// activity (no table lock: the server goes on serving), and sends each
// chunk of records, every record as term_to_binary, to the caller. At
// most Window chunks are unacknowledged, so a slow reader slows the walk
// instead of filling the node's memory. It stops when told to, when the
// caller's node goes away, or after ten minutes without an
// acknowledgement.
const walkerModule = "mimmigrate_export_stream"

const walkerSource = `-module(mimmigrate_export_stream).
-export([start/5]).
start(Tab, N, Dest, Ref, Window) ->
    spawn(fun() -> run(Tab, N, Dest, Ref, Window) end).
run(Tab, N, Dest, Ref, Window) ->
    erlang:monitor_node(node(Dest), true),
    Result = try mnesia:activity(async_dirty,
                 fun() -> walk(mnesia:select(Tab, [{'_', [], ['$_']}], N, read), Dest, Ref, Window, 0) end)
             catch exit:stop -> stopped; C:R -> {error, {C, R}}
             end,
    Dest ! {Ref, result, Result}.
walk('$end_of_table', _Dest, _Ref, _Credit, Sent) -> {done, Sent};
walk({Recs, Cont}, Dest, Ref, Credit, Sent) ->
    Dest ! {Ref, chunk, [term_to_binary(R) || R <- Recs]},
    walk(mnesia:select(Cont), Dest, Ref, credit(Ref, Credit - 1), Sent + length(Recs)).
credit(_Ref, Credit) when Credit > 0 -> Credit;
credit(Ref, _) ->
    receive
        {Ref, ack} -> 1;
        {Ref, stop} -> exit(stop);
        {nodedown, _} -> exit(stop)
    after 600000 -> exit(stop)
    end.
`

// WalkChunk and WalkWindow: records per message, and messages
// unacknowledged at most.
const WalkChunk, WalkWindow = 2000, 3

// Walker streams tables of a live cluster, each from the node Mnesia
// reads it from, over the connections of an inspection.
type Walker struct {
	sess    *Session
	timeout time.Duration
	mu      sync.Mutex
	loaded  map[string]*erldist.Conn // the connection it was loaded over
}

// NewWalker walks over the session's connections; timeout bounds each
// call and the wait for each chunk.
func NewWalker(sess *Session, timeout time.Duration) *Walker {
	return &Walker{sess: sess, timeout: timeout, loaded: map[string]*erldist.Conn{}}
}

// Close purges the walker module from every node it was loaded on.
func (w *Walker) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for node := range w.loaded {
		if c := w.sess.Conn(node); c != nil && c.Err() == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.Call(ctx, "code", "purge", term.Atom(walkerModule))
			c.Call(ctx, "code", "delete", term.Atom(walkerModule))
			c.Call(ctx, "code", "purge", term.Atom(walkerModule))
			cancel()
		}
	}
	w.loaded = map[string]*erldist.Conn{}
}

func (w *Walker) call(ctx context.Context, c *erldist.Conn, mod, fun term.Atom, args ...term.Term) (term.Term, error) {
	cctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	return c.Call(cctx, mod, fun, args...)
}

// load compiles and loads the walker module on a node with the node's
// own compiler (nothing is written to its disk).
func (w *Walker) load(ctx context.Context, node string, c *erldist.Conn) error {
	w.mu.Lock()
	done := w.loaded[node] == c // a new connection: the node may have restarted
	w.mu.Unlock()
	if done {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	if err := LoadModule(cctx, c, walkerModule, walkerSource); err != nil {
		return err
	}
	w.mu.Lock()
	w.loaded[node] = c
	w.mu.Unlock()
	return nil
}

// LoadModule compiles an Erlang module's source with the node's own
// compiler and loads it (nothing is written to the node's disk).
func LoadModule(ctx context.Context, c *erldist.Conn, module, source string) error {
	node := c.Peer()
	scanned, err := c.Call(ctx, "erl_scan", "string", term.Charlist(source))
	if err != nil {
		return err
	}
	st, ok := scanned.(term.Tuple)
	if !ok || len(st) != 3 || !term.IsAtom(st[0], "ok") {
		return fmt.Errorf("loading %s on %s: erl_scan: %s", module, node, term.Format(scanned))
	}
	toks, _ := term.Elems(st[1])
	var forms, form term.List
	for _, tk := range toks {
		form = append(form, tk)
		if tt, ok := tk.(term.Tuple); ok && len(tt) == 2 && term.IsAtom(tt[0], "dot") {
			parsed, err := c.Call(ctx, "erl_parse", "parse_form", form)
			if err != nil {
				return err
			}
			pt, ok := parsed.(term.Tuple)
			if !ok || len(pt) != 2 || !term.IsAtom(pt[0], "ok") {
				return fmt.Errorf("loading %s on %s: erl_parse: %s", module, node, term.Format(parsed))
			}
			forms = append(forms, pt[1])
			form = nil
		}
	}
	compiled, err := c.Call(ctx, "compile", "forms", forms, term.List{term.Atom("binary"), term.Atom("return_errors")})
	if err != nil {
		return fmt.Errorf("the node %s cannot compile (is the compiler application installed?): %w", node, err)
	}
	ct, ok := compiled.(term.Tuple)
	if !ok || len(ct) != 3 || !term.IsAtom(ct[0], "ok") {
		return fmt.Errorf("compiling %s on %s: %s", module, node, term.Format(compiled))
	}
	loaded, err := c.Call(ctx, "code", "load_binary", ct[1], term.Charlist(module+".erl"), ct[2])
	if err != nil {
		return err
	}
	if lt, ok := loaded.(term.Tuple); !ok || len(lt) != 2 || !term.IsAtom(lt[0], "module") {
		return fmt.Errorf("loading %s on %s: %s", module, node, term.Format(loaded))
	}
	return nil
}

// Walk streams a table from node, calling fn with each record's
// term_to_binary (valid during the call).
func (w *Walker) Walk(ctx context.Context, node, table string, fn func(rec []byte) error) error {
	c := w.sess.Conn(node)
	if c == nil {
		return fmt.Errorf("table %s is read on %s, which is not connected", table, node)
	}
	if err := w.load(ctx, node, c); err != nil {
		return err
	}
	ref := c.MakeRef()
	msgs, unroute := c.Route(ref, WalkWindow+2)
	defer unroute()
	pidT, err := w.call(ctx, c, walkerModule, "start", term.Atom(table), int64(WalkChunk), c.Self(), ref, int64(WalkWindow))
	if err != nil {
		return err
	}
	pid, ok := pidT.(term.Pid)
	if !ok {
		return fmt.Errorf("starting the walk of %s on %s: %s", table, node, term.Format(pidT))
	}
	stop := func() { c.Send(pid, term.Tuple{ref, term.Atom("stop")}) }
	idle := time.NewTimer(w.timeout)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			stop()
			return context.Cause(ctx)
		case <-c.Done():
			return &erldist.Error{Kind: erldist.KindConnectionLost, Node: node,
				Msg:  fmt.Sprintf("the connection to %s was lost while reading %s", node, table),
				Hint: "what was committed stays: the same command resumes", Err: c.Err()}
		case <-idle.C:
			stop()
			return fmt.Errorf("%s sent nothing of %s for %s", node, table, w.timeout)
		case m := <-msgs:
			idle.Reset(w.timeout)
			tu := m.(term.Tuple)
			switch {
			case len(tu) == 3 && term.IsAtom(tu[1], "chunk"):
				recs, _ := term.Elems(tu[2])
				for _, rb := range recs {
					b, ok := rb.(term.Binary)
					if !ok {
						stop()
						return fmt.Errorf("reading %s on %s: a record that is not a binary", table, node)
					}
					if err := fn(b); err != nil {
						stop()
						return err
					}
				}
				if err := c.Send(pid, term.Tuple{ref, term.Atom("ack")}); err != nil {
					return err
				}
			case len(tu) == 3 && term.IsAtom(tu[1], "result"):
				res, ok := tu[2].(term.Tuple)
				if ok && len(res) == 2 && term.IsAtom(res[0], "done") {
					return nil
				}
				return &erldist.Error{Kind: erldist.KindBadRPC, Node: node,
					Msg: fmt.Sprintf("reading %s on %s failed: %s", table, node, term.Format(tu[2]))}
			}
		}
	}
}
