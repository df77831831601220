package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

//go:embed testdata/live_clients.py
var liveClientsScript []byte

// liveModules are the legacy nodes' modules: the usual ones, in-band
// registration, and an archive of every message.
var liveModules = strings.Replace(testenv.DefaultModules, "  mod_mam: {}\n",
	"  mod_mam:\n    default: always\n  mod_ping: {}\n  mod_register:\n    access: all\n", 1)

// liveSummary is what the clients say at the end.
type liveSummary struct {
	Sent   [][3]string                `json:"sent"` // from, to, body
	Live   map[string][][]interface{} `json:"live"`
	After  map[string][][]interface{} `json:"after"`
	Logins map[string]string          `json:"logins"`
	// user, password, removed
	Registered [][3]interface{} `json:"registered"`
	Counts     map[string]int   `json:"counts"`
	Errors     []string         `json:"errors"`
}

// TestMigrationWithClients: real XMPP clients (slixmpp) stay connected to
// a two-node ejabberd 23.01 cluster during the whole migration, changing
// their data; sync copies and follows; the cutover moves them to two Go
// nodes. Then: verify finds no difference, every message sent is in both
// archives once and was delivered once (live, or from offline storage by
// a Go node), and everyone logs in on the Go nodes with the password they
// have by then (changed during the run, or registered during it); the
// accounts removed during the run cannot.
func TestMigrationWithClients(t *testing.T) {
	if why := xmpptest.Unavailable(); why != "" {
		t.Skip(why)
	}
	if _, err := os.Stat("/usr/lib/python3/dist-packages/slixmpp"); err != nil {
		t.Skip("python3-slixmpp is not installed (apt-get install python3-slixmpp)")
	}
	// The certificate ejabberd reads (as its own user) and the clients trust.
	dir, err := os.MkdirTemp("", "mimlive-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	ca, err := xmpptest.NewCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(ca.ServerPEM, 0o644)
	cl, err := testenv.StartEjabberdClusterWith(2, testenv.EjabberdOptions{Prefix: "ejlive", Host: xmpptest.Host,
		ExtraConfig: "certfiles:\n  - " + ca.ServerPEM + "\nregistration_timeout: infinity\n",
		C2SOptions:  []string{"starttls: true"}, Modules: liveModules}, "", testenv.PopulateOptions{Users: 2000, APIUsers: 40, Rooms: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Destroy()
	e1, e2 := cl.Nodes[0], cl.Nodes[1]
	cookie := testenv.WriteCookieFile(t, e1.Cookie)
	from := "node:" + e1.Name
	dbURL := schemaDB(t, "ejabberd")
	bin := buildBinary(t)

	// The users connect (half to each node) before anything else starts.
	var users, offline []string
	for i := 1; i <= 10; i++ {
		users = append(users, fmt.Sprintf("user%d:pw-user%d", i, i))
	}
	for i := 11; i <= 15; i++ {
		offline = append(offline, fmt.Sprintf("user%d:pw-user%d", i, i))
	}
	script := filepath.Join(t.TempDir(), "live_clients.py")
	if err := os.WriteFile(script, liveClientsScript, 0o755); err != nil {
		t.Fatal(err)
	}
	clients := exec.Command("/usr/bin/python3", script, "--users", strings.Join(users, ","), "--offline", strings.Join(offline, ","),
		"--domain", xmpptest.Host, "--ca", ca.CertFile, "--rate", "4",
		"--addrs", fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", e1.C2SPort, e2.C2SPort))
	stdin, _ := clients.StdinPipe()
	stdout, _ := clients.StdoutPipe()
	clientErr := &testenv.SyncBuffer{}
	clients.Stderr = clientErr
	if err := clients.Start(); err != nil {
		t.Fatal(err)
	}
	defer clients.Process.Kill()
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(prefix string, limit time.Duration) string {
		t.Helper()
		deadline := time.After(limit)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the clients ended before %s: %s", prefix, testenv.Tail(clientErr.String(), 3000))
				}
				if strings.HasPrefix(l, "FAIL") {
					t.Fatalf("clients: %s\n%s", l, testenv.Tail(clientErr.String(), 3000))
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
				t.Logf("clients: %s", testenv.Tail(l, 300))
			case <-deadline:
				t.Fatalf("the clients did not say %s within %s: %s", prefix, limit, testenv.Tail(clientErr.String(), 3000))
			}
		}
	}
	expect("READY", time.Minute)

	// sync starts while they act: copy, repair, live.
	p := startSync(t, bin, "--cookie-file", cookie, "--from", from, "--to", dbURL, "--schema", "ejabberd")
	p.wait(t, "the live phase", 3*time.Minute, func(l syncLine) bool { return l.Phase == "live" && allLive(l) })
	p.wait(t, "changes applied", time.Minute, func(l syncLine) bool { return l.Applied > 200 })

	// Two Go nodes in standby.
	bed := &xmpptest.Bed{Dir: dir, CA: ca, Bin: bin, DBURL: dbURL}
	cluster := "live" + testenv.RandomID(4)
	modules := "modules:\n  mod_roster:\n    versioning: true\n  mod_last: {}\n  mod_offline: {}\n"
	n1 := bed.StartNodeProcess(t, cluster, modules, "--standby")
	n2 := bed.StartNodeProcess(t, cluster, modules, "--standby")
	nodesCookie := testenv.WriteCookieFile(t, n1.Cookie)
	args := []string{"cutover", "--cookie-file", cookie, "--nodes-cookie-file", nodesCookie, "--from", from, "--to", dbURL,
		"--schema", "ejabberd", "--nodes", n1.Name + "," + n2.Name}
	// The comparison while they act, then a few more seconds of it.
	var out, stderr string
	var code int
	testenv.WaitFor(t, "the comparison (the Go nodes clustered)", time.Minute, func() (bool, string) {
		out, stderr, code = runCLI(t, "yes\nno\n", args...)
		return strings.Contains(stderr, "not confirmed"), out + stderr
	}, nil)
	t.Logf("the comparison:\n%s", out)
	time.Sleep(5 * time.Second)

	// They stop acting (what they sent arrives), stay connected, and the
	// cutover closes their sessions.
	io.WriteString(stdin, "pause\n")
	paused := expect("PAUSED", time.Minute)
	t.Logf("clients: %s", paused)
	out, stderr, code = runCLI(t, "", append(args, "-f")...)
	if code != 0 || !strings.Contains(out, "Cutover done") {
		t.Fatalf("cutover: %d\n%s\n%s\nsync: %s", code, out, stderr, p.stderr.String())
	}
	t.Logf("cutover:\n%s", out)
	// An independent full comparison of every table.
	out, stderr, code = runCLI(t, "", "verify", "--cookie-file", cookie, "--from", from, "--to", dbURL, "--schema", "ejabberd")
	if code != 0 {
		t.Errorf("verify after the cutover: %d\n%s\n%s", code, out, stderr)
	}
	// The archive as PostgreSQL holds it now (before the Go nodes deliver
	// anything): every message in the sender's and the recipient's.
	archive := map[string]int{}
	rows, err := psqlOut(dbURL, "-At", "-F", "\t", "-c", "SELECT username, txt FROM archive WHERE txt LIKE 'live %'")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(rows), "\n") {
		if l != "" {
			archive[l]++
		}
	}
	spooled, _ := psqlOut(dbURL, "-At", "-c", "SELECT count(*) FROM spool WHERE xml LIKE '%live %'")

	// Everyone logs in on the Go nodes.
	fmt.Fprintf(stdin, "reconnect %s,%s\n", n1.StartTLS, n2.StartTLS)
	var sum liveSummary
	l := expect("{", 2*time.Minute)
	if err := json.Unmarshal([]byte(l), &sum); err != nil {
		t.Fatalf("summary: %v", err)
	}
	expect("END", 30*time.Second)
	t.Logf("clients did: %v; messages sent %d; in offline storage at the switch %s; errors %v", sum.Counts, len(sum.Sent), strings.TrimSpace(spooled), sum.Errors)
	for _, what := range []string{"message", "roster_add", "vcard", "private", "password", "register", "unregister", "mam_query"} {
		if sum.Counts[what] == 0 {
			t.Errorf("the clients did no %s", what)
		}
	}
	if len(sum.Errors) > 0 {
		t.Errorf("the legacy cluster refused what the clients did: %v", sum.Errors)
	}

	// Every message: once in each archive, delivered once.
	delivered := map[string]int{}
	toOffline := 0
	for _, who := range []map[string][][]interface{}{sum.Live, sum.After} {
		for _, got := range who {
			for _, m := range got {
				delivered[m[0].(string)]++
			}
		}
	}
	for _, s := range sum.Sent {
		sender, rcpt, body := s[0], s[1], s[2]
		if n := archive[sender+"\t"+body]; n != 1 {
			t.Errorf("%q is %d times in %s's archive", body, n, sender)
		}
		if n := archive[rcpt+"\t"+body]; n != 1 {
			t.Errorf("%q is %d times in %s's archive", body, n, rcpt)
		}
		if n := delivered[body]; n != 1 {
			t.Errorf("%q to %s was delivered %d times", body, rcpt, n)
		}
		for _, m := range sum.After[rcpt] {
			if m[0].(string) == body {
				toOffline++
			}
		}
	}
	if toOffline == 0 {
		t.Errorf("no message came from offline storage on a Go node")
	}
	t.Logf("%d messages: %d delivered live on the legacy cluster, %d from offline storage by the Go nodes", len(sum.Sent), len(sum.Sent)-toOffline, toOffline)
	// Everyone logs in with the password they have; removed accounts cannot.
	for _, acc := range append(users, offline...) {
		u := strings.SplitN(acc, ":", 2)[0]
		if sum.Logins[u] != "ok" {
			t.Errorf("%s on a Go node: %s", u, sum.Logins[u])
		}
	}
	for _, r := range sum.Registered {
		u, removed := r[0].(string), r[2].(bool)
		switch {
		case removed && sum.Logins[u] == "ok":
			t.Errorf("%s was removed on the legacy cluster and logs in on a Go node", u)
		case !removed && sum.Logins[u] != "ok":
			t.Errorf("%s, registered on the legacy cluster, on a Go node: %s", u, sum.Logins[u])
		}
	}
	t.Logf("logins on the Go nodes: %d users (%d with a password changed during the run), %d registered during it, %d removed refused",
		len(users)+len(offline), sum.Counts["password"], len(sum.Registered)-sum.Counts["unregister"], sum.Counts["unregister"])
	if n, _ := strconv.Atoi(strings.TrimSpace(spooled)); n == 0 {
		t.Errorf("nothing was in offline storage at the switch")
	}
}
