package mnesia

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Options configure Inspect.
type Options struct {
	Client *erldist.Client
	// Concurrency is the number of calls in flight per node (default 16).
	Concurrency int
	// ProbeTimeout bounds the attempt to reach a stopped db node (default 3 s).
	ProbeTimeout time.Duration
	Params       InspectParams
}

// DefaultParams: DETS warnings at 75 % and 90 % of the 2 GiB limit; tables
// of 512 MiB or more count as large (disc_only is suggested only for those).
func DefaultParams() InspectParams {
	return InspectParams{DETSWarnBytes: DETSLimit / 4 * 3, DETSCritBytes: DETSLimit / 10 * 9, LargeTableByte: 512 << 20}
}

// nodeRaw is what one node answered.
type nodeRaw struct {
	name     string
	status   string
	err      error
	conn     *erldist.Conn
	sys      map[term.Atom]term.Term // mnesia:system_info(all)
	otp      string
	erts     string
	wordSize int
	product  Product
	tables   map[string]map[term.Atom]term.Term // table -> mnesia:table_info(T, all)
}

// Session holds the connections of one inspection; the repair commands reuse them.
type Session struct {
	opts   Options
	Target string
	raw    map[string]*nodeRaw
	connMu sync.RWMutex // Conn and SetConn, once the inspection is done
}

// Close ends every connection.
func (s *Session) Close() {
	for _, r := range s.raw {
		if r.conn != nil {
			r.conn.Close()
		}
	}
}

// Conn returns the connection to a running node, or nil.
func (s *Session) Conn(node string) *erldist.Conn {
	s.connMu.RLock()
	defer s.connMu.RUnlock()
	if r, ok := s.raw[node]; ok {
		return r.conn
	}
	return nil
}

// SetConn replaces the connection to a node (the old one was lost).
func (s *Session) SetConn(node string, c *erldist.Conn) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if r, ok := s.raw[node]; ok {
		r.conn = c
		return
	}
	s.raw[node] = &nodeRaw{name: node, conn: c}
}

// Inspect connects to target, then to every other running db node, and
// returns the merged snapshot. The session stays open for follow-up calls.
func Inspect(ctx context.Context, opts Options, target string) (*Snapshot, *Session, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = 3 * time.Second
	}
	if opts.Params == (InspectParams{}) {
		opts.Params = DefaultParams()
	}
	start := time.Now()
	s := &Session{opts: opts, Target: target, raw: map[string]*nodeRaw{}}
	conn, err := opts.Client.Dial(ctx, target)
	if err != nil {
		return nil, nil, err
	}
	first := &nodeRaw{name: target, conn: conn}
	s.raw[target] = first
	if err := s.collect(ctx, first); err != nil {
		s.Close()
		return nil, nil, err
	}
	if first.status != NodeRunning {
		s.Close()
		return nil, nil, &erldist.Error{Kind: erldist.KindOther, Node: target,
			Msg:  fmt.Sprintf("Mnesia is not running on %s", target),
			Hint: "inspect a node where Mnesia runs; on this one, start the application (ejabberdctl start, or mnesia:start())"}
	}
	// Every other db node: connect to the running ones, probe the others.
	var wg sync.WaitGroup
	var mu sync.Mutex
	running := setOf(atoms(first.sys["running_db_nodes"]))
	for _, n := range atoms(first.sys["db_nodes"]) {
		if n == target {
			continue
		}
		r := &nodeRaw{name: n}
		s.raw[n] = r
		wg.Add(1)
		go func(r *nodeRaw, isRunning bool) {
			defer wg.Done()
			dctx := ctx
			if !isRunning {
				var cancel context.CancelFunc
				dctx, cancel = context.WithTimeout(ctx, opts.ProbeTimeout)
				defer cancel()
			}
			c, err := opts.Client.Dial(dctx, r.name)
			mu.Lock()
			r.conn, r.err = c, err
			mu.Unlock()
			switch {
			case err != nil && isRunning:
				r.status = NodeUnreachable
			case err != nil:
				r.status = NodeStopped
			default:
				if cerr := s.collect(ctx, r); cerr != nil {
					r.status, r.err = NodeUnreachable, cerr
				}
			}
		}(r, running[n])
	}
	wg.Wait()
	snap := s.build()
	snap.TakenAt = start.UTC()
	snap.ElapsedMS = time.Since(start).Milliseconds()
	return snap, s, nil
}

