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

const withPing = "modules:\n  mod_fail2ban: {}\n  mod_ping: {}\n"

var q = regexp.QuoteMeta

// Two real clients (slixmpp) on two Go nodes: messages to bare and full
// JIDs each way, an IQ answered by the other client across nodes, IQs the
// server answers for itself and for a user's bare JID, and the errors for
// an unknown user, a domain the cluster does not serve, a resource that
// is not connected.
func TestRoutingAcrossNodes(t *testing.T) {
	needBed(t)
	cluster := "rt" + testenv.RandomID(5)
	n1 := bed.StartNode(t, cluster, withPing)
	n2 := bed.StartNode(t, cluster, withPing)
	xmpptest.WaitClustered(t, 2, n1, n2)
	users := bed.Kind("scram-sha-1")
	a, b := users[0], users[1]
	alice := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n1.StartTLS, CA: bed.CA})
	bob := xmpptest.StartChat(t, xmpptest.Login{Account: b, Addr: n2.DirectTLS, DirectTLS: true, CA: bed.CA})
	alice.Do("presence 1")
	alice.Expect("^PRES "+q(alice.JID)+" available 1$", 10*time.Second)
	bob.Do("presence 0")
	bob.Expect("^PRES "+q(bob.JID)+" available 0$", 10*time.Second)

	alice.Do("msg %s chat hello bob", b.JID())
	bob.Expect("^MSG "+q(alice.JID)+" chat hello bob$", 10*time.Second)
	bob.Do("msg %s chat hello alice", alice.JID)
	alice.Expect("^MSG "+q(bob.JID)+" chat hello alice$", 10*time.Second)
	alice.Do("msg %s/not-connected normal to any resource", b.JID())
	bob.Expect("^MSG "+q(alice.JID)+" normal to any resource$", 10*time.Second)

	for _, c := range []struct{ to, want string }{
		{bob.JID, "result"},       // answered by bob's client, on the other node
		{b.JID(), "result"},       // by the server for bob (mod_ping)
		{xmpptest.Host, "result"}, // by the server
		{b.JID() + "/gone", "service-unavailable"},
		{"nosuchuser@" + xmpptest.Host + "/r", "service-unavailable"},
		{"example.org", "remote-server-not-found"},
	} {
		alice.Do("ping %s", c.to)
		alice.Expect("^IQ ping-"+q(c.to)+" "+c.want+"$", 15*time.Second)
	}
	alice.Do("msg nosuchuser@%s chat anyone there", xmpptest.Host)
	alice.Expect("^MSGERR nosuchuser@"+q(xmpptest.Host)+" service-unavailable -$", 10*time.Second)
	alice.Do("msg someone@example.org chat hi")
	alice.Expect("^MSGERR someone@example.org remote-server-not-found -$", 10*time.Second)

	// Bob goes unavailable: a message to his bare JID finds no available
	// resource (no offline storage configured: bounced as ejabberd does).
	bob.Do("unavailable")
	alice.Quiet("^PRES "+q(bob.JID), time.Second) // not subscribed: alice is not told
	testenv.WaitFor(t, "bob unavailable in alice's node", 10*time.Second, func() (bool, string) {
		for _, s := range n1.Node.Sessions.Bare(xmpptest.Host, b.User) {
			if s.Available {
				return false, "still available"
			}
		}
		return true, ""
	}, nil)
	alice.Do("msg %s chat are you there", b.JID())
	alice.Expect("^MSGERR "+q(b.JID())+" service-unavailable User session not found$", 10*time.Second)
	bob.Quiet("are you there", time.Second)
}

