package xmpp_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// The caps every session of the PEP tests advertises: the features are
// in caps_features (as a migrated cache or as ejabberd learnt them).
const (
	capsNode     = "http://mimmigrate.test/client"
	capsPresence = "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='" + capsNode + "' ver='V1notify='/></presence>"
)

var capsFeatures = []string{"http://jabber.org/protocol/caps", "eu.siacs.conversations.axolotl.devicelist+notify",
	"urn:xmpp:avatar:metadata+notify", "http://jabber.org/protocol/nick+notify", "urn:xmpp:bookmarks:1+notify", "urn:example:pep+notify"}

// pepReset puts a PEP test's users back as the bed made them: their
// PEP nodes, private storage and spool, the caps cache, and roster items
// that make them each other's contacts both ways.
func pepReset(t *testing.T, owner, contact string) func() {
	t.Helper()
	db := testenv.DB(t, bed.DBURL).Pool
	ctx := context.Background()
	host := owner + "@" + xmpptest.Host
	saved := map[string]string{}
	queries := map[string]string{
		"pubsub_node":        `SELECT * FROM pubsub_node WHERE host = $1`,
		"pubsub_node_option": `SELECT o.* FROM pubsub_node_option o JOIN pubsub_node n USING (nodeid) WHERE n.host = $1`,
		"pubsub_state":       `SELECT s.* FROM pubsub_state s JOIN pubsub_node n USING (nodeid) WHERE n.host = $1`,
		"pubsub_item":        `SELECT i.* FROM pubsub_item i JOIN pubsub_node n USING (nodeid) WHERE n.host = $1`,
		"private_storage":    `SELECT * FROM private_storage WHERE username = split_part($1, '@', 1)`,
	}
	for tbl, q := range queries {
		var js string
		if err := db.QueryRow(ctx, `SELECT coalesce(json_agg(t), '[]')::text FROM (`+q+`) t`, host).Scan(&js); err != nil {
			t.Fatalf("%s: %v", tbl, err)
		}
		saved[tbl] = js
	}
	if !strings.Contains(saved["pubsub_item"], "axolotl") {
		t.Fatalf("%s has no migrated OMEMO device list: %s", owner, saved["pubsub_item"])
	}
	return func() {
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.Exec(ctx, q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		exec(`DELETE FROM pubsub_node WHERE host = $1`, host)
		exec(`DELETE FROM private_storage WHERE username = $1`, owner)
		for _, tbl := range []string{"pubsub_node", "pubsub_node_option", "pubsub_state", "pubsub_item", "private_storage"} {
			exec(`INSERT INTO `+tbl+` SELECT * FROM json_populate_recordset(NULL::`+tbl+`, $1::json)`, saved[tbl])
		}
		exec(`DELETE FROM spool WHERE username IN ($1, $2)`, owner, contact)
		exec(`DELETE FROM caps_features WHERE node = $1`, capsNode)
		for _, f := range capsFeatures {
			exec(`INSERT INTO caps_features (node, subnode, feature) VALUES ($1, 'V1notify=', $2)`, capsNode, f)
		}
		// The ring of the bed's rosters gives the owner the contact
		// (both), not the other way round.
		exec(`DELETE FROM rosterusers WHERE username = $1 AND jid = $2`, contact, host)
		exec(`INSERT INTO rosterusers (username, jid, nick, subscription, ask, askmessage, server, subscribe, type)
			VALUES ($1, $2, 'Owner', 'B', 'N', '', 'N', '', 'item')`, contact, host)
	}
}

var (
	serverIQIDRE = regexp.MustCompile(`(<iq [^>]*?)id='[^']*'`)
	rsmStampRE   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
)

// pepNormalise: what differs between two runs (stamps, the ids of the
// server's own queries).
func pepNormalise(s string) string {
	s = serverIQIDRE.ReplaceAllStringFunc(s, func(iq string) string {
		if strings.Contains(iq, "type='get'") {
			return serverIQIDRE.ReplaceAllString(iq, "${1}id='ID'")
		}
		return iq
	})
	return normalise(rsmStampRE.ReplaceAllString(s, "T"))
}

// PEP as ejabberd 23.01's mod_pubsub (pep plugin, SQL) and mod_caps
// serve it, on the same exported database: the migrated OMEMO device
// list, bundle, avatar, nickname and bookmarks sent at login to the
// owner's resources and to a contact by their caps' +notify features;
// publishing (publish-options and their preconditions, auto-create,
// max_items), notifications, items, retraction, node creation and
// deletion, the errors (a payload over the size limit, several items,
// an empty item, a forbidden publisher, unknown options), mod_private's
// legacy bookmarks kept in step with PEP, and the disco#info query for
// caps the server does not know. Every stanza each session receives is
// the same from ejabberd and from a Go node; then ejabberd (its caches
// emptied) reads back what the Go node wrote.
func TestPEPAsEjabberd(t *testing.T) {
	needBed(t)
	a := xmpptest.Account{User: "user56", Password: "pw-user1"}
	b := xmpptest.Account{User: "user57", Password: "pw-user1"}
	A := a.JID()
	devices := func(id string) string {
		return "<list xmlns='eu.siacs.conversations.axolotl'><device id='" + xmpptest.OMEMODevice + "'/><device id='" + id + "'/></list>"
	}
	pubopts := func(fields string) string {
		return "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" + fields + "</x></publish-options>"
	}
	publish := func(id, node, items, opts string) string {
		return "<iq type='set' id='" + id + "'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='" + node + "'>" + items + "</publish>" + opts + "</pubsub></iq>"
	}
	field := func(v, val string) string { return "<field var='pubsub#" + v + "'><value>" + val + "</value></field>" }
	items := func(id, to, node, inner string) string {
		if to != "" {
			to = " to='" + to + "'"
		}
		return "<iq type='get' id='" + id + "'" + to + "><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='" + node + "'" + inner + "</pubsub></iq>"
	}
	big := strings.Repeat("x", 251000)
	steps := []step{
		{0, capsPresence},
		{2, capsPresence},
		{1, capsPresence},
		{0, publish("p1", "eu.siacs.conversations.axolotl.devicelist", "<item id='current'>"+devices("99")+"</item>", pubopts(field("access_model", "open")))},
		{0, items("i1", "", "eu.siacs.conversations.axolotl.devicelist", "/>")},
		{1, items("i2", A, "eu.siacs.conversations.axolotl.devicelist", "/>")},
		{1, items("i3", A, "urn:xmpp:bookmarks:1", "/>")},
		{1, items("i4", A, "eu.siacs.conversations.axolotl.bundles:"+xmpptest.OMEMODevice, "><item id='current'/></items>")},
		{0, publish("p2", "urn:example:pep", "<item id='i1'><entry xmlns='urn:example:pep'>one</entry></item>", "")},
		{0, publish("p3", "urn:example:pep", "<item id='i2'><entry xmlns='urn:example:pep'>two</entry></item>", "")},
		{0, items("i5", "", "urn:example:pep", "/>")},
		{0, items("i6", "", "urn:example:pep", " max_items='1'/>")},
		{0, "<iq type='set' id='r1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='urn:example:pep' notify='true'><item id='i2'/></retract></pubsub></iq>"},
		{0, "<iq type='set' id='r2'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='urn:example:pep'><item id='i9'/></retract></pubsub></iq>"},
		{0, publish("p4", "eu.siacs.conversations.axolotl.devicelist", "<item id='current'>"+devices("98")+"</item>", pubopts(field("access_model", "whitelist")))},
		{0, publish("p5", "urn:xmpp:bookmarks:1", "<item id='room3@conference.localhost'><conference xmlns='urn:xmpp:bookmarks:1' name='Room 3'/></item>",
			pubopts(field("persist_items", "true")+field("max_items", "max")+field("access_model", "whitelist")))},
		{0, publish("p6", "urn:example:pep", "<item id='big'><entry xmlns='urn:example:pep'>"+big+"</entry></item>", "")},
		{0, publish("p7", "urn:example:pep", "<item id='x1'><a xmlns='urn:example:pep'/></item><item id='x2'><b xmlns='urn:example:pep'/></item>", "")},
		{0, publish("p8", "urn:example:pep", "<item id='x3'/>", "")},
		{1, "<iq type='set' id='p9' to='" + A + "'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='http://jabber.org/protocol/nick'><item id='current'><nick xmlns='http://jabber.org/protocol/nick'>Hijack</nick></item></publish></pubsub></iq>"},
		{1, "<iq type='set' id='r3' to='" + A + "'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='eu.siacs.conversations.axolotl.devicelist'><item id='current'/></retract></pubsub></iq>"},
		{0, "<iq type='set' id='v1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='room4@conference.localhost' autojoin='true' name='Room 4'/></storage></query></iq>"},
		{0, items("i7", "", "storage:bookmarks", "/>")},
		{0, publish("p10", "storage:bookmarks", "<item id='current'><storage xmlns='storage:bookmarks'><conference jid='room5@conference.localhost' name='Room 5'/></storage></item>", "")},
		{0, "<iq type='get' id='v2'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>"},
		{0, "<iq type='set' id='c1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='urn:example:created'/></pubsub></iq>"},
		{0, "<iq type='set' id='c2'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='urn:example:created'/></pubsub></iq>"},
		{0, publish("p11", "urn:example:created", "<item id='c'><x xmlns='urn:example:c'/></item>", "")},
		{1, "<iq type='set' id='d1' to='" + A + "'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='urn:example:created'/></pubsub></iq>"},
		{0, "<iq type='set' id='d2'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='urn:example:created'/></pubsub></iq>"},
		{0, items("i8", "", "urn:example:created", "/>")},
		{0, publish("p12", "http://jabber.org/protocol/nick", "<item id='current'><nick xmlns='http://jabber.org/protocol/nick'>New Nick</nick></item>", "")},
		{0, "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='" + capsNode + "' ver='Unknown='/></presence>"},
	}
	// ejabberd's first PEP queries can take longer than a step's usual
	// wait.
	defer func(d time.Duration) { settleIdle = d }(settleIdle)
	settleIdle = time.Second
	reset := pepReset(t, a.User, b.User)
	reset()
	e := bed.StartSQLEjabberd(t)
	dialEj := dialEjabberd(t, e)
	users := []xmpptest.Account{a, b, a}
	warmUp(t, dialEj, a, b)
	ej := runConversationWith(t, dialEj, users, steps, pepNormalise)
	ejRows := pepRows(t, A)
	reset()
	n := bed.StartNode(t, "pep"+testenv.RandomID(5), withRoster+"  mod_caps: {}\n  mod_private: {}\n  mod_pubsub:\n    plugins:\n      - flat\n      - pep\n")
	dialGo := dialNode(t, n)
	warmUp(t, dialGo, a, b)
	ours := runConversationWith(t, dialGo, users, steps, pepNormalise)
	sameAsEjabberd(t, ej, ours)
	all := covers(t, ej, "<event xmlns='"+"http://jabber.org/protocol/pubsub#event'><items node='eu.siacs.conversations.axolotl.devicelist'><item id='current'><list xmlns='eu.siacs.conversations.axolotl'><device id='"+xmpptest.OMEMODevice+"'/><device id='2718'/>",
		"step 2, user 1: <message to='user57@localhost/b' from='user56@localhost' type='headline'><event",
		"<payload-too-big ", "<precondition-not-met ", "<closed-node ", "<bundle xmlns='eu.siacs.conversations.axolotl'>",
		"<query node='"+capsNode+"#Unknown=' xmlns='http://jabber.org/protocol/disco#info'/>", "<conference jid='room5@conference.localhost' name='Room 5'/></storage></query>")
	if t.Failed() {
		t.Logf("ejabberd's conversation:\n%s", all)
		return
	}
	// What the Go node stored is what ejabberd stored: the options of
	// the nodes it created, the items with their publishers.
	if ours := pepRows(t, A); ours != ejRows {
		t.Errorf("PEP rows after ejabberd's run:\n%s\nafter the Go node's:\n%s", ejRows, ours)
	}
	// ejabberd (its caches emptied) reads what the Go node wrote.
	if out, err := e.Eval(`[ets_cache:clear(C) || C <- [private_cache, caps_features_cache]], ok`); err != nil {
		t.Fatalf("emptying ejabberd's caches: %v %s", err, out)
	}
	readBack := []step{
		{0, items("b1", "", "eu.siacs.conversations.axolotl.devicelist", "/>")},
		{0, items("b2", "", "http://jabber.org/protocol/nick", "/>")},
		{0, items("b3", "", "storage:bookmarks", "/>")},
		{0, items("b4", "", "urn:example:pep", "/>")},
		{1, items("b5", A, "urn:xmpp:avatar:metadata", "/>")},
		{0, "<iq type='get' id='b6'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>"},
	}
	ejBack := runConversationWith(t, again(dialEj), users[:2], readBack, pepNormalise)
	ourBack := runConversationWith(t, again(dialGo), users[:2], readBack, pepNormalise)
	for i := range ejBack {
		if ejBack[i] != ourBack[i] {
			t.Errorf("ejabberd reads: %s\nours:          %s", ejBack[i], ourBack[i])
		}
	}
	if back := strings.Join(ejBack, "\n"); !strings.Contains(back, "New Nick") || !strings.Contains(back, "device id='99'") || !strings.Contains(back, "Room 5") {
		t.Errorf("ejabberd did not read back what the Go node wrote:\n%s", back)
	}
	t.Logf("%d steps, %d bytes received, the same", len(steps), len(all))
}

// pepRows are a PEP owner's nodes as stored: options and items (times
// left out).
func pepRows(t *testing.T, owner string) string {
	t.Helper()
	var out string
	err := testenv.DB(t, bed.DBURL).Pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(line, E'\n' ORDER BY line), '') FROM (
		SELECT n.node || ' option ' || o.name || '=' || o.val AS line FROM pubsub_node n JOIN pubsub_node_option o USING (nodeid) WHERE n.host = $1
		UNION ALL SELECT n.node || ' state ' || s.jid || ' ' || s.affiliation || ' ' || s.subscriptions FROM pubsub_node n JOIN pubsub_state s USING (nodeid) WHERE n.host = $1
		UNION ALL SELECT n.node || ' item ' || i.itemid || ' by ' || i.publisher || ': ' || i.payload FROM pubsub_node n JOIN pubsub_item i USING (nodeid) WHERE n.host = $1) t`, owner).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Real clients (slixmpp's caps, PEP, avatar and nickname plugins) on
// two Go nodes: a user's first client makes the server learn its caps
// (the disco#info query, answered and checked); the user's next client
// and a contact on the other node get the migrated OMEMO device list,
// avatar and nickname at login; the contact reads the device list and
// bundle; a new device list (publish-options access model open) and a
// new nickname reach the contact on the other node; the XEP-0402
// bookmarks stay closed to it.
func TestPEPWithRealClients(t *testing.T) {
	needBed(t)
	a := xmpptest.Account{User: "user58", Password: "pw-user1"}
	b := xmpptest.Account{User: "user59", Password: "pw-user1"}
	reset := pepReset(t, a.User, b.User)
	reset()
	t.Cleanup(reset)
	cluster := "pr" + testenv.RandomID(5)
	cfg := withRoster + "  mod_caps: {}\n  mod_private: {}\n  mod_pubsub:\n    plugins:\n      - pep\n"
	n1 := bed.StartNode(t, cluster, cfg)
	n2 := bed.StartNode(t, cluster, cfg)
	xmpptest.WaitClustered(t, 2, n1, n2)
	db := testenv.DB(t, bed.DBURL).Pool
	if _, err := db.Exec(context.Background(), `DELETE FROM caps_features WHERE node = 'http://slixmpp.com/ver/' || $1 OR node LIKE 'https://slixmpp.com%' OR node LIKE 'http://slixmpp%'`, ""); err != nil {
		t.Fatal(err)
	}
	alice := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n1.StartTLS, CA: bed.CA, PEP: true})
	alice.Do("presence 0")
	// The server does not know slixmpp's caps: it asks, checks the hash
	// and stores the features.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		if err := db.QueryRow(context.Background(), `SELECT count(*) FROM caps_features WHERE feature = 'eu.siacs.conversations.axolotl.devicelist+notify' AND node <> $1`, capsNode).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not learn slixmpp's caps (disco#info query, hash check, caps_features)")
		}
		time.Sleep(200 * time.Millisecond)
	}
	alice2 := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n2.DirectTLS, DirectTLS: true, CA: bed.CA, PEP: true})
	alice2.Do("presence 0")
	for _, c := range []*xmpptest.Chat{alice2} {
		c.Expect("^PEP user58@localhost eu.siacs.conversations.axolotl.devicelist current "+xmpptest.OMEMODevice+",2718$", 10*time.Second)
		// In the order of the nodes.
		c.Expect("^PEP user58@localhost urn:xmpp:avatar:metadata 9a8e2b8d1ca0d8ed2bd4c27c3f2b94b1e4b5e5d7 -$", 10*time.Second)
		c.Expect("^PEP user58@localhost http://jabber.org/protocol/nick current Migrated Nick$", 10*time.Second)
	}
	bob := xmpptest.StartChat(t, xmpptest.Login{Account: b, Addr: n2.StartTLS, CA: bed.CA, PEP: true})
	bob.Do("presence 0")
	bob.Expect("^PEP user58@localhost eu.siacs.conversations.axolotl.devicelist current "+xmpptest.OMEMODevice+",2718$", 10*time.Second)
	bob.Expect("^PEP user58@localhost http://jabber.org/protocol/nick current Migrated Nick$", 10*time.Second)
	bob.Do("pepitems %s eu.siacs.conversations.axolotl.devicelist", a.JID())
	bob.Expect("^ITEM eu.siacs.conversations.axolotl.devicelist current "+xmpptest.OMEMODevice+",2718$", 10*time.Second)
	bob.Expect("^ITEMSEND 1$", 10*time.Second)
	bob.Do("pepitems %s eu.siacs.conversations.axolotl.bundles:%s", a.JID(), xmpptest.OMEMODevice)
	bob.Expect("^ITEM eu.siacs.conversations.axolotl.bundles:"+xmpptest.OMEMODevice+" current \\{eu.siacs.conversations.axolotl\\}bundle$", 10*time.Second)
	bob.Do("pepitems %s urn:xmpp:bookmarks:1", a.JID())
	bob.Expect("^ITEMSEND not-allowed$", 10*time.Second)
	alice.Do("pepdevices %s 4242", xmpptest.OMEMODevice)
	alice.Expect("^PUBLISHED eu.siacs.conversations.axolotl.devicelist$", 10*time.Second)
	bob.Expect("^PEP user58@localhost eu.siacs.conversations.axolotl.devicelist current "+xmpptest.OMEMODevice+",4242$", 10*time.Second)
	alice2.Expect("^PEP user58@localhost eu.siacs.conversations.axolotl.devicelist current "+xmpptest.OMEMODevice+",4242$", 10*time.Second)
	alice2.Do("nick Renamed Alice")
	alice2.Expect("^PUBLISHED nick$", 10*time.Second)
	bob.Expect("^PEP user58@localhost http://jabber.org/protocol/nick current Renamed Alice$", 10*time.Second)
	alice.Expect("^PEP user58@localhost http://jabber.org/protocol/nick current Renamed Alice$", 10*time.Second)
}

// The owner's node configuration (XEP-0060 §8.2) as ejabberd 23.01's
// mod_pubsub answers it (same modules, no shared roster groups): the
// form of a migrated OMEMO device list, another user's and an unknown
// node's errors, a new access model that makes a publish-options
// precondition fail and then hold (what Conversations does), the form's
// errors (an unknown field, a bad value, a cancel, no form, a form that
// is not submitted), several roster groups and a title. Every stanza is
// the same from both servers, the rows stored are the same, and
// ejabberd reads back the configuration the Go node wrote.
func TestPEPConfigureAsEjabberd(t *testing.T) {
	needBed(t)
	a := xmpptest.Account{User: "user56", Password: "pw-user1"}
	b := xmpptest.Account{User: "user57", Password: "pw-user1"}
	A := a.JID()
	const devices = "eu.siacs.conversations.axolotl.devicelist"
	get := func(id, to, node string) string {
		if to != "" {
			to = " to='" + to + "'"
		}
		return "<iq type='get' id='" + id + "'" + to + "><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='" + node + "'/></pubsub></iq>"
	}
	set := func(id, node, xtype, fields string) string {
		x := ""
		if xtype != "" {
			x = "<x xmlns='jabber:x:data' type='" + xtype + "'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>" + fields + "</x>"
		}
		return "<iq type='set' id='" + id + "'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='" + node + "'>" + x + "</configure></pubsub></iq>"
	}
	field := func(v string, vals ...string) string {
		f := "<field var='pubsub#" + v + "'>"
		for _, x := range vals {
			f += "<value>" + x + "</value>"
		}
		return f + "</field>"
	}
	publish := func(id, model string) string {
		return "<iq type='set' id='" + id + "'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='" + devices + "'><item id='current'><list xmlns='eu.siacs.conversations.axolotl'><device id='7'/></list></item></publish>" +
			"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" + field("access_model", model) + "</x></publish-options></pubsub></iq>"
	}
	steps := []step{
		{0, get("g1", "", devices)},
		{1, get("g2", A, devices)},
		{0, get("g3", "", "urn:example:none")},
		{0, set("s1", devices, "submit", field("access_model", "presence")+field("max_items", "5")+field("deliver_payloads", "1"))},
		{0, get("g4", "", devices)},
		{0, publish("p1", "open")},
		{0, set("s2", devices, "submit", field("access_model", "open"))},
		{0, publish("p2", "open")},
		{0, set("s3", devices, "submit", field("foo", "bar"))},
		{0, set("s4", devices, "submit", field("access_model", "everyone"))},
		{0, set("s5", devices, "cancel", "")},
		{0, set("s6", devices, "", "")},
		{0, set("s7", devices, "form", field("access_model", "open"))},
		{0, set("s8", devices, "submit", field("roster_groups_allowed", "Friends", "Work")+field("title", "My dévices"))},
		{0, get("g5", "", devices)},
		{1, set("s9", "urn:xmpp:avatar:data", "submit", field("access_model", "open"))},
	}
	reset := pepReset(t, a.User, b.User)
	reset()
	e := bed.StartSQLEjabberdModules(t, discoModules)
	dialEj := dialEjabberd(t, e)
	users := []xmpptest.Account{a, b}
	warmUp(t, dialEj, a, b)
	ej := runConversationWith(t, dialEj, users, steps, pepNormalise)
	ejRows := pepRows(t, A)
	reset()
	n := bed.StartNode(t, "pc"+testenv.RandomID(5), discoModules)
	dialGo := dialNode(t, n)
	warmUp(t, dialGo, a, b)
	ours := runConversationWith(t, dialGo, users, steps, pepNormalise)
	sameAsEjabberd(t, ej, ours)
	all := covers(t, ej, "<field var='pubsub#access_model' type='list-single' label='Specify the access model'><value>open</value>",
		"<precondition-not-met ", "Unknown field &apos;pubsub#foo&apos;", "<value>Friends</value><value>Work</value>", "Owner privileges required")
	if t.Failed() {
		t.Logf("ejabberd's conversation:\n%s", all)
		return
	}
	if ours := pepRows(t, A); ours != ejRows {
		t.Errorf("PEP rows after ejabberd's run:\n%s\nafter the Go node's:\n%s", ejRows, ours)
	}
	readBack := []step{{0, get("b1", "", devices)}}
	ejBack := runConversationWith(t, again(dialEj), users, readBack, pepNormalise)
	ourBack := runConversationWith(t, again(dialGo), users, readBack, pepNormalise)
	if ejBack[0] != ourBack[0] || !strings.Contains(ejBack[0], "My dévices") {
		t.Errorf("ejabberd reads: %s\nours:          %s", ejBack[0], ourBack[0])
	}
}
