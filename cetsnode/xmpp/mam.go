package xmpp

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stream"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Message archive management (XEP-0313 with RSM, XEP-0059) as ejabberd
// 23.01's mod_mam with its SQL backend, over the archive the export
// wrote: a message's archive id — the stanza id (XEP-0359) clients know
// it by — is the microsecond timestamp it was archived at, so the ids
// clients saw before the cutover still page the same history. Messages
// are archived as ejabberd archives them: the sender's copy when a
// client sends it, the recipient's when it is delivered or stored
// offline, each per the user's preferences (archive_prefs, or the
// module's default), with the recipient's copy marked with its id.

const (
	nsMAM0    = "urn:xmpp:mam:0"
	nsMAM1    = "urn:xmpp:mam:1"
	nsMAM2    = "urn:xmpp:mam:2"
	nsMAMTmp  = "urn:xmpp:mam:tmp"
	nsSID     = "urn:xmpp:sid:0"
	nsRSM     = "http://jabber.org/protocol/rsm"
	nsForward = "urn:xmpp:forward:0"
	nsXData   = "jabber:x:data"

	// mamDefaultPage and mamMaxPage are mod_mam's page sizes: a query
	// without a size gets 50, a larger size than 250 is cut to 250.
	mamDefaultPage = 50
	mamMaxPage     = 250
)

func (s *Service) mamOn() bool { return s.opt.Config.Modules["mod_mam"] }

// meta is what travels with a routed message besides its XML, as the
// meta of ejabberd's stanza records: the archive id the session manager
// gave it, whether it is the copy for a resource other than the one
// whose delivery archives it, and whether it comes from offline storage
// (then it was archived when it was stored).
type meta struct {
	id          int64
	copy        bool
	fromOffline bool
	carbon      bool // a carbon copy (XEP-0280), which is not copied again
}

func (m meta) term() term.Term {
	b := func(v bool) term.Atom { return term.Atom(strconv.FormatBool(v)) }
	return term.Tuple{term.Atom("meta"), m.id, b(m.copy), b(m.fromOffline), b(m.carbon)}
}

func parseMeta(t term.Term) (meta, bool) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 5 || !term.IsAtom(tu[0], "meta") {
		return meta{}, false
	}
	id, ok := term.Int(tu[1])
	return meta{id: id, copy: term.IsAtom(tu[2], "true"), fromOffline: term.IsAtom(tu[3], "true"), carbon: term.IsAtom(tu[4], "true")}, ok
}

// archiveClock makes archive ids: the time in microseconds, strictly
// increasing on this node (two messages in one microsecond would share
// an id, and a page boundary would skip one of them).
var archiveClock struct {
	sync.Mutex
	last int64
}

func newArchiveID() int64 {
	archiveClock.Lock()
	defer archiveClock.Unlock()
	id := time.Now().UnixMicro()
	if id <= archiveClock.last {
		id = archiveClock.last + 1
	}
	archiveClock.last = id
	return id
}

// stripOwnStanzaIDs removes the stanza-id and archived elements claiming
// to be by the domain (mod_mam's strip_my_stanza_id): only the server
// sets them.
func stripOwnStanzaIDs(el *codec.Element, domain string) *codec.Element {
	keep := -1
	for i, k := range el.Kids {
		if ownStanzaID(k, domain) {
			keep = i
			break
		}
	}
	if keep < 0 {
		return el
	}
	out := *el
	out.Kids = make([]any, 0, len(el.Kids))
	for _, k := range el.Kids {
		if !ownStanzaID(k, domain) {
			out.Kids = append(out.Kids, k)
		}
	}
	return &out
}

func ownStanzaID(k any, domain string) bool {
	c, ok := k.(*codec.Element)
	if !ok || !((c.Name == "stanza-id" && stanza.NS(c) == nsSID) || (c.Name == "archived" && stanza.NS(c) == nsMAMTmp)) {
		return false
	}
	by, err := jid.Parse(stanza.Attr(c, "by"))
	return err == nil && by.Domain == domain
}

