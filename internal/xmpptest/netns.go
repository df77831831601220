package xmpptest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// ForwardEnv, when set to "listen>target", makes the test binary a TCP
// forwarder (see MaybeForward): the way a client that only ever
// connects to its domain's port 5222 (xmppc) reaches a test server, from
// inside a network namespace of its own.
const ForwardEnv = "MIMMIGRATE_TEST_FORWARD"

// MaybeForward runs the forwarder and exits when ForwardEnv is set; call
// it first in TestMain.
func MaybeForward() {
	spec := os.Getenv(ForwardEnv)
	if spec == "" {
		return
	}
	listen, target, _ := strings.Cut(spec, ">")
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "forward:", err)
		os.Exit(1)
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(0)
		}
		go func() {
			defer c.Close()
			d, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return
			}
			defer d.Close()
			go func() { io.Copy(d, c); d.(*net.TCPConn).CloseWrite() }()
			io.Copy(c, d)
		}()
	}
}

// XMPPC runs Debian's xmppc (libstrophe) in network namespace ns, where
// a forwarder takes localhost:5222 to target (our listener on the
// namespace bridge). It returns xmppc's output; xmppc exits 0 whatever
// happens, so callers check the server's log for the login.
func XMPPC(dir, ns, target string, l Login, args ...string) (string, error) {
	bg, err := StartXMPPC(dir, ns, target, l, args...)
	if err != nil {
		return "", err
	}
	select {
	case <-bg.done:
	case <-time.After(30 * time.Second):
	}
	bg.Stop()
	return bg.Output(), nil
}

// Background is a client process left running (xmppc's monitor mode,
// go-sendxmpp listening): its output grows while it runs.
type Background struct {
	cmd   *exec.Cmd
	out   *testenv.SyncBuffer
	done  chan struct{}
	after func()
}

// Output is everything the process printed so far.
func (b *Background) Output() string { return b.out.String() }

// Stop kills the process (and what it needed) and waits for it.
func (b *Background) Stop() {
	if b.cmd.Process != nil {
		b.cmd.Process.Kill()
	}
	<-b.done
	if b.after != nil {
		b.after()
		b.after = nil
	}
}

// Wait waits until the output matches the regular expression want, or
// fails after timeout.
func (b *Background) Wait(want string, timeout time.Duration) error {
	re := regexp.MustCompile(want)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if re.MatchString(b.Output()) {
			return nil
		}
		select {
		case <-b.done:
			if re.MatchString(b.Output()) {
				return nil
			}
			return fmt.Errorf("exited without %q; it said:\n%s", want, b.Output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("no %q within %v; it said:\n%s", want, timeout, b.Output())
}

func startBackground(cmd *exec.Cmd, after func()) (*Background, error) {
	b := &Background{cmd: cmd, out: &testenv.SyncBuffer{}, done: make(chan struct{}), after: after}
	cmd.Stdout, cmd.Stderr = b.out, b.out
	if err := cmd.Start(); err != nil {
		if after != nil {
			after()
		}
		return nil, err
	}
	go func() { cmd.Wait(); close(b.done) }()
	return b, nil
}

// StartXMPPC starts xmppc as XMPPC does and leaves it running (for
// -m monitor stanza, which prints every stanza it receives); Stop it
// (it is killed after two minutes in any case).
func StartXMPPC(dir, ns, target string, l Login, args ...string) (*Background, error) {
	if _, err := exec.LookPath("xmppc"); err != nil {
		return nil, fmt.Errorf("xmppc: %w (apt-get install xmppc)", ErrSkip)
	}
	fwd := exec.Command("ip", "netns", "exec", ns, os.Args[0])
	fwd.Env = append(os.Environ(), ForwardEnv+"=127.0.0.1:5222>"+target)
	stdout, err := fwd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := fwd.Start(); err != nil {
		return nil, err
	}
	stopFwd := func() { fwd.Process.Kill(); fwd.Wait() }
	line := make([]byte, 10)
	if _, err := io.ReadFull(stdout, line); err != nil || !strings.HasPrefix(string(line), "listening") {
		stopFwd()
		return nil, fmt.Errorf("the forwarder did not start: %v", err)
	}
	home := filepath.Join(dir, "xmppc-home-"+l.Account.User)
	os.MkdirAll(filepath.Join(home, ".config"), 0o700)
	conf := fmt.Sprintf("[default]\njid=%s\npwd=%s\n", l.Account.JID(), l.Account.Password)
	if err := os.WriteFile(filepath.Join(home, ".config", "xmppc.conf"), []byte(conf), 0o600); err != nil {
		stopFwd()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, "stdbuf", "-oL", "-eL", "xmppc", "-j", l.Account.JID(), "-p", l.Account.Password}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "SSL_CERT_FILE="+l.CA.CertFile)
	return startBackground(cmd, func() { cancel(); stopFwd() })
}
