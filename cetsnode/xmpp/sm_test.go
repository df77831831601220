package xmpp_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

const withSM = withMAM + "  mod_stream_mgmt: {}\n"

// smTranscript plays stream management against a server: auth (open
// returns a connection after SASL, before the stream restarts), the
// features, SM requests before bind and before enabling, enabling with
// resumption, the errors, acknowledgements both ways, a message from a
// contact, then the connection cut and a message while it is pending,
// resumption on a new connection (the message resent), bad and unknown
// resumption ids, and an acknowledgement of more than was sent. It
// returns what the server sent at each step, normalised.
func smTranscript(t *testing.T, open func(xmpptest.Account) *xmpptest.Raw, a, b xmpptest.Account) []string {
	t.Helper()
	var out []string
	idRE := regexp.MustCompile(`(id|previd)='(g[^']{10,}|[A-Za-z0-9+/=]{20,})'`)
	var smID string
	norm := func(s string) string {
		if m := regexp.MustCompile(`<enabled [^>]*id='([^']+)'`).FindStringSubmatch(s); m != nil {
			smID = m[1]
		}
		s = idRE.ReplaceAllString(s, "$1='ID'")
		s = regexp.MustCompile(`stamp='[^']*'`).ReplaceAllString(s, "stamp='S'")
		s = regexp.MustCompile(`<stream:stream [^>]*>`).ReplaceAllString(s, "<stream:stream>")
		// The server's capabilities (mod_caps) in the features: a hash of
		// each server's own disco#info (TestServerCaps).
		s = regexp.MustCompile(`<c ver='[^']*' node='[^']*' hash='sha-1' xmlns='http://jabber.org/protocol/caps'/>`).ReplaceAllString(s, "")
		return s
	}
	step := func(r *xmpptest.Raw, send string) {
		t.Helper()
		if send != "" {
			if err := r.Send(send); err != nil {
				out = append(out, fmt.Sprintf("%d %s => cannot send: the connection is closed", len(out), send))
				return
			}
		}
		got := norm(r.Settle(400*time.Millisecond, 3*time.Second))
		out = append(out, fmt.Sprintf("%d %s => %s", len(out), norm(send), got))
	}
	bind := "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>"
	ra := open(a)
	step(ra, xmpptest.Header)
	step(ra, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	step(ra, bind)
	step(ra, "<r xmlns='urn:xmpp:sm:3'/>")
	step(ra, "<presence/>")
	step(ra, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	step(ra, "<enable xmlns='urn:xmpp:sm:3'/>")
	step(ra, "<r xmlns='urn:xmpp:sm:2'/>")
	step(ra, "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
	step(ra, "<r xmlns='urn:xmpp:sm:3'/>")
	step(ra, "<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
	step(ra, "<a xmlns='urn:xmpp:sm:3' h='1'/>")
	step(ra, "<a xmlns='urn:xmpp:sm:3' h='x'/>")
	rb := open(b)
	rb.Send(xmpptest.Header)
	rb.Settle(300*time.Millisecond, 3*time.Second)
	rb.Send(bind)
	rb.Settle(300*time.Millisecond, 3*time.Second)
	rb.Send("<message to='" + a.JID() + "/r' type='chat' id='m1'><body>while connected</body></message>")
	step(ra, "")
	step(ra, "<a xmlns='urn:xmpp:sm:3' h='3'/>")
	// The connection is cut: the session waits.
	ra.Close()
	time.Sleep(500 * time.Millisecond)
	rb.Send("<message to='" + a.JID() + "/r' type='chat' id='m2'><body>while cut off</body></message>")
	rb.Send("<message to='" + a.JID() + "' type='chat' id='m3'><body>to the bare JID while cut off</body></message>")
	time.Sleep(500 * time.Millisecond)
	if smID == "" {
		t.Fatalf("no resumption id was given:\n%s", strings.Join(out, "\n"))
	}
	bad := open(a)
	step(bad, xmpptest.Header)
	step(bad, "<resume xmlns='urn:xmpp:sm:3' previd='not-base64' h='0'/>")
	step(bad, "<resume xmlns='urn:xmpp:sm:3' previd='g2gCbQAAAAFybQAAAAgAAAAAAAAAAA==' h='0'/>")
	bad.Close()
	ra2 := open(a)
	step(ra2, xmpptest.Header)
	step(ra2, "<resume xmlns='urn:xmpp:sm:3' previd='"+smID+"' h='3'/>")
	step(ra2, "<r xmlns='urn:xmpp:sm:3'/>")
	step(ra2, "<a xmlns='urn:xmpp:sm:3' h='99'/>")
	rb.Close()
	return out
}

// Stream management as ejabberd 23.01's mod_stream_mgmt, on the wire:
// the same transcript from ejabberd on the exported database and from a
// Go node, but for the resumption id, stamps and stream ids.
func TestStreamManagementAsEjabberd(t *testing.T) {
	needBed(t)
	// No other test uses user46 or user50 (who saw the message of the
	// day).
	a := xmpptest.Account{User: "user46", Password: "pw-user1"}
	b := xmpptest.Account{User: "user50", Password: "pw-user1"}
	db := testenv.DB(t, bed.DBURL).Pool
	if _, err := db.Exec(context.Background(), `DELETE FROM spool WHERE username IN ($1, $2)`, a.User, b.User); err != nil {
		t.Fatal(err)
	}
	e := bed.StartSQLEjabberdWith(t, "  mod_stream_mgmt: {}\n  mod_ping: {}\n  mod_client_state: {}\n")
	ejAddr := fmt.Sprintf("127.0.0.1:%d", e.C2SPort)
	openEj := func(acc xmpptest.Account) *xmpptest.Raw {
		r, err := xmpptest.DialRaw(ejAddr, false, bed.CA)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		if err := r.Plain(acc.User, acc.Password); err != nil {
			t.Fatal(err)
		}
		return r
	}
	n := bed.StartNode(t, "sm"+testenv.RandomID(5), withSM+"  mod_ping: {}\n  mod_client_state: {}\n")
	openGo := func(acc xmpptest.Account) *xmpptest.Raw {
		r, err := xmpptest.DialRaw(n.StartTLS, false, bed.CA)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		if err := r.StartTLS(); err != nil {
			t.Fatal(err)
		}
		if err := r.Plain(acc.User, acc.Password); err != nil {
			t.Fatal(err)
		}
		return r
	}
	warm := func(open func(xmpptest.Account) *xmpptest.Raw) {
		for _, u := range []xmpptest.Account{a, b} {
			r := open(u)
			r.Send(xmpptest.Header)
			r.Settle(300*time.Millisecond, 3*time.Second)
			r.Send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>warm</resource></bind></iq><presence/>")
			if _, err := r.Expect("<presence", 10*time.Second); err != nil {
				t.Fatalf("warming up: %v", err)
			}
			r.Send("</stream:stream>")
			r.Close()
		}
	}
	warm(openEj)
	ej := smTranscript(t, openEj, a, b)
	if _, err := db.Exec(context.Background(), `DELETE FROM spool WHERE username IN ($1, $2)`, a.User, b.User); err != nil {
		t.Fatal(err)
	}
	warm(openGo)
	ours := smTranscript(t, openGo, a, b)
	sameAsEjabberd(t, ej, ours)
	if t.Failed() {
		t.Logf("ejabberd's transcript:\n%s", strings.Join(ej, "\n"))
	}
}

// smSession logs a raw client in on addr, binds resource r, sends its
// presence and enables stream management with resumption; it returns
// the connection and the resumption id.
func smSession(t *testing.T, addr string, a xmpptest.Account) (*xmpptest.Raw, string) {
	t.Helper()
	r, _, err := xmpptest.Session(addr, bed.CA, a, "r")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	r.Send("<presence/><enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	out, err := r.Expect("<enabled ", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<enabled [^>]*id='([^']+)'`).FindStringSubmatch(out + r.Drain(300*time.Millisecond))
	if m == nil {
		t.Fatalf("no resumption id in %s", out)
	}
	return r, m[1]
}

// authenticated connects a raw client over STARTTLS, authenticates it
// with PLAIN and restarts the stream: it returns the features offered
// (the client ends with the test).
func authenticated(t *testing.T, addr string, a xmpptest.Account) (*xmpptest.Raw, string) {
	t.Helper()
	r, err := xmpptest.DialRaw(addr, false, bed.CA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if err := r.StartTLS(); err != nil {
		t.Fatal(err)
	}
	if err := r.Plain(a.User, a.Password); err != nil {
		t.Fatal(err)
	}
	r.Send(xmpptest.Header)
	features, err := r.Expect("</stream:features>", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return r, features
}

// resumeOn connects a raw client, authenticates and resumes id with h.
func resumeOn(t *testing.T, addr string, a xmpptest.Account, id string, h int) (*xmpptest.Raw, string) {
	t.Helper()
	r, _ := authenticated(t, addr, a)
	r.Send(fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", id, h))
	return r, r.Settle(500*time.Millisecond, 5*time.Second)
}

func bodies(s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<body>([^<]*)</body>`).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// Stream management's fault cases on two Go nodes: the TCP connection
// cut mid-stream (the client resumes on the same node and gets exactly
// what it had not acknowledged); the client resuming on the other node
// (<failed/> with the count of what the old session handled; the old
// session ends and what it had not had acknowledged is stored offline,
// delivered once when the client comes back: nothing lost, nothing
// twice); the node killed (its session is gone: resuming fails, and what
// the contact sends meanwhile is stored offline and counted).
func TestStreamManagementFaults(t *testing.T) {
	needBed(t)
	cluster := "sf" + testenv.RandomID(5)
	cfg := withRoster + "  mod_stream_mgmt: {}\n"
	n1 := bed.StartNodeProcess(t, cluster, cfg)
	n2 := bed.StartNode(t, cluster, cfg)
	a := xmpptest.Account{User: "user47", Password: "pw-user1"}
	b := xmpptest.Account{User: "user48", Password: "pw-user1"}
	db := testenv.DB(t, bed.DBURL).Pool
	ctx := context.Background()
	if _, err := db.Exec(ctx, `DELETE FROM spool WHERE username IN ($1, $2)`, a.User, b.User); err != nil {
		t.Fatal(err)
	}
	bob, _, err := xmpptest.Session(n2.StartTLS, bed.CA, b, "b")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	send := func(body string) {
		t.Helper()
		if err := bob.Send("<message to='" + a.JID() + "/r' type='chat'><body>" + body + "</body></message>"); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "both nodes in the cluster", 60*time.Second, func() (bool, string) {
		return len(n2.Node.Sessions.T.Nodes()) == 1, ""
	}, nil)

	// 1. Cut mid-stream, resumed on the same node.
	alice, id := smSession(t, n1.StartTLS, a)
	for _, m := range []string{"one", "two", "three"} {
		send(m)
	}
	got := alice.Settle(500*time.Millisecond, 5*time.Second)
	if b := bodies(got); strings.Join(b, ",") != "one,two,three" {
		t.Fatalf("before the cut: %q", got)
	}
	// The presence was answered before stream management was on: the
	// messages are 1, 2 and 3.
	alice.Send("<a xmlns='urn:xmpp:sm:3' h='2'/>")
	time.Sleep(200 * time.Millisecond)
	alice.Close()
	time.Sleep(300 * time.Millisecond)
	send("four")
	send("five")
	time.Sleep(300 * time.Millisecond)
	alice, got = resumeOn(t, n1.StartTLS, a, id, 2)
	if !strings.Contains(got, "<resumed previd='"+id+"' h='0' ") {
		t.Fatalf("resuming on the same node: %s", got)
	}
	if b := bodies(got); strings.Join(b, ",") != "three,four,five" {
		t.Errorf("resent after resuming: %q, want three,four,five", b)
	}
	if strings.Count(got, ">Resent</delay>") != 3 {
		t.Errorf("the resent messages do not say so: %s", got)
	}
	send("six")
	if _, err := alice.Expect("<body>six</body>", 10*time.Second); err != nil {
		t.Fatalf("after resuming: %v", err)
	}
	// A stanza of the client's (handled: 1), its answer (7); everything
	// acknowledged.
	alice.Send("<iq type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>")
	if _, err := alice.Expect("id='v1'", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	alice.Send("<a xmlns='urn:xmpp:sm:3' h='7'/>")
	time.Sleep(200 * time.Millisecond)

	// 2. Resumed on the other node: failed, with what the session
	// handled (1); the three unacknowledged messages go offline and come
	// once.
	send("seven")
	send("eight")
	if _, err := alice.Expect("<body>eight</body>", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	alice.Close()
	time.Sleep(300 * time.Millisecond)
	send("nine")
	time.Sleep(300 * time.Millisecond)
	r2, got := resumeOn(t, n2.StartTLS, a, id, 7)
	if !strings.Contains(got, "<failed h='1' xmlns='urn:xmpp:sm:3'><item-not-found ") {
		t.Fatalf("resuming on the other node: %s", got)
	}
	testenv.WaitFor(t, "the old session ended", 10*time.Second, func() (bool, string) {
		return len(n2.Node.Sessions.Full(xmpptest.Host, a.User, "r")) == 0, ""
	}, nil)
	r2.Send("<iq type='set' id='bind2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq><presence/>")
	got = r2.Settle(700*time.Millisecond, 10*time.Second)
	if b := bodies(got); strings.Join(b, ",") != "seven,eight,nine" {
		t.Errorf("after failing over to the other node: %q, want seven,eight,nine once each\n%s", b, got)
	}
	r2.Close()
	time.Sleep(300 * time.Millisecond)

	// 3. The node killed: its session is gone; what is sent meanwhile is
	// stored offline.
	alice, id = smSession(t, n1.StartTLS, a)
	n1.Kill()
	testenv.WaitFor(t, "the dead node's session gone", 30*time.Second, func() (bool, string) {
		return len(n2.Node.Sessions.Full(xmpptest.Host, a.User, "r")) == 0, ""
	}, nil)
	for _, m := range []string{"ten", "eleven", "twelve"} {
		send(m)
	}
	testenv.WaitFor(t, "the messages stored offline", 10*time.Second, func() (bool, string) {
		var n int
		db.QueryRow(ctx, `SELECT count(*) FROM spool WHERE username = $1`, a.User).Scan(&n)
		return n == 3, fmt.Sprintf("%d stored", n)
	}, nil)
	r3, got := resumeOn(t, n2.StartTLS, a, id, 1)
	if !strings.Contains(got, "<failed xmlns='urn:xmpp:sm:3'><item-not-found ") || !strings.Contains(got, "Previous session not found") {
		t.Fatalf("resuming a session of the dead node: %s", got)
	}
	r3.Send("<iq type='set' id='bind3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq><presence/>")
	got = r3.Settle(700*time.Millisecond, 10*time.Second)
	if b := bodies(got); strings.Join(b, ",") != "ten,eleven,twelve" {
		t.Errorf("after the node died: %q, want ten,eleven,twelve", b)
	}
}

// Real clients (slixmpp's stream management and client state plugins)
// on a Go node: stream management is enabled with resumption, the
// server acknowledges what the client sends, every message comes; while
// the client says it is inactive a contact's presence waits, and comes
// when it says it is active again.
func TestSMAndCSIWithRealClients(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "sc"+testenv.RandomID(5), withRoster+"  mod_stream_mgmt: {}\n  mod_client_state: {}\n")
	a := xmpptest.Account{User: "user39", Password: "pw-user1"}
	b := xmpptest.Account{User: "user44", Password: "pw-user1"}
	alice := xmpptest.StartChat(t, xmpptest.Login{Account: a, Addr: n.StartTLS, CA: bed.CA})
	alice.Expect("^SM enabled True$", 10*time.Second)
	bob := xmpptest.StartChat(t, xmpptest.Login{Account: b, Addr: n.StartTLS, CA: bed.CA})
	alice.Do("presence 0")
	for i := 0; i < 6; i++ {
		alice.Do("msg %s chat note %d", b.JID(), i)
	}
	alice.Expect("^ACKED message$", 10*time.Second)
	for i := 0; i < 20; i++ {
		bob.Do("msg %s chat line %d", alice.JID, i)
	}
	for i := 0; i < 20; i++ {
		alice.Expect(fmt.Sprintf("^MSG %s chat line %d$", q(bob.JID), i), 10*time.Second)
	}
	alice.Do("csi inactive")
	time.Sleep(300 * time.Millisecond)
	bob.Do("directed %s", alice.JID)
	alice.Quiet("^PRES "+q(bob.JID), time.Second)
	alice.Do("csi active")
	alice.Expect("^PRES "+q(bob.JID)+" available", 10*time.Second)
}

// A client that was connected to the legacy ejabberd when the cutover
// came reconnects to a Go node and asks to resume its old session with
// the id ejabberd gave it: it gets <failed/> (the session is not in the
// Go cluster), binds a new session on the same stream and is served.
func TestResumeIDFromBeforeTheCutover(t *testing.T) {
	needBed(t)
	a := xmpptest.Account{User: "user46", Password: "pw-user1"}
	e := bed.StartSQLEjabberdWith(t, "  mod_stream_mgmt: {}\n")
	legacy, err := xmpptest.DialRaw(fmt.Sprintf("127.0.0.1:%d", e.C2SPort), false, bed.CA)
	if err != nil {
		t.Fatal(err)
	}
	if err := legacy.Plain(a.User, a.Password); err != nil {
		t.Fatal(err)
	}
	if _, err := legacy.Bind("phone"); err != nil {
		t.Fatal(err)
	}
	legacy.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	got, err := legacy.Expect("<enabled ", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<enabled [^>]*id='([^']+)'`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("ejabberd gave no resumption id: %s", got)
	}
	legacy.Close() // the cutover: the legacy node's connections end
	n := bed.StartNode(t, "rc"+testenv.RandomID(5), withSM+"  mod_ping: {}\n")
	r, _ := authenticated(t, n.StartTLS, a)
	r.Send("<resume xmlns='urn:xmpp:sm:3' previd='" + m[1] + "' h='2'/>")
	failed, err := r.Expect("</failed>", 5*time.Second)
	if err != nil || !strings.Contains(failed, "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>") {
		t.Fatalf("resuming ejabberd's session on a Go node: %s %v", failed, err)
	}
	r.Send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>")
	if got, err := r.Expect("</iq>", 5*time.Second); err != nil || !strings.Contains(got, "type='result'") {
		t.Fatalf("binding after the failed resumption: %s %v", got, err)
	}
	r.Send("<iq type='get' id='p' to='" + xmpptest.Host + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got, err := r.Expect("id='p'", 5*time.Second); err != nil || !strings.Contains(got, "type='result'") {
		t.Fatalf("a ping after the failed resumption: %s %v", got, err)
	}
}
