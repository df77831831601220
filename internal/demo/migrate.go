package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// The local PostgreSQL server, where the demo makes its database.
const pgAddr = "127.0.0.1:5432"

func adminURL() string         { return "postgres://" + pgAddr + "/test?sslmode=disable" }
func dbURL(name string) string { return "postgres://" + pgAddr + "/" + name + "?sslmode=disable" }

// The account whose password ejabberd is given during the sync, and the
// contact who writes to it while it is offline.
const (
	mover     = "user7"
	moverPW   = "chosen-on-ejabberd"
	writer    = "user1"
	offlineTx = "Hello from the old cluster"
)

// migrate runs the whole migration on the demo cluster, printing each
// command and what it said.
func migrate(dir, bin string) error {
	st, err := loadState(dir)
	if err != nil {
		return err
	}
	if st.Migrated {
		return errors.New("the demo has migrated already: make demo-stop, then make demo")
	}
	e1, e2 := st.Nodes[0], st.Nodes[1]
	if st.Prefix == "" {
		st.Prefix = "demo"
	}
	demoDB := "mimmigrate_" + st.Prefix
	demoURL := func() string { return dbURL(demoDB) }
	cookie := filepath.Join(dir, "cookie")
	host := e1.Host

	heading("1. What the legacy cluster looks like")
	run(bin, "inspect", "--node", e1.Name, "--cookie-file", cookie)

	heading("2. Repair it: " + e2.Name + " is down for good, take it out of the schema")
	if _, err := run(bin, "remove-node", "--node", e1.Name, e2.Name, "--cookie-file", cookie, "-f"); err != nil {
		return err
	}

	heading("3. A PostgreSQL database in ejabberd's SQL schema")
	if err := createDB(demoDB); err != nil {
		return err
	}
	st.DB = demoDB
	if err := saveState(dir, st); err != nil {
		return err
	}
	if _, err := run(bin, "db", "migrate", "--db", demoURL(), "--schema", "ejabberd"); err != nil {
		return err
	}

	heading("4. sync: copy everything while the cluster serves, then follow its changes")
	syncLog := filepath.Join(dir, "sync.log")
	pid, err := background(syncLog, bin, "sync", "--json", "--cookie-file", cookie, "--from", "node:"+e1.Name, "--to", demoURL(), "--schema", "ejabberd")
	if err != nil {
		return err
	}
	st.Pids = append(st.Pids, pid)
	if err := saveState(dir, st); err != nil {
		return err
	}
	t0 := time.Now()
	last, err := waitSync(syncLog, 5*time.Minute, func(l syncLine) bool { return l.Phase == "live" })
	if err != nil {
		return err
	}
	fmt.Printf("  sync is live after %.1f s (its JSON lines go to %s)\n", time.Since(t0).Seconds(), syncLog)
	fmt.Printf("  applied %d changes, %d rows repaired, lag %.2f s\n", last.Applied, last.Repaired, last.LagSeconds)

	heading("5. Users keep using the legacy cluster: ejabberd is given a new password, a message waits offline")
	ctl := func(args ...string) error {
		fmt.Printf("$ ejabberdctl --node %s %s\n", e1.Name, quoteArgs(args))
		out, err := e1.Ctl(args...)
		if s := strings.TrimSpace(out); s != "" {
			fmt.Println(indent(s))
		}
		return err
	}
	if err := ctl("change_password", mover, host, moverPW); err != nil {
		return err
	}
	if err := ctl("send_message", "chat", writer+"@"+host, mover+"@"+host, "", offlineTx); err != nil {
		return err
	}
	before := last.Applied
	last, err = waitSync(syncLog, time.Minute, func(l syncLine) bool { return l.Applied >= before+2 && l.LagEvents == 0 })
	if err != nil {
		return err
	}
	fmt.Printf("  sync applied them: %d changes in all, lag %.2f s\n", last.Applied, last.LagSeconds)

	heading("6. Two Go nodes wait in standby (their /healthz says 503 until the cutover)")
	ca, err := xmpptest.NewCAFor(dir, host)
	if err != nil {
		return err
	}
	goCookie := filepath.Join(dir, "go-cookie")
	if err := os.WriteFile(goCookie, []byte("demo-go-"+testenv.RandomID(16)+"\n"), 0o600); err != nil {
		return err
	}
	var nodes []string
	var c2s []string
	for i := 1; i <= 2; i++ {
		starttls, direct, http := freePort(), freePort(), freePort()
		yml := filepath.Join(dir, fmt.Sprintf("mim%d.yml", i))
		if err := os.WriteFile(yml, []byte(goNodeConfig(host, ca.ServerPEM, starttls, direct)), 0o600); err != nil {
			return err
		}
		name := fmt.Sprintf("%s-mim%d@127.0.0.1", st.Prefix, i)
		logFile := filepath.Join(dir, fmt.Sprintf("mim%d.log", i))
		args := []string{"node", "start", "--standby", "--config", yml, "--name", name, "--cookie-file", goCookie,
			"--cluster-name", st.Prefix, "--db", demoURL(), "--http", fmt.Sprintf("127.0.0.1:%d", http)}
		fmt.Printf("$ %s %s &\n", bin, quoteArgs(args))
		pid, err := background(logFile, bin, args...)
		if err != nil {
			return err
		}
		st.Pids = append(st.Pids, pid)
		if err := saveState(dir, st); err != nil {
			return err
		}
		if err := waitFile(logFile, "standby:", 30*time.Second); err != nil {
			return err
		}
		fmt.Printf("  %s: standby, c2s will be on 127.0.0.1:%d (STARTTLS) and :%d (TLS), health on http://127.0.0.1:%d/healthz\n", name, starttls, direct, http)
		nodes = append(nodes, name)
		c2s = append(c2s, fmt.Sprintf("127.0.0.1:%d", starttls))
	}

	heading("7. cutover: close the legacy logins, drain, verify, open the Go nodes")
	cut := []string{"cutover", "--from", "node:" + e1.Name, "--cookie-file", cookie, "--to", demoURL(), "--schema", "ejabberd",
		"--nodes", strings.Join(nodes, ","), "--nodes-cookie-file", goCookie, "-f"}
	for try := 0; ; try++ {
		out, err := runQuiet(bin, cut...)
		// The Go nodes find each other through the database within seconds.
		if err != nil && strings.Contains(out, "not one cluster") && try < 30 {
			time.Sleep(time.Second)
			continue
		}
		fmt.Printf("$ %s %s\n%s", bin, quoteArgs(cut), indent(out))
		if err != nil {
			return fmt.Errorf("cutover: %w", err)
		}
		break
	}
	st.Migrated = true
	if err := saveState(dir, st); err != nil {
		return err
	}

	heading("8. A real client (slixmpp) logs in on a Go node with the password ejabberd was given")
	if err := client(dir, ca, mover+"@"+host, moverPW, c2s[0]); err != nil {
		return err
	}
	fmt.Printf("\nThe Go nodes serve %s; the legacy listeners are closed. Logs: %s\n", host, dir)
	fmt.Println("Remove everything: make demo-stop")
	return nil
}

