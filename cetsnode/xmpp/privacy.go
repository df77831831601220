package xmpp

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Privacy lists (XEP-0016) as ejabberd 23.01's mod_privacy with its SQL
// backend, over the migrated privacy_* tables: a user's lists, the
// default one, the one a session made active; and their enforcement
// where ejabberd's c2s and session manager enforce them — stanzas coming
// to a session (messages, IQs, presence), what a client sends (an error
// "Your active privacy list has denied the routing of this stanza."),
// presence broadcasts, probes and their answers (dropped silently), and
// messages for a user without a session (the default list). Blocking
// (XEP-0191, blocking.go) edits the default list, as ejabberd does, so
// that both views agree.

const nsPrivacy = "jabber:iq:privacy"

func (s *Service) privacyOn() bool { return s.opt.Config.Modules["mod_privacy"] }

// privacyCache keeps users' lists as read (invalidated on every node
// when a user's lists change).
type privacyCache struct {
	mu    sync.Mutex
	users map[string]*userPrivacy
}

type userPrivacy struct {
	loaded bool
	def    string
	lists  map[string][]storage.PrivacyItem // by name; nil entry: no such list
}

func (c *privacyCache) forget(user jid.JID) {
	c.mu.Lock()
	delete(c.users, user.Bare().String())
	c.mu.Unlock()
}

// privacyChanged forgets a user's lists here and on every other node.
func (s *Service) privacyChanged(user jid.JID) { s.forgetEverywhere("privacy", user) }

// forgetEverywhere drops what the nodes cache of a user's data of a kind
// (privacy lists, the photo hash): here, and on the other nodes by a
// message.
func (s *Service) forgetEverywhere(kind string, user jid.JID) {
	s.forget(kind, user)
	for _, peer := range s.node.Sessions.T.Nodes() {
		msg := term.Tuple{term.Atom("forget"), term.Atom(kind), term.Binary(user.Bare().String())}
		if err := s.node.Send(peer, ServiceName, msg); err != nil {
			s.log.Info("telling another node to forget a cached value failed", "node", peer, "kind", kind, "err", err)
		}
	}
}

func (s *Service) forget(kind string, user jid.JID) {
	switch kind {
	case "privacy":
		s.privacy.forget(user)
	case "photo":
		s.photos.Delete(user.Bare().String())
	}
}

// privacyList returns a user's list by name ("": the default one); ok is
// false when there is none.
func (s *Service) privacyList(user jid.JID, name string) ([]storage.PrivacyItem, bool) {
	key := user.Bare().String()
	s.privacy.mu.Lock()
	if s.privacy.users == nil {
		s.privacy.users = map[string]*userPrivacy{}
	}
	u := s.privacy.users[key]
	if u == nil {
		u = &userPrivacy{lists: map[string][]storage.PrivacyItem{}}
		s.privacy.users[key] = u
	}
	loaded := u.loaded
	def := u.def
	s.privacy.mu.Unlock()
	if !loaded {
		ctx, cancel := dbctx()
		d, _, err := s.store.PrivacyLists(ctx, user.Domain, user.Local)
		cancel()
		if err != nil {
			s.log.Warn("reading privacy lists failed", "user", key, "err", err)
			return nil, false
		}
		s.privacy.mu.Lock()
		u.loaded, u.def = true, d
		s.privacy.mu.Unlock()
		def = d
	}
	if name == "" {
		if def == "" {
			return nil, false
		}
		name = def
	}
	s.privacy.mu.Lock()
	items, known := u.lists[name]
	s.privacy.mu.Unlock()
	if known {
		return items, items != nil
	}
	ctx, cancel := dbctx()
	defer cancel()
	items, found, err := s.store.PrivacyList(ctx, user.Domain, user.Local, name)
	if err != nil {
		s.log.Warn("reading a privacy list failed", "user", key, "err", err)
		return nil, false
	}
	if found && items == nil {
		items = []storage.PrivacyItem{}
	}
	s.privacy.mu.Lock()
	u.lists[name] = items
	s.privacy.mu.Unlock()
	return items, found
}

