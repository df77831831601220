package xmpp_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// 10,000 connections that never authenticate (each has sent its stream
// header): the node's memory stays bounded, a real client logs in
// meanwhile, and the negotiation timeout ends them all with
// <connection-timeout/>.
func TestManyUnauthenticatedConnections(t *testing.T) {
	needBed(t)
	const n = 10000
	p := bed.StartNodeProcess(t, "un"+testenv.RandomID(5), "negotiation_timeout: 8\n")
	rss0 := rssKB(p.Cmd.Process.Pid)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", p.StartTLS, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.Write([]byte(xmpptest.Header))
		conns = append(conns, c)
	}
	time.Sleep(time.Second)
	rss := rssKB(p.Cmd.Process.Pid)
	perConn := float64(rss-rss0) / n
	t.Logf("%d unauthenticated connections: RSS %d → %d KB, %.1f KB each", n, rss0, rss, perConn)
	if perConn > 64 {
		t.Errorf("%.1f KB per unauthenticated connection", perConn)
	}
	r, err := xmpptest.Slixmpp(t.TempDir(), xmpptest.Login{Account: bed.Account(t, "scram-sha-1"), Addr: p.StartTLS, CA: bed.CA})
	check(t, "slixmpp while 10,000 connections wait", r, err, true)
	// The timeout ends them (all within a few seconds of it).
	deadline := time.Now().Add(30 * time.Second)
	timedOut := 0
	buf := make([]byte, 4096)
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		var got []byte
		for {
			k, err := c.Read(buf)
			got = append(got, buf[:k]...)
			if err != nil {
				break
			}
		}
		if strings.Contains(string(got), "<connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") {
			timedOut++
		}
	}
	if timedOut != n {
		t.Errorf("%d of %d connections got connection-timeout", timedOut, n)
	}
}

// At its open-file limit (256 here) the node pauses accepting with one
// log line; the established session and the database keep working;
// accepting resumes as connections close.
func TestOpenFileLimit(t *testing.T) {
	needBed(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ejabberd.yml")
	starttls, direct := testenv.FreePort(t), testenv.FreePort(t)
	os.WriteFile(cfg, []byte(bed.Config(starttls, direct, "modules:\n  mod_fail2ban: {}\n  mod_roster: {}\n")), 0o600)
	log := &testenv.SyncBuffer{}
	cmd := exec.Command("prlimit", "--nofile=256:256", bed.Bin, "node", "start", "--config", cfg, "--name", "xfd"+testenv.RandomID(4)+"@127.0.0.1",
		"--cookie", "c"+testenv.RandomID(8), "--cluster-name", "fd"+testenv.RandomID(4), "--db", bed.DBURL)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	testenv.WaitFor(t, "the node listening", 30*time.Second, func() (bool, string) { return strings.Count(log.String(), "c2s listening") == 2, log.String() }, nil)
	addr := fmt.Sprintf("127.0.0.1:%d", starttls)
	a := bed.Account(t, "scram-sha-1")
	held, _, err := xmpptest.Session(addr, bed.CA, a, "held")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for i := 0; i < 400; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			break // the backlog is full
		}
		flood = append(flood, c)
	}
	testenv.WaitFor(t, "accepting paused", 10*time.Second, func() (bool, string) {
		return strings.Contains(log.String(), "accepting paused"), log.String()
	}, nil)
	// The held session and the database: a roster get is answered.
	held.Send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
	if out, err := held.Expect("id='r1'", 10*time.Second); err != nil || !strings.Contains(out, "type='result'") {
		t.Errorf("roster get at the limit: %q %v", out, err)
	}
	for _, c := range flood {
		c.Close()
	}
	flood = nil
	r, err := xmpptest.Slixmpp(dir, xmpptest.Login{Account: a, Addr: addr, CA: bed.CA})
	check(t, "slixmpp after the flood closed", r, err, true)
	// One line when accepting pauses, one when it resumes (more than one
	// pause if connections closed meanwhile).
	if paused, again := strings.Count(log.String(), "accepting paused"), strings.Count(log.String(), "accepting again"); paused < 1 || paused != again {
		t.Errorf("%d 'accepting paused' and %d 'accepting again' lines:\n%s", paused, again, testenv.Tail(log.String(), 3000))
	}
}

