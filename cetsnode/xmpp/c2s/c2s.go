// Package c2s serves client-to-server XMPP connections (RFC 6120): the
// listeners (TCP with STARTTLS, or direct TLS per XEP-0368), the stream
// negotiation as ejabberd 23.01 does it on the wire (its header, its
// features, its errors), SASL, resource binding and the legacy session
// IQ. What happens to an established session's stanzas is the Backend's.
package c2s

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/certs"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/config"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/sasl"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
)

// Backend is what connections need from the rest of the service.
type Backend interface {
	// Credentials finds an account (sasl.ErrNoUser when there is none).
	Credentials(ctx context.Context, host, user string) (sasl.Credentials, error)
	// Bind opens the session of an authenticated connection for a
	// resource (already prepared; empty: the backend picks one) and
	// returns its full JID, or a stanza error condition (conflict,
	// not-allowed, …).
	Bind(ctx context.Context, c *Conn, resource string) (jid.JID, *StanzaError)
	// Unbind closes the session of a bound connection that ends.
	Unbind(c *Conn)
	// Handle takes a stanza of an established session, its from set to
	// the session's JID and its to to the user's bare JID when missing.
	Handle(c *Conn, el *codec.Element)
	// Features lists the stream features of an authenticated stream
	// beyond bind and session.
	Features(c *Conn) []*codec.Element
	// Undelivered takes a stanza routed to the session that was not
	// written: the connection closed, or its output queue overflowed.
	Undelivered(c *Conn, el *codec.Element)
	// Resume finds the session with stream management that a connection
	// of its user resumes (the resource and id of its resumption id): its
	// connection on this node, or a *ResumeError.
	Resume(ctx context.Context, c *Conn, resource string, id []byte) (*Conn, error)
	// Resumed moves the session of old to c.
	Resumed(old, c *Conn)
	// Unacked takes a stanza the client of a session that ended had not
	// acknowledged: resend says it goes where it would go now (else
	// ejabberd bounces or drops it).
	Unacked(c *Conn, el *codec.Element, resend bool)
	// Offline reports whether the user of a session that ends has no
	// other session (or only one of the same resource).
	Offline(c *Conn) bool
	// CSI takes a client's state indication (XEP-0352).
	CSI(c *Conn, active bool)
}

// Options configure the connections.
type Options struct {
	Hosts   []string
	Certs   *certs.Store
	Policy  sasl.Policy
	Backend Backend
	// Secret keys SASL's decoys (the same on every node).
	Secret []byte
	Lang   string
	// NegotiationTimeout bounds the time from connecting to a bound
	// session (30 s).
	NegotiationTimeout time.Duration
	// Keepalive is how often an idle established stream gets a
	// whitespace keepalive (60 s).
	Keepalive time.Duration
	// WriteTimeout bounds every write (30 s).
	WriteTimeout time.Duration
	Fail2ban     config.Fail2ban
	// MaxConnections bounds the open client connections (0: no bound but
	// the process's open-file limit): past it accepting pauses, so that
	// the files the node needs besides (the database pool, the cluster's
	// connections) stay available.
	MaxConnections int
	// SM are the stream management options (nil: not offered).
	SM  *SMOptions
	Log *slog.Logger
}

// Stats are the connection counters (for /metrics).
type Stats struct {
	LoginsOK, LoginsFailed, Throttled, StanzasIn, StanzasOut atomic.Int64
	// ByMechanism counts successful (true) and failed (false) logins.
	mu          sync.Mutex
	ByMechanism map[string][2]int64
}

func (s *Stats) login(mech string, ok bool) {
	if ok {
		s.LoginsOK.Add(1)
	} else {
		s.LoginsFailed.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ByMechanism == nil {
		s.ByMechanism = map[string][2]int64{}
	}
	v := s.ByMechanism[mech]
	if ok {
		v[0]++
	} else {
		v[1]++
	}
	s.ByMechanism[mech] = v
}

// Mechanisms returns a copy of the per-mechanism login counts.
func (s *Stats) Mechanisms() map[string][2]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][2]int64, len(s.ByMechanism))
	for k, v := range s.ByMechanism {
		out[k] = v
	}
	return out
}

