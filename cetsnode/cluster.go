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

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// JoinLocker serializes joins across the cluster (a PostgreSQL advisory
// lock in production).
type JoinLocker interface {
	JoinLock(ctx context.Context) (unlock func(), err error)
}

// ClusterOptions configure a Cluster.
type ClusterOptions struct {
	Log *slog.Logger
	// JoinLock serializes joins across the cluster; nil: within this
	// process only.
	JoinLock JoinLocker
	// OnPeerDown is told of every peer lost (discovery checks at once).
	OnPeerDown func(peer term.Atom)
	// CallTimeout bounds a request to a peer whose context has no
	// deadline (default 30 s).
	CallTimeout time.Duration
}

// Cluster is this node's side of the cluster: its tables and the
// requests between nodes. It is the Receiver of its Transport.
type Cluster struct {
	t   Transport
	log *slog.Logger
	opt ClusterOptions

	self    term.Atom
	mu      sync.Mutex
	tables  map[term.Atom]*Table
	waiters map[string]*waiter
	refs    atomic.Uint64
	joinMu  sync.Mutex
	left    atomic.Bool
}

// waiter is a request waiting for its reply from a peer.
type waiter struct {
	peer  term.Atom
	reply chan term.Term
	down  chan struct{} // closed when the peer goes down
}

// NewCluster makes a cluster on a transport; set its transport with
// SetTransport before the first message arrives (the transport needs the
// cluster as its Receiver).
func NewCluster(opt ClusterOptions) *Cluster {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.CallTimeout <= 0 {
		opt.CallTimeout = DefaultConfig().CallTimeout
	}
	return &Cluster{log: opt.Log, opt: opt, tables: map[term.Atom]*Table{}, waiters: map[string]*waiter{}}
}

// SetTransport gives the cluster its transport.
func (c *Cluster) SetTransport(t Transport) {
	c.t = t
	c.self = t.Self()
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
	t := newTable(c, term.Atom(name), opt)
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

func (c *Cluster) table(name term.Atom) *Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tables[name]
}

func newRef() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Deliver implements Receiver: a message from a peer.
func (c *Cluster) Deliver(from term.Atom, raw term.Term) {
	msg, err := decodeMessage(raw)
	if err != nil {
		c.log.Warn("message dropped", "from", from, "err", err)
		return
	}
	switch m := msg.(type) {
	case opMsg:
		c.post(m.Table, func(t *Table) { t.remoteOp(from, m) })
	case ackMsg:
		c.post(m.Table, func(t *Table) { t.ackedUpTo(uint64(m.Seq), from) })
	case checkMsg:
		c.post(m.Table, func(t *Table) { t.check(from, m.JoinRef) })
	case checkFailedMsg:
		c.post(m.Table, func(t *Table) {
			if t.members[from] {
				t.drop(from)
			}
		})
	case reqMsg:
		c.request(from, m.Body, func(res term.Term) {
			if err := c.send(from, repMsg{Ref: m.Ref, Result: res}); err != nil {
				c.log.Debug("reply lost", "to", from, "err", err)
			}
		})
	case repMsg:
		key := term.Format(m.Ref)
		c.mu.Lock()
		w := c.waiters[key]
		delete(c.waiters, key)
		c.mu.Unlock()
		if w != nil {
			w.reply <- m.Result
		}
	}
}

// post runs f on a table's goroutine, if the table exists here.
func (c *Cluster) post(name term.Atom, f func(*Table)) {
	if t := c.table(name); t != nil {
		t.post(func() { f(t) })
	}
}

// PeerDown implements Receiver: a peer was lost. Its requests in flight
// fail, every table drops it and the records it owned.
func (c *Cluster) PeerDown(peer term.Atom, reason error) {
	c.log.Info("node down", "peer", peer, "reason", errString(reason))
	c.mu.Lock()
	for key, w := range c.waiters {
		if w.peer == peer {
			close(w.down)
			delete(c.waiters, key)
		}
	}
	c.mu.Unlock()
	for _, t := range c.Tables() {
		t.post(func() { t.down(peer) })
	}
	if c.opt.OnPeerDown != nil {
		c.opt.OnPeerDown(peer)
	}
}

// request serves a request; reply may be called from any goroutine.
func (c *Cluster) request(from term.Atom, body request, reply func(term.Term)) {
	switch r := body.(type) {
	case connectReq:
		go func() {
			for _, n := range r.Nodes {
				if n == c.self {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := c.t.Connect(ctx, n)
				cancel()
				if err != nil {
					reply(term.Tuple{term.Atom("error"), n})
					return
				}
			}
			reply(term.Atom("ok"))
		}()
	case removeNodeReq:
		for _, t := range c.Tables() {
			t.post(func() { t.down(r.Node) })
		}
		reply(term.Atom("ok"))
	case tablesReq:
		out := tablesReply{}
		for _, t := range c.Tables() {
			out[string(t.name)] = append([]term.Atom{c.self}, t.Nodes()...)
		}
		reply(out.encode())
	default:
		name := tableOf(body)
		if c.left.Load() {
			switch body.(type) {
			case infoReq, pauseReq, installReq, installChunkReq:
				reply(term.Tuple{term.Atom("error"), term.Atom("left")})
				return
			}
		}
		t := c.table(name)
		if t == nil {
			reply(term.Tuple{term.Atom("error"), term.Atom("no_table")})
			return
		}
		t.post(func() { t.request(from, body, reply) })
	}
}

// tableOf is the table a per-table request is about.
func tableOf(r request) term.Atom {
	switch r := r.(type) {
	case infoReq:
		return r.Table
	case pauseReq:
		return r.Table
	case dumpReq:
		return r.Table
	case installChunkReq:
		return r.Table
	case installReq:
		return r.Table
	case unpauseReq:
		return r.Table
	case insertNewReq:
		return r.Table
	}
	return ""
}

// call sends a request to node (or serves it here) and waits for the
// reply.
func (c *Cluster) call(ctx context.Context, node term.Atom, body request) (term.Term, error) {
	ch := make(chan term.Term, 1)
	if node == c.self {
		c.request(c.self, body, func(res term.Term) { ch <- res })
		select {
		case res := <-ch:
			return res, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opt.CallTimeout)
		defer cancel()
	}
	ref := term.Tuple{c.self, int64(c.refs.Add(1))}
	key := term.Format(ref)
	w := &waiter{peer: node, reply: ch, down: make(chan struct{})}
	c.mu.Lock()
	c.waiters[key] = w
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, key)
		c.mu.Unlock()
	}()
	if err := c.send(node, reqMsg{Ref: ref, Body: body}); err != nil {
		return nil, err
	}
	select {
	case res := <-ch:
		return res, nil
	case <-w.down:
		return nil, fmt.Errorf("%s went down", node)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s did not answer %s: %w", node, body.encode()[0], ctx.Err())
	}
}

// send delivers a one-way message to a peer.
func (c *Cluster) send(node term.Atom, m message) error {
	return c.t.Send(node, m.encode())
}

// sendEncoded delivers a message encoded once for every peer; false when
// the peer is not connected.
func (c *Cluster) sendEncoded(node term.Atom, msg []byte) bool {
	return c.t.SendEncoded(node, msg) == nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Errors of the cluster operations, with MongooseIM's codes where it has
// them.
var (
	ErrAlreadyJoined = errors.New("already_joined")
	ErrNotInCluster  = errors.New("not_in_cluster")
	ErrNodeIsAlive   = errors.New("node_is_alive")
	ErrLeft          = errors.New("left")
	ErrLeader        = errors.New("no leader answered insert_new")
)
