package xmpptest

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

//go:embed testdata/slixchat.py
var slixChatScript []byte

// Chat is a slixmpp client driven line by line (testdata/slixchat.py):
// Do sends it a command, Expect waits for an event line.
type Chat struct {
	JID   string // the bound JID
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	mu    sync.Mutex
	seen  []string // every line, for failure messages
	t     testing.TB
}

// StartChat logs a slixmpp client in and waits for its session; it ends
// with the test.
func StartChat(t testing.TB, l Login) *Chat {
	t.Helper()
	if _, err := os.Stat("/usr/lib/python3/dist-packages/slixmpp"); err != nil {
		t.Skip("slixmpp is not installed (apt-get install python3-slixmpp)")
	}
	script, err := writeScript(t.TempDir(), "slixchat.py", slixChatScript)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{script, "--jid", l.Account.JID(), "--password", l.Account.Password, "--addr", l.Addr, "--ca", l.CA.CertFile}
	if l.DirectTLS {
		args = append(args, "--direct-tls")
	}
	if l.PEP {
		args = append(args, "--pep")
	}
	return startChat(t, "/usr/bin/python3", args, nil)
}

// startChat runs a line-driven client and waits for its READY line.
func startChat(t testing.TB, prog string, args, env []string) *Chat {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	c := &Chat{cmd: exec.CommandContext(ctx, prog, args...), lines: make(chan string, 1000), t: t}
	c.cmd.Stderr = os.Stderr
	if env != nil {
		c.cmd.Env = append(os.Environ(), env...)
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.seen = append(c.seen, sc.Text())
			c.mu.Unlock()
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		c.in.Close()
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
		cancel()
	})
	ready := c.Expect(`^READY (\S+)$`, 30*time.Second)
	c.JID = ready[1]
	return c
}

// Do sends a command.
func (c *Chat) Do(format string, args ...any) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.in, format+"\n", args...); err != nil {
		c.t.Fatalf("%s: %v", c.JID, err)
	}
}

// Expect waits for a line matching re (lines before it are passed over)
// and returns its submatches; a FAIL line or the timeout fails the test.
func (c *Chat) Expect(re string, timeout time.Duration) []string {
	c.t.Helper()
	m, err := c.expect(re, timeout)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

func (c *Chat) expect(re string, timeout time.Duration) ([]string, error) {
	rx := regexp.MustCompile(re)
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return nil, fmt.Errorf("%s: the client ended waiting for %q; it said:\n%s", c.JID, re, c.said())
			}
			if m := rx.FindStringSubmatch(l); m != nil {
				return m, nil
			}
			if strings.HasPrefix(l, "FAIL ") {
				return nil, fmt.Errorf("%s: %s (waiting for %q)", c.JID, l, re)
			}
		case <-deadline:
			return nil, fmt.Errorf("%s: no %q within %v; it said:\n%s", c.JID, re, timeout, c.said())
		}
	}
}

// Run sends a command and returns the lines said up to the one matching
// end (included).
func (c *Chat) Run(end string, timeout time.Duration, format string, args ...any) []string {
	c.t.Helper()
	c.Do(format, args...)
	rx := regexp.MustCompile(end)
	deadline := time.After(timeout)
	var out []string
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("%s: the client ended waiting for %q; it said:\n%s", c.JID, end, c.said())
			}
			out = append(out, l)
			if rx.MatchString(l) {
				return out
			}
		case <-deadline:
			c.t.Fatalf("%s: no %q within %v; it said:\n%s", c.JID, end, timeout, c.said())
		}
	}
}

// Quiet checks that no line matching re comes within d.
func (c *Chat) Quiet(re string, d time.Duration) {
	c.t.Helper()
	if m, err := c.expect(re, d); err == nil {
		c.t.Fatalf("%s: unexpected %q", c.JID, m[0])
	}
}

func (c *Chat) said() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.seen, "\n")
}

// WriteChatScript writes the line-driven slixmpp client (see
// testdata/slixchat.py) into dir and returns its path.
func WriteChatScript(dir string) (string, error) {
	return writeScript(dir, "slixchat.py", slixChatScript)
}

//go:embed testdata/stanzachat.js
var stanzaChatScript []byte

// StartStanza logs the stanza (npm) client in over WebSocket (url
// wss://…/ws) and waits for its session; it takes the commands and says
// the events of slixchat.py that testdata/stanzachat.js lists.
func StartStanza(t testing.TB, url string, a Account, ca *CA) *Chat {
	t.Helper()
	mods, err := NodeModules()
	if err != nil {
		t.Skip(err)
	}
	if _, err := os.Stat(mods + "/stanza/package.json"); err != nil {
		t.Skip("the stanza npm client is not installed (.ci/setup installs it)")
	}
	script, err := writeScript(t.TempDir(), "stanzachat.js", stanzaChatScript)
	if err != nil {
		t.Fatal(err)
	}
	return startChat(t, "node", []string{script, url, a.JID(), a.Password}, []string{"NODE_PATH=" + mods, "NODE_EXTRA_CA_CERTS=" + ca.CertFile})
}
