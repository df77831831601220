// Package samples holds one ejabberd 23.01 Mnesia record of every table
// the export maps, for tests of the mappers and sinks: shapes as
// ejabberd's own code writes them (the export's oracle tests check the
// same tables against records a real ejabberd wrote).
package samples

import "github.com/mimmigrate/mimmigrate/erldist/term"

func b(s string) term.Binary { return term.Binary(s) }
func a(s string) term.Atom   { return term.Atom(s) }

// Host and Conference are the virtual host and MUC service the samples
// use; Pubsub the pubsub service.
const (
	Host       = "example.org"
	Conference = "conference.example.org"
	Pubsub     = "pubsub.example.org"
)

func us(u string) term.Tuple                { return term.Tuple{b(u), b(Host)} }
func ljid(u, s, r string) term.Tuple        { return term.Tuple{b(u), b(s), b(r)} }
func now(mega, sec, micro int64) term.Tuple { return term.Tuple{mega, sec, micro} }
func el(name string, attrs term.List, kids ...term.Term) term.Tuple {
	return term.Tuple{a("xmlel"), b(name), attrs, term.List(kids)}
}
func attr(k, v string) term.Tuple   { return term.Tuple{b(k), b(v)} }
func cdata(s string) term.Tuple     { return term.Tuple{a("xmlcdata"), b(s)} }
func jid(u, s, r string) term.Tuple { return term.Tuple{a("jid"), b(u), b(s), b(r), b(u), b(s), b(r)} }

// Records maps each table to a record of it.
func Records() map[string]term.Tuple {
	msg := el("message", term.List{attr("type", "chat"), attr("id", "m1")}, el("body", nil, cdata("hello <you>")))
	fields := make(term.Tuple, 0, 26)
	fields = append(fields, a("vcard_search"), us("alice"), us("Alice"), b("alice"))
	for i := range 22 {
		fields = append(fields, b([]string{"Alice A", "alice a"}[i%2]))
	}
	item := func(typ, value term.Term, action string, order int64) term.Tuple {
		return term.Tuple{a("listitem"), typ, value, a(action), order, a("true"), a("false"), a("false"), a("false"), a("false")}
	}
	return map[string]term.Tuple{
		"passwd":        {a("passwd"), us("alice"), term.Tuple{a("scram"), b("c3RvcmVk"), b("c2VydmVy"), b("c2FsdA=="), a("sha256"), int64(4096)}},
		"last_activity": {a("last_activity"), us("alice"), int64(1700000000), b("gone")},
		"roster": {a("roster"), term.Tuple{b("alice"), b(Host), ljid("bob", Host, "")}, us("alice"), ljid("bob", Host, ""),
			b("Bob"), a("both"), a("none"), term.List{b("Friends"), b("Work")}, b(""), term.List{}},
		"roster_version":  {a("roster_version"), us("alice"), b("v1")},
		"vcard":           {a("vcard"), us("alice"), el("vCard", term.List{attr("xmlns", "vcard-temp")}, el("FN", nil, cdata("Alice A")))},
		"vcard_search":    fields,
		"offline_msg":     {a("offline_msg"), us("alice"), now(1700, 1, 2), a("never"), jid("bob", Host, "phone"), jid("alice", Host, ""), msg},
		"private_storage": {a("private_storage"), term.Tuple{b("alice"), b(Host), b("storage:bookmarks")}, el("storage", term.List{attr("xmlns", "storage:bookmarks")})},
		"privacy": {a("privacy"), us("alice"), b("main"), term.List{
			term.Tuple{b("main"), term.List{item(a("jid"), ljid("eve", Host, ""), "deny", 1), item(a("none"), a("none"), "allow", 2)}},
			term.Tuple{b("other"), term.List{item(a("group"), b("Work"), "allow", 1)}}}},
		"muc_room": {a("muc_room"), term.Tuple{b("lobby"), b(Conference)}, term.List{
			term.Tuple{a("title"), b("The lobby")}, term.Tuple{a("persistent"), a("true")},
			term.Tuple{a("affiliations"), term.List{term.Tuple{ljid("alice", Host, ""), a("owner")}}},
			term.Tuple{a("subscribers"), term.List{term.Tuple{jid("bob", Host, ""), b("bobby"), term.List{b("urn:xmpp:mucsub:nodes:messages")}}}}}},
		"muc_registered": {a("muc_registered"), term.Tuple{us("alice"), b(Conference)}, b("ally")},
		"archive_msg": {a("archive_msg"), us("alice"), b("1700000001000002"), now(1700, 1, 2), ljid("bob", Host, "phone"), ljid("bob", Host, ""),
			el("message", term.List{attr("from", "bob@"+Host+"/phone"), attr("to", "alice@"+Host), attr("type", "chat")}, el("body", nil, cdata("hi"))),
			b(""), a("chat")},
		"archive_prefs": {a("archive_prefs"), us("alice"), a("roster"), term.List{ljid("bob", Host, "")}, term.List{}},
		// MongooseIM's own preferences record, JIDs as text.
		"mam_prefs":    {a("mam_prefs"), us("dave"), a("always"), term.List{}, term.List{b("eve@" + Host)}},
		"push_session": {a("push_session"), us("alice"), now(1700, 1, 2), ljid("", "push."+Host, ""), b("node1"), a("undefined")},
		"sr_group":     {a("sr_group"), term.Tuple{b("staff"), b(Host)}, term.List{term.Tuple{a("name"), b("Staff")}}},
		"sr_user":      {a("sr_user"), us("alice"), term.Tuple{b("staff"), b(Host)}},
		"motd":         {a("motd"), b(Host), el("message", nil, el("body", nil, cdata("welcome")))},
		"motd_users":   {a("motd_users"), us("alice"), term.List{}},
		"oauth_token":  {a("oauth_token"), b("tok1"), us("alice"), term.List{b("get_roster")}, int64(1800000000)},
		"oauth_client": {a("oauth_client"), b("client1"), b("A client"), a("password"), term.List{}},
		"mqtt_pub": {a("mqtt_pub"), term.Tuple{b("topic/a"), b(Host)}, b("alice"), b("res"), int64(1), b("payload"), int64(0),
			a("utf8"), b(""), b(""), b(""), term.List{}},
		"pubsub_node": {a("pubsub_node"), term.Tuple{b(Pubsub), b("news")}, int64(7), term.List{}, b("flat"),
			term.List{ljid("alice", Host, "")}, term.List{term.Tuple{a("max_items"), int64(10)}, term.Tuple{a("access_model"), a("open")}}},
		"pubsub_state": {a("pubsub_state"), term.Tuple{ljid("alice", Host, ""), int64(7)}, int64(7), term.List{}, a("owner"), term.List{}},
		"pubsub_item": {a("pubsub_item"), term.Tuple{b("item1"), int64(7)}, int64(7), term.Tuple{now(1700, 1, 2), ljid("alice", Host, "")},
			term.Tuple{now(1700, 1, 3), ljid("alice", Host, "home")}, term.List{el("entry", term.List{attr("xmlns", "http://www.w3.org/2005/Atom")})}},
		"caps_features": {a("caps_features"), term.Tuple{b("http://gajim.org"), b("abc=")}, term.List{b("jabber:iq:version")}},
	}
}

// Key is a record's Mnesia key (its first field).
func Key(rec term.Tuple) term.Term { return rec[1] }
