package cetsnode

import (
	"context"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// serverName is the registered name every node's tables answer under.
const serverName = term.Atom("mimmigrate_cets")

// Transport carries the cluster's messages between nodes: Erlang
// distribution between the nodes' erldist.Node in production. A transport
// delivers what arrives for the cluster to a Receiver.
type Transport interface {
	// Self is this node's name.
	Self() term.Atom
	// Send delivers a message to a peer's cluster; it fails when the peer
	// is not connected. The transport encodes it (a join's chunks are
	// megabytes: encoded once, straight into the outgoing packet).
	Send(peer term.Atom, msg term.Term) error
	// SendEncoded delivers a message already encoded (term_to_binary):
	// a write is encoded once for every peer.
	SendEncoded(peer term.Atom, msg []byte) error
	// Connect makes sure there is a connection to peer.
	Connect(ctx context.Context, peer term.Atom) error
	// Connected reports whether peer is connected now.
	Connected(peer term.Atom) bool
}

// Receiver is what a transport delivers to: messages from peers, and the
// loss of a peer.
type Receiver interface {
	Deliver(from term.Atom, msg term.Term)
	PeerDown(peer term.Atom, reason error)
}

// distTransport is a Transport over an erldist.Node.
type distTransport struct{ node *erldist.Node }

// NewDistTransport carries the cluster over node, delivering to r. Call
// it before node.Start: it installs the cluster's registered name and the
// node's down callback.
func NewDistTransport(node *erldist.Node, r Receiver) Transport {
	if node.Handlers == nil {
		node.Handlers = map[term.Atom]erldist.Handler{}
	}
	node.Handlers[serverName] = func(c *erldist.Conn, _ term.Pid, msg term.Term) { r.Deliver(c.Peer(), msg) }
	node.Down = r.PeerDown
	return &distTransport{node: node}
}

func (t *distTransport) Self() term.Atom { return term.Atom(t.node.Name) }

func (t *distTransport) Send(peer term.Atom, msg term.Term) error {
	c := t.node.Conn(peer)
	if c == nil {
		return errNotConnected(peer)
	}
	return c.SendNamed(serverName, msg)
}

func (t *distTransport) SendEncoded(peer term.Atom, msg []byte) error {
	c := t.node.Conn(peer)
	if c == nil {
		return errNotConnected(peer)
	}
	return c.SendNamedEncoded(serverName, msg)
}

func (t *distTransport) Connect(ctx context.Context, peer term.Atom) error {
	_, err := t.node.Connect(ctx, string(peer))
	return err
}

func (t *distTransport) Connected(peer term.Atom) bool { return t.node.Conn(peer) != nil }

type notConnected struct{ peer term.Atom }

func (e notConnected) Error() string { return string(e.peer) + " is not connected" }

func errNotConnected(peer term.Atom) error { return notConnected{peer} }
