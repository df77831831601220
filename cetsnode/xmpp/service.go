// Package xmpp is the cluster node's XMPP service: it serves the migrated
// accounts to their clients (c2s) from the exported PostgreSQL data, with
// every session registered in the node's replicated session table so
// that every node knows where every resource is. It is a cetsnode.Service;
// `mimmigrate node start --config ejabberd.yml` runs it.
package xmpp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/c2s"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/certs"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/config"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/sasl"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/stanza"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/storage"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/codec"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// ServiceName is the registered name the service's messages between nodes
// come to.
const ServiceName = term.Atom("mimmigrate_c2s")

// Options configure the service.
type Options struct {
	Config *config.Config
	DB     *mimsql.DB
	// Secret is shared by the cluster's nodes (see Secret).
	Secret []byte
	Log    *slog.Logger
	// Standby: start without opening the c2s listeners; Serve opens them
	// (a cutover marks the nodes ready). /healthz answers 503 until then.
	Standby bool
}

// Secret derives the cluster's shared secret (SASL decoys) from the
// Erlang cookie and the cluster name.
func Secret(cookie, cluster string) []byte {
	h := sha256.Sum256([]byte("mimmigrate xmpp\x00" + cookie + "\x00" + cluster))
	return h[:]
}

// Service is the XMPP service of one node.
type Service struct {
	opt   Options
	log   *slog.Logger
	certs *certs.Store
	store *storage.Store
	node  *cetsnode.Node
	c2s   *c2s.Service
	addrs []net.Addr
	ready atomic.Bool
	// serveMu: Serve opens the listeners once.
	serveMu sync.Mutex

	mu     sync.Mutex
	local  map[string]*local    // this node's sessions, by SID key
	byConn map[*c2s.Conn]*local // the same, by connection

	serverIQs, userIQs map[string]iqHandler
	privacy            privacyCache
	photos             sync.Map // bare JID → photoCached (mod_vcard_xupdate's hash)
	pings              sync.Map // the server's pings waiting for an answer: id → *local
	caps               capsCache
	capsVerOnce        sync.Once
	capsVer            string
	started            time.Time
	stats              routeStats
}

// routeStats count what the router did (for /metrics).
type routeStats struct {
	routed, remote, routingErrors, peerDownPresence, offlineStored, offlineDelivered, archived atomic.Int64
}

// New checks the configuration (certificates for every host a c2s
// listener serves) and makes the service.
func New(opt Options) (*Service, error) {
	cfg := opt.Config
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{opt: opt, log: opt.Log, local: map[string]*local{}, byConn: map[*c2s.Conn]*local{}}
	s.iqHandlers()
	if len(cfg.Listeners) > 0 {
		st, err := certs.Load(cfg.Certfiles)
		if err != nil {
			return nil, &config.Error{Msg: "certfiles: " + err.Error()}
		}
		for _, h := range cfg.Hosts {
			if !st.Covers(h) {
				s.log.Warn("no certificate names the host: clients that check it will refuse the connection", "host", h)
			}
		}
		for _, e := range st.Expired {
			s.log.Warn("a certificate has expired", "certificate", e)
		}
		s.certs = st
	}
	return s, nil
}

// Name is the service's registered name.
func (s *Service) Name() term.Atom { return ServiceName }

