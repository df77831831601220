package xmpp_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// bed is ejabberd's accounts exported into PostgreSQL, shared by the
// package's tests (TestMain).
var bed *xmpptest.Bed
var bedWhy string

func TestMain(m *testing.M) {
	xmpptest.MaybeForward()
	code := func() int {
		if bedWhy = xmpptest.Unavailable(); bedWhy == "" {
			var err error
			if bed, err = xmpptest.StartBed(xmpptest.BedOptions{}); err != nil {
				fmt.Fprintln(os.Stderr, "xmpp test bed:", err)
				return 1
			}
			defer bed.Close()
		}
		return m.Run()
	}()
	os.Exit(code)
}

func needBed(t *testing.T) {
	t.Helper()
	if bed == nil {
		t.Skip(bedWhy)
	}
}

func check(t *testing.T, name string, r xmpptest.Result, err error, wantOK bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if r.OK != wantOK {
		t.Errorf("%s: %s (want ok=%v)\n%s", name, r.Line, wantOK, r.Output)
	}
}

// Real clients log in with the passwords ejabberd was given, over
// STARTTLS and direct TLS, with every mechanism they use, against every
// stored kind of credential; wrong passwords and unknown users fail.
func TestRealClientsLogIn(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "login"+strings.ToLower(t.Name()[:4]), "")
	dir := t.TempDir()
	scram, plain, unicode := bed.Account("scram-sha-1"), bed.Account("plain"), bed.Account("unicode")
	login := func(a xmpptest.Account, direct bool, mech string) xmpptest.Login {
		addr := n.StartTLS
		if direct {
			addr = n.DirectTLS
		}
		return xmpptest.Login{Account: a, Addr: addr, DirectTLS: direct, Mechanism: mech, CA: bed.CA}
	}
	wrong := func(a xmpptest.Account) xmpptest.Account { a.Password += "x"; return a }
	nobody := xmpptest.Account{User: "nobody", Password: "pw-nobody"}

	for _, c := range []struct {
		name  string
		login xmpptest.Login
		ok    bool
	}{
		{"STARTTLS, its own choice", login(scram, false, ""), true},
		{"STARTTLS SCRAM-SHA-1", login(scram, false, "SCRAM-SHA-1"), true},
		{"direct TLS SCRAM-SHA-1", login(scram, true, "SCRAM-SHA-1"), true},
		{"PLAIN against SCRAM", login(scram, false, "PLAIN"), true},
		{"PLAIN against a password in clear", login(plain, true, "PLAIN"), true},
		{"SCRAM-SHA-1 against a password in clear", login(plain, false, "SCRAM-SHA-1"), true},
		{"a non-ASCII password", login(unicode, false, "SCRAM-SHA-1"), true},
		{"a non-ASCII password with PLAIN", login(unicode, true, "PLAIN"), true},
		{"wrong password SCRAM", login(wrong(scram), false, "SCRAM-SHA-1"), false},
		{"wrong password PLAIN", login(wrong(plain), false, "PLAIN"), false},
		{"unknown user", login(nobody, false, "SCRAM-SHA-1"), false},
	} {
		r, err := xmpptest.Slixmpp(dir, c.login)
		check(t, "slixmpp "+c.name, r, err, c.ok)
	}
	for _, c := range []struct {
		name  string
		login xmpptest.Login
		ok    bool
	}{
		{"STARTTLS", login(scram, false, ""), true},
		{"direct TLS", login(scram, true, ""), true},
		{"a password in clear", login(plain, false, ""), true},
		{"wrong password", login(wrong(scram), false, ""), false},
	} {
		r, err := xmpptest.XMPPJS(dir, c.login)
		check(t, "@xmpp/client "+c.name, r, err, c.ok)
	}
	for _, c := range []struct {
		name  string
		login xmpptest.Login
		ok    bool
	}{
		{"STARTTLS", login(scram, false, ""), true},
		{"direct TLS", login(plain, true, ""), true},
		{"wrong password", login(wrong(scram), true, ""), false},
	} {
		r, err := xmpptest.GoSendXMPP(c.login, scram.JID(), "hello")
		check(t, "go-sendxmpp "+c.name, r, err, c.ok)
	}
}