// collect asks one node everything, many calls in flight.
func (s *Session) collect(ctx context.Context, r *nodeRaw) error {
	c := r.conn
	isRunning, err := c.Call(ctx, "mnesia", "system_info", term.Atom("is_running"))
	if err != nil {
		return err
	}
	calls := []struct {
		m, f term.Atom
		args []term.Term
		set  func(term.Term)
	}{
		{"erlang", "system_info", []term.Term{term.Atom("otp_release")}, func(t term.Term) { r.otp, _ = term.Text(t) }},
		{"erlang", "system_info", []term.Term{term.Atom("version")}, func(t term.Term) { r.erts, _ = term.Text(t) }},
		{"erlang", "system_info", []term.Term{term.Atom("wordsize")}, func(t term.Term) { n, _ := term.Int(t); r.wordSize = int(n) }},
		{"application", "which_applications", nil, func(t term.Term) { r.product = detectProduct(t) }},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(calls))
	for i, cl := range calls {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res, err := c.Call(ctx, cl.m, cl.f, cl.args...)
			if err != nil {
				errs[i] = err
				return
			}
			cl.set(res)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if !term.IsAtom(isRunning, "yes") {
		r.status = NodeMnesiaStopped
		return nil
	}
	sys, err := c.Call(ctx, "mnesia", "system_info", term.Atom("all"))
	if err != nil {
		return err
	}
	r.sys = proplist(sys)
	r.status = NodeRunning
	tables := atoms(r.sys["tables"])
	r.tables = make(map[string]map[term.Atom]term.Term, len(tables))
	var mu sync.Mutex
	sem := make(chan struct{}, s.opts.Concurrency)
	var firstErr error
	for _, t := range tables {
		wg.Add(1)
		sem <- struct{}{}
		go func(t string) {
			defer wg.Done()
			defer func() { <-sem }()
			info, err := c.Call(ctx, "mnesia", "table_info", term.Atom(t), term.Atom("all"))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil && erldist.KindOf(err) != erldist.KindBadRPC {
					firstErr = err
				}
				return // a table deleted meanwhile: leave it out
			}
			r.tables[t] = proplist(info)
		}(t)
	}
	wg.Wait()
	return firstErr
}

func detectProduct(apps term.Term) Product {
	elems, _ := term.Elems(apps)
	found := map[string]string{}
	for _, e := range elems {
		if tu, ok := e.(term.Tuple); ok && len(tu) == 3 {
			name, _ := tu[0].(term.Atom)
			vsn, _ := term.Text(tu[2])
			found[string(name)] = vsn
		}
	}
	for _, p := range []struct{ app, name string }{
		{"ejabberd", "ejabberd"}, {"mongooseim", "mongooseim"}, {"rabbit", "rabbitmq"},
	} {
		if v, ok := found[p.app]; ok {
			return Product{Name: p.name, Version: v}
		}
	}
	return Product{Name: "mnesia", Version: found["mnesia"]}
}

// proplist turns [{Key, Value}] into a map (later keys do not override earlier ones).
func proplist(t term.Term) map[term.Atom]term.Term {
	m := map[term.Atom]term.Term{}
	elems, _ := term.Elems(t)
	for _, e := range elems {
		if tu, ok := e.(term.Tuple); ok && len(tu) == 2 {
			if k, ok := tu[0].(term.Atom); ok {
				if _, dup := m[k]; !dup {
					m[k] = tu[1]
				}
			}
		}
	}
	return m
}

// atoms reads a list of atoms, sorted.
func atoms(t term.Term) []string {
	out := atoms0(t)
	sort.Strings(out)
	return out
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func text(t term.Term) string {
	if s, ok := term.Text(t); ok {
		return s
	}
	if t == nil {
		return ""
	}
	return term.Format(t)
}
