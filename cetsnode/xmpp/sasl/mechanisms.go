package sasl

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"hash"
	"slices"
	"strings"

	"github.com/xdg-go/scram"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
)

// Conversation is one SASL negotiation.
type Conversation interface {
	// Step takes the client's message (decoded from base64) and returns
	// the server's: a challenge (done false), or the additional data of
	// success (done true). An error is a *Failure.
	Step(ctx context.Context, in []byte) (out []byte, done bool, err error)
	// User is the authenticated user's prepared local part.
	User() string
}

// TLS is what channel binding needs from the connection.
type TLS struct {
	State *tls.ConnectionState // nil when the stream is not encrypted
	// Certificate is the DER of the certificate the server presented
	// (tls-server-end-point binds to it).
	Certificate []byte
}

// Start begins a negotiation with mechanism mech, which must be one of
// offered (what the stream features listed).
func (s *Server) Start(mech string, offered []string, conn TLS) (Conversation, error) {
	if !slices.Contains(offered, mech) {
		return nil, &Failure{Condition: "invalid-mechanism", Text: "Unsupported mechanism"}
	}
	if mech == "PLAIN" {
		return &plain{s: s}, nil
	}
	h, plus := scramMech(mech)
	return &scramConv{s: s, hash: h, plus: plus, conn: conn}, nil
}

func hashFunc(h Hash) func() hash.Hash {
	switch h {
	case SHA256:
		return sha256.New
	case SHA512:
		return sha512.New
	}
	return sha1.New
}

