package erldist

import (
	"fmt"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// RPCFunc serves one function an Erlang node may call with rpc:call.
type RPCFunc func(from term.Atom, args term.List) term.Term

// RexHandler serves rpc:call from Erlang nodes (which fall back to the rex
// server for a node without the SPAWN flag): {'$gen_call', {Pid, Tag},
// {call, M, F, Args, GroupLeader}} answered with {Tag, Result}. Only the
// functions given ("module:function/arity") run; any other call gets
// {badrpc, {'EXIT', {undef, …}}}, as from a node that lacks the module.
func RexHandler(funcs map[string]RPCFunc) Handler {
	return func(c *Conn, _ term.Pid, msg term.Term) {
		caller, tag, req, ok := genCall(msg)
		if !ok || len(req) < 4 || !term.IsAtom(req[0], "call") {
			return
		}
		mod, _ := req[1].(term.Atom)
		fn, _ := req[2].(term.Atom)
		args, _ := term.Elems(req[3])
		var result term.Term
		if f, ok := funcs[fmt.Sprintf("%s:%s/%d", mod, fn, len(args))]; ok {
			result = f(c.Peer(), args)
		} else {
			result = term.Tuple{term.Atom("badrpc"), term.Tuple{term.Atom("EXIT"), term.Tuple{term.Atom("undef"),
				term.List{term.Tuple{req[1], req[2], term.List(args), term.List{}}}}}}
		}
		// The reply must not hold up the connection's reader.
		go func() {
			if err := c.Send(caller, term.Tuple{tag, result}); err != nil {
				c.log.Debug("rpc reply failed", "err", err)
			}
		}()
	}
}

// genCall reads a gen_server call, {'$gen_call', {Pid, Tag}, Request}:
// the caller, the tag its reply carries back verbatim ([alias|Ref] on OTP
// 24+), and the request when it is a tuple.
func genCall(msg term.Term) (caller term.Pid, tag term.Term, req term.Tuple, ok bool) {
	call, ok := term.IsRecord(msg, "$gen_call", 3)
	if !ok {
		return caller, nil, nil, false
	}
	from, ok := call[1].(term.Tuple)
	if !ok || len(from) != 2 {
		return caller, nil, nil, false
	}
	if caller, ok = from[0].(term.Pid); !ok {
		return caller, nil, nil, false
	}
	req, ok = call[2].(term.Tuple)
	return caller, from[1], req, ok
}
