package migrate

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Table is one Mnesia table the export knows: where its rows go.
type Table struct {
	Name    string   // the Mnesia table
	Targets []string // the SQL tables it fills
	// Optional tables (a cache) are exported only when asked for by name.
	Optional bool
	// After tables are exported once the others are done (their rows
	// refer to ids the others assign).
	After bool
	mapFn func(m *Mapper, rec term.Tuple) ([]Row, string, error)
}

// Tables lists the persistent ejabberd tables the export maps, in export
// order (pubsub nodes before what refers to them).
var Tables = []Table{
	{Name: "passwd", Targets: []string{"users"}, mapFn: byHost(3, 1, Target.Passwd)},
	{Name: "last_activity", Targets: []string{"last"}, mapFn: byHost(4, 1, Target.LastActivity)},
	{Name: "roster", Targets: []string{"rosterusers", "rostergroups"}, mapFn: byHost(10, 2, Target.Roster)},
	{Name: "roster_version", Targets: []string{"roster_version"}, mapFn: (*Mapper).rosterVersion},
	{Name: "vcard", Targets: []string{"vcard"}, mapFn: (*Mapper).vcard},
	{Name: "vcard_search", Targets: []string{"vcard_search"}, mapFn: (*Mapper).vcardSearch},
	{Name: "offline_msg", Targets: []string{"spool"}, mapFn: (*Mapper).offline},
	{Name: "private_storage", Targets: []string{"private_storage"}, mapFn: (*Mapper).private},
	{Name: "privacy", Targets: []string{"privacy_default_list", "privacy_list", "privacy_list_data"}, mapFn: (*Mapper).privacy},
	{Name: "muc_room", Targets: []string{"muc_room", "muc_room_subscribers"}, mapFn: (*Mapper).mucRoom},
	{Name: "muc_registered", Targets: []string{"muc_registered"}, mapFn: (*Mapper).mucRegistered},
	{Name: "archive_msg", Targets: []string{"archive"}, mapFn: (*Mapper).archive},
	{Name: "archive_prefs", Targets: []string{"archive_prefs"}, mapFn: (*Mapper).archivePrefs},
	{Name: "push_session", Targets: []string{"push_session"}, mapFn: (*Mapper).pushSession},
	{Name: "sr_group", Targets: []string{"sr_group"}, mapFn: (*Mapper).srGroup},
	{Name: "sr_user", Targets: []string{"sr_user"}, mapFn: (*Mapper).srUser},
	{Name: "motd", Targets: []string{"motd"}, mapFn: (*Mapper).motd},
	{Name: "motd_users", Targets: []string{"motd"}, mapFn: (*Mapper).motdUsers},
	{Name: "oauth_token", Targets: []string{"oauth_token"}, mapFn: (*Mapper).oauthToken},
	{Name: "oauth_client", Targets: []string{"oauth_client"}, mapFn: (*Mapper).oauthClient},
	{Name: "mqtt_pub", Targets: []string{"mqtt_pub"}, mapFn: (*Mapper).mqttPub},
	{Name: "pubsub_node", Targets: []string{"pubsub_node", "pubsub_node_option"}, mapFn: (*Mapper).pubsubNode},
	{Name: "pubsub_state", Targets: []string{"pubsub_state"}, After: true, mapFn: (*Mapper).pubsubState},
	{Name: "pubsub_item", Targets: []string{"pubsub_item"}, After: true, mapFn: (*Mapper).pubsubItem},
	{Name: "caps_features", Targets: []string{"caps_features"}, Optional: true, mapFn: (*Mapper).capsFeatures},
}