// allowed is mod_privacy's check_packet: a stanza coming to user (in) or
// sent by user (out), against the session's active list or else the
// default list.
func (s *Service) allowed(user jid.JID, active string, el *codec.Element, in bool) bool {
	if !s.privacyOn() {
		return true
	}
	var items []storage.PrivacyItem
	found := false
	if active != "" {
		items, found = s.privacyList(user, active)
	}
	if !found {
		items, found = s.privacyList(user, "")
	}
	if !found || len(items) == 0 {
		return true
	}
	from, err1 := jid.Parse(stanza.Attr(el, "from"))
	to, err2 := jid.Parse(stanza.Attr(el, "to"))
	if err1 != nil || err2 != nil {
		return true
	}
	switch {
	case in && from.Local == "" && from.Domain == user.Domain:
		return true // from the server
	case !in && to.Local == "" && to.Domain == user.Domain:
		return true // to the server
	case in && from.Resource == "" && from.Bare() == user.Bare():
		return true
	case !in && to.Resource == "" && to.Bare() == user.Bare():
		return true
	}
	kind := "other"
	typ := stanza.Attr(el, "type")
	switch {
	case el.Name == "message" && in:
		kind = "message"
	case el.Name == "iq" && in:
		kind = "iq"
	case el.Name == "presence" && (typ == "" || typ == "unavailable") && in:
		kind = "presence_in"
	case el.Name == "presence" && (typ == "" || typ == "unavailable"):
		kind = "presence_out"
	}
	peer := from
	if !in {
		peer = to
	}
	var rosterLoaded bool
	var sub string
	var groups []string
	roster := func() {
		if !rosterLoaded {
			rosterLoaded = true
			sub = subNone
			if it, ok := s.rosterItem(user, peer.Bare()); ok {
				sub, groups = it.Subscription, it.Groups
			}
		}
	}
	for _, it := range items {
		if !it.MatchAll {
			switch kind {
			case "message":
				if !it.Message {
					continue
				}
			case "iq":
				if !it.IQ {
					continue
				}
			case "presence_in":
				if !it.PresenceIn {
					continue
				}
			case "presence_out":
				if !it.PresenceOut {
					continue
				}
			default:
				continue
			}
		}
		match := false
		switch it.Type {
		case 'n':
			match = true
		case 'j':
			v, err := jid.Parse(it.Value)
			if err != nil {
				continue
			}
			switch {
			case v.Local == "" && v.Resource == "":
				match = peer.Domain == v.Domain
			case v.Resource == "":
				match = peer.Local == v.Local && peer.Domain == v.Domain
			case v.Local == "":
				match = peer.Domain == v.Domain && peer.Resource == v.Resource
			default:
				match = peer == v
			}
		case 's':
			roster()
			match = sub == it.Value
		case 'g':
			roster()
			match = slices.Contains(groups, it.Value)
		}
		if match {
			return !it.Deny
		}
	}
	return true
}

// ownQuery is the requester of a query only a user may make of its own
// data; another user's is answered forbidden (ok false).
func (s *Service) ownQuery(el *codec.Element, to jid.JID) (jid.JID, bool) {
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return from, false
	}
	if from.Bare() != to.Bare() {
		s.bounce(el, stanza.NewError("forbidden", "Query to another users is forbidden"))
		return from, false
	}
	return from, true
}

// activeList is a session's active list ("" for none).
func (l *local) activeList() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.privacyActive
}

// privacyIQ answers jabber:iq:privacy for the user's own lists.
func (s *Service) privacyIQ(el, p *codec.Element, to jid.JID) {
	from, ok := s.ownQuery(el, to)
	if !ok {
		return
	}
	if p.Name != "query" {
		s.bounce(el, stanza.NewError("service-unavailable", "No module is handling this query"))
		return
	}
	q, perr := parsePrivacyQuery(p)
	if perr != nil {
		s.bounce(el, perr)
		return
	}
	// Errors from here on carry the query as the codec writes it back.
	decoded := *el
	decoded.Kids = []any{q.element()}
	l := s.localSession(from)
	if stanza.Attr(el, "type") == "get" {
		s.privacyGet(&decoded, from, l, q)
		return
	}
	s.privacySet(&decoded, from, l, q)
}

