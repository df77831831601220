package xmpp

import (
	"context"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/c2s"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Stream management's session side (c2s does the protocol): which
// session a resumption id names, moving a session to the connection that
// resumed it, and where what a client did not acknowledge goes when its
// session ends. A session is resumed on the node that holds it; a client
// that resumes on another node (after a cutover, or when its address led
// it elsewhere) gets <failed/> with the number of stanzas the old
// session handled, and the old session ends at once, what it had not had
// acknowledged going where a message to the user goes now.

// Resume finds the session a client resumes.
func (s *Service) Resume(ctx context.Context, c *c2s.Conn, resource string, id []byte) (*c2s.Conn, error) {
	for _, ss := range s.node.Sessions.Full(c.Host(), c.User(), resource) {
		if ss.Node != s.node.Self() {
			res, err := s.node.Call(ctx, ss.Node, "mimmigrate_xmpp", "sm_takeover", ss.SID, term.Binary(id))
			if err != nil {
				s.log.Warn("ending a session on another node for a resumption failed", "node", ss.Node, "err", err)
				return nil, &c2s.ResumeError{Text: "Previous session not found"}
			}
			if tu, ok := res.(term.Tuple); ok && len(tu) == 2 && term.IsAtom(tu[0], "ok") {
				if h, ok := term.Int(tu[1]); ok {
					hh := uint32(h)
					return nil, &c2s.ResumeError{Text: "Previous session is on another node", H: &hh}
				}
			}
			continue
		}
		s.mu.Lock()
		l := s.local[sidKey(ss.SID)]
		s.mu.Unlock()
		if l != nil && l.conn.ResumableBy(id) {
			return l.conn, nil
		}
	}
	return nil, &c2s.ResumeError{Text: "Previous session not found"}
}

// smTakeOver ends a session of this node that a client resumes on
// another: {ok, H} with the stanzas it handled, or {error, not_found}.
func (s *Service) smTakeOver(sid term.Tuple, id []byte) term.Term {
	s.mu.Lock()
	l := s.local[sidKey(sid)]
	s.mu.Unlock()
	if l != nil {
		if h, ok := l.conn.TakeOver(id); ok {
			s.log.Info("a session was resumed on another node: ended here", "jid", fullJID(l.sess).String())
			return term.Tuple{term.Atom("ok"), int64(h)}
		}
	}
	return term.Tuple{term.Atom("error"), term.Atom("not_found")}
}

// Resumed moves a session to the connection that resumed it.
func (s *Service) Resumed(old, c *c2s.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byConn[old]
	if l == nil {
		return
	}
	delete(s.byConn, old)
	s.byConn[c] = l
	l.mu.Lock()
	l.conn = c
	// The new stream is active (mod_client_state): what waited goes.
	l.csiInactive = false
	flush := l.csiTake(func(csiKey) bool { return true })
	l.mu.Unlock()
	for _, el := range flush {
		c.Route(el)
	}
}

// Unacked is what mod_stream_mgmt does with what a session's client did
// not acknowledge when the session ends: presence and carbon copies are
// dropped; an IQ is answered with an error; a message is re-routed when
// resend says so (with offline storage, one the archive holds too), else
// dropped if the archive holds it, else bounced.
func (s *Service) Unacked(c *c2s.Conn, el *codec.Element, resend bool) {
	switch el.Name {
	case "presence":
		return
	case "iq":
		s.bounce(el, stanza.NewError("service-unavailable", "User session terminated"))
		return
	}
	if child(el, "sent", nsCarbons) != nil || child(el, "received", nsCarbons) != nil {
		return
	}
	archived := false
	if sid := child(el, "stanza-id", nsSID); sid != nil && stanza.Attr(sid, "by") == c.JID().Bare().String() {
		archived = true
	}
	switch {
	case resend && (s.offlineOn() || !archived):
		s.undeliverable(el)
	case archived:
	default:
		s.bounce(el, stanza.NewError("service-unavailable", "User session terminated"))
	}
}

// Offline: the user has no other session, or only one of the same
// resource (resend_on_timeout: if_offline).
func (s *Service) Offline(c *c2s.Conn) bool {
	for _, ss := range s.node.Sessions.Bare(c.Host(), c.User()) {
		if ss.Resource != c.JID().Resource {
			return false
		}
	}
	return true
}
