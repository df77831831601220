package erldist

import (
	"fmt"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// What the reader does with each control message from the peer.

func (c *Conn) dispatch(ctl term.Tuple, msg term.Term) {
	op, _ := term.Int(ctl[0])
	arg := func(i int) term.Term {
		if i < len(ctl) {
			return ctl[i]
		}
		return nil
	}
	pid := func(i int) term.Pid { p, _ := arg(i).(term.Pid); return p }
	switch op {
	case opSend, opSendTT:
		c.deliver(term.Pid{}, arg(2), msg)
	case opSendSender, opSendSenderTT:
		c.deliver(pid(1), arg(2), msg)
	case opRegSend, opRegSendTT:
		name, _ := arg(3).(term.Atom)
		c.deliverNamed(pid(1), name, msg)
	case opLink:
		from, to := pid(1), pid(2)
		if to == c.self {
			c.mu.Lock()
			c.links[from] = true
			c.mu.Unlock()
		} else {
			c.reply(ctlExit(to, from, term.Atom("noproc")))
		}
	case opExit, opExitTT, opExit2, opExit2TT, opPayloadExit, opPayloadExitTT, opPayloadExit2, opPayloadExit2TT:
		reason := msg
		if op == opExit || op == opExit2 {
			reason = arg(3)
		} else if op == opExitTT || op == opExit2TT {
			reason = arg(4)
		}
		c.mu.Lock()
		delete(c.links, pid(1))
		c.mu.Unlock()
		c.log.Debug("exit signal", "from", pid(1), "to", pid(2), "reason", term.Format(reason))
		c.toMailbox(Message{From: pid(1), To: pid(2), Msg: term.Tuple{term.Atom("EXIT"), pid(1), reason}})
	case opUnlinkID:
		c.mu.Lock()
		delete(c.links, pid(2))
		c.mu.Unlock()
		c.reply(ctlUnlinkIDAck(arg(1), pid(3), pid(2)))
	case opUnlinkIDAck:
		id, _ := term.Int(arg(1))
		c.mu.Lock()
		if ack, ok := c.unlinks[uint64(id)]; ok {
			close(ack)
			delete(c.unlinks, uint64(id))
		}
		c.mu.Unlock()
	case opMonitorP:
		from, target := pid(1), arg(2)
		ref, _ := arg(3).(term.Ref)
		if c.exists(target) {
			c.mu.Lock()
			c.remoteMonitors[ref.Key()] = from
			c.mu.Unlock()
		} else {
			c.reply(ctlMonitorExit(target, from, ref, term.Atom("noproc")))
		}
	case opDemonitorP:
		ref, _ := arg(3).(term.Ref)
		c.mu.Lock()
		delete(c.remoteMonitors, ref.Key())
		c.mu.Unlock()
	case opMonitorPExit, opPayloadMonitorPExit:
		ref, _ := arg(3).(term.Ref)
		reason := arg(4)
		if op == opPayloadMonitorPExit {
			reason = msg
		}
		c.mu.Lock()
		ch, ok := c.monitors[ref.Key()]
		delete(c.monitors, ref.Key())
		c.mu.Unlock()
		if ok {
			ch <- reason
		}
	case opSpawnRequest, opSpawnRequestTT:
		c.spawnRequest(ctl, msg)
	default:
		c.log.Debug("ignoring control message", "op", op)
	}
}

// spawnRequest serves erpc (what rpc:call uses on OTP 23+ towards a node
// with the SPAWN flag): spawn_request(Node, erpc, execute_call, [Ref, M, F,
// Args], [monitor, …]). No process is started: the call runs at once, the
// spawn reply names a pid of ours, and the monitor's 'DOWN' carries the
// result as erpc's execute_call would exit with it: {Ref, return, Result},
// or {Ref, error, undef, [{M, F, Args, []}]} for a function not served.
func (c *Conn) spawnRequest(ctl term.Tuple, msg term.Term) {
	if len(ctl) < 6 {
		return
	}
	reqID, from := ctl[1], ctl[2]
	caller, ok := from.(term.Pid)
	if !ok {
		return
	}
	monitor, link := false, false
	opts, _ := term.Elems(ctl[5])
	for _, o := range opts {
		if term.IsAtom(o, "monitor") {
			monitor = true
		} else if tu, ok := o.(term.Tuple); ok && len(tu) == 2 && term.IsAtom(tu[0], "monitor") {
			monitor = true
		} else if term.IsAtom(o, "link") {
			link = true
		}
	}
	mfa, _ := ctl[4].(term.Tuple)
	args, _ := term.Elems(msg)
	erpc := len(mfa) == 3 && term.IsAtom(mfa[0], "erpc") && term.IsAtom(mfa[1], "execute_call") && len(args) == 4
	c.mu.Lock()
	funcs := c.rpc
	c.mu.Unlock()
	if !erpc || link || funcs == nil {
		c.reply(term.Tuple{int64(opSpawnReply), reqID, caller, int64(0), term.Atom("notsup")})
		return
	}
	ref, mod, fn := args[0], args[1], args[2]
	fargs, _ := term.Elems(args[3])
	var reason term.Term
	if f, ok := funcs[fmt.Sprintf("%s:%s/%d", term.Format(mod), term.Format(fn), len(fargs))]; ok {
		reason = term.Tuple{ref, term.Atom("return"), f(c.peer, fargs)}
	} else {
		reason = term.Tuple{ref, term.Atom("error"), term.Atom("undef"), term.List{term.Tuple{mod, fn, term.List(fargs), term.List{}}}}
	}
	pid := term.Pid{Node: c.local, ID: 1<<27 | c.spawns.Add(1)&(1<<27-1), Creation: c.creation}
	flags := int64(0)
	if monitor {
		flags = 2
	}
	c.reply(term.Tuple{int64(opSpawnReply), reqID, caller, flags, pid})
	if monitor {
		c.reply(ctlMonitorExit(pid, caller, refOf(reqID), reason))
	}
}

func refOf(t term.Term) term.Ref { r, _ := t.(term.Ref); return r }

// reply sends a control message from the reader. A failure ends the
// connection, which the reader notices on its next read.
func (c *Conn) reply(ctl term.Tuple) {
	if err := c.send(ctl, nil); err != nil {
		c.log.Debug("reply failed", "err", err)
	}
}

func (c *Conn) exists(target term.Term) bool {
	switch t := target.(type) {
	case term.Pid:
		return t == c.self
	case term.Atom:
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.names[t]
		return ok
	}
	return false
}

func (c *Conn) deliver(from term.Pid, to, msg term.Term) {
	if p, ok := to.(term.Pid); !ok || p != c.self {
		c.log.Debug("message for an unknown process dropped", "to", term.Format(to))
		return
	}
	// An RPC reply is {Ref, Result} with one of our call refs.
	if tu, ok := msg.(term.Tuple); ok && len(tu) == 2 {
		if ref, ok := tu[0].(term.Ref); ok {
			c.mu.Lock()
			ch, found := c.calls[ref.Key()]
			delete(c.calls, ref.Key())
			c.mu.Unlock()
			if found {
				ch <- tu[1]
				return
			}
		}
	}
	if c.routed(msg) {
		return
	}
	if tu, ok := msg.(term.Tuple); ok && len(tu) == 2 {
		if ref, ok := tu[0].(term.Ref); ok && ref.Node == c.local {
			// The reply to a call that gave up waiting (its deadline passed).
			c.log.Debug("late RPC reply dropped", "ref", ref.String())
			return
		}
	}
	c.toMailbox(Message{From: from, To: to, Msg: msg})
}

func (c *Conn) toMailbox(m Message) {
	select {
	case c.mailbox <- m:
	default:
		c.log.Warn("mailbox full, message dropped", "msg", term.Format(m.Msg))
	}
}

func (c *Conn) deliverNamed(from term.Pid, name term.Atom, msg term.Term) {
	c.mu.Lock()
	h, ok := c.names[name]
	c.mu.Unlock()
	if !ok {
		c.log.Debug("message for an unregistered name dropped", "name", name)
		return
	}
	h(c, from, msg)
}

// netKernel answers net_adm:ping/1 ({is_auth, Node} gen_server calls) with yes.
func netKernel(c *Conn, _ term.Pid, msg term.Term) {
	caller, tag, req, ok := genCall(msg)
	if ok && len(req) == 2 && term.IsAtom(req[0], "is_auth") {
		if err := c.Send(caller, term.Tuple{tag, term.Atom("yes")}); err != nil {
			c.log.Debug("is_auth reply failed", "err", err)
		}
	}
}
