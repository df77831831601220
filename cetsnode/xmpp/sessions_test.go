package xmpp_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// mod_fail2ban: the third failed login from an address (configured
// limit) ends the stream with ejabberd's words, and the address's next
// streams are refused until the ban ends; a correct password does not
// get through meanwhile.
func TestFail2ban(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "f2b"+strings.ToLower(t.Name()[:4]), "modules:\n  mod_fail2ban:\n    c2s_max_auth_failures: 3\n    c2s_auth_ban_lifetime: 2\n")
	a := bed.Account(t, "scram-sha-1")
	ban := regexp.MustCompile(`<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Too many \(3\) failed authentications from this IP address \(127\.0\.0\.1\)\. The address will be unblocked at \d\d:\d\d:\d\d \d\d\.\d\d\.\d{4} UTC</text></stream:error>`)
	r, err := xmpptest.DialRaw(n.DirectTLS, true, bed.CA)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Plain(a.User, "wrong"); err == nil || !strings.Contains(err.Error(), "not-authorized") {
		t.Fatalf("failure 1: %v", err)
	}
	r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00"+a.User+"\x00wrong") + "</auth>")
	if out, err := r.Expect("</failure>", 5*time.Second); err != nil || !strings.Contains(out, "not-authorized") {
		t.Fatalf("failure 2: %q %v", out, err)
	}
	r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00"+a.User+"\x00wrong") + "</auth>")
	out, err := r.Closed(5 * time.Second)
	if err != nil || !ban.MatchString(out) {
		t.Fatalf("third failure: %q %v", out, err)
	}
	r2, err := xmpptest.DialRaw(n.DirectTLS, true, bed.CA)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	r2.Send(xmpptest.Header)
	if out, err := r2.Closed(5 * time.Second); err != nil || !ban.MatchString(out) {
		t.Fatalf("a new stream while banned: %q %v", out, err)
	}
	if !strings.Contains(n.Log.String(), "too many failed authentications") {
		t.Error("the ban was not logged")
	}
	time.Sleep(2100 * time.Millisecond)
	r3, err := xmpptest.DialRaw(n.DirectTLS, true, bed.CA)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if err := r3.Plain(a.User, a.Password); err != nil {
		t.Fatalf("after the ban: %v", err)
	}
}

// resource_conflict and max_user_sessions as ejabberd applies them.
func TestResourceConflict(t *testing.T) {
	needBed(t)
	a := bed.Account(t, "scram-sha-1")
	bind := func(n *xmpptest.Node, resource string) (*xmpptest.Raw, string) {
		t.Helper()
		r, out, err := xmpptest.Session(n.StartTLS, bed.CA, a, resource)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r, out
	}
	conflict := "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error>"

	t.Run("acceptnew replaces the old session", func(t *testing.T) {
		n := bed.StartNode(t, "acn"+strings.ToLower(t.Name()[:3]), "")
		old, _ := bind(n, "phone")
		_, out := bind(n, "phone")
		if !strings.Contains(out, "<jid>"+a.JID()+"/phone</jid>") {
			t.Fatalf("new session: %s", out)
		}
		if got, err := old.Closed(5 * time.Second); err != nil || !strings.Contains(got, conflict) {
			t.Fatalf("old session: %q %v", got, err)
		}
		waitSessions(t, n, 1)
	})
	t.Run("closenew refuses the new one", func(t *testing.T) {
		n := bed.StartNode(t, "cln"+strings.ToLower(t.Name()[:3]), "resource_conflict: closenew\n")
		bind(n, "phone")
		_, out := bind(n, "phone")
		if !strings.Contains(out, "type='error'") || !strings.Contains(out, "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>") {
			t.Fatalf("second bind: %s", out)
		}
	})
	t.Run("setresource picks another resource", func(t *testing.T) {
		n := bed.StartNode(t, "srs"+strings.ToLower(t.Name()[:3]), "resource_conflict: setresource\n")
		bind(n, "phone")
		_, out := bind(n, "phone")
		if strings.Contains(out, "/phone</jid>") || !strings.Contains(out, "<jid>"+a.JID()+"/") {
			t.Fatalf("second bind: %s", out)
		}
		waitSessions(t, n, 2)
	})
	t.Run("max_user_sessions closes the oldest", func(t *testing.T) {
		n := bed.StartNode(t, "mus"+strings.ToLower(t.Name()[:3]), "shaper_rules:\n  max_user_sessions: 2\n")
		first, _ := bind(n, "r1")
		bind(n, "r2")
		bind(n, "r3")
		if got, err := first.Closed(5 * time.Second); err != nil || !strings.Contains(got, conflict) {
			t.Fatalf("oldest session: %q %v", got, err)
		}
		waitSessions(t, n, 2)
	})
	t.Run("a session ends with its connection", func(t *testing.T) {
		n := bed.StartNode(t, "end"+strings.ToLower(t.Name()[:3]), "")
		r, _ := bind(n, "laptop")
		waitSessions(t, n, 1)
		r.Send("</stream:stream>")
		if _, err := r.Closed(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		waitSessions(t, n, 0)
	})
}

func waitSessions(t *testing.T, n *xmpptest.Node, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := n.Node.Sessions.Count()
		if got == want && n.XMPP.SessionsHere() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions in the table, %d here; want %d", got, n.XMPP.SessionsHere(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
