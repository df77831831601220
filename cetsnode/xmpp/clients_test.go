package xmpp_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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
	scram, plain, unicode := bed.Account(t, "scram-sha-1"), bed.Account(t, "plain"), bed.Account(t, "unicode")
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
	a := bed.Account(t, "scram-sha-1")
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
	sha256, sha1 := bed.Account(t, "scram-sha-256"), bed.Account(t, "scram-sha-1")
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
		{"", "SCRAM-SHA-1", bed.Account(t, "scram-sha-1")},
		{"auth_scram_hash: sha256\n", "SCRAM-SHA-256", bed.Account(t, "scram-sha-256")},
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

// The two command-line clients, libstrophe's xmppc (SCRAM-SHA-1, STARTTLS,
// in a network namespace: it only dials its domain's port 5222) and
// go-sendxmpp (PLAIN, direct TLS), on two Go nodes: xmppc fetches the
// roster, reads its migrated offline messages, sees go-sendxmpp's user
// come online; a message each way; then each is offline in turn and
// reads at its next login what the other wrote meanwhile.
func TestCommandLineClientsConversation(t *testing.T) {
	needBed(t)
	netbed := testenv.NewNetBed(t, 2)
	cluster := "cl" + testenv.RandomID(5)
	n1 := bed.StartNodeOn(t, netbed.HostIP, cluster, withRoster)
	n2 := bed.StartNodeOn(t, netbed.HostIP, cluster, withRoster)
	xmpptest.WaitClustered(t, 2, n1, n2)
	users := bed.Kind("scram-sha-1")
	// user16 has user17 in its roster (both); ejabberd stored offline
	// messages for user17 from user18.
	a, b := users[16], users[15]
	if a.User != "user17" || b.User != "user16" {
		t.Fatalf("the bed's users changed: %s %s", a.User, b.User)
	}
	dir := t.TempDir()
	alice := xmpptest.Login{Account: a, CA: bed.CA}
	bob := xmpptest.Login{Account: b, Addr: n2.DirectTLS, DirectTLS: true, CA: bed.CA}
	out, err := xmpptest.XMPPC(dir, netbed.NS[1], n1.StartTLS, alice, "-m", "roster", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Nick user18 (user18@localhost) sub=both") || strings.Count(out, "sub=both") != 5 {
		t.Errorf("xmppc's roster list of %s:\n%s", a.JID(), out)
	}
	monitor := func() *xmpptest.Background {
		t.Helper()
		m, err := xmpptest.StartXMPPC(dir, netbed.NS[0], n1.StartTLS, alice, "-m", "monitor", "stanza")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Stop)
		return m
	}
	wait := func(bg *xmpptest.Background, who, want string) {
		t.Helper()
		if err := bg.Wait(want, 20*time.Second); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
	}
	send := func(l xmpptest.Login, to, text string) {
		t.Helper()
		if l.Addr == "" {
			out, err := xmpptest.XMPPC(dir, netbed.NS[1], n1.StartTLS, l, "-m", "message", "chat", to, text)
			if err != nil {
				t.Fatalf("xmppc: %v\n%s", err, out)
			}
			return
		}
		r, err := xmpptest.GoSendXMPP(l, to, text)
		check(t, "go-sendxmpp sends", r, err, true)
	}
	listen := func() *xmpptest.Background {
		t.Helper()
		l, err := xmpptest.GoSendXMPPListen(bob)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Stop)
		return l
	}

	m := monitor()
	// The messages ejabberd stored for user17, with ejabberd's stamps.
	wait(m, "xmppc", `from="user18@localhost"><delay xmlns="urn:xmpp:delay" stamp="[0-9-]+T[0-9:.]+Z" from="localhost">Offline Storage</delay><body>Hello user17 1</body>`)
	l := listen()
	wait(m, "xmppc (go-sendxmpp's presence)", `<presence [^>]*from="`+b.JID()+`/go-sendxmpp`)
	send(bob, a.JID(), "hello from go-sendxmpp")
	wait(m, "xmppc", "<body>hello from go-sendxmpp</body>")
	send(alice, b.JID(), "hello from xmppc")
	wait(l, "go-sendxmpp", a.JID()+": hello from xmppc")

	// Offline each way.
	m.Stop()
	testenv.WaitFor(t, "xmppc's sessions gone", 10*time.Second, func() (bool, string) {
		return len(n2.Node.Sessions.Bare(xmpptest.Host, a.User)) == 0, ""
	}, nil)
	send(bob, a.JID(), "while you were away, xmppc")
	m = monitor()
	wait(m, "xmppc (offline)", `<delay xmlns="urn:xmpp:delay" stamp="[^"]+" from="localhost">Offline Storage</delay><body>while you were away, xmppc</body>`)
	l.Stop()
	testenv.WaitFor(t, "go-sendxmpp's session gone", 10*time.Second, func() (bool, string) {
		return len(n1.Node.Sessions.Bare(xmpptest.Host, b.User)) == 0, ""
	}, nil)
	send(alice, b.JID(), "while you were away, go-sendxmpp")
	l = listen()
	wait(l, "go-sendxmpp (offline)", a.JID()+": while you were away, go-sendxmpp")
	if !strings.Contains(n1.Log.String(), "jid="+a.JID()+" mechanism=SCRAM-SHA-1") || !strings.Contains(n2.Log.String(), "jid="+b.JID()+" mechanism=PLAIN") {
		t.Errorf("the logins were not SCRAM-SHA-1 (xmppc) and PLAIN (go-sendxmpp)")
	}
}
