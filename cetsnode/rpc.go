package cetsnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Join makes this node join target's cluster now.
func (n *Node) Join(ctx context.Context, target string) error {
	if err := n.CheckJoin(target); err != nil {
		return err
	}
	return n.Cluster.Join(ctx, target)
}

// CheckJoin says whether a join of target can start: refused when this
// node left (it stays out until restarted) or target is joined already.
func (n *Node) CheckJoin(target string) error {
	switch {
	case n.Cluster.HasLeft():
		return ErrLeft
	case target == n.cfg.Name:
		return errors.New("a node cannot join itself")
	case n.Cluster.Joined(target):
		return ErrAlreadyJoined
	}
	return nil
}

// Leave stops replicating: every table drops its peers (and they drop
// us), our discovery row goes, and discovery stays off, so the node stays
// out until it is started again.
func (n *Node) Leave(ctx context.Context) error {
	if n.Cluster.HasLeft() {
		return ErrNotInCluster
	}
	n.Discovery.Stop()
	if err := n.cfg.Store.Remove(ctx, n.Discovery.FullName(), n.cfg.Name); err != nil {
		return fmt.Errorf("removing our discovery row: %w", err)
	}
	if n.Cluster.Leave() == 0 {
		return ErrNotInCluster
	}
	return nil
}

