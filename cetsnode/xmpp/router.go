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

// Routing follows ejabberd 23.01's ejabberd_router, ejabberd_local and
// ejabberd_sm (RFC 6121 §8.5): a stanza to a domain this cluster does
// not serve is answered remote-server-not-found (there is no s2s); to a
// served domain itself it is the server's (ejabberd_local); to a user it
// goes to the user's sessions, wherever in the cluster they are: a
// session on this node gets it from here, one on another node through
// that node's service (message {route, SID, Element, From}).

// Route sends a stanza (to and from set) on its way.
func (s *Service) Route(el *codec.Element) { s.route(el, meta{}) }

// route sends a stanza on its way with its meta.
func (s *Service) route(el *codec.Element, m meta) {
	to, err := jid.Parse(stanza.Attr(el, "to"))
	if err != nil {
		return // addresses are checked where stanzas come in
	}
	s.stats.routed.Add(1)
	switch {
	case !s.servesDomain(to.Domain):
		s.bounce(el, stanza.NewError("remote-server-not-found", ""))
	case to.Local == "":
		s.routeServer(el, to)
	default:
		s.routeUser(el, to, m)
	}
}

func (s *Service) servesDomain(d string) bool {
	for _, h := range s.opt.Config.Hosts {
		if h == d {
			return true
		}
	}
	return false
}

// bounce answers a stanza with an error, routed back to its sender —
// never an error or a result.
func (s *Service) bounce(el *codec.Element, e *stanza.Error) {
	if t := stanza.Attr(el, "type"); t == "error" || t == "result" {
		return
	}
	s.stats.routingErrors.Add(1)
	lang := stanza.Attr(el, "xml:lang")
	s.Route(stanza.ErrorReply(el, e, lang))
}

// routeServer: a stanza to the domain (ejabberd_local): an IQ to the bare
// domain is the server's modules'; results and errors end here; a
// presence or headline to the bare domain is dropped; anything else has
// no resource to go to.
func (s *Service) routeServer(el *codec.Element, to jid.JID) {
	typ := stanza.Attr(el, "type")
	switch {
	case el.Name == "iq" && to.Resource == "":
		switch typ {
		case "get", "set":
			s.serverIQ(el, to)
		default:
			s.pingAnswer(el)
		}
	case typ == "result" || typ == "error":
	case to.Resource == "" && (el.Name == "presence" || typ == "headline"):
	default:
		s.bounce(el, stanza.NewError("item-not-found", "No available resource found"))
	}
}

// routeUser is ejabberd_sm's route: a message gets its archive id, then
// do_route.
func (s *Service) routeUser(el *codec.Element, to jid.JID, m meta) {
	el, m = s.smReceive(el, to, m)
	typ := stanza.Attr(el, "type")
	if el.Name == "presence" && (typ == "subscribe" || typ == "subscribed" || typ == "unsubscribe" || typ == "unsubscribed") {
		if s.allowed(to, "", el, true) {
			s.inSubscription(el, to)
		}
		return
	}
	if to.Resource == "" {
		switch el.Name {
		case "presence":
			for _, ss := range s.present(to) {
				s.deliver(ss, stanza.Address(el, "", fullJID(ss).String(), stanza.Attr(el, "from")), m)
			}
		case "message":
			switch typ {
			case "chat", "headline", "normal", "":
				s.routeMessage(el, to, m)
			default:
				s.bounce(el, stanza.NewError("service-unavailable", "User session not found"))
			}
		case "iq":
			if typ == "get" || typ == "set" {
				s.userIQ(el, to)
			}
		}
		return
	}
	if ss, ok := s.latest(to); ok {
		s.deliver(ss, el, m)
		return
	}
	s.noSession(el, to, m)
}

// noSession is what a stanza to a full JID with no session becomes: a
// chat or normal message goes to the user's other resources (or offline),
// a headline or presence is dropped, the rest is bounced.
func (s *Service) noSession(el *codec.Element, to jid.JID, m meta) {
	typ := stanza.Attr(el, "type")
	switch {
	case el.Name == "message" && (typ == "chat" || typ == "normal" || typ == ""):
		s.routeMessage(el, to.Bare(), m)
	case el.Name == "message" && typ == "headline", el.Name == "presence":
	default:
		s.bounce(el, stanza.NewError("service-unavailable", "User session not found"))
	}
}

// routeMessage delivers a chat, normal or headline message to a user's
// available resources of the highest non-negative priority (a headline to
// every resource of a non-negative one); with none it goes to offline
// storage, or is bounced. Of the resources of the highest priority, the
// one whose name sorts last archives it; the others get copies
// (ejabberd_sm's maybe_mark_as_copy).
func (s *Service) routeMessage(el *codec.Element, to jid.JID, m meta) {
	all := s.present(to)
	maxPrio, maxRes, any := int64(0), "", false
	for _, ss := range all {
		if !any || ss.Priority > maxPrio || (ss.Priority == maxPrio && ss.Resource > maxRes) {
			maxPrio, maxRes, any = ss.Priority, ss.Resource, true
		}
	}
	if any && maxPrio >= 0 {
		headline := stanza.Attr(el, "type") == "headline"
		for _, ss := range all {
			if ss.Priority == maxPrio || (headline && ss.Priority >= 0) {
				mm := m
				mm.copy = m.copy || (ss.Priority == maxPrio && ss.Resource != maxRes)
				s.deliver(ss, el, mm)
			}
		}
		return
	}
	s.offline(el, to, m)
}

