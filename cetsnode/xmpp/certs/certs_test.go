package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func write(t *testing.T, path string, blocks ...*pem.Block) {
	t.Helper()
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A CA, a leaf for a.example with its chain in one file and its key in
// another, a wildcard leaf with an RSA key, an expired one: each picked by
// the name it covers, chains attached.
func TestLoadAndPick(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, names []string, pub any, notAfter time.Time) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
			NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	aKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	aDER := leaf(2, []string{"a.example"}, &aKey.PublicKey, time.Now().Add(time.Hour))
	aKeyDER, _ := x509.MarshalECPrivateKey(aKey)
	write(t, filepath.Join(dir, "a.crt"), &pem.Block{Type: "CERTIFICATE", Bytes: aDER}, &pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	write(t, filepath.Join(dir, "a.key"), &pem.Block{Type: "EC PRIVATE KEY", Bytes: aKeyDER})
	wKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	wDER := leaf(3, []string{"*.b.example", "b.example"}, &wKey.PublicKey, time.Now().Add(time.Hour))
	write(t, filepath.Join(dir, "w.pem"), &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(wKey)}, &pem.Block{Type: "CERTIFICATE", Bytes: wDER})
	oKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	oDER := leaf(4, []string{"old.example"}, &oKey.PublicKey, time.Now().Add(-time.Hour))
	oKeyDER, _ := x509.MarshalPKCS8PrivateKey(oKey)
	write(t, filepath.Join(dir, "old.pem"), &pem.Block{Type: "CERTIFICATE", Bytes: oDER}, &pem.Block{Type: "PRIVATE KEY", Bytes: oKeyDER})

	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	s, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.For("A.Example"); c == nil || c.Leaf.SerialNumber.Int64() != 2 || len(c.Certificate) != 2 {
		t.Errorf("a.example: %+v", c)
	}
	for _, n := range []string{"b.example", "x.b.example"} {
		if c := s.For(n); c == nil || c.Leaf.SerialNumber.Int64() != 3 {
			t.Errorf("%s: %+v", n, c)
		}
	}
	if s.For("y.x.b.example") != nil || s.For("c.example") != nil {
		t.Error("a name no certificate covers was covered")
	}
	if len(s.Expired) != 1 {
		t.Errorf("expired: %v", s.Expired)
	}
	cfg, served := s.TLSConfig("b.example")
	c, _ := cfg.GetCertificate(&tls.ClientHelloInfo{})
	if c.Leaf.SerialNumber.Int64() != 3 || served() != c {
		t.Error("without SNI the stream host's certificate is not served")
	}
	if c, _ := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.example"}); c.Leaf.SerialNumber.Int64() != 2 {
		t.Error("SNI ignored")
	}

	// A certificate without its key is refused.
	write(t, filepath.Join(dir, "lonely.pem"), &pem.Block{Type: "CERTIFICATE", Bytes: aDER})
	if _, err := Load([]string{filepath.Join(dir, "lonely.pem")}); err == nil {
		t.Error("a certificate without a key loaded")
	}
}
