package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
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
	bin := buildBinary(t)
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
	a := &cetsnode.Admin{Client: &erldist.Client{Cookie: b.cookie, Name: "t" + testenv.RandomID(4) + "@127.0.0.1", DialTimeout: 3 * time.Second}}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return a.Status(ctx, node)
}

// replicas are the nodes a node's session table replicates to.
func (b *clusterBed) replicas(node string) ([]string, error) {
	st, err := b.status(node)
	if err != nil {
		return nil, err
	}
	for _, t := range st.Tables {
		if t.Name == "session" {
			return t.Nodes, nil
		}
	}
	return nil, fmt.Errorf("no session table on %s", node)
}

// waitFor polls cond until it is true or the time is up (then it logs
// every node's log).
func (b *clusterBed) waitFor(what string, limit time.Duration, cond func() (bool, string)) {
	b.t.Helper()
	testenv.WaitFor(b.t, what, limit, cond, func() {
		for name, n := range b.nodes {
			b.t.Logf("log of %s:\n%s", name, testenv.Tail(n.log.String(), 3000))
		}
	})
}

// cluster join / leave / remove from the command line: prompts, -f,
// messages and exit codes. The two nodes are in different clusters (names),
// so only the commands bring them together.
func TestClusterCommands(t *testing.T) {
	b := newClusterBed(t)
	a, c := "mimc1@127.0.0.1", "mimc2@127.0.0.1"
	na := b.start(a, "--cluster-name", "left")
	nc := b.start(c, "--cluster-name", "right")
	for _, n := range []string{a, c} {
		b.waitFor(n+" up", 20*time.Second, func() (bool, string) {
			st, err := b.status(n)
			return err == nil && st.Healthy, fmt.Sprint(st.Verdict, err)
		})
	}
	cli := func(stdin string, args ...string) (string, string, int) {
		return runCLI(t, stdin, append(args, "--cookie-file", b.file)...)
	}
	alone := func(node string) func() (bool, string) {
		return func() (bool, string) {
			nodes, err := b.replicas(node)
			return err == nil && len(nodes) == 1, fmt.Sprint(nodes, err)
		}
	}
	// Answering no changes nothing.
	out, stderr, code := cli("no\n", "cluster", "join", "--node", c, a)
	if !strings.Contains(out, "Do you want to continue? (yes/no)") {
		t.Errorf("no prompt: %s", out)
	}
	oneLineError(t, stderr, code, exitRefused, "Operation discarded by user")
	if ok, why := alone(c)(); !ok {
		t.Fatalf("joined after no: %s", why)
	}
	// yes joins, and says so in MongooseIM's words.
	out, stderr, code = cli("yes\n", "cluster", "join", "--node", c, a)
	if code != 0 || !strings.Contains(out, "Joining the cluster...") || !strings.Contains(out, "You have successfully joined the node "+c+" to the cluster with node member "+a) {
		t.Fatalf("join: %d %s %s", code, out, stderr)
	}
	b.waitFor("joined", 5*time.Second, func() (bool, string) {
		nodes, err := b.replicas(a)
		return err == nil && len(nodes) == 2, fmt.Sprint(nodes, err)
	})
	// Again: already joined, refused before asking or saying "Joining".
	out, stderr, code = cli("", "cluster", "join", "-f", "--node", c, a)
	oneLineError(t, stderr, code, exitRefused, "already_joined")
	if strings.Contains(out, "Joining") {
		t.Errorf("a refused join printed: %s", out)
	}
	// status as JSON (snake_case, lists never null), as text.
	out, _, code = cli("", "cluster", "status", "--node", a, "--json")
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil || st["joined_nodes"] == nil || st["schema"] != "mimmigrate.cluster-status/1" || code != exitOK && code != exitFindings {
		t.Errorf("status --json: %d %v %s", code, err, out)
	}
	if strings.Contains(out, "null") || strings.Contains(out, "joinedNodes") {
		t.Errorf("status --json has null lists or camelCase keys: %s", out)
	}
	// (a discovers only its own cluster name's nodes: itself; "1 node".)
	out, _, _ = cli("", "cluster", "status", "--node", a)
	if !strings.Contains(out, "healthy: 1 node joined") {
		t.Errorf("status text: %s", out)
	}
	// remove of a live node is refused, before saying "Removing".
	out, stderr, code = cli("", "cluster", "remove", "-f", "--node", a, c)
	oneLineError(t, stderr, code, exitRefused, "node_is_alive")
	if strings.Contains(out, "Removing") {
		t.Errorf("a refused remove printed: %s", out)
	}
	// leave: c stops replicating and stays out.
	out, stderr, code = cli("", "cluster", "leave", "-f", "--node", c)
	if code != 0 || !strings.Contains(out, "has successfully left the cluster") {
		t.Fatalf("leave: %d %s %s", code, out, stderr)
	}
	b.waitFor("a alone", 5*time.Second, alone(a))
	time.Sleep(time.Second) // discovery rounds: c must not come back
	if ok, why := alone(c)(); !ok {
		t.Errorf("c back after leave: %s", why)
	}
	_, stderr, code = cli("", "cluster", "leave", "-f", "--node", c)
	oneLineError(t, stderr, code, exitRefused, "not_in_cluster")
	// Joining after leave is refused (exit 5, not a failure), and says
	// why, before "Joining".
	out, stderr, code = cli("", "cluster", "join", "-f", "--node", c, a)
	oneLineError(t, stderr, code, exitRefused, "has left the cluster", "started again")
	if strings.Contains(out, "Joining") {
		t.Errorf("a refused join printed: %s", out)
	}
	// A dead node: remove works, its row goes.
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
	// A second node under a taken name: one line with the remedy.
	_, stderr, code = runCLI(t, "", "node", "start", "--name", a, "--cookie-file", b.file, "--db", b.db, "--timeout", "10s")
	oneLineError(t, stderr, code, exitFailure, "epmd refused to register", "give another --name")
	// SIGTERM: the CLI node stops cleanly.
	na.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-na.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not stop on SIGTERM")
	}
	if !na.cmd.ProcessState.Success() || !strings.Contains(na.log.String(), `"msg":"stopped"`) {
		t.Errorf("SIGTERM: %v\n%s", na.cmd.ProcessState, testenv.Tail(na.log.String(), 2000))
	}
}
