package xmpp

import (
	"errors"
	"strconv"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stream"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Offline messages (XEP-0160) as ejabberd 23.01's mod_offline with its
// SQL backend: a message to a user with no available resource is stored
// in spool as ejabberd writes it (from and to set, a <delay/> from the
// server "Offline Storage"), up to the limit of the shaper rule
// access_max_user_messages names, and routed to the user when a session
// first becomes available with a non-negative priority — the messages
// ejabberd stored before the migration too.

const (
	nsHints     = "urn:xmpp:hints"
	nsChatState = "http://jabber.org/protocol/chatstates"
	nsEvent     = "jabber:x:event"
	nsExpire    = "jabber:x:expire"
	nsDelay     = "urn:xmpp:delay"
	nsOffline   = "http://jabber.org/protocol/offline"
)

func (s *Service) offlineOn() bool { return s.opt.Config.Modules["mod_offline"] }

func child(el *codec.Element, name, ns string) *codec.Element {
	for _, k := range el.Kids {
		if c, ok := k.(*codec.Element); ok && c.Name == name && stanza.NS(c) == ns {
			return c
		}
	}
	return nil
}

func hasNS(el *codec.Element, ns string) bool {
	for _, k := range el.Kids {
		if c, ok := k.(*codec.Element); ok && stanza.NS(c) == ns {
			return true
		}
	}
	return false
}

// needToStore is mod_offline's need_to_store.
func (s *Service) needToStore(el *codec.Element) bool {
	typ := stanza.Attr(el, "type")
	if typ == "error" || hasNS(el, nsOffline) {
		return false
	}
	switch {
	case child(el, "store", nsHints) != nil:
		return true
	case child(el, "no-store", nsHints) != nil, child(el, "no-storage", nsHints) != nil:
		return false
	}
	opt := s.opt.Config.Offline
	switch {
	case typ == "headline", typ == "groupchat" && !opt.StoreGroupchat:
		return false
	}
	body := el.Child("body") != nil
	switch opt.StoreEmptyBody {
	case "true":
		return true
	case "false":
		return body
	}
	// unless_chat_state: not a chat state on its own.
	if body || el.Child("subject") != nil {
		return true
	}
	for _, k := range el.Kids {
		if c, ok := k.(*codec.Element); ok {
			switch stanza.NS(c) {
			case nsChatState, nsDelay, nsEvent:
			default:
				if c.Name != "thread" {
					return true
				}
			}
		}
	}
	return false
}

// checkEvent is mod_offline's handling of XEP-0022 events: composing
// notifications are not stored; a request for the offline event is
// answered.
func (s *Service) checkEvent(el *codec.Element) bool {
	x := child(el, "x", nsEvent)
	if x == nil {
		return true
	}
	id := x.Child("id")
	switch {
	case id == nil && x.Child("offline") == nil:
		return true
	case id == nil:
		s.Route(&codec.Element{Name: "message", Attrs: [][2]string{{"to", stanza.Attr(el, "from")}, {"from", stanza.Attr(el, "to")}, {"type", stanza.Attr(el, "type")}, {"id", stanza.Attr(el, "id")}},
			Kids: []any{&codec.Element{Name: "x", Attrs: [][2]string{{"xmlns", nsEvent}}, Kids: []any{
				&codec.Element{Name: "id", Kids: []any{stanza.Attr(el, "id")}}, &codec.Element{Name: "offline"}}}}})
		return true
	case x.Child("composing") != nil:
		return false
	case x.Child("delivered") == nil && x.Child("displayed") == nil && x.Child("offline") == nil:
		return false
	}
	return true
}

// storeOffline offers a message to the user's spool: handled says the
// message needs nothing more (stored, or refused with an error to the
// sender); otherwise ejabberd's bounce rules apply.
func (s *Service) storeOffline(el *codec.Element, to jid.JID) (handled bool) {
	if !s.offlineOn() || !s.needToStore(el) || !s.checkEvent(el) {
		return false
	}
	xml, err := codec.CanonicalStanza(el, stanza.Attr(el, "from"), stanza.Attr(el, "to"), "", func(els []any, top string) []any {
		return withDelay(els, to.Domain, time.Now().UnixMicro(), "Offline Storage")
	})
	if err != nil {
		return false
	}
	ctx, cancel := dbctx()
	defer cancel()
	err = s.store.StoreOffline(ctx, to.Domain, to.Local, string(codec.AppendElement(nil, xml)), s.opt.Config.Offline.MaxMessages)
	switch {
	case err == nil:
		s.stats.offlineStored.Add(1)
		return true
	case stanza.Attr(el, "type") == "groupchat" && !s.opt.Config.Offline.BounceGroupchat:
		return true
	case errors.Is(err, storage.ErrSpoolFull):
		s.bounce(el, stanza.NewError("resource-constraint", "Your contact offline message queue is full. The message has been discarded."))
		return true
	default:
		s.log.Warn("storing an offline message failed", "user", to.Bare().String(), "err", err)
		s.bounce(el, errDatabase())
		return true
	}
}

// withDelay appends a <delay/> from the host unless one from it is there
// (misc:add_delay_info).
func withDelay(els []any, host string, usec int64, text string) []any {
	for _, k := range els {
		if c, ok := k.(*codec.Element); ok && c.Name == "delay" && stanza.NS(c) == nsDelay && stanza.Attr(c, "from") == host {
			return els
		}
	}
	d := &codec.Element{Name: "delay", Attrs: [][2]string{{"from", host}, {"stamp", codec.XMPPStamp(usec)}, {"xmlns", nsDelay}}}
	if text != "" {
		d.Kids = []any{text}
	}
	return append(els, d)
}

// deliverOffline routes a user's stored messages, oldest first, when a
// session first becomes available (mod_offline's c2s_self_presence). A
// message whose XEP-0023 expiry has passed is dropped.
func (s *Service) deliverOffline(user jid.JID) {
	ctx, cancel := dbctx()
	defer cancel()
	msgs, err := s.store.PopOffline(ctx, user.Domain, user.Local)
	if err != nil {
		s.log.Warn("reading offline messages failed", "user", user.Bare().String(), "err", err)
		return
	}
	for _, x := range msgs {
		el, err := stream.ParseElement([]byte(x), stream.Limits{})
		if err != nil {
			s.log.Warn("an offline message is not XML; dropped", "user", user.Bare().String(), "err", err)
			continue
		}
		from, err1 := jid.Parse(stanza.Attr(el, "from"))
		to, err2 := jid.Parse(stanza.Attr(el, "to"))
		if err1 != nil || err2 != nil {
			s.log.Warn("an offline message has no valid from or to; dropped", "user", user.Bare().String())
			continue
		}
		canon, err := codec.CanonicalStanza(el, from.String(), to.String(), "", func(els []any, top string) []any {
			return withDelay(els, user.Domain, time.Now().UnixMicro(), "Offline storage")
		})
		if err != nil {
			s.log.Warn("an offline message cannot be read; dropped", "user", user.Bare().String(), "err", err)
			continue
		}
		canon.Attrs = canon.Attrs[:len(canon.Attrs)-1] // the stream's xmlns
		if expired(canon) {
			continue
		}
		s.stats.offlineDelivered.Add(1)
		s.route(canon, meta{fromOffline: true})
	}
}

// expired: a XEP-0023 expiry counted from the storage delay has passed.
func expired(el *codec.Element) bool {
	x := child(el, "x", nsExpire)
	if x == nil {
		return false
	}
	secs, err := strconv.ParseInt(stanza.Attr(x, "seconds"), 10, 64)
	if err != nil {
		return false
	}
	for _, k := range el.Kids {
		if c, ok := k.(*codec.Element); ok && c.Name == "delay" && stanza.NS(c) == nsDelay {
			if t, err := time.Parse(time.RFC3339Nano, stanza.Attr(c, "stamp")); err == nil {
				return time.Since(t) > time.Duration(secs)*time.Second
			}
		}
	}
	return false
}
