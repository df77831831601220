package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErlNode is a private Erlang node started for a test.
type ErlNode struct {
	Name   string // full node name, e.g. mmt-1a2b@localhost
	Cookie string
	Dir    string // its working directory (and Mnesia directory when asked for)
	cmd    *exec.Cmd
	logs   *SyncBuffer
	opt    ErlOptions
}

// SyncBuffer is a bytes.Buffer safe for a process writing and a test reading.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ErlOptions configures StartErl.
type ErlOptions struct {
	Prefix string   // name prefix (default "mmt")
	Alive  string   // the name before '@' (default: prefix + random)
	Long   bool     // -name ...@127.0.0.1 instead of -sname ...@localhost
	Cookie string   // default: random
	Dir    string   // working directory (default: a new temp dir)
	Mnesia bool     // start Mnesia in Dir/mnesia, creating a disc schema if there is none
	Join   string   // with Mnesia: join this node's cluster (extra_db_nodes) with a disc schema
	Args   []string // extra erl arguments
}

// TimeWarpFlags start an Erlang VM without time correction. On these
// virtual machines (kvm-clock) the OS monotonic clock sometimes steps
// back under load, and OTP 25 then aborts the VM with "Monotonic time
// stepped backwards!" (nodes that did not start, or went down mid-test,
// in about one CI run of two; multi time warp mode did not help). Without
// time correction the VM does not abort (the workaround others report).
const TimeWarpFlags = "+c false"

// RandomID returns n random hex characters.
func RandomID(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// StartErl starts an Erlang node and stops it when the test ends.
func StartErl(t testing.TB, opt ErlOptions) *ErlNode {
	t.Helper()
	erl := Erl(t)
	if opt.Prefix == "" {
		opt.Prefix = "mmt"
	}
	if opt.Cookie == "" {
		opt.Cookie = "cookie" + RandomID(16)
	}
	dir := opt.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	n := &ErlNode{Cookie: opt.Cookie, Dir: dir, logs: &SyncBuffer{}, opt: opt}
	alive := opt.Alive
	if alive == "" {
		alive = opt.Prefix + "-" + RandomID(6)
	}
	args := []string{"-noinput", "-setcookie", opt.Cookie, "+c", "false"}
	if opt.Long {
		n.Name = alive + "@127.0.0.1"
		args = append(args, "-name", n.Name)
	} else {
		n.Name = alive + "@localhost"
		args = append(args, "-sname", n.Name)
	}
	if opt.Mnesia {
		args = append(args, "-mnesia", "dir", fmt.Sprintf("%q", filepath.Join(dir, "mnesia")))
		if opt.Join != "" {
			args = append(args, "-mnesia", "extra_db_nodes", fmt.Sprintf("[%s]", erlQuote(opt.Join)),
				"-eval", "ok = mnesia:start(), {atomic, ok} = mnesia:change_table_copy_type(schema, node(), disc_copies)")
		} else {
			args = append(args, "-eval", "mnesia:create_schema([node()]), ok = mnesia:start()")
		}
	}
	args = append(args, opt.Args...)
	n.cmd = exec.Command(erl, args...)
	n.cmd.Dir = dir
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	ownGroup(n.cmd)
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start erl: %v", err)
	}
	t.Cleanup(n.Stop)
	n.waitUp(t, 30*time.Second)
	if opt.Mnesia {
		n.waitMnesia(t)
	}
	return n
}

// Alive is the part of the name before '@'.
func (n *ErlNode) Alive() string { return strings.SplitN(n.Name, "@", 2)[0] }

// Restart starts the node again with the same name, directory and options
// (after Stop, or after StopMnesia and a halt).
func (n *ErlNode) Restart(t testing.TB) *ErlNode {
	t.Helper()
	opt := n.opt
	opt.Alive, opt.Dir, opt.Cookie, opt.Join = n.Alive(), n.Dir, n.Cookie, ""
	return StartErl(t, opt)
}

// Halt stops Mnesia cleanly and then the node.
func (n *ErlNode) Halt(t testing.TB) {
	t.Helper()
	n.TryEval("mnesia:stop()")
	n.TryEval("spawn(fun() -> timer:sleep(100), erlang:halt() end), ok")
	if n.cmd != nil && n.cmd.Process != nil {
		done := make(chan struct{})
		go func() { n.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			n.Stop()
		}
	}
}

