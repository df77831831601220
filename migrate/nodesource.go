package migrate

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// streamModule runs on the node that holds a table's copy: it walks the
// table with mnesia:select/4 and its continuations inside one async_dirty
// activity (no table lock: the server goes on serving), and sends each
// chunk of records, every record as term_to_binary, to the export. At most
// Window chunks are unacknowledged, so a slow database slows the walk
// instead of filling the node's memory.
const streamModule = "mimmigrate_export_stream"

const streamSource = `-module(mimmigrate_export_stream).
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

// NodeSource streams tables from a running node.
type NodeSource struct {
	cl      *erldist.Client
	node    string
	workers int
	timeout time.Duration

	mu     sync.Mutex
	conns  map[string]*erldist.Conn // by node: the one we attach to, and where tables are read
	loaded map[string]bool

	tables map[string]int64
	where  map[string]string
	hosts  []string
	svcs   map[string]string
}

// OpenNode attaches to a node and learns its tables, where each is read
// from, and (on ejabberd) its virtual hosts and services.
func OpenNode(ctx context.Context, cl *erldist.Client, node string, workers int, timeout time.Duration) (*NodeSource, error) {
	ns := &NodeSource{cl: cl, node: node, workers: max(1, workers), timeout: timeout,
		conns: map[string]*erldist.Conn{}, loaded: map[string]bool{},
		tables: map[string]int64{}, where: map[string]string{}, svcs: map[string]string{}}
	c, err := ns.conn(ctx, node)
	if err != nil {
		return nil, err
	}
	call := func(mod, fun term.Atom, args ...term.Term) (term.Term, error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return c.Call(cctx, mod, fun, args...)
	}
	running, err := call("mnesia", "system_info", term.Atom("is_running"))
	if err != nil {
		ns.Close()
		return nil, err
	}
	if !term.IsAtom(running, "yes") {
		ns.Close()
		return nil, fmt.Errorf("Mnesia is not running on %s (%s)", node, term.Format(running))
	}
	tabs, err := call("mnesia", "system_info", term.Atom("tables"))
	if err != nil {
		ns.Close()
		return nil, err
	}
	list, _ := term.Elems(tabs)
	for _, t := range list {
		name, ok := t.(term.Atom)
		if !ok || name == "schema" {
			continue
		}
		size, err := call("mnesia", "table_info", name, term.Atom("size"))
		if err != nil {
			ns.Close()
			return nil, err
		}
		where, err := call("mnesia", "table_info", name, term.Atom("where_to_read"))
		if err != nil {
			ns.Close()
			return nil, err
		}
		wn, ok := where.(term.Atom)
		if !ok || wn == "nowhere" {
			continue // not loaded anywhere reachable: the export says it has no such table
		}
		n, _ := term.Int(size)
		ns.tables[string(name)] = n
		ns.where[string(name)] = string(wn)
	}
	// ejabberd: virtual hosts, and the services of mod_muc and mod_pubsub.
	if hv, err := call("ejabberd_option", "hosts"); err == nil {
		hl, _ := term.Elems(hv)
		for _, h := range hl {
			if s, ok := term.Text(h); ok {
				ns.hosts = append(ns.hosts, s)
			}
		}
		for _, h := range ns.hosts {
			for _, mod := range []term.Atom{"mod_muc", "mod_pubsub"} {
				sv, err := call("gen_mod", "get_module_opt_hosts", term.Binary(h), mod)
				if err != nil {
					continue // module not enabled on that host
				}
				sl, _ := term.Elems(sv)
				for _, s := range sl {
					if st, ok := term.Text(s); ok {
						ns.svcs[st] = h
					}
				}
			}
		}
		sort.Strings(ns.hosts)
	}
	return ns, nil
}

func (ns *NodeSource) conn(ctx context.Context, node string) (*erldist.Conn, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if c, ok := ns.conns[node]; ok && c.Err() == nil {
		return c, nil
	}
	c, err := ns.cl.Dial(ctx, node)
	if err != nil {
		return nil, err
	}
	ns.conns[node] = c
	return c, nil
}

// Close unloads the stream module and disconnects.
func (ns *NodeSource) Close() {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for node, c := range ns.conns {
		if ns.loaded[node] {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.Call(ctx, "code", "purge", term.Atom(streamModule))
			c.Call(ctx, "code", "delete", term.Atom(streamModule))
			c.Call(ctx, "code", "purge", term.Atom(streamModule))
			cancel()
		}
		c.Close()
	}
	ns.conns = map[string]*erldist.Conn{}
}

// Identity implements RecordSource.
func (ns *NodeSource) Identity() string { return "node:" + ns.node }

// Positional implements RecordSource: a live table changes under us.
func (ns *NodeSource) Positional() bool { return false }

// Tables implements RecordSource, with each table's current size.
func (ns *NodeSource) Tables() map[string]int64 { return ns.tables }

// VirtualHosts lists the node's ejabberd virtual hosts.
func (ns *NodeSource) VirtualHosts() []string { return ns.hosts }

// Services maps the node's MUC and pubsub services to their virtual hosts.
func (ns *NodeSource) Services() map[string]string { return ns.svcs }

// load compiles and loads the stream module on a node with the node's own
// compiler (nothing is written to its disk).
func (ns *NodeSource) load(ctx context.Context, node string, c *erldist.Conn) error {
	ns.mu.Lock()
	done := ns.loaded[node]
	ns.mu.Unlock()
	if done {
		return nil
	}
	call := func(mod, fun term.Atom, args ...term.Term) (term.Term, error) {
		cctx, cancel := context.WithTimeout(ctx, ns.timeout)
		defer cancel()
		return c.Call(cctx, mod, fun, args...)
	}
	scanned, err := call("erl_scan", "string", term.Charlist(streamSource))
	if err != nil {
		return err
	}
	st, ok := scanned.(term.Tuple)
	if !ok || len(st) != 3 || !term.IsAtom(st[0], "ok") {
		return fmt.Errorf("loading the stream module on %s: erl_scan: %s", node, term.Format(scanned))
	}
	toks, _ := term.Elems(st[1])
	var forms term.List
	var form term.List
	for _, tk := range toks {
		form = append(form, tk)
		if tt, ok := tk.(term.Tuple); ok && len(tt) == 2 && term.IsAtom(tt[0], "dot") {
			parsed, err := call("erl_parse", "parse_form", form)
			if err != nil {
				return err
			}
			pt, ok := parsed.(term.Tuple)
			if !ok || len(pt) != 2 || !term.IsAtom(pt[0], "ok") {
				return fmt.Errorf("loading the stream module on %s: erl_parse: %s", node, term.Format(parsed))
			}
			forms = append(forms, pt[1])
			form = nil
		}
	}
	compiled, err := call("compile", "forms", forms, term.List{term.Atom("binary"), term.Atom("return_errors")})
	if err != nil {
		return fmt.Errorf("the node %s cannot compile (is the compiler application installed?): %w", node, err)
	}
	ct, ok := compiled.(term.Tuple)
	if !ok || len(ct) != 3 || !term.IsAtom(ct[0], "ok") {
		return fmt.Errorf("compiling the stream module on %s: %s", node, term.Format(compiled))
	}
	loaded, err := call("code", "load_binary", ct[1], term.Charlist(streamModule+".erl"), ct[2])
	if err != nil {
		return err
	}
	if lt, ok := loaded.(term.Tuple); !ok || len(lt) != 2 || !term.IsAtom(lt[0], "module") {
		return fmt.Errorf("loading the stream module on %s: %s", node, term.Format(loaded))
	}
	ns.mu.Lock()
	ns.loaded[node] = true
	ns.mu.Unlock()
	return nil
}

// Stream implements RecordSource: tables are walked on the node that holds
// the copy Mnesia reads from, several at once.
func (ns *NodeSource) Stream(ctx context.Context, tables []string, fn func(string, []byte) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan string)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	fail := func(err error) {
		once.Do(func() { first = err; cancel(err) })
	}
	for range min(ns.workers, max(1, len(tables))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := ns.streamTable(ctx, t, fn); err != nil {
					fail(err)
				}
			}
		}()
	}
	for _, t := range tables {
		jobs <- t
	}
	close(jobs)
	wg.Wait()
	return first
}

const streamChunk, streamWindow = 2000, 3

// mailboxes routes each connection's messages to the stream they belong
// to (by reference).
type router struct {
	mu     sync.Mutex
	routes map[string]chan term.Term
}

var routers sync.Map // *erldist.Conn -> *router

func routerFor(c *erldist.Conn) *router {
	if r, ok := routers.Load(c); ok {
		return r.(*router)
	}
	r := &router{routes: map[string]chan term.Term{}}
	if actual, loaded := routers.LoadOrStore(c, r); loaded {
		return actual.(*router)
	}
	go func() {
		for {
			select {
			case m := <-c.Mailbox():
				tu, ok := m.Msg.(term.Tuple)
				if !ok || len(tu) < 2 {
					continue
				}
				ref, ok := tu[0].(term.Ref)
				if !ok {
					continue
				}
				r.mu.Lock()
				ch := r.routes[ref.Key()]
				r.mu.Unlock()
				if ch != nil {
					ch <- m.Msg
				}
			case <-c.Done():
				routers.Delete(c)
				return
			}
		}
	}()
	return r
}

func (ns *NodeSource) streamTable(ctx context.Context, table string, fn func(string, []byte) error) error {
	where := ns.where[table]
	if where == "" {
		return fmt.Errorf("the node has no table %s", table)
	}
	c, err := ns.conn(ctx, where)
	if err != nil {
		return fmt.Errorf("table %s is read on %s: %w", table, where, err)
	}
	if err := ns.load(ctx, where, c); err != nil {
		return err
	}
	r := routerFor(c)
	ref := c.MakeRef()
	ch := make(chan term.Term, streamWindow+2)
	r.mu.Lock()
	r.routes[ref.Key()] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.routes, ref.Key())
		r.mu.Unlock()
	}()
	cctx, cancel := context.WithTimeout(ctx, ns.timeout)
	pidT, err := c.Call(cctx, streamModule, "start", term.Atom(table), int64(streamChunk), c.Self(), ref, int64(streamWindow))
	cancel()
	if err != nil {
		return err
	}
	pid, ok := pidT.(term.Pid)
	if !ok {
		return fmt.Errorf("starting the stream of %s on %s: %s", table, where, term.Format(pidT))
	}
	stop := func() { c.Send(pid, term.Tuple{ref, term.Atom("stop")}) }
	idle := time.NewTimer(ns.timeout)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			stop()
			return context.Cause(ctx)
		case <-c.Done():
			return &erldist.Error{Kind: erldist.KindConnectionLost, Node: where,
				Msg:  fmt.Sprintf("the connection to %s was lost while reading %s", where, table),
				Hint: "what was committed stays: run the same command again to resume", Err: c.Err()}
		case <-idle.C:
			stop()
			return fmt.Errorf("%s sent nothing of %s for %s", where, table, ns.timeout)
		case m := <-ch:
			idle.Reset(ns.timeout)
			tu := m.(term.Tuple)
			switch {
			case len(tu) == 3 && term.IsAtom(tu[1], "chunk"):
				recs, _ := term.Elems(tu[2])
				for _, rb := range recs {
					b, ok := rb.(term.Binary)
					if !ok {
						stop()
						return fmt.Errorf("reading %s on %s: a record that is not a binary", table, where)
					}
					if err := fn(table, b); err != nil {
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
				return &erldist.Error{Kind: erldist.KindBadRPC, Node: where,
					Msg: fmt.Sprintf("reading %s on %s failed: %s", table, where, term.Format(tu[2]))}
			}
		}
	}
}