// offline: the user has no session to take a message. A user that does
// not exist: service-unavailable. Otherwise offline storage takes it
// (mod_offline); what it does not take, ejabberd bounces if it is a chat,
// normal or groupchat message ("User session not found") and drops if it
// is a headline. A message the archive took first is not bounced
// (mod_mam's offline hook).
func (s *Service) offline(el *codec.Element, to jid.JID, m meta) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exists, err := s.store.UserExists(ctx, to.Domain, to.Local)
	if err != nil {
		s.log.Warn("checking a user failed", "user", to.Bare().String(), "err", err)
		s.bounce(el, stanza.NewError("internal-server-error", ""))
		return
	}
	if !exists || !s.allowed(to, "", el, true) {
		s.bounce(el, stanza.NewError("service-unavailable", ""))
		return
	}
	el, archived := s.archiveReceived(to, el, m)
	if s.storeOffline(el, to) || archived {
		return
	}
	if stanza.Attr(el, "type") != "headline" {
		s.bounce(el, stanza.NewError("service-unavailable", "User session not found"))
	}
}

// present lists a user's available sessions (those that sent their
// initial presence), the latest session of each resource.
func (s *Service) present(to jid.JID) []cetsnode.Session {
	all := s.node.Sessions.Bare(to.Domain, to.Local)
	out := all[:0:0]
	for _, ss := range all {
		if ss.Available {
			out = append(out, ss)
		}
	}
	return latestPerResource(out)
}

func latestPerResource(all []cetsnode.Session) []cetsnode.Session {
	best := map[string]int{}
	var out []cetsnode.Session
	for _, ss := range all {
		if i, ok := best[ss.Resource]; ok {
			if olderSID(out[i].SID, ss.SID) {
				out[i] = ss
			}
			continue
		}
		best[ss.Resource] = len(out)
		out = append(out, ss)
	}
	return out
}

// latest is the newest session of a full JID.
func (s *Service) latest(to jid.JID) (cetsnode.Session, bool) {
	all := s.node.Sessions.Full(to.Domain, to.Local, to.Resource)
	if len(all) == 0 {
		return cetsnode.Session{}, false
	}
	return latestPerResource(all)[0], true
}

// deliver hands a stanza to a session, on this node or another.
func (s *Service) deliver(ss cetsnode.Session, el *codec.Element, m meta) {
	if ss.Node == s.node.Self() {
		s.deliverHere(sidKey(ss.SID), el, s.node.Self(), m)
		return
	}
	msg := term.Tuple{term.Atom("route"), ss.SID, codec.ElementTerm(el), m.term()}
	if err := s.node.Send(ss.Node, ServiceName, msg); err != nil {
		s.log.Info("routing to another node failed", "node", ss.Node, "err", err)
		s.undeliverable(el)
		return
	}
	s.stats.remote.Add(1)
}

// deliverHere gives a stanza to a session of this node, as ejabberd_c2s
// takes a routed stanza: a probe is answered, not delivered; presence
// from others is remembered so that their node's end can be told; a
// message is archived for the session's user (and marked with its id).
func (s *Service) deliverHere(key string, el *codec.Element, via term.Atom, m meta) {
	s.mu.Lock()
	l := s.local[key]
	s.mu.Unlock()
	if l == nil {
		s.undeliverable(el)
		return
	}
	if !s.privacyIn(l, el) {
		return
	}
	if el.Name == "presence" && !s.presenceIn(l, el, via) {
		return
	}
	if el.Name == "message" {
		l.mu.Lock()
		user := fullJID(l.sess)
		l.mu.Unlock()
		el, _ = s.archiveReceived(user, el, m)
		s.carbonCopies(user, el, false, m)
	}
	// As ejabberd_c2s's fix_from_to: a stanza to a full JID reaches the
	// client addressed to the session's own (a message to a resource that
	// is gone, given to this one), one to the bare JID as it is.
	if to, err := jid.Parse(stanza.Attr(el, "to")); err == nil && to.Resource != "" {
		l.mu.Lock()
		own := fullJID(l.sess)
		l.mu.Unlock()
		if to != own {
			el = stanza.Address(el, "", own.String(), stanza.Attr(el, "from"))
		}
	}
	for _, out := range s.csiFilter(l, el) {
		if err := l.conn.Route(out); err != nil {
			s.undeliverable(out)
		}
	}
}

// undeliverable: the session a stanza was given to ended before taking
// it (ejabberd's bounce_message_queue): a message goes where a message to
// the user without that session goes; other stanzas are bounced or
// dropped as for a full JID without a session.
func (s *Service) undeliverable(el *codec.Element) {
	to, err := jid.Parse(stanza.Attr(el, "to"))
	if err != nil {
		return
	}
	typ := stanza.Attr(el, "type")
	if el.Name == "message" && (typ == "chat" || typ == "normal" || typ == "") {
		s.offline(el, to.Bare(), meta{})
		return
	}
	s.noSession(el, to, meta{})
}

// routed takes a stanza another node routed to a session here.
func (s *Service) routed(from term.Atom, sid term.Tuple, t term.Term, m meta) bool {
	el, err := codec.ParseElement(t)
	if err != nil {
		return false
	}
	s.deliverHere(sidKey(sid), el, from, m)
	return true
}

// broadcast routes copies of a stanza of a session to several JIDs,
// those its privacy lists let it send to.
func (s *Service) broadcast(l *local, el *codec.Element, to []jid.JID) {
	own, active := l.jid(), l.activeList()
	for _, j := range to {
		out := stanza.Address(el, "", j.String(), stanza.Attr(el, "from"))
		if s.allowed(own, active, out, false) {
			s.Route(out)
		}
	}
}

func fullJID(ss cetsnode.Session) jid.JID {
	return jid.JID{Local: ss.User, Domain: ss.Server, Resource: ss.Resource}
}
