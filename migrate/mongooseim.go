package migrate

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// The mongooseim schema: MongooseIM 6.x priv/pg.sql. Most tables are
// ejabberd's with a server column first in the key; the rest differ in
// kind: SCRAM in pass_details, offline messages with µs timestamps, MAM in
// mam_message / mam_muc_message keyed by mam_server_user ids, rooms as JSON
// with affiliations in their own table.

// mimColumns lists each MongooseIM table's columns in the order Row values
// come (serial ids the export does not assign left out).
var mimColumns = map[string][]string{
	"users":                   {"username", "server", "password", "pass_details"},
	"last":                    {"server", "username", "seconds", "state"},
	"rosterusers":             {"server", "username", "jid", "nick", "subscription", "ask", "askmessage"},
	"rostergroups":            {"server", "username", "jid", "grp"},
	"roster_version":          {"server", "username", "version"},
	"vcard":                   {"username", "server", "vcard"},
	"vcard_search":            {"username", "lusername", "server", "fn", "lfn", "family", "lfamily", "given", "lgiven", "middle", "lmiddle", "nickname", "lnickname", "bday", "lbday", "ctry", "lctry", "locality", "llocality", "email", "lemail", "orgname", "lorgname", "orgunit", "lorgunit"},
	"private_storage":         {"server", "username", "namespace", "data"},
	"privacy_default_list":    {"server", "username", "name"},
	"privacy_list":            {"server", "username", "name", "id"},
	"privacy_list_data":       {"id", "t", "value", "action", "ord", "match_all", "match_iq", "match_message", "match_presence_in", "match_presence_out"},
	"offline_message":         {"timestamp", "expire", "server", "username", "from_jid", "packet", "permanent_fields"},
	"mam_server_user":         {"id", "server", "user_name"},
	"mam_message":             {"id", "user_id", "from_jid", "remote_bare_jid", "remote_resource", "direction", "message", "search_body", "origin_id", "is_groupchat"},
	"mam_muc_message":         {"id", "room_id", "sender_id", "nick_name", "message", "search_body", "origin_id"},
	"mam_config":              {"user_id", "remote_jid", "behaviour"},
	"muc_rooms":               {"id", "muc_host", "room_name", "options"},
	"muc_room_aff":            {"room_id", "luser", "lserver", "resource", "aff"},
	"muc_registered":          {"muc_host", "luser", "lserver", "nick"},
	"pubsub_nodes":            {"nidx", "p_key", "name", "type", "owners", "options"},
	"pubsub_node_collections": {"name", "parent_name"},
	"pubsub_affiliations":     {"nidx", "luser", "lserver", "aff"},
	"pubsub_subscriptions":    {"nidx", "luser", "lserver", "lresource", "type", "sub_id", "options"},
	"pubsub_items": {"nidx", "itemid", "created_luser", "created_lserver", "created_at",
		"modified_luser", "modified_lserver", "modified_lresource", "modified_at", "publisher", "payload"},
}

// mimSerials are MongooseIM's serial columns the export fills or leaves to
// PostgreSQL; their sequences are advanced after the load.
var mimSerials = [][2]string{{"privacy_list", "id"}, {"muc_rooms", "id"}, {"mam_server_user", "id"}, {"offline_message", "id"}, {"pubsub_nodes", "nidx"}}

// noMongooseTable maps the ejabberd tables MongooseIM keeps nowhere in SQL
// (its modules for them have no RDBMS backend, or none at all).
var noMongooseTable = map[string]string{
	"sr_group": "MongooseIM's shared roster is LDAP only", "sr_user": "MongooseIM's shared roster is LDAP only",
	"motd": "MongooseIM has no message of the day module", "motd_users": "MongooseIM has no message of the day module",
	"oauth_token": "MongooseIM has no OAuth module", "oauth_client": "MongooseIM has no OAuth module",
	"mqtt_pub":     "MongooseIM has no MQTT module",
	"push_session": "MongooseIM's push subscriptions (event_pusher_push_subscription) take a different form and are re-registered by clients",
}

