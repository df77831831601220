package erldist

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Timeouts of an established connection.
type Timeouts struct {
	// Tick is the longest the connection stays silent: when nothing has been
	// written for half of it, a tick is sent (Erlang's default net_ticktime of
	// 60 s expects one every 15 s).
	Tick time.Duration
	// Peer is how long we wait without reading anything before declaring the
	// peer dead. An idle Erlang node ticks every net_ticktime/4.
	Peer time.Duration
	// Write bounds one packet write.
	Write time.Duration
	// Call is the deadline of an RPC whose context has none.
	Call time.Duration
}

// DefaultTimeouts suits nodes running with Erlang's default net_ticktime.
func DefaultTimeouts() Timeouts {
	return Timeouts{Tick: 15 * time.Second, Peer: 2 * time.Minute, Write: 30 * time.Second, Call: time.Minute}
}

// Message is something the peer sent to one of our processes that is not an RPC reply.
type Message struct {
	From term.Pid // zero when the control message did not say
	To   term.Term
	Msg  term.Term
}

// Handler serves messages sent to a registered name. It runs on the
// connection's reader, so it must not wait for replies over the same connection.
type Handler func(c *Conn, from term.Pid, msg term.Term)

// Conn is an established distribution connection to one node.
type Conn struct {
	peer      term.Atom
	local     term.Atom
	creation  uint32
	flags     Flags
	peerFlags Flags
	peerCre   uint32 // the peer's creation: a restarted peer has another
	version   int
	enc       term.EncodeOptions
	self      term.Pid
	tm        Timeouts
	log       *slog.Logger

	nc net.Conn
	r  *bufio.Reader

	// Writes are coalesced: a sender appends its packet to wpending and,
	// unless another sender is already writing, writes everything pending.
	// Under load many packets leave in one system call; alone, a sender
	// writes its own packet at once.
	wmu       sync.Mutex
	wpending  []byte
	wspare    []byte
	wflushing bool
	lastWrite atomic.Int64

	refs    atomic.Uint32
	refSalt [2]uint32 // random words that make our refs unique across connections

	mu             sync.Mutex
	calls          map[string]chan term.Term
	monitors       map[string]chan term.Term // ours, on remote processes
	remoteMonitors map[string]term.Pid       // the peer's, on our processes
	links          map[term.Pid]bool
	unlinks        map[uint64]chan struct{}
	names          map[term.Atom]Handler
	rpc            map[string]RPCFunc // served to erpc (rpc:call)
	spawns         atomic.Uint32
	mailbox        chan Message
	routes         map[string]*route // messages tagged with a reference, by its key
	started        sync.Once

	done chan struct{}
	err  error // why the connection ended; set before done is closed
	once sync.Once
}

// newConn starts the connection's reader and ticker. serve, when not nil,
// installs handlers before the first packet is read (a message arriving at
// once must find them).
func newConn(nc net.Conn, r *bufio.Reader, hs handshakeResult, local term.Atom, creation uint32, self term.Pid, tm Timeouts, log *slog.Logger, serve func(*Conn)) *Conn {
	c := &Conn{
		peer: term.Atom(hs.PeerName), local: local, creation: creation,
		flags: hs.Flags, peerFlags: hs.PeerFlags, peerCre: hs.PeerCreation, version: hs.Version,
		enc:  term.EncodeOptions{Legacy: !hs.Flags.Has(FlagUTF8Atoms | FlagBigCreation)},
		self: self, tm: tm, log: log.With("node", hs.PeerName),
		nc: nc, r: r,
		calls:          map[string]chan term.Term{},
		monitors:       map[string]chan term.Term{},
		remoteMonitors: map[string]term.Pid{},
		links:          map[term.Pid]bool{},
		unlinks:        map[uint64]chan struct{}{},
		names:          map[term.Atom]Handler{"net_kernel": netKernel},
		mailbox:        make(chan Message, 256),
		routes:         map[string]*route{},
		done:           make(chan struct{}),
	}
	c.lastWrite.Store(time.Now().UnixNano())
	c.refSalt = [2]uint32{randomUint32(), randomUint32()}
	if serve != nil {
		serve(c)
	}
	return c
}