// smReceive gives a message coming to a user its archive id, as
// ejabberd_sm's receive hook does (not one from offline storage, which
// has its own).
func (s *Service) smReceive(el *codec.Element, to jid.JID, m meta) (*codec.Element, meta) {
	if !s.mamOn() || el.Name != "message" || m.id != 0 || m.fromOffline {
		return el, m
	}
	m.id = newArchiveID()
	return stripOwnStanzaIDs(el, to.Domain), m
}

// storeHint is XEP-0334's word on storing: "store", "no-store" or "".
func storeHint(el *codec.Element) string {
	if child(el, "store", nsHints) != nil {
		return "store"
	}
	for _, n := range []string{"no-store", "no-storage", "no-permanent-store", "no-permanent-storage"} {
		if child(el, n, nsHints) != nil {
			return "no-store"
		}
	}
	return ""
}

// shouldArchive is mod_mam's should_archive: not errors, groupchat or
// what offline storage delivers; not a message the server archived
// already; a store hint decides; else a message with a body or subject
// that is not a headline.
func shouldArchive(el *codec.Element, domain string, m meta) bool {
	typ := stanza.Attr(el, "type")
	if typ == "error" || typ == "groupchat" || m.fromOffline {
		return false
	}
	if sid := child(el, "stanza-id", nsSID); sid != nil {
		if by, err := jid.Parse(stanza.Attr(sid, "by")); err == nil && by.Domain == domain {
			return false
		}
	}
	switch storeHint(el) {
	case "store":
		return true
	case "no-store":
		return false
	}
	if typ == "headline" {
		return false
	}
	for _, name := range []string{"body", "subject"} {
		for _, k := range el.Kids {
			if c, ok := k.(*codec.Element); ok && c.Name == name && c.Text() != "" {
				return true
			}
		}
	}
	return false
}

// mamPrefs are a user's preferences, decoded.
type mamPrefs struct {
	def           string
	always, never []jid.JID // bare, prepared
}

// prefs reads a user's preferences, or the default (never when a query
// activates archiving).
func (s *Service) prefs(user jid.JID) (mamPrefs, bool, error) {
	ctx, cancel := dbctx()
	defer cancel()
	p, ok, err := s.store.ArchivePrefs(ctx, user.Domain, user.Local)
	if err != nil {
		return mamPrefs{}, false, err
	}
	if !ok {
		def := s.opt.Config.MAM.Default
		if s.opt.Config.MAM.RequestActivates {
			def = "never"
		}
		return mamPrefs{def: def}, false, nil
	}
	out := mamPrefs{def: p.Default}
	out.always = decodeLJIDs(p.Always)
	out.never = decodeLJIDs(p.Never)
	return out, true, nil
}

// decodeLJIDs reads a list of {User, Server, Resource} as
// misc:term_to_expr writes it.
func decodeLJIDs(text string) []jid.JID {
	t, err := term.ParseText(text)
	if err != nil {
		return nil
	}
	l, _ := t.(term.List)
	var out []jid.JID
	for _, e := range l {
		tu, ok := e.(term.Tuple)
		if !ok || len(tu) != 3 {
			continue
		}
		u, _ := term.Text(tu[0])
		d, _ := term.Text(tu[1])
		r, _ := term.Text(tu[2])
		out = append(out, jid.JID{Local: u, Domain: d, Resource: r})
	}
	return out
}

// encodeLJIDs writes bare JIDs as misc:term_to_expr writes ljid lists.
func encodeLJIDs(js []jid.JID) string {
	l := make(term.List, 0, len(js))
	for _, j := range js {
		l = append(l, term.Tuple{term.Binary(j.Local), term.Binary(j.Domain), term.Binary(j.Resource)})
	}
	return string(codec.AppendErlangText(nil, l))
}

