package xmpp

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/mimmigrate/mimmigrate/cetsnode"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// The operators' commands, as ejabberdctl's of the same names, served to
// `mimmigrate xmpp` over the node's admin RPC (module mimmigrate_xmpp):
// connected_users, kick_user and kick_session, send_message.

// RPC are the service's admin functions (cetsnode.RPCProvider).
func (s *Service) RPC() map[string]erldist.RPCFunc {
	text := func(args term.List, i int) string {
		if i >= len(args) {
			return ""
		}
		t, _ := term.Text(args[i])
		return t
	}
	return map[string]erldist.RPCFunc{
		// The full JIDs of every session of the cluster, sorted.
		"mimmigrate_xmpp:sm_takeover/2": func(_ term.Atom, args term.List) term.Term {
			sid, ok1 := args[0].(term.Tuple)
			id, ok2 := args[1].(term.Binary)
			if !ok1 || !ok2 {
				return term.Tuple{term.Atom("error"), term.Atom("badarg")}
			}
			return s.smTakeOver(sid, []byte(id))
		},
		"mimmigrate_xmpp:connected_users/0": func(term.Atom, term.List) term.Term {
			var out term.List
			for _, j := range s.ConnectedUsers() {
				out = append(out, term.Binary(j))
			}
			return out
		},
		// {ok, N}: the user's sessions, wherever they are, end with
		// <policy-violation/> "has been kicked".
		"mimmigrate_xmpp:kick_user/2": func(_ term.Atom, args term.List) term.Term {
			n, err := s.KickUser(text(args, 0), text(args, 1))
			if err != nil {
				return errTerm(err)
			}
			return term.Tuple{term.Atom("ok"), int64(n)}
		},
		// ok: the session ends with <conflict/> and the reason.
		"mimmigrate_xmpp:kick_session/4": func(_ term.Atom, args term.List) term.Term {
			if err := s.KickSession(text(args, 0), text(args, 1), text(args, 2), text(args, 3)); err != nil {
				return errTerm(err)
			}
			return term.Atom("ok")
		},
		// [{hosts, _}, {serving, _}, {standby, _}, {listeners, _},
		// {addresses, _}, {certificate_problems, _}]: what a cutover's
		// preflight checks.
		"mimmigrate_xmpp:info/0": func(term.Atom, term.List) term.Term {
			bins := func(ss []string) term.List {
				out := term.List{}
				for _, x := range ss {
					out = append(out, term.Binary(x))
				}
				return out
			}
			var addrs []string
			for _, a := range s.Addrs() {
				addrs = append(addrs, a.String())
			}
			var listeners []string
			for _, l := range s.opt.Config.Listeners {
				listeners = append(listeners, l.Addr())
			}
			return term.List{
				term.Tuple{term.Atom("hosts"), bins(s.opt.Config.Hosts)},
				term.Tuple{term.Atom("serving"), s.Ready()},
				term.Tuple{term.Atom("standby"), s.Standby()},
				term.Tuple{term.Atom("listeners"), bins(listeners)},
				term.Tuple{term.Atom("addresses"), bins(addrs)},
				term.Tuple{term.Atom("certificate_problems"), bins(s.CertificateProblems())},
			}
		},
		// ok: a standby node opens its c2s listeners (a cutover's step).
		"mimmigrate_xmpp:serve/0": func(term.Atom, term.List) term.Term {
			if err := s.Serve(); err != nil {
				return errTerm(err)
			}
			return term.Atom("ok")
		},
		// ok: a message from anyone to anyone, routed as if sent.
		"mimmigrate_xmpp:send_message/5": func(_ term.Atom, args term.List) term.Term {
			if err := s.SendMessage(text(args, 0), text(args, 1), text(args, 2), text(args, 3), text(args, 4)); err != nil {
				return errTerm(err)
			}
			return term.Atom("ok")
		},
	}
}

func errTerm(err error) term.Term {
	return term.Tuple{term.Atom("error"), term.Binary(err.Error())}
}

// ConnectedUsers lists the full JIDs of the cluster's sessions, sorted.
func (s *Service) ConnectedUsers() []string {
	var out []string
	s.node.Sessions.T.Each(func(r cetsnode.Record) {
		if k, ok := r[1].(term.Tuple); ok && len(k) == 4 {
			srv, _ := term.Text(k[0])
			u, _ := term.Text(k[1])
			res, _ := term.Text(k[2])
			out = append(out, u+"@"+srv+"/"+res)
		}
	})
	sort.Strings(out)
	return out
}

