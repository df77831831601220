package xmpp_test

import (
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	xmppconfig "github.com/mimmigrate/mimmigrate/cetsnode/xmpp/config"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// `mimmigrate node start --config ejabberd.yml`: the database from the
// sql_* options, the config's warnings logged, clients served; SIGTERM
// ends their streams with system-shutdown and the process exits 0. A
// configuration that cannot be served is one line and exit code 2.
func TestNodeStartCommand(t *testing.T) {
	needBed(t)
	dir := t.TempDir()
	u, _ := url.Parse(bed.DBURL)
	sqlOpts := "sql_server: " + u.Hostname() + "\nsql_port: " + u.Port() + "\nsql_database: " + strings.TrimPrefix(u.Path, "/") + "\nmod_unknown_option: 1\n"
	cfg := filepath.Join(dir, "ejabberd.yml")
	starttls, direct := testenv.FreePort(t), testenv.FreePort(t)
	os.WriteFile(cfg, []byte(bed.Config(starttls, direct, sqlOpts)), 0o600)
	log := &testenv.SyncBuffer{}
	cmd := exec.Command(bed.Bin, "node", "start", "--config", cfg, "--name", "xcli"+testenv.RandomID(4)+"@127.0.0.1",
		"--cookie", "c"+testenv.RandomID(8), "--cluster-name", "cli"+testenv.RandomID(4))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()
	testenv.WaitFor(t, "the node listening", 20*time.Second, func() (bool, string) {
		return strings.Count(log.String(), "c2s listening") == 2, log.String()
	}, nil)
	if !strings.Contains(log.String(), "option mod_unknown_option is not implemented") {
		t.Errorf("no warning for an unknown option:\n%s", log.String())
	}
	a := bed.Account(t, "scram-sha-1")
	r, err := xmpptest.Slixmpp(dir, xmpptest.Login{Account: a, Addr: "127.0.0.1:" + itoa(starttls), CA: bed.CA})
	check(t, "slixmpp against the command's node", r, err, true)
	raw, _, err := xmpptest.Session("127.0.0.1:"+itoa(starttls), bed.CA, a, "held")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	out, err := raw.Closed(10 * time.Second)
	if err != nil || !strings.Contains(out, "<system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") {
		t.Errorf("a session at SIGTERM: %q %v", out, err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, log.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit after SIGTERM:\n%s", log.String())
	}

	for _, c := range []struct{ yml, want string }{
		{strings.Replace(bed.Config(starttls, direct, ""), "auth_method: sql", "auth_method: ldap", 1), "auth_method ldap is not implemented"},
		{strings.Replace(bed.Config(starttls, direct, ""), bed.CA.ServerPEM, filepath.Join(dir, "missing.pem"), 1), "no such file"},
	} {
		os.WriteFile(cfg, []byte(c.yml), 0o600)
		out, err := exec.Command(bed.Bin, "node", "start", "--config", cfg, "--name", "xbad@127.0.0.1", "--cookie", "c", "--db", bed.DBURL).CombinedOutput()
		var ee *exec.ExitError
		if !errorsAs(err, &ee) || ee.ExitCode() != 2 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || !strings.Contains(string(out), c.want) {
			t.Errorf("%q: %v\n%s", c.want, err, out)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// `mimmigrate node config --from node:…` writes, from the running
// ejabberd's effective options, a configuration the Go node reads as the
// same service: hosts, the c2s listener's port and limits, the password
// format; the modules it runs are named so that the Go node warns.
func TestNodeConfigFromEjabberd(t *testing.T) {
	needBed(t)
	dir := t.TempDir()
	cookie := filepath.Join(dir, "cookie")
	os.WriteFile(cookie, []byte(bed.Ejabberd.Cookie), 0o600)
	out := filepath.Join(dir, "ejabberd.yml")
	got, err := exec.Command(bed.Bin, "node", "config", "--from", "node:"+bed.Ejabberd.Name, "--cookie-file", cookie, "-o", out).CombinedOutput()
	if err != nil {
		t.Fatalf("node config: %v\n%s", err, got)
	}
	if !strings.Contains(string(got), "note: the node keeps no PostgreSQL database") || !strings.Contains(string(got), "Wrote "+out) {
		t.Errorf("output:\n%s", got)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	c, err := xmppconfig.Load(out)
	if err != nil {
		b, _ := os.ReadFile(out)
		t.Fatalf("%v\n%s", err, b)
	}
	if len(c.Hosts) != 1 || c.Hosts[0] != xmpptest.Host || c.Auth.PasswordFormat != "scram" || len(c.Listeners) != 1 ||
		c.Listeners[0].Port != bed.Ejabberd.C2SPort || c.Listeners[0].IP != "127.0.0.1" || c.Listeners[0].MaxStanzaSize != 262144 ||
		c.Listeners[0].StartTLSRequired || c.NegotiationTimeout != 30*time.Second || !c.Modules["mod_roster"] || !c.Roster.Versioning {
		b, _ := os.ReadFile(out)
		t.Errorf("read back as %+v\n%s", c, b)
	}
	if w := strings.Join(c.Warnings, "\n"); !strings.Contains(w, "module mod_push is not implemented") || strings.Contains(w, "module mod_roster") || !c.PubSub.PEP ||
		strings.Contains(w, "module mod_vcard") || !c.Modules["mod_vcard"] || !c.Modules["mod_mam"] {
		t.Errorf("warnings:\n%s", w)
	}
	// Asked again, the file is not replaced without -f.
	got, err = exec.Command(bed.Bin, "node", "config", "--from", "node:"+bed.Ejabberd.Name, "--cookie-file", cookie, "-o", out).CombinedOutput()
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != 5 {
		t.Errorf("an existing file replaced without asking: %v\n%s", err, got)
	}
}
