// Package ejabberd maps Mnesia records to ejabberd 23.01's SQL schemas,
// row for row as ejabberd's own SQL backends write them: pg.sql (one
// virtual host per database) and pg.new.sql (a server_host column in every
// per-host table).
package ejabberd

import (
	"context"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/records"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// Schema is one of ejabberd's two PostgreSQL schemas.
type Schema struct{ multihost bool }

var (
	// Single is pg.sql: one virtual host per database.
	Single = Schema{}
	// Multihost is pg.new.sql: server_host in every per-host table.
	Multihost = Schema{multihost: true}
)

// Name implements schema.Schema.
func (s Schema) Name() string {
	if s.multihost {
		return "ejabberd-multihost"
	}
	return "ejabberd"
}

// SingleHost reports whether the schema holds one virtual host.
func (s Schema) SingleHost() bool { return !s.multihost }

// tables lists the persistent ejabberd tables the schemas map, in export
// order (pubsub nodes before what refers to them).
var tables = []struct {
	schema.Table
	mapFn func(*mapper, term.Tuple) ([]schema.Op, error)
	delFn func(*mapper, term.Term) ([]schema.Op, error)
}{
	{schema.Table{Name: "passwd", Targets: []string{"users"}}, (*mapper).passwd, delUS("users")},
	{schema.Table{Name: "last_activity", Targets: []string{"last"}}, (*mapper).lastActivity, delUS("last")},
	{schema.Table{Name: "roster", Targets: []string{"rosterusers", "rostergroups"}}, (*mapper).roster, (*mapper).delRoster},
	{schema.Table{Name: "roster_version", Targets: []string{"roster_version"}}, (*mapper).rosterVersion, delUS("roster_version")},
	{schema.Table{Name: "vcard", Targets: []string{"vcard"}}, (*mapper).vcard, delUS("vcard")},
	{schema.Table{Name: "vcard_search", Targets: []string{"vcard_search"}}, (*mapper).vcardSearch, (*mapper).delVCardSearch},
	{schema.Table{Name: "offline_msg", Targets: []string{"spool"}, GroupByKey: true, Less: records.OfflineLess}, (*mapper).offline, delUS("spool")},
	{schema.Table{Name: "private_storage", Targets: []string{"private_storage"}}, (*mapper).private, (*mapper).delPrivate},
	{schema.Table{Name: "privacy", Targets: []string{"privacy_default_list", "privacy_list", "privacy_list_data"}}, (*mapper).privacy, (*mapper).delPrivacy},
	{schema.Table{Name: "muc_room", Targets: []string{"muc_room", "muc_room_subscribers"}}, (*mapper).mucRoom, (*mapper).delRoom},
	{schema.Table{Name: "muc_registered", Targets: []string{"muc_registered"}}, (*mapper).mucRegistered, (*mapper).delMucRegistered},
	{schema.Table{Name: "archive_msg", Targets: []string{"archive"}}, (*mapper).archive, (*mapper).delArchive},
	{schema.Table{Name: "archive_prefs", Targets: []string{"archive_prefs"}}, (*mapper).archivePrefs, delUS("archive_prefs")},
	{schema.Table{Name: "push_session", Targets: []string{"push_session"}}, (*mapper).pushSession, delUS("push_session")},
	{schema.Table{Name: "sr_group", Targets: []string{"sr_group"}}, (*mapper).srGroup, (*mapper).delSrGroup},
	{schema.Table{Name: "sr_user", Targets: []string{"sr_user"}}, (*mapper).srUser, (*mapper).delSrUser},
	{schema.Table{Name: "motd", Targets: []string{"motd"}}, (*mapper).motd, (*mapper).delMotd},
	{schema.Table{Name: "motd_users", Targets: []string{"motd"}}, (*mapper).motdUsers, (*mapper).delMotdUser},
	{schema.Table{Name: "oauth_token", Targets: []string{"oauth_token"}}, (*mapper).oauthToken, delBy("oauth_token", "token")},
	{schema.Table{Name: "oauth_client", Targets: []string{"oauth_client"}}, (*mapper).oauthClient, delBy("oauth_client", "client_id")},
	{schema.Table{Name: "mqtt_pub", Targets: []string{"mqtt_pub"}}, (*mapper).mqttPub, (*mapper).delMQTT},
	{schema.Table{Name: "pubsub_node", Targets: []string{"pubsub_node", "pubsub_node_option"},
		InPlace: map[string][]string{"pubsub_node": {"host", "node"}}}, (*mapper).pubsubNode, (*mapper).delPubsubNode},
	{schema.Table{Name: "pubsub_state", Targets: []string{"pubsub_state"}, After: true, Needs: []string{"pubsub_node"}}, (*mapper).pubsubState, (*mapper).delPubsubState},
	{schema.Table{Name: "pubsub_item", Targets: []string{"pubsub_item"}, After: true, Needs: []string{"pubsub_node"}}, (*mapper).pubsubItem, (*mapper).delPubsubItem},
	{schema.Table{Name: "caps_features", Targets: []string{"caps_features"}, Optional: true}, (*mapper).capsFeatures, (*mapper).delCaps},
}

// byName finds a table's functions.
var byName = func() map[string]tableFuncs {
	m := map[string]tableFuncs{}
	for _, t := range tables {
		m[t.Name] = tableFuncs{t.mapFn, t.delFn}
	}
	return m
}()

type tableFuncs struct {
	mapFn func(*mapper, term.Tuple) ([]schema.Op, error)
	delFn func(*mapper, term.Term) ([]schema.Op, error)
}

// Tables implements schema.Schema.
func (s Schema) Tables() []schema.Table {
	out := make([]schema.Table, len(tables))
	for i, t := range tables {
		out[i] = t.Table
	}
	return out
}

// columns lists each SQL table's columns, in the order row values come,
// as pg.new.sql (multihost) has them; pg.sql lacks server_host. Columns
// with defaults the export leaves alone (created_at unless named, serial
// ids unless named) are not listed.
var columns = map[string][]string{
	"users":                {"username", "server_host", "password", "serverkey", "salt", "iterationcount"},
	"last":                 {"username", "server_host", "seconds", "state"},
	"rosterusers":          {"username", "server_host", "jid", "nick", "subscription", "ask", "askmessage", "server", "subscribe", "type"},
	"rostergroups":         {"username", "server_host", "jid", "grp"},
	"roster_version":       {"username", "server_host", "version"},
	"vcard":                {"username", "server_host", "vcard"},
	"vcard_search":         {"username", "lusername", "server_host", "fn", "lfn", "family", "lfamily", "given", "lgiven", "middle", "lmiddle", "nickname", "lnickname", "bday", "lbday", "ctry", "lctry", "locality", "llocality", "email", "lemail", "orgname", "lorgname", "orgunit", "lorgunit"},
	"spool":                {"username", "server_host", "xml", "created_at"},
	"private_storage":      {"username", "server_host", "namespace", "data"},
	"privacy_default_list": {"username", "server_host", "name"},
	"privacy_list":         {"username", "server_host", "name", "id"},
	"privacy_list_data":    {"id", "t", "value", "action", "ord", "match_all", "match_iq", "match_message", "match_presence_in", "match_presence_out"},
	"muc_room":             {"name", "host", "server_host", "opts", "created_at"},
	"muc_room_subscribers": {"room", "host", "jid", "nick", "nodes"},
	"muc_registered":       {"jid", "host", "server_host", "nick"},
	"archive":              {"username", "server_host", "timestamp", "peer", "bare_peer", "xml", "txt", "kind", "nick"},
	"archive_prefs":        {"username", "server_host", "def", "always", "never"},
	"push_session":         {"username", "server_host", "timestamp", "service", "node", "xml"},
	"sr_group":             {"name", "server_host", "opts"},
	"sr_user":              {"jid", "server_host", "grp"},
	"motd":                 {"username", "server_host", "xml"},
	"caps_features":        {"node", "subnode", "feature"},
	"oauth_token":          {"token", "jid", "scope", "expire"},
	"oauth_client":         {"client_id", "client_name", "grant_type", "options"},
	"mqtt_pub":             {"username", "server_host", "resource", "topic", "qos", "payload", "payload_format", "content_type", "response_topic", "correlation_data", "user_properties", "expiry"},
	"pubsub_node":          {"host", "node", "parent", "plugin", "nodeid"},
	"pubsub_node_option":   {"nodeid", "name", "val"},
	"pubsub_state":         {"nodeid", "jid", "affiliation", "subscriptions"},
	"pubsub_item":          {"nodeid", "itemid", "publisher", "creation", "modification", "payload"},
}

// hostIndex is the position of server_host in a table's columns (-1: none).
func hostIndex(table string) int {
	for i, c := range columns[table] {
		if c == "server_host" {
			return i
		}
	}
	return -1
}

// Columns implements schema.Schema.
func (s Schema) Columns(table string) []string {
	cols, ok := columns[table]
	if !ok {
		return nil
	}
	if i := hostIndex(table); i >= 0 && !s.multihost {
		return append(cols[:i:i], cols[i+1:]...)
	}
	return cols
}

// XMLColumns implements schema.Schema: the columns ejabberd parses as XML
// when it reads them.
func (s Schema) XMLColumns() []string {
	return []string{"vcard.vcard", "private_storage.data", "spool.xml", "archive.xml", "pubsub_item.payload", "motd.xml"}
}

// Serials implements schema.Schema: advanced after the load so that
// ejabberd's own inserts do not collide with exported ids.
func (s Schema) Serials() []schema.Serial {
	return []schema.Serial{{Table: "privacy_list", Column: "id"}, {Table: "pubsub_node", Column: "nodeid"},
		{Table: "pubsub_state", Column: "stateid"}, {Table: "spool", Column: "seq"}, {Table: "archive", Column: "id"}}
}

// Restart implements schema.Schema: a table's rows go, the tables it fills
// in reverse order; motd is shared by two Mnesia tables, each deleting
// only its own rows.
func (s Schema) Restart(table string) []schema.Op {
	switch table {
	case "motd":
		return []schema.Op{schema.Del("motd", schema.Eq("username", ""))}
	case "motd_users":
		return []schema.Op{schema.Del("motd", schema.Ne("username", ""))}
	}
	for _, t := range tables {
		if t.Name == table {
			return schema.DeleteTargets(t.Table)
		}
	}
	return nil
}

// Verify implements schema.Schema: serial ids are left out; a privacy
// item names its list by owner and name (the rows' Canon).
func (s Schema) Verify(table string) schema.VerifySpec {
	var cols []string
	for _, c := range s.Columns(table) {
		if (table == "privacy_list" || table == "privacy_list_data") && c == "id" {
			continue
		}
		cols = append(cols, c)
	}
	keyCols := 1
	if s.multihost && hostIndex(table) == 1 {
		keyCols = 2
	}
	switch table {
	case "rosterusers", "rostergroups", "private_storage", "privacy_list":
		keyCols++
	case "muc_room", "muc_room_subscribers", "pubsub_node", "pubsub_item", "pubsub_state":
		keyCols = 2
	}
	spec := schema.VerifySpec{Columns: cols, KeyCols: keyCols, Timestamps: []string{"created_at"}}
	if table == "privacy_list_data" {
		owner := []string{"l.username", "l.name"}
		if s.multihost {
			owner = []string{"l.username", "l.server_host", "l.name"}
		}
		for i, c := range cols {
			cols[i] = "d." + c
		}
		spec.Columns, spec.KeyCols = append(owner, cols...), len(owner)
		spec.From = "privacy_list_data d JOIN privacy_list l ON l.id = d.id"
	}
	return spec
}

// NewMapping implements schema.Schema.
func (s Schema) NewMapping(scope *schema.Scope) schema.Mapping {
	return &mapping{s: s, scope: scope, nodes: records.PubsubNodes{}}
}

// mapping is the state of one export.
type mapping struct {
	s     Schema
	scope *schema.Scope
	nodes records.PubsubNodes
	// privacyIDs number the privacy lists (shared by every mapper of the
	// mapping).
	privacyIDs schema.IDs
}

// Load implements schema.Mapping: privacy lists continue after the ids in
// the database.
func (m *mapping) Load(ctx context.Context, q schema.Querier, _ func(string) bool) error {
	return m.privacyIDs.Load(ctx, q, "privacy_list", "id")
}

// Note implements schema.Mapping.
func (m *mapping) Note(table string, rec term.Tuple) {
	if table == "pubsub_node" {
		m.nodes.Note(rec, m.scope)
	}
}

// Mapper implements schema.Mapping.
func (m *mapping) Mapper(table string) schema.Mapper {
	t, ok := byName[table]
	if !ok {
		return nil
	}
	return schema.Funcs[*mapper]{State: &mapper{mapping: m}, MapFn: t.mapFn, DelFn: t.delFn}
}

// mapper is the state of one table's mapping functions.
type mapper struct{ *mapping }

// rowH builds a row from values in multihost order (server_host
// included), dropping server_host for the single-host schema.
func (m *mapper) rowH(table string, vals ...any) schema.Op {
	if i := hostIndex(table); i >= 0 && !m.s.multihost {
		vals = append(vals[:i:i], vals[i+1:]...)
	}
	return schema.Row(table, vals...)
}

// row builds a row of a table whose first columns are the user and
// server_host.
func (m *mapper) row(table, user, host string, rest ...any) schema.Op {
	return m.rowH(table, append([]any{user, host}, rest...)...)
}

// where is the condition on a table's user and server_host columns.
func (m *mapper) where(userCol, user, host string) []schema.Cond {
	conds := []schema.Cond{schema.Eq(userCol, user)}
	if m.s.multihost {
		conds = append(conds, schema.Eq("server_host", host))
	}
	return conds
}
