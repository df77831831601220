package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode"
	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// goNode is a `mimmigrate node start` process.
type goNode struct {
	name   string
	cmd    *exec.Cmd
	log    *testenv.SyncBuffer
	exited chan struct{}
}

type clusterBed struct {
	t      *testing.T
	bin    string
	db     string
	cookie string
	file   string
	nodes  map[string]*goNode
}

func newClusterBed(t *testing.T) *clusterBed {
	bin := filepath.Join(t.TempDir(), "mimmigrate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cookie := "c" + testenv.RandomID(12)
	return &clusterBed{t: t, bin: bin, db: testenv.PostgresDB(t), cookie: cookie, file: testenv.WriteCookieFile(t, cookie), nodes: map[string]*goNode{}}
}

func (b *clusterBed) start(name string, extra ...string) *goNode {
	b.t.Helper()
	n := &goNode{name: name, log: &testenv.SyncBuffer{}, exited: make(chan struct{})}
	n.cmd = exec.Command(b.bin, append([]string{"node", "start", "--name", name, "--cookie-file", b.file, "--db", b.db,
		"--check-interval", "200ms", "--expire-time", "3s", "--net-ticktime", "2s", "--log-format", "json"}, extra...)...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.exited) }()
	b.nodes[name] = n
	b.t.Cleanup(func() { n.cmd.Process.Kill() })
	return n
}

