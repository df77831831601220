package xmpp

import (
	"sort"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/c2s"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Client state indication (XEP-0352) as ejabberd 23.01's
// mod_client_state: while a client says it is inactive, availability
// presence, standalone chat states and PEP notifications to it wait (the
// latest of each kind per sender); anything else from a sender first
// releases what waits from that sender, and the client saying it is
// active again (or resuming its stream) releases everything, each with a
// <delay/> "Client Inactive".

const (
	nsCSI       = "urn:xmpp:csi:0"
	nsPubsubEvt = "http://jabber.org/protocol/pubsub#event"
	csiQueueMax = 100
)

func (s *Service) csiOn() bool {
	c := s.opt.Config
	return c.Modules["mod_client_state"] && (c.CSI.Presence || c.CSI.ChatStates || c.CSI.PEP)
}

// csiKey is what a waiting stanza replaces: the latest of a kind per
// sender.
type csiKey struct {
	from string // the full JID, prepared
	kind string // presence, chatstate, pep:<node>
}

type csiEntry struct {
	seq int
	at  time.Time
	el  *codec.Element
}

// CSI takes a client's <active/> or <inactive/>.
func (s *Service) CSI(c *c2s.Conn, active bool) {
	if !s.csiOn() {
		return
	}
	s.mu.Lock()
	l := s.byConn[c]
	s.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	l.csiInactive = !active
	var flush []*codec.Element
	if active {
		flush = l.csiTake(func(csiKey) bool { return true })
	}
	l.mu.Unlock()
	for _, el := range flush {
		c.Route(el)
	}
}

// csiTake removes the waiting stanzas whose key matches, oldest first,
// with their delay (l.mu held).
func (l *local) csiTake(match func(csiKey) bool) []*codec.Element {
	var es []csiEntry
	for k, e := range l.csiQueue {
		if match(k) {
			es = append(es, e)
			delete(l.csiQueue, k)
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].seq < es[j].seq })
	out := make([]*codec.Element, len(es))
	for i, e := range es {
		out[i] = c2s.WithDelay(e.el, l.sess.Server, e.at, "Client Inactive")
	}
	return out
}

// csiFilter is what a session sends for a stanza routed to it: nothing
// (it waits), or what waited from its sender, then it.
func (s *Service) csiFilter(l *local, el *codec.Element) []*codec.Element {
	if !s.csiOn() {
		return []*codec.Element{el}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		from = fullJID(l.sess)
	}
	if l.csiInactive {
		if kind := s.csiKind(el, from, fullJID(l.sess)); kind != "" {
			var out []*codec.Element
			if len(l.csiQueue) >= csiQueueMax {
				out = l.csiTake(func(csiKey) bool { return true })
			}
			if l.csiQueue == nil {
				l.csiQueue = map[csiKey]csiEntry{}
			}
			l.csiSeq++
			l.csiQueue[csiKey{from.String(), kind}] = csiEntry{seq: l.csiSeq, at: time.Now(), el: el}
			return out
		}
	}
	if len(l.csiQueue) == 0 {
		return []*codec.Element{el}
	}
	bare := from.Bare()
	out := l.csiTake(func(k csiKey) bool {
		j, err := jid.Parse(k.from)
		return err == nil && j.Bare() == bare
	})
	return append(out, el)
}

// csiKind says whether a stanza waits while the client is inactive, and
// as what.
func (s *Service) csiKind(el *codec.Element, from, to jid.JID) string {
	opt := s.opt.Config.CSI
	switch el.Name {
	case "presence":
		if t := stanza.Attr(el, "type"); opt.Presence && (t == "" || t == "unavailable") {
			return "presence"
		}
	case "message":
		if opt.ChatStates && standaloneChatState(el) && from.Bare() != to.Bare() {
			return "chatstate"
		}
		if opt.PEP && from.Local != "" {
			if ev := child(el, "event", nsPubsubEvt); ev != nil {
				if items := ev.Child("items"); items != nil {
					return "pep:" + stanza.Attr(items, "node")
				}
			}
		}
	}
	return ""
}

// standaloneChatState is misc:is_standalone_chat_state: no body or
// subject, and nothing but chat states, delays and XEP-0022 events (of a
// carbon copy, the copied message).
func standaloneChatState(el *codec.Element) bool {
	for _, dir := range []string{"sent", "received"} {
		if cc := child(el, dir, nsCarbons); cc != nil {
			if f := child(cc, "forwarded", nsForward); f != nil {
				if m := f.Child("message"); m != nil {
					el = m
				}
			}
			break
		}
	}
	for _, k := range el.Kids {
		c, ok := k.(*codec.Element)
		if !ok {
			continue
		}
		switch stanza.NS(c) {
		case nsChatState, nsDelay, nsEvent:
			continue
		case "", "jabber:client":
			if c.Name == "thread" {
				continue
			}
		}
		return false
	}
	return true
}
