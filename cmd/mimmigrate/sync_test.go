package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

//go:embed testdata/mimmigrate_traffic.erl
var trafficSource []byte

// syncProc is a running `mimmigrate sync` with its JSON lines.
type syncProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []syncLine
	stderr *testenv.SyncBuffer
	done   chan struct{}
}

func startSync(t *testing.T, bin string, args ...string) *syncProc {
	t.Helper()
	p := &syncProc{cmd: exec.Command(bin, append([]string{"sync", "--json", "--interval", "200ms"}, args...)...),
		stderr: &testenv.SyncBuffer{}, done: make(chan struct{})}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l syncLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				p.stderr.Write([]byte("bad JSON line: " + sc.Text() + "\n"))
				continue
			}
			p.mu.Lock()
			p.lines = append(p.lines, l)
			p.mu.Unlock()
		}
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	return p
}

func (p *syncProc) last() (syncLine, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lines) == 0 {
		return syncLine{}, false
	}
	return p.lines[len(p.lines)-1], true
}

// wait waits until a line satisfies cond.
func (p *syncProc) wait(t *testing.T, what string, limit time.Duration, cond func(syncLine) bool) syncLine {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if l, ok := p.last(); ok && cond(l) {
			return l
		}
		select {
		case <-p.done:
			t.Fatalf("sync ended while waiting for %s: %s", what, p.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	l, _ := p.last()
	t.Fatalf("sync: no %s within %s; last line %+v; stderr: %s", what, limit, l, p.stderr.String())
	return syncLine{}
}

// caughtUp waits until the sync is live with nothing left to apply for a
// few reports in a row.
func (p *syncProc) caughtUp(t *testing.T, limit time.Duration) syncLine {
	t.Helper()
	var quiet int
	var applied int64 = -1
	return p.wait(t, "catching up", limit, func(l syncLine) bool {
		if l.Phase != "live" || l.LagEvents != 0 || l.Applied != applied || !allLive(l) {
			quiet, applied = 0, l.Applied
			return false
		}
		quiet++
		return quiet >= 8
	})
}

func TestSyncUnderTraffic(t *testing.T) {
	if why := testenv.EjabberdAvailable(); why != "" {
		t.Skip(why)
	}
	cl, err := testenv.StartEjabberdCluster(2, "ejsync", testenv.PopulateOptions{Users: 1200, APIUsers: 40, Rooms: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Destroy()
	n1, n2 := cl.Nodes[0], cl.Nodes[1]
	traffic := func(e *testenv.Ejabberd, rate int, tag string) {
		t.Helper()
		out, err := e.Load(trafficSource, "mimmigrate_traffic", fmt.Sprintf(`mimmigrate_traffic:start(<<"%s">>, 1200, %d, <<"%s">>)`, e.Host, rate, tag))
		if err != nil || !strings.Contains(out, "ok") {
			t.Fatalf("traffic on %s: %v %s", e.Name, err, out)
		}
	}
	stopTraffic := func(e *testenv.Ejabberd) string {
		out, err := e.Eval(`mimmigrate_traffic:stop()`)
		if err != nil {
			t.Fatalf("stopping traffic on %s: %v", e.Name, err)
		}
		return out
	}
	traffic(n1, 200, "a")
	traffic(n2, 200, "b")

	cookie := testenv.WriteCookieFile(t, n1.Cookie)
	dbURL := schemaDB(t, "ejabberd")
	bin := buildBinary(t)
	args := []string{"--cookie-file", cookie, "--from", "node:" + n1.Name, "--to", dbURL, "--schema", "ejabberd", "--cap", "1000"}

	// Subscribe, copy, go live while the traffic goes on.
	p := startSync(t, bin, args...)
	p.wait(t, "the live phase", 3*time.Minute, func(l syncLine) bool { return l.Phase == "live" && len(l.Tables) > 0 })
	first := p.wait(t, "changes applied", time.Minute, func(l syncLine) bool { return l.Phase == "live" && l.Applied > 500 })
	t.Logf("live: %d changes applied, lag %.2f s", first.Applied, first.LagSeconds)
	// The rate per table is reported: with 400 changes/s, some table
	// shows some in every report.
	p.wait(t, "a rate of changes", 30*time.Second, func(l syncLine) bool {
		for _, ts := range l.Tables {
			if ts.Rate > 0 && l.Rate >= ts.Rate {
				return true
			}
		}
		return false
	})

	// kill -9 mid-way, changes go on without it, then the same command.
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	time.Sleep(3 * time.Second)
	p = startSync(t, bin, args...)
	resumed := p.wait(t, "the live phase after the restart", 3*time.Minute, func(l syncLine) bool { return l.Phase == "live" && len(l.Tables) > 0 })
	if resumed.Repaired == 0 {
		t.Errorf("after 3 s of changes without sync, the restart repaired no rows: %+v", resumed)
	}
	p.wait(t, "changes after the restart", time.Minute, func(l syncLine) bool { return l.Applied > 200 })

	// The node the forwarder runs on stops: its tables move to the other
	// node, and what changed meanwhile is repaired.
	stopTraffic(n1)
	if err := n1.Stop(); err != nil {
		t.Logf("stopping %s: %v", n1.Name, err) // killed instead: the node went away either way
	}
	moved := p.wait(t, "the tables moving to the other node", time.Minute, func(l syncLine) bool {
		if len(l.Tables) == 0 {
			return false
		}
		for _, ts := range l.Tables {
			if ts.Node != n2.Name || ts.State != "live" {
				return false
			}
		}
		return true
	})
	t.Logf("moved to %s: repaired %d rows", n2.Name, moved.Repaired)
	time.Sleep(2 * time.Second)
	if err := n1.Restart(""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	t.Logf("traffic on %s: %s", n2.Name, stopTraffic(n2))

	// A burst faster than PostgreSQL: vcard_search (disc_copies) written
	// 40 times over at once passes the cap of 1 000 queued changes; the
	// table is subscribed again and repaired, and the sync converges.
	if out, err := n2.Eval(`Rs = ets:tab2list(vcard_search), [mnesia:dirty_write(setelement(5, R, integer_to_binary(J))) || J <- lists:seq(1, 40), R <- Rs], length(Rs)`); err != nil {
		t.Fatalf("burst: %v %s", err, out)
	} else {
		t.Logf("burst: 40 writes of each of %s vcard_search records", out)
	}
	end := p.caughtUp(t, 2*time.Minute)
	t.Logf("caught up: %d applied, %d rejected in all, %d rows repaired", end.Applied, rejectedOf(end), end.Repaired)
	var overflows int64
	for _, ts := range end.Tables {
		overflows += ts.Overflow
	}
	if overflows == 0 {
		t.Errorf("the burst made no table overflow: %+v", end.Tables)
	}
	// verify reads the cluster again and compares every row.
	out, stderr, code := runCLI(t, "", "verify", "--cookie-file", cookie, "--from", "node:"+n2.Name, "--to", dbURL, "--schema", "ejabberd")
	if code != 0 {
		t.Fatalf("verify after sync: %d\n%s\n%s\nsync stderr: %s", code, out, stderr, p.stderr.String())
	}
	// An interrupt ends it with the resume hint.
	p.cmd.Process.Signal(syscall.SIGINT)
	<-p.done
	if !strings.Contains(p.stderr.String(), "the same command resumes") {
		t.Errorf("sync's interrupt message: %s", p.stderr.String())
	}
}

// TestSyncNodeLostDuringCopy: the node sync copies from is killed while
// the copy runs; the forwarders and the walks move to the other node, the
// copy resumes, and the database ends equal to the cluster.
func TestSyncNodeLostDuringCopy(t *testing.T) {
	if why := testenv.EjabberdAvailable(); why != "" {
		t.Skip(why)
	}
	cl, err := testenv.StartEjabberdCluster(2, "ejcopy", testenv.PopulateOptions{Users: 4000, APIUsers: 40, Rooms: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Destroy()
	n1, n2 := cl.Nodes[0], cl.Nodes[1]
	cookie := testenv.WriteCookieFile(t, n1.Cookie)
	dbURL := schemaDB(t, "ejabberd")
	bin := buildBinary(t)
	p := startSync(t, bin, "--cookie-file", cookie, "--from", "node:"+n1.Name, "--to", dbURL, "--schema", "ejabberd", "--workers", "1")
	p.wait(t, "the copy", time.Minute, func(l syncLine) bool { return l.Phase == "copying" })
	n1.Kill()
	p.wait(t, "the live phase on the other node", 3*time.Minute, func(l syncLine) bool {
		if l.Phase != "live" || !allLive(l) {
			return false
		}
		for _, ts := range l.Tables {
			if ts.Node != n2.Name {
				return false
			}
		}
		return true
	})
	t.Logf("sync's log: %s", testenv.Tail(p.stderr.String(), 2000))
	if !strings.Contains(p.stderr.String(), "copying failed: resuming") {
		t.Errorf("the node was killed during the copy, but the copy did not resume: %s", p.stderr.String())
	}
	out, stderr, code := runCLI(t, "", "verify", "--cookie-file", cookie, "--from", "node:"+n2.Name, "--to", dbURL, "--schema", "ejabberd")
	if code != 0 {
		t.Fatalf("verify: %d\n%s\n%s\nsync stderr: %s", code, out, stderr, p.stderr.String())
	}
}

// TestSyncDatabaseDown: PostgreSQL goes away for 6 s under 300 changes a
// second and a burst (its connections reset, new ones refused: a proxy in
// front of the shared server). sync says so, the burst's table passes the
// cap on the legacy node meanwhile (it is subscribed again), and when
// PostgreSQL is back sync repairs and catches up: the database ends equal
// to the cluster.
func TestSyncDatabaseDown(t *testing.T) {
	if why := testenv.EjabberdAvailable(); why != "" {
		t.Skip(why)
	}
	e, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "ejpgdown"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy()
	if _, err := e.Populate(testenv.PopulateOptions{Users: 1200, APIUsers: 40, Rooms: 5}); err != nil {
		t.Fatal(err)
	}
	cookie := testenv.WriteCookieFile(t, e.Cookie)
	dbURL := schemaDB(t, "ejabberd")
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, "127.0.0.1:0", u.Host)
	u.Host = proxy.Addr
	bin := buildBinary(t)
	if out, err := e.Load(trafficSource, "mimmigrate_traffic", fmt.Sprintf(`mimmigrate_traffic:start(<<"%s">>, 1200, 300, <<"pg">>)`, e.Host)); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("traffic: %v %s", err, out)
	}
	p := startSync(t, bin, "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", u.String(), "--schema", "ejabberd", "--cap", "1000")
	p.wait(t, "the live phase", 3*time.Minute, func(l syncLine) bool { return l.Phase == "live" && allLive(l) })
	before := p.wait(t, "changes applied", time.Minute, func(l syncLine) bool { return l.Applied > 300 })

	proxy.Cut()
	down := p.wait(t, "the database error reported", 30*time.Second, func(l syncLine) bool { return l.DBError != "" })
	t.Logf("while down: %s", down.DBError)
	if out, err := e.Eval(`Rs = ets:tab2list(vcard_search), [mnesia:dirty_write(setelement(5, R, integer_to_binary(J))) || J <- lists:seq(1, 5), R <- Rs], length(Rs)`); err != nil {
		t.Fatalf("burst: %v %s", err, out)
	} else {
		t.Logf("burst while down: 5 writes of each of %s vcard_search records", out)
	}
	time.Sleep(6 * time.Second)
	proxy.Heal()
	p.wait(t, "changes applied again", time.Minute, func(l syncLine) bool { return l.Applied > before.Applied+300 && l.DBError == "" })
	t.Logf("traffic: %s", func() string { o, _ := e.Eval(`mimmigrate_traffic:stop()`); return o }())
	end := p.caughtUp(t, 2*time.Minute)
	var overflows int64
	for _, ts := range end.Tables {
		overflows += ts.Overflow
	}
	t.Logf("caught up: %d applied, %d overflows, %d rows repaired", end.Applied, overflows, end.Repaired)
	if overflows == 0 {
		t.Errorf("the burst with PostgreSQL down made no table pass the cap: %+v", end.Tables)
	}
	out, stderr, code := runCLI(t, "", "verify", "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", dbURL, "--schema", "ejabberd")
	if code != 0 {
		t.Fatalf("verify: %d\n%s\n%s\nsync stderr: %s", code, out, stderr, testenv.Tail(p.stderr.String(), 3000))
	}
}

// TestSyncPubsubNodeRewrite: a pubsub node's record written again (as a
// configuration change writes it) while sync runs leaves the node's items
// and subscriptions in PostgreSQL (the schema's foreign keys delete them
// with the node's row).
func TestSyncPubsubNodeRewrite(t *testing.T) {
	if why := testenv.EjabberdAvailable(); why != "" {
		t.Skip(why)
	}
	e, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "ejpub"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy()
	if _, err := e.Populate(testenv.PopulateOptions{Users: 100, APIUsers: 20, Rooms: 2}); err != nil {
		t.Fatal(err)
	}
	setup := fmt.Sprintf(`SH = <<"%s">>, H = <<"pubsub.", SH/binary>>, O = jid:make(<<"user1">>, SH, <<>>),
		{result, _} = mod_pubsub:create_node(H, SH, <<"n1">>, O, <<"flat">>),
		[{result, _} = mod_pubsub:publish_item(H, SH, <<"n1">>, O, integer_to_binary(I), [{xmlel, <<"entry">>, [], []}]) || I <- [1, 2, 3]],
		{result, _} = mod_pubsub:subscribe_node(H, <<"n1">>, jid:make(<<"user2">>, SH, <<>>), jid:make(<<"user2">>, SH, <<>>), []),
		ok`, e.Host)
	if out, err := e.Eval(setup); err != nil || out != "ok" {
		t.Fatalf("pubsub node: %v %s", err, out)
	}
	cookie := testenv.WriteCookieFile(t, e.Cookie)
	dbURL := schemaDB(t, "ejabberd")
	bin := buildBinary(t)
	p := startSync(t, bin, "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", dbURL, "--schema", "ejabberd")
	p.wait(t, "the live phase", 3*time.Minute, func(l syncLine) bool { return l.Phase == "live" && allLive(l) })
	count := func() string {
		out, err := psqlOut(dbURL, "-At", "-c", "SELECT (SELECT count(*) FROM pubsub_item) || ' ' || (SELECT count(*) FROM pubsub_state)")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	before := count()
	rewrite := fmt.Sprintf(`[N] = mnesia:dirty_read(pubsub_node, {<<"pubsub.%s">>, <<"n1">>}), {atomic, ok} = mnesia:transaction(fun() -> mnesia:write(N) end), ok`, e.Host)
	if out, err := e.Eval(rewrite); err != nil || out != "ok" {
		t.Fatalf("rewrite: %v %s", err, out)
	}
	p.caughtUp(t, time.Minute)
	if after := count(); after != before || before == "0 0" {
		t.Errorf("pubsub items and states before the node's record was written again: %s, after: %s", before, after)
	}
	out, stderr, code := runCLI(t, "", "verify", "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", dbURL, "--schema", "ejabberd")
	if code != 0 {
		t.Errorf("verify: %d\n%s\n%s", code, out, stderr)
	}
}

// TestSyncMongooseIM: sync into MongooseIM's schema under traffic (its
// rows refer to ids the mapping assigns: archive owners, privacy lists,
// rooms); after the traffic stops the database is equal to the cluster.
func TestSyncMongooseIM(t *testing.T) {
	if why := testenv.EjabberdAvailable(); why != "" {
		t.Skip(why)
	}
	e, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "ejmim"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy()
	if _, err := e.Populate(testenv.PopulateOptions{Users: 600, APIUsers: 30, Rooms: 5}); err != nil {
		t.Fatal(err)
	}
	cookie := testenv.WriteCookieFile(t, e.Cookie)
	dbURL := schemaDB(t, "mongooseim")
	bin := buildBinary(t)
	if out, err := e.Load(trafficSource, "mimmigrate_traffic", fmt.Sprintf(`mimmigrate_traffic:start(<<"%s">>, 600, 200, <<"mim">>)`, e.Host)); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("traffic: %v %s", err, out)
	}
	p := startSync(t, bin, "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", dbURL, "--schema", "mongooseim")
	p.wait(t, "the live phase", 3*time.Minute, func(l syncLine) bool { return l.Phase == "live" && allLive(l) })
	p.wait(t, "changes applied", time.Minute, func(l syncLine) bool { return l.Applied > 1000 })
	t.Logf("traffic: %s", func() string { o, _ := e.Eval(`mimmigrate_traffic:stop()`); return o }())
	end := p.caughtUp(t, 2*time.Minute)
	t.Logf("caught up: %d applied, %d rejected, %d rows repaired", end.Applied, rejectedOf(end), end.Repaired)
	out, stderr, code := runCLI(t, "", "verify", "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", dbURL, "--schema", "mongooseim")
	if code != 0 {
		t.Fatalf("verify: %d\n%s\n%s\nsync stderr: %s", code, out, stderr, testenv.Tail(p.stderr.String(), 3000))
	}
}

func rejectedOf(l syncLine) int64 {
	var n int64
	for _, t := range l.Tables {
		n += t.Rejected
	}
	return n
}

func allLive(l syncLine) bool {
	for _, ts := range l.Tables {
		if ts.State != "live" {
			return false
		}
	}
	return len(l.Tables) > 0
}

// Bad input: one line, exit 2, nothing started.
func TestSyncBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", "dir:/tmp", "--to", "postgres://u@127.0.0.1/x", "--schema", "ejabberd"}, "--from must be a running node"},
		{[]string{"--from", "node:a@localhost", "--to", "mysql://x", "--schema", "ejabberd"}, "--to"},
		{[]string{"--from", "node:a@localhost", "--to", "postgres://u@127.0.0.1/x", "--schema", "ejabberd", "--cap", "5"}, "--cap"},
		{[]string{"--from", "node:a@localhost", "--to", "postgres://u@127.0.0.1/x", "--schema", "ejabberd", "--interval", "1ms"}, "--interval"},
	} {
		_, stderr, code := runCLI(t, "", append([]string{"sync"}, c.args...)...)
		oneLineError(t, stderr, code, exitUsage, c.want)
	}
}
