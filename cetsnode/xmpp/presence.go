package xmpp

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/c2s"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Presence as ejabberd_c2s keeps it for a session (RFC 6121 §4): the last
// available presence the client sent (answering probes, with its time in
// a delay), the JIDs it sent directed presence to (told when it goes
// unavailable), and — ours — the full JIDs whose available presence it
// received, with the node that routed it, so that when a node dies the
// sessions that saw its users available are told they are not.

// local is a session on this node.
type local struct {
	conn *c2s.Conn

	mu       sync.Mutex
	sess     cetsnode.Session
	last     *codec.Element // the last available presence (pres_last)
	lastAt   time.Time
	directed map[string]jid.JID   // pres_a
	seen     map[string]term.Atom // available presence received: from → via node
	// Client state indication: what waits while the client is inactive.
	csiInactive bool
	csiQueue    map[csiKey]csiEntry
	csiSeq      int
	ping        pinger
	// privacyActive is the session's active privacy list ("": none).
	privacyActive string
	// caps are the entity capabilities of the resources whose presence
	// the session received (mod_caps' caps_resources), by full JID;
	// lastPEP, the contacts that probed the user and wait for its last
	// PEP items until their caps are known.
	caps    map[string]capsRef
	lastPEP map[string]bool
}

// Subscription states (RFC 6121 §2.1.2.5).
const (
	subNone = "none"
	subTo   = "to"
	subFrom = "from"
	subBoth = "both"
)

// presenceOut is a presence a session sends: to its own bare JID it is
// its own presence, else it goes where it is addressed.
func (s *Service) presenceOut(l *local, el *codec.Element) {
	own := l.jid()
	el = s.withPhotoHash(own, el)
	to, err := jid.Parse(stanza.Attr(el, "to"))
	if err != nil {
		return
	}
	if to.IsBare() && to.Local == own.Local && to.Domain == own.Domain {
		s.selfPresence(l, el)
		return
	}
	typ := stanza.Attr(el, "type")
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		// The roster changes, then the presence goes, from the bare JID.
		if s.rosterOn() {
			s.processSubscription(false, own.Bare(), to, typ, "")
		}
		if s.privacyOut(l, el) {
			s.Route(stanza.Address(el, "", to.String(), own.Bare().String()))
		}
		return
	case "error", "probe":
		s.Route(el)
		return
	}
	if !s.privacyOut(l, el) {
		return
	}
	s.Route(el)
	if to.Bare() != own.Bare() {
		if sub := s.subscription(own, to); sub != subBoth && sub != subFrom {
			l.mu.Lock()
			if typ == "unavailable" {
				delete(l.directed, to.String())
			} else {
				if l.directed == nil {
					l.directed = map[string]jid.JID{}
				}
				l.directed[to.String()] = to
			}
			l.mu.Unlock()
		}
	}
}

// selfPresence: available presence sets the session's priority (0
// unless given) and goes to the user's resources and the contacts
// subscribed to it; the first one also probes the contacts the user is
// subscribed to. Unavailable presence goes there and to every JID given
// directed presence.
func (s *Service) selfPresence(l *local, el *codec.Element) {
	own := l.jid()
	switch stanza.Attr(el, "type") {
	case "unavailable":
		s.setPresence(l, false, 0)
		l.mu.Lock()
		l.last = nil
		l.mu.Unlock()
		status := ""
		if st := el.Child("status"); st != nil {
			status = st.Text()
		}
		s.storeLast(own, status)
		s.broadcastUnavailable(l, el, true)
	case "":
		s.capsSent(l, el)
		prio := priority(el)
		s.setPresence(l, true, prio)
		l.mu.Lock()
		first, lastPrio := l.last == nil, int64(-1)
		if l.last != nil {
			lastPrio = priority(l.last)
		}
		l.mu.Unlock()
		if first && prio >= 0 && s.rosterOn() {
			s.resendPending(l)
		}
		if lastPrio < 0 && prio >= 0 && s.offlineOn() {
			s.deliverOffline(own)
		}
		l.mu.Lock()
		l.last, l.lastAt = el, time.Now()
		l.mu.Unlock()
		if first {
			probe := &codec.Element{Name: "presence", Attrs: [][2]string{{"from", own.String()}, {"type", "probe"}}}
			s.broadcast(l, probe, append(s.rosterTargets(own, subTo, subBoth), own.Bare()))
		}
		s.broadcast(l, el, append(s.rosterTargets(own, subFrom, subBoth), own.Bare()))
	}
}

func priority(el *codec.Element) int64 {
	if p := el.Child("priority"); p != nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(p.Text()), 10, 64); err == nil {
			return n
		}
	}
	return 0
}

// setPresence records a session's availability in the session table.
func (s *Service) setPresence(l *local, available bool, prio int64) {
	l.mu.Lock()
	l.sess.Available, l.sess.Priority = available, prio
	sess := l.sess
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.node.Sessions.Register(ctx, sess); err != nil {
		s.log.Warn("updating a session's presence failed", "err", err)
	}
}

