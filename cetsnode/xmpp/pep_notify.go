package xmpp

import (
	"slices"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// What PEP sends on its own: the notifications of a publish and the last
// items a session is given, by the caps each session has seen.

// notification is a PEP event message from the owner's bare JID, with
// the replyto address of the publisher.
func notification(owner, to, publisher jid.JID, typ string, items *codec.Element) *codec.Element {
	return &codec.Element{Name: "message", Attrs: [][2]string{{"to", to.String()}, {"from", owner.String()}, {"type", typ}}, Kids: []any{
		&codec.Element{Name: "event", Attrs: [][2]string{{"xmlns", nsPubsubEvt}}, Kids: []any{items}},
		&codec.Element{Name: "addresses", Attrs: [][2]string{{"xmlns", nsAddress}}, Kids: []any{
			&codec.Element{Name: "address", Attrs: [][2]string{{"jid", publisher.String()}, {"type", "replyto"}}}}},
	}}
}

// pepBroadcast sends a new item to the owner's bare JID and, through
// the publishing session, to every resource whose caps ask for it.
func (s *Service) pepBroadcast(owner, publisher jid.JID, n pepNode, items *codec.Element) {
	typ := n.opt("notification_type")
	if l := s.localSession(publisher); l != nil && publisher.Resource != "" {
		for _, c := range l.capsList() {
			if s.deliveryPermitted(owner, c.jid, n) && slices.Contains(s.capsFeatures(c.caps), n.Node+"+notify") {
				s.Route(notification(owner, c.jid, publisher, typ, items))
			}
		}
	}
	s.Route(notification(owner, owner, publisher, typ, items))
}

// deliveryPermitted is mod_pubsub's delivery_permitted.
func (s *Service) deliveryPermitted(owner, to jid.JID, n pepNode) bool {
	switch n.opt("access_model") {
	case "open", "presence":
		return true
	case "whitelist", "authorize":
		return to.Bare() == owner
	}
	return false
}

// sendLastPEP sends the owner's (l's user's) last item of each node
// whose NODE+notify is in the recipient's features, as mod_pubsub's
// send_last_pep does through the owner's session.
func (s *Service) sendLastPEP(l *local, to jid.JID, features []string) {
	self := l.jid()
	owner := self.Bare()
	ctx, cancel := dbctx()
	defer cancel()
	nodes, err := s.store.PubSubNodes(ctx, owner.String())
	if err != nil {
		s.log.Warn("reading PEP nodes failed", "owner", owner.String(), "err", err)
		return
	}
	for _, sn := range nodes {
		n := pepNode{sn}
		if !slices.Contains(features, n.Node+"+notify") || n.opt("send_last_published_item") != "on_sub_and_presence" || !s.deliveryPermitted(owner, to, n) {
			continue
		}
		var it storage.PubSubItem
		var found bool
		if n.maxItems() == 1 {
			all, _, err := s.store.PubSubItems(ctx, n.Nidx, 0)
			if err != nil {
				continue
			}
			// get_only_item: the one item, or the first modified.
			for i, x := range all {
				if i == 0 || x.Modification < it.Modification {
					it, found = x, true
				}
			}
		} else if it, found, err = s.store.LastPubSubItem(ctx, n.Nidx); err != nil {
			continue
		}
		if !found {
			continue
		}
		items := &codec.Element{Name: "items", Attrs: [][2]string{{"node", n.Node}}, Kids: []any{pepItemElement(it, n)}}
		s.Route(notification(owner, to, self, n.opt("notification_type"), items))
	}
}
