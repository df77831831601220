package xmpp_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// Client state indication as ejabberd 23.01's mod_client_state, on the
// same exported database: an inactive client does not get availability
// presence (the latest per sender waits) or standalone chat states; a
// message with a body from a sender releases what waits from that sender
// first; becoming active releases the rest, with "Client Inactive"
// delays. Every stanza each of three sessions receives is the same from
// ejabberd and from a Go node.
func TestCSIAsEjabberd(t *testing.T) {
	needBed(t)
	// No other test uses user34, user35, user36.
	a := xmpptest.Account{User: "user34", Password: "pw-user1"}
	b := xmpptest.Account{User: "user35", Password: "pw-user1"}
	c := xmpptest.Account{User: "user36", Password: "pw-user1"}
	A := a.JID()
	steps := []step{
		{0, "<presence/>"},
		{1, "<presence/>"},
		{2, "<presence/>"},
		{0, "<inactive xmlns='urn:xmpp:csi:0'/>"},
		{1, "<presence to='" + A + "/a'><status>first</status></presence>"},
		{1, "<presence to='" + A + "/a'><show>away</show><status>second</status></presence>"},
		{2, "<presence to='" + A + "/a'><status>from c</status></presence>"},
		{1, "<message to='" + A + "/a' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"},
		{1, "<message to='" + A + "/a' type='chat' id='m1'><body>important</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"},
		{2, "<message to='" + A + "/a' type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>"},
		{2, "<iq to='" + A + "/a' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>"},
		{1, "<presence to='" + A + "/a' type='unavailable'/>"},
		{0, "<active xmlns='urn:xmpp:csi:0'/>"},
		{1, "<presence to='" + A + "/a'><status>while active</status></presence>"},
	}
	db := testenv.DB(t, bed.DBURL).Pool
	ctx := context.Background()
	reset := func() {
		if _, err := db.Exec(ctx, `DELETE FROM spool WHERE username IN ($1, $2, $3)`, a.User, b.User, c.User); err != nil {
			t.Fatal(err)
		}
	}
	reset()
	e := bed.StartSQLEjabberdWith(t, "  mod_client_state: {}\n")
	dialEj := dialEjabberd(t, e)
	sessions := []xmpptest.Account{a, b, c}
	warmUp(t, dialEj, sessions...)
	ej := runConversationWith(t, dialEj, sessions, steps, normalise)
	reset()
	n := bed.StartNode(t, "csi"+testenv.RandomID(5), withRoster+"  mod_client_state: {}\n")
	dialGo := dialNode(t, n)
	warmUp(t, dialGo, sessions...)
	ours := runConversationWith(t, dialGo, sessions, steps, normalise)
	sameAsEjabberd(t, ej, ours)
	all := strings.Join(ej, "\n")
	if !strings.Contains(all, ">Client Inactive</delay>") {
		t.Errorf("nothing waited: the conversation tests less than it says")
	}
	if t.Failed() {
		t.Logf("ejabberd's conversation:\n%s", all)
	}
}
