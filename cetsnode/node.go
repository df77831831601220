package cetsnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// ProtocolVersion goes into the cluster name in the discovery store, so
// that nodes speaking different versions of the replication protocol
// never meet (as MongooseIM appends the CETS version).
const ProtocolVersion = "mimcets1"

// Node is a running cluster node: its distribution node, replicated
// tables (sessions, routes), discovery, and the functions it serves to
// rpc:call and to `mimmigrate cluster`.
type Node struct {
	cfg       Config
	dist      *erldist.Node
	Cluster   *Cluster
	Sessions  *Sessions
	Routes    *Routes
	Discovery *Discovery
	Log       *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// ConfigError is a configuration that cannot start a node.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// Start starts a node from its configuration: distribution listening (and
// registered with epmd, or serving epmd), tables created, discovery
// running. It runs until Close.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	_, host, err := erldist.SplitNode(cfg.Name)
	if err != nil {
		return nil, &ConfigError{Msg: fmt.Sprintf("%q is not a node name", cfg.Name)}
	}
	if cfg.Store == nil {
		return nil, &ConfigError{Msg: "no discovery store"}
	}
	def := DefaultConfig()
	if cfg.NetTickTime <= 0 {
		cfg.NetTickTime = def.NetTickTime
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = def.CallTimeout
	}
	if cfg.CheckInterval <= 0 || cfg.RegularInterval <= 0 || cfg.ExpireTime <= 0 {
		return nil, &ConfigError{Msg: "the discovery intervals and expire time must be positive"}
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = net.JoinHostPort(host, "0")
	}
	if cfg.Address == "" {
		cfg.Address = host
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger
	n := &Node{cfg: cfg, Log: log, done: make(chan struct{})}
	d := &Discovery{store: cfg.Store, cluster: cfg.ClusterName, address: cfg.Address, expire: cfg.ExpireTime,
		initial: cfg.CheckInterval, regular: cfg.RegularInterval, initialPhase: cfg.InitialPhase,
		afterError: min(time.Second, cfg.CheckInterval), kick: make(chan struct{}, 1), unavail: map[term.Atom]string{}}
	c := NewCluster(ClusterOptions{Log: log, JoinLock: d, OnPeerDown: func(peer term.Atom) {
		d.Kick()
		for _, svc := range cfg.Services {
			if w, ok := svc.(PeerWatcher); ok {
				go w.PeerDown(peer)
			}
		}
	}, CallTimeout: cfg.CallTimeout})
	d.c = c
	n.dist = &erldist.Node{Name: cfg.Name, Cookie: cfg.Cookie, ListenAddr: cfg.ListenAddr,
		EPMDPort: cfg.EPMDPort, ServeEPMD: true, Logger: log,
		Timeouts: erldist.Timeouts{Tick: cfg.NetTickTime / 4, Peer: cfg.NetTickTime, Write: cfg.NetTickTime, Call: cfg.CallTimeout}}
	c.SetTransport(NewDistTransport(n.dist, c))
	for _, svc := range cfg.Services {
		n.dist.Handlers[svc.Name()] = func(conn *erldist.Conn, _ term.Pid, msg term.Term) { svc.Deliver(conn.Peer(), msg) }
	}
	n.Cluster, n.Discovery = c, d
	n.Sessions, n.Routes = NewSessions(c), NewRoutes(c)
	n.dist.RPC = n.rpc()
	for _, svc := range cfg.Services {
		if p, ok := svc.(RPCProvider); ok {
			for name, fn := range p.RPC() {
				n.dist.RPC[name] = fn
			}
		}
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
	err = n.dist.Start(sctx)
	cancel()
	if err != nil {
		return nil, err
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = stop
	go func() { d.Run(rctx); close(n.done) }()
	for i, svc := range cfg.Services {
		if err := svc.Start(ctx, n); err != nil {
			for _, started := range cfg.Services[:i] {
				started.Close()
			}
			n.Close()
			return nil, fmt.Errorf("starting %s: %w", svc.Name(), err)
		}
	}
	log.Info("node started", "cluster", d.FullName(), "port", n.dist.Port())
	return n, nil
}

// Port is the distribution port.
func (n *Node) Port() int { return n.dist.Port() }

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Close stops discovery and the node: its peers drop it and its records.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		for _, svc := range n.cfg.Services {
			svc.Close()
		}
		n.cancel()
		<-n.done
		err = n.dist.Close()
	})
	return err
}

// Service is a part of the node that starts with it and talks to its
// counterparts on the other nodes.
type Service interface {
	// Name is the registered name the service's messages from other
	// nodes come to.
	Name() term.Atom
	// Deliver takes a message from a service of this name on another
	// node (or this one).
	Deliver(from term.Atom, msg term.Term)
	// Start runs the service on the started node.
	Start(ctx context.Context, n *Node) error
	// Close stops the service; the node closes its services before it
	// stops.
	Close()
}

// RPCProvider is a Service with admin functions of its own, served
// beside the node's ("module:function/arity").
type RPCProvider interface {
	RPC() map[string]erldist.RPCFunc
}

// PeerWatcher is a Service told of every peer node lost (after the
// cluster dropped it; the records it owned may still be going).
type PeerWatcher interface {
	PeerDown(peer term.Atom)
}

// Send sends a message to the service registered as name on node peer
// (this node included).
func (n *Node) Send(peer, name term.Atom, msg term.Term) error {
	if peer == term.Atom(n.cfg.Name) {
		for _, svc := range n.cfg.Services {
			if svc.Name() == name {
				svc.Deliver(peer, msg)
				return nil
			}
		}
		return fmt.Errorf("no service %s on this node", name)
	}
	conn := n.dist.Conn(peer)
	if conn == nil {
		return errNotConnected(peer)
	}
	return conn.SendNamed(name, msg)
}

// Call runs module:fn(args) on another node of the cluster (its
// services' functions, as RPCProvider offers them).
func (n *Node) Call(ctx context.Context, peer term.Atom, module, fn string, args ...term.Term) (term.Term, error) {
	conn := n.dist.Conn(peer)
	if conn == nil {
		return nil, errNotConnected(peer)
	}
	return conn.Call(ctx, term.Atom(module), term.Atom(fn), args...)
}

// Self is the node's name as an atom.
func (n *Node) Self() term.Atom { return term.Atom(n.cfg.Name) }

// IsConfigError reports whether err is a configuration that cannot start
// a node.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}