// Volatile lists the tables that hold only running state (sessions,
// routes, online rooms, caches rebuilt at start): never exported, listed
// as skipped.
var Volatile = map[string]string{
	"session": "sessions", "session_counter": "session counters", "route": "routes",
	"route_multicast": "routes", "s2s": "s2s connections", "temporarily_blocked": "s2s blocks",
	"muc_online_room": "online rooms", "muc_online_users": "room occupants", "bosh": "BOSH sessions",
	"bytestream": "proxy65 streams", "reg_users_counter": "a counter", "mod_register_ip": "registration throttling",
	"sip_session": "SIP sessions", "mqtt_session": "MQTT sessions", "mqtt_sub": "MQTT subscriptions",
	"pubsub_last_item": "a cache", "ejabberd_commands": "command registry", "multicastc": "a cache",
	"schema": "Mnesia's schema", "captcha": "captchas", "local_config": "old configuration",
	"config": "old configuration", "pubsub_index": "pubsub id counters (rebuilt from the ids)",
	"pubsub_orphan": "pubsub orphans", "mod_http_upload_quota": "a cache", "http_bind": "BOSH sessions",
	"iq_response": "pending IQs", "acl": "old configuration", "access": "old configuration",
	"irc_custom": "the IRC transport (removed)", "user_caps": "a cache",
}

// Mapper turns records into rows for one export: the target schema, the
// virtual hosts exported and which virtual host each MUC or pubsub service
// belongs to.
type Mapper struct {
	Target Target
	// Hosts are the virtual hosts exported; empty means every host.
	Hosts map[string]bool
	// Known are the virtual hosts the source serves (for finding a
	// service's virtual host).
	Known map[string]bool
	// Services maps a service host (conference.example.org,
	// pubsub.example.org) to its virtual host.
	Services map[string]string
	// NextPrivacyID is the id the next privacy list gets.
	NextPrivacyID int64
	// PubsubNodes maps each pubsub node id to its virtual host; states and
	// items of nodes not in it are rejected (the schema's foreign keys
	// would refuse them). Filled by NotePubsubNode before the pubsub tables
	// are mapped.
	PubsubNodes map[int64]string
	// NextRoomID is the id the next MUC room gets (mongooseim).
	NextRoomID int64
	// MamUsers assigns MongooseIM's archive ids, shared by the tables.
	MamUsers *mamUsers
	// the archive being mapped and its message times (mongooseim ids)
	mamOwner string
	mamSeen  map[int64]int64
}

// Map maps one record of a table. skip is not empty when the record
// belongs to a host that is not exported (it says which host).
func (m *Mapper) Map(t Table, rec term.Term) (rows []Row, skip string, err error) {
	tu, ok := rec.(term.Tuple)
	if !ok || len(tu) == 0 {
		return nil, "", reject("not a record: %s", short(rec))
	}
	return t.mapFn(m, tu)
}

// wanted reports whether a virtual host is exported.
func (m *Mapper) wanted(host string) bool { return len(m.Hosts) == 0 || m.Hosts[host] }

// serviceHost finds the virtual host of a service (MUC, pubsub): the
// mapping given, else the exported virtual host it is a subdomain of, else
// the only virtual host there is.
func (m *Mapper) serviceHost(service string) (string, error) {
	if v, ok := m.Services[service]; ok {
		return v, nil
	}
	best := ""
	for h := range m.Known {
		if (service == h || strings.HasSuffix(service, "."+h)) && len(h) > len(best) {
			best = h
		}
	}
	if best != "" {
		return best, nil
	}
	if len(m.Known) == 1 {
		for h := range m.Known {
			return h, nil
		}
	}
	return "", reject("service %s belongs to no known virtual host: name it with --service %s=VHOST", service, service)
}

// hostOf checks the record's virtual host against the export.
func (m *Mapper) hostOf(host string) string {
	if m.wanted(host) {
		return ""
	}
	return host
}

// byHost wraps a Target mapper of records whose {User, Server} is field
// keyAt of a record of size fields: records of hosts not exported are
// skipped before mapping.
func byHost(size, keyAt int, fn func(Target, term.Tuple) ([]Row, error)) func(*Mapper, term.Tuple) ([]Row, string, error) {
	return func(m *Mapper, rec term.Tuple) ([]Row, string, error) {
		if len(rec) == size {
			if _, host, err := us(rec[keyAt]); err == nil && !m.wanted(host) {
				return nil, host, nil
			}
		}
		rows, err := fn(m.Target, rec)
		return rows, "", err
	}
}