// Stop kills the node and everything it started (idempotent).
func (n *ErlNode) Stop() {
	if n.cmd != nil && n.cmd.Process != nil && n.cmd.ProcessState == nil {
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL) // the process group
		n.cmd.Process.Kill()
		n.cmd.Wait()
	}
}

// ownGroup makes cmd the leader of a new process group, so that Stop also
// reaches the processes it starts (RabbitMQ's script starts the VM), and
// bounds how long Wait waits for output they still hold open.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
}

func (n *ErlNode) waitUp(t testing.TB, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if out, err := exec.Command("epmd", "-names").Output(); err == nil &&
			strings.Contains(string(out), "name "+n.Alive()+" at port") {
			return
		}
		if n.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("erl node %s did not come up; output:\n%s", n.Name, n.logs.String())
}

func (n *ErlNode) waitMnesia(t testing.TB) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if out, err := n.TryEval("mnesia:system_info(is_running)"); err == nil && out == "yes" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("mnesia did not start on %s; output:\n%s", n.Name, n.logs.String())
}

// Eval evaluates an Erlang expression on the node (through a short-lived
// hidden helper node) and returns the result printed with ~p on one line,
// or, when the result is a string or binary, that text.
func (n *ErlNode) Eval(t testing.TB, expr string) string {
	t.Helper()
	out, err := n.TryEval(expr)
	if err != nil {
		t.Fatalf("eval on %s: %s: %v", n.Name, expr, err)
	}
	return out
}

// TryEval is Eval returning its error.
func (n *ErlNode) TryEval(expr string) (string, error) {
	return EvalOn(n.Name, n.Cookie, expr)
}

// EvalOn evaluates expr on any node (see ErlNode.Eval), within a minute.
func EvalOn(node, cookie, expr string) (string, error) {
	return EvalOnWithin(node, cookie, expr, time.Minute)
}

// EvalOnWithin is EvalOn with another time limit for the call.
func EvalOnWithin(node, cookie, expr string, limit time.Duration) (string, error) {
	helper := "mmh-" + RandomID(8)
	nameFlag := "-sname"
	if host := node[strings.IndexByte(node, '@')+1:]; strings.Contains(host, ".") {
		nameFlag, helper = "-name", helper+"@127.0.0.1"
	}
	prog := fmt.Sprintf(`
Node = %s,
{ok, Toks, _} = erl_scan:string(%s),
{ok, Exprs} = erl_parse:parse_exprs(Toks),
R = case rpc:call(Node, erl_eval, exprs, [Exprs, []], %d) of
        {value, V, _} -> V;
        Other -> {eval_failed, Other}
    end,
Out = case R of
          _ when is_binary(R) -> R;
          _ -> case io_lib:printable_unicode_list(R) of
                   true -> R;
                   false -> io_lib:format("~9999999p", [R])
               end
      end,
io:format("~ts", [Out]),
case R of {eval_failed, _} -> halt(2); _ -> halt(0) end.`, erlQuote(node), erlString(expr+"."), limit.Milliseconds())
	ctx, cancel := context.WithTimeout(context.Background(), limit+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "erl", "+c", "false", "-noshell", "-hidden", nameFlag, helper, "-setcookie", cookie, "-eval", prog)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%v: %s%s", err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func erlQuote(atom string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(atom, `\`, `\\`), `'`, `\'`) + "'"
}

func erlString(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// freePort is FreePort for code that has no test to fail (a private
// ejabberd node's listener).
func freePort() (int, error) {
	// Below the kernel's ephemeral range (32768 and up by default), so
	// that a listener on port 0 or an outgoing connection cannot take it
	// between now and its use; never the same port twice in a process.
	portsMu.Lock()
	defer portsMu.Unlock()
	lo, hi := 20000, 32000
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var elo, ehi int
		if _, err := fmt.Sscan(string(b), &elo, &ehi); err == nil && elo-1 < hi {
			hi = elo - 1
		}
	}
	for try := 0; try < 1000 && hi > lo; try++ {
		p := lo + mrand.IntN(hi-lo)
		if portsGiven[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[p] = true
		return p, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// Logs returns what the node printed so far.
func (n *ErlNode) Logs() string { return n.logs.String() }

// WriteCookieFile writes the cookie to a 0400 file and returns its path.
func WriteCookieFile(t testing.TB, cookie string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cookie")
	if err := os.WriteFile(p, []byte(cookie+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	return p
}
