package xmpp

import (
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Service discovery (XEP-0030) as ejabberd 23.01's mod_disco answers it
// with the modules the node serves, the server's caps in the stream
// features (mod_caps), software version (XEP-0092, mod_version) and
// entity time (XEP-0202, mod_time). Features are those the node serves:
// where ejabberd announces more (XEP-0013, the pubsub service's
// subscriptions and affiliations), the node does not.

const (
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsVersion    = "jabber:iq:version"
	nsTime       = "urn:xmpp:time"
	// capsURI is the node of the server's own caps.
	capsURI = "https://github.com/mimmigrate/mimmigrate"
)

func (s *Service) discoOn() bool { return s.opt.Config.Modules["mod_disco"] }

// pepServerFeatures are the pubsub features announced for the server
// (PEP): those of ejabberd's pep plugin the node serves.
var pepServerFeatures = []string{"access-open", "access-presence", "access-whitelist", "auto-create", "create-and-configure",
	"create-nodes", "delete-items", "delete-nodes", "filtered-notifications", "item-ids", "last-published", "multi-items",
	"persistent-items", "presence-notifications", "publish", "publish-options", "retract-items", "retrieve-items"}

// pepUserFeatures are the same for a user's account, in the pep
// plugin's order.
var pepUserFeatures = []string{"create-nodes", "auto-create", "delete-nodes", "delete-items", "filtered-notifications",
	"multi-items", "persistent-items", "publish", "publish-options", "retract-items", "retrieve-items"}

// serverFeatures are the server's features, sorted.
func (s *Service) serverFeatures() []string {
	m := s.opt.Config.Modules
	f := []string{"iq", "presence", nsDiscoInfo, nsDiscoItems}
	add := func(mod string, fs ...string) {
		if m[mod] {
			f = append(f, fs...)
		}
	}
	add("mod_last", nsLast)
	add("mod_privacy", nsPrivacy)
	add("mod_register", nsRegister)
	add("mod_version", nsVersion)
	add("mod_time", nsTime)
	add("mod_ping", nsPing)
	add("mod_offline", "msgoffline")
	add("mod_blocking", nsBlocking)
	add("mod_carboncopy", nsCarbons, "urn:xmpp:carbons:rules:0")
	add("mod_mam", nsMAM0, nsMAM1, nsMAM2, "urn:xmpp:mam:tmp", nsRSM)
	add("mod_vcard", nsVCard)
	if s.pepOn() {
		f = append(f, nsPubsub, nsRSM)
		for _, p := range pepServerFeatures {
			f = append(f, nsPubsub+"#"+p)
		}
	}
	sort.Strings(f)
	return slices.Compact(f)
}

func (s *Service) serverIdentities() []*codec.Element {
	var out []*codec.Element
	if s.pepOn() {
		out = append(out, identity("", "pep", "pubsub"))
	}
	return append(out, identity(s.opt.Config.DiscoName, "im", "server"))
}

func identity(name, typ, category string) *codec.Element {
	el := &codec.Element{Name: "identity"}
	if name != "" {
		el.Attrs = append(el.Attrs, [2]string{"name", name})
	}
	el.Attrs = append(el.Attrs, [2]string{"type", typ}, [2]string{"category", category})
	return el
}

func featureEls(dst []any, fs []string) []any {
	for _, f := range fs {
		dst = append(dst, &codec.Element{Name: "feature", Attrs: [][2]string{{"var", f}}})
	}
	return dst
}

// serverInfo is the server's disco#info (XEP-0157's form empty).
func (s *Service) serverInfo(node string) *codec.Element {
	q := &codec.Element{Name: "query"}
	if node != "" {
		q.Attrs = append(q.Attrs, [2]string{"node", node})
	}
	q.Attrs = append(q.Attrs, [2]string{"xmlns", nsDiscoInfo})
	for _, id := range s.serverIdentities() {
		q.Kids = append(q.Kids, id)
	}
	q.Kids = featureEls(q.Kids, s.serverFeatures())
	q.Kids = append(q.Kids, (&xform{typ: "result", fields: []xfield{{v: "FORM_TYPE", typ: "hidden", values: []string{"http://jabber.org/network/serverinfo"}}}}).element())
	return q
}

// serverCapsVer is the server's caps version (sha-1 of its disco#info).
func (s *Service) serverCapsVer() string {
	s.capsVerOnce.Do(func() {
		c := capsRef{hash: "sha-1"}
		h := capsHasher(c.hash)
		h.Write([]byte(capsString(s.serverInfo(""))))
		s.capsVer = b64(h.Sum(nil))
	})
	return s.capsVer
}

func notAllowedSet() *stanza.Error {
	return stanza.NewError("not-allowed", "Value 'set' of 'type' attribute is not allowed")
}

// discoFail answers an error with the query as the codec writes it back
// (its node, then its namespace).
func (s *Service) discoFail(el, q *codec.Element, e *stanza.Error) {
	echo := &codec.Element{Name: q.Name}
	if n := stanza.Attr(q, "node"); n != "" {
		echo.Attrs = append(echo.Attrs, [2]string{"node", n})
	}
	echo.Attrs = append(echo.Attrs, [2]string{"xmlns", stanza.NS(q)})
	cp := *el
	cp.Kids = []any{echo}
	s.bounce(&cp, e)
}

func (s *Service) serverDiscoInfo(el, q *codec.Element, _ jid.JID) {
	if stanza.Attr(el, "type") == "set" {
		s.discoFail(el, q, notAllowedSet())
		return
	}
	node := stanza.Attr(q, "node")
	if node != "" && node != capsURI+"#"+s.serverCapsVer() {
		s.discoFail(el, q, stanza.NewError("item-not-found", "No features available"))
		return
	}
	s.reply(el, s.serverInfo(node))
}

func (s *Service) serverDiscoItems(el, q *codec.Element, _ jid.JID) {
	if stanza.Attr(el, "type") == "set" {
		s.discoFail(el, q, notAllowedSet())
		return
	}
	if stanza.Attr(q, "node") != "" {
		s.discoFail(el, q, stanza.NewError("item-not-found", ""))
		return
	}
	s.reply(el, &codec.Element{Name: "query", Attrs: [][2]string{{"xmlns", nsDiscoItems}}})
}

// discoSubscribed is mod_roster's is_subscribed: the user itself, or a
// JID in the user's roster with a subscription or asked one.
func (s *Service) discoSubscribed(from, to jid.JID) bool {
	if from.Bare() == to.Bare() {
		return true
	}
	it, ok := s.rosterItem(to, from)
	return ok && (it.Subscription != subNone || it.Ask == "subscribe" || it.Ask == "out" || it.Ask == "both")
}

// userDiscoAllowed answers the errors of a query to an account (mod_disco's
// process_sm_iq_*): a set, an asker without a subscription, a node.
func (s *Service) userDiscoAllowed(el, q *codec.Element, to jid.JID) (jid.JID, bool) {
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return from, false
	}
	switch {
	case stanza.Attr(el, "type") == "set":
		s.discoFail(el, q, notAllowedSet())
	case !s.discoSubscribed(from, to):
		s.discoFail(el, q, stanza.NewError("subscription-required", "Not subscribed"))
	case stanza.Attr(q, "node") != "":
		s.discoFail(el, q, stanza.NewError("item-not-found", ""))
	default:
		return from, true
	}
	return from, false
}