// MongooseTables lists the tables the mongooseim schema maps, in export
// order. After-tables run once the others are done (they reuse the ids the
// others assigned).
var MongooseTables = func() []Table {
	out := []Table{
		{Name: "passwd", Targets: []string{"users"}, mapFn: (*Mapper).mimPasswd},
		{Name: "last_activity", Targets: []string{"last"}, mapFn: mimVia(byHost(4, 1, Target.LastActivity))},
		{Name: "roster", Targets: []string{"rosterusers", "rostergroups"}, mapFn: mimVia(byHost(10, 2, Target.Roster))},
		{Name: "roster_version", Targets: []string{"roster_version"}, mapFn: mimVia((*Mapper).rosterVersion)},
		{Name: "vcard", Targets: []string{"vcard"}, mapFn: mimVia((*Mapper).vcard)},
		{Name: "vcard_search", Targets: []string{"vcard_search"}, mapFn: mimVia((*Mapper).vcardSearch)},
		{Name: "offline_msg", Targets: []string{"offline_message"}, mapFn: (*Mapper).mimOffline},
		{Name: "private_storage", Targets: []string{"private_storage"}, mapFn: mimVia((*Mapper).private)},
		{Name: "privacy", Targets: []string{"privacy_default_list", "privacy_list", "privacy_list_data"}, mapFn: mimVia((*Mapper).privacy)},
		{Name: "muc_room", Targets: []string{"muc_rooms", "muc_room_aff"}, mapFn: (*Mapper).mimRoom},
		{Name: "muc_registered", Targets: []string{"muc_registered"}, mapFn: (*Mapper).mimRegistered},
		{Name: "archive_msg", Targets: []string{"mam_server_user", "mam_message", "mam_muc_message"}, mapFn: (*Mapper).mimArchive},
		{Name: "archive_prefs", Targets: []string{"mam_server_user", "mam_config"}, After: true, mapFn: (*Mapper).mimPrefs},
		{Name: "mam_prefs", Targets: []string{"mam_server_user", "mam_config"}, After: true, mapFn: (*Mapper).mimPrefs},
		{Name: "pubsub_node", Targets: []string{"pubsub_nodes", "pubsub_node_collections"}, mapFn: (*Mapper).mimPubsubNode},
		{Name: "pubsub_state", Targets: []string{"pubsub_affiliations", "pubsub_subscriptions"}, After: true, mapFn: (*Mapper).mimPubsubState},
		{Name: "pubsub_item", Targets: []string{"pubsub_items"}, After: true, mapFn: (*Mapper).mimPubsubItem},
	}
	for _, name := range []string{"sr_group", "sr_user", "motd", "motd_users", "oauth_token", "oauth_client", "mqtt_pub", "push_session"} {
		why := noMongooseTable[name]
		out = append(out, Table{Name: name, mapFn: func(*Mapper, term.Tuple) ([]Row, string, error) {
			return nil, "", reject("no table for it in the mongooseim schema: %s", why)
		}})
	}
	return out
}()

// mimVia maps a record as for ejabberd's multihost schema and reshapes the
// rows for MongooseIM (the same data, server first, a few types changed).
func mimVia(fn func(*Mapper, term.Tuple) ([]Row, string, error)) func(*Mapper, term.Tuple) ([]Row, string, error) {
	return func(m *Mapper, rec term.Tuple) ([]Row, string, error) {
		saved := m.Target
		m.Target = Target{Multihost: true}
		rows, skip, err := fn(m, rec)
		m.Target = saved
		if err != nil || skip != "" {
			return nil, skip, err
		}
		out := rows[:0]
		seenGroups := map[string]bool{}
		for _, r := range rows {
			v := r.Values
			switch r.Table {
			case "last":
				secs, err := strconv.ParseInt(v[2].(string), 10, 64)
				if err != nil || secs < -1<<31 || secs > 1<<31-1 {
					return nil, "", reject("last activity time %v does not fit MongooseIM's integer column", v[2])
				}
				r.Values = []any{v[1], v[0], int32(secs), v[3]}
			case "rosterusers":
				r.Values = []any{v[1], v[0], v[2], v[3], v[4], v[5], v[6]}
			case "rostergroups":
				// MongooseIM keys groups by (server, user, jid, group) and
				// skips empty group names.
				g := v[3].(string)
				if g == "" || seenGroups[g] {
					continue
				}
				seenGroups[g] = true
				r.Values = []any{v[1], v[0], v[2], v[3]}
			case "roster_version", "privacy_default_list", "privacy_list":
				r.Values = append([]any{v[1], v[0]}, v[2:]...)
			case "private_storage":
				r.Values = []any{v[1], v[0], v[2], v[3]}
			case "vcard", "vcard_search", "privacy_list_data":
				// same column order, server in server_host's place
			}
			out = append(out, r)
		}
		if err := mimPrivacyOrders(out); err != nil {
			return nil, "", err
		}
		return out, "", nil
	}
}

