package xmpp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// Offline messages with real clients on two Go nodes: the messages
// ejabberd had stored for a user before the migration and those sent to
// it since, while it had no session (up to the configured limit: past it
// the sender gets ejabberd's resource-constraint error), are delivered
// with their delay when it becomes available, and leave the spool.
func TestOfflineWithRealClients(t *testing.T) {
	needBed(t)
	cluster := "of" + testenv.RandomID(5)
	cfg := withRoster + "shaper_rules:\n  max_user_offline_messages: 4\n"
	n1 := bed.StartNode(t, cluster, cfg)
	n2 := bed.StartNode(t, cluster, cfg)
	xmpptest.WaitClustered(t, 2, n1, n2)
	users := bed.Kind("scram-sha-1")
	a, b := users[1], users[4] // user5 has two messages ejabberd stored (from user6)
	db := testenv.DB(t, bed.DBURL)
	count := func() int {
		var n int
		if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool WHERE username = $1`, b.User).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("the export left %d messages for %s, want 2", n, b.User)
	}
	alice := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n1.StartTLS, CA: bed.CA})
	alice.Do("presence 0")
	alice.Do("msg %s chat first while away", b.JID())
	alice.Do("msg %s normal second while away", b.JID())
	testenv.WaitFor(t, "two messages stored", 10*time.Second, func() (bool, string) { return count() == 4, "" }, nil)
	alice.Do("msg %s chat one too many", b.JID())
	alice.Expect("^MSGERR "+q(b.JID())+" resource-constraint Your contact offline message queue is full. The message has been discarded.$", 10*time.Second)

	bob := xmpptest.StartChat(t, xmpptest.Login{Account: b, Addr: n2.DirectTLS, DirectTLS: true, CA: bed.CA})
	bob.Quiet("^MSG ", time.Second) // not before the initial presence
	bob.Do("presence 0")
	for _, want := range []string{
		"^DELAYED user6@" + q(xmpptest.Host) + " " + q(xmpptest.Host) + " Offline Storage Hello user5 1$",
		"^DELAYED user6@" + q(xmpptest.Host) + " " + q(xmpptest.Host) + " Offline Storage Привет user5 2$",
		"^DELAYED " + q(alice.JID) + " " + q(xmpptest.Host) + " Offline Storage first while away$",
		"^DELAYED " + q(alice.JID) + " " + q(xmpptest.Host) + " Offline Storage second while away$",
	} {
		bob.Expect(want, 10*time.Second)
	}
	if n := count(); n != 0 {
		t.Errorf("%d messages left in the spool after delivery", n)
	}
	// Online now: a message goes straight to the session.
	alice.Do("msg %s chat now you are here", b.JID())
	m := bob.Expect("^MSG "+q(alice.JID)+" chat (.*)$", 10*time.Second)
	if m[1] != "now you are here" || strings.Contains(m[0], "DELAYED") {
		t.Errorf("got %q", m[0])
	}
}
