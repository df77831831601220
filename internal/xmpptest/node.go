package xmpptest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	// WebSocket is the URL of XMPP over WebSocket (wss://…/ws).
	WebSocket string
	Config    string // the ejabberd.yml it was started with
	Log       *LogBuffer
}

// Config is an ejabberd.yml for the bed: its host and certificate, a c2s
// listener with STARTTLS required and one with direct TLS, SCRAM stored,
// and mod_fail2ban; extra is appended (top-level options).
func (b *Bed) Config(startTLSPort, directTLSPort int, extra string) string {
	return b.ConfigOn("127.0.0.1", startTLSPort, directTLSPort, extra)
}

// ConfigOn is Config with the listeners on ip.
func (b *Bed) ConfigOn(ip string, startTLSPort, directTLSPort int, extra string) string {
	return b.configWS(ip, startTLSPort, directTLSPort, 0, extra)
}

// configWS is ConfigOn with, when wsPort is not 0, an ejabberd_http
// listener (TLS) serving WebSocket on /ws (and BOSH, which is not served).
func (b *Bed) configWS(ip string, startTLSPort, directTLSPort, wsPort int, extra string) string {
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
	if wsPort != 0 {
		yml += fmt.Sprintf(`  -
    port: %d
    ip: "%s"
    module: ejabberd_http
    tls: true
    request_handlers:
      /ws: ejabberd_http_ws
      /bosh: mod_bosh
`, wsPort, ip)
	}
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
	yml := b.configWS(ip, testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), extra)
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
	return &Node{Node: n, XMPP: svc, StartTLS: addrs[0].String(), DirectTLS: addrs[1].String(), WebSocket: "wss://" + addrs[2].String() + "/ws",
		Config: path, Log: logs}
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

// Proc is a Go node run as `mimmigrate node start --config` in its own
// process.
type Proc struct {
	Name, Cookie        string
	Cmd                 *exec.Cmd
	StartTLS, DirectTLS string
	Log                 *testenv.SyncBuffer
	exited              chan error
}

// StartNodeProcess starts a node of cluster (as StartNode) in a process of
// its own, so that a test can kill it; it is killed when the test ends.
func (b *Bed) StartNodeProcess(t testing.TB, cluster, extra string, args ...string) *Proc {
	t.Helper()
	starttls, direct := testenv.FreePort(t), testenv.FreePort(t)
	path := filepath.Join(t.TempDir(), "ejabberd.yml")
	if err := os.WriteFile(path, []byte(b.Config(starttls, direct, extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Log: &testenv.SyncBuffer{}, exited: make(chan error, 1),
		StartTLS: fmt.Sprintf("127.0.0.1:%d", starttls), DirectTLS: fmt.Sprintf("127.0.0.1:%d", direct)}
	p.Name, p.Cookie = "xp"+testenv.RandomID(6)+"@127.0.0.1", "cookie-"+cluster
	p.Cmd = exec.Command(b.Bin, append([]string{"node", "start", "--config", path, "--name", p.Name,
		"--cookie", p.Cookie, "--cluster-name", cluster, "--db", b.DBURL}, args...)...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Log, p.Log
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.Cmd.Wait() }()
	t.Cleanup(func() {
		p.Cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("node process log:\n%s", testenv.Tail(p.Log.String(), 8000))
		}
	})
	testenv.WaitFor(t, "the node process listening", 30*time.Second, func() (bool, string) {
		if slices.Contains(args, "--standby") && strings.Contains(p.Log.String(), "standby:") {
			return true, ""
		}
		return strings.Count(p.Log.String(), "c2s listening") == 2, p.Log.String()
	}, nil)
	return p
}

// Kill ends the process with SIGKILL and waits for it.
func (p *Proc) Kill() {
	p.Cmd.Process.Kill()
	err := <-p.exited
	p.exited <- err
}

// WaitClustered waits until every node's session table has the n-1
// others as members.
func WaitClustered(t testing.TB, n int, nodes ...*Node) {
	t.Helper()
	testenv.WaitFor(t, "the nodes joined", 60*time.Second, func() (bool, string) {
		for _, x := range nodes {
			if len(x.Node.Sessions.T.Nodes()) != n-1 {
				return false, fmt.Sprintf("%s has %v", x.Node.Name(), x.Node.Sessions.T.Nodes())
			}
		}
		return true, ""
	}, nil)
}
