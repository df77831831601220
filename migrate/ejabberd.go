package migrate

import (
	"fmt"
	"strconv"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Row is one row of a target table, its values in the order of the
// table's columns as the target lists them.
type Row struct {
	Table  string
	Values []any
	// Canon, when set, is the row as verify compares it: the values with
	// ids the export assigns (and PostgreSQL keeps) replaced by what they
	// stand for.
	Canon []any
}

// Target says how rows are shaped: ejabberd's pg.sql has no server_host
// column (one virtual host per database), pg.new.sql has one in every
// per-host table.
type Target struct {
	Multihost bool
	// Mongoose selects MongooseIM's schema (every table keyed by server).
	Mongoose bool
}

// OneHost reports whether the schema holds a single virtual host.
func (tg Target) OneHost() bool { return !tg.Multihost && !tg.Mongoose }

// Tables lists the Mnesia tables the target maps.
func (tg Target) Tables() []Table {
	if tg.Mongoose {
		return MongooseTables
	}
	return Tables
}

// TableByName finds a table the target maps.
func (tg Target) TableByName(name string) (Table, bool) {
	for _, t := range tg.Tables() {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}

// columns lists each target table's columns, in the order Row values
// come, as pg.new.sql (multihost) has them; the single-host schema lacks
// server_host. Columns with defaults the export leaves alone (created_at
// unless named, serial ids unless named) are not listed.
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

// hostIndex is the position of server_host in each table's columns (-1:
// none).
var hostIndex = func() map[string]int {
	m := map[string]int{}
	for t, cols := range columns {
		m[t] = -1
		for i, c := range cols {
			if c == "server_host" {
				m[t] = i
			}
		}
	}
	return m
}()

// Columns lists a target table's columns in the order Row values come.
func (tg Target) Columns(table string) []string {
	if tg.Mongoose {
		return mimColumns[table]
	}
	cols, ok := columns[table]
	if !ok {
		return nil
	}
	if i := hostIndex[table]; i >= 0 && !tg.Multihost {
		return append(cols[:i:i], cols[i+1:]...)
	}
	return cols
}

// rowH builds a row from values in multihost order (server_host
// included), dropping server_host for the single-host schema.
func (tg Target) rowH(table string, vals ...any) Row {
	if i := hostIndex[table]; i >= 0 && !tg.Multihost {
		vals = append(vals[:i:i], vals[i+1:]...)
	}
	return Row{Table: table, Values: vals}
}

// row builds a row for a table whose first column is the user and second
// server_host.
func (tg Target) row(table, user, host string, rest ...any) Row {
	return tg.rowH(table, append([]any{user, host}, rest...)...)
}

// RejectError: a record that cannot be mapped; it goes to the rejects file.
type RejectError struct{ Reason string }

func (e *RejectError) Error() string { return e.Reason }

func reject(format string, args ...any) error {
	return &RejectError{Reason: fmt.Sprintf(format, args...)}
}

// text reads a string field in any shape ejabberd stored one (binary,
// 2.x byte list).
func text(t term.Term, what string) (string, error) {
	if s, ok := term.Text(t); ok {
		if _, isAtom := t.(term.Atom); !isAtom {
			return s, nil
		}
	}
	return "", reject("%s is not a string: %s", what, short(t))
}

// us reads a {User, Server} key.
func us(t term.Term) (user, server string, err error) {
	tu, ok := t.(term.Tuple)
	if !ok || len(tu) != 2 {
		return "", "", reject("key is not {User, Server}: %s", short(t))
	}
	if user, err = text(tu[0], "user"); err != nil {
		return "", "", err
	}
	server, err = text(tu[1], "server")
	return user, server, err
}

// Passwd maps a passwd record to a users row: a plain password as is; a
// SCRAM record (the 5-tuple of ejabberd 2.1.7 – 20.11, or the 6-tuple with
// the hash of 20.12 and later) to StoredKey, ServerKey, Salt and the
// iteration count, the StoredKey prefixed "sha256:" or "sha512:" when the
// hash is not SHA-1, as ejabberd 20.12 – 25.02 store it.
func (tg Target) Passwd(rec term.Tuple) ([]Row, error) {
	if len(rec) != 3 {
		return nil, reject("passwd record of %d fields", len(rec)-1)
	}
	user, host, err := us(rec[1])
	if err != nil {
		return nil, err
	}
	if pw, err := text(rec[2], "password"); err == nil {
		return []Row{tg.row("users", user, host, pw, "", "", int32(0))}, nil
	}
	sc, ok := rec[2].(term.Tuple)
	if !ok || len(sc) < 5 || len(sc) > 6 || !term.IsAtom(sc[0], "scram") {
		return nil, reject("password is neither text nor a scram record: %s", short(rec[2]))
	}
	stored, err1 := text(sc[1], "StoredKey")
	server, err2 := text(sc[2], "ServerKey")
	salt, err3 := text(sc[3], "Salt")
	if err := firstErr(err1, err2, err3); err != nil {
		return nil, err
	}
	icTerm, prefix := sc[4], ""
	if len(sc) == 6 {
		hash, _ := sc[4].(term.Atom)
		switch hash {
		case "sha":
		case "sha256", "sha512":
			prefix = string(hash) + ":"
		default:
			return nil, reject("scram hash %s is not sha, sha256 or sha512", short(sc[4]))
		}
		icTerm = sc[5]
	}
	ic, ok := term.Int(icTerm)
	if !ok || ic <= 0 || ic > 1<<31-1 {
		return nil, reject("scram iteration count %s", short(icTerm))
	}
	return []Row{tg.row("users", user, host, prefix+stored, server, salt, int32(ic))}, nil
}

// LastActivity maps last_activity to last: seconds as decimal text.
func (tg Target) LastActivity(rec term.Tuple) ([]Row, error) {
	if len(rec) != 4 {
		return nil, reject("last_activity record of %d fields", len(rec)-1)
	}
	user, host, err := us(rec[1])
	if err != nil {
		return nil, err
	}
	secs, ok := term.Int(rec[2])
	if !ok {
		return nil, reject("timestamp is not an integer: %s", short(rec[2]))
	}
	status, err := text(rec[3], "status")
	if err != nil {
		return nil, err
	}
	return []Row{tg.row("last", user, host, strconv.FormatInt(secs, 10), status)}, nil
}

var subscriptionCode = map[term.Atom]string{"both": "B", "to": "T", "from": "F", "none": "N"}
var askCode = map[term.Atom]string{"subscribe": "S", "unsubscribe": "U", "both": "B", "out": "O", "in": "I", "none": "N"}

// Roster maps a roster item to a rosterusers row and one rostergroups row
// per group, with the codes and constants ejabberd writes (server 'N',
// subscribe empty, type 'item'). An item being removed (subscription remove)
// is not a roster item: it is rejected.
func (tg Target) Roster(rec term.Tuple) ([]Row, error) {
	if len(rec) != 10 {
		return nil, reject("roster record of %d fields", len(rec)-1)
	}
	user, host, err := us(rec[2])
	if err != nil {
		return nil, err
	}
	jid, err := ljidText(rec[3])
	if err != nil {
		return nil, err
	}
	nick, err := text(rec[4], "name")
	if err != nil {
		return nil, err
	}
	sub, ok := rec[5].(term.Atom)
	subC := subscriptionCode[sub]
	if !ok || subC == "" {
		return nil, reject("subscription %s", short(rec[5]))
	}
	ask, ok := rec[6].(term.Atom)
	askC := askCode[ask]
	if !ok || askC == "" {
		return nil, reject("ask %s", short(rec[6]))
	}
	askMsg, err := text(rec[8], "askmessage")
	if err != nil {
		return nil, err
	}
	rows := []Row{tg.row("rosterusers", user, host, jid, nick, subC, askC, askMsg, "N", "", "item")}
	groups, ok := term.Elems(rec[7])
	if !ok {
		return nil, reject("groups are not a list: %s", short(rec[7]))
	}
	for _, g := range groups {
		name, err := text(g, "group")
		if err != nil {
			return nil, err
		}
		rows = append(rows, tg.row("rostergroups", user, host, jid, name))
	}
	return rows, nil
}

// ljidText writes a {User, Server, Resource} JID as ejabberd's
// jid:encode does: user@server/resource, parts that are empty left out.
// The parts are already lowercased (stored that way).
func ljidText(t term.Term) (string, error) {
	p, err := ljidParts(t)
	if err != nil {
		return "", err
	}
	u, s, r := p[0], p[1], p[2]
	if s == "" {
		return "", reject("JID without a server: %s", short(t))
	}
	out := s
	if u != "" {
		out = u + "@" + s
	}
	if r != "" {
		out += "/" + r
	}
	return out, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