// Start opens the database and the listeners.
func (s *Service) Start(ctx context.Context, n *cetsnode.Node) error {
	s.node, s.started = n, time.Now()
	store, err := storage.Open(ctx, s.opt.DB.Pool)
	if err != nil {
		return err
	}
	if !store.Multihost && len(s.opt.Config.Hosts) > 1 {
		return &config.Error{Msg: fmt.Sprintf("the database holds ejabberd's single-host schema (pg.sql) but the configuration has %d hosts", len(s.opt.Config.Hosts))}
	}
	s.store = store
	cfg := s.opt.Config
	var sm *c2s.SMOptions
	if c := cfg.SM; c != nil {
		sm = &c2s.SMOptions{ResumeTimeout: c.ResumeTimeout, MaxResumeTimeout: c.MaxResumeTimeout, AckTimeout: c.AckTimeout,
			MaxAckQueue: c.MaxAckQueue, ResendOnTimeout: c.ResendOnTimeout}
	}
	s.c2s = c2s.New(c2s.Options{SM: sm, Hosts: cfg.Hosts, Certs: s.certs, Backend: s, Secret: s.opt.Secret, Lang: cfg.Language,
		Policy:             sasl.Policy{PasswordFormat: cfg.Auth.PasswordFormat, ScramHash: sasl.Hash(cfg.Auth.ScramHash), Disabled: cfg.Auth.DisabledMechanisms},
		NegotiationTimeout: cfg.NegotiationTimeout, Fail2ban: cfg.Fail2ban, Log: s.log, MaxConnections: maxConnections(cfg.SQL.PoolSize)})
	if s.opt.Standby {
		s.log.Info("standby: the c2s listeners open when a cutover marks the node ready")
		return nil
	}
	return s.Serve()
}

// Serve opens the c2s listeners (at start, or when a cutover marks a
// standby node ready); once they are open it does nothing.
func (s *Service) Serve() error {
	s.serveMu.Lock()
	defer s.serveMu.Unlock()
	if s.ready.Load() {
		return nil
	}
	if s.c2s == nil {
		return fmt.Errorf("the service has not started")
	}
	for _, l := range s.opt.Config.Listeners {
		if l.WebSocket != "" {
			addr, err := s.c2s.ListenWebSocket(l)
			if err != nil {
				s.c2s.Close()
				return fmt.Errorf("WebSocket listener %s: %w", l.Addr(), err)
			}
			s.log.Info("WebSocket listening", "addr", addr.String(), "path", l.WebSocket, "tls", l.TLS)
			s.addrs = append(s.addrs, addr)
			continue
		}
		addr, err := s.c2s.Listen(l)
		if err != nil {
			s.c2s.Close()
			return fmt.Errorf("c2s listener %s: %w", l.Addr(), err)
		}
		s.log.Info("c2s listening", "addr", addr.String(), "tls", l.TLS, "starttls_required", l.StartTLSRequired)
		s.addrs = append(s.addrs, addr)
	}
	s.ready.Store(true)
	return nil
}

// Standby reports whether the service waits for Serve.
func (s *Service) Standby() bool { return s.opt.Standby && !s.ready.Load() }

// CertificateProblems names the virtual hosts no loaded certificate
// covers, and the expired certificates.
func (s *Service) CertificateProblems() []string {
	var out []string
	if s.certs == nil {
		return out
	}
	for _, h := range s.opt.Config.Hosts {
		if !s.certs.Covers(h) {
			out = append(out, "no certificate names "+h)
		}
	}
	for _, e := range s.certs.Expired {
		out = append(out, "expired: "+e)
	}
	return out
}

// Close ends every connection (system-shutdown) and stops the listeners.
func (s *Service) Close() {
	s.ready.Store(false)
	if s.c2s != nil {
		s.c2s.Close()
	}
}

// Addrs are the addresses the c2s listeners listen on.
func (s *Service) Addrs() []net.Addr { return s.addrs }

// Ready reports whether the service serves c2s.
func (s *Service) Ready() bool { return s.ready.Load() }

// Stats are the connections' counters.
func (s *Service) Stats() *c2s.Stats { return &s.c2s.Stats }

// Credentials reads an account.
func (s *Service) Credentials(ctx context.Context, host, user string) (sasl.Credentials, error) {
	return s.store.Credentials(ctx, host, user)
}

func sidKey(sid term.Tuple) string { return term.Format(sid) }

// olderSID orders session ids by their start time, then node.
func olderSID(a, b term.Tuple) bool {
	ta, _ := term.Int(a[0])
	tb, _ := term.Int(b[0])
	if ta != tb {
		return ta < tb
	}
	return term.Format(a) < term.Format(b)
}

