package xmpp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// Message carbons as ejabberd 23.01 makes them, on the same exported
// database: two resources of one user (priorities 1 and 0) and a
// contact; enabling and disabling, the errors, copies of sent messages
// and of received ones to the bare JID, to the other resource, to a
// resource that is not there; what is not copied (private, no-copy,
// headline, a groupchat-less normal message without a body); copies of
// archived messages carry their stanza id. Every stanza each session
// receives is the same from both servers.
func TestCarbonsAsEjabberd(t *testing.T) {
	needBed(t)
	// No other test writes user45's or user49's data.
	a := xmpptest.Account{User: "user45", Password: "pw-user1"}
	b := xmpptest.Account{User: "user49", Password: "pw-user1"}
	sessions := []xmpptest.Account{a, a, b} // a/a, a/b, b/c
	A, B := a.JID(), b.JID()
	enable := "<iq type='set' id='%s'><enable xmlns='urn:xmpp:carbons:2'/></iq>"
	steps := []step{
		{0, "<presence><priority>1</priority></presence>"},
		{1, "<presence/>"},
		{2, "<presence/>"},
		{0, fmt.Sprintf(enable, "e1")},
		{1, fmt.Sprintf(enable, "e2")},
		{0, "<iq type='get' id='e3'><enable xmlns='urn:xmpp:carbons:2'/></iq>"},
		{0, "<iq type='set' id='e4'><sent xmlns='urn:xmpp:carbons:2'/></iq>"},
		{0, "<message to='" + B + "' type='chat' id='c1'><body>sent from a</body></message>"},
		{2, "<message to='" + A + "' type='chat' id='c2'><body>to the bare JID</body></message>"},
		{2, "<message to='" + A + "/b' type='chat' id='c3'><body>to b</body></message>"},
		{2, "<message to='" + A + "/gone' type='chat' id='c4'><body>to a resource that is not there</body></message>"},
		{0, "<message to='" + B + "' type='chat' id='c5'><body>private</body><private xmlns='urn:xmpp:carbons:2'/></message>"},
		{0, "<message to='" + B + "' type='chat' id='c6'><body>no copy</body><no-copy xmlns='urn:xmpp:hints'/></message>"},
		{0, "<message to='" + B + "' type='headline' id='c7'><body>news</body></message>"},
		{0, "<message to='" + B + "' id='c8'><body>normal with a body</body></message>"},
		{0, "<message to='" + B + "' id='c9'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"},
		{0, "<message to='" + B + "' id='c10'><x xmlns='urn:example'/></message>"},
		{2, "<message to='" + A + "/b' id='c11'><received xmlns='urn:xmpp:receipts' id='c8'/></message>"},
		{0, "<iq type='set' id='p1'><prefs xmlns='urn:xmpp:mam:2' default='always'/></iq>"},
		{0, "<message to='" + B + "' type='chat' id='c12'><body>archived and copied</body></message>"},
		{2, "<message to='" + A + "' type='chat' id='c13'><body>archived, received, copied</body></message>"},
		{1, "<iq type='set' id='d1'><disable xmlns='urn:xmpp:carbons:2'/></iq>"},
		{0, "<message to='" + B + "' type='chat' id='c14'><body>b no longer wants copies</body></message>"},
		{1, "<presence><priority>1</priority></presence>"},
		{2, "<message to='" + A + "' type='chat' id='c15'><body>both at priority 1</body></message>"},
		{1, fmt.Sprintf(enable, "e5")},
		{2, "<message to='" + A + "' type='chat' id='c16'><body>both at priority 1, both with carbons</body></message>"},
	}
	db := testenv.DB(t, bed.DBURL).Pool
	ctx := context.Background()
	reset := func() {
		for _, q := range []string{`DELETE FROM spool WHERE username IN ($1, $2)`, `DELETE FROM archive_prefs WHERE username IN ($1, $2)`} {
			if _, err := db.Exec(ctx, q, a.User, b.User); err != nil {
				t.Fatal(err)
			}
		}
	}
	reset()
	start := time.Now()
	e := bed.StartSQLEjabberdWith(t, "  mod_carboncopy: {}\n")
	dialEj := dialEjabberd(t, e)
	warmUp(t, dialEj, a, b)
	norm := mamNormaliser(start)
	ej := runConversationWith(t, dialEj, sessions, steps, func(s string) string { return sortStanzas(norm(s)) })
	reset()
	start = time.Now()
	n := bed.StartNode(t, "cc"+testenv.RandomID(5), withMAM+"  mod_carboncopy: {}\n")
	dialGo := dialNode(t, n)
	warmUp(t, dialGo, a, b)
	norm = mamNormaliser(start)
	ours := runConversationWith(t, dialGo, sessions, steps, func(s string) string { return sortStanzas(norm(s)) })
	sameAsEjabberd(t, ej, ours)
	all := covers(t, ej, "<sent xmlns='urn:xmpp:carbons:2'>", "<received xmlns='urn:xmpp:carbons:2'>", "<stanza-id by='"+A+"' id='NEW")
	if t.Failed() {
		t.Logf("ejabberd's conversation:\n%s", all)
	}
}

// Real clients (slixmpp's carbons plugin) with two resources of one user
// on two Go nodes: each enables carbons; a message the contact sends to
// one resource reaches the other as a received carbon, one a resource
// sends reaches the other as a sent carbon with the sender's archive id,
// across nodes.
func TestCarbonsWithRealClients(t *testing.T) {
	needBed(t)
	cluster := "cr" + testenv.RandomID(5)
	cfg := withRoster + "  mod_carboncopy: {}\n  mod_mam:\n    default: always\n"
	n1 := bed.StartNode(t, cluster, cfg)
	n2 := bed.StartNode(t, cluster, cfg)
	xmpptest.WaitClustered(t, 2, n1, n2)
	a := xmpptest.Account{User: "user15", Password: "pw-user15"}
	b := xmpptest.Account{User: "user19", Password: "pw-user19"}
	phone := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n1.StartTLS, CA: bed.CA})
	laptop := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n2.DirectTLS, DirectTLS: true, CA: bed.CA})
	bob := xmpptest.StartChat(t, xmpptest.Login{Account: b, Addr: n1.StartTLS, CA: bed.CA})
	for _, c := range []*xmpptest.Chat{phone, laptop} {
		c.Do("carbons")
		c.Expect("^CARBONS enabled$", 10*time.Second)
		c.Do("presence 0")
	}
	phone.Expect("^PRES "+q(laptop.JID)+" available", 10*time.Second)
	bob.Do("presence 0")
	bob.Expect("^PRES "+q(bob.JID)+" available", 10*time.Second)
	bob.Do("msg %s chat for the phone", phone.JID)
	phone.Expect("^MSG "+q(bob.JID)+" chat for the phone$", 10*time.Second)
	laptop.Expect("^CARBON received "+q(bob.JID)+" "+q(phone.JID)+" for the phone ", 10*time.Second)
	phone.Do("msg %s chat from the phone", b.JID())
	bob.Expect("^MSG "+q(phone.JID)+" chat from the phone$", 10*time.Second)
	c := laptop.Expect("^CARBON sent "+q(phone.JID)+" "+q(b.JID())+` from the phone (\d+)$`, 10*time.Second)
	var id string
	if err := testenv.DB(t, bed.DBURL).Pool.QueryRow(context.Background(),
		`SELECT timestamp::text FROM archive WHERE username = $1 AND txt = 'from the phone'`, a.User).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if c[1] != id {
		t.Errorf("the sent carbon carries stanza id %s, the sender's archive has %s", c[1], id)
	}
	phone.Quiet("^CARBON", time.Second)
}
