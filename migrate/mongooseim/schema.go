// Package mongooseim maps Mnesia records to MongooseIM 6.x's PostgreSQL
// schema (priv/pg.sql): most tables are ejabberd's with the server first
// in the key; the rest differ in kind — SCRAM in pass_details, offline
// messages with µs timestamps, MAM in mam_message / mam_muc_message keyed
// by mam_server_user ids, rooms as JSON with affiliations in their own
// table, pubsub with JSON owners and options.
package mongooseim

import (
	"context"
	"sync"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// Schema is MongooseIM's PostgreSQL schema.
type Schema struct{}

// Name implements schema.Schema.
func (Schema) Name() string { return "mongooseim" }

// SingleHost implements schema.Schema: every table is keyed by server.
func (Schema) SingleHost() bool { return false }

type table struct {
	schema.Table
	mapFn func(*mapper, term.Tuple) ([]schema.Op, error)
	delFn func(*mapper, term.Term) ([]schema.Op, error)
}

// tables lists the tables the schema maps, in export order. After-tables
// run once the others are done (they reuse the ids the others assigned).
var tables = []table{
	{schema.Table{Name: "passwd", Targets: []string{"users"}}, (*mapper).passwd, delUS("users", "username", "server")},
	{schema.Table{Name: "last_activity", Targets: []string{"last"}}, (*mapper).lastActivity, delUS("last", "username", "server")},
	{schema.Table{Name: "roster", Targets: []string{"rosterusers", "rostergroups"}}, (*mapper).roster, (*mapper).delRoster},
	{schema.Table{Name: "roster_version", Targets: []string{"roster_version"}}, (*mapper).rosterVersion, delUS("roster_version", "username", "server")},
	{schema.Table{Name: "vcard", Targets: []string{"vcard"}}, (*mapper).vcard, delUS("vcard", "username", "server")},
	{schema.Table{Name: "vcard_search", Targets: []string{"vcard_search"}}, (*mapper).vcardSearch, delUS("vcard_search", "lusername", "server")},
	{schema.Table{Name: "offline_msg", Targets: []string{"offline_message"}, GroupByKey: true, Less: records.OfflineLess}, (*mapper).offline, delUS("offline_message", "username", "server")},
	{schema.Table{Name: "private_storage", Targets: []string{"private_storage"}}, (*mapper).private, (*mapper).delPrivate},
	{schema.Table{Name: "privacy", Targets: []string{"privacy_default_list", "privacy_list", "privacy_list_data"}}, (*mapper).privacy, (*mapper).delPrivacy},
	{schema.Table{Name: "muc_room", Targets: []string{"muc_rooms", "muc_room_aff"}}, (*mapper).room, (*mapper).delRoom},
	{schema.Table{Name: "muc_registered", Targets: []string{"muc_registered"}}, (*mapper).mucRegistered, (*mapper).delMucRegistered},
	{schema.Table{Name: "archive_msg", Targets: []string{"mam_server_user", "mam_message", "mam_muc_message"}}, (*mapper).archive, (*mapper).delArchive},
	{schema.Table{Name: "archive_prefs", Targets: []string{"mam_server_user", "mam_config"}, After: true}, (*mapper).prefs, (*mapper).delPrefs},
	{schema.Table{Name: "mam_prefs", Targets: []string{"mam_server_user", "mam_config"}, After: true}, (*mapper).prefs, (*mapper).delPrefs},
	{schema.Table{Name: "pubsub_node", Targets: []string{"pubsub_nodes", "pubsub_node_collections"}}, (*mapper).pubsubNode, (*mapper).delPubsubNode},
	{schema.Table{Name: "pubsub_state", Targets: []string{"pubsub_affiliations", "pubsub_subscriptions"}, After: true, Needs: []string{"pubsub_node"}}, (*mapper).pubsubState, (*mapper).delPubsubState},
	{schema.Table{Name: "pubsub_item", Targets: []string{"pubsub_items"}, After: true, Needs: []string{"pubsub_node"}}, (*mapper).pubsubItem, (*mapper).delPubsubItem},
}

// unsupported maps the ejabberd tables MongooseIM keeps nowhere in SQL
// (its modules for them have no RDBMS backend, or none at all): their
// records are rejected with the reason.
var unsupported = []struct{ table, why string }{
	{"sr_group", "MongooseIM's shared roster is LDAP only"}, {"sr_user", "MongooseIM's shared roster is LDAP only"},
	{"motd", "MongooseIM has no message of the day module"}, {"motd_users", "MongooseIM has no message of the day module"},
	{"oauth_token", "MongooseIM has no OAuth module"}, {"oauth_client", "MongooseIM has no OAuth module"},
	{"mqtt_pub", "MongooseIM has no MQTT module"},
	{"push_session", "MongooseIM's push subscriptions (event_pusher_push_subscription) take a different form and are re-registered by clients"},
}

// allTables are the mapped tables and the unsupported ones.
var allTables = func() []table {
	out := append([]table(nil), tables...)
	for _, u := range unsupported {
		err := schema.Rejectf("no table for it in the mongooseim schema: %s", u.why)
		out = append(out, table{schema.Table{Name: u.table},
			func(*mapper, term.Tuple) ([]schema.Op, error) { return nil, err },
			func(*mapper, term.Term) ([]schema.Op, error) { return nil, err }})
	}
	return out
}()

// Tables implements schema.Schema.
func (Schema) Tables() []schema.Table {
	out := make([]schema.Table, len(allTables))
	for i, t := range allTables {
		out[i] = t.Table
	}
	return out
}

// columns lists each table's columns in the order row values come (serial
// ids the export does not assign left out).
var columns = map[string][]string{
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

// Columns implements schema.Schema.
func (Schema) Columns(table string) []string { return columns[table] }

// XMLColumns implements schema.Schema.
func (Schema) XMLColumns() []string {
	return []string{"vcard.vcard", "private_storage.data", "offline_message.packet", "pubsub_items.payload"}
}

// Serials implements schema.Schema.
func (Schema) Serials() []schema.Serial {
	return []schema.Serial{{Table: "privacy_list", Column: "id"}, {Table: "muc_rooms", Column: "id"},
		{Table: "mam_server_user", Column: "id"}, {Table: "offline_message", Column: "id"}, {Table: "pubsub_nodes", Column: "nidx"}}
}

// Restart implements schema.Schema. Archive preferences delete only
// mam_config: the archive ids they added stay and are reused.
func (Schema) Restart(name string) []schema.Op {
	if name == "archive_prefs" || name == "mam_prefs" {
		return []schema.Op{schema.Del("mam_config")}
	}
	for _, t := range tables {
		if t.Name == name {
			return schema.DeleteTargets(t.Table)
		}
	}
	return nil
}

// verify says how the tables whose rows hold assigned ids are compared:
// the ids replaced by what they stand for (the order of the rows' Canon),
// read through joins.
var verify = map[string]schema.VerifySpec{
	"privacy_list":      {Columns: []string{"server", "username", "name"}, KeyCols: 3},
	"privacy_list_data": {Columns: []string{"l.server", "l.username", "l.name", "d.t", "d.value", "d.action", "d.ord", "d.match_all", "d.match_iq", "d.match_message", "d.match_presence_in", "d.match_presence_out"}, From: "privacy_list_data d JOIN privacy_list l ON l.id = d.id", KeyCols: 3},
	"muc_rooms":         {Columns: []string{"muc_host", "room_name", "options"}, KeyCols: 2},
	"muc_room_aff":      {Columns: []string{"r.muc_host", "r.room_name", "a.luser", "a.lserver", "a.resource", "a.aff"}, From: "muc_room_aff a JOIN muc_rooms r ON r.id = a.room_id", KeyCols: 2},
	"mam_server_user":   {Columns: []string{"server", "user_name"}, KeyCols: 2, Shared: true},
	"mam_message":       {Columns: []string{"u.server", "u.user_name", "m.id", "m.from_jid", "m.remote_bare_jid", "m.remote_resource", "m.direction", "m.message", "m.search_body", "m.origin_id", "m.is_groupchat"}, From: "mam_message m JOIN mam_server_user u ON u.id = m.user_id", KeyCols: 3},
	"mam_muc_message":   {Columns: []string{"r.server", "r.user_name", "m.id", "s.server", "s.user_name", "m.nick_name", "m.message", "m.search_body", "m.origin_id"}, From: "mam_muc_message m JOIN mam_server_user r ON r.id = m.room_id JOIN mam_server_user s ON s.id = m.sender_id", KeyCols: 3},
	"mam_config":        {Columns: []string{"u.server", "u.user_name", "c.remote_jid", "c.behaviour"}, From: "mam_config c JOIN mam_server_user u ON u.id = c.user_id", KeyCols: 3},
}

// Verify implements schema.Schema.
func (s Schema) Verify(table string) schema.VerifySpec {
	if v, ok := verify[table]; ok {
		return v
	}
	return schema.VerifySpec{Columns: s.Columns(table), KeyCols: 2}
}

// NewMapping implements schema.Schema.
func (Schema) NewMapping(scope *schema.Scope) schema.Mapping {
	return &mapping{scope: scope, nodes: records.PubsubNodes{}, mam: newMamUsers(nil)}
}

// mapping is the state the tables of one export share.
type mapping struct {
	scope *schema.Scope
	nodes records.PubsubNodes
	mam   *mamUsers
	// the ids of privacy lists and rooms
	privacyIDs, roomIDs schema.IDs
}

// Load implements schema.Mapping: privacy lists and rooms continue after
// the ids in the database; archive owners keep theirs unless the archive
// starts over (its first chunk deletes them).
func (m *mapping) Load(ctx context.Context, q schema.Querier, restarting func(string) bool) error {
	if err := m.privacyIDs.Load(ctx, q, "privacy_list", "id"); err != nil {
		return err
	}
	if err := m.roomIDs.Load(ctx, q, "muc_rooms", "id"); err != nil {
		return err
	}
	if restarting("archive_msg") {
		return nil
	}
	known := map[string]int32{}
	err := q.Query(ctx, `SELECT id, server, user_name FROM mam_server_user`, func(v []any) error {
		id, _ := term.Int(v[0])
		server, _ := v[1].(string)
		user, _ := v[2].(string)
		known[server+"\x00"+user] = int32(id)
		return nil
	})
	m.mam = newMamUsers(known)
	return err
}

// Note implements schema.Mapping.
func (m *mapping) Note(table string, rec term.Tuple) {
	if table == "pubsub_node" {
		m.nodes.Note(rec, m.scope)
	}
}

// Mapper implements schema.Mapping.
func (m *mapping) Mapper(name string) schema.Mapper {
	for _, t := range allTables {
		if t.Name == name {
			return schema.Funcs[*mapper]{State: &mapper{mapping: m}, MapFn: t.mapFn, DelFn: t.delFn}
		}
	}
	return nil // not a table of the schema
}

// mapper is the state of one table's mapping functions.
type mapper struct {
	*mapping
	// the archive being mapped and its message times (for ids)
	mamOwner string
	mamSeen  map[int64]int64
}

// mamUsers assigns mam_server_user ids, shared by the tables of one
// export.
type mamUsers struct {
	mu   sync.Mutex
	ids  map[string]int32 // server \x00 user -> id
	next int32
}

func newMamUsers(known map[string]int32) *mamUsers {
	r := &mamUsers{ids: map[string]int32{}, next: 1}
	for k, id := range known {
		r.ids[k] = id
		if id >= r.next {
			r.next = id + 1
		}
	}
	return r
}

// id returns the archive id of server/user, and a mam_server_user row
// when it is new.
func (r *mamUsers) id(server, user string) (int32, *schema.Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := server + "\x00" + user
	if id, ok := r.ids[k]; ok {
		return id, nil
	}
	id := r.next
	r.next++
	r.ids[k] = id
	op := schema.Row("mam_server_user", id, server, user)
	op.Canon = []any{server, user}
	return id, &op
}