// Bind opens a session as ejabberd does: resource_conflict decides what a
// resource already bound means (acceptnew and closeold replace the old
// session, closenew refuses, setresource picks another resource), and
// max_user_sessions closes the user's oldest sessions past the limit.
func (s *Service) Bind(ctx context.Context, c *c2s.Conn, resource string) (jid.JID, *stanza.Error) {
	cfg := s.opt.Config
	host, user := c.Host(), c.User()
	if resource == "" {
		resource = c2s.NewResource()
	}
	if len(s.node.Sessions.Full(host, user, resource)) > 0 {
		switch cfg.ResourceConflict {
		case "closenew":
			return jid.JID{}, stanza.NewError("conflict", "")
		case "setresource":
			resource = c2s.NewResource()
		}
	}
	sess := cetsnode.Session{Server: host, User: user, Resource: resource, SID: s.node.Sessions.NewSID(),
		Info: term.List{term.Tuple{term.Atom("ip"), term.Binary(c.IP().String())}, term.Tuple{term.Atom("conn"), term.Atom(connKind(c))}}}
	sess.Node = s.node.Self()
	key := sidKey(sess.SID)
	l := &local{conn: c, sess: sess}
	s.mu.Lock()
	s.local[key], s.byConn[c] = l, l
	s.mu.Unlock()
	if err := s.node.Sessions.Register(ctx, sess); err != nil {
		s.mu.Lock()
		delete(s.local, key)
		delete(s.byConn, c)
		s.mu.Unlock()
		s.log.Warn("registering a session failed", "err", err)
		return jid.JID{}, stanza.NewError("internal-server-error", "")
	}
	s.startPing(l)
	for _, o := range s.node.Sessions.Full(host, user, resource) {
		if sidKey(o.SID) != key && olderSID(o.SID, sess.SID) {
			s.kick(o, "conflict", "Replaced by new connection")
		}
	}
	if max := cfg.MaxUserSessions; max > 0 {
		all := s.node.Sessions.Bare(host, user)
		sort.Slice(all, func(i, j int) bool { return olderSID(all[i].SID, all[j].SID) })
		for i := 0; i < len(all)-max; i++ {
			if sidKey(all[i].SID) != key {
				s.kick(all[i], "conflict", "Replaced by new connection")
			}
		}
	}
	return jid.JID{Local: user, Domain: host, Resource: resource}, nil
}

func connKind(c *c2s.Conn) string {
	if c.Encrypted() {
		return "c2s_tls"
	}
	return "c2s"
}

// kick ends a session wherever it is, with a stream error.
func (s *Service) kick(sess cetsnode.Session, condition, text string) {
	msg := term.Tuple{term.Atom("kick"), sess.SID, term.Binary(condition), term.Binary(text)}
	if err := s.node.Send(sess.Node, ServiceName, msg); err != nil {
		s.log.Warn("kicking a session failed", "node", sess.Node, "err", err)
	}
}

// Deliver takes a message from the service on another node.
func (s *Service) Deliver(from term.Atom, msg term.Term) {
	tu, ok := msg.(term.Tuple)
	if !ok || len(tu) == 0 {
		s.log.Warn("malformed message from another node dropped", "from", from)
		return
	}
	switch {
	case term.IsAtom(tu[0], "kick") && len(tu) == 4:
		sid, ok1 := tu[1].(term.Tuple)
		cond, ok2 := term.Text(tu[2])
		text, ok3 := term.Text(tu[3])
		if !ok1 || !ok2 || !ok3 {
			break
		}
		s.mu.Lock()
		l := s.local[sidKey(sid)]
		s.mu.Unlock()
		if l != nil {
			l.conn.Close(cond, text)
		}
		return
	case term.IsAtom(tu[0], "resend_presence") && len(tu) == 3:
		sid, ok1 := tu[1].(term.Tuple)
		to, ok2 := term.Text(tu[2])
		if j, err := jid.Parse(to); ok1 && ok2 && err == nil {
			s.resendPresence(cetsnode.Session{SID: sid, Node: s.node.Self()}, j)
			return
		}
	case term.IsAtom(tu[0], "forget") && len(tu) == 3:
		kind, ok1 := tu[1].(term.Atom)
		u, ok2 := term.Text(tu[2])
		if j, err := jid.Parse(u); ok1 && ok2 && err == nil {
			s.forget(string(kind), j)
			return
		}
	case term.IsAtom(tu[0], "update_presence") && len(tu) == 2:
		if sid, ok := tu[1].(term.Tuple); ok {
			s.updatePresence(sid)
			return
		}
	case term.IsAtom(tu[0], "route") && (len(tu) == 3 || len(tu) == 4):
		var m meta
		if len(tu) == 4 {
			m, _ = parseMeta(tu[3])
		}
		if sid, ok := tu[1].(term.Tuple); ok && s.routed(from, sid, tu[2], m) {
			return
		}
	}
	s.log.Warn("malformed message from another node dropped", "from", from, "msg", term.Short(msg))
}

