package xmpp

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Entity capabilities (XEP-0115) as ejabberd 23.01's mod_caps with its
// SQL backend: the features of a client's caps are read from
// caps_features (the migrated cache); caps the server does not know are
// asked of the client once (a disco#info query from the user's JID to
// itself), checked against their hash and stored.

const (
	nsCaps      = "http://jabber.org/protocol/caps"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	// capsRequestLife is how long one query per JID and caps is enough
	// (mod_caps' BAD_HASH_LIFETIME).
	capsRequestLife = 600 * time.Second
)

func (s *Service) capsOn() bool { return s.opt.Config.Modules["mod_caps"] }

// capsRef is the <c/> of a presence.
type capsRef struct {
	node, ver, hash string
	exts            []string
}

func (c capsRef) equal(o capsRef) bool {
	return c.node == o.node && c.ver == o.ver && c.hash == o.hash && slices.Equal(c.exts, o.exts)
}

func readCaps(el *codec.Element) (capsRef, bool) {
	c := child(el, "c", nsCaps)
	if c == nil {
		return capsRef{}, false
	}
	r := capsRef{node: stanza.Attr(c, "node"), ver: stanza.Attr(c, "ver"), hash: stanza.Attr(c, "hash")}
	if e := stanza.Attr(c, "ext"); e != "" {
		r.exts = strings.Fields(e)
	}
	return r, true
}

type capsEntry struct {
	jid  jid.JID
	caps capsRef
}

// capsList are the caps the session knows.
func (l *local) capsList() []capsEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]capsEntry, 0, len(l.caps))
	for k, c := range l.caps {
		if j, err := jid.Parse(k); err == nil {
			out = append(out, capsEntry{j, c})
		}
	}
	return out
}

// capsCache keeps the features read or learnt, by node and subnode.
type capsCache struct {
	known    sync.Map // node + "#" + subnode → []string
	requests sync.Map // query id → *capsQuery
	asked    sync.Map // full JID + " " + node + "#" + subnode → time asked
}

type capsQuery struct {
	user    jid.JID
	caps    capsRef
	subs    []string // the subnodes still to ask, the first one asked
	expires time.Time
}

// capsFeatures are the features of caps: those of its version and
// extensions that are known.
func (s *Service) capsFeatures(c capsRef) []string {
	var out []string
	for _, sub := range append([]string{c.ver}, c.exts...) {
		if f, ok := s.subnodeFeatures(c.node, sub); ok {
			out = append(out, f...)
		}
	}
	return out
}

func (s *Service) subnodeFeatures(node, sub string) ([]string, bool) {
	key := node + "#" + sub
	if v, ok := s.caps.known.Load(key); ok {
		return v.([]string), true
	}
	ctx, cancel := dbctx()
	defer cancel()
	f, ok, err := s.store.CapsFeatures(ctx, node, sub)
	if err != nil || !ok {
		return nil, false
	}
	s.caps.known.Store(key, f)
	return f, true
}

// capsSent: a session sent available presence with caps: what the
// server does not know of them is asked (mod_caps' user_send_packet).
func (s *Service) capsSent(l *local, el *codec.Element) {
	c, ok := readCaps(el)
	if !ok || !s.capsOn() {
		return
	}
	s.featureRequest(l.jid(), c, append([]string{c.ver}, c.exts...))
}

func (s *Service) featureRequest(user jid.JID, c capsRef, subs []string) {
	for i, sub := range subs {
		if _, ok := s.subnodeFeatures(c.node, sub); ok {
			continue
		}
		key := user.String() + " " + c.node + "#" + sub
		if at, ok := s.caps.asked.Load(key); ok && time.Since(at.(time.Time)) < capsRequestLife {
			continue
		}
		s.caps.asked.Store(key, time.Now())
		id := randomID()
		s.log.Debug("caps: asking a client for its features", "user", user.String(), "node", c.node+"#"+sub)
		s.caps.requests.Store(id, &capsQuery{user: user, caps: c, subs: subs[i:], expires: time.Now().Add(capsRequestLife)})
		s.Route(&codec.Element{Name: "iq", Attrs: [][2]string{{"to", user.String()}, {"from", user.String()}, {"type", "get"}, {"id", id}},
			Kids: []any{&codec.Element{Name: "query", Attrs: [][2]string{{"node", c.node + "#" + sub}, {"xmlns", nsDiscoInfo}}}}})
		return
	}
}

// capsAnswer takes a client's answer to the server's caps query (true
// when it was one).
func (s *Service) capsAnswer(el *codec.Element) bool {
	typ := stanza.Attr(el, "type")
	if el.Name != "iq" || (typ != "result" && typ != "error") {
		return false
	}
	v, ok := s.caps.requests.LoadAndDelete(stanza.Attr(el, "id"))
	if !ok {
		return false
	}
	q := v.(*capsQuery)
	if time.Now().After(q.expires) {
		return true
	}
	info := child(el, "query", nsDiscoInfo)
	if typ == "result" && info != nil && !capsHashOK(q.caps, info) {
		s.log.Info("caps: a client's features do not match their hash; not kept", "node", q.caps.node, "ver", q.caps.ver, "hash", q.caps.hash)
	}
	if typ == "result" && info != nil && capsHashOK(q.caps, info) {
		var features []string
		for _, k := range info.Kids {
			if c, ok := k.(*codec.Element); ok && c.Name == "feature" {
				features = append(features, stanza.Attr(c, "var"))
			}
		}
		ctx, cancel := dbctx()
		err := s.store.SetCapsFeatures(ctx, q.caps.node, q.subs[0], features)
		cancel()
		if err == nil {
			s.caps.known.Delete(q.caps.node + "#" + q.subs[0])
		}
	}
	s.featureRequest(q.user, q.caps, q.subs[1:])
	return true
}

