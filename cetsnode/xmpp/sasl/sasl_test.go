package sasl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"
)

// accounts: alice's SCRAM-SHA-1 credentials computed as ejabberd's
// password_to_scram/4 does; bob's password stored in clear; carol's
// SCRAM-SHA-256.
func testServer(t testing.TB) *Server {
	t.Helper()
	salt := []byte("0123456789abcdef")
	aliceStored, aliceServer := saltedKeys(SHA1, "secret", salt, 4096)
	carolStored, carolServer := saltedKeys(SHA256, "pässword", salt, 4096)
	accounts := map[string]Credentials{
		"alice": {SCRAM: &SCRAM{Hash: SHA1, StoredKey: aliceStored, ServerKey: aliceServer, Salt: salt, Iterations: 4096}},
		"bob":   {Plain: "hunter2"},
		"carol": {SCRAM: &SCRAM{Hash: SHA256, StoredKey: carolStored, ServerKey: carolServer, Salt: salt, Iterations: 4096}},
	}
	return &Server{Host: "localhost", Secret: []byte("cluster secret"), Lookup: func(_ context.Context, user string) (Credentials, error) {
		if user == "down" {
			return Credentials{}, errors.New("connection refused")
		}
		c, ok := accounts[user]
		if !ok {
			return Credentials{}, ErrNoUser
		}
		return c, nil
	}}
}

var allOffered = []string{"PLAIN", "SCRAM-SHA-512-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"}

func TestMechanisms(t *testing.T) {
	for _, c := range []struct {
		p         Policy
		encrypted bool
		want      string
	}{
		{Policy{PasswordFormat: "scram"}, true, "PLAIN SCRAM-SHA-1-PLUS SCRAM-SHA-1"},
		{Policy{PasswordFormat: "scram"}, false, "PLAIN SCRAM-SHA-1"},
		{Policy{PasswordFormat: "scram", ScramHash: SHA256}, true, "PLAIN SCRAM-SHA-256-PLUS SCRAM-SHA-256"},
		{Policy{PasswordFormat: "plain"}, true, strings.Join(allOffered, " ")},
		{Policy{PasswordFormat: "scram", Disabled: []string{"plain", "SCRAM-SHA-1-PLUS"}}, true, "SCRAM-SHA-1"},
	} {
		if got := strings.Join(c.p.Mechanisms(c.encrypted), " "); got != c.want {
			t.Errorf("%+v encrypted=%v: %s, want %s", c.p, c.encrypted, got, c.want)
		}
	}
}

// run drives a client conversation against a server conversation and
// returns the steps taken and the failure, if any.
func run(t *testing.T, s *Server, mech string, conn TLS, client *scram.ClientConversation) (steps int, err error) {
	t.Helper()
	ctx := context.Background()
	sc, err := s.Start(mech, allOffered, conn)
	if err != nil {
		return 0, err
	}
	msg, err := client.Step("")
	if err != nil {
		t.Fatal(err)
	}
	for {
		steps++
		out, done, err := sc.Step(ctx, []byte(msg))
		if err != nil {
			return steps, err
		}
		if done {
			if _, err := client.Step(string(out)); err != nil {
				t.Fatalf("the client refuses the server's signature: %v", err)
			}
			if sc.User() == "" {
				t.Fatal("success without a user")
			}
			return steps, nil
		}
		if msg, err = client.Step(string(out)); err != nil {
			t.Fatalf("client: %v", err)
		}
	}
}

