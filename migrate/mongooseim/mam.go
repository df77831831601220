package mongooseim

import (
	"strings"
	"unicode"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// archive maps archive_msg: a user's message to mam_message, a room's to
// mam_muc_message; the id is (µs << 8) | n, n telling apart messages of
// one archive stored in the same microsecond.
func (m *mapper) archive(rec term.Tuple) ([]schema.Op, error) {
	a, err := records.ReadArchive(rec, m.scope)
	if err != nil {
		return nil, err
	}
	// The archive's messages come together (archive_msg is a bag keyed by
	// owner): a same-microsecond message gets the next low byte.
	ownerKey := a.Server + "\x00" + a.Owner
	if m.mamOwner != ownerKey {
		m.mamOwner, m.mamSeen = ownerKey, map[int64]int64{}
	}
	n := m.mamSeen[a.Usec]
	if n > 255 {
		return nil, rejectf("more than 256 messages of one archive in microsecond %d", a.Usec)
	}
	m.mamSeen[a.Usec] = n + 1
	mid := a.Usec<<8 | n
	msg, err := codec.ExmlTerm(a.Packet)
	if err != nil {
		return nil, rejectf("packet: %v", err)
	}
	search := NormalizeSearch(a.Body())
	var origin any
	if a.OriginID != "" {
		origin = a.OriginID
	} else if id, ok := originID(a.Packet); ok {
		origin = id
	}
	var ops []schema.Op
	if a.Kind == "groupchat" {
		roomID, ru := m.mam.id(a.Server, a.Owner)
		senderID, su := m.mam.id(a.Peer[1], a.Peer[0])
		for _, u := range []*schema.Op{ru, su} {
			if u != nil {
				ops = append(ops, *u)
			}
		}
		op := schema.Row("mam_muc_message", mid, roomID, senderID, a.Nick, msg, search, origin)
		op.Canon = []any{a.Server, a.Owner, mid, a.Peer[1], a.Peer[0], a.Nick, msg, search, origin}
		return append(ops, op), nil
	}
	userID, uu := m.mam.id(a.Server, a.Owner)
	if uu != nil {
		ops = append(ops, *uu)
	}
	// Direction: outgoing when the stanza is from the owner.
	dir, source := "I", a.Peer
	if f, ok := a.Packet.Attr("from"); ok {
		fp := records.SplitJID(f)
		if fp[0] == a.Owner && fp[1] == a.Server {
			dir = "O"
		}
		source = fp
	}
	from := jidMini(a.Owner, a.Server, source)
	remoteBare := jidMini(a.Owner, a.Server, a.Peer.Bare())
	typ, _ := a.Packet.Attr("type")
	op := schema.Row("mam_message", mid, userID, from, remoteBare, a.Peer[2], dir, msg, search, origin, typ == "groupchat")
	op.Canon = []any{a.Server, a.Owner, mid, from, remoteBare, a.Peer[2], dir, msg, search, origin, typ == "groupchat"}
	return append(ops, op), nil
}

// originID is the id of the stanza's <origin-id xmlns='urn:xmpp:sid:0'/>
// (the last one, as MongooseIM's lookup ends up with).
func originID(pkt *codec.Element) (string, bool) {
	id, found := "", false
	for _, k := range pkt.Kids {
		if c, ok := k.(*codec.Element); ok && c.Name == "origin-id" {
			if ns, _ := c.Attr("xmlns"); ns == "urn:xmpp:sid:0" {
				if v, ok := c.Attr("id"); ok {
					id, found = v, true
				}
			}
		}
	}
	return id, found
}

// prefs maps archive preferences (ejabberd's archive_prefs or
// MongooseIM's mam_prefs) to mam_config: the default as the ” row, then
// one row per always / never JID.
func (m *mapper) prefs(rec term.Tuple) ([]schema.Op, error) {
	p, err := records.ReadArchivePrefs(rec, m.scope)
	if err != nil {
		return nil, err
	}
	code := map[term.Atom]string{"always": "A", "never": "N", "roster": "R"}
	if code[p.Default] == "" {
		return nil, rejectf("archive default %s", short(p.Default))
	}
	id, u := m.mam.id(p.Server, p.User)
	var ops []schema.Op
	if u != nil {
		ops = append(ops, *u)
	}
	add := func(jid, beh string) {
		op := schema.Row("mam_config", id, jid, beh)
		op.Canon = []any{p.Server, p.User, jid, beh}
		ops = append(ops, op)
	}
	add("", code[p.Default])
	seen := map[string]bool{"": true}
	for i, beh := range []string{"A", "N"} {
		list := []term.Term{p.Always, p.Never}[i]
		l, ok := term.Elems(list)
		if !ok {
			return nil, rejectf("archive preference list %s", short(list))
		}
		for _, j := range l {
			var s string
			if t, ok := j.(term.Tuple); ok {
				s, err = records.LJIDText(t)
			} else {
				s, err = records.Text(j, "JID")
			}
			if err != nil {
				return nil, err
			}
			if seen[s] {
				continue // the key is (user, JID): the first rule wins
			}
			seen[s] = true
			add(s, beh)
		}
	}
	return ops, nil
}

// jidMini writes a JID relative to the archive owner, as MongooseIM's
// mam_jid_mini does (mod_mam_utils:jid_to_opt_binary).
func jidMini(ownerUser, ownerServer string, j records.LJID) string {
	u, s, r := j[0], j[1], j[2]
	switch {
	case s == ownerServer && u == "" && r == "":
		return ":"
	case s == ownerServer && u == ownerUser && r == "":
		return ""
	case s == ownerServer && u == ownerUser:
		return "/" + r
	case s == ownerServer && r == "":
		return u
	case s == ownerServer && u == "":
		return ":/" + r
	case s == ownerServer:
		return u + "/" + r
	case r == "":
		return s + ":" + u
	}
	return s + "@" + u + "/" + r
}

// NormalizeSearch is MongooseIM's search_body: the body lowercased,
// separators ([, .:;-?!], the range ;-? included) turned into spaces,
// everything that is neither a letter, digit, underscore nor space removed,
// the ends trimmed and runs of spaces made one
// (mod_mam_utils:normalize_search_text with " ").
func NormalizeSearch(body string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(body) {
		switch {
		case r == ',' || r == ' ' || r == '.' || r == ':' || (r >= ';' && r <= '?') || r == '!':
			b.WriteByte(' ')
		case r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r):
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
