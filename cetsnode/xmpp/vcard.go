package xmpp

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// vCards (XEP-0054) as ejabberd 23.01's mod_vcard with its SQL backend:
// a user's vCard is read by anyone (to the user's bare JID) and set by
// the user; it is stored as ejabberd stores it — decoded and written
// again by its codec, which orders the known fields its own way and
// normalises BINVAL's base64 — with the search fields (vcard_search)
// in the same transaction. With mod_vcard_xupdate (XEP-0153), the
// user's available presence carries the SHA-1 of the vCard's photo.

const (
	nsVCard       = "vcard-temp"
	nsVCardUpdate = "vcard-temp:x:update"
)

func (s *Service) vcardOn() bool { return s.opt.Config.Modules["mod_vcard"] }

// vcardField is how the codec reads and writes one known child of a
// vCard (or of one of its compound fields).
type vcardField struct {
	name  string
	kind  int // vText, vFlag, vList (repeated compound or text), vCompound, vBinval, vClass
	parts []string
}

const (
	vText = iota
	vFlag
	vCompound
	vBinval
)

// The compound fields' children in the order the codec writes them.
var vcardParts = map[string][]string{
	"N":          {"GIVEN", "FAMILY", "PREFIX", "SUFFIX", "MIDDLE"},
	"ADR":        {"REGION", "DOM", "POSTAL", "PARCEL", "INTL", "WORK", "LOCALITY", "CTRY", "POBOX", "PREF", "HOME", "PCODE", "EXTADD", "STREET"},
	"LABEL":      {"DOM", "POSTAL", "PARCEL", "INTL", "WORK", "PREF", "HOME", "LINE"},
	"TEL":        {"VIDEO", "ISDN", "MODEM", "CELL", "WORK", "FAX", "MSG", "PREF", "HOME", "VOICE", "BBS", "PCS", "PAGER", "NUMBER"},
	"EMAIL":      {"WORK", "PREF", "HOME", "INTERNET", "USERID", "X400"},
	"GEO":        {"LON", "LAT"},
	"LOGO":       {"BINVAL", "EXTVAL", "TYPE"},
	"PHOTO":      {"BINVAL", "EXTVAL", "TYPE"},
	"ORG":        {"ORGNAME", "ORGUNIT"},
	"SOUND":      {"BINVAL", "EXTVAL", "PHONETIC"},
	"KEY":        {"TYPE", "CRED"},
	"CATEGORIES": {"KEYWORD"},
}

// vcardOrder is the order the codec writes a vCard's known fields in.
var vcardOrder = []string{"GEO", "LOGO", "PHOTO", "N", "VERSION", "FN", "LABEL", "TEL", "EMAIL", "URL", "TZ", "KEY", "BDAY", "ORG",
	"SORT-STRING", "REV", "NICKNAME", "TITLE", "ROLE", "NOTE", "SOUND", "JABBERID", "PRODID", "UID", "DESC", "CATEGORIES", "CLASS", "ADR", "MAILER"}

// repeated are the fields (and parts) a vCard may hold several of.
var repeated = map[string]bool{"ADR": true, "LABEL": true, "TEL": true, "EMAIL": true, "LINE": true, "ORGUNIT": true, "KEYWORD": true}

// flags are the parts that are present or not.
var flags = map[string]bool{"HOME": true, "WORK": true, "POSTAL": true, "PARCEL": true, "DOM": true, "INTL": true, "PREF": true,
	"VOICE": true, "FAX": true, "PAGER": true, "MSG": true, "CELL": true, "VIDEO": true, "BBS": true, "MODEM": true, "ISDN": true,
	"PCS": true, "INTERNET": true, "X400": true}

