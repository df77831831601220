package xmpp

import (
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Private XML storage (XEP-0049, and with it the legacy bookmarks of
// XEP-0048) as ejabberd 23.01's mod_private with its SQL backend: a user
// stores and reads XML by namespace (one private_storage row each); only
// the user's own.

const nsPrivate = "jabber:iq:private"

func (s *Service) privateOn() bool { return s.opt.Config.Modules["mod_private"] }

func (s *Service) privateIQ(el, p *codec.Element, to jid.JID) {
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return
	}
	if from.Bare() != to.Bare() || p.Name != "query" {
		s.bounce(el, stanza.NewError("forbidden", "Query to another users is forbidden"))
		return
	}
	// The children that name their namespace (mod_private's
	// filter_xmlels).
	type item struct {
		ns string
		el *codec.Element
	}
	var items []item
	for _, k := range p.Kids {
		if c, ok := k.(*codec.Element); ok {
			if ns, _ := c.Attr("xmlns"); ns != "" {
				items = append(items, item{ns, c})
			}
		}
	}
	if len(items) == 0 {
		s.bounce(el, stanza.NewError("bad-request", "No private data found in this query"))
		return
	}
	ctx, cancel := dbctx()
	defer cancel()
	if stanza.Attr(el, "type") == "set" {
		data := make([][2]string, len(items))
		for i, it := range items {
			data[i] = [2]string{it.ns, string(codec.AppendElement(nil, it.el))}
		}
		if err := s.store.SetPrivateData(ctx, from.Domain, from.Local, data); err != nil {
			s.log.Warn("storing private data failed", "user", from.Bare().String(), "err", err)
			s.bounce(el, errDatabase())
			return
		}
		// With PEP, legacy bookmarks are published as well (mod_private's
		// publish_data): its error is the answer.
		for _, it := range items {
			if it.ns == nsBookmarks && s.pepOn() {
				opts := [][2]string{{"access_model", "whitelist"}, {"persist_items", "true"}}
				if e := s.publishItem(from.Bare(), from, nsBookmarks, "current", []*codec.Element{it.el}, opts, false); e != nil {
					s.bounce(el, e)
					return
				}
			}
		}
		s.reply(el)
		return
	}
	out := &codec.Element{Name: "query", Attrs: [][2]string{{"xmlns", nsPrivate}}}
	for _, it := range items {
		x, found, err := s.store.PrivateData(ctx, from.Domain, from.Local, it.ns)
		if err != nil {
			s.bounce(el, errDatabase())
			return
		}
		if !found {
			out.Kids = append(out.Kids, it.el)
			continue
		}
		stored, err := parseStored(x)
		if err != nil {
			out.Kids = append(out.Kids, it.el)
			continue
		}
		out.Kids = append(out.Kids, stored)
	}
	s.reply(el, out)
}
