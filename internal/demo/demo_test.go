package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// TestDemo runs what `make demo` and `make demo-stop` run, with a smaller
// cluster under names of its own: the whole migration ends with slixmpp
// getting, on a Go node, the message ejabberd stored offline, logged in
// with the password ejabberd was given; stop leaves nothing behind.
func TestDemo(t *testing.T) {
	if why := xmpptest.Unavailable(); why != "" {
		t.Skip(why)
	}
	if _, err := os.Stat("/usr/lib/python3/dist-packages/slixmpp"); err != nil {
		t.Skip("python3-slixmpp is not installed (apt-get install python3-slixmpp)")
	}
	base, err := os.MkdirTemp("", "mimdemo-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755) // the ejabberd user reaches its node directories
	dir := filepath.Join(base, "demo")
	bin := filepath.Join(base, "mimmigrate")
	demo := filepath.Join(base, "demo-cmd")
	for _, b := range [][]string{{"-o", bin, "../../cmd/mimmigrate"}, {"-o", demo, "."}} {
		if out, err := exec.Command("go", append([]string{"build"}, b...)...).CombinedOutput(); err != nil {
			t.Fatalf("build: %v %s", err, out)
		}
	}
	prefix := "dt" + testenv.RandomID(4)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, demo, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("demo %s: %v\n%s", args[0], err, out)
		}
		return string(out)
	}
	stopped := false
	defer func() {
		if !stopped {
			exec.Command(demo, "stop", "-dir", dir).Run()
		}
	}()
	run("start", "-dir", dir, "-prefix", prefix, "-users", "300")
	out := run("migrate", "-dir", dir, "-bin", bin)
	t.Logf("demo migrate:\n%s", testenv.Tail(out, 4000))
	for _, want := range []string{
		"$ " + bin + " inspect --node " + prefix + "1@localhost",
		"has been removed from the cluster",
		"schema ejabberd migrated",
		"sync applied them",
		"standby, c2s will be on",
		"Cutover done: the Go nodes serve",
		"logged in as user7@example.com/",
		"roster: 5 contacts",
		"offline message delivered: user1@example.com",
		"Hello from the old cluster",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo migrate does not say %q", want)
		}
	}
	// Run again, it says so instead of migrating twice.
	if out, err := exec.Command(demo, "migrate", "-dir", dir, "-bin", bin).CombinedOutput(); err == nil || !strings.Contains(string(out), "migrated already") {
		t.Errorf("a second migrate: %v %s", err, out)
	}

	out = run("stop", "-dir", dir)
	stopped = true
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there after stop (%v): %s", dir, err, out)
	}
	if o, _ := exec.Command("pgrep", "-f", prefix).Output(); len(strings.TrimSpace(string(o))) > 0 {
		t.Errorf("processes of the demo still run after stop: %s", o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", "mimmigrate_"+prefix).Scan(&n); err != nil || n != 0 {
		t.Errorf("the demo's database after stop: %d %v", n, err)
	}
}
