package xmpptest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// Raw is a hand-driven client connection, for what no real client sends
// (attacks, malformed XML) and for checking exact server output.
type Raw struct {
	conn net.Conn
	raw  net.Conn
	ca   *CA
	got  strings.Builder // everything read since the last Expect
}

// Header is a client's stream header to Host.
const Header = "<?xml version='1.0'?><stream:stream to='" + Host + "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

// DialRaw connects (with TLS at once when direct).
func DialRaw(addr string, direct bool, ca *CA) (*Raw, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	r := &Raw{conn: c, raw: c, ca: ca}
	if direct {
		if err := r.handshake(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *Raw) handshake() error {
	pem, err := os.ReadFile(r.ca.CertFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tc := tls.Client(r.raw, &tls.Config{RootCAs: pool, ServerName: Host})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		return err
	}
	tc.SetDeadline(time.Time{})
	r.conn = tc
	return nil
}

// Close closes the connection.
func (r *Raw) Close() { r.conn.Close() }

// Send writes s.
func (r *Raw) Send(s string) error {
	r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(r.conn, s)
	return err
}

// Expect reads until the server has sent want (or the connection ends,
// or timeout passes) and returns what it read.
func (r *Raw) Expect(want string, timeout time.Duration) (string, error) {
	return r.ExpectAny(timeout, want)
}

// ExpectAny reads until the server has sent one of wants.
func (r *Raw) ExpectAny(timeout time.Duration, wants ...string) (string, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	found := func() bool {
		for _, w := range wants {
			if strings.Contains(r.got.String(), w) {
				return true
			}
		}
		return false
	}
	for !found() {
		r.conn.SetReadDeadline(deadline)
		n, err := r.conn.Read(buf)
		r.got.Write(buf[:n])
		if err != nil && !found() {
			return r.got.String(), fmt.Errorf("waiting for %q: %w (got %q)", wants, err, r.got.String())
		}
	}
	out := r.got.String()
	r.got.Reset()
	return out, nil
}

// Closed waits until the server closes the connection and returns what
// it sent meanwhile.
func (r *Raw) Closed(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		r.conn.SetReadDeadline(deadline)
		n, err := r.conn.Read(buf)
		r.got.Write(buf[:n])
		if err != nil {
			out := r.got.String()
			r.got.Reset()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out, fmt.Errorf("still open after %v (got %q)", timeout, out)
			}
			return out, nil
		}
	}
}

// Handshake runs the TLS handshake (after <proceed/>).
func Handshake(r *Raw) error { return r.handshake() }

// StartTLS opens the stream and negotiates STARTTLS.
func (r *Raw) StartTLS() error {
	if err := r.Send(Header); err != nil {
		return err
	}
	if _, err := r.Expect("</stream:features>", 5*time.Second); err != nil {
		return err
	}
	r.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if _, err := r.Expect("<proceed", 5*time.Second); err != nil {
		return err
	}
	return r.handshake()
}

// Plain authenticates with PLAIN on an encrypted connection (the stream
// header sent first) and restarts the stream; it returns the failure
// when the server refuses.
func (r *Raw) Plain(user, password string) error {
	if err := r.Send(Header); err != nil {
		return err
	}
	if _, err := r.Expect("</stream:features>", 5*time.Second); err != nil {
		return err
	}
	r.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "</auth>")
	out, err := r.ExpectAny(5*time.Second, "<success", "</failure>")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "<success") {
		return fmt.Errorf("login refused: %s", out)
	}
	return nil
}

// Bind restarts the stream after SASL and binds resource.
func (r *Raw) Bind(resource string) (string, error) {
	if err := r.Send(Header); err != nil {
		return "", err
	}
	if _, err := r.Expect("</stream:features>", 5*time.Second); err != nil {
		return "", err
	}
	r.Send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	return r.Expect("</iq>", 5*time.Second)
}

// Session logs in over STARTTLS with PLAIN and binds a resource.
func Session(addr string, ca *CA, a Account, resource string) (*Raw, string, error) {
	r, err := DialRaw(addr, false, ca)
	if err != nil {
		return nil, "", err
	}
	if err := r.StartTLS(); err != nil {
		r.Close()
		return nil, "", err
	}
	if err := r.Plain(a.User, a.Password); err != nil {
		r.Close()
		return nil, "", err
	}
	out, err := r.Bind(resource)
	if err != nil {
		r.Close()
		return nil, "", err
	}
	return r, out, nil
}

// Drain reads whatever the server sends within d and returns it.
func (r *Raw) Drain(d time.Duration) string { return r.Settle(d, d) }

// Settle reads until the server has sent nothing for idle (at most max)
// and returns what it read.
func (r *Raw) Settle(idle, max time.Duration) string {
	end := time.Now().Add(max)
	buf := make([]byte, 4096)
	for {
		deadline := time.Now().Add(idle)
		if deadline.After(end) {
			deadline = end
		}
		r.conn.SetReadDeadline(deadline)
		n, err := r.conn.Read(buf)
		r.got.Write(buf[:n])
		if err != nil || time.Now().After(end) {
			out := r.got.String()
			r.got.Reset()
			return out
		}
	}
}
