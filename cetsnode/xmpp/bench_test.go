package xmpp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/sasl"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmppload"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// The XMPP service against ejabberd 23.01 on the same machine, the same
// database (ejabberd's schema, both servers on it with the same modules),
// the same load generator (internal/xmppload) in the same run: logins per
// second (SCRAM-SHA-1, PLAIN), memory per idle authenticated TLS session
// (RSS / sessions), one-to-one messages per second over connected pairs
// with latency percentiles, and an offline queue flushed at the first
// presence. Sizes: MIMMIGRATE_BENCH_SESSIONS (10000), _PAIRS (1000),
// _OFFLINE (1000).
//
//	go test -run XXX -bench XMPPVersusEjabberd -benchtime 1x -timeout 30m ./cetsnode/xmpp/
func BenchmarkXMPPVersusEjabberd(b *testing.B) {
	if bed == nil {
		b.Skip(bedWhy)
	}
	sessions := envInt("MIMMIGRATE_BENCH_SESSIONS", 10000)
	pairs := envInt("MIMMIGRATE_BENCH_PAIRS", 1000)
	offline := envInt("MIMMIGRATE_BENCH_OFFLINE", 1000)
	if 2*pairs > sessions {
		b.Fatalf("%d pairs need %d sessions", pairs, 2*pairs)
	}
	dbURL, drop, err := testenv.NewPostgresDB()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(drop)
	db := testenv.DB(b, dbURL)
	ctx := context.Background()
	if _, err := mimsql.Migrate(ctx, db, "ejabberd"); err != nil {
		b.Fatal(err)
	}
	// The accounts: SCRAM-SHA-1 as ejabberd stores it (one salt for all,
	// so that the load generator's PBKDF2 is done once).
	const password = "bench-password"
	creds, err := sasl.Policy{PasswordFormat: "scram"}.NewCredentials(password)
	if err != nil {
		b.Fatal(err)
	}
	sc := creds.SCRAM
	if _, err := db.Pool.Exec(ctx, `INSERT INTO users (username, password, serverkey, salt, iterationcount)
		SELECT 'b' || i, $1, $2, $3, $4 FROM generate_series(1, $5) AS i`,
		base64.StdEncoding.EncodeToString(sc.StoredKey), base64.StdEncoding.EncodeToString(sc.ServerKey),
		base64.StdEncoding.EncodeToString(sc.Salt), sc.Iterations, sessions+1); err != nil {
		b.Fatal(err)
	}
	modules := "modules:\n  mod_roster: {}\n  mod_offline: {}\n  mod_last: {}\n  mod_ping: {}\n"
	u, _ := url.Parse(dbURL)
	sqlCfg := fmt.Sprintf("sql_type: pgsql\nsql_server: %q\nsql_port: %s\nsql_database: %q\nsql_username: \"postgres\"\nsql_password: \"\"\nsql_pool_size: 10\n",
		u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/"))

	// ejabberd: SQL, STARTTLS required, the same certificate.
	base, err := os.MkdirTemp("", "mimmigrate-xbench-")
	if err != nil {
		b.Fatal(err)
	}
	pem, _ := os.ReadFile(bed.CA.ServerPEM)
	os.WriteFile(filepath.Join(base, "server.pem"), pem, 0o640)
	ej, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "xbench", Host: xmpptest.Host, Base: base, SQL: true, NoFile: hardNoFile(),
		ExtraConfig: sqlCfg + "certfiles:\n  - " + filepath.Join(base, "server.pem") + "\nnew_sql_schema: false\n",
		C2SOptions:  []string{"starttls: true", "starttls_required: true"}, Modules: modules})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ej.Destroy)

	// The Go node, as a process of its own (its RSS is its own).
	cfgPath := filepath.Join(b.TempDir(), "ejabberd.yml")
	goPort := testenv.FreePort(b)
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("hosts:\n  - %s\ncertfiles:\n  - %s\nauth_method: sql\nauth_password_format: scram\n%slisten:\n  -\n    port: %d\n    ip: \"127.0.0.1\"\n    module: ejabberd_c2s\n    max_stanza_size: 262144\n    starttls_required: true\n%s",
		xmpptest.Host, bed.CA.ServerPEM, sqlCfg, goPort, modules)), 0o600)
	cluster, cookie := "bench"+testenv.RandomID(4), "c"+testenv.RandomID(8)
	startNode := func(cfgPath string) (*exec.Cmd, *testenv.SyncBuffer) {
		node := exec.Command(bed.Bin, "node", "start", "--config", cfgPath, "--name", "xbench"+testenv.RandomID(4)+"@127.0.0.1",
			"--cookie", cookie, "--cluster-name", cluster, "--check-interval", "500ms")
		nodeLog := &testenv.SyncBuffer{}
		node.Stdout, node.Stderr = nodeLog, nodeLog
		if err := node.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { node.Process.Kill(); node.Wait() })
		testenv.WaitFor(b, "the Go node listening", 30*time.Second, func() (bool, string) {
			return strings.Contains(nodeLog.String(), "c2s listening"), nodeLog.String()
		}, nil)
		return node, nodeLog
	}
	node, log1 := startNode(cfgPath)

	caPEM, _ := os.ReadFile(bed.CA.CertFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: xmpptest.Host, ClientSessionCache: nil}
	scramClient, _ := scram.SHA1.NewClient("b1", password, "")
	servers := []struct {
		name string
		addr string
		pid  func() int
	}{
		{"ejabberd 23.01", fmt.Sprintf("127.0.0.1:%d", ej.C2SPort), ej.Pid},
		{"mimmigrate", fmt.Sprintf("127.0.0.1:%d", goPort), func() int { return node.Process.Pid }},
	}
	type result struct {
		scramRate, plainRate       float64
		kbPerSession               float64
		msgRate                    float64
		p50, p99, halfP50, halfP99 time.Duration
		flush                      time.Duration
		crossRate                  float64
		crossP50, crossP99         time.Duration
		crossHalfP50, crossHalfP99 time.Duration
	}
	results := make([]result, len(servers))
	for si, srv := range servers {
		opts := func(i int, mech, res string) xmppload.Options {
			user := "b" + strconv.Itoa(i)
			cl := scramClient // b1's, which keeps the salted password
			if i != 1 {
				cl, _ = scram.SHA1.NewClient(user, password, "")
			}
			return xmppload.Options{Addr: srv.addr, Host: xmpptest.Host, TLS: tlsConf, Mechanism: mech, User: user, Password: password, Resource: res, SCRAM: cl, Timeout: 30 * time.Second}
		}
		r := &results[si]
		// Logins per second: 8 workers for 5 s each mechanism, one account
		// (a client keeps its salted password: the server's work is
		// measured, with a new resource each time).
		for _, mech := range []string{"SCRAM-SHA-1", "PLAIN"} {
			var n atomic.Int64
			var failed atomic.Int64
			deadline := time.Now().Add(5 * time.Second)
			var wg sync.WaitGroup
			start := time.Now()
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; time.Now().Before(deadline); i += 8 {
						c, err := xmppload.Login(opts(1, mech, "login"+strconv.Itoa(i)))
						if err != nil {
							if failed.Add(1) == 1 {
								b.Logf("%s %s login: %v", srv.name, mech, err)
							}
							continue
						}
						c.Close()
						n.Add(1)
					}
				}()
			}
			wg.Wait()
			rate := float64(n.Load()) / time.Since(start).Seconds()
			if mech == "PLAIN" {
				r.plainRate = rate
			} else {
				r.scramRate = rate
			}
		}
		time.Sleep(2 * time.Second)
		// Memory per idle authenticated TLS session.
		rss0 := rssKB(srv.pid())
		clients := make([]*xmppload.Client, sessions)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		var failures atomic.Int64
		var firstErr sync.Once
		for i := 0; i < sessions; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				c, err := xmppload.Login(opts(i+1, "SCRAM-SHA-1", "idle"))
				if err != nil {
					failures.Add(1)
					firstErr.Do(func() { b.Logf("%s: session %d: %v", srv.name, i, err) })
					return
				}
				clients[i] = c
			}()
		}
		wg.Wait()
		if n := failures.Load(); n > 0 {
			b.Fatalf("%s: %d of %d sessions failed to open", srv.name, n, sessions)
		}
		time.Sleep(3 * time.Second)
		r.kbPerSession = float64(rssKB(srv.pid())-rss0) / float64(sessions)

		// Messages: pairs of the open sessions, sender 2i to receiver
		// 2i+1's full JID, the send time in the body.
		senders, receivers := make([]*xmppload.Client, pairs), make([]*xmppload.Client, pairs)
		for p := 0; p < pairs; p++ {
			senders[p], receivers[p] = clients[2*p], clients[2*p+1]
		}
		r.msgRate, r.p50, r.p99, r.halfP50, r.halfP99 = messages(b, srv.name, senders, receivers)
		for _, c := range clients {
			c.Close()
		}
		time.Sleep(2 * time.Second)

		// Offline: a queue stored for a user, flushed at its presence.
		user := "b" + strconv.Itoa(sessions+1)
		if _, err := db.Pool.Exec(ctx, `INSERT INTO spool (username, xml)
			SELECT $1, '<message xml:lang=''en'' to=''' || $1 || '@localhost'' from=''b1@localhost/x'' type=''chat'' id=''o' || i || ''' xmlns=''jabber:client''><delay from=''localhost'' stamp=''2026-12-01T10:00:00Z'' xmlns=''urn:xmpp:delay''>Offline Storage</delay><body>offline ' || i || '</body></message>'
			FROM generate_series(1, $2) AS i`, user, offline); err != nil {
			b.Fatal(err)
		}
		c, err := xmppload.Login(opts(sessions+1, "SCRAM-SHA-1", "flush"))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		c.Send("<presence/>")
		got := 0
		for got < offline {
			el, err := c.Next(30 * time.Second)
			if err != nil {
				b.Fatalf("%s: offline flush: %d of %d: %v", srv.name, got, offline, err)
			}
			if el.Name == "message" {
				got++
			}
		}
		r.flush = time.Since(start)
		c.Close()
	}
	// Across two nodes: a second ejabberd joined to the first one's
	// (Mnesia) cluster on the same database, a second Go node in the first
	// one's cluster; senders on the first node, receivers on the second.
	base2, _ := os.MkdirTemp("", "mimmigrate-xbench2-")
	os.WriteFile(filepath.Join(base2, "server.pem"), pem, 0o640)
	ej2, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "xbench2", Host: xmpptest.Host, Base: base2, Cookie: ej.Cookie, SQL: true, NoFile: hardNoFile(),
		ExtraConfig: sqlCfg + "certfiles:\n  - " + filepath.Join(base2, "server.pem") + "\nnew_sql_schema: false\n",
		C2SOptions:  []string{"starttls: true", "starttls_required: true"}, Modules: modules})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ej2.Destroy)
	if err := ej2.JoinCluster(ej); err != nil {
		b.Fatal(err)
	}
	cfg2 := filepath.Join(b.TempDir(), "ejabberd.yml")
	goPort2 := testenv.FreePort(b)
	yml, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfg2, []byte(strings.Replace(string(yml), fmt.Sprintf("port: %d", goPort), fmt.Sprintf("port: %d", goPort2), 1)), 0o600)
	_, log2 := startNode(cfg2)
	testenv.WaitFor(b, "the second Go node joined", 60*time.Second, func() (bool, string) {
		return regexp.MustCompile(`msg=joined .*table=session`).MatchString(log1.String() + log2.String()), ""
	}, func() {
		b.Logf("first node:\n%s\nsecond node:\n%s", testenv.Tail(log1.String(), 4000), testenv.Tail(log2.String(), 4000))
	})
	cross := []struct{ name, addr, addr2 string }{
		{"ejabberd 23.01", servers[0].addr, fmt.Sprintf("127.0.0.1:%d", ej2.C2SPort)},
		{"mimmigrate", servers[1].addr, fmt.Sprintf("127.0.0.1:%d", goPort2)},
	}
	for ci, x := range cross {
		senders, receivers := make([]*xmppload.Client, pairs), make([]*xmppload.Client, pairs)
		for i := 0; i < 2*pairs; i++ {
			addr, into, k := x.addr, senders, i
			if i >= pairs {
				addr, into, k = x.addr2, receivers, i-pairs
			}
			user := "b" + strconv.Itoa(i+1)
			cl, _ := scram.SHA1.NewClient(user, password, "")
			c, err := xmppload.Login(xmppload.Options{Addr: addr, Host: xmpptest.Host, TLS: tlsConf, Mechanism: "SCRAM-SHA-1", User: user, Password: password, Resource: "x", SCRAM: cl, Timeout: 30 * time.Second})
			if err != nil {
				b.Fatalf("%s across nodes: %v", x.name, err)
			}
			into[k] = c
		}
		// Both clusters copy a new session to the other node
		// asynchronously: a message sent before would go offline.
		time.Sleep(2 * time.Second)
		r := &results[ci]
		r.crossRate, r.crossP50, r.crossP99, r.crossHalfP50, r.crossHalfP99 = messages(b, x.name+" across nodes", senders, receivers)
		for _, c := range append(senders, receivers...) {
			c.Close()
		}
	}
	e, g := results[0], results[1]
	report := fmt.Sprintf(`XMPP, %d sessions, %d pairs, %d offline messages (ejabberd 23.01 | mimmigrate | ratio)
  logins/s SCRAM-SHA-1      %8.0f | %8.0f | %.2f×
  logins/s PLAIN            %8.0f | %8.0f | %.2f×
  KB per idle TLS session   %8.1f | %8.1f | %.2f×
  messages/s (saturated)    %8.0f | %8.0f | %.2f×
    p50 / p99               %8s / %s | %s / %s
  at half of each one's rate p50 / p99: %s / %s | %s / %s
  offline flush             %8s | %8s
  across two nodes: messages/s %8.0f | %8.0f | %.2f×
    p50 / p99               %8s / %s | %s / %s
  at half of each one's rate p50 / p99: %s / %s | %s / %s`,
		sessions, pairs, offline,
		e.scramRate, g.scramRate, g.scramRate/e.scramRate,
		e.plainRate, g.plainRate, g.plainRate/e.plainRate,
		e.kbPerSession, g.kbPerSession, g.kbPerSession/e.kbPerSession,
		e.msgRate, g.msgRate, g.msgRate/e.msgRate,
		e.p50.Round(time.Millisecond), e.p99.Round(time.Millisecond), g.p50.Round(time.Millisecond), g.p99.Round(time.Millisecond),
		e.halfP50.Round(time.Millisecond), e.halfP99.Round(time.Millisecond), g.halfP50.Round(time.Millisecond), g.halfP99.Round(time.Millisecond),
		e.flush.Round(time.Millisecond), g.flush.Round(time.Millisecond),
		e.crossRate, g.crossRate, g.crossRate/e.crossRate,
		e.crossP50.Round(time.Millisecond), e.crossP99.Round(time.Millisecond), g.crossP50.Round(time.Millisecond), g.crossP99.Round(time.Millisecond),
		e.crossHalfP50.Round(time.Millisecond), e.crossHalfP99.Round(time.Millisecond), g.crossHalfP50.Round(time.Millisecond), g.crossHalfP99.Round(time.Millisecond))
	b.Log("\n" + report)
	fmt.Println(report)
	b.ReportMetric(g.scramRate/e.scramRate, "scram-login-ratio")
	b.ReportMetric(g.msgRate/e.msgRate, "msg-rate-ratio")
	b.ReportMetric(g.kbPerSession/e.kbPerSession, "mem-per-session-ratio")
}