// Unbind closes a session: it leaves the session table, then its
// presence ends (ejabberd's process_terminated).
func (s *Service) Unbind(c *c2s.Conn) {
	s.mu.Lock()
	l := s.byConn[c]
	if l != nil {
		delete(s.byConn, c)
		l.mu.Lock()
		delete(s.local, sidKey(l.sess.SID))
		l.mu.Unlock()
	}
	s.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	sess := l.sess
	l.mu.Unlock()
	s.stopPing(l)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.node.Sessions.Unregister(ctx, sess); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("unregistering a session failed", "err", err)
	}
	s.closed(l)
}

// Undelivered takes a stanza queued for a session that was not written
// (the connection closed first): as one routed to a session that ended.
func (s *Service) Undelivered(_ *c2s.Conn, el *codec.Element) { s.undeliverable(el) }

// Features lists the modules' stream features after bind and session.
func (s *Service) Features(c *c2s.Conn) []*codec.Element {
	var out []*codec.Element
	if s.rosterOn() && s.opt.Config.Roster.Versioning {
		out = append(out, &codec.Element{Name: "ver", Attrs: [][2]string{{"xmlns", nsRosterVer}}})
	}
	if s.csiOn() {
		out = append(out, &codec.Element{Name: "csi", Attrs: [][2]string{{"xmlns", nsCSI}}})
	}
	if s.capsOn() && s.discoOn() {
		out = append(out, s.serverCaps())
	}
	return out
}

// Handle routes a stanza of an established session (addressed and
// written as ejabberd's codec writes it): presence goes through the
// session's presence state, everything else to the router.
func (s *Service) Handle(c *c2s.Conn, el *codec.Element) {
	if el.Name == "presence" {
		s.mu.Lock()
		l := s.byConn[c]
		s.mu.Unlock()
		if l != nil {
			s.presenceOut(l, el)
		}
		return
	}
	if el.Name == "iq" && s.capsAnswer(el) {
		return
	}
	if s.pingsOn() {
		s.mu.Lock()
		l := s.byConn[c]
		s.mu.Unlock()
		if l != nil {
			s.startPing(l)
		}
	}
	if el.Name == "message" {
		if from, err := jid.Parse(stanza.Attr(el, "from")); err == nil {
			var marked *codec.Element
			el, marked = s.archiveSent(from, el)
			s.carbonCopies(from, marked, true, meta{})
		}
	}
	if s.privacyOn() {
		s.mu.Lock()
		l := s.byConn[c]
		s.mu.Unlock()
		if l != nil && !s.privacyOut(l, el) {
			return
		}
	}
	s.Route(el)
}

// SessionsHere is the number of sessions on this node.
func (s *Service) SessionsHere() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.local)
}

// maxConnections leaves, of the process's open-file limit, enough for
// the database pool and the node's own files and connections.
func maxConnections(poolSize int) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<24 {
		return 0
	}
	n := int(rl.Cur) - 2*max(poolSize, 10) - 64
	return max(n, 16)
}
