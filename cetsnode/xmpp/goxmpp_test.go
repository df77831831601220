package xmpp_test

import (
	"strings"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// recv reads from a go-xmpp client until want accepts a stanza.
func recv(t *testing.T, c *goxmpp.Client, what string, want func(any) bool) {
	t.Helper()
	got := make(chan bool, 1)
	go func() {
		for {
			st, err := c.Recv()
			if err != nil {
				got <- false
				return
			}
			if want(st) {
				got <- true
				return
			}
		}
	}()
	select {
	case ok := <-got:
		if !ok {
			t.Fatalf("%s: the connection ended", what)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: not within 15 s", what)
	}
}

// A second real client, go-xmpp (SCRAM-SHA-1-PLUS with tls-exporter, its
// initial presence with an empty <show/>), does everything on two Go
// nodes: roster fetch, presence of a contact, a message each way, and
// offline delivery with its stamp after reconnecting.
func TestGoXMPPConversation(t *testing.T) {
	needBed(t)
	cluster := "gx" + testenv.RandomID(5)
	n1 := bed.StartNode(t, cluster, withRoster)
	n2 := bed.StartNode(t, cluster, withRoster)
	xmpptest.WaitClustered(t, 2, n1, n2)
	users := bed.Kind("scram-sha-1")
	a, b := users[11], users[12] // user12 has user13 in its roster (both)
	bob, err := xmpptest.GoXMPPClient(xmpptest.Login{Account: b, Addr: n2.StartTLS, CA: bed.CA})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	alice, err := xmpptest.GoXMPPClient(xmpptest.Login{Account: a, Addr: n1.StartTLS, CA: bed.CA})
	if err != nil {
		t.Fatal(err)
	}
	alice.Roster()
	recv(t, alice, "the roster", func(st any) bool {
		iq, ok := st.(goxmpp.IQ)
		if !ok || iq.ID != "roster1" {
			return false
		}
		if q := string(iq.Query); iq.Type != "result" || !strings.Contains(q, "name='Nick "+b.User+"' jid='"+b.JID()+"'><group>Friends</group><group>Work</group></item>") {
			t.Errorf("roster result without %s: %s %s", b.JID(), iq.Type, q)
		}
		return true
	})
	// alice's initial presence went to bob (her contact, on the other node).
	recv(t, bob, "alice's presence", func(st any) bool {
		p, ok := st.(goxmpp.Presence)
		return ok && strings.HasPrefix(p.From, a.JID()+"/") && p.Type == ""
	})
	alice.Send(goxmpp.Chat{Remote: b.JID(), Type: "chat", Text: "hello from node 1"})
	recv(t, bob, "alice's message", func(st any) bool {
		c, ok := st.(goxmpp.Chat)
		return ok && c.Text == "hello from node 1" && strings.HasPrefix(c.Remote, a.JID())
	})
	bob.Send(goxmpp.Chat{Remote: a.JID(), Type: "chat", Text: "hello from node 2"})
	recv(t, alice, "bob's message", func(st any) bool {
		c, ok := st.(goxmpp.Chat)
		return ok && c.Text == "hello from node 2"
	})
	// Offline: alice leaves, bob writes, alice comes back and reads it
	// with its delay stamp.
	alice.Close()
	testenv.WaitFor(t, "alice gone", 10*time.Second, func() (bool, string) {
		return len(n2.Node.Sessions.Bare(xmpptest.Host, a.User)) == 0, ""
	}, nil)
	sent := time.Now().UTC()
	bob.Send(goxmpp.Chat{Remote: a.JID(), Type: "chat", Text: "while you were away"})
	time.Sleep(500 * time.Millisecond)
	alice, err = xmpptest.GoXMPPClient(xmpptest.Login{Account: a, Addr: n2.DirectTLS, DirectTLS: true, CA: bed.CA})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	recv(t, alice, "the offline message", func(st any) bool {
		c, ok := st.(goxmpp.Chat)
		if !ok || c.Text != "while you were away" {
			return false
		}
		if c.Stamp.IsZero() || c.Stamp.Sub(sent).Abs() > 5*time.Second {
			t.Errorf("offline message stamp %v, sent at %v", c.Stamp, sent)
		}
		return true
	})
}