// canonicalVCard decodes and writes a vCard as ejabberd's codec does:
// unknown children first, as given; then the known fields in the codec's
// order, each once (the last given) but for the repeated ones, text
// trimmed of nothing, BINVAL's base64 written again on one line, CLASS
// the last class given, CATEGORIES left out when empty.
func canonicalVCard(v *codec.Element) (*codec.Element, *stanza.Error) {
	var unknown []any
	known := map[string][]*codec.Element{}
	for _, k := range v.Kids {
		c, ok := k.(*codec.Element)
		if !ok {
			continue
		}
		if ns := stanza.NS(c); ns != "" && ns != nsVCard || !isVCardField(c.Name) {
			unknown = append(unknown, c)
			continue
		}
		known[c.Name] = append(known[c.Name], c)
	}
	out := &codec.Element{Name: "vCard", Attrs: [][2]string{{"xmlns", nsVCard}}, Kids: unknown}
	for _, name := range vcardOrder {
		els := known[name]
		if len(els) == 0 {
			continue
		}
		if !repeated[name] {
			els = els[len(els)-1:]
		}
		for _, c := range els {
			e, err := canonicalField(c)
			if err != nil {
				return nil, err
			}
			if e != nil {
				out.Kids = append(out.Kids, e)
			}
		}
	}
	return out, nil
}

func isVCardField(name string) bool {
	if _, ok := vcardParts[name]; ok {
		return true
	}
	switch name {
	case "VERSION", "FN", "URL", "TZ", "BDAY", "SORT-STRING", "REV", "NICKNAME", "TITLE", "ROLE", "NOTE", "JABBERID", "PRODID",
		"UID", "DESC", "CLASS", "MAILER":
		return true
	}
	return false
}

func textEl(name, text string) *codec.Element {
	e := &codec.Element{Name: name}
	if text != "" {
		e.Kids = []any{text}
	}
	return e
}

// canonicalField writes one known field (nil: the codec leaves it out).
func canonicalField(c *codec.Element) (*codec.Element, *stanza.Error) {
	if c.Name == "CLASS" {
		class := ""
		for _, k := range c.Kids {
			if p, ok := k.(*codec.Element); ok && (p.Name == "PUBLIC" || p.Name == "PRIVATE" || p.Name == "CONFIDENTIAL") && (stanza.NS(p) == "" || stanza.NS(p) == nsVCard) {
				class = p.Name
			}
		}
		out := &codec.Element{Name: "CLASS"}
		if class != "" {
			out.Kids = []any{&codec.Element{Name: class}}
		}
		return out, nil
	}
	parts, compound := vcardParts[c.Name]
	if !compound {
		return textEl(c.Name, c.Text()), nil
	}
	got := map[string][]*codec.Element{}
	for _, k := range c.Kids {
		p, ok := k.(*codec.Element)
		if !ok || (stanza.NS(p) != "" && stanza.NS(p) != nsVCard) {
			continue
		}
		got[p.Name] = append(got[p.Name], p)
	}
	out := &codec.Element{Name: c.Name}
	for _, name := range parts {
		ps := got[name]
		if len(ps) == 0 {
			continue
		}
		if !repeated[name] {
			ps = ps[len(ps)-1:]
		}
		for _, p := range ps {
			switch {
			case flags[name]:
				out.Kids = append(out.Kids, &codec.Element{Name: name})
			case name == "BINVAL":
				b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p.Text()), ""))
				if err != nil {
					return nil, stanza.NewError("bad-request", fmt.Sprintf("Bad value of cdata in tag <BINVAL/> qualified by namespace '%s'", nsVCard))
				}
				out.Kids = append(out.Kids, textEl(name, base64.StdEncoding.EncodeToString(b)))
			default:
				out.Kids = append(out.Kids, textEl(name, p.Text()))
			}
		}
	}
	if c.Name == "CATEGORIES" && len(out.Kids) == 0 {
		return nil, nil
	}
	return out, nil
}

