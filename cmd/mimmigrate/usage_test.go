package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

func TestUsageAndBadInput(t *testing.T) {
	home := t.TempDir() // no ~/.erlang.cookie there
	t.Setenv("HOME", home)
	t.Setenv("MIMMIGRATE_COOKIE", "")

	out, _, code := runCLI(t, "", "--help")
	if code != 0 || !strings.Contains(out, "inspect") || !strings.Contains(out, "remove-node") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	cases := []struct {
		args     []string
		code     int
		contains []string
	}{
		{[]string{"frobnicate"}, exitUsage, []string{"frobnicate"}},
		{[]string{"inspect"}, exitUsage, []string{"--node"}},
		{[]string{"inspect", "--node", "ejabberd"}, exitUsage, []string{"not a node name", "hint:"}},
		{[]string{"inspect", "--node", "a@b@c"}, exitUsage, []string{"not a node name"}},
		{[]string{"inspect", "--node", "ejabberd@localhost"}, exitUsage, []string{"no Erlang cookie", "--cookie-file"}},
		{[]string{"inspect", "--node", "ejabberd@localhost", "--cookie-file", filepath.Join(home, "nope")}, exitUsage, []string{"no such file"}},
		{[]string{"inspect", "--node", "x@localhost", "--large-table", "lots"}, exitUsage, []string{"not a size"}},
		{[]string{"set-copy", "--node", "a@b", "--table", "t", "--on", "a@b", "--type", "tape"}, exitUsage, []string{"--type"}},
		{[]string{"remove-node", "--node", "a@b"}, exitUsage, []string{"target"}},
		{[]string{"inspect", "--node", "x@localhost", "--dist-version", "7"}, exitUsage, []string{"dist-version"}},
	}
	for _, c := range cases {
		_, stderr, code := runCLI(t, "", c.args...)
		oneLineError(t, stderr, code, c.code, c.contains...)
	}

	// An empty or multi-line cookie file is bad input too.
	empty := filepath.Join(home, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	_, stderr, code := runCLI(t, "", "inspect", "--node", "x@localhost", "--cookie-file", empty)
	oneLineError(t, stderr, code, exitUsage, "empty")
}

// Connection failures against real endpoints: nothing registered under
// that name, a host that does not resolve, a port where no epmd listens.
func TestConnectionFailures(t *testing.T) {
	cookie := writeCookie(t, "some-cookie")
	// The hint lists the nodes epmd knows: make sure there is one (the
	// test ran alone once, with none registered).
	testenv.StartErl(t, testenv.ErlOptions{Prefix: "listed"})
	_, stderr, code := runCLI(t, "", "inspect", "--node", "nosuchnode-zz@localhost", "--cookie-file", cookie)
	oneLineError(t, stderr, code, exitConnect, "is registered with epmd on localhost", "hint: the nodes registered there are:")
	_, stderr, code = runCLI(t, "", "inspect", "--node", "ejabberd@no-such-host.invalid", "--cookie-file", cookie)
	oneLineError(t, stderr, code, exitConnect, "does not resolve")
	_, stderr, code = runCLI(t, "", "inspect", "--node", "ejabberd@localhost", "--cookie-file", cookie, "--epmd-port", "1")
	oneLineError(t, stderr, code, exitConnect, "no epmd")
	_, stderr, code = runCLI(t, "", "inspect", "--node", "ejabberd@192.0.2.1", "--cookie-file", cookie, "--timeout", "1s")
	oneLineError(t, stderr, code, exitConnect)
	if strings.Contains(stderr, "some-cookie") {
		t.Error("the cookie was printed")
	}
}

// Failures against a real node: the wrong cookie, and the version 5
// handshake that OTP 25.0-25.2 refuse.
func TestHandshakeFailuresFromTheCLI(t *testing.T) {
	n := testenv.StartErl(t, testenv.ErlOptions{})
	wrong := writeCookie(t, "wrong-cookie-value")
	_, stderr, code := runCLI(t, "", "inspect", "--node", n.Name, "--cookie-file", wrong)
	oneLineError(t, stderr, code, exitConnect, "rejected our cookie", "hint:")
	if strings.Contains(stderr, "wrong-cookie-value") {
		t.Error("the cookie was printed")
	}
	right := writeCookie(t, n.Cookie)
	_, stderr, code = runCLI(t, "", "inspect", "--node", n.Name, "--cookie-file", right, "--dist-version", "5")
	oneLineError(t, stderr, code, exitConnect, "closed the connection after our version 5 send_name", "--dist-version 6")
	// Mnesia is not running on a plain node: a clear refusal, not a crash.
	_, stderr, code = runCLI(t, "", "inspect", "--node", n.Name, "--cookie-file", right)
	oneLineError(t, stderr, code, exitFailure, "Mnesia is not running")
	// A node name with the right host but the wrong name part.
	_, stderr, code = runCLI(t, "", "inspect", "--node", "other@localhost", "--cookie-file", right,
		"--dist-port", fmt.Sprint(distPort(t, n)))
	oneLineError(t, stderr, code, exitConnect, "not other@localhost")
}

func distPort(t *testing.T, n *testenv.ErlNode) int {
	t.Helper()
	info, found, err := erldist.EPMD{Host: "localhost"}.PortPlease(context.Background(), n.Alive())
	if err != nil || !found {
		t.Fatalf("%v %v", found, err)
	}
	return info.Port
}