// mimPrivacyOrders refuses two items with the same order in one list:
// MongooseIM's key (id, ord) cannot hold them.
func mimPrivacyOrders(rows []Row) error {
	seen := map[[2]int64]bool{}
	for _, r := range rows {
		if r.Table != "privacy_list_data" {
			continue
		}
		k := [2]int64{r.Values[0].(int64), r.Values[4].(int64)}
		if seen[k] {
			return reject("privacy list has two items of order %d: MongooseIM keys items by (list, order)", k[1])
		}
		seen[k] = true
	}
	return nil
}

// scramTag names a hash in MongooseIM's serialized SCRAM.
var scramTag = map[string]string{"sha": "===SHA1===", "sha224": "==SHA224==", "sha256": "==SHA256==", "sha384": "==SHA384==", "sha512": "==SHA512=="}

// mimPasswd writes a users row: a plain password as is (pass_details
// NULL); SCRAM as mongoose_scram:serialize does, password empty and
// pass_details "==MULTI_SCRAM==,IC,<tag>Salt|StoredKey|ServerKey,...".
// MongooseIM's own Mnesia keeps SCRAM as a map of hashes, handled too.
func (m *Mapper) mimPasswd(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 3 {
		return nil, "", reject("passwd record of %d fields", len(rec)-1)
	}
	user, host, err := us(rec[1])
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(host) {
		return nil, host, nil
	}
	if mp, ok := rec[2].(term.Map); ok {
		details, err := mimScramMap(mp)
		if err != nil {
			return nil, "", err
		}
		return []Row{{Table: "users", Values: []any{user, host, "", details}}}, "", nil
	}
	rows, err := Target{Multihost: true}.Passwd(rec)
	if err != nil {
		return nil, "", err
	}
	v := rows[0].Values // username, server_host, password, serverkey, salt, iterationcount
	if v[3] == "" && v[4] == "" && v[5] == int32(0) {
		return []Row{{Table: "users", Values: []any{user, host, v[2], nil}}}, "", nil
	}
	hash, stored := "sha", v[2].(string)
	if h, rest, ok := strings.Cut(stored, ":"); ok && (h == "sha256" || h == "sha512") {
		hash, stored = h, rest
	}
	details := "==MULTI_SCRAM==," + strconv.Itoa(int(v[5].(int32))) + "," + scramTag[hash] + v[4].(string) + "|" + stored + "|" + v[3].(string)
	return []Row{{Table: "users", Values: []any{user, host, "", details}}}, "", nil
}