func (s *Service) userDiscoInfo(el, q *codec.Element, to jid.JID) {
	from, ok := s.userDiscoAllowed(el, q, to)
	if !ok {
		return
	}
	out := &codec.Element{Name: "query", Attrs: [][2]string{{"xmlns", nsDiscoInfo}}}
	if s.pepOn() {
		out.Kids = append(out.Kids, identity("", "pep", "pubsub"))
	}
	ctx, cancel := dbctx()
	exists, err := s.store.UserExists(ctx, to.Domain, to.Local)
	cancel()
	if err != nil {
		s.bounce(el, errDatabase())
		return
	}
	if exists {
		out.Kids = append(out.Kids, identity("", "registered", "account"))
	}
	m := s.opt.Config.Modules
	f := []string{nsDiscoInfo, nsDiscoItems}
	if m["mod_vcard"] {
		f = append(f, nsVCard)
	}
	if m["mod_private"] && s.pepOn() {
		f = append(f, "urn:xmpp:bookmarks-conversion:0")
	}
	if s.mamOn() && from.Bare() == to.Bare() {
		f = append(f, "urn:xmpp:mam:tmp", nsMAM0, nsMAM1, nsMAM2, "urn:xmpp:sid:0")
	}
	if m["mod_offline"] {
		f = append(f, "msgoffline")
	}
	if s.pepOn() {
		f = append(f, nsPubsub, nsRSM)
		for _, p := range pepUserFeatures {
			f = append(f, nsPubsub+"#"+p)
		}
	}
	out.Kids = featureEls(out.Kids, f)
	s.reply(el, out)
}

