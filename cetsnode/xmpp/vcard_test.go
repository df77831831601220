package xmpp_test

import (
	"context"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// vCards, photo hashes in presence and private XML storage as ejabberd
// 23.01's mod_vcard, mod_vcard_xupdate and mod_private with their SQL
// backends, on the same exported database: the migrated vCard read by
// its owner and by another user (with its photo's hash in the owner's
// presence); a new vCard in a scrambled order with an unknown element,
// a photo in wrapped base64 and repeated fields, stored as ejabberd's
// codec writes it, its new hash sent in presence again; a bad BINVAL;
// private storage set, read, read for a namespace never stored, the
// errors. Every stanza each user receives is the same from ejabberd and
// from a Go node; then ejabberd (its caches emptied) reads the vCard,
// the search fields and the private data the Go node wrote as the Go
// node does.
func TestVCardAndPrivateAsEjabberd(t *testing.T) {
	needBed(t)
	// No other test uses user28's (who has a migrated vCard and
	// bookmarks) or user27's vCard or private data.
	a := xmpptest.Account{User: "user28", Password: "pw-user1"}
	b := xmpptest.Account{User: "user27", Password: "pw-user1"}
	A, B := a.JID(), b.JID()
	newVCard := "<vCard xmlns='vcard-temp'><NOTE>a note</NOTE><X-CUSTOM xmlns='urn:example'>keep me</X-CUSTOM>" +
		"<EMAIL><USERID>first@example.org</USERID><INTERNET/><HOME/></EMAIL><EMAIL><WORK/><USERID>second@example.org</USERID></EMAIL>" +
		"<FN>Old Name</FN><FN>New Näme</FN><N><MIDDLE>M</MIDDLE><FAMILY>Fam</FAMILY><GIVEN>Giv</GIVEN></N>" +
		"<PHOTO><BINVAL>iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk\n+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==</BINVAL><TYPE>image/png</TYPE></PHOTO>" +
		"<ORG><ORGUNIT>u1</ORGUNIT><ORGNAME>Org</ORGNAME><ORGUNIT>u2</ORGUNIT></ORG><CATEGORIES/><CLASS><PRIVATE/><PUBLIC/></CLASS>" +
		"<TEL><NUMBER>+1</NUMBER><CELL/><VOICE/></TEL><ADR><STREET>Main</STREET><CTRY>FR</CTRY><LOCALITY>Lyon</LOCALITY><WORK/></ADR></vCard>"
	steps := []step{
		{0, "<presence/>"},
		{1, "<presence/>"},
		{0, "<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>"},
		{1, "<iq type='get' id='v2' to='" + A + "'><vCard xmlns='vcard-temp'/></iq>"},
		{1, "<iq type='get' id='v3' to='nobody@localhost'><vCard xmlns='vcard-temp'/></iq>"},
		{0, "<presence to='" + B + "/b'><status>directed</status></presence>"},
		{0, "<iq type='set' id='v4'>" + newVCard + "</iq>"},
		{0, "<iq type='get' id='v5'><vCard xmlns='vcard-temp'/></iq>"},
		{1, "<iq type='get' id='v6' to='" + A + "'><vCard xmlns='vcard-temp'/></iq>"},
		{0, "<iq type='set' id='v7'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>not base64!</BINVAL></PHOTO></vCard></iq>"},
		{0, "<presence><x xmlns='vcard-temp:x:update'><photo/></x></presence>"},
		{0, "<presence><x xmlns='vcard-temp:x:update'><photo>0000</photo></x><status>mine</status></presence>"},
		{0, "<iq type='set' id='p1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='room@conference.localhost' autojoin='true' name='Room'><nick>me</nick></conference></storage><exodus xmlns='exodus:prefs'><defaultnick>A</defaultnick></exodus></query></iq>"},
		{0, "<iq type='get' id='p2'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/><other xmlns='urn:example:never'/></query></iq>"},
		{0, "<iq type='get' id='p3'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>"},
		{0, "<iq type='set' id='p4'><query xmlns='jabber:iq:private'><nothing/></query></iq>"},
		{1, "<iq type='get' id='p5' to='" + A + "'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>"},
	}
	db := testenv.DB(t, bed.DBURL).Pool
	ctx := context.Background()
	// The run's writes are undone before the next: user28's rows are
	// put back as they were.
	tables := map[string]string{"vcard": "username", "vcard_search": "lusername", "private_storage": "username"}
	saved := map[string]string{}
	for tbl, col := range tables {
		var js string
		if err := db.QueryRow(ctx, `SELECT coalesce(json_agg(t), '[]')::text FROM `+tbl+` t WHERE `+col+` = $1`, a.User).Scan(&js); err != nil {
			t.Fatalf("%s: %v", tbl, err)
		}
		saved[tbl] = js
	}
	reset := func() {
		for tbl, col := range tables {
			if _, err := db.Exec(ctx, `DELETE FROM `+tbl+` WHERE `+col+` IN ($1, $2)`, a.User, b.User); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(ctx, `INSERT INTO `+tbl+` SELECT * FROM json_populate_recordset(NULL::`+tbl+`, $1::json)`, saved[tbl]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec(ctx, `DELETE FROM spool WHERE username IN ($1, $2)`, a.User, b.User); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `DELETE FROM pubsub_node WHERE host IN ($1, $2)`, A, B); err != nil {
			t.Fatal(err)
		}
	}
	reset()
	// With mod_pubsub (pep): legacy bookmarks are published to PEP too,
	// which ejabberd does first time slower than a step's usual wait.
	defer func(d time.Duration) { settleIdle = d }(settleIdle)
	settleIdle = time.Second
	e := bed.StartSQLEjabberdWith(t, "  mod_vcard_xupdate: {}\n")
	dialEj := dialEjabberd(t, e)
	users := []xmpptest.Account{a, b}
	warmUp(t, dialEj, users...)
	ej := runConversationWith(t, dialEj, users, steps, normalise)
	reset()
	n := bed.StartNode(t, "vc"+testenv.RandomID(5), withRoster+"  mod_vcard: {}\n  mod_vcard_xupdate: {}\n  mod_private: {}\n  mod_caps: {}\n  mod_pubsub:\n    plugins:\n      - pep\n")
	dialGo := dialNode(t, n)
	warmUp(t, dialGo, users...)
	ours := runConversationWith(t, dialGo, users, steps, normalise)
	sameAsEjabberd(t, ej, ours)
	all := covers(t, ej, "<photo>", "<X-CUSTOM xmlns='urn:example'>keep me</X-CUSTOM>", "<conference ", "<items node='storage:bookmarks'><item id='current'>")
	if t.Failed() {
		t.Logf("ejabberd's conversation:\n%s", all)
		return
	}
	// ejabberd reads what the Go node wrote.
	if out, err := e.Eval(`[ets_cache:clear(C) || C <- [vcard_cache, private_cache, vcard_xupdate_cache]], ok`); err != nil {
		t.Fatalf("emptying ejabberd's caches: %v %s", err, out)
	}
	readBack := []step{
		{1, "<iq type='get' id='r1' to='" + A + "'><vCard xmlns='vcard-temp'/></iq>"},
		{0, "<iq type='get' id='r2'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/><exodus xmlns='exodus:prefs'/></query></iq>"},
	}
	ejBack := runConversationWith(t, again(dialEj), users, readBack, normalise)
	ourBack := runConversationWith(t, again(dialGo), users, readBack, normalise)
	for i := range ejBack {
		if ejBack[i] != ourBack[i] {
			t.Errorf("ejabberd reads: %s\nours:          %s", ejBack[i], ourBack[i])
		}
	}
	var fn, lfn, email, orgunit string
	if err := db.QueryRow(ctx, `SELECT fn, lfn, email, orgunit FROM vcard_search WHERE lusername = $1`, a.User).Scan(&fn, &lfn, &email, &orgunit); err != nil {
		t.Fatal(err)
	}
	if fn != "New Näme" || lfn != "new näme" || email != "first@example.org" || orgunit != "u1" {
		t.Errorf("vcard_search after the Go node's set: fn %q lfn %q email %q orgunit %q", fn, lfn, email, orgunit)
	}
}

// Real clients (slixmpp's vCard and bookmarks plugins) on two Go nodes:
// a user reads the vCard and the legacy bookmarks ejabberd stored for
// it, sets a new vCard, and a contact on the other node reads it.
func TestVCardAndBookmarksWithRealClients(t *testing.T) {
	needBed(t)
	cluster := "vr" + testenv.RandomID(5)
	cfg := withRoster + "  mod_vcard: {}\n  mod_vcard_xupdate: {}\n  mod_private: {}\n"
	n1 := bed.StartNode(t, cluster, cfg)
	n2 := bed.StartNode(t, cluster, cfg)
	xmpptest.WaitClustered(t, 2, n1, n2)
	// user10 has a migrated vCard and bookmarks; no other test changes
	// them.
	a := xmpptest.Account{User: "user10", Password: "pw-user10"}
	b := xmpptest.Account{User: "user12", Password: "pw-user12"}
	alice := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n1.StartTLS, CA: bed.CA})
	alice.Do("vcard %s", a.JID())
	alice.Expect("^VCARD Full Name user10 .*Nick user10.* Example & Co <ops>$", 10*time.Second)
	alice.Do("bookmarks")
	alice.Expect("^BOOKMARK room1@conference.localhost Room 1$", 10*time.Second)
	alice.Expect("^BOOKMARKSEND 1$", 10*time.Second)
	alice.Do("setvcard Alice Änderung")
	alice.Expect("^VCARDSET ok$", 10*time.Second)
	bob := xmpptest.StartChat(t, xmpptest.Login{Account: b, Addr: n2.DirectTLS, DirectTLS: true, CA: bed.CA})
	bob.Do("vcard %s", a.JID())
	bob.Expect("^VCARD Alice Änderung - -$", 10*time.Second)
}