// mimScramMap serializes MongooseIM's Mnesia SCRAM map
// #{iteration_count => IC, sha => #{salt, stored_key, server_key}, ...}.
func mimScramMap(mp term.Map) (string, error) {
	ic := int64(-1)
	hashes := map[string][3]string{}
	for _, p := range mp {
		k, _ := p.Key.(term.Atom)
		if k == "iteration_count" {
			ic, _ = term.Int(p.Value)
			continue
		}
		if scramTag[string(k)] == "" {
			return "", reject("SCRAM map key %s", short(p.Key))
		}
		inner, ok := p.Value.(term.Map)
		if !ok {
			return "", reject("SCRAM %s is not a map", k)
		}
		var f [3]string
		for _, q := range inner {
			qk, _ := q.Key.(term.Atom)
			s, err := text(q.Value, string(qk))
			if err != nil {
				return "", err
			}
			switch qk {
			case "salt":
				f[0] = s
			case "stored_key":
				f[1] = s
			case "server_key":
				f[2] = s
			}
		}
		hashes[string(k)] = f
	}
	if ic <= 0 || len(hashes) == 0 {
		return "", reject("SCRAM map without an iteration count or hashes")
	}
	out := "==MULTI_SCRAM==," + strconv.FormatInt(ic, 10)
	for _, h := range []string{"sha", "sha224", "sha256", "sha384", "sha512"} {
		if f, ok := hashes[h]; ok {
			out += "," + scramTag[h] + f[0] + "|" + f[1] + "|" + f[2]
		}
	}
	return out, nil
}

// mimOffline maps an offline message (ejabberd's record, or MongooseIM's
// with permanent_fields and a µs timestamp) to offline_message: the stanza
// with its from and to, the time in µs; MongooseIM adds the delay when it
// delivers.
func (m *Mapper) mimOffline(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 7 && len(rec) != 8 {
		return nil, "", reject("offline_msg record of %d fields", len(rec)-1)
	}
	user, host, err := us(rec[1])
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(host) {
		return nil, host, nil
	}
	usec, err := anyUsec(rec[2])
	if err != nil {
		return nil, "", err
	}
	var expire any
	if !term.IsAtom(rec[3], "never") && !term.IsAtom(rec[3], "undefined") {
		e, err := anyUsec(rec[3])
		if err != nil {
			return nil, "", reject("expire: %v", err)
		}
		expire = e
	}
	from, err := jidText(rec[4])
	if err != nil {
		return nil, "", reject("from: %v", err)
	}
	to, err := jidText(rec[5])
	if err != nil {
		return nil, "", reject("to: %v", err)
	}
	pkt, err := parseXel(rec[6], 0)
	if err != nil {
		return nil, "", reject("packet: %v", err)
	}
	setAttr(pkt, "from", from)
	setAttr(pkt, "to", to)
	var perm any
	if len(rec) == 8 {
		if l, ok := term.Elems(rec[7]); !ok || len(l) > 0 {
			b, err := term.Encode(rec[7])
			if err != nil {
				return nil, "", reject("permanent fields: %v", err)
			}
			perm = b
		}
	}
	return []Row{{Table: "offline_message", Values: []any{usec, expire, host, user, from, string(appendXel(nil, pkt)), perm}}}, "", nil
}

// anyUsec reads a time as {Mega, Sec, Micro} or as integer microseconds.
func anyUsec(t term.Term) (int64, error) {
	if n, ok := term.Int(t); ok && n >= 0 {
		return n, nil
	}
	return timestampUsec(t)
}

func setAttr(e *xel, name, value string) {
	for i, a := range e.attrs {
		if a[0] == name {
			e.attrs[i][1] = value
			return
		}
	}
	e.attrs = append(e.attrs, [2]string{name, value})
}

func (m *Mapper) mimRegistered(rec term.Tuple) ([]Row, string, error) {
	saved := m.Target
	m.Target = Target{Multihost: true}
	rows, skip, err := m.mucRegistered(rec)
	m.Target = saved
	if err != nil || skip != "" {
		return nil, skip, err
	}
	k := rec[1].(term.Tuple)
	u, s, _ := us(k[0])
	v := rows[0].Values // jid, host, server_host, nick
	return []Row{{Table: "muc_registered", Values: []any{v[1], strings.ToLower(u), strings.ToLower(s), v[3]}}}, "", nil
}

// mucAffCode is muc_room_aff.aff.
var mucAffCode = map[term.Atom]int16{"owner": 1, "member": 2, "admin": 3, "outcast": 4, "none": 5}

