package xmpp

import (
	"slices"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Blocking (XEP-0191) as ejabberd 23.01's mod_blocking: the block list
// is the default privacy list's JID rules that deny everything (a new
// default list "Blocked contacts" when the user has none), so that
// clients of either protocol see one state; every change is pushed to
// the user's resources in both.

const nsBlocking = "urn:xmpp:blocking"

func (s *Service) blockingOn() bool { return s.opt.Config.Modules["mod_blocking"] && s.privacyOn() }

// blockedJIDs are the JIDs a default list blocks (listitems_to_jids:
// its deny rules for a JID that match every stanza; last rule first).
func blockedJIDs(items []storage.PrivacyItem) []string {
	var out []string
	for _, it := range items {
		if it.Type == 'j' && it.Deny && (it.MatchAll || (it.IQ && it.Message && it.PresenceIn && it.PresenceOut)) {
			out = append(out, it.Value)
		}
	}
	slices.Reverse(out)
	return out
}

func blockItems(jids []string) []any {
	out := make([]any, len(jids))
	for i, j := range jids {
		out[i] = &codec.Element{Name: "item", Attrs: [][2]string{{"jid", j}}}
	}
	return out
}

func (s *Service) blockingIQ(el, p *codec.Element, to jid.JID) {
	from, ok := s.ownQuery(el, to)
	if !ok {
		return
	}
	get := stanza.Attr(el, "type") == "get"
	if get != (p.Name == "blocklist") || (p.Name != "blocklist" && p.Name != "block" && p.Name != "unblock") {
		s.bounce(el, stanza.NewError("service-unavailable", "No module is handling this query"))
		return
	}
	var jids []string
	for _, k := range p.Kids {
		it, ok := k.(*codec.Element)
		if !ok || it.Name != "item" || (stanza.NS(it) != "" && stanza.NS(it) != nsBlocking) {
			continue
		}
		v, ok := it.Attr("jid")
		if !ok {
			s.bounce(el, badRequest("Missing attribute 'jid' in tag <item/> qualified by namespace '%s'", nsBlocking))
			return
		}
		j, err := jid.Parse(v)
		if err != nil {
			s.bounce(el, badRequest("Bad value of attribute 'jid' in tag <item/> qualified by namespace '%s'", nsBlocking))
			return
		}
		jids = append(jids, j.String())
	}
	ctx, cancel := dbctx()
	defer cancel()
	def, items, err := s.store.DefaultPrivacyList(ctx, from.Domain, from.Local)
	if err != nil {
		s.bounce(el, errDatabase())
		return
	}
	fail := func(err error) bool {
		if err != nil {
			s.log.Warn("changing the block list failed", "user", from.Bare().String(), "err", err)
			s.bounce(el, errDatabase())
		}
		return err != nil
	}
	switch p.Name {
	case "blocklist":
		s.reply(el, &codec.Element{Name: "blocklist", Attrs: [][2]string{{"xmlns", nsBlocking}}, Kids: blockItems(blockedJIDs(items))})
		return
	case "block":
		if len(jids) == 0 {
			s.bounce(el, stanza.NewError("bad-request", "No items found in this query"))
			return
		}
		isNew := def == ""
		if isNew {
			def = "Blocked contacts"
		}
		already := blockedJIDs(items)
		var added []storage.PrivacyItem
		for _, j := range jids {
			if !slices.Contains(already, j) {
				added = append(added, storage.PrivacyItem{Type: 'j', Value: j, Deny: true, Order: "0", MatchAll: true})
			}
		}
		if fail(s.store.SetPrivacyList(ctx, from.Domain, from.Local, def, append(added, items...), isNew)) {
			return
		}
	case "unblock":
		if def == "" {
			break
		}
		kept := items[:0:0]
		for _, it := range items {
			switch {
			case len(jids) == 0 && it.Deny:
			case len(jids) > 0 && it.Deny && it.Type == 'j' && slices.Contains(jids, it.Value):
			default:
				kept = append(kept, it)
			}
		}
		if fail(s.store.SetPrivacyList(ctx, from.Domain, from.Local, def, kept, false)) {
			return
		}
	}
	if def != "" {
		s.privacyChanged(from)
		s.pushPrivacy(from, def)
	}
	event := &codec.Element{Name: p.Name, Attrs: [][2]string{{"xmlns", nsBlocking}}, Kids: blockItems(jids)}
	for _, ss := range s.node.Sessions.Bare(from.Domain, from.Local) {
		s.Route(&codec.Element{Name: "iq", Attrs: [][2]string{{"to", fullJID(ss).String()}, {"from", from.Bare().String()}, {"type", "set"}, {"id", "push" + randomID()}},
			Kids: []any{event}})
	}
	s.reply(el)
}
