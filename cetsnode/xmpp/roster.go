package xmpp

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// The roster (RFC 6121 §2-3) as ejabberd 23.01's mod_roster keeps it, in
// its SQL tables: roster get and set with pushes to every resource,
// roster versioning (XEP-0237), and the subscription state machine with
// its automatic replies, pending requests kept across logins and
// resent at the first available presence.

const (
	nsRoster    = "jabber:iq:roster"
	nsRosterVer = "urn:xmpp:features:rosterver"
)

func (s *Service) rosterOn() bool { return s.opt.Config.Modules["mod_roster"] }

func dbctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// rosterItem reads one contact of a user's roster (by its bare JID).
func (s *Service) rosterItem(user, contact jid.JID) (storage.RosterItem, bool) {
	if !s.rosterOn() {
		return storage.RosterItem{}, false
	}
	ctx, cancel := dbctx()
	defer cancel()
	it, ok, err := s.store.RosterItem(ctx, user.Domain, user.Local, contact.Bare().String())
	if err != nil {
		s.log.Warn("reading a roster item failed", "user", user.Bare().String(), "err", err)
	}
	return it, ok
}

// subscription is user's subscription with contact (none without
// mod_roster, as roster_get_jid_info answers then).
func (s *Service) subscription(user, contact jid.JID) string {
	if it, ok := s.rosterItem(user, contact); ok {
		return it.Subscription
	}
	return subNone
}

// roster reads a user's roster.
func (s *Service) roster(user jid.JID) ([]storage.RosterItem, error) {
	ctx, cancel := dbctx()
	defer cancel()
	return s.store.Roster(ctx, user.Domain, user.Local)
}

// rosterTargets are the user's contacts with one of the subscriptions.
func (s *Service) rosterTargets(user jid.JID, subs ...string) []jid.JID {
	if !s.rosterOn() {
		return nil
	}
	items, err := s.roster(user)
	if err != nil {
		s.log.Warn("reading a roster failed", "user", user.Bare().String(), "err", err)
		return nil
	}
	var out []jid.JID
	for _, it := range items {
		for _, sub := range subs {
			if it.Subscription == sub {
				if j, err := jid.Parse(it.JID); err == nil {
					out = append(out, j)
				}
				break
			}
		}
	}
	return out
}

// pending maps ask to the pending state (mod_roster's ask_to_pending).
func pending(ask string) string {
	switch ask {
	case "subscribe":
		return "out"
	case "unsubscribe":
		return "none"
	}
	return ask
}

// itemElement is a roster item as ejabberd's codec writes it (encode_item:
// ask='subscribe' while a request of the user's is pending).
func itemElement(it storage.RosterItem) *codec.Element {
	el := &codec.Element{Name: "item"}
	if p := pending(it.Ask); p == "out" || p == "both" {
		el.Attrs = append(el.Attrs, [2]string{"ask", "subscribe"})
	}
	el.Attrs = append(el.Attrs, [2]string{"subscription", it.Subscription})
	if it.Name != "" {
		el.Attrs = append(el.Attrs, [2]string{"name", it.Name})
	}
	el.Attrs = append(el.Attrs, [2]string{"jid", it.JID})
	for _, g := range it.Groups {
		el.Kids = append(el.Kids, &codec.Element{Name: "group", Kids: []any{g}})
	}
	return el
}

func queryElement(ver string, verSet bool, items []storage.RosterItem) *codec.Element {
	q := &codec.Element{Name: "query"}
	if verSet {
		q.Attrs = append(q.Attrs, [2]string{"ver", ver})
	}
	q.Attrs = append(q.Attrs, [2]string{"xmlns", nsRoster})
	for _, it := range items {
		q.Kids = append(q.Kids, itemElement(it))
	}
	return q
}

// visible drops what a roster get leaves out: contacts that only asked
// to subscribe (none + pending in).
func visible(items []storage.RosterItem) []storage.RosterItem {
	out := items[:0:0]
	for _, it := range items {
		if !(it.Subscription == subNone && pending(it.Ask) == "in") {
			out = append(out, it)
		}
	}
	return out
}