// The same routing on the wire, as ejabberd writes it: a message to a bare
// JID delivered to the highest-priority resources only (to left as the
// bare JID), presence to a bare JID to every available resource (to set
// to each), a message's children in the codec's order, and the error
// replies.
func TestRoutingOnTheWire(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "rw"+testenv.RandomID(5), withPing)
	users := bed.Kind("scram-sha-1")
	a, b := users[2], users[3]
	session := func(acc xmpptest.Account, res string) *xmpptest.Raw {
		t.Helper()
		r, _, err := xmpptest.Session(n.StartTLS, bed.CA, acc, res)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	expect := func(r *xmpptest.Raw, want string) {
		t.Helper()
		if out, err := r.Expect(want, 10*time.Second); err != nil {
			t.Fatalf("%v", err)
		} else if !strings.Contains(out, want) {
			t.Fatalf("got %q", out)
		}
	}
	quiet := func(r *xmpptest.Raw, what string) {
		t.Helper()
		if out, err := r.Expect(what, 700*time.Millisecond); err == nil {
			t.Fatalf("unexpected %q", out)
		}
	}
	alice := session(a, "a")
	high, low, neg := session(b, "high"), session(b, "low"), session(b, "neg")
	for _, c := range []struct {
		r    *xmpptest.Raw
		prio string
	}{{high, "5"}, {low, "1"}, {neg, "-1"}} {
		c.r.Send("<presence><priority>" + c.prio + "</priority></presence>")
		expect(c.r, "<priority>"+c.prio+"</priority></presence>")
	}
	alice.Send("<presence/>")
	expect(alice, "<presence xml:lang='en' to='"+a.JID()+"/a' from='"+a.JID()+"/a'/>")

	alice.Send("<message to='" + b.JID() + "' type='chat' id='m1'><body>hi</body><thread>t1</thread><x xmlns='urn:example'/></message>")
	expect(high, "<message xml:lang='en' to='"+b.JID()+"' from='"+a.JID()+"/a' type='chat' id='m1'><x xmlns='urn:example'/><body>hi</body><thread>t1</thread></message>")
	quiet(low, "m1")
	quiet(neg, "m1")
	// A headline goes to every resource of non-negative priority.
	alice.Send("<message to='" + b.JID() + "' type='headline' id='h1'><body>news</body></message>")
	expect(high, "id='h1'")
	expect(low, "id='h1'")
	quiet(neg, "id='h1'")
	// Directed presence to the bare JID reaches every available resource,
	// addressed to each.
	alice.Send("<presence to='" + b.JID() + "'><status>here</status></presence>")
	for _, c := range []struct {
		r   *xmpptest.Raw
		res string
	}{{high, "high"}, {low, "low"}, {neg, "neg"}} {
		expect(c.r, "<presence xml:lang='en' to='"+b.JID()+"/"+c.res+"' from='"+a.JID()+"/a'><status>here</status></presence>")
	}
	// Errors, each as ejabberd words it.
	for _, c := range []struct{ send, want string }{
		{"<message to='nobody@" + xmpptest.Host + "' type='chat' id='e1'><body>x</body></message>",
			"<message xml:lang='en' to='" + a.JID() + "/a' from='nobody@" + xmpptest.Host + "' type='error' id='e1'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error><body>x</body></message>"},
		{"<iq to='" + b.JID() + "/gone' type='get' id='e2'><query xmlns='jabber:iq:version'/></iq>",
			"<iq xml:lang='en' to='" + a.JID() + "/a' from='" + b.JID() + "/gone' type='error' id='e2'><query xmlns='jabber:iq:version'/><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>User session not found</text></error></iq>"},
		{"<iq to='" + xmpptest.Host + "' type='get' id='e3'><query xmlns='jabber:iq:version'/></iq>",
			"<iq xml:lang='en' to='" + a.JID() + "/a' from='" + xmpptest.Host + "' type='error' id='e3'><query xmlns='jabber:iq:version'/><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>No module is handling this query</text></error></iq>"},
		{"<iq to='" + xmpptest.Host + "' type='get' id='e4'/>",
			"<iq xml:lang='en' to='" + a.JID() + "/a' from='" + xmpptest.Host + "' type='error' id='e4'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>No child elements found</text></error></iq>"},
		{"<message to='" + xmpptest.Host + "' id='e5'><body>x</body></message>",
			"<message xml:lang='en' to='" + a.JID() + "/a' from='" + xmpptest.Host + "' type='error' id='e5'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>No available resource found</text></error><body>x</body></message>"},
		{"<iq to='" + b.JID() + "' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
			"<iq type='error' from='" + b.JID() + "'><ping xmlns='urn:xmpp:ping'/><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Missing attribute &apos;id&apos; in tag &lt;iq/&gt; qualified by namespace &apos;jabber:client&apos;</text></error></iq>"},
		{"<presence><priority>abc</priority></presence>",
			"<presence type='error'><priority>abc</priority><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Bad value of cdata in tag &lt;priority/&gt; qualified by namespace &apos;jabber:client&apos;</text></error></presence>"},
		{"<message to='" + b.JID() + "' type='groupchat' id='e10'><body>x</body></message>",
			"<message xml:lang='en' to='" + a.JID() + "/a' from='" + b.JID() + "' type='error' id='e10'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>User session not found</text></error><body>x</body></message>"},
		{"<iq to='" + b.JID() + "' type='get' id='e13'><a xmlns='x'/><b xmlns='y'/></iq>",
			"<iq xml:lang='en' to='" + a.JID() + "/a' from='" + b.JID() + "' type='error' id='e13'><a xmlns='x'/><b xmlns='y'/><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Too many child elements</text></error></iq>"},
		{"<iq type='get' id='e8'/>",
			"<iq xml:lang='en' to='" + a.JID() + "/a' from='" + a.JID() + "' type='error' id='e8'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>No child elements found</text></error></iq>"},
		{"<iq to='" + b.JID() + "' type='get' id='e7'><ping xmlns='urn:xmpp:ping'/></iq>",
			"<iq xml:lang='en' to='" + a.JID() + "/a' from='" + b.JID() + "' type='result' id='e7'/>"},
	} {
		alice.Send(c.send)
		expect(alice, c.want)
	}
	// An unknown message type is normal; attributes the codec does not know
	// and text between children are dropped.
	alice.Send("<message to='" + b.JID() + "' type='bogus' id='e6'/>")
	expect(high, "<message xml:lang='en' to='"+b.JID()+"' from='"+a.JID()+"/a' id='e6'/>")
	alice.Send("<message to='" + b.JID() + "' foo='bar' id='e14'>  <body xml:lang='de'>x</body> text <subject>s</subject></message>")
	expect(high, "<message xml:lang='en' to='"+b.JID()+"' from='"+a.JID()+"/a' id='e14'><body xml:lang='de'>x</body><subject>s</subject></message>")
	// A probe from another resource of the same user is answered with the
	// last presence, stamped.
	other := session(a, "b")
	other.Send("<presence/>")
	out, err := other.Expect("<delay", 10*time.Second)
	if err != nil || !regexp.MustCompile(`<presence xml:lang='en' to='`+q(a.JID())+`/b' from='`+q(a.JID())+`/a'><delay from='`+q(a.JID())+`/a' stamp='\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z' xmlns='urn:xmpp:delay'/></presence>`).MatchString(out) {
		t.Fatalf("probe reply: %q %v", out, err)
	}
	// Closing a session sends unavailable to the user's other resources and
	// to those it sent directed presence to.
	alice.Close()
	expect(other, "<presence to='"+a.JID()+"/b' from='"+a.JID()+"/a' type='unavailable'/>")
	expect(high, "<presence to='"+b.JID()+"/high' from='"+a.JID()+"/a' type='unavailable'/>")
}

