package erldist_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

func dial(t *testing.T, n *testenv.ErlNode, mod func(*erldist.Client)) *erldist.Conn {
	t.Helper()
	cl := &erldist.Client{Cookie: n.Cookie, DialTimeout: 5 * time.Second}
	if mod != nil {
		mod(cl)
	}
	c, err := cl.Dial(context.Background(), n.Name)
	if err != nil {
		t.Fatalf("dial %s: %v", n.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func call(t *testing.T, c *erldist.Conn, mod, fun term.Atom, args ...term.Term) term.Term {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Call(ctx, mod, fun, args...)
	if err != nil {
		t.Fatalf("call %s:%s: %v", mod, fun, err)
	}
	return r
}

func wantKind(t *testing.T, err error, kind erldist.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("want failure of kind %d, got success", kind)
	}
	if got := erldist.KindOf(err); got != kind {
		t.Fatalf("want kind %d, got %d: %v", kind, got, err)
	}
	if erldist.HintOf(err) == "" && kind != erldist.KindBadRPC {
		t.Errorf("error has no hint: %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err.Error())
	}
}

func TestConnectAndCall(t *testing.T) {
	for _, long := range []bool{false, true} {
		t.Run(fmt.Sprintf("long=%v", long), func(t *testing.T) {
			n := testenv.StartErl(t, testenv.ErlOptions{Long: long})
			c := dial(t, n, nil)
			if got := call(t, c, "erlang", "node"); !term.IsAtom(got, term.Atom(n.Name)) {
				t.Errorf("erlang:node() = %s", term.Format(got))
			}
			got := call(t, c, "lists", "reverse", term.List{int64(1), term.Binary("two"), term.Atom("three")})
			if !term.Equal(got, term.List{term.Atom("three"), term.Binary("two"), int64(1)}) {
				t.Errorf("lists:reverse = %s", term.Format(got))
			}
			if c.Version() != 6 || !c.Hidden() {
				t.Errorf("version %d hidden %v", c.Version(), c.Hidden())
			}
			// The node sees us as hidden: in nodes(hidden), not in nodes().
			visible := call(t, c, "erlang", "nodes")
			hidden := call(t, c, "erlang", "nodes", term.Atom("hidden"))
			self := term.Atom(c.Self().Node)
			if l, _ := term.Elems(visible); len(l) != 0 {
				t.Errorf("nodes() = %s; we must not be visible", term.Format(visible))
			}
			found := false
			if l, ok := term.Elems(hidden); ok {
				for _, e := range l {
					found = found || term.IsAtom(e, self)
				}
			}
			if !found {
				t.Errorf("nodes(hidden) = %s, want %s in it", term.Format(hidden), self)
			}
			// The node can ping us back over the same connection (is_auth).
			if got := call(t, c, "net_adm", "ping", self); !term.IsAtom(got, "pong") {
				t.Errorf("net_adm:ping(us) = %s", term.Format(got))
			}
		})
	}
}

func TestManyCallsInFlight(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{})
	c := dial(t, n, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Replies come back out of order: the later calls sleep less.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, err := c.Call(ctx, "timer", "sleep", int64((64-i)*5))
			if err == nil && !term.IsAtom(r, "ok") {
				err = fmt.Errorf("sleep returned %s", term.Format(r))
			}
			if err == nil {
				r, err = c.Call(ctx, "erlang", "integer_to_binary", int64(i))
				if err == nil && !term.Equal(r, term.Binary(fmt.Sprint(i))) {
					err = fmt.Errorf("call %d got %s", i, term.Format(r))
				}
			}
			if err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestBadRPC(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{})
	c := dial(t, n, nil)
	_, err := c.Call(context.Background(), "erlang", "error", term.Atom("boom"))
	wantKind(t, err, erldist.KindBadRPC)
	var re *erldist.RemoteError
	if !errors.As(err, &re) || !strings.Contains(term.Format(re.Reason), "boom") {
		t.Errorf("reason: %v", err)
	}
	_, err = c.Call(context.Background(), "no_such_module", "f")
	wantKind(t, err, erldist.KindBadRPC)
	if !strings.Contains(erldist.HintOf(err), "does not exist") {
		t.Errorf("undef hint: %q", erldist.HintOf(err))
	}
	// The connection stays usable.
	call(t, c, "erlang", "node")
}

func TestCallTimeoutAndPeerDeath(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{})
	c := dial(t, n, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, "timer", "sleep", int64(5000))
	wantKind(t, err, erldist.KindTimeout)

	done := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "timer", "sleep", int64(30000))
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	n.Stop()
	select {
	case err := <-done:
		wantKind(t, err, erldist.KindConnectionLost)
	case <-time.After(10 * time.Second):
		t.Fatal("call did not fail after the node died")
	}
	if _, err := c.Call(context.Background(), "erlang", "node"); erldist.KindOf(err) != erldist.KindConnectionLost {
		t.Errorf("call on a dead connection: %v", err)
	}
}

func TestHandshakeFailuresAgainstRealNodes(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{})
	ctx := context.Background()
	try := func(node string, mod func(*erldist.Client)) error {
		cl := &erldist.Client{Cookie: n.Cookie, DialTimeout: 5 * time.Second}
		if mod != nil {
			mod(cl)
		}
		start := time.Now()
		c, err := cl.Dial(ctx, node)
		if c != nil {
			c.Close()
		}
		if time.Since(start) > 6*time.Second {
			t.Errorf("dial %s took %s", node, time.Since(start))
		}
		return err
	}

	t.Run("wrong cookie", func(t *testing.T) {
		wantKind(t, try(n.Name, func(cl *erldist.Client) { cl.Cookie = "not-the-cookie" }), erldist.KindBadCookie)
	})
	t.Run("not registered", func(t *testing.T) {
		err := try("nosuchnode@localhost", nil)
		wantKind(t, err, erldist.KindNotRegistered)
		if !strings.Contains(erldist.HintOf(err), n.Alive()) {
			t.Errorf("the hint does not list the registered names: %v", erldist.HintOf(err))
		}
	})
	t.Run("no epmd", func(t *testing.T) {
		port := testenv.FreePort(t)
		wantKind(t, try(n.Name, func(cl *erldist.Client) { cl.EPMDPort = port }), erldist.KindNoEPMD)
	})
	t.Run("host does not resolve", func(t *testing.T) {
		wantKind(t, try("ejabberd@no-such-host.invalid", nil), erldist.KindHostNotFound)
	})
	t.Run("bad node name", func(t *testing.T) {
		wantKind(t, try("ejabberd", nil), erldist.KindBadName)
	})
	t.Run("version 5 refused by OTP 25.0-25.2", func(t *testing.T) {
		rel := n.Eval(t, "erlang:system_info(otp_release) ++ \"/\" ++ erlang:system_info(version)")
		err := try(n.Name, func(cl *erldist.Client) { cl.Version = 5 })
		if !strings.HasPrefix(rel, "25/13.1") && !strings.HasPrefix(rel, "25/13.0") {
			t.Skipf("node is OTP %s, which accepts version 5", rel)
		}
		wantKind(t, err, erldist.KindClosedAfterSendName)
		var e *erldist.Error
		if !errors.As(err, &e) || e.Remedy != erldist.RemedyVersion6 || !strings.Contains(e.Hint, "version 6") {
			t.Errorf("hint: %s (remedy %q)", erldist.HintOf(err), e.Remedy)
		}
	})
	t.Run("not allowed", func(t *testing.T) {
		m := testenv.StartErl(t, testenv.ErlOptions{})
		m.Eval(t, "net_kernel:allow(['someone@else'])")
		wantKind(t, try(m.Name, func(cl *erldist.Client) { cl.Cookie = m.Cookie }), erldist.KindNotAllowed)
	})
	t.Run("name mismatch", func(t *testing.T) {
		// The right port, the wrong name: the node answers with its own name.
		port := nodePort(t, n)
		other := "impostor@localhost"
		wantKind(t, try(other, func(cl *erldist.Client) { cl.DistPort = port }), erldist.KindNameMismatch)
	})
}