// usRecord reads a record of n fields keyed by {User, Server}.
func (m *Mapper) usRecord(rec term.Tuple, n int) (user, host, skip string, err error) {
	if len(rec) != n+1 {
		return "", "", "", reject("%s record of %d fields, want %d", short(rec[0]), len(rec)-1, n)
	}
	user, host, err = us(rec[1])
	if err != nil {
		return "", "", "", err
	}
	return user, host, m.hostOf(host), nil
}

func (m *Mapper) rosterVersion(rec term.Tuple) ([]Row, string, error) {
	user, host, skip, err := m.usRecord(rec, 2)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	v, err := text(rec[2], "version")
	if err != nil {
		return nil, "", err
	}
	return []Row{m.Target.row("roster_version", user, host, v)}, "", nil
}

func (m *Mapper) vcard(rec term.Tuple) ([]Row, string, error) {
	user, host, skip, err := m.usRecord(rec, 2)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	x, err := xmlText(rec[2], "vcard")
	if err != nil {
		return nil, "", err
	}
	return []Row{m.Target.row("vcard", user, host, x)}, "", nil
}

func xmlText(t term.Term, what string) (string, error) {
	b, err := AppendXML(nil, t)
	if err != nil {
		return "", reject("%s: %v", what, err)
	}
	return string(b), nil
}

func (m *Mapper) vcardSearch(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 26 {
		return nil, "", reject("vcard_search record of %d fields, want 25", len(rec)-1)
	}
	user, host, err := us(rec[2]) // {User, LServer}: the user as typed
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(host) {
		return nil, host, nil
	}
	vals := make([]any, 0, 25)
	luser, err := text(rec[3], "luser")
	if err != nil {
		return nil, "", err
	}
	vals = append(vals, user, luser, host)
	for i := 4; i < 26; i++ {
		s, err := text(rec[i], "vcard_search field")
		if err != nil {
			return nil, "", err
		}
		vals = append(vals, s)
	}
	return []Row{m.Target.rowH("vcard_search", vals...)}, "", nil
}

func (m *Mapper) offline(rec term.Tuple) ([]Row, string, error) {
	user, host, skip, err := m.usRecord(rec, 6)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	usec, err := timestampUsec(rec[2])
	if err != nil {
		return nil, "", err
	}
	from, err := jidText(rec[4])
	if err != nil {
		return nil, "", reject("from: %v", err)
	}
	to, err := jidText(rec[5])
	if err != nil {
		return nil, "", reject("to: %v", err)
	}
	x, err := offlineXML(nil, rec[6], from, to, host, usec)
	if err != nil {
		return nil, "", err
	}
	return []Row{m.Target.row("spool", user, host, string(x), sqlTime(usec))}, "", nil
}

// sqlTime is a timestamp column value: UTC wall clock.
func sqlTime(usec int64) time.Time { return time.UnixMicro(usec).UTC() }

// OfflineTime is the message time of an offline_msg record, for ordering
// a user's spool (0 when unreadable).
func OfflineTime(rec term.Term) int64 {
	if tu, ok := rec.(term.Tuple); ok && (len(tu) == 7 || len(tu) == 8) {
		usec, _ := anyUsec(tu[2])
		return usec
	}
	return 0
}

func (m *Mapper) private(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 3 {
		return nil, "", reject("private_storage record of %d fields", len(rec)-1)
	}
	k, ok := rec[1].(term.Tuple)
	if !ok || len(k) != 3 {
		return nil, "", reject("key is not {User, Server, Namespace}: %s", short(rec[1]))
	}
	user, host, err := us(term.Tuple{k[0], k[1]})
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(host) {
		return nil, host, nil
	}
	ns, err := text(k[2], "namespace")
	if err != nil {
		return nil, "", err
	}
	x, err := xmlText(rec[2], "data")
	if err != nil {
		return nil, "", err
	}
	return []Row{m.Target.row("private_storage", user, host, ns, x)}, "", nil
}

var privacyType = map[term.Atom]string{"none": "n", "jid": "j", "group": "g", "subscription": "s"}