// archivesPeer is should_archive_peer: always and never name bare JIDs;
// else the default, where roster means a contact with any subscription.
func (s *Service) archivesPeer(user jid.JID, p mamPrefs, peer jid.JID) bool {
	bare := peer.Bare()
	for _, j := range p.always {
		if j == bare {
			return true
		}
	}
	for _, j := range p.never {
		if j == bare {
			return false
		}
	}
	switch p.def {
	case "always":
		return true
	case "roster":
		return s.subscription(user, bare) != subNone
	}
	return false
}

// archive stores a message in a user's archive under id when the user's
// preferences take messages with the peer (mod_mam's store_msg): ok says
// it is in the archive — a copy for another resource was stored with the
// one routed first, and is marked as it is. el is the stanza as
// ejabberd's codec writes it.
func (s *Service) archive(user, peer jid.JID, el *codec.Element, id int64, m meta) bool {
	p, _, err := s.prefs(user)
	if err != nil {
		s.log.Warn("reading archiving preferences failed", "user", user.Bare().String(), "err", err)
		return false
	}
	if !s.archivesPeer(user, p, peer) {
		return false
	}
	if m.copy {
		return true
	}
	stored, err := codec.CanonicalStanza(el, stanza.Attr(el, "from"), stanza.Attr(el, "to"), "", nil)
	if err != nil {
		return false
	}
	text := ""
	if b := stored.Child("body"); b != nil {
		text = b.Text()
	}
	ctx, cancel := dbctx()
	defer cancel()
	err = s.store.Archive(ctx, user.Domain, user.Local, storage.ArchiveRow{ID: id, Peer: peer.String(), BarePeer: peer.Bare().String(),
		XML: string(codec.AppendElement(nil, stored)), Text: text, Kind: "chat"})
	if err != nil {
		s.log.Warn("archiving a message failed", "user", user.Bare().String(), "err", err)
		return false
	}
	s.stats.archived.Add(1)
	return true
}

// markArchived adds the archive id for the user to a message
// (mod_mam's mark_stored_msg): <archived/> and <stanza-id/> first.
func markArchived(el *codec.Element, user jid.JID, id int64) *codec.Element {
	by, sid := user.Bare().String(), strconv.FormatInt(id, 10)
	out := *el
	out.Kids = append([]any{
		&codec.Element{Name: "archived", Attrs: [][2]string{{"by", by}, {"id", sid}, {"xmlns", nsMAMTmp}}},
		&codec.Element{Name: "stanza-id", Attrs: [][2]string{{"by", by}, {"id", sid}, {"xmlns", nsSID}}},
	}, el.Kids...)
	return &out
}

// archiveSent archives what a user's client sends (mod_mam's
// user_send_packet): the message goes on (routed) without the ids a
// client may not set and without the sender's archive id (the
// recipient's server gives its own); marked is it with the sender's id,
// as the sender's carbon copies carry it.
func (s *Service) archiveSent(sender jid.JID, el *codec.Element) (routed, marked *codec.Element) {
	if !s.mamOn() || el.Name != "message" {
		return el, el
	}
	el = stripOwnStanzaIDs(el, sender.Domain)
	if !shouldArchive(el, sender.Domain, meta{}) {
		return el, el
	}
	peer, err := jid.Parse(stanza.Attr(el, "to"))
	if err != nil {
		return el, el
	}
	id := newArchiveID()
	if !s.archive(sender, peer, el, id, meta{}) {
		return el, el
	}
	return el, markArchived(el, sender, id)
}

// archiveReceived archives a message a session takes (mod_mam's
// user_receive_packet, or its offline hook for one stored offline) and
// marks it with its id; archived says it was stored.
func (s *Service) archiveReceived(user jid.JID, el *codec.Element, m meta) (*codec.Element, bool) {
	if !s.mamOn() || el.Name != "message" || m.id == 0 || !shouldArchive(el, user.Domain, m) {
		return el, false
	}
	peer, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return el, false
	}
	if !s.archive(user, peer, el, m.id, m) {
		return el, false
	}
	return markArchived(el, user, m.id), true
}