func nodePort(t *testing.T, n *testenv.ErlNode) int {
	t.Helper()
	info, found, err := erldist.EPMD{Host: "localhost"}.PortPlease(context.Background(), n.Alive())
	if err != nil || !found {
		t.Fatalf("port of %s: %v %v", n.Name, found, err)
	}
	return info.Port
}

// A PostgreSQL server (a real service that does not speak the protocol)
// behind --epmd-port or --dist-port.
func TestNotErlangPorts(t *testing.T) {
	pg := testenv.PostgresAddr(t)
	_, portStr, _ := net.SplitHostPort(pg)
	var port int
	fmt.Sscan(portStr, &port)
	n := testenv.StartErl(t, testenv.ErlOptions{})
	cl := &erldist.Client{Cookie: n.Cookie, DialTimeout: 3 * time.Second, EPMDPort: port}
	_, err := cl.Dial(context.Background(), "ejabberd@127.0.0.1")
	if k := erldist.KindOf(err); k != erldist.KindNotEPMD && k != erldist.KindUnreachable {
		t.Errorf("epmd port is PostgreSQL: kind %d: %v", k, err)
	}
	cl = &erldist.Client{Cookie: n.Cookie, DialTimeout: 3 * time.Second, DistPort: port}
	_, err = cl.Dial(context.Background(), "ejabberd@127.0.0.1")
	switch erldist.KindOf(err) {
	case erldist.KindNotDistribution, erldist.KindClosedAfterSendName, erldist.KindTimeout:
	default:
		t.Errorf("dist port is PostgreSQL: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), n.Cookie) {
		t.Error("error shows the cookie")
	}
}

func TestNameInUseUsesThePool(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{})
	a := dial(t, n, nil)
	b := dial(t, n, nil)
	if a.Self().Node == b.Self().Node {
		t.Fatalf("two live connections share the name %s", a.Self().Node)
	}
	if !strings.HasSuffix(strings.SplitN(string(b.Self().Node), "@", 2)[0], "-2") {
		t.Errorf("second client name %s is not the pool's second", b.Self().Node)
	}
	// Both work.
	call(t, a, "erlang", "node")
	call(t, b, "erlang", "node")
	// With a fixed name, the node's "alive" status is reported.
	cl := &erldist.Client{Cookie: n.Cookie, Name: string(a.Self().Node), DialTimeout: 5 * time.Second}
	_, err := cl.Dial(context.Background(), n.Name)
	wantKind(t, err, erldist.KindNameInUse)
	call(t, a, "erlang", "node") // the first connection was not taken over
}

