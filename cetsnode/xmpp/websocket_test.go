package xmpp_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// XMPP over WebSocket (RFC 7395) on the ejabberd_http listener's /ws
// path, with the stanza npm client: it logs in with the password
// ejabberd was given, fetches the migrated roster, exchanges a message
// each way with a slixmpp client on the other node, pages through its
// archive and reads another user's OMEMO device list — the same session
// and routing as over TCP. The listener's other handler (/bosh) answers
// 404, and a plain request to /ws is refused.
func TestWebSocketWithStanza(t *testing.T) {
	needBed(t)
	cluster := "ws" + testenv.RandomID(5)
	cfg := withRoster + "  mod_mam:\n    default: always\n  mod_caps: {}\n  mod_pubsub:\n    plugins:\n      - pep\n"
	n1 := bed.StartNode(t, cluster, cfg)
	n2 := bed.StartNode(t, cluster, cfg)
	xmpptest.WaitClustered(t, 2, n1, n2)
	if !strings.Contains(n1.Log.String(), "request handler /bosh (mod_bosh) is not implemented") && !strings.Contains(n1.Log.String(), "WebSocket listening") {
		t.Errorf("the node did not say what its HTTP listener serves:\n%s", n1.Log.String())
	}
	alice := xmpptest.Account{User: "user3", Password: "pw-user3"}
	bob := xmpptest.Account{User: "user4", Password: "pw-user4"}
	ws := xmpptest.StartStanza(t, n1.WebSocket, alice, bed.CA)
	ws.Do("roster")
	ws.Expect("^ROSTER user4@localhost both$", 10*time.Second)
	ws.Expect("^ROSTEREND [1-9]", 10*time.Second)
	ws.Do("presence")
	tcp := xmpptest.StartChat(t, xmpptest.Login{Account: bob, Addr: n2.StartTLS, CA: bed.CA})
	tcp.Do("presence 0")
	tcp.Do("msg %s chat hello over tcp", ws.JID)
	ws.Expect("^MSG user4@localhost/\\S+ chat hello over tcp$", 10*time.Second)
	ws.Do("msg %s hello over websocket", tcp.JID)
	tcp.Expect("^MSG user3@localhost/\\S+ chat hello over websocket$", 10*time.Second)
	ws.Do("mam 50")
	ws.Expect("^MAM \\d+ user3@localhost/\\S+ hello over websocket$", 10*time.Second)
	ws.Expect("^MAMEND [1-9]", 10*time.Second)
	ws.Do("pepitems user56@localhost eu.siacs.conversations.axolotl.devicelist")
	ws.Expect("^ITEM eu.siacs.conversations.axolotl.devicelist current ", 10*time.Second)
	ws.Expect("^ITEMSEND 1$", 10*time.Second)

	pem, err := os.ReadFile(bed.CA.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: xmpptest.Host}}}
	base := "https" + strings.TrimPrefix(strings.TrimSuffix(n1.WebSocket, "/ws"), "wss")
	for path, want := range map[string]int{"/bosh": 404, "/ws": 400, "/": 404} {
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// Bad input over WebSocket: a request without the xmpp subprotocol is
// refused; an unmasked frame, a binary message and a message over the
// stanza size limit each end the connection with the close code RFC
// 6455 gives them; the node keeps serving.
func TestWebSocketBadInput(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "wb"+testenv.RandomID(5), withRoster)
	pem, err := os.ReadFile(bed.CA.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	addr := strings.TrimSuffix(strings.TrimPrefix(n.WebSocket, "wss://"), "/ws")
	open := func(protocol string) (*tls.Conn, string) {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: xmpptest.Host})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		req := "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		if protocol != "" {
			req += "Sec-WebSocket-Protocol: " + protocol + "\r\n"
		}
		c.Write([]byte(req + "\r\n"))
		buf := make([]byte, 4096)
		k, _ := c.Read(buf)
		return c, string(buf[:k])
	}
	if _, resp := open(""); !strings.HasPrefix(resp, "HTTP/1.1 400") {
		t.Errorf("without the xmpp subprotocol: %q", resp)
	}
	frame := func(op byte, masked bool, payload []byte) []byte {
		f := []byte{0x80 | op}
		n := len(payload)
		switch {
		case n < 126:
			f = append(f, byte(n))
		case n <= 0xffff:
			f = append(f, 126, byte(n>>8), byte(n))
		default:
			f = append(f, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		}
		if masked {
			f[1] |= 0x80
			f = append(f, 1, 2, 3, 4)
			for i, b := range payload {
				f = append(f, b^[]byte{1, 2, 3, 4}[i%4])
			}
			return f
		}
		return append(f, payload...)
	}
	for name, tc := range map[string]struct {
		frame []byte
		code  uint16
	}{
		"unmasked": {frame(1, false, []byte("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")), 1002},
		"binary":   {frame(2, true, []byte("<open/>")), 1003},
		"too big":  {frame(1, true, []byte(strings.Repeat("x", 300000))), 1009},
	} {
		c, resp := open("xmpp")
		if !strings.HasPrefix(resp, "HTTP/1.1 101") || !strings.Contains(resp, "Sec-WebSocket-Protocol: xmpp") {
			t.Fatalf("%s: upgrade refused: %q", name, resp)
		}
		c.Write(tc.frame)
		buf := make([]byte, 64)
		k, err := c.Read(buf)
		if err != nil || k < 4 || buf[0] != 0x88 || uint16(buf[2])<<8|uint16(buf[3]) != tc.code {
			t.Errorf("%s: got % x (%v), want a close frame with code %d", name, buf[:k], err, tc.code)
		}
	}
	// The node still serves a client.
	ws := xmpptest.StartStanza(t, n.WebSocket, xmpptest.Account{User: "user5", Password: "pw-user5"}, bed.CA)
	ws.Do("roster")
	ws.Expect("^ROSTEREND [1-9]", 10*time.Second)
}