// saltedKeys computes StoredKey and ServerKey from a password (RFC 5802).
func saltedKeys(h Hash, password string, salt []byte, iterations int) (stored, server []byte) {
	hf := hashFunc(h)
	salted, err := pbkdf2.Key(hf, password, salt, iterations, hf().Size())
	if err != nil { // only in FIPS mode with short inputs
		salted = make([]byte, hf().Size())
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(hf, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	sum := hf()
	sum.Write(clientKey)
	return sum.Sum(nil), mac(salted, "Server Key")
}

// plain is RFC 4616 PLAIN, checked as ejabberd checks a password.
type plain struct {
	s    *Server
	user string
}

func (p *plain) User() string { return p.user }

func (p *plain) Step(ctx context.Context, in []byte) ([]byte, bool, error) {
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 {
		return nil, false, &Failure{Condition: "not-authorized", Text: "Response decoding failed"}
	}
	authzid, authcid, password := string(parts[0]), string(parts[1]), string(parts[2])
	// The authentication identity may be user@domain (ejabberd takes the
	// local part).
	name, _, _ := strings.Cut(authcid, "@")
	user, err := jid.Nodeprep(name)
	if err != nil || user == "" {
		p.s.spendLike(SHA1, password)
		return nil, false, notAuthorized(authcid)
	}
	if !sameUser(authzid, user) {
		return nil, false, &Failure{Condition: "invalid-authzid", Text: "Authorization identity is not the user's own", User: authcid}
	}
	creds, err := p.s.Lookup(ctx, user)
	switch {
	case errors.Is(err, ErrNoUser):
		p.s.spendLike(SHA1, password)
		return nil, false, notAuthorized(user)
	case err != nil:
		return nil, false, &Failure{Condition: "temporary-auth-failure", Text: "The account database cannot be reached", User: user}
	}
	if password == "" {
		return nil, false, notAuthorized(user)
	}
	ok := false
	if creds.SCRAM != nil {
		if _, err := jid.Resourceprep(password); err == nil {
			c := creds.SCRAM
			stored, _ := saltedKeys(c.Hash, password, c.Salt, c.Iterations)
			ok = hmac.Equal(stored, c.StoredKey)
		}
	} else {
		ok = hmac.Equal([]byte(password), []byte(creds.Plain))
	}
	if !ok {
		return nil, false, notAuthorized(user)
	}
	p.user = user
	return nil, true, nil
}

// spendLike does the work a password check of a SCRAM-stored user does,
// so that an unknown user takes as long as a wrong password.
func (s *Server) spendLike(h Hash, password string) {
	d := s.decoy(h, "")
	saltedKeys(h, password, d.Salt, d.Iterations)
}

// sameUser reports whether an authorization identity (empty, a local
// part, or a JID) names the authenticated user.
func sameUser(authzid, user string) bool {
	if authzid == "" {
		return true
	}
	name, _, _ := strings.Cut(authzid, "@")
	p, err := jid.Nodeprep(name)
	return err == nil && p == user
}

// scramConv is SCRAM-SHA-* (RFC 5802, RFC 7677), -PLUS with channel
// binding (RFC 5929, RFC 9266).
type scramConv struct {
	s         *Server
	hash      Hash
	plus      bool
	conn      TLS
	conv      *scram.ServerConversation
	user      string
	lookupErr error
}

func (c *scramConv) User() string { return c.user }

func (c *scramConv) Step(ctx context.Context, in []byte) ([]byte, bool, error) {
	if c.conv == nil {
		return c.first(ctx, in)
	}
	out, err := c.conv.Step(string(in))
	if err != nil {
		if strings.HasPrefix(out, scram.ErrChannelBindingsDontMatch) {
			return nil, false, &Failure{Condition: "not-authorized", Text: "Invalid channel binding", User: c.user}
		}
		return nil, false, notAuthorized(c.user)
	}
	if !c.conv.Valid() {
		return nil, false, notAuthorized(c.user)
	}
	return []byte(out), true, nil
}

func (c *scramConv) first(ctx context.Context, in []byte) ([]byte, bool, error) {
	flag, cbType, ok := gs2Binding(in)
	if !ok {
		return nil, false, &Failure{Condition: "not-authorized", Text: "Response decoding failed"}
	}
	server, err := hashGenerator(c.hash).NewServer(func(username string) (scram.StoredCredentials, error) {
		return c.credentials(ctx, username)
	})
	if err != nil {
		return nil, false, &Failure{Condition: "temporary-auth-failure", Text: err.Error()}
	}
	switch {
	case c.plus:
		if flag != "p" {
			return nil, false, &Failure{Condition: "not-authorized", Text: "Invalid channel binding"}
		}
		cb, err := binding(cbType, c.conn)
		if err != nil {
			return nil, false, &Failure{Condition: "not-authorized", Text: "Invalid channel binding: " + err.Error()}
		}
		c.conv = server.NewConversationWithChannelBindingRequired(cb)
	default:
		c.conv = server.NewConversation()
	}
	out, err := c.conv.Step(string(in))
	if c.lookupErr != nil {
		return nil, false, &Failure{Condition: "temporary-auth-failure", Text: "The account database cannot be reached", User: c.user}
	}
	if err != nil {
		return nil, false, &Failure{Condition: "not-authorized", Text: "Response decoding failed", User: c.user}
	}
	if !sameUser(c.conv.AuthzID(), c.user) {
		return nil, false, &Failure{Condition: "invalid-authzid", Text: "Authorization identity is not the user's own", User: c.user}
	}
	return []byte(out), false, nil
}

// credentials are the user's stored SCRAM credentials for this hash, or
// decoys when there are none to use (no such user, another hash, a
// password stringprep refuses) — so that the conversation fails only at
// its last step, as with a wrong password. A password stored in clear is
// salted here with a fresh salt, as ejabberd does.
func (c *scramConv) credentials(ctx context.Context, username string) (scram.StoredCredentials, error) {
	user, err := jid.Nodeprep(username)
	c.user = user
	if err != nil || user == "" {
		c.user = username
		return stored(c.s.decoy(c.hash, username)), nil
	}
	creds, err := c.s.Lookup(ctx, user)
	switch {
	case errors.Is(err, ErrNoUser):
		return stored(c.s.decoy(c.hash, user)), nil
	case err != nil:
		c.lookupErr = err
		return scram.StoredCredentials{}, err
	case creds.SCRAM != nil && creds.SCRAM.Hash == c.hash:
		return stored(creds.SCRAM), nil
	case creds.SCRAM == nil && creds.Plain != "":
		if _, err := jid.Resourceprep(creds.Plain); err != nil {
			break
		}
		salt := make([]byte, 16)
		rand.Read(salt)
		st, sk := saltedKeys(c.hash, creds.Plain, salt, DefaultIterations)
		return stored(&SCRAM{Hash: c.hash, StoredKey: st, ServerKey: sk, Salt: salt, Iterations: DefaultIterations}), nil
	}
	return stored(c.s.decoy(c.hash, user)), nil
}

func stored(s *SCRAM) scram.StoredCredentials {
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(s.Salt), Iters: s.Iterations}, StoredKey: s.StoredKey, ServerKey: s.ServerKey}
}

