package cetsnode

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// serverName is the registered name every node's tables answer under.
const serverName = term.Atom("mimmigrate_cets")

// Cluster is one node of the cluster: its distribution node, its tables.
type Cluster struct {
	Node *erldist.Node
	Log  *slog.Logger
	// JoinLock serializes joins across the cluster (a PostgreSQL advisory
	// lock); nil: within this process only.
	JoinLock func(ctx context.Context) (unlock func(), err error)
	// OnDown is told of every peer lost (discovery re-checks at once).
	OnDown func(peer term.Atom)

	self    term.Atom
	mu      sync.Mutex
	tables  map[term.Atom]*Table
	waiters map[string]chan term.Term
	refs    atomic.Uint64
	joinMu  sync.Mutex
	left    atomic.Bool
}

// New makes the cluster side of a node. Call before node.Start: it installs
// its handler and down callback on the node.
func New(node *erldist.Node, log *slog.Logger) *Cluster {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{Node: node, Log: log, self: term.Atom(node.Name), tables: map[term.Atom]*Table{}, waiters: map[string]chan term.Term{}}
	if node.Handlers == nil {
		node.Handlers = map[term.Atom]erldist.Handler{}
	}
	node.Handlers[serverName] = c.handle
	prevDown := node.Down
	node.Down = func(peer term.Atom, err error) {
		if prevDown != nil {
			prevDown(peer, err)
		}
		c.nodeDown(peer, err)
	}
	return c
}

// Self is this node's name.
func (c *Cluster) Self() term.Atom { return c.self }

// Table creates (or returns) a replicated table.
func (c *Cluster) Table(name string, opt TableOptions) *Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tables[term.Atom(name)]; ok {
		return t
	}
	t := &Table{name: term.Atom(name), c: c, st: newStore(opt), ev: make(chan func(), 4096),
		members: map[term.Atom]bool{}, joinRef: newRef(), pending: map[uint64]*pending{}, paused: map[string]term.Atom{},
	}
	t.publish()
	c.tables[t.name] = t
	go t.loop()
	return t
}