func (m *Mapper) privacy(rec term.Tuple) ([]Row, string, error) {
	user, host, skip, err := m.usRecord(rec, 3)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	var rows []Row
	if !term.IsAtom(rec[2], "none") {
		def, err := text(rec[2], "default list")
		if err != nil {
			return nil, "", err
		}
		rows = append(rows, m.Target.row("privacy_default_list", user, host, def))
	}
	lists, ok := term.Elems(rec[3])
	if !ok {
		return nil, "", reject("lists are not a list: %s", short(rec[3]))
	}
	id := m.NextPrivacyID
	if id <= 0 {
		id = 1
	}
	for _, l := range lists {
		nl, ok := l.(term.Tuple)
		if !ok || len(nl) != 2 {
			return nil, "", reject("privacy list is not {Name, Items}: %s", short(l))
		}
		name, err := text(nl[0], "list name")
		if err != nil {
			return nil, "", err
		}
		items, ok := term.Elems(nl[1])
		if !ok {
			return nil, "", reject("items of list %q are not a list", name)
		}
		rows = append(rows, m.Target.row("privacy_list", user, host, name, id))
		for _, it := range items {
			li, ok := term.IsRecord(it, "listitem", 10)
			if !ok {
				return nil, "", reject("privacy item is not a listitem: %s", short(it))
			}
			typ, _ := li[1].(term.Atom)
			t := privacyType[typ]
			if t == "" {
				return nil, "", reject("privacy item type %s", short(li[1]))
			}
			var value string
			switch typ {
			case "jid":
				value, err = ljidText(li[2])
			case "group":
				value, err = text(li[2], "group")
			case "subscription":
				a, _ := li[2].(term.Atom)
				if _, ok := subscriptionCode[a]; !ok {
					err = reject("privacy subscription %s", short(li[2]))
				}
				value = string(a)
			}
			if err != nil {
				return nil, "", err
			}
			var action string
			switch {
			case term.IsAtom(li[3], "allow"):
				action = "a"
			case term.IsAtom(li[3], "deny"):
				action = "d"
			default:
				return nil, "", reject("privacy action %s", short(li[3]))
			}
			order, ok := term.Int(li[4])
			if !ok || order < 0 {
				return nil, "", reject("privacy order %s", short(li[4]))
			}
			vals := []any{id, t, value, action, order}
			for i := 5; i < 10; i++ {
				bv, ok := term.Bool(li[i])
				if !ok {
					return nil, "", reject("privacy match flag %s", short(li[i]))
				}
				vals = append(vals, bv)
			}
			rows = append(rows, Row{Table: "privacy_list_data", Values: vals})
		}
		id++
	}
	m.NextPrivacyID = id
	return rows, "", nil
}

// roomKey reads a muc_room record's {Name, Service} and the virtual host
// the service belongs to; skip names that host when it is not exported.
func (m *Mapper) roomKey(rec term.Tuple) (name, service, vhost, skip string, err error) {
	if len(rec) != 3 {
		return "", "", "", "", reject("muc_room record of %d fields", len(rec)-1)
	}
	if name, service, err = pair(rec[1], "room"); err != nil {
		return "", "", "", "", err
	}
	if vhost, err = m.serviceHost(service); err != nil {
		return "", "", "", "", err
	}
	return name, service, vhost, m.hostOf(vhost), nil
}

