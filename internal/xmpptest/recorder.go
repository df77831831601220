package xmpptest

import (
	"crypto/tls"
	"io"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"
)

// Recorder is a TLS-terminating proxy in front of a direct-TLS (XEP-0368)
// listener: a client connects to it with TLS (the bed's certificate), it
// forwards over TLS to the listener, and keeps the bytes each client
// sent, decrypted — real client streams, for the stream reader's fuzz
// seeds. (A client that binds SCRAM to the channel fails through it: the
// server sees another channel.)
type Recorder struct {
	Addr string
	ln   net.Listener
	mu   sync.Mutex
	got  []*[]byte
	wg   sync.WaitGroup
}

// StartRecorder listens on 127.0.0.1 for clients of target; it stops
// with the test.
func StartRecorder(t testing.TB, target string, ca *CA) *Recorder {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(ca.ServerPEM, ca.ServerPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	r := &Recorder{Addr: ln.Addr().String(), ln: ln}
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := new([]byte)
			r.mu.Lock()
			r.got = append(r.got, buf)
			r.mu.Unlock()
			r.wg.Add(1)
			go r.relay(c, target, buf)
		}
	}()
	return r
}

func (r *Recorder) relay(c net.Conn, target string, buf *[]byte) {
	defer r.wg.Done()
	defer c.Close()
	d := &net.Dialer{Timeout: 5 * time.Second}
	s, err := tls.DialWithDialer(d, "tcp", target, &tls.Config{InsecureSkipVerify: true, ServerName: Host})
	if err != nil {
		return
	}
	defer s.Close()
	go func() { io.Copy(c, s); c.Close() }()
	b := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		n, err := c.Read(b)
		if n > 0 {
			r.mu.Lock()
			*buf = append(*buf, b[:n]...)
			r.mu.Unlock()
			if _, err := s.Write(b[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

var streamStart = regexp.MustCompile(`(<\?xml[^>]*\?>\s*)?<stream:stream[\s>]`)

// Streams is what the clients sent so far, one stream per element: a
// connection's bytes cut where the client restarts its stream (after
// SASL), each piece from its stream header on.
func (r *Recorder) Streams() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, b := range r.got {
		idx := streamStart.FindAllIndex(*b, -1)
		for i, at := range idx {
			end := len(*b)
			if i+1 < len(idx) {
				end = idx[i+1][0]
			}
			out = append(out, append([]byte(nil), (*b)[at[0]:end]...))
		}
	}
	return out
}
