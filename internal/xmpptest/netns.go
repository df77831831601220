package xmpptest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
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
	if _, err := exec.LookPath("xmppc"); err != nil {
		return "", fmt.Errorf("xmppc: %w (apt-get install xmppc)", ErrSkip)
	}
	fwd := exec.Command("ip", "netns", "exec", ns, os.Args[0])
	fwd.Env = append(os.Environ(), ForwardEnv+"=127.0.0.1:5222>"+target)
	stdout, err := fwd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := fwd.Start(); err != nil {
		return "", err
	}
	defer func() { fwd.Process.Kill(); fwd.Wait() }()
	line := make([]byte, 10)
	if _, err := io.ReadFull(stdout, line); err != nil || !strings.HasPrefix(string(line), "listening") {
		return "", fmt.Errorf("the forwarder did not start: %v", err)
	}
	home := filepath.Join(dir, "xmppc-home")
	os.MkdirAll(filepath.Join(home, ".config"), 0o700)
	conf := fmt.Sprintf("[default]\njid=%s\npwd=%s\n", l.Account.JID(), l.Account.Password)
	if err := os.WriteFile(filepath.Join(home, ".config", "xmppc.conf"), []byte(conf), 0o600); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, "xmppc", "-j", l.Account.JID(), "-p", l.Account.Password}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "SSL_CERT_FILE="+l.CA.CertFile)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