// mimRoomOptions are the room options MongooseIM stores (make_opts), with
// ejabberd's name for each when it differs.
var mimRoomOptions = []string{"title", "description", "allow_change_subj", "allow_query_users", "allow_private_messages",
	"allow_visitor_status", "allow_visitor_nickchange", "public", "public_list", "persistent", "moderated",
	"members_by_default", "members_only", "allow_user_invites", "allow_multiple_sessions", "password_protected",
	"password", "anonymous", "max_users", "maygetmemberlist", "subject", "subject_author"}

// mimRoom maps a room to muc_rooms (its options as MongooseIM's
// mod_muc_rdbms writes them: the option list as a JSON object, in
// MongooseIM's option set) and muc_room_aff (one row per affiliation).
func (m *Mapper) mimRoom(rec term.Tuple) ([]Row, string, error) {
	name, service, _, skip, err := m.roomKey(rec)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	opts, ok := term.Elems(rec[2])
	if !ok {
		return nil, "", reject("room options are not a list: %s", short(rec[2]))
	}
	have := map[string]term.Term{}
	for _, o := range opts {
		kv, ok := o.(term.Tuple)
		if !ok || len(kv) != 2 {
			return nil, "", reject("room option is not {Key, Value}: %s", short(o))
		}
		k, ok := kv[0].(term.Atom)
		if !ok {
			return nil, "", reject("room option key %s", short(kv[0]))
		}
		if _, dup := have[string(k)]; !dup {
			have[string(k)] = kv[1]
		}
	}
	// ejabberd 17.x+ replaced allow_private_messages with allowpm.
	if _, ok := have["allow_private_messages"]; !ok {
		if pm, ok := have["allowpm"].(term.Atom); ok {
			have["allow_private_messages"] = term.Atom(strconv.FormatBool(pm != "none"))
		}
	}
	var js bytes.Buffer
	js.WriteByte('{')
	first := true
	for _, k := range mimRoomOptions {
		v, ok := have[k]
		if !ok {
			continue
		}
		var enc []byte
		switch k {
		case "subject":
			s, err := roomSubject(v)
			if err != nil {
				return nil, "", err
			}
			enc = jiffyString(nil, s)
		case "subject_author":
			s, err := roomSubjectAuthor(v)
			if err != nil {
				return nil, "", err
			}
			enc = jiffyString(nil, s)
		default:
			if enc, err = jiffyValue(nil, v, 0); err != nil {
				return nil, "", reject("room option %s: %v", k, err)
			}
		}
		if !first {
			js.WriteByte(',')
		}
		first = false
		js.Write(jiffyString(nil, k))
		js.WriteByte(':')
		js.Write(enc)
	}
	js.WriteByte('}')
	id := m.NextRoomID
	if id <= 0 {
		id = 1
	}
	m.NextRoomID = id + 1
	rows := []Row{{Table: "muc_rooms", Values: []any{id, service, name, js.String()},
		Canon: []any{service, name, js.String()}}}
	if affs, ok := have["affiliations"]; ok {
		l, ok := term.Elems(affs)
		if !ok {
			return nil, "", reject("room affiliations are not a list: %s", short(affs))
		}
		for _, a := range l {
			kv, ok := a.(term.Tuple)
			if !ok || len(kv) != 2 {
				return nil, "", reject("room affiliation is not {JID, Affiliation}: %s", short(a))
			}
			j, ok := kv[0].(term.Tuple)
			if !ok || len(j) != 3 {
				return nil, "", reject("room affiliation JID %s", short(kv[0]))
			}
			u, err1 := text(j[0], "user")
			s, err2 := text(j[1], "server")
			r, err3 := text(j[2], "resource")
			if err := firstErr(err1, err2, err3); err != nil {
				return nil, "", err
			}
			aff := kv[1]
			if t, ok := aff.(term.Tuple); ok && len(t) == 2 {
				aff = t[0] // {Affiliation, Reason}
			}
			an, _ := aff.(term.Atom)
			code, ok := mucAffCode[an]
			if !ok {
				return nil, "", reject("room affiliation %s", short(kv[1]))
			}
			rows = append(rows, Row{Table: "muc_room_aff", Values: []any{id, u, s, r, code},
				Canon: []any{service, name, u, s, r, code}})
		}
	}
	return rows, "", nil
}