// vcardSearch are the search fields ejabberd keeps of a vCard: the first
// FN, N/FAMILY, … as fxml:get_path_s finds them, and their lowercase.
func vcardSearch(user string, v *codec.Element) storage.VCardSearch {
	path := func(names ...string) string {
		e := v
		for _, n := range names {
			if e = e.Child(n); e == nil {
				return ""
			}
		}
		return e.Text()
	}
	email := path("EMAIL", "USERID")
	if email == "" {
		email = path("EMAIL")
	}
	return storage.VCardSearch{User: user, FN: path("FN"), Family: path("N", "FAMILY"), Given: path("N", "GIVEN"),
		Middle: path("N", "MIDDLE"), Nickname: path("NICKNAME"), BDay: path("BDAY"), Country: path("ADR", "CTRY"),
		Locality: path("ADR", "LOCALITY"), Email: email, OrgName: path("ORG", "ORGNAME"), OrgUnit: path("ORG", "ORGUNIT")}
}

// vcardIQ answers vcard-temp IQs to a user's bare JID: get reads the
// user's vCard (an empty one when there is none), set stores the
// requester's own.
func (s *Service) vcardIQ(el, p *codec.Element, to jid.JID) {
	from, err := jid.Parse(stanza.Attr(el, "from"))
	if err != nil {
		return
	}
	if p.Name != "vCard" {
		s.bounce(el, stanza.NewError("service-unavailable", "No module is handling this query"))
		return
	}
	ctx, cancel := dbctx()
	defer cancel()
	if stanza.Attr(el, "type") == "get" {
		x, ok, err := s.store.VCard(ctx, to.Domain, to.Local)
		if err != nil {
			s.bounce(el, errDatabase())
			return
		}
		if !ok {
			s.reply(el, &codec.Element{Name: "vCard", Attrs: [][2]string{{"xmlns", nsVCard}}})
			return
		}
		v, perr := parseStored(x)
		if perr != nil {
			s.bounce(el, errDatabase())
			return
		}
		s.reply(el, v)
		return
	}
	if !s.servesDomain(from.Domain) {
		s.bounce(el, stanza.NewError("not-allowed", "The query is only allowed from local users"))
		return
	}
	v, serr := canonicalVCard(p)
	if serr != nil {
		s.bounce(el, serr)
		return
	}
	err = s.store.SetVCard(ctx, from.Domain, from.Local, string(codec.AppendElement(nil, v)), vcardSearch(from.Local, v))
	if err != nil {
		s.log.Warn("storing a vCard failed", "user", from.Bare().String(), "err", err)
		s.bounce(el, errDatabase())
		return
	}
	s.reply(el)
	if s.xupdateOn() {
		s.forgetEverywhere("photo", from)
		s.updatePresences(from.Bare())
	}
}

// updatePresences sends the available presence of each of a user's
// sessions again (ejabberd_sm's force_update_presence: the new photo
// hash goes to the contacts).
func (s *Service) updatePresences(user jid.JID) {
	for _, ss := range s.node.Sessions.Bare(user.Domain, user.Local) {
		if ss.Node != s.node.Self() {
			if err := s.node.Send(ss.Node, ServiceName, term.Tuple{term.Atom("update_presence"), ss.SID}); err != nil {
				s.log.Info("asking another node to send presence again failed", "node", ss.Node, "err", err)
			}
			continue
		}
		s.updatePresence(ss.SID)
	}
}

// updatePresence sends a session's last available presence again.
func (s *Service) updatePresence(sid term.Tuple) {
	s.mu.Lock()
	l := s.local[sidKey(sid)]
	s.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	last := l.last
	l.mu.Unlock()
	if last != nil {
		s.presenceOut(l, last)
	}
}

// serverVCardIQ answers vcard-temp IQs to the server: its vCard.
func (s *Service) serverVCardIQ(el, p *codec.Element, to jid.JID) {
	if stanza.Attr(el, "type") == "set" {
		s.bounce(el, stanza.NewError("not-allowed", "Value 'set' of 'type' attribute is not allowed"))
		return
	}
	s.reply(el, &codec.Element{Name: "vCard", Attrs: [][2]string{{"xmlns", nsVCard}}, Kids: []any{
		textEl("FN", "mimmigrate"), textEl("DESC", "XMPP service of the mimmigrate cluster node"),
	}})
}

