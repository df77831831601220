package cetsnode

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// The cluster tests run nodes as processes: this test binary, started
// again with MIMMIGRATE_TEST_NODE set to a node's configuration, runs one
// node (Start with a PostgresDiscovery) until SIGTERM, logging JSON lines
// to stderr.

// nodeSpec is a node process's configuration.
type nodeSpec struct {
	Name, Cookie, DB      string
	CheckInterval, Expire time.Duration
	NetTick               time.Duration
}

func TestMain(m *testing.M) {
	if spec := os.Getenv("MIMMIGRATE_TEST_NODE"); spec != "" {
		os.Exit(runNodeProcess(spec))
	}
	os.Exit(m.Run())
}

// runNodeProcess is the node process: flags → Config → Start, as
// `mimmigrate node start` does.
func runNodeProcess(spec string) int {
	var s nodeSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", s.Name)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	db, err := mimsql.Connect(ctx, s.DB, mimsql.ConnectOptions{Timeout: 10 * time.Second})
	if err != nil {
		log.Error("database", "err", err)
		return 3
	}
	defer db.Close()
	store, err := NewPostgresDiscovery(ctx, db)
	if err != nil {
		log.Error("discovery", "err", err)
		return 3
	}
	cfg := DefaultConfig()
	cfg.Name, cfg.Cookie, cfg.Store, cfg.Logger = s.Name, s.Cookie, store, log
	cfg.CheckInterval, cfg.ExpireTime, cfg.NetTickTime = s.CheckInterval, s.Expire, s.NetTick
	n, err := Start(ctx, cfg)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	<-ctx.Done()
	log.Info("stopping")
	n.Close()
	log.Info("stopped")
	return 0
}

// procNode is a node process.
type procNode struct {
	name   string
	cmd    *exec.Cmd
	log    *testenv.SyncBuffer
	exited chan struct{}
}

// procBed starts node processes against one PostgreSQL database and
// talks to them as `mimmigrate cluster` does.
type procBed struct {
	t      *testing.T
	db     string
	cookie string
	nodes  map[string]*procNode
	admin  *Admin
}

func newProcBed(t *testing.T) *procBed {
	cookie := "c" + testenv.RandomID(12)
	admin := &Admin{Client: &erldist.Client{Cookie: cookie, Name: "t" + testenv.RandomID(4) + "@127.0.0.1", DialTimeout: 3 * time.Second}}
	return &procBed{t: t, db: testenv.PostgresDB(t), cookie: cookie, nodes: map[string]*procNode{}, admin: admin}
}

// command is the node process for spec, run through wrap (a network
// namespace) when given.
func (b *procBed) start(spec nodeSpec, wrap func(bin string, args ...string) *exec.Cmd) *procNode {
	b.t.Helper()
	spec.Cookie = b.cookie
	if spec.DB == "" {
		spec.DB = b.db
	}
	if spec.CheckInterval == 0 {
		spec.CheckInterval = 200 * time.Millisecond
	}
	if spec.Expire == 0 {
		spec.Expire = 3 * time.Second
	}
	if spec.NetTick == 0 {
		spec.NetTick = 2 * time.Second
	}
	js, _ := json.Marshal(spec)
	n := &procNode{name: spec.Name, log: &testenv.SyncBuffer{}, exited: make(chan struct{})}
	args := []string{"-test.run=^$"}
	if wrap != nil {
		n.cmd = wrap(os.Args[0], args...)
	} else {
		n.cmd = exec.Command(os.Args[0], args...)
	}
	n.cmd.Env = append(os.Environ(), "MIMMIGRATE_TEST_NODE="+string(js))
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.exited) }()
	b.nodes[spec.Name] = n
	b.t.Cleanup(func() { n.cmd.Process.Kill(); <-n.exited })
	return n
}

// rpc calls mimmigrate:Fn on a node as a hidden client.
func (b *procBed) rpc(node, fn string, args ...term.Term) (term.Term, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return b.admin.call(ctx, node, fn, args...)
}

func (b *procBed) status(node string) (Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return b.admin.Status(ctx, node)
}

// info is a node's session table: size, nodes, digest.
func (b *procBed) info(node string) (size int64, nodes []string, digest string, err error) {
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

// waitFor polls cond until it is true or the time is up (then it logs
// every node's log).
func (b *procBed) waitFor(what string, limit time.Duration, cond func() (bool, string)) {
	b.t.Helper()
	testenv.WaitFor(b.t, what, limit, cond, func() {
		for name, n := range b.nodes {
			b.t.Logf("log of %s:\n%s", name, testenv.Tail(n.log.String(), 3000))
		}
	})
}

// converged: every node listed holds the same session table, replicated
// to exactly these nodes.
func (b *procBed) converged(names ...string) (bool, string) {
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

func (b *procBed) healthy(node string, joined int) (bool, string) {
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
func (b *procBed) writer(node string, stop <-chan struct{}, wg *sync.WaitGroup, count *int) {
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
		if err == nil {
			if _, err := outcome(res); err == nil {
				*count++
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func psqlOut(db string, args ...string) (string, error) {
	out, err := exec.Command("psql", append([]string{db}, args...)...).CombinedOutput()
	return string(out), err
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
	b := newProcBed(t)
	names := []string{"mimt1@127.0.0.1", "mimt2@127.0.0.1", "mimt3@127.0.0.1", "mimt4@127.0.0.1"}
	for _, n := range names[:3] {
		b.start(nodeSpec{Name: n}, nil)
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
	b.start(nodeSpec{Name: names[3]}, nil)
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
	b.start(nodeSpec{Name: names[1]}, nil)
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
		t.Errorf("SIGTERM: %v\n%s", n4.cmd.ProcessState, testenv.Tail(n4.log.String(), 2000))
	}
}