// start starts the connection's reader and ticker. A node starts them
// once the connection is registered as its peer's, so that a request
// arriving at once finds the connection its reply goes back on.
func (c *Conn) start() {
	c.started.Do(func() {
		go c.readLoop()
		go c.tickLoop()
	})
}

// Peer is the node at the other end.
func (c *Conn) Peer() term.Atom { return c.peer }

// Self is the pid our messages come from on this connection.
func (c *Conn) Self() term.Pid { return c.self }

// Flags are the negotiated distribution flags.
func (c *Conn) Flags() Flags { return c.flags }

// PeerFlags are the flags the peer offered.
func (c *Conn) PeerFlags() Flags { return c.peerFlags }

// Version is the handshake version used (5 or 6).
func (c *Conn) Version() int { return c.version }

// Hidden reports whether the connection is hidden: always, for this client.
func (c *Conn) Hidden() bool { return !c.flags.Has(FlagPublished) }

// Done is closed when the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended, or nil while it is up.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Mailbox delivers messages to our pid that are not RPC replies.
func (c *Conn) Mailbox() <-chan Message { return c.mailbox }

// Register serves a registered name on this connection (net_kernel is built in).
func (c *Conn) Register(name term.Atom, h Handler) {
	c.mu.Lock()
	c.names[name] = h
	c.mu.Unlock()
}

// ServeRPC serves these functions ("module:function/arity") to rpc:call
// and erpc from the peer. The connection must have been set up with the
// SPAWN flag (a Node does that when it serves RPC).
func (c *Conn) ServeRPC(funcs map[string]RPCFunc) {
	c.mu.Lock()
	c.rpc = funcs
	c.mu.Unlock()
}

// ErrClosed is the reason of a connection closed by Close.
var ErrClosed = errors.New("connection closed")

// Close ends the connection.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	return nil
}

func (c *Conn) fail(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		c.nc.Close()
		c.mu.Lock()
		for key, ch := range c.monitors {
			ch <- term.Atom("noconnection")
			delete(c.monitors, key)
		}
		c.mu.Unlock()
	})
}

func (c *Conn) lost(err error) error {
	if errors.Is(err, ErrClosed) {
		return err
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newError(KindConnectionLost, string(c.peer), "the node may have stopped or restarted", err,
		"connection to %s lost", c.peer)
}

func (c *Conn) readLoop() {
	for {
		if c.tm.Peer > 0 {
			c.nc.SetReadDeadline(time.Now().Add(c.tm.Peer))
		}
		p, err := readPacket(c.r)
		if err != nil {
			switch {
			case isTimeout(err):
				err = newError(KindConnectionLost, string(c.peer), "", nil,
					"%s sent nothing for %s (not even a tick)", c.peer, c.tm.Peer)
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
				err = newError(KindConnectionLost, string(c.peer), "the node may have stopped or restarted", nil,
					"%s closed the connection", c.peer)
			}
			c.fail(c.lost(err))
			return
		}
		if p == nil {
			continue // tick
		}
		ctl, msg, err := splitPacket(p)
		if err != nil {
			c.fail(newError(KindProtocol, string(c.peer), "", err, "bad packet from %s", c.peer))
			return
		}
		c.dispatch(ctl, msg)
	}
}

func (c *Conn) tickLoop() {
	half := c.tm.Tick / 2
	if half <= 0 {
		return
	}
	t := time.NewTicker(half / 2)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if time.Since(time.Unix(0, c.lastWrite.Load())) >= half {
				if err := c.writeRaw([]byte{0, 0, 0, 0}); err != nil {
					c.fail(c.lost(err))
					return
				}
			}
		}
	}
}

func (c *Conn) writeRaw(b []byte) error {
	return c.enqueue(func(dst []byte) ([]byte, error) { return append(dst, b...), nil })
}