// Tables lists the tables, sorted by name.
func (c *Cluster) Tables() []*Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Table, 0, len(c.tables))
	for _, t := range c.tables {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (c *Cluster) table(name term.Term) *Table {
	a, _ := name.(term.Atom)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tables[a]
}

func newRef() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Messages between nodes, to the registered name mimmigrate_cets:
//
//	{op, Table, Seq, JoinRef, Stamp, Writer, {insert, Recs} | {delete, Keys} | {delete_object, Recs}}
//	{ack, Table, Seq}
//	{check, Table, JoinRef} / {check_failed, Table}
//	{req, Ref, Body} answered by {rep, Ref, Result}, Body one of
//	    {info, Table} {connect, Nodes} {pause, Table, PauseRef} {dump, Table}
//	    {install, Table, PauseRef, JoinRef, Nodes, Entries} {unpause, Table, PauseRef}
//	    {insert_new, Table, Stamp, Rec} {tables}

func (c *Cluster) handle(conn *erldist.Conn, _ term.Pid, msg term.Term) {
	tu, ok := msg.(term.Tuple)
	if !ok || len(tu) < 2 {
		return
	}
	from := conn.Peer()
	kind, _ := tu[0].(term.Atom)
	switch kind {
	case "op", "ack", "check", "check_failed":
		if t := c.table(tu[1]); t != nil {
			t.post(func() { t.remote(from, kind, tu) })
		}
	case "req":
		if len(tu) != 3 {
			return
		}
		ref := tu[1]
		reply := func(res term.Term) {
			if err := conn.SendNamed(serverName, term.Tuple{term.Atom("rep"), ref, res}); err != nil {
				c.Log.Debug("reply lost", "to", from, "err", err)
			}
		}
		body, _ := tu[2].(term.Tuple)
		c.request(from, body, reply)
	case "rep":
		if len(tu) != 3 {
			return
		}
		key := term.Format(tu[1])
		c.mu.Lock()
		ch := c.waiters[key]
		delete(c.waiters, key)
		c.mu.Unlock()
		if ch != nil {
			ch <- tu[2]
		}
	}
}

// request serves a {req, …} body; reply may be called from any goroutine.
func (c *Cluster) request(from term.Atom, body term.Tuple, reply func(term.Term)) {
	if len(body) == 0 {
		reply(term.Tuple{term.Atom("error"), term.Atom("badarg")})
		return
	}
	kind, _ := body[0].(term.Atom)
	switch kind {
	case "connect":
		nodes, _ := term.Elems(body[1])
		go func() {
			for _, n := range nodes {
				a, _ := n.(term.Atom)
				if a == c.self || a == "" {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.Node.Connect(ctx, string(a))
				cancel()
				if err != nil {
					reply(term.Tuple{term.Atom("error"), a})
					return
				}
			}
			reply(term.Atom("ok"))
		}()
	case "remove_node":
		node, _ := body[1].(term.Atom)
		for _, t := range c.Tables() {
			t.post(func() { t.down(node) })
		}
		reply(term.Atom("ok"))
	case "tables":
		var out term.List
		for _, t := range c.Tables() {
			out = append(out, term.Tuple{t.name, nodeList(append([]term.Atom{c.self}, t.Nodes()...))})
		}
		reply(out)
	default:
		if len(body) < 2 {
			reply(term.Tuple{term.Atom("error"), term.Atom("badarg")})
			return
		}
		if c.left.Load() && (kind == "info" || kind == "pause" || kind == "install" || kind == "install_chunk") {
			reply(term.Tuple{term.Atom("error"), term.Atom("left")})
			return
		}
		t := c.table(body[1])
		if t == nil {
			reply(term.Tuple{term.Atom("error"), term.Atom("no_table")})
			return
		}
		t.post(func() { t.request(from, kind, body, reply) })
	}
}

// call sends a request to node (or serves it here) and waits for the reply.
func (c *Cluster) call(ctx context.Context, node term.Atom, body term.Tuple) (term.Term, error) {
	ch := make(chan term.Term, 1)
	if node == c.self {
		c.request(c.self, body, func(res term.Term) { ch <- res })
	} else {
		conn := c.Node.Conn(node)
		if conn == nil {
			return nil, fmt.Errorf("%s is not connected", node)
		}
		ref := term.Tuple{c.self, int64(c.refs.Add(1))}
		key := term.Format(ref)
		c.mu.Lock()
		c.waiters[key] = ch
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			delete(c.waiters, key)
			c.mu.Unlock()
		}()
		if err := conn.SendNamed(serverName, term.Tuple{term.Atom("req"), ref, body}); err != nil {
			return nil, err
		}
		select {
		case res := <-ch:
			return res, nil
		case <-conn.Done():
			return nil, fmt.Errorf("%s went down", node)
		case <-ctx.Done():
			return nil, fmt.Errorf("%s did not answer %s: %w", node, body[0], ctx.Err())
		}
	}
	select {
	case res := <-ch:
		return res, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sendEncoded delivers an encoded one-way message to a peer.
func (c *Cluster) sendEncoded(node term.Atom, msg []byte) bool {
	conn := c.Node.Conn(node)
	if conn == nil {
		return false
	}
	return conn.SendNamedEncoded(serverName, msg) == nil
}

// send delivers a one-way message to a peer; false when it is not connected.
func (c *Cluster) send(node term.Atom, msg term.Tuple) bool {
	conn := c.Node.Conn(node)
	if conn == nil {
		return false
	}
	return conn.SendNamed(serverName, msg) == nil
}

func (c *Cluster) nodeDown(peer term.Atom, err error) {
	c.Log.Info("node down", "peer", peer, "reason", errString(err))
	for _, t := range c.Tables() {
		t.post(func() { t.down(peer) })
	}
	if c.OnDown != nil {
		c.OnDown(peer)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func nodeList(nodes []term.Atom) term.List {
	out := make(term.List, len(nodes))
	for i, n := range nodes {
		out[i] = n
	}
	return out
}

// ErrAlreadyJoined: the node is in this node's segment of every table.
var ErrAlreadyJoined = errors.New("already joined")

// Join merges this node's segment of every table with node's: the
// protocol of cets_join (pause both segments, dump, merge, install under a
// new join reference, resume). Joins are serialized by JoinLock.
func (c *Cluster) Join(ctx context.Context, node string) error {
	peer := term.Atom(node)
	if peer == c.self {
		return errors.New("a node cannot join itself")
	}
	if c.left.Load() {
		return ErrLeft
	}
	if _, err := c.Node.Connect(ctx, node); err != nil {
		return err
	}
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	if c.JoinLock != nil {
		unlock, err := c.JoinLock(ctx)
		if err != nil {
			return fmt.Errorf("taking the cluster's join lock: %w", err)
		}
		defer unlock()
	}
	joined := 0
	for _, t := range c.Tables() {
		err := c.joinTable(ctx, t, peer)
		switch {
		case errors.Is(err, ErrAlreadyJoined):
			joined++
		case err != nil:
			return fmt.Errorf("table %s: %w", t.name, err)
		}
	}
	if joined == len(c.Tables()) && joined > 0 {
		return ErrAlreadyJoined
	}
	return nil
}

func (c *Cluster) joinTable(ctx context.Context, t *Table, peer term.Atom) error {
	start := time.Now()
	// A member that no longer counts us in its segment (it dropped us while
	// we were frozen or cut off, and we missed its going) is stale: drop it
	// here, with the records it owned (the join brings back its current
	// ones), so that the join can take both back.
	for _, m := range t.Nodes() {
		res, err := c.call(ctx, m, term.Tuple{term.Atom("info"), t.name})
		if err != nil {
			continue
		}
		if info, ok := res.(term.Tuple); ok && len(info) == 2 {
			l, _ := term.Elems(info[0])
			found := false
			for _, n := range l {
				found = found || n == term.Term(c.self)
			}
			if !found {
				c.Log.Warn("a member no longer counts us in its segment: dropping it", "table", t.name, "member", m)
				done := make(chan struct{})
				t.post(func() { t.down(m); close(done) })
				<-done
			}
		}
	}
	ours := append([]term.Atom{c.self}, t.Nodes()...)
	for _, n := range ours {
		if n == peer {
			return ErrAlreadyJoined
		}
	}
	res, err := c.call(ctx, peer, term.Tuple{term.Atom("info"), t.name})
	if err != nil {
		return err
	}
	info, ok := res.(term.Tuple)
	if !ok || len(info) != 2 {
		return fmt.Errorf("%s answered info with %s", peer, term.Format(res))
	}
	var theirs []term.Atom
	l, _ := term.Elems(info[0])
	for _, n := range l {
		if a, ok := n.(term.Atom); ok {
			theirs = append(theirs, a)
		}
	}
	for _, a := range theirs {
		for _, b := range ours {
			if a == b {
				return fmt.Errorf("the segments overlap on %s: a partial join is in the way (it clears when the nodes drop each other)", a)
			}
		}
	}
	all := append(append([]term.Atom{}, ours...), theirs...)
	// Every node must reach every node of the other segment.
	for _, n := range all {
		other := ours // a node of their segment reaches ours
		for _, o := range ours {
			if o == n {
				other = theirs
				break
			}
		}
		res, err := c.call(ctx, n, term.Tuple{term.Atom("connect"), nodeList(other)})
		if err != nil {
			return err
		}
		if !term.IsAtom(res, "ok") {
			return fmt.Errorf("%s cannot reach %s", n, term.Format(res))
		}
	}
	pauseRef := newRef()
	var pausedOn []term.Atom
	unpause := func() {
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, n := range pausedOn {
			if _, err := c.call(uctx, n, term.Tuple{term.Atom("unpause"), t.name, term.Binary(pauseRef)}); err != nil {
				c.Log.Warn("unpause failed (its pause ends when we go down or it loses us)", "node", n, "err", err)
			}
		}
	}
	defer unpause()
	for _, n := range all {
		res, err := c.call(ctx, n, term.Tuple{term.Atom("pause"), t.name, term.Binary(pauseRef)})
		if err != nil {
			return err
		}
		if !term.IsAtom(res, "ok") {
			return fmt.Errorf("%s refused to pause: %s", n, term.Format(res))
		}
		pausedOn = append(pausedOn, n)
	}
	// Each side streams its records, in chunks, to every node of the other
	// side, which merges them in with the table's conflict handler
	// (deterministic, so both sides agree); then the new join reference.
	joinRef := newRef()
	moved := 0
	type chunk struct {
		res term.Term
		err error
	}
	for _, pair := range [][2][]term.Atom{{{c.self}, theirs}, {{peer}, ours}} {
		from, to := pair[0][0], pair[1]
		// The next chunk is on its way while this one is merged.
		fetch := func(i int) chan chunk {
			ch := make(chan chunk, 1)
			go func() {
				res, err := c.call(ctx, from, term.Tuple{term.Atom("dump"), t.name, term.Binary(pauseRef), int64(i)})
				ch <- chunk{res, err}
			}()
			return ch
		}
		next := fetch(0)
		for i := 0; ; i++ {
			got := <-next
			if got.err != nil {
				return got.err
			}
			tu, ok := got.res.(term.Tuple)
			if !ok || len(tu) != 3 {
				return fmt.Errorf("%s's dump: %s", from, term.Format(got.res))
			}
			more := term.IsAtom(tu[1], "true")
			if more {
				next = fetch(i + 1)
			}
			entries, _ := term.Elems(tu[0])
			moved += len(entries)
			for _, n := range to {
				res, err := c.call(ctx, n, term.Tuple{term.Atom("install_chunk"), t.name, term.Binary(pauseRef), term.List(entries), tu[2]})
				if err != nil {
					return err
				}
				if !term.IsAtom(res, "ok") {
					return fmt.Errorf("%s refused records: %s", n, term.Format(res))
				}
			}
			if !more {
				break
			}
		}
	}
	for _, n := range all {
		res, err := c.call(ctx, n, term.Tuple{term.Atom("install"), t.name, term.Binary(pauseRef), term.Binary(joinRef), nodeList(all)})
		if err != nil {
			return err
		}
		if !term.IsAtom(res, "ok") {
			return fmt.Errorf("%s refused the join: %s", n, term.Format(res))
		}
	}
	c.Log.Info("joined", "table", t.name, "with", peer, "nodes", len(all), "records_moved", moved, "ms", time.Since(start).Milliseconds())
	return nil
}

func encodeEntries(es []Entry) term.List {
	out := make(term.List, len(es))
	for i, e := range es {
		out[i] = term.Tuple{e.Rec, e.Stamp, e.Writer}
	}
	return out
}

func decodeEntries(t term.Term) ([]Entry, error) {
	l, ok := term.Elems(t)
	if !ok {
		return nil, fmt.Errorf("not a list: %s", term.Format(t))
	}
	out := make([]Entry, 0, len(l))
	for _, e := range l {
		tu, ok := e.(term.Tuple)
		if !ok || len(tu) != 3 {
			return nil, fmt.Errorf("bad entry %s", term.Format(e))
		}
		rec, ok1 := tu[0].(term.Tuple)
		stamp, ok2 := term.Int(tu[1])
		w, ok3 := tu[2].(term.Atom)
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("bad entry %s", term.Format(e))
		}
		out = append(out, Entry{Rec: rec, Stamp: stamp, Writer: w})
	}
	return out, nil
}