// rosterHash is the roster's version when versions are not stored: a
// digest of the visible items, sorted (ejabberd hashes its Erlang terms:
// the strings differ, so a client's cached version from ejabberd makes it
// fetch the roster once).
func rosterHash(items []storage.RosterItem) string {
	lines := make([]string, 0, len(items))
	for _, it := range visible(items) {
		gs := append([]string(nil), it.Groups...)
		sort.Strings(gs)
		lines = append(lines, strings.Join([]string{it.JID, it.Name, it.Subscription, pending(it.Ask), strings.Join(gs, "\x01")}, "\x00"))
	}
	sort.Strings(lines)
	h := sha1.Sum([]byte(strings.Join(lines, "\x02")))
	return hex.EncodeToString(h[:])
}

func newRosterVersion() string {
	var b [20]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// rosterVersion is the current version (stored, or the hash).
func (s *Service) rosterVersion(user jid.JID) (string, error) {
	ctx, cancel := dbctx()
	defer cancel()
	if s.opt.Config.Roster.StoreCurrentID {
		v, err := s.store.RosterVersion(ctx, user.Domain, user.Local)
		if err != nil || v != "" {
			return v, err
		}
		v = newRosterVersion()
		return v, s.store.SetRosterVersion(ctx, user.Domain, user.Local, v)
	}
	items, err := s.store.Roster(ctx, user.Domain, user.Local)
	return rosterHash(items), err
}

// rosterQuery is a roster query as the codec reads it.
type rosterQuery struct {
	ver    string
	verSet bool
	items  []rosterQueryItem
}

type rosterQueryItem struct {
	jid          jid.JID
	name         string
	subscription string // "" when absent
	ask          bool
	groups       []string
}

// element is the query as ejabberd's codec writes it back.
func (q rosterQuery) element() *codec.Element {
	el := &codec.Element{Name: "query"}
	if q.verSet {
		el.Attrs = append(el.Attrs, [2]string{"ver", q.ver})
	}
	el.Attrs = append(el.Attrs, [2]string{"xmlns", nsRoster})
	for _, it := range q.items {
		item := &codec.Element{Name: "item"}
		if it.ask {
			item.Attrs = append(item.Attrs, [2]string{"ask", "subscribe"})
		}
		sub := it.subscription
		if sub == "" {
			sub = subNone
		}
		item.Attrs = append(item.Attrs, [2]string{"subscription", sub})
		if it.name != "" {
			item.Attrs = append(item.Attrs, [2]string{"name", it.name})
		}
		item.Attrs = append(item.Attrs, [2]string{"jid", it.jid.String()})
		for _, g := range it.groups {
			item.Kids = append(item.Kids, &codec.Element{Name: "group", Kids: []any{g}})
		}
		el.Kids = append(el.Kids, item)
	}
	return el
}

func decodeRosterQuery(p *codec.Element) (rosterQuery, *stanza.Error) {
	bad := func(format string, args ...any) (rosterQuery, *stanza.Error) {
		return rosterQuery{}, stanza.NewError("bad-request", fmt.Sprintf(format, args...))
	}
	if p.Name != "query" {
		return bad("Unknown tag <%s/> qualified by namespace '%s'", p.Name, nsRoster)
	}
	var q rosterQuery
	q.ver, q.verSet = p.Attr("ver")
	for _, k := range p.Kids {
		c, ok := k.(*codec.Element)
		if !ok || c.Name != "item" || (stanza.NS(c) != "" && stanza.NS(c) != nsRoster) {
			continue
		}
		var it rosterQueryItem
		js, ok := c.Attr("jid")
		if !ok {
			return bad("Missing attribute 'jid' in tag <item/> qualified by namespace '%s'", nsRoster)
		}
		j, err := jid.Parse(js)
		if err != nil {
			return bad("Bad value of attribute 'jid' in tag <item/> qualified by namespace '%s'", nsRoster)
		}
		it.jid = j
		it.name = stanza.Attr(c, "name")
		if sub, ok := c.Attr("subscription"); ok {
			switch sub {
			case "none", "to", "from", "both", "remove":
				it.subscription = sub
			default:
				return bad("Bad value of attribute 'subscription' in tag <item/> qualified by namespace '%s'", nsRoster)
			}
		}
		if ask, ok := c.Attr("ask"); ok {
			if ask != "subscribe" {
				return bad("Bad value of attribute 'ask' in tag <item/> qualified by namespace '%s'", nsRoster)
			}
			it.ask = true
		}
		for _, gk := range c.Kids {
			if g, ok := gk.(*codec.Element); ok && g.Name == "group" {
				it.groups = append(it.groups, g.Text())
			}
		}
		q.items = append(q.items, it)
	}
	return q, nil
}

// rosterIQ is mod_roster's process_iq.
func (s *Service) rosterIQ(el, p *codec.Element, to jid.JID) {
	if _, ok := s.ownQuery(el, to); !ok {
		return
	}
	q, serr := decodeRosterQuery(p)
	if serr != nil {
		s.bounce(el, serr)
		return
	}
	// Errors echo the query as the codec decoded it.
	decoded := *el
	decoded.Kids = []any{q.element()}
	el = &decoded
	typ := stanza.Attr(el, "type")
	switch {
	case typ == "set" && len(q.items) == 1:
		it := q.items[0]
		if it.ask {
			s.bounce(el, stanza.NewError("bad-request", "Possessing 'ask' attribute is not allowed by RFC6121"))
			return
		}
		seen := map[string]bool{}
		for _, g := range it.groups {
			pg, _ := jid.Resourceprep(g)
			if seen[pg] {
				s.bounce(el, stanza.NewError("bad-request", "Duplicated groups are not allowed by RFC6121"))
				return
			}
			seen[pg] = true
		}
		s.rosterSet(el, to, it)
	case typ == "set" && len(q.items) > 1:
		s.bounce(el, stanza.NewError("bad-request", "Multiple <item/> elements are not allowed by RFC6121"))
	case typ == "get" && len(q.items) == 0:
		s.rosterGet(el, to, q)
	case typ == "get":
		s.bounce(el, stanza.NewError("bad-request", "The query must not contain <item/> elements"))
	default:
		s.bounce(el, stanza.NewError("service-unavailable", "No module is handling this query"))
	}
}

// rosterGet answers a roster get; with versioning and a version the
// client has, an empty result says it is current.
func (s *Service) rosterGet(el *codec.Element, user jid.JID, q rosterQuery) {
	items, err := s.roster(user)
	if err != nil {
		s.log.Warn("reading a roster failed", "user", user.String(), "err", err)
		s.bounce(el, errDatabase())
		return
	}
	if !s.opt.Config.Roster.Versioning || !q.verSet {
		s.reply(el, queryElement("", false, visible(items)))
		return
	}
	v, err := s.rosterVersion(user)
	if err != nil {
		s.bounce(el, errDatabase())
		return
	}
	if v == q.ver {
		s.reply(el)
		return
	}
	s.reply(el, queryElement(v, true, visible(items)))
}

// rosterSet adds, changes or removes a contact (the subscription is not
// the client's to set) and pushes the change to every resource.
func (s *Service) rosterSet(el *codec.Element, user jid.JID, it rosterQueryItem) {
	contact := it.jid.Bare().String()
	var old, neu storage.RosterItem
	ctx, cancel := dbctx()
	defer cancel()
	err := s.store.ChangeRoster(ctx, user.Domain, user.Local, func(tx *storage.RosterTx) error {
		o, found, err := tx.Item(ctx, contact)
		if err != nil {
			return err
		}
		if !found {
			o = storage.RosterItem{JID: contact, Subscription: subNone, Ask: "none"}
		}
		old = o
		if it.subscription == "remove" {
			neu = storage.RosterItem{JID: contact, Subscription: "remove", Ask: "none"}
			err = tx.Delete(ctx, contact)
		} else {
			neu = o
			neu.Name, neu.Groups = it.name, it.groups
			err = tx.Put(ctx, neu, true)
		}
		if err == nil && s.opt.Config.Roster.StoreCurrentID {
			err = tx.SetVersion(ctx, newRosterVersion())
		}
		return err
	})
	if err != nil {
		s.log.Warn("changing a roster failed", "user", user.String(), "err", err)
		s.bounce(el, errDatabase())
		return
	}
	s.reply(el)
	s.pushItem(user, old, neu)
	if neu.Subscription == "remove" {
		s.unsubscribing(user, old)
	}
}

// pushItem sends a roster push to every resource of the user, and ends
// or renews the presence each resource gave the contact.
func (s *Service) pushItem(user jid.JID, old, neu storage.RosterItem) {
	ver, verSet := "", false
	if s.opt.Config.Roster.Versioning {
		v, err := s.rosterVersion(user)
		if err == nil {
			ver, verSet = v, true
		}
	}
	push := neu
	if push.Subscription == "remove" {
		push.Name, push.Groups = "", nil
	}
	for _, ss := range latestPerResource(s.node.Sessions.Bare(user.Domain, user.Local)) {
		full := fullJID(ss)
		s.presenceChange(ss, old, neu)
		s.Route(&codec.Element{Name: "iq", Attrs: [][2]string{{"to", full.String()}, {"from", user.Bare().String()}, {"type", "set"}, {"id", "push" + randomID()}},
			Kids: []any{queryElement(ver, verSet, []storage.RosterItem{push})}})
	}
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isFrom(sub string) bool { return sub == subFrom || sub == subBoth }
func isTo(sub string) bool   { return sub == subTo || sub == subBoth }

// presenceChange: a resource whose contact became subscribed to it sends
// the contact its presence; one whose contact no longer is sends
// unavailable (mod_roster's route_presence_change).
func (s *Service) presenceChange(ss cetsnode.Session, old, neu storage.RosterItem) {
	contact, err := jid.Parse(neu.JID)
	if err != nil {
		return
	}
	switch {
	case isFrom(neu.Subscription) && !isFrom(old.Subscription):
		s.resendPresence(ss, contact)
	case isFrom(old.Subscription) && !isFrom(neu.Subscription):
		s.Route(&codec.Element{Name: "presence", Attrs: [][2]string{{"to", contact.String()}, {"from", fullJID(ss).String()}, {"type", "unavailable"}}})
	}
}

// resendPresence has a session, wherever it is, send its last presence to
// a contact.
func (s *Service) resendPresence(ss cetsnode.Session, to jid.JID) {
	if ss.Node != s.node.Self() {
		if err := s.node.Send(ss.Node, ServiceName, term.Tuple{term.Atom("resend_presence"), ss.SID, term.Binary(to.String())}); err != nil {
			s.log.Info("asking another node to resend presence failed", "node", ss.Node, "err", err)
		}
		return
	}
	s.mu.Lock()
	l := s.local[sidKey(ss.SID)]
	s.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	last := l.last
	l.mu.Unlock()
	if last != nil {
		s.presenceOut(l, stanza.Address(last, "", to.String(), l.jid().String()))
	}
}

// unsubscribing: removing a contact cancels both subscriptions.
func (s *Service) unsubscribing(user jid.JID, old storage.RosterItem) {
	for _, c := range []struct {
		cond bool
		typ  string
	}{{isTo(old.Subscription), "unsubscribe"}, {isFrom(old.Subscription), "unsubscribed"}} {
		if c.cond {
			s.Route(&codec.Element{Name: "presence", Attrs: [][2]string{{"to", old.JID}, {"from", user.Bare().String()}, {"type", c.typ}}})
		}
	}
}

// The subscription state machine of mod_roster (RFC 6121 Appendix A):
// (subscription, pending, presence type) → new (subscription, pending),
// absent: no change.
type subState struct{ sub, pending string }

var inStateChange = map[[3]string]subState{
	{"none", "none", "subscribe"}: {"none", "in"},
	{"none", "out", "subscribe"}:  {"none", "both"}, {"none", "out", "subscribed"}: {"to", "none"}, {"none", "out", "unsubscribed"}: {"none", "none"},
	{"none", "in", "unsubscribe"}:  {"none", "none"},
	{"none", "both", "subscribed"}: {"to", "in"}, {"none", "both", "unsubscribe"}: {"none", "out"}, {"none", "both", "unsubscribed"}: {"none", "in"},
	{"to", "none", "subscribe"}: {"to", "in"}, {"to", "none", "unsubscribed"}: {"none", "none"},
	{"to", "in", "unsubscribe"}: {"to", "none"}, {"to", "in", "unsubscribed"}: {"none", "in"},
	{"from", "none", "subscribed"}: {"both", "none"}, {"from", "none", "unsubscribe"}: {"none", "none"},
	{"from", "out", "subscribed"}: {"both", "none"}, {"from", "out", "unsubscribe"}: {"none", "out"}, {"from", "out", "unsubscribed"}: {"from", "none"},
	{"both", "none", "unsubscribe"}: {"to", "none"}, {"both", "none", "unsubscribed"}: {"from", "none"},
	// States an API can leave behind.
	{"to", "out", "subscribe"}: {"to", "in"}, {"to", "out", "unsubscribed"}: {"none", "none"},
	{"to", "both", "unsubscribe"}: {"to", "none"}, {"to", "both", "unsubscribed"}: {"none", "in"},
	{"from", "in", "subscribed"}: {"both", "none"}, {"from", "in", "unsubscribe"}: {"none", "none"},
	{"from", "both", "subscribed"}: {"both", "none"}, {"from", "both", "unsubscribe"}: {"none", "out"}, {"from", "both", "unsubscribed"}: {"from", "none"},
	{"both", "out", "unsubscribe"}: {"to", "none"}, {"both", "out", "unsubscribed"}: {"from", "none"},
	{"both", "in", "unsubscribe"}: {"to", "none"}, {"both", "in", "unsubscribed"}: {"from", "none"},
	{"both", "both", "unsubscribe"}: {"to", "none"}, {"both", "both", "unsubscribed"}: {"from", "none"},
}

var outStateChange = map[[3]string]subState{
	{"none", "none", "subscribe"}: {"none", "out"},
	{"none", "out", "subscribe"}:  {"none", "out"}, {"none", "out", "unsubscribe"}: {"none", "none"},
	{"none", "in", "subscribe"}: {"none", "both"}, {"none", "in", "subscribed"}: {"from", "none"}, {"none", "in", "unsubscribed"}: {"none", "none"},
	{"none", "both", "subscribed"}: {"from", "out"}, {"none", "both", "unsubscribe"}: {"none", "in"}, {"none", "both", "unsubscribed"}: {"none", "out"},
	{"to", "none", "subscribed"}: {"both", "none"}, {"to", "none", "unsubscribe"}: {"none", "none"},
	{"to", "in", "subscribed"}: {"both", "none"}, {"to", "in", "unsubscribe"}: {"none", "in"}, {"to", "in", "unsubscribed"}: {"to", "none"},
	{"from", "none", "subscribe"}: {"from", "out"}, {"from", "none", "unsubscribed"}: {"none", "none"},
	{"from", "out", "unsubscribe"}: {"from", "none"}, {"from", "out", "unsubscribed"}: {"none", "out"},
	{"both", "none", "unsubscribe"}: {"from", "none"}, {"both", "none", "unsubscribed"}: {"to", "none"},
	// States an API can leave behind.
	{"to", "out", "subscribed"}: {"both", "none"}, {"to", "out", "unsubscribe"}: {"none", "none"},
	{"to", "both", "subscribed"}: {"both", "none"}, {"to", "both", "unsubscribe"}: {"none", "in"}, {"to", "both", "unsubscribed"}: {"to", "none"},
	{"from", "in", "subscribe"}: {"from", "out"}, {"from", "in", "unsubscribed"}: {"none", "none"},
	{"from", "both", "unsubscribe"}: {"from", "none"}, {"from", "both", "unsubscribed"}: {"none", "out"},
	{"both", "out", "unsubscribe"}: {"from", "none"}, {"both", "out", "unsubscribed"}: {"to", "none"},
	{"both", "in", "unsubscribe"}: {"from", "none"}, {"both", "in", "unsubscribed"}: {"to", "none"},
	{"both", "both", "unsubscribe"}: {"from", "none"}, {"both", "both", "unsubscribed"}: {"to", "none"},
}

// inAutoReply: what the server answers for the user to a request it
// can answer from the roster alone.
var inAutoReply = map[[3]string]string{
	{"from", "none", "subscribe"}: "subscribed", {"from", "out", "subscribe"}: "subscribed", {"both", "none", "subscribe"}: "subscribed",
	{"none", "in", "unsubscribe"}: "unsubscribed", {"none", "both", "unsubscribe"}: "unsubscribed", {"to", "in", "unsubscribe"}: "unsubscribed",
	{"from", "none", "unsubscribe"}: "unsubscribed", {"from", "out", "unsubscribe"}: "unsubscribed", {"both", "none", "unsubscribe"}: "unsubscribed",
}

// processSubscription applies a subscription presence to the user's
// roster (in: received from contact; out: sent to it) and reports whether
// the roster changed (an incoming request is then delivered).
func (s *Service) processSubscription(in bool, user, contact jid.JID, typ, reason string) bool {
	var old, neu storage.RosterItem
	var changed, push bool
	var autoReply string
	cj := contact.Bare().String()
	ctx, cancel := dbctx()
	defer cancel()
	err := s.store.ChangeRoster(ctx, user.Domain, user.Local, func(tx *storage.RosterTx) error {
		it, found, err := tx.Item(ctx, cj)
		if err != nil {
			return err
		}
		if !found {
			it = storage.RosterItem{JID: cj, Subscription: subNone, Ask: "none"}
		}
		old = it
		key := [3]string{it.Subscription, pending(it.Ask), typ}
		table := outStateChange
		if in {
			table = inStateChange
			autoReply = inAutoReply[key]
		}
		st, ok := table[key]
		switch {
		case !ok:
			return nil
		case st == subState{"none", "none"} && it.Subscription == subNone && pending(it.Ask) == "in":
			return tx.Delete(ctx, cj)
		}
		neu = it
		neu.Subscription, neu.Ask, neu.AskMessage = st.sub, st.pending, ""
		if st.pending == "both" || st.pending == "in" {
			neu.AskMessage = reason
		}
		if err := tx.Put(ctx, neu, false); err != nil {
			return err
		}
		changed = true
		push = !(neu.Subscription == subNone && neu.Ask == "in")
		if s.opt.Config.Roster.StoreCurrentID {
			return tx.SetVersion(ctx, newRosterVersion())
		}
		return nil
	})
	if err != nil {
		s.log.Warn("a subscription change failed", "user", user.Bare().String(), "contact", cj, "err", err)
		return false
	}
	if autoReply != "" {
		s.Route(&codec.Element{Name: "presence", Attrs: [][2]string{{"to", contact.String()}, {"from", user.Bare().String()}, {"type", autoReply}}})
	}
	if changed && push {
		s.pushItem(user.Bare(), old, neu)
	}
	return changed
}

// inSubscription takes a subscription request or answer to a user: the
// roster decides, and a change is delivered to the user's available
// resources (without mod_roster, as ejabberd, it is dropped).
func (s *Service) inSubscription(el *codec.Element, to jid.JID) {
	if !s.rosterOn() {
		return
	}
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return
	}
	ctx, cancel := dbctx()
	exists, err := s.store.UserExists(ctx, to.Domain, to.Local)
	cancel()
	if err != nil || !exists {
		return
	}
	reason := ""
	if stanza.Attr(el, "type") == "subscribe" {
		if st := el.Child("status"); st != nil {
			reason = st.Text()
		}
	}
	if !s.processSubscription(true, to.Bare(), from, stanza.Attr(el, "type"), reason) {
		return
	}
	for _, ss := range s.present(to) {
		s.deliver(ss, stanza.Address(el, "", fullJID(ss).String(), stanza.Attr(el, "from")), meta{})
	}
}

// resendPending sends a session the subscription requests waiting for the
// user, at its first available presence of non-negative priority.
func (s *Service) resendPending(l *local) {
	own := l.jid()
	items, err := s.roster(own)
	if err != nil {
		return
	}
	for _, it := range items {
		if p := pending(it.Ask); p != "in" && p != "both" {
			continue
		}
		pres := &codec.Element{Name: "presence", Attrs: [][2]string{{"to", own.Bare().String()}, {"from", it.JID}, {"type", "subscribe"}}}
		if it.AskMessage != "" {
			pres.Kids = []any{&codec.Element{Name: "status", Kids: []any{it.AskMessage}}}
		}
		l.conn.Route(pres)
	}
}
