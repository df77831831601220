package cetsnode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Errors of the cluster commands, with MongooseIM's codes.
var (
	ErrNotInCluster = errors.New("not_in_cluster")
	ErrNodeIsAlive  = errors.New("node_is_alive")
	ErrLeft         = errors.New("this node has left the cluster (start it again to rejoin)")
)

// Leave stops replicating: every table drops its peers (and they drop
// us), our discovery row goes, and discovery stays off, so the node stays
// out until it is started again.
func (d *Discovery) Leave(ctx context.Context) error {
	c := d.c
	members := 0
	for _, t := range c.Tables() {
		members += len(t.Nodes())
	}
	d.Stop()
	c.left.Store(true)
	if err := d.Remove(ctx, string(c.self)); err != nil {
		return fmt.Errorf("removing our discovery row: %w", err)
	}
	for _, t := range c.Tables() {
		done := make(chan struct{})
		t.post(func() {
			for m := range t.members {
				c.send(m, term.Tuple{term.Atom("check_failed"), t.name})
			}
			t.members = map[term.Atom]bool{}
			t.joinRef = newRef() // late writes of the old segment are dropped
			t.publish()
			close(done)
		})
		<-done
	}
	if members == 0 {
		return ErrNotInCluster
	}
	return nil
}

// Remove drops a dead node from the cluster now, without waiting for its
// row to expire: its discovery row is deleted and every node of our
// segments drops it and its records. Refused while the node answers.
func (d *Discovery) RemoveNode(ctx context.Context, node string) error {
	c := d.c
	if term.Atom(node) == c.self {
		return errors.New("a node cannot remove itself (use leave)")
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := c.Node.Connect(pctx, node)
	cancel()
	if err == nil {
		return ErrNodeIsAlive
	}
	if err := d.Remove(ctx, node); err != nil {
		return err
	}
	targets := map[term.Atom]bool{c.self: true}
	for _, t := range c.Tables() {
		for _, m := range t.Nodes() {
			targets[m] = true
		}
	}
	for n := range targets {
		if _, err := c.call(ctx, n, term.Tuple{term.Atom("remove_node"), term.Atom(node)}); err != nil {
			c.Log.Warn("remove: a node did not confirm", "node", n, "err", err)
		}
	}
	return nil
}

// RPC are the functions a node serves to rpc:call from Erlang and to
// mimmigrate cluster: status and table info, and the cluster commands.
func (d *Discovery) RPC() map[string]erldist.RPCFunc {
	ctx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 60*time.Second)
	}
	result := func(err error, okMsg string) term.Term {
		if err != nil {
			return term.Tuple{term.Atom("error"), term.Binary(err.Error())}
		}
		return term.Tuple{term.Atom("ok"), term.Binary(okMsg)}
	}
	arg := func(args term.List) string {
		if len(args) == 0 {
			return ""
		}
		s, _ := term.Text(args[0])
		return s
	}
	return map[string]erldist.RPCFunc{
		"mimmigrate:status/0": func(term.Atom, term.List) term.Term {
			return term.Tuple{term.Atom("running"), term.Binary(d.c.self), term.Binary(d.FullName())}
		},
		"mimmigrate:cluster_status/0": func(term.Atom, term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			return statusTerm(d.Status(c))
		},
		// [{Table, Size, Nodes, Digest}]: the digest (of every record and
		// its write stamp) tells whether two nodes hold the same table.
		"mimmigrate:table_info/0": func(term.Atom, term.List) term.Term {
			var out term.List
			for _, t := range d.c.Tables() {
				out = append(out, term.Tuple{t.name, int64(t.Size()), nodeList(append([]term.Atom{d.c.self}, t.Nodes()...)), term.Binary(t.Digest())})
			}
			return out
		},
		// Points a domain at this node; route_lookup/1 reads it.
		"mimmigrate:route_register/1": func(_ term.Atom, args term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			if d.routes == nil || len(args) != 1 {
				return term.Tuple{term.Atom("error"), term.Binary("badarg")}
			}
			return result(d.routes.Register(c, arg(args)), "registered")
		},
		"mimmigrate:route_lookup/1": func(_ term.Atom, args term.List) term.Term {
			if d.routes == nil || len(args) != 1 {
				return term.Tuple{term.Atom("error"), term.Binary("badarg")}
			}
			if n, ok := d.routes.Lookup(arg(args)); ok {
				return term.Tuple{term.Atom("ok"), n}
			}
			return term.Atom("none")
		},
		// [{Node, Sessions}]: the session table's records by owner.
		"mimmigrate:session_count/0": func(term.Atom, term.List) term.Term {
			if d.sessions == nil {
				return term.List{}
			}
			by := map[term.Atom]int64{}
			d.sessions.T.Each(func(r Record) {
				if n, ok := r[2].(term.Atom); ok {
					by[n]++
				}
			})
			var out term.List
			for n, k := range by {
				out = append(out, term.Tuple{n, k})
			}
			return out
		},
		// Registers a session owned by this node (for operators' smoke
		// tests; the XMPP service registers its own).
		"mimmigrate:session_register/3": func(_ term.Atom, args term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			if len(args) != 3 {
				return term.Tuple{term.Atom("error"), term.Binary("badarg")}
			}
			user, _ := term.Text(args[0])
			server, _ := term.Text(args[1])
			res, _ := term.Text(args[2])
			if d.sessions == nil {
				return term.Tuple{term.Atom("error"), term.Binary("no session table")}
			}
			err := d.sessions.Register(c, Session{Server: server, User: user, Resource: res, Priority: 0})
			return result(err, "registered")
		},
		"mimmigrate:cluster_join/1": func(_ term.Atom, args term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			node := arg(args)
			err := d.c.Join(c, node)
			if errors.Is(err, ErrAlreadyJoined) {
				return term.Tuple{term.Atom("error"), term.Binary(fmt.Sprintf("The node %s has already joined the cluster of %s (already_joined).", d.c.self, node))}
			}
			return result(err, fmt.Sprintf("You have successfully joined the node %s to the cluster with node member %s.", d.c.self, node))
		},
		"mimmigrate:cluster_leave/0": func(term.Atom, term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			err := d.Leave(c)
			if errors.Is(err, ErrNotInCluster) {
				return term.Tuple{term.Atom("error"), term.Binary(fmt.Sprintf("The node %s is not in the cluster (not_in_cluster); it stays out until it is started again.", d.c.self))}
			}
			return result(err, fmt.Sprintf("The node %s has successfully left the cluster; it stays out until it is started again.", d.c.self))
		},
		"mimmigrate:cluster_remove/1": func(_ term.Atom, args term.List) term.Term {
			c, cancel := ctx()
			defer cancel()
			node := arg(args)
			err := d.RemoveNode(c, node)
			if errors.Is(err, ErrNodeIsAlive) {
				return term.Tuple{term.Atom("error"), term.Binary(fmt.Sprintf("The node %s is alive but should not be (node_is_alive): stop it first, or run leave on it.", node))}
			}
			return result(err, fmt.Sprintf("The dead node %s has been removed from the cluster.", node))
		},
	}
}

// statusTerm carries a Status over RPC as its JSON text (the CLI prints
// it; an Erlang caller gets a binary).
func statusTerm(s Status) term.Term {
	b, err := jsonMarshal(s)
	if err != nil {
		return term.Tuple{term.Atom("error"), term.Binary(err.Error())}
	}
	return term.Tuple{term.Atom("ok"), term.Binary(b)}
}