func (m *Mapper) mucRoom(rec term.Tuple) ([]Row, string, error) {
	name, service, vhost, skip, err := m.roomKey(rec)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	opts, ok := term.Elems(rec[2])
	if !ok {
		return nil, "", reject("room options are not a list: %s", short(rec[2]))
	}
	// As mod_muc_sql stores a room: subscribers in their own table, the
	// hibernation time in created_at.
	var subs term.Term = term.List{}
	rest := make(term.List, 0, len(opts))
	created := time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)
	seenSubs := false
	for _, o := range opts {
		kv, ok := o.(term.Tuple)
		if ok && len(kv) == 2 && term.IsAtom(kv[0], "subscribers") && !seenSubs {
			subs, seenSubs = kv[1], true
			continue
		}
		if ok && len(kv) == 2 && term.IsAtom(kv[0], "hibernation_time") {
			if us, ok := term.Int(kv[1]); ok {
				created = time.UnixMicro(us).UTC().Truncate(time.Second)
			}
		}
		rest = append(rest, o)
	}
	if !seenSubs {
		rest = term.List(opts)
	}
	rows := []Row{m.Target.rowH("muc_room", name, service, vhost, string(AppendErlangText(nil, rest)), created)}
	sl, ok := term.Elems(subs)
	if !ok {
		return nil, "", reject("room subscribers are not a list: %s", short(subs))
	}
	for _, s := range sl {
		st, ok := s.(term.Tuple)
		if !ok || len(st) != 3 {
			return nil, "", reject("room subscriber is not {JID, Nick, Nodes}: %s", short(s))
		}
		jid, err := jidText(st[0])
		if err != nil {
			return nil, "", err
		}
		nick, err := text(st[1], "subscriber nick")
		if err != nil {
			return nil, "", err
		}
		rows = append(rows, Row{Table: "muc_room_subscribers",
			Values: []any{name, service, jid, nick, string(AppendErlangText(nil, st[2]))}})
	}
	return rows, "", nil
}

// pair reads a {A, B} key of two strings.
func pair(t term.Term, what string) (string, string, error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 2 {
		return "", "", reject("%s key is not a pair: %s", what, short(t))
	}
	a, err1 := text(tu[0], what)
	b, err2 := text(tu[1], what+" host")
	return a, b, firstErr(err1, err2)
}

func (m *Mapper) mucRegistered(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 3 {
		return nil, "", reject("muc_registered record of %d fields", len(rec)-1)
	}
	k, ok := rec[1].(term.Tuple)
	if !ok || len(k) != 2 {
		return nil, "", reject("key is not {{User, Server}, Service}: %s", short(rec[1]))
	}
	u, s, err := us(k[0])
	if err != nil {
		return nil, "", err
	}
	service, err := text(k[1], "service")
	if err != nil {
		return nil, "", err
	}
	vhost, err := m.serviceHost(service)
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(vhost) {
		return nil, vhost, nil
	}
	nick, err := text(rec[2], "nick")
	if err != nil {
		return nil, "", err
	}
	jid := s
	if u != "" {
		jid = u + "@" + s
	}
	return []Row{m.Target.rowH("muc_registered", jid, service, vhost, nick)}, "", nil
}