// rpc calls mimmigrate:Fn on a node as a hidden client.
func (b *clusterBed) rpc(node, fn string, args ...term.Term) (term.Term, error) {
	cl := &erldist.Client{Cookie: b.cookie, Name: "t" + testenv.RandomID(4) + "@127.0.0.1", DialTimeout: 3 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := cl.Dial(ctx, node)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Call(ctx, "mimmigrate", term.Atom(fn), args...)
}

func (b *clusterBed) status(node string) (cetsnode.Status, error) {
	res, err := b.rpc(node, "cluster_status")
	if err != nil {
		return cetsnode.Status{}, err
	}
	text, err := outcome(res)
	if err != nil {
		return cetsnode.Status{}, err
	}
	var st cetsnode.Status
	err = json.Unmarshal([]byte(text), &st)
	return st, err
}

// info is a node's session table: size, nodes, digest.
func (b *clusterBed) info(node string) (size int64, nodes []string, digest string, err error) {
	res, err := b.rpc(node, "table_info")
	if err != nil {
		return 0, nil, "", err
	}
	l, _ := term.Elems(res)
	for _, e := range l {
		tu := e.(term.Tuple)
		if term.IsAtom(tu[0], "session") {
			size, _ = term.Int(tu[1])
			ns, _ := term.Elems(tu[2])
			for _, n := range ns {
				nodes = append(nodes, string(n.(term.Atom)))
			}
			d, _ := term.Text(tu[3])
			return size, nodes, d, nil
		}
	}
	return 0, nil, "", fmt.Errorf("no session table in %s", term.Format(res))
}

// waitFor polls cond until it is true or the time is up.
func (b *clusterBed) waitFor(what string, limit time.Duration, cond func() (bool, string)) {
	b.t.Helper()
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(100 * time.Millisecond)
	}
	for name, n := range b.nodes {
		b.t.Logf("log of %s:\n%s", name, tail(n.log.String(), 3000))
	}
	b.t.Fatalf("%s: not within %s: %s", what, limit, last)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// converged: every node listed holds the same session table, replicated
// to exactly these nodes.
func (b *clusterBed) converged(names ...string) (bool, string) {
	var first string
	for i, n := range names {
		size, nodes, d, err := b.info(n)
		if err != nil {
			return false, err.Error()
		}
		if len(nodes) != len(names) {
			return false, fmt.Sprintf("%s replicates to %v", n, nodes)
		}
		if i == 0 {
			first = d
		} else if d != first {
			return false, fmt.Sprintf("%s's table (%d records) differs", n, size)
		}
	}
	return true, ""
}

func (b *clusterBed) healthy(node string, joined int) (bool, string) {
	st, err := b.status(node)
	if err != nil {
		return false, err.Error()
	}
	if !st.Healthy || len(st.JoinedNodes) != joined {
		return false, st.Verdict
	}
	return true, ""
}

// writer registers sessions on a node until stop, counting them.
func (b *clusterBed) writer(node string, stop <-chan struct{}, wg *sync.WaitGroup, count *int) {
	defer wg.Done()
	cl := &erldist.Client{Cookie: b.cookie, Name: "w" + testenv.RandomID(4) + "@127.0.0.1", DialTimeout: 3 * time.Second}
	ctx := context.Background()
	var c *erldist.Conn
	for i := 0; ; i++ {
		select {
		case <-stop:
			if c != nil {
				c.Close()
			}
			return
		default:
		}
		if c == nil || c.Err() != nil {
			var err error
			if c, err = cl.Dial(ctx, node); err != nil {
				c = nil
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := c.Call(cctx, "mimmigrate", "session_register", term.Binary(fmt.Sprintf("u%d", i)), term.Binary("example.com"), term.Binary(node))
		cancel()
		if err == nil && term.Format(res) != "" {
			if _, err := outcome(res); err == nil {
				*count++
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Three node processes on loopback with a real PostgreSQL; a fourth joins
// and gets every record; kill -9 of one: the others drop its sessions,
// mark it unavailable, and its discovery row expires; restarted, it
// rejoins; a frozen node (SIGSTOP/SIGCONT) is dropped and rejoins;
// writers on every node throughout; at the end every node holds the same
// table. A real erl pings a node and reads its status. SIGTERM stops a
// node cleanly.
func TestGoCluster(t *testing.T) {
	erl := testenv.Erl(t)
	b := newClusterBed(t)
	names := []string{"mimt1@127.0.0.1", "mimt2@127.0.0.1", "mimt3@127.0.0.1", "mimt4@127.0.0.1"}
	for _, n := range names[:3] {
		b.start(n)
	}
	for _, n := range names[:3] {
		b.waitFor("three nodes joined as seen from "+n, 20*time.Second, func() (bool, string) { return b.healthy(n, 3) })
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	counts := make([]int, 4)
	for i, n := range names[:3] {
		wg.Add(1)
		go b.writer(n, stop, &wg, &counts[i])
	}
	time.Sleep(time.Second)

	// A fourth node joins and gets every record.
	b.start(names[3])
	b.waitFor("four nodes joined", 20*time.Second, func() (bool, string) { return b.healthy(names[3], 4) })
	wg.Add(1)
	go b.writer(names[3], stop, &wg, &counts[3])
	time.Sleep(500 * time.Millisecond)

	// kill -9 of mimt2: the others notice within the tick window, drop its
	// sessions and mark it unavailable; its row expires.
	killed := b.nodes[names[1]]
	killed.cmd.Process.Signal(syscall.SIGKILL)
	t0 := time.Now()
	rest := []string{names[0], names[2], names[3]}
	b.waitFor("mimt2 dropped", 10*time.Second, func() (bool, string) {
		for _, n := range rest {
			_, nodes, _, err := b.info(n)
			if err != nil {
				return false, err.Error()
			}
			for _, x := range nodes {
				if x == names[1] {
					return false, n + " still replicates to mimt2"
				}
			}
		}
		return true, ""
	})
	t.Logf("killed node dropped after %s (net_ticktime 2 s)", time.Since(t0).Round(100*time.Millisecond))
	if time.Since(t0) > 5*time.Second {
		t.Errorf("dropping the killed node took %s", time.Since(t0))
	}
	st, err := b.status(names[0])
	if err != nil || !slices.Contains(st.UnavailableNodes, names[1]) {
		t.Errorf("mimt2 not unavailable: %+v %v", st, err)
	}
	for _, n := range rest {
		res, err := b.rpc(n, "session_count")
		if err != nil || strings.Contains(term.Format(res), names[1]) {
			t.Errorf("%s still holds sessions of the killed node: %s %v", n, term.Format(res), err)
		}
	}
	b.waitFor("mimt2's discovery row expired", 15*time.Second, func() (bool, string) {
		out, err := psqlOut(b.db, "-At", "-c", "SELECT count(*) FROM discovery_nodes WHERE node_name = 'mimt2@127.0.0.1'")
		return err == nil && strings.TrimSpace(out) == "0", out
	})

	// Restarted, it rejoins and resyncs.
	b.start(names[1])
	b.waitFor("mimt2 rejoined", 20*time.Second, func() (bool, string) { return b.healthy(names[1], 4) })

	// Frozen for longer than the tick window, then thawed.
	frozen := b.nodes[names[2]]
	frozen.cmd.Process.Signal(syscall.SIGSTOP)
	t1 := time.Now()
	b.waitFor("frozen mimt3 dropped", 10*time.Second, func() (bool, string) {
		_, nodes, _, err := b.info(names[0])
		if err != nil {
			return false, err.Error()
		}
		return len(nodes) == 3, fmt.Sprint(nodes)
	})
	t.Logf("frozen node dropped after %s (net_ticktime 2 s)", time.Since(t1).Round(100*time.Millisecond))
	if time.Since(t1) > 5*time.Second {
		t.Errorf("dropping the frozen node took %s", time.Since(t1))
	}
	frozen.cmd.Process.Signal(syscall.SIGCONT)
	b.waitFor("mimt3 back", 20*time.Second, func() (bool, string) { return b.healthy(names[2], 4) })

	close(stop)
	wg.Wait()
	t.Logf("sessions registered per node: %v", counts)
	for i, c := range counts {
		if c == 0 {
			t.Errorf("the writer on %s registered nothing", names[i])
		}
	}
	b.waitFor("every node holds the same table", 15*time.Second, func() (bool, string) { return b.converged(names...) })
	size, _, _, _ := b.info(names[0])
	if size == 0 {
		t.Error("the session table is empty")
	}

	// A real Erlang node pings a Go node and reads its status.
	out, err := exec.Command(erl, "-noshell", "-name", "e"+testenv.RandomID(5)+"@127.0.0.1", "-setcookie", b.cookie, "-eval",
		`N = '`+names[0]+`', io:format("~p ~p~n", [net_adm:ping(N), rpc:call(N, mimmigrate, status, [])]), halt().`).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), `pong {running,<<"mimt1@127.0.0.1">>`) {
		t.Errorf("erl: %v %s", err, out)
	}

	// SIGTERM: a clean stop.
	n4 := b.nodes[names[3]]
	n4.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n4.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("mimt4 did not stop on SIGTERM")
	}
	if !n4.cmd.ProcessState.Success() || !strings.Contains(n4.log.String(), `"msg":"stopped"`) {
		t.Errorf("SIGTERM: %v\n%s", n4.cmd.ProcessState, tail(n4.log.String(), 2000))
	}
}

// cluster join / leave / remove from the command line: prompts, -f,
// messages and exit codes. The two nodes are in different clusters (names),
// so only the commands bring them together.
func TestClusterCommands(t *testing.T) {
	b := newClusterBed(t)
	a, c := "mimc1@127.0.0.1", "mimc2@127.0.0.1"
	b.start(a, "--cluster-name", "left")
	nc := b.start(c, "--cluster-name", "right")
	for _, n := range []string{a, c} {
		b.waitFor(n+" up", 20*time.Second, func() (bool, string) { return b.healthy(n, 1) })
	}
	cli := func(stdin string, args ...string) (string, string, int) {
		return runCLI(t, stdin, append(args, "--cookie-file", b.file)...)
	}
	// Answering no changes nothing.
	out, stderr, code := cli("no\n", "cluster", "join", "--node", c, a)
	if !strings.Contains(out, "Do you want to continue? (yes/no)") {
		t.Errorf("no prompt: %s", out)
	}
	oneLineError(t, stderr, code, exitRefused, "Operation discarded by user")
	if _, nodes, _, _ := b.info(c); len(nodes) != 1 {
		t.Fatalf("joined after no: %v", nodes)
	}
	// yes joins, and says so in MongooseIM's words.
	out, stderr, code = cli("yes\n", "cluster", "join", "--node", c, a)
	if code != 0 || !strings.Contains(out, "Joining the cluster...") || !strings.Contains(out, "You have successfully joined the node "+c+" to the cluster with node member "+a) {
		t.Fatalf("join: %d %s %s", code, out, stderr)
	}
	b.waitFor("joined", 5*time.Second, func() (bool, string) { return b.converged(a, c) })
	// Again: already joined.
	_, stderr, code = cli("", "cluster", "join", "-f", "--node", c, a)
	oneLineError(t, stderr, code, exitRefused, "already_joined")
	// status as JSON, as text.
	out, _, code = cli("", "cluster", "status", "--node", a, "--json")
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil || st["joinedNodes"] == nil || code != exitOK && code != exitFindings {
		t.Errorf("status --json: %d %v %s", code, err, out)
	}
	// remove of a live node is refused.
	_, stderr, code = cli("", "cluster", "remove", "-f", "--node", a, c)
	oneLineError(t, stderr, code, exitRefused, "node_is_alive")
	// leave: c stops replicating and stays out.
	out, stderr, code = cli("", "cluster", "leave", "-f", "--node", c)
	if code != 0 || !strings.Contains(out, "has successfully left the cluster") {
		t.Fatalf("leave: %d %s %s", code, out, stderr)
	}
	b.waitFor("a alone", 5*time.Second, func() (bool, string) {
		_, nodes, _, err := b.info(a)
		return err == nil && len(nodes) == 1, fmt.Sprint(nodes, err)
	})
	time.Sleep(time.Second) // discovery rounds: c must not come back
	if _, nodes, _, _ := b.info(c); len(nodes) != 1 {
		t.Errorf("c back after leave: %v", nodes)
	}
	_, stderr, code = cli("", "cluster", "leave", "-f", "--node", c)
	oneLineError(t, stderr, code, exitRefused, "not_in_cluster")
	// A dead node: remove works, its row goes.
	res, _ := b.rpc(c, "session_register", term.Binary("x"), term.Binary("example.com"), term.Binary("r"))
	_ = res
	nc.cmd.Process.Kill()
	<-nc.exited
	out, stderr, code = cli("", "cluster", "remove", "-f", "--node", a, c)
	if code != 0 || !strings.Contains(out, "The dead node "+c+" has been removed from the cluster.") {
		t.Errorf("remove: %d %s %s", code, out, stderr)
	}
	// Bad input: one line, exit 2; an unknown node: exit 3.
	_, stderr, code = cli("", "cluster", "join", "-f", "--node", a, "not-a-node")
	oneLineError(t, stderr, code, exitUsage, "not a node name")
	_, stderr, code = runCLI(t, "", "cluster", "status", "--node", "nobody@127.0.0.1", "--cookie-file", b.file, "--timeout", "3s")
	if code != exitConnect || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("status of a node that is not there: %d %s", code, stderr)
	}
}
