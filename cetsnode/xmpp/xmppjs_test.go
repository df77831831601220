package xmpp_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// @xmpp/client (npm) on two Go nodes: each user fetches the exported
// roster, sees the other's presence, sends a message and reads the
// other's; then a message to a user who is offline is delivered, with its
// delay, when it logs in again.
func TestXMPPJSConversation(t *testing.T) {
	needBed(t)
	cluster := "xj" + testenv.RandomID(5)
	n1 := bed.StartNode(t, cluster, withRoster)
	n2 := bed.StartNode(t, cluster, withRoster)
	xmpptest.WaitClustered(t, 2, n1, n2)
	dir := t.TempDir()
	users := bed.Kind("scram-sha-1")
	a, b := users[13], users[14] // user14 has user15 in its roster; user15 does not have user14
	var wg sync.WaitGroup
	var ra, rb xmpptest.Result
	var ea, eb error
	// bob first: alice's presence reaches him when she comes (she has him
	// in her roster), and he answers her.
	wg.Add(2)
	go func() {
		defer wg.Done()
		rb, eb = xmpptest.XMPPJSChat(dir, xmpptest.Login{Account: b, Addr: n2.DirectTLS, DirectTLS: true, CA: bed.CA}, a.JID(), "hello back from node 2", "hello from @xmpp/client on node 1", true)
	}()
	testenv.WaitFor(t, "bob available", 20*time.Second, func() (bool, string) {
		ss := n1.Node.Sessions.Bare(xmpptest.Host, b.User)
		return len(ss) == 1 && ss[0].Available, ""
	}, nil)
	go func() {
		defer wg.Done()
		ra, ea = xmpptest.XMPPJSChat(dir, xmpptest.Login{Account: a, Addr: n1.StartTLS, CA: bed.CA}, b.JID(), "hello from @xmpp/client on node 1", "hello back from node 2", false)
	}()
	wg.Wait()
	check(t, "alice (@xmpp/client)", ra, ea, true)
	check(t, "bob (@xmpp/client)", rb, eb, true)
	for _, want := range []string{"ROSTER " + b.JID() + " both", "MSG " + b.JID() + "/xmppjs hello back from node 2\n"} {
		if !strings.Contains(ra.Output, want) {
			t.Errorf("alice: no %q in\n%s", want, ra.Output)
		}
	}
	for _, want := range []string{"PRES " + a.JID() + "/xmppjs available", "MSG " + a.JID() + "/xmppjs hello from @xmpp/client on node 1\n"} {
		if !strings.Contains(rb.Output, want) {
			t.Errorf("bob: no %q in\n%s", want, rb.Output)
		}
	}
	// Offline: bob writes to alice, who is gone; she reads it at login.
	r, err := xmpptest.XMPPJSChat(dir, xmpptest.Login{Account: b, Addr: n2.StartTLS, CA: bed.CA}, a.JID(), "while you were away", "-", false)
	check(t, "bob writes offline", r, err, true)
	r, err = xmpptest.XMPPJSChat(dir, xmpptest.Login{Account: a, Addr: n1.DirectTLS, DirectTLS: true, CA: bed.CA}, b.JID(), "-", "while you were away", false)
	check(t, "alice reads it at login", r, err, true)
	if !strings.Contains(r.Output, "while you were away DELAYED") {
		t.Errorf("the offline message without its delay:\n%s", r.Output)
	}
}