func (m *Mapper) archive(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 9 && len(rec) != 10 {
		return nil, "", reject("archive_msg record of %d fields", len(rec)-1)
	}
	owner, server, err := us(rec[1])
	if err != nil {
		return nil, "", err
	}
	kind, _ := rec[8].(term.Atom)
	vhost, username := server, owner
	switch kind {
	case "chat":
	case "groupchat":
		if vhost, err = m.serviceHost(server); err != nil {
			return nil, "", err
		}
		username = owner + "@" + server
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
	peer, err := ljidText(rec[4])
	if err != nil {
		return nil, "", reject("peer: %v", err)
	}
	barePeer := peer
	if i := strings.IndexByte(peer, '/'); i >= 0 {
		barePeer = peer[:i]
	}
	pkt, err := parseXel(rec[6], 0)
	if err != nil {
		return nil, "", reject("packet: %v", err)
	}
	xml := appendXel(nil, pkt)
	txt := ""
	for _, k := range pkt.kids {
		if c, ok := k.(*xel); ok && c.name == "body" {
			txt = c.cdata()
			break
		}
	}
	nick, err := text(rec[7], "nick")
	if err != nil {
		return nil, "", err
	}
	return []Row{m.Target.row("archive", username, vhost, usec, peer, barePeer, string(xml), txt, string(kind), nick)}, "", nil
}

func (m *Mapper) archivePrefs(rec term.Tuple) ([]Row, string, error) {
	user, host, skip, err := m.usRecord(rec, 4)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	def, ok := rec[2].(term.Atom)
	if !ok {
		return nil, "", reject("archive default %s", short(rec[2]))
	}
	return []Row{m.Target.row("archive_prefs", user, host, string(def),
		string(AppendErlangText(nil, rec[3])), string(AppendErlangText(nil, rec[4])))}, "", nil
}

func (m *Mapper) pushSession(rec term.Tuple) ([]Row, string, error) {
	user, host, skip, err := m.usRecord(rec, 5)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	usec, err := timestampUsec(rec[2])
	if err != nil {
		return nil, "", err
	}
	service, err := ljidText(rec[3])
	if err != nil {
		return nil, "", err
	}
	node, err := text(rec[4], "node")
	if err != nil {
		return nil, "", err
	}
	xml := ""
	switch {
	case term.IsAtom(rec[5], "undefined"):
	case isRecordNamed(rec[5], "xdata"):
		// ejabberd 23.x keeps the form as the xmpp library's record.
		b, err := xdataXML(nil, rec[5])
		if err != nil {
			return nil, "", reject("publish options: %v", err)
		}
		xml = string(b)
	default:
		if xml, err = xmlText(rec[5], "publish options"); err != nil {
			return nil, "", err
		}
	}
	return []Row{m.Target.row("push_session", user, host, usec, service, node, xml)}, "", nil
}

func isRecordNamed(t term.Term, name string) bool {
	tu, ok := t.(term.Tuple)
	return ok && len(tu) > 0 && term.IsAtom(tu[0], term.Atom(name))
}

func (m *Mapper) srGroup(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 3 {
		return nil, "", reject("sr_group record of %d fields", len(rec)-1)
	}
	group, host, err := pair(rec[1], "group")
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(host) {
		return nil, host, nil
	}
	return []Row{m.Target.rowH("sr_group", group, host, string(AppendErlangText(nil, rec[2])))}, "", nil
}

func (m *Mapper) srUser(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 3 {
		return nil, "", reject("sr_user record of %d fields", len(rec)-1)
	}
	u, s, err := us(rec[1])
	if err != nil {
		return nil, "", err
	}
	group, host, err := pair(rec[2], "group")
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(host) {
		return nil, host, nil
	}
	jid := strings.ToLower(s)
	if u != "" {
		jid = strings.ToLower(u) + "@" + jid
	}
	return []Row{m.Target.rowH("sr_user", jid, host, group)}, "", nil
}

func (m *Mapper) motd(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 3 {
		return nil, "", reject("motd record of %d fields", len(rec)-1)
	}
	host, err := text(rec[1], "server")
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(host) {
		return nil, host, nil
	}
	x, err := xmlText(rec[2], "message")
	if err != nil {
		return nil, "", err
	}
	return []Row{m.Target.row("motd", "", host, x)}, "", nil
}

func (m *Mapper) motdUsers(rec term.Tuple) ([]Row, string, error) {
	user, host, skip, err := m.usRecord(rec, 2)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	if user == "" {
		return nil, "", reject("motd_users record without a user")
	}
	return []Row{m.Target.row("motd", user, host, "")}, "", nil
}

func (m *Mapper) oauthToken(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 5 {
		return nil, "", reject("oauth_token record of %d fields", len(rec)-1)
	}
	token, err := text(rec[1], "token")
	if err != nil {
		return nil, "", err
	}
	u, s, err := us(rec[2])
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(s) {
		return nil, s, nil
	}
	scopes, ok := term.Elems(rec[3])
	if !ok {
		return nil, "", reject("scope is not a list: %s", short(rec[3]))
	}
	parts := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		p, err := text(sc, "scope")
		if err != nil {
			return nil, "", err
		}
		parts = append(parts, p)
	}
	expire, ok := term.Int(rec[4])
	if !ok {
		return nil, "", reject("expire %s", short(rec[4]))
	}
	jid := s
	if u != "" {
		jid = u + "@" + s
	}
	return []Row{{Table: "oauth_token", Values: []any{token, jid, strings.Join(parts, " "), expire}}}, "", nil
}