// capsHashOK checks a disco#info answer against the caps' version
// (XEP-0115 §5), for the hashes mod_caps checks.
func capsHashOK(c capsRef, info *codec.Element) bool {
	h := capsHasher(c.hash)
	if h == nil {
		return true
	}
	h.Write([]byte(capsString(info)))
	return b64(h.Sum(nil)) == c.ver
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// capsHasher is the hash a caps' hash attribute names (nil for one
// mod_caps does not check).
func capsHasher(name string) hash.Hash {
	var h hash.Hash
	switch name {
	case "md5":
		h = md5.New()
	case "sha-1":
		h = sha1.New()
	case "sha-224":
		h = sha256.New224()
	case "sha-256":
		h = sha256.New()
	case "sha-384":
		h = sha512.New384()
	case "sha-512":
		h = sha512.New()
	}
	return h
}

// capsString is the string XEP-0115 hashes, sorted as mod_caps sorts:
// identities by category, type, language and name; features; forms by
// FORM_TYPE, their fields by name and values.
func capsString(info *codec.Element) string {
	var ids [][4]string
	var feats []string
	type form struct {
		typ    string
		fields [][]string // name, then the values
	}
	var forms []form
	for _, k := range info.Kids {
		c, ok := k.(*codec.Element)
		if !ok {
			continue
		}
		switch {
		case c.Name == "identity":
			ids = append(ids, [4]string{stanza.Attr(c, "category"), stanza.Attr(c, "type"), stanza.Attr(c, "xml:lang"), stanza.Attr(c, "name")})
		case c.Name == "feature":
			feats = append(feats, stanza.Attr(c, "var"))
		case c.Name == "x" && stanza.NS(c) == nsXData && stanza.Attr(c, "type") == "result":
			var f form
			for _, fd := range parseXForm(c).fields {
				if fd.v == "FORM_TYPE" {
					if len(fd.values) > 0 {
						f.typ = fd.values[0]
					}
					continue
				}
				vals := slices.Clone(fd.values)
				sort.Strings(vals)
				f.fields = append(f.fields, append([]string{fd.v}, vals...))
			}
			sort.Slice(f.fields, func(i, j int) bool { return slices.Compare(f.fields[i], f.fields[j]) < 0 })
			forms = append(forms, f)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return slices.Compare(ids[i][:], ids[j][:]) < 0 })
	sort.Strings(feats)
	feats = slices.Compact(feats)
	sort.Slice(forms, func(i, j int) bool {
		if forms[i].typ != forms[j].typ {
			return forms[i].typ < forms[j].typ
		}
		return slices.CompareFunc(forms[i].fields, forms[j].fields, slices.Compare) < 0
	})
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(strings.Join(id[:], "/") + "<")
	}
	for _, f := range feats {
		b.WriteString(f + "<")
	}
	for _, f := range forms {
		b.WriteString(f.typ + "<")
		for _, fd := range f.fields {
			b.WriteString(fd[0] + "<")
			for _, v := range fd[1:] {
				b.WriteString(v + "<")
			}
		}
	}
	return b.String()
}

// capsIn: a presence reached a session (mod_caps' c2s_presence_in): the
// caps of the user's own resources and of the contacts subscribed to
// the user are kept; when first seen, the session's own resource gets
// the user's last PEP items; when they change, the sender gets them by
// its new features; a contact that probed gets them now.
func (s *Service) capsIn(l *local, el *codec.Element, from jid.JID) {
	if !s.capsOn() {
		return
	}
	self := l.jid()
	switch stanza.Attr(el, "type") {
	case "unavailable", "error":
		l.mu.Lock()
		delete(l.caps, from.String())
		delete(l.lastPEP, from.String())
		l.mu.Unlock()
		return
	case "":
	default:
		return
	}
	c, ok := readCaps(el)
	l.mu.Lock()
	probed := l.lastPEP[from.String()]
	delete(l.lastPEP, from.String())
	l.mu.Unlock()
	if !ok {
		return
	}
	if from.Bare() != self.Bare() && !isFrom(s.subscription(self, from)) {
		return
	}
	l.mu.Lock()
	old, had := l.caps[from.String()]
	if l.caps == nil {
		l.caps = map[string]capsRef{}
	}
	l.caps[from.String()] = c
	l.mu.Unlock()
	if !s.pepOn() {
		return
	}
	switch {
	case had && !old.equal(c):
		s.sendLastPEP(l, from, s.capsFeatures(c))
	case !had && (from == self || probed):
		s.sendLastPEP(l, from, s.capsFeatures(c))
	}
}

// pepProbed: a contact of this server probed the session's user: its
// last PEP items go to the contact by the features of its caps (when
// they are not known yet, once they are).
func (s *Service) pepProbed(l *local, from jid.JID) {
	self := l.jid()
	if !s.pepOn() || from.Bare() == self.Bare() || !s.servesDomain(from.Domain) {
		return
	}
	l.mu.Lock()
	c, ok := l.caps[from.String()]
	if !ok {
		if l.lastPEP == nil {
			l.lastPEP = map[string]bool{}
		}
		l.lastPEP[from.String()] = true
	}
	l.mu.Unlock()
	if ok {
		s.sendLastPEP(l, from, s.capsFeatures(c))
	}
}