// element writes a decoded query back as the codec does: active,
// default, then the lists.
func (q *privacyQuery) element() *codec.Element {
	out := &codec.Element{Name: "query", Attrs: [][2]string{{"xmlns", nsPrivacy}}}
	if q.active != nil {
		out.Kids = append(out.Kids, named("active", *q.active))
	}
	if q.def != nil {
		out.Kids = append(out.Kids, named("default", *q.def))
	}
	for _, l := range q.lists {
		list := named("list", l.name)
		for _, it := range l.items {
			e := &codec.Element{Name: "item"}
			for _, a := range []string{"value", "type"} {
				if v := stanza.Attr(it, a); v != "" {
					e.Attrs = append(e.Attrs, [2]string{a, v})
				}
			}
			order, _ := strconv.ParseUint(stanza.Attr(it, "order"), 10, 64)
			e.Attrs = append(e.Attrs, [2]string{"order", strconv.FormatUint(order, 10)}, [2]string{"action", stanza.Attr(it, "action")})
			d, _ := decodePrivacyItem(it)
			e.Kids = kindChildren(d)
			list.Kids = append(list.Kids, e)
		}
		out.Kids = append(out.Kids, list)
	}
	return out
}

// privacyQuery is a decoded jabber:iq:privacy query: nil active or def
// when the element is not there, "" when it has no name.
type privacyQuery struct {
	active, def *string
	lists       []privacyQueryList
}

type privacyQueryList struct {
	name  string
	items []*codec.Element
}

func parsePrivacyQuery(p *codec.Element) (*privacyQuery, *stanza.Error) {
	q := &privacyQuery{}
	for _, k := range p.Kids {
		c, ok := k.(*codec.Element)
		if !ok || (stanza.NS(c) != "" && stanza.NS(c) != nsPrivacy) {
			continue
		}
		name := stanza.Attr(c, "name")
		switch c.Name {
		case "active":
			q.active = &name
		case "default":
			q.def = &name
		case "list":
			if _, ok := c.Attr("name"); !ok {
				return nil, badRequest("Missing attribute 'name' in tag <list/> qualified by namespace '%s'", nsPrivacy)
			}
			l := privacyQueryList{name: name}
			for _, ik := range c.Kids {
				if it, ok := ik.(*codec.Element); ok && it.Name == "item" && (stanza.NS(it) == "" || stanza.NS(it) == nsPrivacy) {
					if err := checkPrivacyItem(it); err != nil {
						return nil, err
					}
					l.items = append(l.items, it)
				}
			}
			q.lists = append(q.lists, l)
		}
	}
	return q, nil
}

// checkPrivacyItem is what the codec refuses of an item.
func checkPrivacyItem(it *codec.Element) *stanza.Error {
	attr := func(name string) *stanza.Error {
		return badRequest("Bad value of attribute '%s' in tag <item/> qualified by namespace '%s'", name, nsPrivacy)
	}
	action, ok := it.Attr("action")
	if !ok {
		return badRequest("Missing attribute 'action' in tag <item/> qualified by namespace '%s'", nsPrivacy)
	}
	if action != "allow" && action != "deny" {
		return attr("action")
	}
	order, ok := it.Attr("order")
	if !ok {
		return badRequest("Missing attribute 'order' in tag <item/> qualified by namespace '%s'", nsPrivacy)
	}
	if n, err := strconv.ParseUint(order, 10, 64); err != nil || fmt.Sprint(n) == "" {
		return attr("order")
	}
	if t, ok := it.Attr("type"); ok && t != "jid" && t != "group" && t != "subscription" {
		return attr("type")
	}
	return nil
}

// decodePrivacyItem is mod_privacy's decode_item: the item as stored.
func decodePrivacyItem(it *codec.Element) (storage.PrivacyItem, *stanza.Error) {
	bad := badRequest("Bad value of attribute 'value' in tag <item/> qualified by namespace '%s'", nsPrivacy)
	order, _ := strconv.ParseUint(stanza.Attr(it, "order"), 10, 64)
	out := storage.PrivacyItem{Deny: stanza.Attr(it, "action") == "deny", Order: strconv.FormatUint(order, 10)}
	value := stanza.Attr(it, "value")
	switch stanza.Attr(it, "type") {
	case "jid":
		j, err := jid.Parse(value)
		if err != nil {
			return out, bad
		}
		out.Type, out.Value = 'j', j.String()
	case "group":
		if value == "" {
			return out, bad
		}
		out.Type, out.Value = 'g', value
	case "subscription":
		switch value {
		case "none", "both", "from", "to":
		default:
			return out, bad
		}
		out.Type, out.Value = 's', value
	default:
		out.Type = 'n'
	}
	for _, k := range it.Kids {
		if c, ok := k.(*codec.Element); ok && (stanza.NS(c) == "" || stanza.NS(c) == nsPrivacy) {
			switch c.Name {
			case "message":
				out.Message = true
			case "iq":
				out.IQ = true
			case "presence-in":
				out.PresenceIn = true
			case "presence-out":
				out.PresenceOut = true
			}
		}
	}
	if !out.Message && !out.IQ && !out.PresenceIn && !out.PresenceOut {
		out.MatchAll = true
	}
	return out, nil
}