// KickUser ends every session of a user, and says how many.
func (s *Service) KickUser(user, host string) (int, error) {
	j, err := jid.Make(user, host, "")
	if err != nil {
		return 0, fmt.Errorf("%s@%s is not a JID", user, host)
	}
	all := latestPerResource(s.node.Sessions.Bare(j.Domain, j.Local))
	for _, ss := range all {
		s.kick(ss, "policy-violation", "has been kicked")
	}
	return len(all), nil
}

// KickSession ends one session with <conflict/> and a reason ("Kicked by
// administrator" when empty).
func (s *Service) KickSession(user, host, resource, reason string) error {
	j, err := jid.Make(user, host, resource)
	if err != nil || resource == "" {
		return fmt.Errorf("%s@%s/%s is not a full JID", user, host, resource)
	}
	if reason == "" {
		reason = "Kicked by administrator"
	}
	ss, ok := s.latest(j)
	if !ok {
		return errors.New("no such session: " + j.String())
	}
	s.kick(ss, "conflict", reason)
	return nil
}

// SendMessage routes a message as mod_admin_extra's send_message does:
// type, from and to as given, a subject and a body (the empty one left
// out), a random id.
func (s *Service) SendMessage(typ, from, to, subject, body string) error {
	f, err := jid.Parse(from)
	if err != nil {
		return fmt.Errorf("from: %q is not a JID", from)
	}
	t, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("to: %q is not a JID", to)
	}
	switch typ {
	case "chat", "normal", "headline", "groupchat":
	default:
		return fmt.Errorf("type: %q is not normal, chat, headline or groupchat", typ)
	}
	el := &codec.Element{Name: "message", Attrs: [][2]string{{"to", t.String()}, {"from", f.String()}, {"type", typ}, {"id", randomID()}}}
	if subject != "" {
		el.Kids = append(el.Kids, &codec.Element{Name: "subject", Kids: []any{subject}})
	}
	if body != "" || subject == "" {
		el.Kids = append(el.Kids, &codec.Element{Name: "body", Kids: []any{body}})
	}
	canon, err := stanza.Canonical(el, t.String(), f.String(), "")
	if err != nil {
		return err
	}
	s.log.Info("message sent by an administrator", "from", f.String(), "to", t.String())
	s.Route(canon)
	return nil
}

// AdminClient runs the service's commands on a node.
type AdminClient struct{ Admin *cetsnode.Admin }

func (a AdminClient) call(ctx context.Context, node, fn string, args ...term.Term) (term.Term, error) {
	res, err := a.Admin.Call(ctx, node, "mimmigrate_xmpp", fn, args...)
	if err != nil {
		return nil, err
	}
	if tu, ok := res.(term.Tuple); ok && len(tu) == 2 && term.IsAtom(tu[0], "error") {
		msg, _ := term.Text(tu[1])
		return nil, &cetsnode.AdminError{Code: "failed", Msg: msg}
	}
	return res, nil
}

// ConnectedUsers lists the cluster's sessions as node sees them.
func (a AdminClient) ConnectedUsers(ctx context.Context, node string) ([]string, error) {
	res, err := a.call(ctx, node, "connected_users")
	if err != nil {
		return nil, err
	}
	items, _ := term.Elems(res)
	out := make([]string, 0, len(items))
	for _, it := range items {
		if s, ok := term.Text(it); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// KickUser ends a user's sessions; it returns how many.
func (a AdminClient) KickUser(ctx context.Context, node, user, host string) (int, error) {
	res, err := a.call(ctx, node, "kick_user", term.Binary(user), term.Binary(host))
	if err != nil {
		return 0, err
	}
	if tu, ok := res.(term.Tuple); ok && len(tu) == 2 {
		n, _ := term.Int(tu[1])
		return int(n), nil
	}
	return 0, &cetsnode.AdminError{Code: "failed", Msg: "unexpected answer " + term.Format(res)}
}

// KickSession ends one session.
func (a AdminClient) KickSession(ctx context.Context, node, user, host, resource, reason string) error {
	_, err := a.call(ctx, node, "kick_session", term.Binary(user), term.Binary(host), term.Binary(resource), term.Binary(reason))
	return err
}

// SendMessage sends a message.
func (a AdminClient) SendMessage(ctx context.Context, node, typ, from, to, subject, body string) error {
	_, err := a.call(ctx, node, "send_message", term.Binary(typ), term.Binary(from), term.Binary(to), term.Binary(subject), term.Binary(body))
	return err
}