// mamIQ answers mod_mam's IQs in the namespaces urn:xmpp:mam:0, 1 and 2:
// a query form (get), a query (set), preferences (get, set). The
// archive is always the requester's own: the server and the user's bare
// JID answer alike, for a requester of the same domain.
func (s *Service) mamIQ(el, p *codec.Element, to jid.JID) {
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return
	}
	typ := stanza.Attr(el, "type")
	lang := stanza.Attr(el, "xml:lang")
	ns := stanza.NS(p)
	switch {
	case from.Domain != to.Domain || from.Local == "":
		s.bounce(el, stanza.NewError("not-allowed", ""))
	case p.Name == "query" && typ == "get":
		s.reply(el, mamForm(ns))
	case p.Name == "query":
		s.mamQuery(el, p, from, lang)
	case p.Name == "prefs" && typ == "get":
		s.getPrefs(el, from, ns)
	case p.Name == "prefs":
		s.setPrefs(el, p, from, ns)
	default:
		s.bounce(el, stanza.NewError("not-allowed", ""))
	}
}

// mamForm is the query form: the fields ejabberd's SQL backend takes.
func mamForm(ns string) *codec.Element {
	field := func(v, typ, label string) *codec.Element {
		f := &codec.Element{Name: "field", Attrs: [][2]string{{"var", v}, {"type", typ}}}
		if label != "" {
			f.Attrs = append(f.Attrs, [2]string{"label", label})
		}
		return f
	}
	ft := field("FORM_TYPE", "hidden", "")
	ft.Kids = []any{&codec.Element{Name: "value", Kids: []any{ns}}}
	x := &codec.Element{Name: "x", Attrs: [][2]string{{"type", "form"}, {"xmlns", nsXData}}, Kids: []any{
		ft, field("with", "jid-single", "User JID"), field("start", "text-single", "Search from the date"),
		field("end", "text-single", "Search until the date"), field("withtext", "text-single", "Search the text"),
	}}
	return &codec.Element{Name: "query", Attrs: [][2]string{{"xmlns", ns}}, Kids: []any{x}}
}

// badRequest is an error with the codec's words for what it could not
// decode.
func badRequest(format string, args ...any) *stanza.Error {
	return stanza.NewError("bad-request", fmt.Sprintf(format, args...))
}