// messages measures one-to-one messages from senders[i] to receivers[i]'s
// full JID, the send time in the body: the saturated rate (20 messages
// each, as fast as they go) and its latencies, then the latencies at half
// that rate. A receiver waits 15 s at most for its next message: what did
// not come is counted as lost, and the rate is of the messages that came.
func messages(b *testing.B, name string, senders, receivers []*xmppload.Client) (rate float64, p50, p99, halfP50, halfP99 time.Duration) {
	run := func(perSender int, rate float64) (float64, []time.Duration) {
		var lat []time.Duration
		var lmu sync.Mutex
		var last atomic.Int64
		var lost atomic.Int64
		var rwg sync.WaitGroup
		for _, rcv := range receivers {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				var mine []time.Duration
				for k := 0; k < perSender; k++ {
					el, err := rcv.Next(15 * time.Second)
					if err != nil {
						lost.Add(int64(perSender - k))
						b.Logf("%s: %s: %d of %d messages came: %v", name, rcv.JID, k, perSender, err)
						break
					}
					if el.Name != "message" {
						k--
						continue
					}
					now := time.Now().UnixNano()
					if body := el.Child("body"); body != nil {
						if ns, err := strconv.ParseInt(body.Text(), 10, 64); err == nil {
							mine = append(mine, time.Duration(now-ns))
						}
					}
					for {
						old := last.Load()
						if now <= old || last.CompareAndSwap(old, now) {
							break
						}
					}
				}
				lmu.Lock()
				lat = append(lat, mine...)
				lmu.Unlock()
			}()
		}
		start := time.Now()
		var swg sync.WaitGroup
		gap := time.Duration(0)
		if rate > 0 {
			gap = min(time.Duration(float64(len(senders))/rate*float64(time.Second)), time.Second)
		}
		for i, snd := range senders {
			to := receivers[i].JID
			swg.Add(1)
			go func() {
				defer swg.Done()
				next := time.Now()
				for k := 0; k < perSender; k++ {
					if gap > 0 {
						time.Sleep(time.Until(next))
						next = next.Add(gap)
					}
					snd.Send(fmt.Sprintf("<message to='%s' type='chat'><body>%d</body></message>", to, time.Now().UnixNano()))
				}
			}()
		}
		swg.Wait()
		rwg.Wait()
		if n := lost.Load(); n > 0 {
			b.Logf("%s: %d of %d messages did not arrive within 15 s", name, n, len(senders)*perSender)
		}
		got := int64(len(senders)*perSender) - lost.Load()
		return float64(got) / (time.Duration(last.Load() - start.UnixNano())).Seconds(), lat
	}
	rate, lat := run(20, 0)
	_, half := run(20, rate/2)
	return rate, percentile(lat, 50), percentile(lat, 99), percentile(half, 50), percentile(half, 99)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[(len(d)-1)*p/100]
}

// hardNoFile is this process's hard open-file limit (what a child may
// be given).
func hardNoFile() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int(rl.Max)
}