// broadcastUnavailable sends an unavailable presence to the user's other
// resources, every JID given directed presence and, when the session was
// available (toRoster), the contacts subscribed to the user.
func (s *Service) broadcastUnavailable(l *local, el *codec.Element, toRoster bool) {
	own := l.jid()
	targets := map[string]jid.JID{own.Bare().String(): own.Bare()}
	if toRoster {
		for _, j := range s.rosterTargets(own, subFrom, subBoth) {
			targets[j.String()] = j
		}
	}
	l.mu.Lock()
	for k, j := range l.directed {
		targets[k] = j
	}
	l.directed = nil
	l.mu.Unlock()
	active := l.activeList()
	for _, j := range targets {
		out := stanza.Address(el, "", j.String(), own.String())
		if s.allowed(own, active, out, false) {
			s.Route(out)
		}
	}
}

// presenceIn takes a presence routed to a session here and says whether
// it goes to the client: a probe is answered from the last presence, an
// error ends directed presence to its sender.
func (s *Service) presenceIn(l *local, el *codec.Element, via term.Atom) bool {
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return false
	}
	switch stanza.Attr(el, "type") {
	case "probe":
		s.probeReply(l, from)
		return false
	case "error":
		l.mu.Lock()
		delete(l.directed, from.String())
		l.mu.Unlock()
	case "":
		if from.Resource != "" {
			l.mu.Lock()
			if l.seen == nil {
				l.seen = map[string]term.Atom{}
			}
			l.seen[from.String()] = via
			l.mu.Unlock()
		}
	case "unavailable":
		l.mu.Lock()
		delete(l.seen, from.String())
		l.mu.Unlock()
	}
	s.capsIn(l, el, from)
	return true
}

// probeReply answers a probe with the last presence, stamped with when it
// was sent, to the user's other resources and to contacts subscribed to
// the user.
func (s *Service) probeReply(l *local, from jid.JID) {
	own := l.jid()
	l.mu.Lock()
	last, at := l.last, l.lastAt
	l.mu.Unlock()
	if last == nil {
		return
	}
	another := from.Bare() == own.Bare() && from.Resource != own.Resource
	if sub := s.subscription(own, from); !another && sub != subBoth && sub != subFrom {
		return
	}
	stamp := codec.XMPPStamp(at.UnixMicro())
	reply, err := codec.CanonicalStanza(last, own.String(), from.String(), "", func(els []any, top string) []any {
		for _, k := range els {
			if c := k.(*codec.Element); c.Name == "delay" && stanza.NS(c) == "urn:xmpp:delay" && stanza.Attr(c, "from") == own.String() {
				return els
			}
		}
		return append(els, &codec.Element{Name: "delay", Attrs: [][2]string{{"from", own.String()}, {"stamp", stamp}, {"xmlns", "urn:xmpp:delay"}}})
	})
	if err != nil {
		return
	}
	reply.Attrs = reply.Attrs[:len(reply.Attrs)-1] // the stream's xmlns
	if s.allowed(own, l.activeList(), reply, false) {
		s.Route(reply)
		s.pepProbed(l, from)
	}
}

// closed ends a session's presence as ejabberd does when a connection
// ends: unavailable to its resources and directed-presence JIDs, and to
// its contacts when it was available.
func (s *Service) closed(l *local) {
	l.mu.Lock()
	wasAvailable := l.last != nil
	l.last = nil
	l.mu.Unlock()
	own := l.jid()
	if wasAvailable {
		s.storeLast(own, l.conn.EndReason())
	}
	pres := &codec.Element{Name: "presence", Attrs: [][2]string{{"to", own.Bare().String()}, {"from", own.String()}, {"type", "unavailable"}}}
	s.broadcastUnavailable(l, pres, wasAvailable)
}

// PeerDown: a node of the cluster is gone with its sessions. Every
// session here that received available presence through it from a full
// JID is told that JID is unavailable now.
func (s *Service) PeerDown(peer term.Atom) {
	s.mu.Lock()
	ls := make([]*local, 0, len(s.local))
	for _, l := range s.local {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	for _, l := range ls {
		var gone []string
		l.mu.Lock()
		for f, via := range l.seen {
			if via == peer {
				gone = append(gone, f)
				delete(l.seen, f)
			}
		}
		l.mu.Unlock()
		for _, f := range gone {
			pres := &codec.Element{Name: "presence", Attrs: [][2]string{{"to", l.jid().String()}, {"from", f}, {"type", "unavailable"}}}
			if err := l.conn.Route(pres); err == nil {
				s.stats.peerDownPresence.Add(1)
			}
		}
	}
	if n := len(ls); n > 0 {
		s.log.Info("node down: its users' presence withdrawn from this node's sessions", "peer", peer)
	}
}

// jid is the session's full JID (known from its registration, before the
// client has read its bind result).
func (l *local) jid() jid.JID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fullJID(l.sess)
}
