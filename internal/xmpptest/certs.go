// Package xmpptest is the test bed of the XMPP service: a private ejabberd
// 23.01 whose accounts (passwords set by ejabberd) are exported into
// PostgreSQL, Go cluster nodes serving that database, a test CA, and the
// real XMPP clients the tests drive (slixmpp, @xmpp/client, go-sendxmpp,
// xmppc, go-xmpp).
package xmpptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a test certificate authority and a certificate it issued for the
// XMPP domain localhost (and 127.0.0.1).
type CA struct {
	// CertFile holds the CA certificate (for clients to trust).
	CertFile string
	// ServerPEM holds the server's certificate, the CA's and the key:
	// what ejabberd's certfiles take.
	ServerPEM string
}

// NewCA writes a CA and a localhost certificate into dir.
func NewCA(dir string) (*CA, error) { return NewCAFor(dir, "localhost") }

// NewCAFor writes a CA and a certificate for the domains (and 127.0.0.1)
// into dir.
func NewCAFor(dir string, domains ...string) (*CA, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mimmigrate test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: domains[0]}, DNSNames: domains,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &CA{CertFile: filepath.Join(dir, "ca.pem"), ServerPEM: filepath.Join(dir, "server.pem")}
	if err := os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		return nil, err
	}
	server := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	server = append(server, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	// ejabberd (running as its own user) reads it too.
	if err := os.WriteFile(c.ServerPEM, server, 0o644); err != nil {
		return nil, err
	}
	return c, nil
}