func failure(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Condition
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func TestSCRAM(t *testing.T) {
	s := testServer(t)
	conv := func(h scram.HashGeneratorFcn, user, pass, authz string) *scram.ClientConversation {
		c, err := h.NewClient(user, pass, authz)
		if err != nil {
			t.Fatal(err)
		}
		return c.NewConversation()
	}
	for _, c := range []struct {
		name, mech string
		client     *scram.ClientConversation
		steps      int
		want       string
	}{
		{"stored SCRAM-SHA-1", "SCRAM-SHA-1", conv(scram.SHA1, "alice", "secret", ""), 2, "ok"},
		{"case folded", "SCRAM-SHA-1", conv(scram.SHA1, "Alice", "secret", ""), 2, "ok"},
		{"own authzid", "SCRAM-SHA-1", conv(scram.SHA1, "alice", "secret", "alice@localhost"), 2, "ok"},
		{"wrong password", "SCRAM-SHA-1", conv(scram.SHA1, "alice", "wrong", ""), 2, "not-authorized"},
		{"unknown user: same step", "SCRAM-SHA-1", conv(scram.SHA1, "nobody", "wrong", ""), 2, "not-authorized"},
		{"another hash: same step", "SCRAM-SHA-256", conv(scram.SHA256, "alice", "secret", ""), 2, "not-authorized"},
		{"stored SCRAM-SHA-256", "SCRAM-SHA-256", conv(scram.SHA256, "carol", "pässword", ""), 2, "ok"},
		{"password in clear over SCRAM", "SCRAM-SHA-512", conv(scram.SHA512, "bob", "hunter2", ""), 2, "ok"},
		{"someone else's authzid", "SCRAM-SHA-1", conv(scram.SHA1, "alice", "secret", "carol"), 1, "invalid-authzid"},
		{"database down", "SCRAM-SHA-1", conv(scram.SHA1, "down", "x", ""), 1, "temporary-auth-failure"},
	} {
		t.Run(c.name, func(t *testing.T) {
			steps, err := run(t, s, c.mech, TLS{}, c.client)
			if got := failure(err); got != c.want || steps != c.steps {
				t.Errorf("%s after %d steps, want %s after %d", got, steps, c.want, c.steps)
			}
		})
	}
	// An unknown user's salt is stable, and not another user's.
	salt := func(user string) string {
		sc, _ := s.Start("SCRAM-SHA-1", allOffered, TLS{})
		out, _, err := sc.Step(context.Background(), []byte("n,,n="+user+",r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(out), ",s=")
		return rest
	}
	if salt("nobody") != salt("nobody") || salt("nobody") == salt("nobody2") {
		t.Error("decoy salts are not stable per user")
	}
}

func TestPLAIN(t *testing.T) {
	s := testServer(t)
	for _, c := range []struct{ in, want string }{
		{"\x00alice\x00secret", "ok"},
		{"\x00alice@localhost\x00secret", "ok"},
		{"alice\x00alice\x00secret", "ok"},
		{"\x00ALICE\x00secret", "ok"},
		{"\x00alice\x00wrong", "not-authorized"},
		{"\x00bob\x00hunter2", "ok"},
		{"\x00bob\x00hunter3", "not-authorized"},
		{"\x00carol\x00pässword", "ok"},
		{"\x00nobody\x00x", "not-authorized"},
		{"\x00alice\x00", "not-authorized"},
		{"carol\x00alice\x00secret", "invalid-authzid"},
		{"alice\x00secret", "not-authorized"},
		{"\x00down\x00x", "temporary-auth-failure"},
	} {
		sc, _ := s.Start("PLAIN", allOffered, TLS{})
		_, done, err := sc.Step(context.Background(), []byte(c.in))
		if got := failure(err); got != c.want || (got == "ok") != done {
			t.Errorf("%q: %s (done %v), want %s", c.in, got, done, c.want)
		}
	}
	if _, err := s.Start("DIGEST-MD5", allOffered, TLS{}); failure(err) != "invalid-mechanism" {
		t.Errorf("DIGEST-MD5: %v", err)
	}
}

// Channel binding over a real TLS connection: tls-exporter on TLS 1.3,
// tls-server-end-point, tls-unique on TLS 1.2; a binding that does not
// match, and a downgrade ('y' when -PLUS was offered), fail.
func TestChannelBinding(t *testing.T) {
	s := testServer(t)
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		server, client, der := tlsPair(t, version)
		conn := TLS{State: &server, Certificate: der}
		types := ChannelBindings(conn)
		for _, typ := range []scram.ChannelBindingType{scram.ChannelBindingTLSExporter, scram.ChannelBindingTLSServerEndpoint, scram.ChannelBindingTLSUnique} {
			var cb scram.ChannelBinding
			var err error
			switch typ {
			case scram.ChannelBindingTLSExporter:
				cb, err = scram.NewTLSExporterBinding(&client)
			case scram.ChannelBindingTLSServerEndpoint:
				cb, err = scram.NewTLSServerEndpointBinding(&client)
			case scram.ChannelBindingTLSUnique:
				if client.TLSUnique == nil {
					err = errors.New("none")
				}
				cb = scram.NewTLSUniqueBinding(client.TLSUnique)
			}
			if err != nil {
				if slices.Contains(types, string(typ)) {
					t.Errorf("TLS %x: %s advertised but the client has none: %v", version, typ, err)
				}
				continue
			}
			c, _ := scram.SHA1.NewClient("alice", "secret", "")
			_, err = run(t, s, "SCRAM-SHA-1-PLUS", conn, c.NewConversationWithChannelBinding(cb))
			if failure(err) != "ok" {
				t.Errorf("TLS %x %s: %v", version, typ, err)
			}
			bad := cb
			bad.Data = append([]byte{}, cb.Data...)
			bad.Data[0] ^= 1
			c, _ = scram.SHA1.NewClient("alice", "secret", "")
			if _, err = run(t, s, "SCRAM-SHA-1-PLUS", conn, c.NewConversationWithChannelBinding(bad)); failure(err) != "not-authorized" {
				t.Errorf("TLS %x %s with wrong data: %v", version, typ, err)
			}
		}
		// 'y' (could bind, thinks we cannot) is accepted, as ejabberd does.
		c, _ := scram.SHA1.NewClient("alice", "secret", "")
		if _, err := run(t, s, "SCRAM-SHA-1", conn, c.NewConversationAdvertisingChannelBinding()); failure(err) != "ok" {
			t.Errorf("TLS %x: SCRAM-SHA-1 with 'y': %v", version, err)
		}
		c, _ = scram.SHA1.NewClient("alice", "secret", "")
		if _, err := run(t, s, "SCRAM-SHA-1", conn, c.NewConversation()); failure(err) != "ok" {
			t.Errorf("TLS %x: SCRAM-SHA-1 without binding: %v", version, err)
		}
	}
}

// tlsPair handshakes a TLS connection over a pipe and returns both ends'
// states and the server certificate.
func tlsPair(t *testing.T, version uint16) (server, client tls.ConnectionState, der []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	a, b := net.Pipe()
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
	cli := tls.Client(b, &tls.Config{InsecureSkipVerify: true, MinVersion: version, MaxVersion: version})
	done := make(chan error, 1)
	go func() { done <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return srv.ConnectionState(), cli.ConnectionState(), der
}
