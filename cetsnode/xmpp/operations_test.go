package xmpp_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// The operators' side on a node run as `mimmigrate node start --config
// … --http`: /healthz and /metrics; `mimmigrate xmpp connected-users`
// (the whole cluster's sessions), `xmpp send-message`, `xmpp kick` of one
// session and of a user, as ejabberdctl's; `cluster status` with the
// sessions per node; log lines carry the JID, never a password.
func TestOperations(t *testing.T) {
	needBed(t)
	cluster := "op" + testenv.RandomID(5)
	httpAddr := "127.0.0.1:" + itoa(testenv.FreePort(t))
	cfg := "modules:\n  mod_fail2ban: {}\n  mod_register: {}\n"
	p := bed.StartNodeProcess(t, cluster, cfg, "--http", httpAddr)
	n := bed.StartNode(t, cluster, cfg)
	testenv.WaitFor(t, "the nodes joined", 60*time.Second, func() (bool, string) { return len(n.Node.Sessions.T.Nodes()) == 1, "" }, nil)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	users := bed.Kind("scram-sha-1")
	a, b := users[7], users[8]
	ra, _, err := xmpptest.Session(p.StartTLS, bed.CA, a, "desk")
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	ra2, _, err := xmpptest.Session(p.StartTLS, bed.CA, a, "phone")
	if err != nil {
		t.Fatal(err)
	}
	defer ra2.Close()
	rb, _, err := xmpptest.Session(n.StartTLS, bed.CA, b, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	_, metrics := get("/metrics")
	for _, want := range []string{
		"mimmigrate_xmpp_ready 1\n", "mimmigrate_xmpp_sessions 2\n", "mimmigrate_xmpp_cluster_sessions 3\n",
		"mimmigrate_xmpp_logins_total{mechanism=\"PLAIN\",result=\"ok\"} 2\n", "# TYPE mimmigrate_xmpp_logins_total counter\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	mim := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bed.Bin, append(args, "--cookie", p.Cookie)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := mim("xmpp", "connected-users", "--node", p.Name)
	if want := a.JID() + "/desk\n" + a.JID() + "/phone\n" + b.JID() + "/laptop\n"; code != 0 || out != want {
		t.Errorf("connected-users: %d\n%s\nwant\n%s", code, out, want)
	}
	out, code = mim("cluster", "status", "--node", p.Name, "--json")
	var st struct {
		Sessions []struct {
			Node     string `json:"node"`
			Sessions int    `json:"sessions"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Sessions) != 2 {
		t.Errorf("cluster status: %v\n%s", err, out)
	}
	for _, s := range st.Sessions {
		if want := map[bool]int{true: 2, false: 1}[s.Node == p.Name]; s.Sessions != want {
			t.Errorf("cluster status: %s has %d sessions, want %d", s.Node, s.Sessions, want)
		}
	}
	// send-message through one node to a session on the other.
	out, code = mim("xmpp", "send-message", "--node", p.Name, "--from", "admin@"+xmpptest.Host, "--to", b.JID()+"/laptop", "--subject", "Notice", "maintenance at noon")
	if code != 0 {
		t.Errorf("send-message: %d %s", code, out)
	}
	if got, err := rb.Expect("</message>", 10*time.Second); err != nil ||
		!regexp.MustCompile(`<message to='`+q(b.JID())+`/laptop' from='admin@localhost' type='chat' id='[0-9a-f]+'><body>maintenance at noon</body><subject>Notice</subject></message>`).MatchString(got) {
		t.Errorf("the message: %q %v", got, err)
	}
	// kick one session, with a reason; then the user.
	if out, code = mim("xmpp", "kick", "--node", n.Node.Name(), a.JID()+"/desk", "--reason", "Moving you to another node"); code != 0 || out != "Kicked "+a.JID()+"/desk\n" {
		t.Errorf("kick session: %d %q", code, out)
	}
	if got, err := ra.Closed(10 * time.Second); err != nil || !strings.Contains(got, "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Moving you to another node</text></stream:error>") {
		t.Errorf("the kicked session got %q %v", got, err)
	}
	testenv.WaitFor(t, "the kicked session gone", 10*time.Second, func() (bool, string) {
		return len(n.Node.Sessions.Bare(xmpptest.Host, a.User)) == 1, ""
	}, nil)
	if out, code = mim("xmpp", "kick", "--node", p.Name, a.JID()); code != 0 || out != "Kicked 1 session of "+a.JID()+"\n" {
		t.Errorf("kick user: %d %q", code, out)
	}
	if got, err := ra2.Closed(10 * time.Second); err != nil || !strings.Contains(got, "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-streams'>has been kicked</text>") {
		t.Errorf("the user's session got %q %v", got, err)
	}
	// Bad input: one line, exit 2; a node without the service: exit 4.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"xmpp", "kick", "--node", p.Name, "not a jid"}, 2, "is not user@host"},
		{[]string{"xmpp", "send-message", "--node", p.Name, "--from", "@@", "--to", b.JID(), "x"}, 2, "--from"},
		{[]string{"xmpp", "kick", "--node", p.Name, a.JID() + "/gone"}, 4, "no such session"},
	} {
		out, code := mim(c.args...)
		if code != c.code || !strings.Contains(out, c.want) || strings.Count(strings.TrimSpace(out), "\n") > 1 {
			t.Errorf("%v: exit %d\n%s", c.args, code, out)
		}
	}
	// A password change in the logs: the JID, not the password.
	rb.Send("<iq type='set' id='pw'><query xmlns='jabber:iq:register'><username>" + b.User + "</username><password>" + b.Password + "</password></query></iq>")
	if _, err := rb.Expect("id='pw'", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	logs := p.Log.String() + n.Log.String()
	if strings.Contains(logs, a.Password) || strings.Contains(logs, b.Password) || strings.Contains(logs, p.Cookie) {
		t.Errorf("a password or the cookie is in the logs")
	}
	if !strings.Contains(p.Log.String(), "jid="+a.JID()) || !strings.Contains(n.Log.String(), `msg="password changed" user=`+b.JID()) {
		t.Errorf("log lines without the JID:\n%s", testenv.Tail(logs, 3000))
	}
	// Stopping, /healthz says 503 before the listeners close.
	n.XMPP.Close()
	rec := httptest.NewRecorder()
	n.XMPP.HTTPHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/healthz of a stopped service: %d", rec.Code)
	}
}
