package erldist

import (
	"context"
	"errors"
	"fmt"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// RemoteError is the reason of a {badrpc, Reason} reply: the function raised
// an exception on the remote node, or the node could not run it.
type RemoteError struct {
	Reason term.Term
}

func (e *RemoteError) Error() string { return term.Format(e.Reason) }

// Call runs mod:fun(args...) on the peer through its rex server and returns
// the result. Many calls can be in flight on one connection; each is matched
// to its reply by a reference. The context's deadline bounds the call (the
// connection's call timeout when it has none). When the deadline passes the
// remote worker is not stopped: rex offers no way to.
//
// The call uses the gen_server form {'$gen_call', {Pid, Ref}, {call, M, F,
// Args, user}}: rex has answered it from R14 to OTP 28, and the group leader
// user sends any output of the function to the node's own console or log
// rather than to us, who could not answer io requests.
func (c *Conn) Call(ctx context.Context, mod, fun term.Atom, args ...term.Term) (term.Term, error) {
	if _, ok := ctx.Deadline(); !ok && c.tm.Call > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.tm.Call)
		defer cancel()
	}
	what := fmt.Sprintf("%s:%s/%d", mod, fun, len(args))
	ref := c.MakeRef()
	key := ref.Key()
	ch := make(chan term.Term, 1)
	c.mu.Lock()
	c.calls[key] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.calls, key)
		c.mu.Unlock()
	}
	if args == nil {
		args = term.List{}
	}
	req := term.Tuple{term.Atom("$gen_call"), term.Tuple{c.self, ref},
		term.Tuple{term.Atom("call"), mod, fun, term.List(args), term.Atom("user")}}
	if err := c.send(ctlRegSend(c.self, "rex"), req); err != nil {
		forget()
		return nil, c.callError(what, err)
	}
	select {
	case res := <-ch:
		if tu, ok := res.(term.Tuple); ok && len(tu) == 2 && term.IsAtom(tu[0], "badrpc") {
			return nil, &Error{Kind: KindBadRPC, Node: string(c.peer),
				Msg: fmt.Sprintf("%s on %s failed", what, c.peer), Hint: badRPCHint(tu[1]),
				Err: &RemoteError{Reason: tu[1]}}
		}
		return res, nil
	case <-ctx.Done():
		forget()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, newError(KindTimeout, string(c.peer),
				"the node may be overloaded or the call may wait on a lock; the remote call goes on running",
				nil, "%s on %s did not answer within the timeout", what, c.peer)
		}
		return nil, ctx.Err()
	case <-c.done:
		forget()
		return nil, c.callError(what, c.err)
	}
}

func (c *Conn) callError(what string, err error) error {
	if errors.Is(err, ErrClosed) {
		return err
	}
	return newError(KindConnectionLost, string(c.peer),
		"the node stopped or the network failed during the call; whether the call took effect is unknown",
		nil, "connection to %s lost during %s", c.peer, what)
}

func badRPCHint(reason term.Term) string {
	if ex, ok := term.IsRecord(reason, "EXIT", 2); ok {
		if inner, ok := ex[1].(term.Tuple); ok && len(inner) >= 1 && term.IsAtom(inner[0], "undef") {
			return "the function does not exist on that node (wrong version, or the application is not loaded)"
		}
		if term.IsAtom(ex[1], "noproc") {
			return "a process the call needs is not running (is mnesia started?)"
		}
	}
	if term.IsAtom(reason, "nodedown") {
		return "the node went down"
	}
	return ""
}