func (s *Service) userDiscoItems(el, q *codec.Element, to jid.JID) {
	from, ok := s.userDiscoAllowed(el, q, to)
	if !ok {
		return
	}
	out := &codec.Element{Name: "query", Attrs: [][2]string{{"xmlns", nsDiscoItems}}}
	owner := to.Bare()
	if s.pepOn() {
		ctx, cancel := dbctx()
		nodes, err := s.store.PubSubNodes(ctx, owner.String())
		cancel()
		if err != nil {
			s.bounce(el, errDatabase())
			return
		}
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Node < nodes[j].Node })
		for _, n := range nodes {
			if s.canAccess(owner, from, pepNode{n}) == nil {
				out.Kids = append(out.Kids, &codec.Element{Name: "item", Attrs: [][2]string{{"node", n.Node}, {"jid", owner.String()}}})
			}
		}
	}
	var res []string
	for _, ss := range s.node.Sessions.Bare(to.Domain, to.Local) {
		res = append(res, fullJID(ss).Resource)
	}
	sort.Strings(res)
	for _, r := range slices.Compact(res) {
		out.Kids = append(out.Kids, &codec.Element{Name: "item", Attrs: [][2]string{{"name", to.Local}, {"jid", owner.String() + "/" + r}}})
	}
	s.reply(el, out)
}

// versionIQ is mod_version: the software, its version and the system.
func (s *Service) versionIQ(el, q *codec.Element, _ jid.JID) {
	if stanza.Attr(el, "type") == "set" {
		s.discoFail(el, q, notAllowedSet())
		return
	}
	version := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	out := &codec.Element{Name: "query", Attrs: [][2]string{{"xmlns", nsVersion}}, Kids: []any{
		&codec.Element{Name: "name", Kids: []any{"mimmigrate"}},
		&codec.Element{Name: "os", Kids: []any{osVersion()}},
		&codec.Element{Name: "version", Kids: []any{version}},
	}}
	s.reply(el, out)
}

// osVersion is the system as mod_version names it: unix/linux and the
// kernel's release numbers.
func osVersion() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "unix/linux"
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	rel := b.String()
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) == 3 {
		n := 0
		for n < len(parts[2]) && parts[2][n] >= '0' && parts[2][n] <= '9' {
			n++
		}
		rel = parts[0] + "." + parts[1] + "." + parts[2][:n]
	}
	return "unix/linux " + rel
}

// timeIQ is mod_time: UTC, and the offset of the node's local time.
func (s *Service) timeIQ(el, q *codec.Element, _ jid.JID) {
	if stanza.Attr(el, "type") == "set" {
		s.discoFail(el, q, notAllowedSet())
		return
	}
	now := time.Now()
	_, off := now.Zone()
	sign := "+"
	if off < 0 {
		sign, off = "-", -off
	}
	tzo := sign + twoDigits(off/3600) + ":" + twoDigits(off%3600/60)
	s.reply(el, &codec.Element{Name: "time", Attrs: [][2]string{{"xmlns", nsTime}}, Kids: []any{
		&codec.Element{Name: "tzo", Kids: []any{tzo}},
		&codec.Element{Name: "utc", Kids: []any{codec.XMPPStamp(now.UnixMicro())}},
	}})
}

func twoDigits(n int) string { return string([]byte{byte('0' + n/10%10), byte('0' + n%10)}) }

// serverCaps is the <c/> of the stream features.
func (s *Service) serverCaps() *codec.Element {
	return &codec.Element{Name: "c", Attrs: [][2]string{{"ver", s.serverCapsVer()}, {"node", capsURI}, {"hash", "sha-1"}, {"xmlns", nsCaps}}}
}
