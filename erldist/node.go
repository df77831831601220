package erldist

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Node is a named distribution node that accepts connections as well as
// making them: what a cluster member needs. It listens on a port,
// registers with epmd (or, when no epmd answers on the host, serves epmd
// itself), answers handshakes with its cookie, and keeps at most one
// connection per peer. Erlang nodes see it as a hidden node: net_adm:ping
// answers pong and rpc:call reaches the functions it serves.
type Node struct {
	Name   string // alive@host
	Cookie string
	// ListenAddr is the address to listen on ("" = every interface; port 0
	// picks a free one).
	ListenAddr string
	EPMDPort   int // DefaultEPMDPort when 0
	// ServeEPMD lets the node start its own port mapper when none answers.
	ServeEPMD bool
	Timeouts  Timeouts
	Logger    *slog.Logger
	// Handlers serve registered names on every connection.
	Handlers map[term.Atom]Handler
	// RPC are the functions ("module:function/arity") Erlang nodes may
	// call with rpc:call or erpc (and the rex server of older nodes).
	RPC map[string]RPCFunc
	// Up and Down report peers as they connect and as their last
	// connection ends (a replaced connection is not a down).
	Up   func(peer term.Atom, c *Conn)
	Down func(peer term.Atom, err error)

	ln       net.Listener
	reg      *Registration
	epmd     *EPMDServer
	creation uint32
	pids     atomic.Uint32

	mu      sync.Mutex
	conns   map[term.Atom]*Conn
	retired map[*Conn]bool
	dialing map[term.Atom]chan struct{}
	closed  bool
	wg      sync.WaitGroup
}

// NodeFlags is what a Node offers: the client's set (hidden, no atom
// cache, no fragments), and SPAWN when it serves RPC.
const NodeFlags = ClientFlags

func (n *Node) flags() Flags {
	if n.RPC != nil {
		return NodeFlags | FlagSpawn
	}
	return NodeFlags
}

// Start listens, registers with epmd and accepts connections until Close.
func (n *Node) Start(ctx context.Context) error {
	alive, host, err := SplitNode(n.Name)
	if err != nil {
		return err
	}
	if n.Logger == nil {
		n.Logger = slog.New(slog.DiscardHandler)
	}
	if n.Timeouts == (Timeouts{}) {
		n.Timeouts = DefaultTimeouts()
	}
	if n.EPMDPort == 0 {
		n.EPMDPort = DefaultEPMDPort
	}
	n.conns, n.dialing = map[term.Atom]*Conn{}, map[term.Atom]chan struct{}{}
	addr := n.ListenAddr
	if addr == "" {
		addr = ":0"
	}
	if n.ln, err = net.Listen("tcp", addr); err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	port := n.ln.Addr().(*net.TCPAddr).Port
	req := Alive2Req{Port: uint16(port), Hidden: true, HighestVersion: 6, LowestVersion: 5, Name: alive}
	epmd := EPMD{Host: "127.0.0.1", Port: n.EPMDPort}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n.reg, err = epmd.Register(rctx, req)
	if err != nil && n.ServeEPMD && KindOf(err) == KindNoEPMD {
		n.Logger.Info("no epmd on this host: serving the port mapper ourselves", "port", n.EPMDPort)
		if n.epmd, err = ServeEPMD(net.JoinHostPort("", strconv.Itoa(n.EPMDPort)), n.Logger); err == nil {
			n.reg, err = epmd.Register(rctx, req)
		}
	}
	if err != nil {
		n.ln.Close()
		if n.epmd != nil {
			n.epmd.Close()
		}
		return fmt.Errorf("registering %s with epmd: %w", n.Name, err)
	}
	n.creation = n.reg.Creation
	n.Logger.Info("node up", "name", n.Name, "port", port, "host", host)
	n.wg.Add(1)
	go n.acceptLoop()
	return nil
}

// Port is the distribution port.
func (n *Node) Port() int { return n.ln.Addr().(*net.TCPAddr).Port }

