package source

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Node streams tables from a running cluster: each table is walked on
// the node Mnesia reads it from, several at once.
type Node struct {
	node    string
	workers int
	sess    *mnesia.Session
	walker  *mnesia.Walker
	tables  map[string]int64
	where   map[string]string
	hosts   []string
	svcs    map[string]string
	snap    *mnesia.Snapshot
	cl      *erldist.Client
	mu      sync.Mutex // where changes when a node goes away
}

// OpenNode attaches to a node, inspects its cluster to learn its tables
// and where each is read from, and (on ejabberd) reads its virtual hosts
// and services.
func OpenNode(ctx context.Context, cl *erldist.Client, node string, workers int, timeout time.Duration) (*Node, error) {
	snap, sess, err := mnesia.Inspect(ctx, mnesia.Options{Client: cl}, node)
	if err != nil {
		return nil, err
	}
	ns := &Node{node: node, workers: max(1, workers), sess: sess, walker: mnesia.NewWalker(sess, timeout),
		tables: map[string]int64{}, where: map[string]string{}, svcs: map[string]string{}, snap: snap, cl: cl}
	for _, t := range snap.Tables {
		if t.Name == "schema" || t.WhereToRead == "" || t.WhereToRead == "nowhere" {
			continue // not loaded anywhere reachable: the export says it has no such table
		}
		var n int64
		if t.Size != nil {
			n = *t.Size
		}
		ns.tables[t.Name] = n
		ns.where[t.Name] = t.WhereToRead
	}
	ns.readEjabberdHosts(ctx, sess.Conn(node), timeout)
	return ns, nil
}

// readEjabberdHosts asks an ejabberd node for its virtual hosts and the
// services of mod_muc and mod_pubsub on each (nothing on other nodes).
func (ns *Node) readEjabberdHosts(ctx context.Context, c *erldist.Conn, timeout time.Duration) {
	call := func(mod, fun term.Atom, args ...term.Term) (term.Term, error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return c.Call(cctx, mod, fun, args...)
	}
	hv, err := call("ejabberd_option", "hosts")
	if err != nil {
		return
	}
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

// Snapshot is the inspection of the cluster made when it was opened.
func (ns *Node) Snapshot() *mnesia.Snapshot { return ns.snap }

// Session is the inspection's connections.
func (ns *Node) Session() *mnesia.Session { return ns.sess }

// Node is the node the source was opened on.
func (ns *Node) Node() string { return ns.node }

// Conn is the connection to a running node of the cluster: the one of the
// inspection while it lasts, else a new one (a node that restarted).
func (ns *Node) Conn(ctx context.Context, node string) (*erldist.Conn, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if c := ns.sess.Conn(node); c != nil && c.Err() == nil {
		return c, nil
	}
	c, err := ns.cl.Dial(ctx, node)
	if err != nil {
		return nil, err
	}
	ns.sess.SetConn(node, c)
	return c, nil
}

// Where is the node a table is read on.
func (ns *Node) Where(table string) string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.where[table]
}

// SetWhere reads a table on another node of the inspection from now on
// (the one it was read on went away).
func (ns *Node) SetWhere(table, node string) {
	ns.mu.Lock()
	ns.where[table] = node
	ns.mu.Unlock()
}

// Close unloads the walker and disconnects.
func (ns *Node) Close() error {
	ns.walker.Close()
	ns.sess.Close()
	return nil
}

// Identity implements migrate.Source.
func (ns *Node) Identity() string { return "node:" + ns.node }

// Positional implements migrate.Source: a live table changes under us.
func (ns *Node) Positional() bool { return false }

// Tables implements migrate.Source, with each table's current size.
func (ns *Node) Tables() map[string]int64 { return ns.tables }

// VirtualHosts lists the node's ejabberd virtual hosts.
func (ns *Node) VirtualHosts() []string { return ns.hosts }

// Services maps the node's MUC and pubsub services to their virtual hosts.
func (ns *Node) Services() map[string]string { return ns.svcs }

// Stream implements migrate.Source: tables are walked on the node that
// holds the copy Mnesia reads from, several at once.
func (ns *Node) Stream(ctx context.Context, tables []string, fn func(string, []byte) error) error {
	return eachTable(ctx, tables, ns.workers, func(ctx context.Context, t string) error {
		where := ns.Where(t)
		if where == "" {
			return &Error{Msg: "the node has no table " + t}
		}
		if _, err := ns.Conn(ctx, where); err != nil {
			return err
		}
		return ns.walker.Walk(ctx, where, t, func(rec []byte) error { return fn(t, rec) })
	})
}

// eachTable runs fn on the tables, workers at once; the first failure
// cancels the others and is returned.
func eachTable(ctx context.Context, tables []string, workers int, fn func(context.Context, string) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan string)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(workers, max(1, len(tables))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := fn(ctx, t); err != nil {
					once.Do(func() { first = err; cancel(err) })
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
