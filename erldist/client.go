package erldist

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Client is mimmigrate's identity as a hidden node: the name, the cookie and
// the creation it dials with. One Client may hold connections to many nodes.
type Client struct {
	// Name is our node name. Empty: the stable names of DefaultClientNames.
	Name   string
	Cookie string
	// Version forces the handshake version (5 or 6). 0 picks it from epmd:
	// 6 when the node's highest version is 6 or more, else 5.
	Version int
	// EPMDPort is epmd's port on the node's host (DefaultEPMDPort when 0).
	EPMDPort int
	// DistPort, when set, skips epmd and connects to this distribution port.
	DistPort int
	// DialTimeout bounds epmd lookup, TCP connect and handshake together.
	DialTimeout time.Duration
	Timeouts    Timeouts
	Logger      *slog.Logger

	once     sync.Once
	creation uint32
	pids     atomic.Uint32
	// For a Node's own dials: its pids, and the answer to status alive
	// (true: a node that dials has no live connection to the peer, so the
	// one the peer holds is stale).
	pid     func() term.Pid
	replace bool
	flags   Flags       // ClientFlags when 0
	serve   func(*Conn) // installs a Node's handlers on a new connection
	hold    bool        // a Node starts the connection once it has registered it
}

func (cl *Client) init() {
	cl.once.Do(func() {
		// An unregistered node picks its own creation; 0 is reserved.
		for cl.creation < 4 {
			cl.creation = randomUint32()
		}
		if cl.Logger == nil {
			cl.Logger = slog.New(slog.DiscardHandler)
		}
		if cl.Timeouts == (Timeouts{}) {
			cl.Timeouts = DefaultTimeouts()
		}
		if cl.DialTimeout == 0 {
			cl.DialTimeout = 10 * time.Second
		}
	})
}

// Dial connects to node ("name@host") and completes the handshake.
func (cl *Client) Dial(ctx context.Context, node string) (*Conn, error) {
	cl.init()
	alive, host, err := SplitNode(node)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cl.DialTimeout)
	defer cancel()

	port, version := cl.DistPort, cl.Version
	if port == 0 {
		epmd := EPMD{Host: host, Port: cl.EPMDPort}
		info, found, err := epmd.PortPlease(ctx, alive)
		if err != nil {
			return nil, withNode(err, node)
		}
		if !found {
			return nil, cl.notRegistered(ctx, epmd, node, alive, host)
		}
		port = info.Port
		if version == 0 {
			version = 5
			if info.HighestVersion >= 6 {
				version = 6
			}
		}
	}
	if version == 0 {
		version = 6
	}
	names := []string{cl.Name}
	if cl.Name == "" {
		names = DefaultClientNames(ctx, host)
	}
	for i, name := range names {
		c, err := cl.dialAs(ctx, node, host, port, version, name)
		if KindOf(err) == KindNameInUse && i+1 < len(names) {
			cl.Logger.Debug("client name in use, trying the next", "name", name)
			continue
		}
		if KindOf(err) == KindNameInUse {
			e := err.(*Error)
			e.Hint = "other mimmigrate runs are connected under every client name, or their connections have not timed out yet (up to a minute): retry shortly or use another node name"
			e.Remedy = RemedyOwnName
		}
		return c, err
	}
	return nil, errors.New("unreachable")
}

func (cl *Client) dialAs(ctx context.Context, node, host string, port, version int, name string) (*Conn, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, classifyDial(err, node, addr, "the distribution port")
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlivePeriod(15 * time.Second)
	}
	r := bufio.NewReaderSize(nc, 64<<10)
	hs := clientHandshake{OurName: name, PeerName: node, Cookie: cl.Cookie, Creation: cl.creation,
		Flags: ClientFlags, Version: version, ReplaceIf: cl.replace}
	if cl.flags != 0 {
		hs.Flags = cl.flags
	}
	res, err := hs.run(ctx, nc, r)
	if err != nil {
		nc.Close()
		return nil, err
	}
	self := term.Pid{Node: term.Atom(name), ID: cl.pids.Add(1), Serial: 0, Creation: cl.creation}
	if cl.pid != nil {
		self = cl.pid()
	}
	c := newConn(nc, r, res, term.Atom(name), cl.creation, self, cl.Timeouts, cl.Logger, cl.serve)
	if !cl.hold {
		c.start()
	}
	cl.Logger.Debug("connected", "conn", c.String(), "flags", res.Flags.String())
	return c, nil
}

func (cl *Client) notRegistered(ctx context.Context, epmd EPMD, node, alive, host string) error {
	hint := "check the part of the node name before '@'"
	if names, err := epmd.Names(ctx); err == nil {
		var ns []string
		for _, n := range names {
			ns = append(ns, n.Name)
		}
		sort.Strings(ns)
		if len(ns) == 0 {
			hint = "no node at all is registered there: is the node running on " + host + "?"
		} else {
			hint = "the nodes registered there are: " + strings.Join(ns, ", ")
		}
	}
	return newError(KindNotRegistered, node, hint, nil,
		"no node named %q is registered with epmd on %s", alive, host)
}

func withNode(err error, node string) error {
	var e *Error
	if errors.As(err, &e) && e.Node == "" {
		e.Node = node
		e.Msg = "reaching " + node + ": " + e.Msg
	}
	return err
}