// send writes one pass-through packet. A large message is encoded before
// taking the write lock, so that ticks and other senders are not held up
// while it is built.
func (c *Conn) send(control, msg term.Term) error {
	n := 0
	if big, ok := msg.(term.List); ok {
		n = len(big)
	} else if tu, ok := msg.(term.Tuple); ok {
		n = bigList(tu)
	}
	if n > 256 {
		// Sized up front (about a small record per element): growing a
		// buffer of megabytes step by step costs more than encoding it.
		pkt, err := appendPacket(make([]byte, 0, 256+n*128), control, msg, c.enc)
		if err != nil {
			return err
		}
		return c.enqueue(func(dst []byte) ([]byte, error) {
			if len(dst) == 0 {
				return pkt, nil
			}
			return append(dst, pkt...), nil
		})
	}
	return c.enqueue(func(dst []byte) ([]byte, error) { return appendPacket(dst, control, msg, c.enc) })
}

// bigList is the length of the longest list a tuple carries within two
// levels (a table dump inside a reply).
func bigList(tu term.Tuple) int {
	n := 0
	for _, e := range tu {
		switch v := e.(type) {
		case term.List:
			n = max(n, len(v))
		case term.Tuple:
			for _, f := range v {
				if l, ok := f.(term.List); ok {
					n = max(n, len(l))
				}
			}
		}
	}
	return n
}

// enqueue appends a packet with add and makes sure it gets written.
func (c *Conn) enqueue(add func([]byte) ([]byte, error)) error {
	c.wmu.Lock()
	select {
	case <-c.done:
		c.wmu.Unlock()
		return c.lost(c.err)
	default:
	}
	var err error
	if c.wpending, err = add(c.wpending); err != nil {
		c.wmu.Unlock()
		return err
	}
	if c.wflushing {
		c.wmu.Unlock()
		return nil // the sender already writing takes ours along
	}
	c.wflushing = true
	for len(c.wpending) > 0 {
		buf := c.wpending
		c.wpending = c.wspare[:0]
		c.wmu.Unlock()
		if c.tm.Write > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(c.tm.Write))
		}
		_, err = c.nc.Write(buf)
		c.lastWrite.Store(time.Now().UnixNano())
		c.wmu.Lock()
		// buf becomes the spare; a large one is let go, and then so is
		// the old spare, which is what senders append to now (kept, the
		// next write would go out of the buffer being appended to).
		if cap(buf) <= 1<<20 {
			c.wspare = buf[:0]
		} else {
			c.wspare = nil
		}
		if err != nil {
			c.wpending = nil
			break
		}
	}
	c.wflushing = false
	c.wmu.Unlock()
	if err != nil {
		err = c.lost(err)
		c.fail(err)
	}
	return err
}

// Send sends msg to a pid on the peer.
func (c *Conn) Send(to term.Pid, msg term.Term) error {
	if c.flags.Has(FlagSendSender) {
		return c.send(ctlSendSender(c.self, to), msg)
	}
	return c.send(ctlSend(to), msg)
}

// SendNamedEncoded sends to a registered name a message already encoded
// (term.Encode's output): a message sent to many peers is encoded once.
func (c *Conn) SendNamedEncoded(name term.Atom, msg []byte) error {
	if c.enc.Legacy {
		m, err := term.Decode(msg)
		if err != nil {
			return err
		}
		return c.SendNamed(name, m)
	}
	ctl := ctlRegSend(c.self, name)
	return c.enqueue(func(dst []byte) ([]byte, error) {
		start := len(dst)
		dst = append(dst, 0, 0, 0, 0, passThrough)
		dst, err := term.Append(dst, ctl, c.enc)
		if err != nil {
			return dst[:start], err
		}
		dst = append(dst, msg...)
		binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
		return dst, nil
	})
}

// SendNamed sends msg to a registered name on the peer.
func (c *Conn) SendNamed(name term.Atom, msg term.Term) error {
	return c.send(ctlRegSend(c.self, name), msg)
}

