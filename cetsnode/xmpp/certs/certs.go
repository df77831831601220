// Package certs loads the certificates ejabberd was given (certfiles: PEM
// files holding certificates, chains and keys in any order and grouping,
// as ejabberd's pkix reads them) and picks one per connection: by the TLS
// server name the client sent (SNI), else by the stream's host.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Store holds the certificates with their keys, by the names they cover.
type Store struct {
	exact    map[string]*tls.Certificate
	wildcard map[string]*tls.Certificate // "*.example.com" -> under "example.com"
	first    *tls.Certificate
	// Expired lists certificates that are past their end (they are still
	// served: the operator decides).
	Expired []string
}

// Load reads PEM files.
func Load(files []string) (*Store, error) {
	var certs []*x509.Certificate
	var keys []crypto.Signer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		found := false
		for len(b) > 0 {
			var block *pem.Block
			block, b = pem.Decode(b)
			if block == nil {
				break
			}
			found = true
			switch {
			case block.Type == "CERTIFICATE":
				c, err := x509.ParseCertificate(block.Bytes)
				if err != nil {
					return nil, fmt.Errorf("%s: %v", f, err)
				}
				certs = append(certs, c)
			case strings.HasSuffix(block.Type, "PRIVATE KEY"):
				k, err := parseKey(block)
				if err != nil {
					return nil, fmt.Errorf("%s: %v", f, err)
				}
				keys = append(keys, k)
			}
		}
		if !found {
			return nil, fmt.Errorf("%s: no PEM data", f)
		}
	}
	s := &Store{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}}
	for _, c := range certs {
		key := matchingKey(c, keys)
		if key == nil || c.IsCA && len(c.DNSNames) == 0 {
			continue // part of a chain, or a certificate we cannot serve
		}
		tc := &tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}
		for issuer := c; ; {
			next := issuerOf(issuer, certs)
			if next == nil {
				break
			}
			tc.Certificate = append(tc.Certificate, next.Raw)
			issuer = next
		}
		if time.Now().After(c.NotAfter) {
			s.Expired = append(s.Expired, fmt.Sprintf("%s (expired %s)", c.Subject.CommonName, c.NotAfter.Format(time.DateOnly)))
		}
		names := c.DNSNames
		if len(names) == 0 && c.Subject.CommonName != "" {
			names = []string{c.Subject.CommonName}
		}
		for _, n := range names {
			n = strings.ToLower(n)
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				if _, seen := s.wildcard[rest]; !seen {
					s.wildcard[rest] = tc
				}
			} else if _, seen := s.exact[n]; !seen {
				s.exact[n] = tc
			}
		}
		if s.first == nil {
			s.first = tc
		}
	}
	if s.first == nil {
		return nil, errors.New("no certificate with its private key in the certfiles")
	}
	return s, nil
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("unsupported private key")
	}
	return s, nil
}

func matchingKey(c *x509.Certificate, keys []crypto.Signer) crypto.Signer {
	for _, k := range keys {
		switch pub := c.PublicKey.(type) {
		case *rsa.PublicKey:
			if pub.Equal(k.Public()) {
				return k
			}
		case *ecdsa.PublicKey:
			if pub.Equal(k.Public()) {
				return k
			}
		case ed25519.PublicKey:
			if pub.Equal(k.Public()) {
				return k
			}
		}
	}
	return nil
}

func issuerOf(c *x509.Certificate, all []*x509.Certificate) *x509.Certificate {
	if bytes.Equal(c.RawIssuer, c.RawSubject) {
		return nil // self-signed
	}
	for _, o := range all {
		if o != c && bytes.Equal(o.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(o) == nil {
			return o
		}
	}
	return nil
}

// For is the certificate for a name: one that names it, else one whose
// wildcard covers it, else nil.
func (s *Store) For(name string) *tls.Certificate {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if c, ok := s.exact[name]; ok {
		return c
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if c, ok := s.wildcard[parent]; ok {
			return c
		}
	}
	return nil
}

// Covers reports whether a certificate names host.
func (s *Store) Covers(host string) bool { return s.For(host) != nil }

// TLSConfig is the server configuration for one connection: the
// certificate for the client's server name, else for host (the stream's,
// when STARTTLS was asked for it), else the first one; TLS 1.2 and 1.3.
// served reports the certificate chosen (channel binding needs it).
func (s *Store) TLSConfig(host string) (cfg *tls.Config, served func() *tls.Certificate) {
	var chosen *tls.Certificate
	cfg = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			chosen = s.Chosen(hello.ServerName, host)
			return chosen, nil
		},
	}
	return cfg, func() *tls.Certificate { return chosen }
}

// Chosen is the certificate a handshake naming serverName is given: the
// one for that name, else the host's, else the first loaded.
func (s *Store) Chosen(serverName, host string) *tls.Certificate {
	if c := s.For(serverName); c != nil {
		return c
	}
	if c := s.For(host); c != nil {
		return c
	}
	return s.first
}