func (m *Mapper) oauthClient(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 5 {
		return nil, "", reject("oauth_client record of %d fields", len(rec)-1)
	}
	id, err1 := text(rec[1], "client id")
	name, err2 := text(rec[2], "client name")
	if err := firstErr(err1, err2); err != nil {
		return nil, "", err
	}
	grant, ok := rec[3].(term.Atom)
	if !ok {
		return nil, "", reject("grant type %s", short(rec[3]))
	}
	return []Row{{Table: "oauth_client", Values: []any{id, name, string(grant), string(AppendErlangText(nil, rec[4]))}}}, "", nil
}

func (m *Mapper) mqttPub(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 12 {
		return nil, "", reject("mqtt_pub record of %d fields", len(rec)-1)
	}
	topic, host, err := pair(rec[1], "topic")
	if err != nil {
		return nil, "", err
	}
	if !m.wanted(host) {
		return nil, host, nil
	}
	user, err1 := text(rec[2], "user")
	res, err2 := text(rec[3], "resource")
	if err := firstErr(err1, err2); err != nil {
		return nil, "", err
	}
	qos, ok := term.Int(rec[4])
	if !ok || qos < 0 || qos > 2 {
		return nil, "", reject("qos %s", short(rec[4]))
	}
	payload, err := iolist(nil, rec[5])
	if err != nil {
		return nil, "", reject("payload: %v", err)
	}
	expiry, ok := term.Int(rec[6])
	if !ok {
		return nil, "", reject("expiry %s", short(rec[6]))
	}
	var pfi int16
	switch {
	case term.IsAtom(rec[7], "binary"):
	case term.IsAtom(rec[7], "utf8"):
		pfi = 1
	default:
		return nil, "", reject("payload format %s", short(rec[7]))
	}
	respTopic, err1 := text(rec[8], "response topic")
	corr, err2 := iolist(nil, rec[9])
	ctype, err3 := text(rec[10], "content type")
	if err := firstErr(err1, err2, err3); err != nil {
		return nil, "", reject("%v", err)
	}
	props := []byte{}
	if l, ok := term.Elems(rec[11]); !ok || len(l) > 0 {
		if props, err = term.Encode(rec[11]); err != nil {
			return nil, "", reject("user properties: %v", err)
		}
	}
	return []Row{m.Target.row("mqtt_pub", user, host, res, topic, int16(qos), payload, pfi, ctype, respTopic, corr, props, expiry)}, "", nil
}

func (m *Mapper) capsFeatures(rec term.Tuple) ([]Row, string, error) {
	if len(rec) != 3 {
		return nil, "", reject("caps_features record of %d fields", len(rec)-1)
	}
	node, sub, err := pair(rec[1], "node")
	if err != nil {
		return nil, "", err
	}
	if n, ok := term.Int(rec[2]); ok {
		return []Row{{Table: "caps_features", Values: []any{node, sub, strconv.FormatInt(n, 10)}}}, "", nil
	}
	feats, ok := term.Elems(rec[2])
	if !ok {
		return nil, "", reject("features %s", short(rec[2]))
	}
	rows := make([]Row, 0, len(feats))
	for _, f := range feats {
		s, err := text(f, "feature")
		if err != nil {
			return nil, "", err
		}
		rows = append(rows, Row{Table: "caps_features", Values: []any{node, sub, s}})
	}
	return rows, "", nil
}

// SortRows orders a user's spool rows by message time (the order ejabberd
// delivers them in): rows are sorted by user, then time, keeping the
// stream's order for equal times.
func SortSpool(recs []term.Term) {
	sort.SliceStable(recs, func(i, j int) bool {
		ki, kj := spoolKey(recs[i]), spoolKey(recs[j])
		if ki != kj {
			return ki < kj
		}
		return OfflineTime(recs[i]) < OfflineTime(recs[j])
	})
}

func spoolKey(rec term.Term) string {
	if tu, ok := rec.(term.Tuple); ok && (len(tu) == 7 || len(tu) == 8) {
		if u, s, err := us(tu[1]); err == nil {
			return s + "\x00" + u
		}
	}
	return ""
}