func heading(s string) { fmt.Printf("\n== %s\n", s) }

// run prints a command, runs it with its output shown, and returns it.
func run(bin string, args ...string) (string, error) {
	fmt.Printf("$ %s %s\n", bin, quoteArgs(args))
	out, err := runQuiet(bin, args...)
	fmt.Print(indent(out))
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		fmt.Printf("  (exit status %d)\n", ee.ExitCode())
	}
	return out, err
}

func runQuiet(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// background starts a process in its own session, its output into logFile.
func background(logFile, bin string, args ...string) (int, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go cmd.Wait()
	return cmd.Process.Pid, nil
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$&|;<>()*?") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n"
}

// syncLine is what sync --json prints each second.
type syncLine struct {
	Phase      string  `json:"phase"`
	Applied    int64   `json:"applied"`
	Repaired   int64   `json:"repaired_rows"`
	LagSeconds float64 `json:"lag_seconds"`
	LagEvents  int64   `json:"lag_events"`
}

// waitSync waits for a line of sync's output that satisfies ok.
func waitSync(logFile string, limit time.Duration, ok func(syncLine) bool) (syncLine, error) {
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(logFile)
		for _, l := range strings.Split(string(b), "\n") {
			var sl syncLine
			if json.Unmarshal([]byte(l), &sl) == nil && sl.Phase != "" && ok(sl) {
				return sl, nil
			}
		}
		if time.Now().After(deadline) {
			return syncLine{}, fmt.Errorf("sync did not get there within %s; its output:\n%s", limit, tail(string(b), 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitFile(path, what string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), what) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not say %q within %s:\n%s", path, what, limit, tail(string(b), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// goNodeConfig is the Go nodes' configuration: ejabberd.yml's options for
// the virtual host, its certificate, the c2s listeners and the modules
// the demo's users use.
func goNodeConfig(host, pem string, starttls, direct int) string {
	return fmt.Sprintf(`hosts:
  - %s
certfiles:
  - %s
auth_method: sql
sql_type: pgsql
listen:
  -
    port: %d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
  -
    port: %d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    tls: true
modules:
  mod_roster:
    versioning: true
  mod_last: {}
  mod_offline: {}
`, host, pem, starttls, direct)
}

// client logs in with slixmpp, fetches the roster, goes online and waits
// for the message stored offline on the legacy cluster.
func client(dir string, ca *xmpptest.CA, jid, password, addr string) error {
	script, err := xmpptest.WriteChatScript(dir)
	if err != nil {
		return err
	}
	args := []string{script, "--jid", jid, "--password", password, "--addr", addr, "--ca", ca.CertFile}
	fmt.Printf("$ /usr/bin/python3 %s\n", quoteArgs(args))
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Wait()
	defer in.Close()
	lines := bufio.NewScanner(out)
	roster, got := 0, false
	for lines.Scan() {
		l := lines.Text()
		switch {
		case strings.HasPrefix(l, "READY"):
			fmt.Printf("  logged in as %s\n", strings.TrimPrefix(l, "READY "))
			io.WriteString(in, "roster\n")
		case strings.HasPrefix(l, "ROSTER "):
			roster++
			if roster <= 3 {
				fmt.Printf("  roster: %s\n", strings.TrimPrefix(l, "ROSTER "))
			}
		case strings.HasPrefix(l, "ROSTEREND"):
			fmt.Printf("  roster: %s contacts, as on the legacy cluster\n", strings.TrimPrefix(l, "ROSTEREND "))
			io.WriteString(in, "presence 0\n")
		case strings.HasPrefix(l, "DELAYED"):
			fmt.Printf("  offline message delivered: %s\n", strings.TrimPrefix(l, "DELAYED "))
			got = strings.Contains(l, offlineTx)
		case strings.HasPrefix(l, "FAIL"):
			return fmt.Errorf("slixmpp: %s\n%s", l, tail(stderr.String(), 2000))
		}
		if got {
			io.WriteString(in, "quit\n")
			return nil
		}
	}
	return fmt.Errorf("slixmpp ended before the offline message came\n%s", tail(stderr.String(), 2000))
}

// createDB makes the demo's database afresh.
func createDB(demoDB string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		return fmt.Errorf("PostgreSQL at %s: %w (start it: pg_ctlcluster 15 main start)", pgAddr, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+demoDB+" WITH (FORCE)"); err != nil {
		return err
	}
	fmt.Printf("$ createdb %s\n", demoDB)
	_, err = c.Exec(ctx, "CREATE DATABASE "+demoDB)
	return err
}

// dropDB removes the demo's database.
func dropDB(demoDB string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+demoDB+" WITH (FORCE)")
	return err
}