// Service accepts and serves connections.
type Service struct {
	opt   Options
	log   *slog.Logger
	bans  *fail2ban
	Stats Stats

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*Conn]struct{}
	closed    bool
	closedCh  chan struct{}
	paused    atomic.Bool // accepting is paused (one log line for all listeners)
	wg        sync.WaitGroup
	sids      atomic.Uint64
}

// New makes a service; Listen starts its listeners.
func New(opt Options) *Service {
	if opt.NegotiationTimeout <= 0 {
		opt.NegotiationTimeout = 30 * time.Second
	}
	if opt.Keepalive <= 0 {
		opt.Keepalive = 60 * time.Second
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = 30 * time.Second
	}
	if opt.Lang == "" {
		opt.Lang = "en"
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Fail2ban.MaxFailures <= 0 {
		opt.Fail2ban.MaxFailures = 20
	}
	if opt.Fail2ban.BanLifetime <= 0 {
		opt.Fail2ban.BanLifetime = time.Hour
	}
	return &Service{opt: opt, log: opt.Log, bans: newFail2ban(opt.Fail2ban), conns: map[*Conn]struct{}{}, closedCh: make(chan struct{})}
}

// Listen opens a listener and serves it until Close. It returns the
// address listened on (useful with port 0).
func (s *Service) Listen(l config.Listener) (net.Addr, error) {
	ln, err := s.listen(l, nil)
	if err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.accept(ln, l)
	return ln.Addr(), nil
}

// listen opens a listener (wrapped, when wrap is given) that Close
// closes.
func (s *Service) listen(l config.Listener, wrap func(net.Listener) net.Listener) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: 30 * time.Second}
	ln, err := lc.Listen(context.Background(), "tcp", l.Addr())
	if err != nil {
		return nil, err
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return nil, errors.New("the service is closed")
	}
	s.listeners = append(s.listeners, ln)
	return ln, nil
}

// accept serves a listener. When the process runs out of file
// descriptors it pauses (one log line), retrying while connections end,
// and says when it accepts again.
func (s *Service) accept(ln net.Listener, l config.Listener) {
	defer s.wg.Done()
	paused := false
	delay := 5 * time.Millisecond
	for {
		if max := s.opt.MaxConnections; max > 0 {
			for s.open() >= max {
				if !paused {
					paused = true
					if s.paused.CompareAndSwap(false, true) {
						s.log.Warn("accepting paused: the connection limit is reached", "connections", max)
					}
				}
				select {
				case <-s.closedCh:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				if !paused {
					paused = true
					if s.paused.CompareAndSwap(false, true) {
						s.log.Warn("accepting paused: out of file descriptors", "err", err)
					}
				}
				time.Sleep(delay)
				delay = min(delay*2, time.Second)
				continue
			}
			s.log.Warn("accept failed", "listener", ln.Addr().String(), "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if paused {
			if s.paused.CompareAndSwap(true, false) {
				s.log.Info("accepting again")
			}
			paused = false
			delay = 5 * time.Millisecond
		}
		c := s.newConn(nc, l)
		if c == nil {
			nc.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
		}()
	}
}

func (s *Service) newConn(nc net.Conn, l config.Listener) *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	ip := netip.Addr{}
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
	}
	c := &Conn{s: s, raw: nc, nc: nc, ip: ip, listener: l, lang: s.opt.Lang, started: time.Now(), done: make(chan struct{}),
		sid: s.sids.Add(1), maxOut: l.MaxFSMQueue}
	if c.maxOut <= 0 {
		c.maxOut = config.DefaultMaxFSMQueue
	}
	c.log = s.log.With("remote", nc.RemoteAddr().String())
	s.conns[c] = struct{}{}
	return c
}

func (s *Service) forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Service) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Conns lists the connections open now.
func (s *Service) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Close stops the listeners and ends every connection with a
// system-shutdown stream error, then waits for them.
func (s *Service) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.closedCh)
	lns := s.listeners
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		c.Close("system-shutdown", "")
	}
	s.wg.Wait()
}

// newStreamID is a stream id as ejabberd makes them (a random number).
func newStreamID() string {
	var b [8]byte
	rand.Read(b[:])
	n := uint64(0)
	for _, x := range b {
		n = n<<8 | uint64(x)
	}
	return formatUint(n)
}

func formatUint(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// NewResource is a resource for a client that asked for none.
func NewResource() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