// encodePrivacyItem writes an item as the codec does.
func encodePrivacyItem(it storage.PrivacyItem) *codec.Element {
	e := &codec.Element{Name: "item"}
	typ := map[byte]string{'j': "jid", 'g': "group", 's': "subscription"}[it.Type]
	if it.Type != 'n' && it.Value != "" {
		e.Attrs = append(e.Attrs, [2]string{"value", it.Value})
	}
	if typ != "" {
		e.Attrs = append(e.Attrs, [2]string{"type", typ})
	}
	action := "allow"
	if it.Deny {
		action = "deny"
	}
	e.Attrs = append(e.Attrs, [2]string{"order", it.Order}, [2]string{"action", action})
	e.Kids = kindChildren(it)
	return e
}

// kindChildren are the kinds of stanza an item matches, as the codec
// writes them (none when it matches every stanza).
func kindChildren(it storage.PrivacyItem) []any {
	var out []any
	if it.MatchAll {
		return out
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{it.PresenceIn, "presence-in"}, {it.Message, "message"}, {it.PresenceOut, "presence-out"}, {it.IQ, "iq"}} {
		if f.on {
			out = append(out, &codec.Element{Name: f.name})
		}
	}
	return out
}

func named(name, n string) *codec.Element {
	e := &codec.Element{Name: name}
	if n != "" {
		e.Attrs = [][2]string{{"name", n}}
	}
	return e
}

func (s *Service) privacyGet(el *codec.Element, user jid.JID, l *local, q *privacyQuery) {
	switch {
	case q.active != nil || q.def != nil:
		s.bounce(el, stanza.NewError("bad-request", "Only <list/> element is allowed in this query"))
	case len(q.lists) > 1:
		s.bounce(el, stanza.NewError("bad-request", "Too many <list/> elements"))
	case len(q.lists) == 1:
		name := q.lists[0].name
		items, found := s.privacyList(user, name)
		if !found {
			s.bounce(el, stanza.NewError("item-not-found", "No privacy list with this name found"))
			return
		}
		list := named("list", name)
		for _, it := range items {
			list.Kids = append(list.Kids, encodePrivacyItem(it))
		}
		s.reply(el, &codec.Element{Name: "query", Attrs: [][2]string{{"xmlns", nsPrivacy}}, Kids: []any{list}})
	default:
		ctx, cancel := dbctx()
		defer cancel()
		def, names, err := s.store.PrivacyLists(ctx, user.Domain, user.Local)
		if err != nil {
			s.bounce(el, errDatabase())
			return
		}
		active := ""
		if l != nil {
			active = l.activeList()
		}
		out := &codec.Element{Name: "query", Attrs: [][2]string{{"xmlns", nsPrivacy}}, Kids: []any{named("active", active), named("default", def)}}
		for _, n := range names {
			out.Kids = append(out.Kids, named("list", n))
		}
		s.reply(el, out)
	}
}

