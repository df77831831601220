package xmpp_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

var passwordUser atomic.Int64

// Password change (XEP-0077) as ejabberd's mod_register answers it: the
// new password is stored as ejabberd stores SCRAM-SHA-1 (a 16-byte salt,
// 4096 iterations), real clients log in with it and no longer with the
// old one; ejabberd's errors for another user's name, a password
// resourceprep refuses and one below password_strength.
func TestPasswordChange(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "pw"+testenv.RandomID(5), "modules:\n  mod_fail2ban: {}\n  mod_register:\n    password_strength: 20\n")
	k := passwordUser.Add(1)
	if k > 8 {
		t.Fatal("every bulk user this test may change has been changed in this test bed: run it at most 8 times per test process")
	}
	acc := xmpptest.Account{User: fmt.Sprintf("user%d", 51+k), Password: "pw-user1"}
	r, _, err := xmpptest.Session(n.StartTLS, bed.CA, acc, "r")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	me := acc.JID() + "/r"
	for _, c := range []struct{ send, want string }{
		{"<iq type='get' id='g1' to='" + xmpptest.Host + "'><query xmlns='jabber:iq:register'/></iq>",
			"<iq xml:lang='en' to='" + me + "' from='" + xmpptest.Host + "' type='result' id='g1'><query xmlns='jabber:iq:register'><username>" + acc.User + "</username><registered/><password/><instructions>Choose a username and password to register with this server</instructions></query></iq>"},
		{"<iq type='set' id='e1' to='" + xmpptest.Host + "'><query xmlns='jabber:iq:register'><username>user1</username><password>a-long-enough-one</password></query></iq>",
			"<error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Access denied by service policy</text></error>"},
		{"<iq type='set' id='e2'><query xmlns='jabber:iq:register'><username>" + acc.User + "</username><password>abc</password></query></iq>",
			"<error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>The password is too weak</text></error>"},
		{"<iq type='set' id='e3'><query xmlns='jabber:iq:register'><username>" + acc.User + "</username><password>bad\ue000password-private-use</password></query></iq>",
			"<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>The password contains unacceptable characters</text></error>"},
		{"<iq type='set' id='p1' to='" + xmpptest.Host + "'><query xmlns='jabber:iq:register'><username>" + acc.User + "</username><password>new-secret-✓</password></query></iq>",
			"<iq xml:lang='en' to='" + me + "' from='" + xmpptest.Host + "' type='result' id='p1'/>"},
	} {
		r.Send(c.send)
		if out, err := r.Expect(c.want, 10*time.Second); err != nil || !strings.Contains(out, c.want) {
			t.Errorf("%s\ngot  %q %v\nwant %q", c.send, out, err, c.want)
		}
	}
	var password, serverKey, salt string
	var iterations int
	if err := testenv.DB(t, bed.DBURL).Pool.QueryRow(context.Background(), `SELECT password, serverkey, salt, iterationcount FROM users WHERE username = $1`, acc.User).
		Scan(&password, &serverKey, &salt, &iterations); err != nil {
		t.Fatal(err)
	}
	saltBytes, _ := base64.StdEncoding.DecodeString(salt)
	storedKey, _ := base64.StdEncoding.DecodeString(password)
	if iterations != 4096 || len(saltBytes) != 16 || len(storedKey) != 20 || strings.Contains(password, ":") {
		t.Errorf("stored %q %q %q %d", password, serverKey, salt, iterations)
	}
	dir := t.TempDir()
	newAcc := xmpptest.Account{User: acc.User, Password: "new-secret-✓"}
	res, err := xmpptest.Slixmpp(dir, xmpptest.Login{Account: newAcc, Addr: n.StartTLS, CA: bed.CA, Mechanism: "SCRAM-SHA-1"})
	check(t, "slixmpp SCRAM-SHA-1 with the new password", res, err, true)
	res, err = xmpptest.Slixmpp(dir, xmpptest.Login{Account: newAcc, Addr: n.DirectTLS, DirectTLS: true, CA: bed.CA, Mechanism: "PLAIN"})
	check(t, "slixmpp PLAIN with the new password", res, err, true)
	res, err = xmpptest.Slixmpp(dir, xmpptest.Login{Account: acc, Addr: n.StartTLS, CA: bed.CA, Mechanism: "PLAIN"})
	check(t, "slixmpp with the old password", res, err, false)
}