// CheckRemove says whether node can be removed: only a dead node other
// than this one.
func (n *Node) CheckRemove(ctx context.Context, node string) error {
	if node == n.cfg.Name {
		return errors.New("a node cannot remove itself (use leave)")
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if n.Cluster.t.Connect(pctx, term.Atom(node)) == nil {
		return ErrNodeIsAlive
	}
	return nil
}

// Remove drops a dead node from the cluster now, without waiting for its
// row to expire: its discovery row is deleted and every node of our
// segments drops it and its records. Refused while the node answers.
func (n *Node) Remove(ctx context.Context, node string) error {
	if err := n.CheckRemove(ctx, node); err != nil {
		return err
	}
	if err := n.cfg.Store.Remove(ctx, n.Discovery.FullName(), node); err != nil {
		return err
	}
	n.Cluster.DropNode(ctx, term.Atom(node))
	return nil
}

// Error codes carried over RPC: {error, Code, Message}.
var errorCodes = map[error]term.Atom{
	ErrAlreadyJoined: "already_joined", ErrNotInCluster: "not_in_cluster",
	ErrNodeIsAlive: "node_is_alive", ErrLeft: "left",
}

// describe is an operation's error in MongooseIM's words, with its code.
func (n *Node) describe(err error, target string) (term.Atom, string) {
	switch {
	case errors.Is(err, ErrAlreadyJoined):
		return errorCodes[ErrAlreadyJoined], fmt.Sprintf("The node %s has already joined the cluster of %s (already_joined).", n.cfg.Name, target)
	case errors.Is(err, ErrNotInCluster):
		return errorCodes[ErrNotInCluster], fmt.Sprintf("The node %s is not in the cluster (not_in_cluster); it stays out until it is started again.", n.cfg.Name)
	case errors.Is(err, ErrNodeIsAlive):
		return errorCodes[ErrNodeIsAlive], fmt.Sprintf("The node %s is alive but should not be (node_is_alive): stop it first, or run leave on it.", target)
	case errors.Is(err, ErrLeft):
		return errorCodes[ErrLeft], fmt.Sprintf("The node %s has left the cluster (left): it stays out until it is started again, then discovery joins it back.", n.cfg.Name)
	}
	return "failed", err.Error()
}

// result is an operation's outcome over RPC: {ok, Message} or {error,
// Code, Message}.
func (n *Node) result(err error, target, okMsg string) term.Term {
	if err != nil {
		code, msg := n.describe(err, target)
		return term.Tuple{term.Atom("error"), code, term.Binary(msg)}
	}
	return term.Tuple{term.Atom("ok"), term.Binary(okMsg)}
}

// rpc are the functions the node serves to rpc:call from Erlang and to
// `mimmigrate cluster`: status and table info, the cluster commands, and
// session and route registration for operators' smoke tests.
func (n *Node) rpc() map[string]erldist.RPCFunc {
	ctx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 60*time.Second)
	}
	badarg := term.Tuple{term.Atom("error"), term.Atom("badarg"), term.Binary("badarg")}
	arg := func(args term.List, i int) string {
		if len(args) <= i {
			return ""
		}
		s, _ := term.Text(args[i])
		return s
	}
	self := n.cfg.Name
	return map[string]erldist.RPCFunc{
		"mimmigrate:status/0": func(term.Atom, term.List) term.Term {
			return term.Tuple{term.Atom("running"), term.Binary(self), term.Binary(n.Discovery.FullName())}
		},
		// {ok, StatusJSON}: docs/cluster.md.
		"mimmigrate:cluster_status/0": func(term.Atom, term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			b, err := json.Marshal(n.Status(c))
			if err != nil {
				return n.result(err, "", "")
			}
			return term.Tuple{term.Atom("ok"), term.Binary(b)}
		},
		// [{Table, Size, Nodes, Digest}]: the digest (of every record and
		// its write stamp) tells whether two nodes hold the same table.
		"mimmigrate:table_info/0": func(term.Atom, term.List) term.Term {
			var out term.List
			for _, t := range n.Cluster.Tables() {
				out = append(out, term.Tuple{t.name, int64(t.Size()), nodeList(append([]term.Atom{n.Cluster.self}, t.Nodes()...)), term.Binary(t.Digest())})
			}
			return out
		},
		// Points a domain at this node; route_lookup/1 reads it.
		"mimmigrate:route_register/1": func(_ term.Atom, args term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			return n.result(n.Routes.Register(c, arg(args, 0)), "", "registered")
		},
		"mimmigrate:route_lookup/1": func(_ term.Atom, args term.List) term.Term {
			if node, ok := n.Routes.Lookup(arg(args, 0)); ok {
				return term.Tuple{term.Atom("ok"), node}
			}
			return term.Atom("none")
		},
		// [{Node, Sessions}]: the session table's records by owner.
		"mimmigrate:session_count/0": func(term.Atom, term.List) term.Term {
			var out term.List
			for node, k := range n.Sessions.CountByNode() {
				out = append(out, term.Tuple{node, int64(k)})
			}
			return out
		},
		// Registers a session owned by this node (operators' smoke tests;
		// the XMPP service registers its own).
		"mimmigrate:session_register/3": func(_ term.Atom, args term.List) term.Term {
			if len(args) != 3 {
				return badarg
			}
			c, cancel := ctx()
			defer cancel()
			err := n.Sessions.Register(c, Session{Server: arg(args, 1), User: arg(args, 0), Resource: arg(args, 2)})
			return n.result(err, "", "registered")
		},
		"mimmigrate:cluster_can_join/1": func(_ term.Atom, args term.List) term.Term {
			return n.result(n.CheckJoin(arg(args, 0)), arg(args, 0), "")
		},
		"mimmigrate:cluster_join/1": func(_ term.Atom, args term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			target := arg(args, 0)
			return n.result(n.Join(c, target), target,
				fmt.Sprintf("You have successfully joined the node %s to the cluster with node member %s.", self, target))
		},
		"mimmigrate:cluster_leave/0": func(term.Atom, term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			return n.result(n.Leave(c), "",
				fmt.Sprintf("The node %s has successfully left the cluster; it stays out until it is started again.", self))
		},
		"mimmigrate:cluster_can_remove/1": func(_ term.Atom, args term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			return n.result(n.CheckRemove(c, arg(args, 0)), arg(args, 0), "")
		},
		"mimmigrate:cluster_remove/1": func(_ term.Atom, args term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			target := arg(args, 0)
			return n.result(n.Remove(c, target), target, fmt.Sprintf("The dead node %s has been removed from the cluster.", target))
		},
	}
}