func hashGenerator(h Hash) scram.HashGeneratorFcn {
	switch h {
	case SHA256:
		return scram.SHA256
	case SHA512:
		return scram.SHA512
	}
	return scram.SHA1
}

// gs2Binding reads the channel-binding flag and type of a client-first
// message ("p=tls-exporter,,n=…", "n,,n=…", "y,,n=…").
func gs2Binding(in []byte) (flag string, cbType scram.ChannelBindingType, ok bool) {
	s := string(in)
	switch {
	case strings.HasPrefix(s, "n,"), strings.HasPrefix(s, "y,"):
		return s[:1], "", true
	case strings.HasPrefix(s, "p="):
		t, _, found := strings.Cut(s[2:], ",")
		return "p", scram.ChannelBindingType(t), found && t != ""
	}
	return "", "", false
}

// binding builds the channel binding of type t for the connection.
func binding(t scram.ChannelBindingType, conn TLS) (scram.ChannelBinding, error) {
	st := conn.State
	if st == nil {
		return scram.ChannelBinding{}, errors.New("the stream is not encrypted")
	}
	switch t {
	case scram.ChannelBindingTLSExporter:
		// crypto/tls refuses it on TLS 1.2 without extended master
		// secret, as RFC 9266 requires.
		return scram.NewTLSExporterBinding(st)
	case scram.ChannelBindingTLSServerEndpoint:
		return endpointBinding(conn.Certificate)
	case scram.ChannelBindingTLSUnique:
		if st.TLSUnique == nil {
			return scram.ChannelBinding{}, errors.New("tls-unique is not defined for TLS 1.3")
		}
		return scram.NewTLSUniqueBinding(st.TLSUnique), nil
	}
	return scram.ChannelBinding{}, errors.New("unsupported channel binding type " + string(t))
}

// endpointBinding is tls-server-end-point (RFC 5929 §4.1): the hash of
// our certificate, with the certificate's signature hash (SHA-256 for
// MD5 and SHA-1).
func endpointBinding(der []byte) (scram.ChannelBinding, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return scram.ChannelBinding{}, errors.New("no server certificate")
	}
	var h hash.Hash
	switch cert.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = sha512.New()
	default:
		h = sha256.New()
	}
	h.Write(der)
	return scram.ChannelBinding{Type: scram.ChannelBindingTLSServerEndpoint, Data: h.Sum(nil)}, nil
}

// ChannelBindings lists the channel-binding types the connection
// supports (XEP-0440), strongest first.
func ChannelBindings(conn TLS) []string {
	var out []string
	for _, t := range []scram.ChannelBindingType{scram.ChannelBindingTLSExporter, scram.ChannelBindingTLSServerEndpoint, scram.ChannelBindingTLSUnique} {
		if _, err := binding(t, conn); err == nil {
			out = append(out, string(t))
		}
	}
	return out
}