// kill -9 of one node of three: its users' sessions leave the table,
// and the sessions on the surviving nodes that saw them available — a
// contact given directed presence (on one) and the user's own other
// resource (on the other) — get unavailable presence from their own
// node; messages to them no longer go there.
func TestNodeDeathWithdrawsPresence(t *testing.T) {
	needBed(t)
	cluster := "nd" + testenv.RandomID(5)
	cfg := withPing + "  mod_offline: {}\n"
	p := bed.StartNodeProcess(t, cluster, cfg)
	n := bed.StartNode(t, cluster, cfg)
	n3 := bed.StartNode(t, cluster, cfg)
	testenv.WaitFor(t, "three nodes joined", 60*time.Second, func() (bool, string) {
		return len(n.Node.Sessions.T.Nodes()) == 2 && len(n3.Node.Sessions.T.Nodes()) == 2, ""
	}, nil)
	users := bed.Kind("scram-sha-1")
	a, b, d := users[4], users[5], users[6]
	alice := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: p.StartTLS, CA: bed.CA})
	dave := xmpptest.StartChat(t, xmpptest.Login{Account: d, Addr: p.DirectTLS, DirectTLS: true, CA: bed.CA})
	dave.Do("presence 0")
	dave.Expect("^PRES "+q(dave.JID)+" available", 10*time.Second)
	bob := xmpptest.StartChat(t, xmpptest.Login{Account: b, Addr: n.StartTLS, CA: bed.CA})
	bob.Do("presence 0")
	bob.Expect("^PRES "+q(bob.JID)+" available", 10*time.Second)
	alice.Do("presence 0")
	alice.Expect("^PRES "+q(alice.JID)+" available", 10*time.Second)
	alice.Do("directed %s", bob.JID)
	bob.Expect("^PRES "+q(alice.JID)+" available", 10*time.Second)
	alice2 := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n3.DirectTLS, DirectTLS: true, CA: bed.CA})
	alice2.Do("presence 0")
	alice2.Expect("^PRES "+q(alice.JID)+" available", 10*time.Second) // the probe's answer, from the other node

	p.Kill()
	bob.Expect("^PRES "+q(alice.JID)+" unavailable", 15*time.Second)
	alice2.Expect("^PRES "+q(alice.JID)+" unavailable", 15*time.Second)
	testenv.WaitFor(t, "the dead node's sessions gone", 15*time.Second, func() (bool, string) {
		return len(n.Node.Sessions.Bare(xmpptest.Host, a.User)) == 1 && len(n3.Node.Sessions.Bare(xmpptest.Host, a.User)) == 1, ""
	}, nil)
	bob.Do("msg %s chat after the crash", alice.JID)
	alice2.Expect("^MSG "+q(bob.JID)+" chat after the crash$", 10*time.Second)
	// dave had a session on the dead node only: a message to him goes to
	// offline storage, no error.
	testenv.WaitFor(t, "dave's session gone", 15*time.Second, func() (bool, string) {
		return len(n.Node.Sessions.Bare(xmpptest.Host, d.User)) == 0, ""
	}, nil)
	bob.Do("msg %s chat for when you are back", dave.JID)
	bob.Quiet("^MSGERR", time.Second)
	var stored int
	testenv.DB(t, bed.DBURL).Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool WHERE username = $1 AND xml LIKE '%for when you are back%'`, d.User).Scan(&stored)
	if stored != 1 {
		t.Errorf("%d messages for dave in the spool, want 1", stored)
	}
}
