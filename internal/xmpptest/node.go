package xmpptest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp"
	xmppconfig "github.com/mimmigrate/mimmigrate/cetsnode/xmpp/config"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// Node is a Go cluster node serving XMPP in the test process.
type Node struct {
	Node *cetsnode.Node
	XMPP *xmpp.Service
	// StartTLS and DirectTLS are the c2s listeners' addresses.
	StartTLS, DirectTLS string
	Config              string // the ejabberd.yml it was started with
	Log                 *LogBuffer
}

// Config is an ejabberd.yml for the bed: its host and certificate, a c2s
// listener with STARTTLS required and one with direct TLS, SCRAM stored,
// and mod_fail2ban; extra is appended (top-level options).
func (b *Bed) Config(startTLSPort, directTLSPort int, extra string) string {
	return b.ConfigOn("127.0.0.1", startTLSPort, directTLSPort, extra)
}

// ConfigOn is Config with the listeners on ip.
func (b *Bed) ConfigOn(ip string, startTLSPort, directTLSPort int, extra string) string {
	yml := fmt.Sprintf(`hosts:
  - %[1]s
certfiles:
  - %[2]s
loglevel: info
auth_method: sql
auth_password_format: scram
sql_type: pgsql
listen:
  -
    port: %[3]d
    ip: "%[5]s"
    module: ejabberd_c2s
    max_stanza_size: 262144
    starttls_required: true
  -
    port: %[4]d
    ip: "%[5]s"
    module: ejabberd_c2s
    max_stanza_size: 262144
    tls: true
`, Host, b.CA.ServerPEM, startTLSPort, directTLSPort, ip)
	if !strings.Contains(extra, "modules:") {
		extra += "modules:\n  mod_fail2ban: {}\n"
	}
	return yml + extra
}

// StartNode starts a node of cluster (all nodes of one cluster name find
// each other through the bed's database) serving XMPP with the bed's
// configuration plus extra; it stops when the test ends.
func (b *Bed) StartNode(t testing.TB, cluster, extra string) *Node {
	t.Helper()
	return b.StartNodeOn(t, "127.0.0.1", cluster, extra)
}

// StartNodeOn is StartNode with the listeners on ip.
func (b *Bed) StartNodeOn(t testing.TB, ip, cluster, extra string) *Node {
	t.Helper()
	yml := b.ConfigOn(ip, testenv.FreePort(t), testenv.FreePort(t), extra)
	path := filepath.Join(t.TempDir(), "ejabberd.yml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := xmppconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db := testenv.DB(t, b.DBURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := cetsnode.NewPostgresDiscovery(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	cookie := "cookie-" + cluster
	svc, err := xmpp.New(xmpp.Options{Config: cfg, DB: db, Secret: xmpp.Secret(cookie, cluster), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	nc := cetsnode.DefaultConfig()
	nc.Name, nc.Cookie, nc.Store, nc.Logger, nc.ClusterName = "xn"+testenv.RandomID(6)+"@127.0.0.1", cookie, store, log, cluster
	nc.ListenAddr, nc.CheckInterval, nc.NetTickTime, nc.CallTimeout = "127.0.0.1:0", 500*time.Millisecond, 8*time.Second, 10*time.Second
	nc.Services = []cetsnode.Service{svc}
	n, err := cetsnode.Start(ctx, nc)
	if err != nil {
		t.Fatalf("starting the node: %v\n%s", err, logs.String())
	}
	t.Cleanup(func() {
		n.Close()
		if t.Failed() {
			t.Logf("node log:\n%s", testenv.Tail(logs.String(), 8000))
		}
	})
	addrs := svc.Addrs()
	return &Node{Node: n, XMPP: svc, StartTLS: addrs[0].String(), DirectTLS: addrs[1].String(), Config: path, Log: logs}
}

// LogBuffer collects a node's log lines (safe for its goroutines).
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything logged so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