func (s *Service) xupdateOn() bool { return s.opt.Config.Modules["mod_vcard_xupdate"] && s.vcardOn() }

// photoState is what mod_vcard_xupdate tells of a user's photo.
type photoState int

const (
	photoNoVCard photoState = iota // <x/> without <photo/>
	photoSHA1                      // <x><photo>hash</photo></x> (empty: no photo)
	photoByURL                     // no <x/>: the photo is elsewhere
)

// photoCached is a user's photo hash as last read.
type photoCached struct {
	hash  string
	state photoState
}

// photoHash is mod_vcard_xupdate's hash of a user's vCard photo: the
// SHA-1 of its BINVAL. It is read once and kept (every available
// presence carries it) until the user sets a vCard.
func (s *Service) photoHash(user jid.JID) (string, photoState) {
	key := user.Bare().String()
	if v, ok := s.photos.Load(key); ok {
		c := v.(photoCached)
		return c.hash, c.state
	}
	hash, state, err := s.photoHashOf(user)
	if err == nil {
		s.photos.Store(key, photoCached{hash, state})
	}
	return hash, state
}

func (s *Service) photoHashOf(user jid.JID) (string, photoState, error) {
	ctx, cancel := dbctx()
	defer cancel()
	x, found, err := s.store.VCard(ctx, user.Domain, user.Local)
	if err != nil || !found {
		return "", photoNoVCard, err
	}
	v, err := parseStored(x)
	if err != nil {
		return "", photoNoVCard, nil
	}
	ph := v.Child("PHOTO")
	if ph == nil {
		return "", photoSHA1, nil
	}
	if b := ph.Child("BINVAL"); b != nil {
		if bin, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b.Text()), "")); err == nil && len(bin) > 0 {
			sum := sha1.Sum(bin)
			return hex.EncodeToString(sum[:]), photoSHA1, nil
		}
	}
	if e := ph.Child("EXTVAL"); e != nil && e.Text() != "" {
		return "", photoByURL, nil
	}
	return "", photoSHA1, nil
}

// withPhotoHash is mod_vcard_xupdate's update of an available presence
// a user sends: the <x/> with the photo's hash replaces the client's
// (unless the client says it has none to tell: an empty <photo/>).
func (s *Service) withPhotoHash(user jid.JID, el *codec.Element) *codec.Element {
	if !s.xupdateOn() || stanza.Attr(el, "type") != "" {
		return el
	}
	if x := child(el, "x", nsVCardUpdate); x != nil {
		if ph := x.Child("photo"); ph != nil && ph.Text() == "" {
			return el
		}
	}
	hash, state := s.photoHash(user)
	out := *el
	out.Kids = nil
	for _, k := range el.Kids {
		if c, isEl := k.(*codec.Element); isEl && c.Name == "x" && stanza.NS(c) == nsVCardUpdate {
			continue
		}
		out.Kids = append(out.Kids, k)
	}
	if state == photoByURL {
		return &out
	}
	x := &codec.Element{Name: "x", Attrs: [][2]string{{"xmlns", nsVCardUpdate}}}
	if state == photoSHA1 {
		x.Kids = []any{textEl("photo", hash)}
	}
	// Among the extensions, before the presence's own children.
	pos := len(out.Kids)
	for i, k := range out.Kids {
		if c, isEl := k.(*codec.Element); isEl && stanza.NS(c) == "" && (c.Name == "priority" || c.Name == "show" || c.Name == "status") {
			pos = i
			break
		}
	}
	out.Kids = append(out.Kids[:pos:pos], append([]any{x}, out.Kids[pos:]...)...)
	return &out
}