// mamQuery runs a query over the requester's archive: the messages come
// as <result/> messages, then the IQ result with the page's ids.
func (s *Service) mamQuery(el, p *codec.Element, user jid.JID, lang string) {
	ns := stanza.NS(p)
	if s.opt.Config.MAM.RequestActivates {
		if err := s.activateArchiving(user); err != nil {
			s.log.Warn("activating archiving failed", "user", user.Bare().String(), "err", err)
			s.bounce(el, errDatabase())
			return
		}
	}
	r, perr := parseMAMQuery(p)
	if perr != nil {
		s.bounce(el, perr)
		return
	}
	if perr := r.selection(); perr != nil {
		// The error carries the query as the codec writes it back.
		decoded := *el
		decoded.Kids = []any{r.element()}
		s.bounce(&decoded, perr)
		return
	}
	ctx, cancel := dbctx()
	defer cancel()
	rows, count, err := s.store.QueryArchive(ctx, user.Domain, user.Local, r.q)
	complete := true
	switch {
	case errors.Is(err, storage.ErrFullText):
		// ejabberd's query fails on PostgreSQL: an empty page.
		rows, count, complete = nil, 0, false
	case err != nil:
		s.log.Warn("querying an archive failed", "user", user.Bare().String(), "err", err)
		rows, count, complete = nil, 0, false
	case len(rows) > r.q.Max:
		complete = false
		if r.q.Direction == "before" {
			rows = rows[1:]
		} else {
			rows = rows[:r.q.Max]
		}
	}
	type page struct {
		id string
		el *codec.Element
	}
	var msgs []page
	for _, row := range rows {
		f, err := s.forwarded(user, row)
		if err != nil {
			s.log.Warn("an archived message cannot be read; left out", "user", user.Bare().String(), "id", row.ID, "err", err)
			continue
		}
		msgs = append(msgs, page{row.ID, f})
	}
	if r.flip {
		for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
	}
	to := stanza.Attr(el, "to")
	if to == "" {
		to = user.Bare().String()
	}
	if ns == nsMAM0 {
		// v0.3: an empty result first, the fin in a message last.
		s.reply(el)
	}
	// The results go to the requesting session (found once: routing each
	// to its full JID finds the same one).
	ss, here := s.latest(user)
	for _, m := range msgs {
		res := &codec.Element{Name: "result", Attrs: [][2]string{{"id", m.id}}}
		if r.queryID != "" {
			res.Attrs = append(res.Attrs, [2]string{"queryid", r.queryID})
		}
		res.Attrs = append(res.Attrs, [2]string{"xmlns", ns})
		res.Kids = []any{m.el}
		msg := &codec.Element{Name: "message", Attrs: [][2]string{{"to", user.String()}, {"from", to}}, Kids: []any{res}}
		if here {
			s.deliver(ss, msg, meta{})
		} else {
			s.route(msg, meta{})
		}
	}
	set := &codec.Element{Name: "set", Attrs: [][2]string{{"xmlns", nsRSM}}}
	set.Kids = append(set.Kids, &codec.Element{Name: "count", Kids: []any{strconv.FormatInt(count, 10)}})
	if len(msgs) > 0 {
		set.Kids = append(set.Kids, &codec.Element{Name: "first", Kids: []any{msgs[0].id}}, &codec.Element{Name: "last", Kids: []any{msgs[len(msgs)-1].id}})
	}
	fin := &codec.Element{Name: "fin", Attrs: [][2]string{{"complete", strconv.FormatBool(complete)}}}
	if ns == nsMAM0 && r.queryID != "" {
		fin.Attrs = append(fin.Attrs, [2]string{"queryid", r.queryID})
	}
	fin.Attrs = append(fin.Attrs, [2]string{"xmlns", ns})
	fin.Kids = []any{set}
	if ns == nsMAM0 {
		s.route(&codec.Element{Name: "message", Attrs: [][2]string{{"to", user.String()}, {"from", to}}, Kids: []any{fin,
			&codec.Element{Name: "no-store", Attrs: [][2]string{{"xmlns", nsHints}}}}}, meta{})
		return
	}
	s.Route(stanza.Result(el, lang, fin))
}

// forwarded is an archived message as a query returns it (msg_to_el):
// the stored message with the archive id first, in a <forwarded/> with
// the time it was archived.
func (s *Service) forwarded(user jid.JID, row storage.ArchivedMessage) (*codec.Element, error) {
	usec, err := strconv.ParseInt(row.ID, 10, 64)
	if err != nil {
		return nil, err
	}
	if _, err := jid.Parse(row.Peer); err != nil {
		return nil, err
	}
	stored, err := parseStored(row.XML)
	if err != nil {
		return nil, err
	}
	if stored.Name != "message" {
		return nil, errors.New("not a message")
	}
	by := user.Bare().String()
	msg, err := codec.CanonicalStanza(stored, stanza.Attr(stored, "from"), stanza.Attr(stored, "to"), "", func(els []any, top string) []any {
		return append([]any{
			&codec.Element{Name: "archived", Attrs: [][2]string{{"by", by}, {"id", row.ID}, {"xmlns", nsMAMTmp}}},
			&codec.Element{Name: "stanza-id", Attrs: [][2]string{{"by", by}, {"id", row.ID}, {"xmlns", nsSID}}},
		}, els...)
	})
	if err != nil {
		return nil, err
	}
	delay := &codec.Element{Name: "delay", Attrs: [][2]string{{"from", user.Domain}, {"stamp", codec.XMPPStamp(usec)}, {"xmlns", nsDelay}}}
	return &codec.Element{Name: "forwarded", Attrs: [][2]string{{"xmlns", nsForward}}, Kids: []any{msg, delay}}, nil
}