// SCRAM -PLUS binds the session to the TLS channel: go-xmpp picks
// tls-exporter from our XEP-0440 list, over STARTTLS and direct TLS.
func TestChannelBindingWithGoXMPP(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "plus"+strings.ToLower(t.Name()[:4]), "")
	a := bed.Account("scram-sha-1")
	for _, direct := range []bool{false, true} {
		addr := n.StartTLS
		if direct {
			addr = n.DirectTLS
		}
		// (go-xmpp itself refuses SCRAM without -PLUS once we list
		// channel-binding types: its downgrade protection.)
		r := xmpptest.GoXMPP(xmpptest.Login{Account: a, Addr: addr, DirectTLS: direct, Mechanism: "SCRAM-SHA-1-PLUS", CA: bed.CA})
		check(t, fmt.Sprintf("go-xmpp SCRAM-SHA-1-PLUS direct=%v", direct), r, nil, true)
		wrong := a
		wrong.Password += "x"
		r = xmpptest.GoXMPP(xmpptest.Login{Account: wrong, Addr: addr, DirectTLS: direct, Mechanism: "SCRAM-SHA-1-PLUS", CA: bed.CA})
		check(t, fmt.Sprintf("go-xmpp SCRAM-SHA-1-PLUS wrong password direct=%v", direct), r, nil, false)
	}
	if !strings.Contains(n.Log.String(), "mechanism=SCRAM-SHA-1-PLUS") {
		t.Errorf("no -PLUS login in the log:\n%s", n.Log.String())
	}
}

// With auth_scram_hash: sha256 the service offers SCRAM-SHA-256 (and not
// SCRAM-SHA-1), as ejabberd does: users stored with SHA-256 log in with
// it; users stored with SHA-1 only with PLAIN.
func TestSCRAMSHA256(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "s256"+strings.ToLower(t.Name()[:4]), "auth_scram_hash: sha256\n")
	dir := t.TempDir()
	sha256, sha1 := bed.Account("scram-sha-256"), bed.Account("scram-sha-1")
	for _, c := range []struct {
		name string
		a    xmpptest.Account
		mech string
		ok   bool
	}{
		{"SCRAM-SHA-256", sha256, "SCRAM-SHA-256", true},
		{"its own choice", sha256, "", true},
		{"PLAIN against SHA-256", sha256, "PLAIN", true},
		{"a SHA-1 user with SCRAM-SHA-256", sha1, "SCRAM-SHA-256", false},
		{"a SHA-1 user with PLAIN", sha1, "PLAIN", true},
		{"SCRAM-SHA-1 is not offered", sha1, "SCRAM-SHA-1", false},
	} {
		r, err := xmpptest.Slixmpp(dir, xmpptest.Login{Account: c.a, Addr: n.StartTLS, Mechanism: c.mech, CA: bed.CA})
		check(t, "slixmpp "+c.name, r, err, c.ok)
	}
}

// libstrophe (xmppc) only connects to its domain's port 5222: it runs in
// a network namespace of its own, where localhost:5222 leads to our
// listener. It logs in with the strongest SCRAM offered: SCRAM-SHA-1, or
// SCRAM-SHA-256 where that is the configured hash.
func TestXMPPC(t *testing.T) {
	needBed(t)
	netbed := testenv.NewNetBed(t, 1)
	dir := t.TempDir()
	for _, c := range []struct {
		extra, mech string
		a           xmpptest.Account
	}{
		{"", "SCRAM-SHA-1", bed.Account("scram-sha-1")},
		{"auth_scram_hash: sha256\n", "SCRAM-SHA-256", bed.Account("scram-sha-256")},
	} {
		n := bed.StartNodeOn(t, netbed.HostIP, "xc"+strings.ToLower(c.mech[len(c.mech)-3:]), c.extra)
		out, err := xmpptest.XMPPC(dir, netbed.NS[0], n.StartTLS, xmpptest.Login{Account: c.a, CA: bed.CA}, "-m", "roster", "list")
		if err != nil {
			t.Fatalf("xmppc: %v\n%s", err, out)
		}
		t.Logf("xmppc said: %s", out)
		want := "jid=" + c.a.JID() + " mechanism=" + c.mech
		if !strings.Contains(n.Log.String(), want) {
			t.Errorf("xmppc did not log in with %s:\n%s\nnode log:\n%s", c.mech, out, n.Log.String())
		}
		wrong := c.a
		wrong.Password += "x"
		xmpptest.XMPPC(dir, netbed.NS[0], n.StartTLS, xmpptest.Login{Account: wrong, CA: bed.CA}, "-m", "roster", "list")
		if !strings.Contains(n.Log.String(), "authentication failed") {
			t.Errorf("xmppc with a wrong password was not refused:\n%s", n.Log.String())
		}
	}
}