func TestTicksKeepAnIdleConnection(t *testing.T) {
	// net_ticktime 4: the node expects to hear from us every second and
	// drops the connection after about 4 s of silence.
	n := testenv.StartErl(t, testenv.ErlOptions{Args: []string{"-kernel", "net_ticktime", "4"}})
	tm := erldist.DefaultTimeouts()
	tm.Tick = 2 * time.Second
	c := dial(t, n, func(cl *erldist.Client) { cl.Timeouts = tm })
	time.Sleep(9 * time.Second)
	if err := c.Err(); err != nil {
		t.Fatalf("connection dropped while idle: %v", err)
	}
	call(t, c, "erlang", "node")

	// Control: without our ticks the node drops us.
	tm.Tick = 0
	silent := dial(t, n, func(cl *erldist.Client) { cl.Timeouts = tm })
	select {
	case <-silent.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("a silent connection survived; the tick test proves nothing")
	}
}

func TestMonitorsLinksAndMessages(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{})
	c := dial(t, n, nil)
	// A remote process sends to our pid.
	call(t, c, "erlang", "spawn", term.Atom("erlang"), term.Atom("send"),
		term.List{c.Self(), term.Tuple{term.Atom("hello"), term.Binary("from erl")}})
	select {
	case m := <-c.Mailbox():
		if !term.Equal(m.Msg, term.Tuple{term.Atom("hello"), term.Binary("from erl")}) {
			t.Errorf("message: %s", term.Format(m.Msg))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}

	// Monitor a process that exits.
	sleeper := call(t, c, "erlang", "spawn", term.Atom("timer"), term.Atom("sleep"), term.List{int64(300)}).(term.Pid)
	_, down, err := c.Monitor(sleeper)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-down:
		if !term.IsAtom(reason, "normal") {
			t.Errorf("monitor reason %s", term.Format(reason))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no MONITOR_P_EXIT")
	}
	_, down, _ = c.Monitor(term.Atom("no_such_name"))
	select {
	case reason := <-down:
		if !term.IsAtom(reason, "noproc") {
			t.Errorf("monitor of a missing name: %s", term.Format(reason))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no noproc")
	}

	// Link to a process that then exits with a reason: we get the EXIT.
	linked := call(t, c, "erlang", "spawn", term.Atom("timer"), term.Atom("sleep"), term.List{int64(60000)}).(term.Pid)
	if err := c.Link(linked); err != nil {
		t.Fatal(err)
	}
	call(t, c, "erlang", "exit", linked, term.Atom("kill_it"))
	deadline := time.After(5 * time.Second)
	for got := false; !got; {
		select {
		case m := <-c.Mailbox():
			if tu, ok := term.IsRecord(m.Msg, "EXIT", 3); ok && tu[1] == linked {
				got = true
				if !term.IsAtom(tu[2], "kill_it") {
					t.Errorf("exit reason %s", term.Format(tu[2]))
				}
			}
		case <-deadline:
			t.Fatal("no EXIT from the linked process")
		}
	}

	// A remote process links to us, then unlinks (UNLINK_ID, which we ack).
	if got := evalRemote(t, c, "link(P), timer:sleep(100), unlink(P), timer:sleep(100), self()",
		"P", c.Self()); got == nil {
		t.Fatal("no pid")
	}
	if len(c.Mailbox()) != 0 {
		t.Errorf("unexpected message after link/unlink: %s", term.Format((<-c.Mailbox()).Msg))
	}
	call(t, c, "erlang", "node") // the connection is healthy

	// Our link shows in the remote process's links.
	probe := call(t, c, "erlang", "spawn", term.Atom("timer"), term.Atom("sleep"), term.List{int64(60000)}).(term.Pid)
	if err := c.Link(probe); err != nil {
		t.Fatal(err)
	}
	links := call(t, c, "erlang", "process_info", probe, term.Atom("links"))
	if !strings.Contains(term.Format(links), term.Format(c.Self())) {
		t.Errorf("remote links %s do not include us", term.Format(links))
	}
	// Our side of an unlink: UNLINK_ID out, UNLINK_ID_ACK back.
	uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Unlink(uctx, probe); err != nil {
		t.Fatalf("unlink: %v", err)
	}
	links = call(t, c, "erlang", "process_info", probe, term.Atom("links"))
	if strings.Contains(term.Format(links), term.Format(c.Self())) {
		t.Errorf("remote links %s still include us after unlink", term.Format(links))
	}
}

// evalRemote evaluates Erlang source on the peer, with one variable bound.
func evalRemote(t *testing.T, c *erldist.Conn, src string, name string, value term.Term) term.Term {
	t.Helper()
	toks := call(t, c, "erl_scan", "string", term.Charlist(src+"."))
	scanned, ok := term.IsRecord(toks, "ok", 3)
	if !ok {
		t.Fatalf("scan: %s", term.Format(toks))
	}
	parsed, ok := term.IsRecord(call(t, c, "erl_parse", "parse_exprs", scanned[1]), "ok", 2)
	if !ok {
		t.Fatal("parse failed")
	}
	res := call(t, c, "erl_eval", "exprs", parsed[1], term.List{term.Tuple{term.Atom(name), value}})
	v, ok := term.IsRecord(res, "value", 3)
	if !ok {
		t.Fatalf("eval: %s", term.Format(res))
	}
	return v[1]
}

// Many goroutines sending to a real Erlang process at once, with
// messages of megabytes among them (the write buffer then grows past the
// size it is kept at): every message arrives intact and in order per
// sender, and the connection stays up. (The buffer dropped after a large
// write was still the spare one, so the next write went out of the
// buffer senders were appending to: the peer read garbage framing —
// "packet of 1887660036 bytes" — and the two nodes lost each other.)
func TestConcurrentSendsWithLargeMessages(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{})
	c := dial(t, n, nil)
	sink := `P = spawn(fun() ->
		Loop = fun Loop(Next, Ok, Bad) ->
			receive
				{small, W, Seq, Bin} ->
					Want = maps:get(W, Next, 0),
					Good = Seq =:= Want andalso Bin =:= binary:copy(<<(Seq rem 256)>>, 200),
					if Good -> Loop(Next#{W => Seq + 1}, Ok + 1, Bad); true -> Loop(Next#{W => Seq + 1}, Ok, Bad + 1) end;
				{big, Size, Bin} ->
					timer:sleep(30), % the socket fills: our writes block
					case byte_size(Bin) =:= Size of true -> Loop(Next, Ok + 1, Bad); false -> Loop(Next, Ok, Bad + 1) end;
				{count, From} -> From ! {counted, Ok, Bad}, Loop(Next, Ok, Bad)
			end
		end,
		Loop(#{}, 0, 0) end), register(mim_sink, P), P`
	evalRemote(t, c, sink, "Unused", term.Atom("x"))
	const writers, each, bigs = 8, 5000, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; seq < each; seq++ {
				b := make([]byte, 200)
				for i := range b {
					b[i] = byte(seq % 256)
				}
				if err := c.SendNamed("mim_sink", term.Tuple{term.Atom("small"), int64(w), int64(seq), term.Binary(b)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < bigs; i++ {
			size := 2<<20 + i
			if err := c.SendNamed("mim_sink", term.Tuple{term.Atom("big"), int64(size), term.Binary(make([]byte, size))}); err != nil {
				errs <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("send: %v", err)
	}
	if err := c.SendNamed("mim_sink", term.Tuple{term.Atom("count"), c.Self()}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-c.Mailbox():
		tu, ok := term.IsRecord(m.Msg, "counted", 3)
		if !ok {
			t.Fatalf("reply %s", term.Format(m.Msg))
		}
		if okN, _ := term.Int(tu[1]); okN != writers*each+bigs || !term.Equal(tu[2], int64(0)) {
			t.Errorf("the Erlang process got %s intact and %s damaged or out of order, want %d and 0", term.Format(tu[1]), term.Format(tu[2]), writers*each+bigs)
		}
	case <-c.Done():
		t.Fatalf("the connection ended: %v", c.Err())
	case <-time.After(60 * time.Second):
		t.Fatal("no count from the Erlang process")
	}
	call(t, c, "erlang", "node") // still healthy
}