func (s *Service) privacySet(el *codec.Element, user jid.JID, l *local, q *privacyQuery) {
	ctx, cancel := dbctx()
	defer cancel()
	switch {
	case len(q.lists) == 1 && q.def == nil && q.active == nil:
		list := q.lists[0]
		if len(list.items) == 0 {
			if l != nil && l.activeList() == list.name {
				s.bounce(el, stanza.NewError("conflict", "Cannot remove active list"))
				return
			}
			s.privacyDone(el, user, s.store.RemovePrivacyList(ctx, user.Domain, user.Local, list.name))
			return
		}
		items := make([]storage.PrivacyItem, 0, len(list.items))
		for _, e := range list.items {
			it, perr := decodePrivacyItem(e)
			if perr != nil {
				s.bounce(el, perr)
				return
			}
			items = append(items, it)
		}
		if err := s.store.SetPrivacyList(ctx, user.Domain, user.Local, list.name, items, false); err != nil {
			s.log.Warn("storing a privacy list failed", "user", user.Bare().String(), "err", err)
			s.bounce(el, errDatabase())
			return
		}
		s.privacyChanged(user)
		s.pushPrivacy(user, list.name)
		s.reply(el)
	case len(q.lists) == 0 && q.def == nil && q.active != nil:
		name := *q.active
		if name != "" {
			if _, found := s.privacyList(user, name); !found {
				s.bounce(el, stanza.NewError("item-not-found", "No privacy list with this name found"))
				return
			}
		}
		if l != nil {
			l.mu.Lock()
			l.privacyActive = name
			l.mu.Unlock()
		}
		s.reply(el)
	case len(q.lists) == 0 && q.active == nil && q.def != nil:
		s.privacyDone(el, user, s.store.SetDefaultPrivacyList(ctx, user.Domain, user.Local, *q.def))
	default:
		s.bounce(el, stanza.NewError("bad-request", "The stanza MUST contain only one <active/> element, one <default/> element, or one <list/> element"))
	}
}

// privacyDone answers a change of a user's lists: done, or ejabberd's
// error for why not.
func (s *Service) privacyDone(el *codec.Element, user jid.JID, err error) {
	switch {
	case errors.Is(err, storage.ErrDefaultList):
		s.bounce(el, stanza.NewError("conflict", "Cannot remove default list"))
	case errors.Is(err, storage.ErrNoList):
		s.bounce(el, stanza.NewError("item-not-found", "No privacy list with this name found"))
	case err != nil:
		s.bounce(el, errDatabase())
	default:
		s.privacyChanged(user)
		s.reply(el)
	}
}

// pushPrivacy tells every resource of the user that a list changed.
func (s *Service) pushPrivacy(user jid.JID, name string) {
	for _, ss := range s.node.Sessions.Bare(user.Domain, user.Local) {
		s.Route(&codec.Element{Name: "iq", Attrs: [][2]string{{"to", fullJID(ss).String()}, {"from", user.Bare().String()}, {"type", "set"}, {"id", "push" + randomID()}},
			Kids: []any{&codec.Element{Name: "query", Attrs: [][2]string{{"xmlns", nsPrivacy}}, Kids: []any{named("list", name)}}}})
	}
}

// privacyIn is the check of what comes to a session (ejabberd_c2s's
// process_*_in): what the lists deny is dropped — an IQ, and a message
// but a groupchat, a headline or a room's, answered service-unavailable.
// A probe is answered by the probe's own check, an error passes.
func (s *Service) privacyIn(l *local, el *codec.Element) bool {
	if !s.privacyOn() {
		return true
	}
	typ := stanza.Attr(el, "type")
	if el.Name == "presence" && (typ == "probe" || typ == "error") {
		return true
	}
	if s.allowed(l.jid(), l.activeList(), el, true) {
		return true
	}
	switch {
	case el.Name == "message" && (typ == "groupchat" || typ == "headline" || child(el, "x", nsMUCUser) != nil):
	case el.Name == "message" || el.Name == "iq":
		s.bounce(el, stanza.NewError("service-unavailable", ""))
	}
	return false
}

// privacyOut is the check of what a client sends (check_privacy_then_route):
// false when its lists deny it, and the client has been told.
func (s *Service) privacyOut(l *local, el *codec.Element) bool {
	if !s.privacyOn() || s.allowed(l.jid(), l.activeList(), el, false) {
		return true
	}
	// Straight to the client (the lists would stop it on its way back).
	if t := stanza.Attr(el, "type"); t != "error" && t != "result" {
		l.mu.Lock()
		c := l.conn
		l.mu.Unlock()
		c.Route(stanza.ErrorReply(el, stanza.NewError("not-acceptable", "Your active privacy list has denied the routing of this stanza."), stanza.Attr(el, "xml:lang")))
	}
	return false
}
