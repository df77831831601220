// Package sasl authenticates XMPP clients against the credentials ejabberd
// stored, exactly as ejabberd 23.01 offers them: SCRAM-SHA-1, -256 and
// -512, each also -PLUS with channel binding (tls-exporter, tls-server-
// end-point, and tls-unique where TLS 1.2 provides it), and PLAIN checked
// against SCRAM credentials (PBKDF2 over the raw password, as ejabberd
// does) or a password stored in clear. SCRAM uses github.com/xdg-go/scram,
// which takes ejabberd's StoredKey, ServerKey, salt and iteration count as
// they are.
//
// Where ejabberd gives attackers more than it must, this package does
// not: an unknown user (or one whose stored hash the mechanism cannot
// use) gets decoy SCRAM parameters and fails at the same step, after the
// same work, as a wrong password; and an authorization identity other
// than the user's own is refused.
package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
)

// Hash is a SCRAM hash as ejabberd names it (auth_scram_hash).
type Hash string

// The hashes.
const (
	SHA1   Hash = "sha"
	SHA256 Hash = "sha256"
	SHA512 Hash = "sha512"
)

// DefaultIterations is ejabberd's SCRAM iteration count.
const DefaultIterations = 4096

// SCRAM are stored SCRAM credentials (RFC 5802 server data).
type SCRAM struct {
	Hash                 Hash
	StoredKey, ServerKey []byte
	Salt                 []byte
	Iterations           int
}

// Credentials are what is stored for an account: a password in clear
// text, or SCRAM credentials.
type Credentials struct {
	Plain string
	SCRAM *SCRAM
}

// ErrNoUser is a Lookup's answer for an account that does not exist.
var ErrNoUser = errors.New("no such user")

// Lookup finds an account's credentials by its prepared local part.
// Any error but ErrNoUser is a temporary failure (the database).
type Lookup func(ctx context.Context, user string) (Credentials, error)

// Failure is a SASL failure (RFC 6120 §6.5): a defined condition and a
// text. User is the username the client gave, when it gave one.
type Failure struct {
	Condition string
	Text      string
	User      string
}

func (f *Failure) Error() string { return "SASL " + f.Condition + ": " + f.Text }

func notAuthorized(user string) *Failure {
	return &Failure{Condition: "not-authorized", Text: "Invalid username or password", User: user}
}

// Policy decides the mechanisms offered, as ejabberd's
// ejabberd_c2s:sasl_mechanisms does from auth_password_format,
// auth_scram_hash and disable_sasl_mechanisms.
type Policy struct {
	// PasswordFormat is "plain" or "scram" (auth_password_format):
	// with plain every SCRAM hash is offered, with scram only ScramHash.
	PasswordFormat string
	ScramHash      Hash
	Disabled       []string // mechanism names, any case
}

// order is ejabberd's (xmpp_sasl:listmech/0) without the mechanisms not
// implemented here (ANONYMOUS, DIGEST-MD5, X-OAUTH2).
var order = []string{"PLAIN", "SCRAM-SHA-512-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256",
	"SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"}

// Mechanisms lists what to offer; -PLUS only on an encrypted stream.
func (p Policy) Mechanisms(encrypted bool) []string {
	var out []string
	for _, m := range order {
		if slices.ContainsFunc(p.Disabled, func(d string) bool { return strings.EqualFold(d, m) }) {
			continue
		}
		if m == "PLAIN" {
			out = append(out, m)
			continue
		}
		h, plus := scramMech(m)
		if plus && !encrypted {
			continue
		}
		if p.PasswordFormat == "plain" || h == p.hash() {
			out = append(out, m)
		}
	}
	return out
}

func (p Policy) hash() Hash {
	if p.ScramHash == "" {
		return SHA1
	}
	return p.ScramHash
}

// scramMech reads a SCRAM mechanism's hash and whether it is -PLUS.
func scramMech(m string) (Hash, bool) {
	plus := strings.HasSuffix(m, "-PLUS")
	switch strings.TrimSuffix(m, "-PLUS") {
	case "SCRAM-SHA-1":
		return SHA1, plus
	case "SCRAM-SHA-256":
		return SHA256, plus
	case "SCRAM-SHA-512":
		return SHA512, plus
	}
	return "", false
}

// Server holds what every negotiation on one virtual host needs.
type Server struct {
	Lookup Lookup
	// Secret keys the decoy credentials of unknown users: the same on
	// every node of a cluster (derive it from a shared secret), so that
	// an unknown user looks the same wherever it is tried.
	Secret []byte
	// Host names the virtual host in the decoys.
	Host string
}

// decoy are SCRAM parameters for a user that does not exist: stable for
// the name (an attacker probing twice sees the same salt, as for a real
// user), keys nobody knows a password for.
func (s *Server) decoy(h Hash, user string) *SCRAM {
	mac := func(label string) []byte {
		m := hmac.New(sha256.New, s.Secret)
		m.Write([]byte(label + "\x00" + string(h) + "\x00" + s.Host + "\x00" + user))
		return m.Sum(nil)
	}
	size := hashSize(h)
	key := func(label string) []byte {
		out := mac(label)
		for len(out) < size {
			out = append(out, mac(label+"+")...)
		}
		return out[:size]
	}
	return &SCRAM{Hash: h, Salt: mac("salt")[:16], Iterations: DefaultIterations, StoredKey: key("stored"), ServerKey: key("server")}
}

func hashSize(h Hash) int {
	switch h {
	case SHA256:
		return 32
	case SHA512:
		return 64
	}
	return 20
}

// NewCredentials makes what ejabberd stores for a new password: SCRAM of
// the policy's hash with a random 16-byte salt and 4096 iterations
// (ejabberd_auth:password_to_scram), or the password itself when the
// password format is plain.
func (p Policy) NewCredentials(password string) (Credentials, error) {
	if p.PasswordFormat == "plain" {
		return Credentials{Plain: password}, nil
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return Credentials{}, err
	}
	h := p.hash()
	stored, server := saltedKeys(h, password, salt, DefaultIterations)
	return Credentials{SCRAM: &SCRAM{Hash: h, StoredKey: stored, ServerKey: server, Salt: salt, Iterations: DefaultIterations}}, nil
}
