package xmpp_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// Server pings as ejabberd 23.01's mod_ping sends them (the same stanza
// from ejabberd on the exported database and from a Go node); a client
// that answers stays connected; one that does not is disconnected after
// the ack timeout (timeout_action: kill) — with stream management its
// session waits, and the client resumes it and gets what came
// meanwhile.
func TestServerPings(t *testing.T) {
	needBed(t)
	a := xmpptest.Account{User: "user37", Password: "pw-user1"}
	b := xmpptest.Account{User: "user38", Password: "pw-user1"}
	pingCfg := "  mod_ping:\n    send_pings: true\n    ping_interval: 1\n    ping_ack_timeout: 1\n    timeout_action: kill\n"
	idRE := regexp.MustCompile(`id='[^']*'`)
	// The ping itself, from both servers.
	e := bed.StartSQLEjabberdWith(t, pingCfg)
	ej, err := xmpptest.DialRaw(fmt.Sprintf("127.0.0.1:%d", e.C2SPort), false, bed.CA)
	if err != nil {
		t.Fatal(err)
	}
	defer ej.Close()
	if err := ej.Plain(a.User, a.Password); err != nil {
		t.Fatal(err)
	}
	if _, err := ej.Bind("r"); err != nil {
		t.Fatal(err)
	}
	ejPing, err := ej.Expect("</iq>", 10*time.Second)
	if err != nil {
		t.Fatalf("ejabberd sent no ping: %v", err)
	}
	ej.Close()
	n := bed.StartNode(t, "pg"+testenv.RandomID(5), withRoster+"  mod_stream_mgmt: {}\n"+pingCfg)
	r, _, err := xmpptest.Session(n.StartTLS, bed.CA, a, "r")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ourPing, err := r.Expect("</iq>", 10*time.Second)
	if err != nil {
		t.Fatalf("no ping: %v", err)
	}
	if got, want := idRE.ReplaceAllString(ourPing, "id='X'"), idRE.ReplaceAllString(ejPing, "id='X'"); got != want {
		t.Errorf("ping: ejabberd %s\nours %s", want, got)
	}
	// Answering keeps the connection: five more pings, each answered.
	answer := func(ping string) {
		id := regexp.MustCompile(`id='([^']*)'`).FindStringSubmatch(ping)[1]
		r.Send("<iq type='result' to='localhost' id='" + id + "'/>")
	}
	answer(ourPing)
	for i := 0; i < 3; i++ {
		p, err := r.Expect("<ping xmlns='urn:xmpp:ping'/></iq>", 5*time.Second)
		if err != nil {
			t.Fatalf("ping %d: %v", i+2, err)
		}
		answer(p)
	}
	// Not answering: with stream management, the connection is closed
	// and the session waits.
	r.Send("<presence/><enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	out, err := r.Expect("<enabled ", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	out += r.Drain(200 * time.Millisecond)
	id := regexp.MustCompile(`<enabled [^>]*id='([^']+)'`).FindStringSubmatch(out)[1]
	start := time.Now()
	if _, err := r.Closed(10 * time.Second); err != nil {
		t.Fatalf("a client that does not answer pings is not disconnected: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("disconnected after %s; the ping interval and timeout are 1 s each", d)
	}
	if got := len(n.Node.Sessions.Full(xmpptest.Host, a.User, "r")); got != 1 {
		t.Fatalf("the session does not wait for resumption (%d sessions)", got)
	}
	bob, _, err := xmpptest.Session(n.StartTLS, bed.CA, b, "b")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	bob.Send("<message to='" + a.JID() + "/r' type='chat'><body>are you there?</body></message>")
	time.Sleep(300 * time.Millisecond)
	_, got := resumeOn(t, n.StartTLS, a, id, 0)
	if !strings.Contains(got, "<resumed ") || !strings.Contains(got, "<body>are you there?</body>") {
		t.Errorf("resuming after a ping timeout: %s", got)
	}
}
