package cetsnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Admin is a client of cluster nodes' administration functions (what
// `mimmigrate cluster` runs), over a hidden distribution connection.
//
// It keeps one connection per node and reuses it for the calls that
// follow: a dial under the same name and creation while the node still
// holds the last connection would be refused as a simultaneous connect
// (status nok), and a handshake per call is slower anyway. Close ends the
// connections.
type Admin struct {
	Client *erldist.Client

	mu    sync.Mutex
	conns map[string]*adminConn
}

// adminConn is the connection to one node; its lock is held while dialing,
// so that calls to one node wait for one dial and calls to others do not.
type adminConn struct {
	mu sync.Mutex
	c  *erldist.Conn
}

// Close ends the connections the admin holds.
func (a *Admin) Close() {
	a.mu.Lock()
	conns := a.conns
	a.conns = nil
	a.mu.Unlock()
	for _, ac := range conns {
		ac.mu.Lock()
		if ac.c != nil {
			ac.c.Close()
		}
		ac.mu.Unlock()
	}
}

// conn returns the connection to node, dialing when there is none or the
// last one failed.
func (a *Admin) conn(ctx context.Context, node string) (*erldist.Conn, error) {
	a.mu.Lock()
	if a.conns == nil {
		a.conns = map[string]*adminConn{}
	}
	ac := a.conns[node]
	if ac == nil {
		ac = &adminConn{}
		a.conns[node] = ac
	}
	a.mu.Unlock()
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if ac.c != nil && ac.c.Err() == nil {
		return ac.c, nil
	}
	c, err := a.Client.Dial(ctx, node)
	if err != nil {
		return nil, err
	}
	ac.c = c
	return c, nil
}

// AdminError is an operation a node refused or failed: Code is
// MongooseIM's (already_joined, not_in_cluster, node_is_alive), left, or
// failed; Msg says it in MongooseIM's words.
type AdminError struct {
	Code string
	Msg  string
}

func (e *AdminError) Error() string { return e.Msg }

// Unwrap lets errors.Is match the sentinel of the code.
func (e *AdminError) Unwrap() error {
	for err, code := range errorCodes {
		if string(code) == e.Code {
			return err
		}
	}
	return nil
}

// ErrNotClusterNode: the node answers but does not serve the cluster
// functions.
var ErrNotClusterNode = errors.New("not a mimmigrate cluster node")

func (a *Admin) call(ctx context.Context, node, fn string, args ...term.Term) (term.Term, error) {
	return a.Call(ctx, node, "mimmigrate", fn, args...)
}

// forget closes c and drops it if it is still the connection to node.
func (a *Admin) forget(node string, c *erldist.Conn) {
	a.mu.Lock()
	ac := a.conns[node]
	a.mu.Unlock()
	if ac != nil {
		ac.mu.Lock()
		if ac.c == c {
			ac.c = nil
		}
		ac.mu.Unlock()
	}
	c.Close()
}

// Call runs module:fn(args) on a node (the admin functions of the node
// and of its services).
func (a *Admin) Call(ctx context.Context, node, module, fn string, args ...term.Term) (term.Term, error) {
	conn, err := a.conn(ctx, node)
	if err != nil {
		return nil, err
	}
	res, err := conn.Call(ctx, term.Atom(module), term.Atom(fn), args...)
	var re *erldist.RemoteError
	if err != nil && !errors.As(err, &re) {
		// No answer (a timeout, a lost connection): the next call dials
		// anew instead of waiting on a connection that may be dead.
		a.forget(node, conn)
	}
	if errors.As(err, &re) || isBadRPC(res) {
		return nil, fmt.Errorf("%s does not serve %s:%s: %w", node, module, fn, ErrNotClusterNode)
	}
	return res, err
}

func isBadRPC(t term.Term) bool {
	tu, ok := t.(term.Tuple)
	return ok && len(tu) == 2 && term.IsAtom(tu[0], "badrpc")
}

// outcome reads {ok, Message} or {error, Code, Message}.
func outcome(res term.Term) (string, error) {
	tu, ok := res.(term.Tuple)
	if ok && len(tu) == 2 && term.IsAtom(tu[0], "ok") {
		msg, _ := term.Text(tu[1])
		return msg, nil
	}
	if ok && len(tu) == 3 && term.IsAtom(tu[0], "error") {
		code, _ := tu[1].(term.Atom)
		msg, _ := term.Text(tu[2])
		return "", &AdminError{Code: string(code), Msg: msg}
	}
	return "", &AdminError{Code: "failed", Msg: "unexpected answer " + term.Format(res)}
}

func (a *Admin) op(ctx context.Context, node, fn string, args ...term.Term) (string, error) {
	res, err := a.call(ctx, node, fn, args...)
	if err != nil {
		return "", err
	}
	return outcome(res)
}

// Status is a node's view of the cluster.
func (a *Admin) Status(ctx context.Context, node string) (Status, error) {
	var st Status
	text, err := a.op(ctx, node, "cluster_status")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		return st, &AdminError{Code: "failed", Msg: "unreadable status: " + err.Error()}
	}
	return st, nil
}

// CheckJoin says whether node can join target's cluster now.
func (a *Admin) CheckJoin(ctx context.Context, node, target string) error {
	_, err := a.op(ctx, node, "cluster_can_join", term.Binary(target))
	return err
}

// Join makes node join target's cluster now.
func (a *Admin) Join(ctx context.Context, node, target string) (string, error) {
	return a.op(ctx, node, "cluster_join", term.Binary(target))
}

// Leave makes node leave its cluster.
func (a *Admin) Leave(ctx context.Context, node string) (string, error) {
	return a.op(ctx, node, "cluster_leave")
}

// CheckRemove says whether node can remove target now (only a dead one).
func (a *Admin) CheckRemove(ctx context.Context, node, target string) error {
	_, err := a.op(ctx, node, "cluster_can_remove", term.Binary(target))
	return err
}

// Remove makes node drop the dead target from the cluster.
func (a *Admin) Remove(ctx context.Context, node, target string) (string, error) {
	return a.op(ctx, node, "cluster_remove", term.Binary(target))
}
