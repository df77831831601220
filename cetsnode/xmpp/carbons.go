package xmpp

import (
	"context"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Message carbons (XEP-0280) as ejabberd 23.01's mod_carboncopy: a
// resource enables them with an IQ, which is kept in its session's info
// in the replicated session table (so every node knows who wants
// copies); a chat message a resource sends is copied to the user's other
// available resources that enabled carbons, and one it receives to
// those that did not get the original — each copy wrapped in
// <sent/> or <received/> and <forwarded/>, with the archive id the
// message was given.

const (
	nsCarbons       = "urn:xmpp:carbons:2"
	nsReceipts      = "urn:xmpp:receipts"
	nsMUCUser       = "http://jabber.org/protocol/muc#user"
	nsConference    = "jabber:x:conference"
	carbonsInfoName = "carboncopy"
)

func (s *Service) carbonsOn() bool { return s.opt.Config.Modules["mod_carboncopy"] }

// carbonsIQ enables or disables carbons for the requesting resource.
func (s *Service) carbonsIQ(el, p *codec.Element, to jid.JID) {
	if stanza.Attr(el, "type") == "get" {
		s.bounce(el, stanza.NewError("not-allowed", "Value 'get' of 'type' attribute is not allowed"))
		return
	}
	if (p.Name == "sent" || p.Name == "received") && child(p, "forwarded", nsForward) == nil {
		// The codec cannot read it.
		s.bounce(el, stanza.NewError("bad-request", "Missing tag <forwarded/> qualified by namespace '"+nsCarbons+"'"))
		return
	}
	if p.Name != "enable" && p.Name != "disable" {
		s.bounce(el, stanza.NewError("bad-request", "Only <enable/> or <disable/> tags are allowed"))
		return
	}
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return
	}
	l := s.localSession(from)
	if l == nil {
		s.bounce(el, errDatabase())
		return
	}
	l.mu.Lock()
	l.sess.Info = setInfo(l.sess.Info, carbonsInfoName, term.Binary(nsCarbons), p.Name == "enable")
	sess := l.sess
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.node.Sessions.Register(ctx, sess); err != nil {
		s.log.Warn("updating a session's info failed", "err", err)
		s.bounce(el, errDatabase())
		return
	}
	s.reply(el)
}

// localSession is the session of a full JID on this node.
func (s *Service) localSession(j jid.JID) *local {
	for _, ss := range s.node.Sessions.Full(j.Domain, j.Local, j.Resource) {
		s.mu.Lock()
		l := s.local[sidKey(ss.SID)]
		s.mu.Unlock()
		if l != nil {
			return l
		}
	}
	return nil
}

// setInfo sets (or removes) the {Name, Value} entry of a session's info.
func setInfo(info term.Term, name string, value term.Term, on bool) term.Term {
	l, _ := info.(term.List)
	out := make(term.List, 0, len(l)+1)
	for _, e := range l {
		if tu, ok := e.(term.Tuple); ok && len(tu) == 2 && term.IsAtom(tu[0], term.Atom(name)) {
			continue
		}
		out = append(out, e)
	}
	if on {
		out = append(out, term.Tuple{term.Atom(name), value})
	}
	return out
}

// carbonsEnabled reports whether a session asked for carbons.
func carbonsEnabled(ss cetsnode.Session) bool {
	l, _ := ss.Info.(term.List)
	for _, e := range l {
		if tu, ok := e.(term.Tuple); ok && len(tu) == 2 && term.IsAtom(tu[0], carbonsInfoName) {
			return true
		}
	}
	return false
}

// carbonCopies sends the copies of a message a resource of user sent
// (sent) or received (!sent): check_and_forward of mod_carboncopy. el is
// the message as the hooks before have it (with the archive id).
func (s *Service) carbonCopies(user jid.JID, el *codec.Element, sent bool, m meta) {
	if !s.carbonsOn() || el.Name != "message" || m.carbon {
		return
	}
	to, err := jid.Parse(stanza.Attr(el, "to"))
	if err != nil {
		return
	}
	if !(isChatMessage(el) || (!sent && isMUCInvite(el))) ||
		(!sent && to.Resource != "" && child(el, "x", nsMUCUser) != nil) ||
		child(el, "private", nsCarbons) != nil || child(el, "no-copy", nsHints) != nil {
		return
	}
	present := s.present(user.Bare())
	maxPrio, any := int64(0), false
	for _, ss := range present {
		if !any || ss.Priority > maxPrio {
			maxPrio, any = ss.Priority, true
		}
	}
	available := func(res string) (cetsnode.Session, bool) {
		for _, ss := range present {
			if ss.Resource == res {
				return ss, true
			}
		}
		return cetsnode.Session{}, false
	}
	bareTo := false
	if !sent {
		_, avail := available(to.Resource)
		bareTo = to.Resource == "" || !avail
	}
	if bareTo && m.copy {
		return // the resource routed first makes the copies
	}
	for _, ss := range present {
		if !carbonsEnabled(ss) {
			continue
		}
		if bareTo && ss.Priority == maxPrio {
			continue // it got the original
		}
		if !bareTo && ss.Resource == user.Resource {
			continue
		}
		s.route(carbon(el, user.Bare(), fullJID(ss), sent), meta{carbon: true})
	}
}

// carbon wraps a message for a resource of its user.
func carbon(el *codec.Element, user, dest jid.JID, sent bool) *codec.Element {
	fwd, err := codec.CanonicalStanza(el, stanza.Attr(el, "from"), stanza.Attr(el, "to"), "", nil)
	if err != nil {
		fwd = el
	}
	dir := "received"
	if sent {
		dir = "sent"
	}
	out := &codec.Element{Name: "message", Attrs: [][2]string{{"to", dest.String()}, {"from", user.String()}}}
	if t := stanza.Attr(el, "type"); t != "" && t != "normal" {
		out.Attrs = append(out.Attrs, [2]string{"type", t})
	}
	out.Kids = []any{&codec.Element{Name: dir, Attrs: [][2]string{{"xmlns", nsCarbons}}, Kids: []any{
		&codec.Element{Name: "forwarded", Attrs: [][2]string{{"xmlns", nsForward}}, Kids: []any{fwd}},
	}}}
	return out
}

// isChatMessage is mod_carboncopy's is_chat_message: a chat message; a
// normal one with a body, a chat state or a receipt.
func isChatMessage(el *codec.Element) bool {
	switch stanza.Attr(el, "type") {
	case "chat":
		return true
	case "", "normal":
		if b := el.Child("body"); b != nil {
			return true
		}
		return hasNS(el, nsChatState) || child(el, "received", nsReceipts) != nil
	}
	return false
}

// isMUCInvite: a mediated (muc#user) or direct (jabber:x:conference)
// room invitation.
func isMUCInvite(el *codec.Element) bool {
	if x := child(el, "x", nsMUCUser); x != nil && x.Child("invite") != nil {
		return true
	}
	return child(el, "x", nsConference) != nil
}