// activateArchiving stores the default preferences of a user who has
// none (request_activates_archiving).
func (s *Service) activateArchiving(user jid.JID) error {
	ctx, cancel := dbctx()
	defer cancel()
	_, ok, err := s.store.ArchivePrefs(ctx, user.Domain, user.Local)
	if err != nil || ok {
		return err
	}
	return s.store.SetArchivePrefs(ctx, user.Domain, user.Local, storage.ArchivePrefs{Default: s.opt.Config.MAM.Default, Always: "[]", Never: "[]"})
}

// prefsElement writes preferences as the codec does.
func prefsElement(ns string, p mamPrefs) *codec.Element {
	list := func(name string, js []jid.JID) *codec.Element {
		l := &codec.Element{Name: name}
		for _, j := range js {
			l.Kids = append(l.Kids, &codec.Element{Name: "jid", Kids: []any{j.String()}})
		}
		return l
	}
	return &codec.Element{Name: "prefs", Attrs: [][2]string{{"default", p.def}, {"xmlns", ns}}, Kids: []any{list("always", p.always), list("never", p.never)}}
}

func (s *Service) getPrefs(el *codec.Element, user jid.JID, ns string) {
	p, _, err := s.prefs(user)
	if err != nil {
		s.log.Warn("reading archiving preferences failed", "user", user.Bare().String(), "err", err)
		s.bounce(el, errDatabase())
		return
	}
	s.reply(el, prefsElement(ns, p))
}

func (s *Service) setPrefs(el, p *codec.Element, user jid.JID, ns string) {
	def, hasDef := p.Attr("default")
	if !hasDef {
		s.bounce(el, badRequest("Missing attribute 'default' in tag <prefs/> qualified by namespace '%s'", ns))
		return
	}
	switch def {
	case "always", "never", "roster":
	default:
		s.bounce(el, badRequest("Bad value of attribute 'default' in tag <prefs/> qualified by namespace '%s'", ns))
		return
	}
	np := mamPrefs{def: def}
	for _, k := range p.Kids {
		c, ok := k.(*codec.Element)
		if !ok || (c.Name != "always" && c.Name != "never") {
			continue
		}
		var js []jid.JID
		for _, jk := range c.Kids {
			je, ok := jk.(*codec.Element)
			if !ok || je.Name != "jid" {
				continue
			}
			j, err := jid.Parse(je.Text())
			if err != nil {
				s.bounce(el, badRequest("Bad value of cdata in tag <jid/> qualified by namespace '%s'", ns))
				return
			}
			js = append(js, j.Bare())
		}
		js = sortedUniqueJIDs(js)
		if c.Name == "always" {
			np.always = js
		} else {
			np.never = js
		}
	}
	ctx, cancel := dbctx()
	defer cancel()
	err := s.store.SetArchivePrefs(ctx, user.Domain, user.Local, storage.ArchivePrefs{Default: def, Always: encodeLJIDs(np.always), Never: encodeLJIDs(np.never)})
	if err != nil {
		s.log.Warn("storing archiving preferences failed", "user", user.Bare().String(), "err", err)
		s.bounce(el, errDatabase())
		return
	}
	s.reply(el, prefsElement(ns, np))
}

// sortedUniqueJIDs is lists:usort of ljid tuples: by user, then server,
// then resource.
func sortedUniqueJIDs(js []jid.JID) []jid.JID {
	slices.SortFunc(js, func(a, b jid.JID) int {
		return cmp.Or(strings.Compare(a.Local, b.Local), strings.Compare(a.Domain, b.Domain), strings.Compare(a.Resource, b.Resource))
	})
	return slices.Compact(js)
}

// parseStored reads an archived message's XML.
func parseStored(x string) (*codec.Element, error) {
	return stream.ParseElement([]byte(x), stream.Limits{})
}