// roomSubject reads a subject: text, or ejabberd 21.12+'s [{text, Lang,
// Text}] (the text without a language, else the first).
func roomSubject(v term.Term) (string, error) {
	if s, ok := term.Text(v); ok {
		if _, isAtom := v.(term.Atom); !isAtom {
			return s, nil
		}
	}
	l, ok := term.Elems(v)
	if !ok {
		return "", reject("room subject %s", short(v))
	}
	out := ""
	for i, e := range l {
		t, ok := term.IsRecord(e, "text", 3)
		if !ok {
			return "", reject("room subject %s", short(v))
		}
		lang, _ := term.Text(t[1])
		s, err := text(t[2], "subject")
		if err != nil {
			return "", err
		}
		if i == 0 || lang == "" {
			out = s
		}
		if lang == "" {
			break
		}
	}
	return out, nil
}

// roomSubjectAuthor reads the subject's author: a nick, or ejabberd
// 22.x+'s {Nick, JID}.
func roomSubjectAuthor(v term.Term) (string, error) {
	if t, ok := v.(term.Tuple); ok && len(t) == 2 {
		v = t[0]
	}
	return text(v, "subject author")
}

// jiffyValue writes a term as jiffy:encode does for the values room
// options hold: binaries as strings, true/false/null as themselves, other
// atoms as strings, integers, floats, lists as arrays.
func jiffyValue(dst []byte, v term.Term, depth int) ([]byte, error) {
	if depth > 20 {
		return dst, fmt.Errorf("nested too deep")
	}
	switch x := v.(type) {
	case term.Atom:
		if x == "true" || x == "false" || x == "null" {
			return append(dst, x...), nil
		}
		return jiffyString(dst, string(x)), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case term.Binary:
		return jiffyString(dst, string(x)), nil
	case float64:
		return strconv.AppendFloat(dst, x, 'g', -1, 64), nil
	}
	if n, ok := term.Int(v); ok {
		return strconv.AppendInt(dst, n, 10), nil
	}
	if l, ok := term.Elems(v); ok {
		dst = append(dst, '[')
		for i, e := range l {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = jiffyValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	return dst, fmt.Errorf("%s has no JSON form", short(v))
}

// jiffyString writes a JSON string as jiffy does: UTF-8 kept, ", \ and
// control characters escaped, / not escaped.
func jiffyString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// mamUsers assigns mam_server_user ids, shared by the tables of one export.
type mamUsers struct {
	mu   sync.Mutex
	ids  map[string]int32 // server \x00 user -> id
	next int32
}

// NewMamUsers starts the registry from the ids a database holds already.
func NewMamUsers(known map[string]int32) *mamUsers {
	r := &mamUsers{ids: map[string]int32{}, next: 1}
	for k, id := range known {
		r.ids[k] = id
		if id >= r.next {
			r.next = id + 1
		}
	}
	return r
}

// id returns the archive id of server/user, and a mam_server_user row when
// it is new.
func (r *mamUsers) id(server, user string) (int32, *Row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := server + "\x00" + user
	if id, ok := r.ids[k]; ok {
		return id, nil
	}
	id := r.next
	r.next++
	r.ids[k] = id
	return id, &Row{Table: "mam_server_user", Values: []any{id, server, user}, Canon: []any{server, user}}
}

// mimArchive maps archive_msg: a user's message to mam_message, a room's
// to mam_muc_message; the id is (µs << 8) | n, n telling apart messages of
// one archive stored in the same microsecond.
func (m *Mapper) mimArchive(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 9 && len(rec) != 10 {
		return nil, "", reject("archive_msg record of %d fields", len(rec)-1)
	}
	owner, server, err := us(rec[1])
	if err != nil {
		return nil, "", err
	}
	kind, _ := rec[8].(term.Atom)
	vhost := server
	switch kind {
	case "chat":
	case "groupchat":
		if vhost, err = m.serviceHost(server); err != nil {
			return nil, "", err
		}
	default:
		return nil, "", reject("archive type %s", short(rec[8]))
	}
	if !m.wanted(vhost) {
		return nil, vhost, nil
	}
	usec, err := timestampUsec(rec[3])
	if err != nil {
		return nil, "", err
	}
	peer, err := ljidParts(rec[4])
	if err != nil {
		return nil, "", reject("peer: %v", err)
	}
	pkt, err := parseXel(rec[6], 0)
	if err != nil {
		return nil, "", reject("packet: %v", err)
	}
	nick, err := text(rec[7], "nick")
	if err != nil {
		return nil, "", err
	}
	// The archive's messages come together (archive_msg is a bag keyed by
	// owner): a same-microsecond message gets the next low byte.
	ownerKey := server + "\x00" + owner
	if m.mamOwner != ownerKey {
		m.mamOwner, m.mamSeen = ownerKey, map[int64]int64{}
	}
	n := m.mamSeen[usec]
	if n > 255 {
		return nil, "", reject("more than 256 messages of one archive in microsecond %d", usec)
	}
	m.mamSeen[usec] = n + 1
	mid := usec<<8 | n
	msg, err := exmlTerm(pkt)
	if err != nil {
		return nil, "", reject("packet: %v", err)
	}
	body := ""
	for _, k := range pkt.kids {
		if c, ok := k.(*xel); ok && c.name == "body" {
			body = c.cdata()
			break
		}
	}
	search := NormalizeSearch(body)
	var origin any
	if len(rec) == 10 {
		if s, ok := term.Text(rec[9]); ok && s != "" {
			origin = s
		}
	}
	if origin == nil {
		for _, k := range pkt.kids {
			if c, ok := k.(*xel); ok && c.name == "origin-id" {
				if ns, _ := c.attr("xmlns"); ns == "urn:xmpp:sid:0" {
					if id, ok := c.attr("id"); ok {
						origin = id
					}
				}
			}
		}
	}
	var rows []Row
	if kind == "groupchat" {
		roomID, ru := m.MamUsers.id(server, owner)
		senderID, su := m.MamUsers.id(peer[1], peer[0])
		for _, u := range []*Row{ru, su} {
			if u != nil {
				rows = append(rows, *u)
			}
		}
		rows = append(rows, Row{Table: "mam_muc_message",
			Values: []any{mid, roomID, senderID, nick, msg, search, origin},
			Canon:  []any{server, owner, mid, peer[1], peer[0], nick, msg, search, origin}})
		return rows, "", nil
	}
	userID, uu := m.MamUsers.id(server, owner)
	if uu != nil {
		rows = append(rows, *uu)
	}
	// Direction: outgoing when the stanza is from the owner.
	dir, source := "I", peer
	if f, ok := pkt.attr("from"); ok {
		fp := splitJID(f)
		if fp[0] == owner && fp[1] == server {
			dir = "O"
		}
		source = fp
	}
	from := jidMini(owner, server, source)
	remoteBare := jidMini(owner, server, [3]string{peer[0], peer[1], ""})
	typ, _ := pkt.attr("type")
	rows = append(rows, Row{Table: "mam_message",
		Values: []any{mid, userID, from, remoteBare, peer[2], dir, msg, search, origin, typ == "groupchat"},
		Canon:  []any{server, owner, mid, from, remoteBare, peer[2], dir, msg, search, origin, typ == "groupchat"}})
	return rows, "", nil
}

// ljidParts reads a {User, Server, Resource} JID.
func ljidParts(t term.Term) ([3]string, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 3 {
		return [3]string{}, reject("JID is not {User, Server, Resource}: %s", short(t))
	}
	u, err1 := text(tu[0], "JID user")
	s, err2 := text(tu[1], "JID server")
	r, err3 := text(tu[2], "JID resource")
	return [3]string{u, s, r}, firstErr(err1, err2, err3)
}

// splitJID splits a JID into its lowercased user and server and its
// resource (resources keep their case, as resourceprep does).
func splitJID(j string) [3]string {
	var out [3]string
	if i := strings.IndexByte(j, '/'); i >= 0 {
		out[2], j = j[i+1:], j[:i]
	}
	if i := strings.IndexByte(j, '@'); i >= 0 {
		out[0], j = strings.ToLower(j[:i]), j[i+1:]
	}
	out[1] = strings.ToLower(j)
	return out
}

// jidMini writes a JID relative to the archive owner, as MongooseIM's
// mam_jid_mini does (mod_mam_utils:jid_to_opt_binary).
func jidMini(ownerUser, ownerServer string, j [3]string) string {
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

// exmlTerm encodes a stanza as MongooseIM 6.x keeps it in mam_message
// (mam_message_compressed_eterm): term_to_binary(Packet, [compressed]) of
// an exml 4 record, {xmlel, Name, #{Attr => Value}, Children} with
// {xmlcdata, Text, escaped} text.
func exmlTerm(e *xel) ([]byte, error) {
	plain, err := term.Encode(exmlOf(e))
	if err != nil {
		return nil, err
	}
	body := plain[1:]
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(body)
	zw.Close()
	if z.Len()+6 >= len(plain) {
		return plain, nil // as Erlang: compressed only when smaller
	}
	out := make([]byte, 6, 6+z.Len())
	out[0], out[1] = 131, 80
	binary.BigEndian.PutUint32(out[2:], uint32(len(body)))
	return append(out, z.Bytes()...), nil
}

func exmlOf(e *xel) term.Term {
	attrs := make(term.Map, 0, len(e.attrs))
	idx := map[string]int{}
	for _, a := range e.attrs {
		if i, ok := idx[a[0]]; ok {
			attrs[i].Value = term.Binary(a[1])
			continue
		}
		idx[a[0]] = len(attrs)
		attrs = append(attrs, term.MapPair{Key: term.Binary(a[0]), Value: term.Binary(a[1])})
	}
	sort.Slice(attrs, func(i, j int) bool {
		return string(attrs[i].Key.(term.Binary)) < string(attrs[j].Key.(term.Binary))
	})
	kids := make(term.List, 0, len(e.kids))
	for _, k := range e.kids {
		switch k := k.(type) {
		case *xel:
			kids = append(kids, exmlOf(k))
		case string:
			kids = append(kids, term.Tuple{term.Atom("xmlcdata"), term.Binary(k), term.Atom("escaped")})
		}
	}
	return term.Tuple{term.Atom("xmlel"), term.Binary(e.name), attrs, kids}
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

// mimPrefs maps archive preferences (ejabberd's archive_prefs or
// MongooseIM's mam_prefs) to mam_config: the default as the ” row, then
// one row per always / never JID.
func (m *Mapper) mimPrefs(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 5 {
		return nil, "", reject("%s record of %d fields", short(rec[0]), len(rec)-1)
	}
	user, host, err := us(rec[1])
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(host) {
		return nil, host, nil
	}
	code := map[term.Atom]string{"always": "A", "never": "N", "roster": "R"}
	def, _ := rec[2].(term.Atom)
	if code[def] == "" {
		return nil, "", reject("archive default %s", short(rec[2]))
	}
	id, u := m.MamUsers.id(host, user)
	var rows []Row
	if u != nil {
		rows = append(rows, *u)
	}
	add := func(jid, beh string) {
		rows = append(rows, Row{Table: "mam_config", Values: []any{id, jid, beh}, Canon: []any{host, user, jid, beh}})
	}
	add("", code[def])
	seen := map[string]bool{"": true}
	for i, beh := range []string{"A", "N"} {
		l, ok := term.Elems(rec[3+i])
		if !ok {
			return nil, "", reject("archive preference list %s", short(rec[3+i]))
		}
		for _, j := range l {
			var s string
			if t, ok := j.(term.Tuple); ok {
				s, err = ljidText(t)
			} else {
				s, err = text(j, "JID")
			}
			if err != nil {
				return nil, "", err
			}
			if seen[s] {
				continue // the key is (user, JID): the first rule wins
			}
			seen[s] = true
			add(s, beh)
		}
	}
	return rows, "", nil
}