// Close stops accepting, closes every connection and unregisters.
func (n *Node) Close() error {
	n.mu.Lock()
	n.closed = true
	conns := make([]*Conn, 0, len(n.conns))
	for _, c := range n.conns {
		conns = append(conns, c)
	}
	for c := range n.retired {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	n.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	n.wg.Wait()
	n.reg.Close()
	if n.epmd != nil {
		n.epmd.Close()
	}
	return nil
}

// Conn returns the live connection to peer, or nil.
func (n *Node) Conn(peer term.Atom) *Conn {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.conns[peer]; c != nil && c.Err() == nil {
		return c
	}
	return nil
}

// Peers lists the nodes connected now.
func (n *Node) Peers() []term.Atom {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []term.Atom
	for p, c := range n.conns {
		if c.Err() == nil {
			out = append(out, p)
		}
	}
	return out
}

// Connect returns the connection to peer, dialing it when there is none.
func (n *Node) Connect(ctx context.Context, peer string) (*Conn, error) {
	p := term.Atom(peer)
	for {
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			return nil, ErrClosed
		}
		if c := n.conns[p]; c != nil && c.Err() == nil {
			n.mu.Unlock()
			return c, nil
		}
		wait, busy := n.dialing[p]
		if !busy {
			wait = make(chan struct{})
			n.dialing[p] = wait
		}
		n.mu.Unlock()
		if busy {
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		c, err := n.dial(ctx, peer)
		n.mu.Lock()
		delete(n.dialing, p)
		n.mu.Unlock()
		close(wait)
		if err != nil {
			// The peer may have connected to us meanwhile (it says nok
			// when its connection won the race).
			for i := 0; i < 20 && KindOf(err) == KindSimultaneous && n.Conn(p) == nil; i++ {
				time.Sleep(50 * time.Millisecond)
			}
			if c := n.Conn(p); c != nil {
				return c, nil
			}
			return nil, err
		}
		return c, nil
	}
}

func (n *Node) dial(ctx context.Context, peer string) (*Conn, error) {
	cl := &Client{Name: n.Name, Cookie: n.Cookie, EPMDPort: n.EPMDPort, Timeouts: n.Timeouts, Logger: n.Logger,
		DialTimeout: 5 * time.Second, pid: n.self, replace: true, flags: n.flags(), serve: n.serve, hold: true}
	cl.init()
	cl.creation = n.creation
	c, err := cl.Dial(ctx, peer)
	if err != nil {
		return nil, err
	}
	return n.adopt(c, true, false)
}

// serve installs the node's handlers on a connection, before its reader
// starts.
func (n *Node) serve(c *Conn) {
	for name, h := range n.Handlers {
		c.Register(name, h)
	}
	if n.RPC != nil {
		c.ServeRPC(n.RPC)
		c.Register("rex", RexHandler(n.RPC))
	}
}

// retire ends a connection that lost a race to another to the same peer.
// It stays open a while: what was sent on it before both ends settled on
// the other (a request, its reply, an acknowledgement) still arrives.
func (n *Node) retire(c *Conn) {
	n.mu.Lock()
	if n.retired == nil {
		n.retired = map[*Conn]bool{}
	}
	n.retired[c] = true
	n.mu.Unlock()
	time.AfterFunc(RetireDelay, func() {
		c.Close()
		n.mu.Lock()
		delete(n.retired, c)
		n.mu.Unlock()
	})
}

// RetireDelay is how long a connection that lost a race stays open.
var RetireDelay = 10 * time.Second

// self makes the pid a new connection's messages come from.
func (n *Node) self() term.Pid {
	return term.Pid{Node: term.Atom(n.Name), ID: n.pids.Add(1), Creation: n.creation}
}

func (n *Node) acceptLoop() {
	defer n.wg.Done()
	for {
		nc, err := n.ln.Accept()
		if err != nil {
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.accept(nc); err != nil {
				n.Logger.Debug("incoming connection refused", "remote", nc.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

func (n *Node) accept(nc net.Conn) error {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	r := bufio.NewReaderSize(nc, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	replace := false
	hs := serverHandshake{OurName: n.Name, Cookie: n.Cookie, Creation: n.creation, Flags: n.flags(),
		Status: func(peer string, creation uint32) string {
			old := n.Conn(term.Atom(peer))
			switch {
			case old == nil:
				return "ok"
			case creation != 0 && creation != old.peerCre:
				// The peer restarted while we hold its old connection:
				// Erlang says alive, and the peer answers whether the new
				// connection takes over.
				replace = true
				return "alive"
			default:
				// The same peer dialing while connected: a race the one
				// connection wins.
				return "nok"
			}
		}}
	res, err := hs.run(ctx, nc, r)
	if err != nil {
		nc.Close()
		return err
	}
	c := newConn(nc, r, res, term.Atom(n.Name), n.creation, n.self(), n.Timeouts, n.Logger, n.serve)
	_, err = n.adopt(c, false, replace)
	return err
}

// adopt makes c the connection to its peer. When one is up already, the
// one started by the node whose name sorts first is kept (both ends decide
// alike), and the other is closed without a down.
func (n *Node) adopt(c *Conn, outgoing, replace bool) (*Conn, error) {
	peer := c.Peer()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		c.Close()
		return nil, ErrClosed
	}
	old := n.conns[peer]
	if old != nil && old.Err() == nil {
		// Keep the connection initiated by the smaller name.
		weInitiatedNew := outgoing
		keepNew := replace || (weInitiatedNew && n.Name < string(peer)) || (!weInitiatedNew && string(peer) < n.Name)
		if !keepNew {
			n.mu.Unlock()
			c.start() // it stays open a while: what the peer sent on it is delivered
			n.retire(c)
			return old, nil
		}
		n.conns[peer] = c
		n.mu.Unlock()
		c.start()
		n.retire(old)
	} else {
		n.conns[peer] = c
		n.mu.Unlock()
		c.start()
	}
	n.Logger.Debug("peer connected", "peer", peer, "outgoing", outgoing)
	if n.Up != nil {
		n.Up(peer, c)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		<-c.Done()
		n.mu.Lock()
		current := n.conns[peer] == c
		if current {
			delete(n.conns, peer)
		}
		n.mu.Unlock()
		if current && n.Down != nil {
			n.Down(peer, c.Err())
		}
	}()
	return c, nil
}
