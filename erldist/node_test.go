package erldist

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// erlRun runs a real Erlang node with the cookie, evaluates expr (which
// prints) and returns what it printed.
func erlRun(t *testing.T, cookie string, env []string, expr string) string {
	t.Helper()
	erl := testenv.Erl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, erl, "-noshell", "-name", "h"+testenv.RandomID(6)+"@127.0.0.1", "-setcookie", cookie,
		"-eval", expr+", halt().")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("erl: %v\n%s", err, out)
	}
	return string(out)
}

func startNode(t *testing.T, n *Node) *Node {
	t.Helper()
	if n.Name == "" {
		n.Name = "gonode" + testenv.RandomID(6) + "@127.0.0.1"
	}
	if n.ListenAddr == "" {
		n.ListenAddr = "127.0.0.1:0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// A real Erlang node pings a Go node, reads its status over rpc:call, is
// refused other functions, and is refused with a wrong cookie.
func TestErlangPingsAndCallsGoNode(t *testing.T) {
	cookie := "c" + testenv.RandomID(12)
	n := startNode(t, &Node{Cookie: cookie, RPC: map[string]RPCFunc{
		"mimmigrate:status/0": func(from term.Atom, _ term.List) term.Term {
			return term.Tuple{term.Atom("ok"), term.Binary("running"), from}
		},
	}})
	out := erlRun(t, cookie, nil, `N = '`+n.Name+`', io:format("~p~n~p~n~p~n", [net_adm:ping(N), rpc:call(N, mimmigrate, status, []), rpc:call(N, os, cmd, ["id"])])`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "pong" || !strings.HasPrefix(lines[1], `{ok,<<"running">>,'h`) ||
		!strings.HasPrefix(lines[2], "{badrpc,{'EXIT',{undef,[{os,cmd,") {
		t.Fatalf("erl saw:\n%s", out)
	}
	if out := erlRun(t, "wrong"+cookie, nil, `io:format("~p~n", [net_adm:ping('`+n.Name+`')])`); strings.TrimSpace(out) != "pang" {
		t.Fatalf("wrong cookie: %s", out)
	}
}

// On a host with no epmd the node serves the port mapper itself, and an
// Erlang node finds it there.
func TestNodeServesEPMD(t *testing.T) {
	port := testenv.FreePort(t)
	cookie := "c" + testenv.RandomID(12)
	n := startNode(t, &Node{Cookie: cookie, EPMDPort: port, ServeEPMD: true})
	if n.epmd == nil {
		t.Fatal("the node did not start its own epmd")
	}
	names, err := EPMD{Host: "127.0.0.1", Port: port}.Names(context.Background())
	if err != nil || len(names) != 1 || names[0].Name != strings.Split(n.Name, "@")[0] || names[0].Port != n.Port() {
		t.Fatalf("names: %v %v", names, err)
	}
	out := erlRun(t, cookie, []string{"ERL_EPMD_PORT=" + itoa(port)}, `io:format("~p~n", [net_adm:ping('`+n.Name+`')])`)
	if strings.TrimSpace(out) != "pong" {
		t.Fatalf("ping through our epmd: %s", out)
	}
	// A second node on the same host registers with the first one's epmd.
	m := startNode(t, &Node{Cookie: cookie, EPMDPort: port, ServeEPMD: true})
	if m.epmd != nil {
		t.Error("the second node started another epmd")
	}
	if _, err := m.Connect(context.Background(), n.Name); err != nil {
		t.Fatal(err)
	}
	// A name in use is refused.
	dup := &Node{Name: n.Name, Cookie: cookie, EPMDPort: port, ListenAddr: "127.0.0.1:0"}
	if err := dup.Start(context.Background()); err == nil {
		dup.Close()
		t.Fatal("a second node with the same name registered")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// Two Go nodes: one connection between them however they dial (both at
// once included), messages both ways, a down when one closes.
func TestGoNodesConnect(t *testing.T) {
	cookie := "c" + testenv.RandomID(12)
	downs := make(chan term.Atom, 4)
	echo := map[term.Atom]Handler{"echo": func(c *Conn, from term.Pid, msg term.Term) {
		go c.Send(from, term.Tuple{term.Atom("echoed"), msg})
	}}
	a := startNode(t, &Node{Cookie: cookie, Handlers: echo, Down: func(p term.Atom, _ error) { downs <- p }})
	b := startNode(t, &Node{Cookie: cookie, Handlers: echo})
	ctx := context.Background()
	done := make(chan *Conn, 2)
	go func() { c, _ := a.Connect(ctx, b.Name); done <- c }()
	go func() { c, _ := b.Connect(ctx, a.Name); done <- c }()
	c1, c2 := <-done, <-done
	if c1 == nil || c2 == nil {
		t.Fatal("connect failed")
	}
	time.Sleep(200 * time.Millisecond)
	if len(a.Peers()) != 1 || len(b.Peers()) != 1 {
		t.Fatalf("peers: %v %v", a.Peers(), b.Peers())
	}
	cb := b.Conn(term.Atom(a.Name))
	if err := cb.SendNamed("echo", term.Binary("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-cb.Mailbox():
		if !term.Equal(m.Msg, term.Tuple{term.Atom("echoed"), term.Binary("hello")}) {
			t.Fatalf("got %s", term.Format(m.Msg))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no echo")
	}
	select {
	case p := <-downs:
		t.Fatalf("a saw %s go down while it is up", p)
	default:
	}
	b.Close()
	select {
	case p := <-downs:
		if string(p) != b.Name {
			t.Fatalf("down of %s", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a did not see b go down")
	}
}