// MakeRef mints a reference of ours: a counter plus this connection's random
// words (no system call per reference).
func (c *Conn) MakeRef() term.Ref {
	return term.Ref{Node: c.local, Creation: c.creation, ID: []uint32{c.refs.Add(1), c.refSalt[0], c.refSalt[1]}}
}

// Monitor monitors a remote process (a pid or a registered name). The channel
// receives the exit reason once, when the process exits or the connection ends.
func (c *Conn) Monitor(target term.Term) (term.Ref, <-chan term.Term, error) {
	ref := c.MakeRef()
	ch := make(chan term.Term, 1)
	c.mu.Lock()
	c.monitors[ref.Key()] = ch
	c.mu.Unlock()
	if err := c.send(ctlMonitor(c.self, target, ref), nil); err != nil {
		c.mu.Lock()
		delete(c.monitors, ref.Key())
		c.mu.Unlock()
		return ref, nil, err
	}
	return ref, ch, nil
}

// Demonitor cancels a monitor.
func (c *Conn) Demonitor(target term.Term, ref term.Ref) error {
	c.mu.Lock()
	delete(c.monitors, ref.Key())
	c.mu.Unlock()
	return c.send(ctlDemonitor(c.self, target, ref), nil)
}

// Link links our pid with a remote pid.
func (c *Conn) Link(to term.Pid) error {
	c.mu.Lock()
	c.links[to] = true
	c.mu.Unlock()
	return c.send(ctlLink(c.self, to), nil)
}

// Unlink removes a link with the UNLINK_ID protocol and waits for the peer's ack.
func (c *Conn) Unlink(ctx context.Context, to term.Pid) error {
	id := uint64(c.refs.Add(1))
	ack := make(chan struct{})
	c.mu.Lock()
	delete(c.links, to)
	c.unlinks[id] = ack
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.unlinks, id)
		c.mu.Unlock()
	}()
	if err := c.send(ctlUnlinkID(id, c.self, to), nil); err != nil {
		return err
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return newError(KindTimeout, string(c.peer), "", ctx.Err(), "waiting for the unlink ack from %s", c.peer)
	case <-c.done:
		return c.lost(c.err)
	}
}

// route is where the messages tagged with one reference go.
type route struct {
	ch   chan term.Term
	gone chan struct{}
}

// Route delivers every message to our pid that is a tuple whose first
// element is ref to the channel returned (which holds up to capacity
// messages; more wait, and so hold up the connection's reader, until it
// is read), instead of to the mailbox. A protocol that tags its messages
// with a reference of its own (a stream of chunks under flow control)
// gets them this way. stop ends the route.
func (c *Conn) Route(ref term.Ref, capacity int) (msgs <-chan term.Term, stop func()) {
	r := &route{ch: make(chan term.Term, capacity), gone: make(chan struct{})}
	key := ref.Key()
	c.mu.Lock()
	c.routes[key] = r
	c.mu.Unlock()
	var once sync.Once
	return r.ch, func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.routes, key)
			c.mu.Unlock()
			close(r.gone)
		})
	}
}

// routed hands a message to the route of its tag, if there is one.
func (c *Conn) routed(msg term.Term) bool {
	tu, ok := msg.(term.Tuple)
	if !ok || len(tu) < 2 {
		return false
	}
	ref, ok := tu[0].(term.Ref)
	if !ok {
		return false
	}
	c.mu.Lock()
	r := c.routes[ref.Key()]
	c.mu.Unlock()
	if r == nil {
		return false
	}
	select {
	case r.ch <- msg:
	case <-r.gone:
	case <-c.done:
	}
	return true
}

// Linked reports whether a remote pid is linked to our pid.
func (c *Conn) Linked(p term.Pid) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.links[p]
}

// String describes the connection for logs.
func (c *Conn) String() string {
	return fmt.Sprintf("%s -> %s (v%d, hidden)", c.local, c.peer, c.version)
}