// kill -9 of a node under traffic: senders on the surviving node keep
// sending numbered messages to users of the dead one. Every message is
// accounted for — read by its client before the connection died, or in
// the recipient's offline spool — except those the dead node had taken
// and not yet written (its memory died with it); the test says how many
// (at most the messages in flight at the kill).
func TestKillUnderTraffic(t *testing.T) {
	needBed(t)
	cluster := "kt" + testenv.RandomID(5)
	cfg := "modules:\n  mod_fail2ban: {}\n  mod_offline: {}\n"
	p := bed.StartNodeProcess(t, cluster, cfg)
	n := bed.StartNode(t, cluster, cfg)
	testenv.WaitFor(t, "the nodes joined", 60*time.Second, func() (bool, string) { return len(n.Node.Sessions.T.Nodes()) == 1, "" }, nil)
	users := bed.Kind("scram-sha-1")
	const k = 5
	type side struct {
		r   *xmpptest.Raw
		acc xmpptest.Account
	}
	var dead, live []side
	for i := 0; i < k; i++ {
		for _, x := range []struct {
			addr string
			into *[]side
			acc  xmpptest.Account
		}{{p.StartTLS, &dead, users[10+i]}, {n.StartTLS, &live, users[15+i]}} {
			r, _, err := xmpptest.Session(x.addr, bed.CA, x.acc, "t")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.Send("<presence/>")
			if _, err := r.Expect("<presence", 5*time.Second); err != nil {
				t.Fatal(err)
			}
			*x.into = append(*x.into, side{r, x.acc})
		}
	}
	testenv.WaitFor(t, "every session available on both nodes", 10*time.Second, func() (bool, string) {
		for _, s := range dead {
			ss := n.Node.Sessions.Bare(xmpptest.Host, s.acc.User)
			if len(ss) != 1 || !ss[0].Available {
				return false, s.acc.User
			}
		}
		return true, ""
	}, nil)
	// Readers: what the dead node's clients got before it died.
	received := make([]map[string]bool, k)
	done := make(chan struct{})
	for i, s := range dead {
		received[i] = map[string]bool{}
		go func() {
			defer func() { done <- struct{}{} }()
			out, _ := s.r.Closed(60 * time.Second)
			for _, m := range regexp.MustCompile(`<body>(m\d+-\d+)</body>`).FindAllStringSubmatch(out, -1) {
				received[i][m[1]] = true
			}
		}()
	}
	const perSender = 300
	var killAt = perSender / 2
	for j := 0; j < perSender; j++ {
		if j == killAt {
			p.Kill()
		}
		for i, s := range live {
			s.r.Send(fmt.Sprintf("<message to='%s' type='chat'><body>m%d-%d</body></message>", dead[i].acc.JID(), i, j))
		}
		time.Sleep(2 * time.Millisecond)
	}
	for range dead {
		<-done
	}
	time.Sleep(2 * time.Second)
	db := testenv.DB(t, bed.DBURL)
	lost, stored, got := 0, 0, 0
	for i, s := range dead {
		rows, err := db.Pool.Query(context.Background(), `SELECT xml FROM spool WHERE username = $1`, s.acc.User)
		if err != nil {
			t.Fatal(err)
		}
		inSpool := map[string]bool{}
		for rows.Next() {
			var x string
			rows.Scan(&x)
			if m := regexp.MustCompile(`<body>(m\d+-\d+)</body>`).FindStringSubmatch(x); m != nil {
				inSpool[m[1]] = true
			}
		}
		rows.Close()
		for j := 0; j < perSender; j++ {
			id := fmt.Sprintf("m%d-%d", i, j)
			switch {
			case received[i][id]:
				got++
			case inSpool[id]:
				stored++
			default:
				lost++
			}
		}
	}
	t.Logf("%d messages: %d read by the dead node's clients, %d stored offline after the kill, %d lost in the dead node", k*perSender, got, stored, lost)
	if stored == 0 || got == 0 {
		t.Errorf("the kill did not happen under traffic: %d read, %d stored", got, stored)
	}
	if lost > k*20 {
		t.Errorf("%d messages lost, more than the in-flight window", lost)
	}
	// Errors? None: the senders got no error for any message.
	for _, s := range live {
		if out := s.r.Drain(500 * time.Millisecond); strings.Contains(out, "type='error'") {
			t.Errorf("a sender got an error: %s", out)
		}
	}
}

// A client that stops reading its stream while messages keep coming: its
// queue fills to max_fsm_queue and the node closes it (as ejabberd ends a
// c2s process past max_fsm_queue); the messages it was not given go to
// offline storage; the sender, on the same node, is not held up.
func TestClientThatDoesNotRead(t *testing.T) {
	needBed(t)
	n := bed.StartNode(t, "nr"+testenv.RandomID(5), withRoster+"max_fsm_queue: 20\n")
	users := bed.Kind("scram-sha-1")
	stalled, sender := users[9], users[10]
	r, _, err := xmpptest.Session(n.StartTLS, bed.CA, stalled, "stalled")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Send("<presence/>")
	r.Drain(500 * time.Millisecond) // then it never reads again
	s, _, err := xmpptest.Session(n.StartTLS, bed.CA, sender, "s")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const sent = 3000
	body := strings.Repeat("x", 8000)
	start := time.Now()
	for i := 0; i < sent; i++ {
		if err := s.Send(fmt.Sprintf("<message to='%s/stalled' type='chat' id='m%d'><body>%s</body></message>", stalled.JID(), i, body)); err != nil {
			t.Fatalf("the sender's stream failed after %d messages: %v", i, err)
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("sending took %v: the sender was held up", d)
	}
	testenv.WaitFor(t, "the stalled client closed", 20*time.Second, func() (bool, string) {
		return strings.Contains(n.Log.String(), "the client does not read its stream") &&
			len(n.Node.Sessions.Bare(xmpptest.Host, stalled.User)) == 0, ""
	}, nil)
	db := testenv.DB(t, bed.DBURL)
	var stored int
	testenv.WaitFor(t, "the undelivered messages stored", 20*time.Second, func() (bool, string) {
		db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool WHERE username = $1`, stalled.User).Scan(&stored)
		return stored > 0, fmt.Sprint(stored, " stored")
	}, nil)
	if stored > sent {
		t.Errorf("%d stored of %d sent", stored, sent)
	}
	t.Logf("%d of %d messages stored offline", stored, sent)
	s.Send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if _, err := s.Expect("id='p1'", 10*time.Second); err != nil {
		t.Errorf("the sender's session after: %v", err)
	}
	db.Pool.Exec(context.Background(), `DELETE FROM spool WHERE username = $1`, stalled.User)
}
