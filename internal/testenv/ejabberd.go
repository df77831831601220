package testenv

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

//go:embed testdata/mimmigrate_populate.erl
var populateSource []byte

// Ejabberd is a private ejabberd node: its own config, spool and log
// directories, node name, cookie and c2s port. It never touches the system
// service's files or ports.
type Ejabberd struct {
	Name    string // node name, e.g. ejt-1a2b3c@localhost
	Cookie  string
	Base    string // holds conf/, spool/, logs/
	Host    string // the XMPP virtual host
	C2SPort int
	WSPort  int // the WebSocket listener's port, with EjabberdOptions.WebSocket
	opt     EjabberdOptions
}

// EjabberdOptions configures StartEjabberd.
type EjabberdOptions struct {
	Prefix string // node name prefix (default "ejt")
	Cookie string // default: random
	Host   string // XMPP host (default "example.com")
	Base   string // directory to use (default: a new one under the temp dir)
	Name   string // full node name (default: <prefix>-<random>@localhost)
	// ExtraConfig is appended to ejabberd.yml (top-level options, e.g. the
	// sql_* options of an SQL database).
	ExtraConfig string
	// SQL makes the node keep everything in the SQL database of
	// ExtraConfig (auth_method and default_db sql) instead of Mnesia.
	SQL bool
	// C2SOptions are more options of the c2s listener, one per line
	// (e.g. "starttls: true").
	C2SOptions []string
	// Modules replaces the modules section ("modules:\n  mod_x: {}\n").
	Modules string
	// NoFile raises the node's open-file limit (Debian's default of
	// 1,024 stops it at about 1,000 connections).
	NoFile int
	// WebSocket adds an ejabberd_http listener (no TLS) serving XMPP over
	// WebSocket on /ws (Ejabberd.WSPort).
	WebSocket bool
}

// EjabberdAvailable says why private ejabberd nodes cannot run here, or "".
func EjabberdAvailable() string {
	if _, err := exec.LookPath("ejabberdctl"); err != nil {
		return "ejabberd is not installed (apt-get install ejabberd)"
	}
	if _, err := exec.LookPath("erlc"); err != nil {
		return "erlc is not installed (apt-get install erlang-base)"
	}
	if os.Geteuid() != 0 {
		if u, err := user.Current(); err != nil || u.Username != "ejabberd" {
			return "ejabberdctl runs nodes only as root or as the ejabberd user"
		}
	}
	if _, err := user.Lookup("ejabberd"); err != nil {
		return "there is no ejabberd system user"
	}
	return ""
}

const ejabberdYML = `hosts:
  - %[1]s
loglevel: warning
listen:
  -
    port: %[2]d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
auth_method: internal
auth_password_format: scram
acl:
  admin:
    user: "admin@%[1]s"
access_rules:
  local:
    allow: all
  muc_create:
    allow: all
  announce:
    allow: admin
` + DefaultModules

// DefaultModules is the modules section of the private nodes'
// configuration (EjabberdOptions.Modules replaces it).
const DefaultModules = `modules:
  mod_adhoc: {}
  mod_admin_extra: {}
  mod_announce:
    access: announce
  mod_blocking: {}
  mod_caps: {}
  mod_last: {}
  mod_mam: {}
  mod_muc:
    access_create: muc_create
  mod_muc_admin: {}
  mod_offline: {}
  mod_privacy: {}
  mod_private: {}
  mod_pubsub:
    plugins:
      - flat
      - pep
  mod_push: {}
  mod_roster:
    versioning: true
  mod_shared_roster: {}
  mod_vcard: {}
`

func ejabberdConfig(opt EjabberdOptions, port, wsPort int) string {
	yml := fmt.Sprintf(ejabberdYML, opt.Host, port)
	if wsPort != 0 {
		yml = strings.Replace(yml, "auth_method:", fmt.Sprintf("  -\n    port: %d\n    ip: \"127.0.0.1\"\n    module: ejabberd_http\n    request_handlers:\n      /ws: ejabberd_http_ws\nauth_method:", wsPort), 1)
	}
	if opt.Modules != "" {
		yml = yml[:strings.Index(yml, "modules:\n")] + opt.Modules
	}
	if len(opt.C2SOptions) > 0 {
		yml = strings.Replace(yml, "    max_stanza_size: 262144\n", "    max_stanza_size: 262144\n    "+strings.Join(opt.C2SOptions, "\n    ")+"\n", 1)
	}
	if opt.SQL {
		yml = strings.Replace(yml, "auth_method: internal\n", "auth_method: sql\ndefault_db: sql\n", 1)
	}
	return yml + opt.ExtraConfig
}

// StartEjabberd starts a private ejabberd node and waits until it runs.
func StartEjabberd(opt EjabberdOptions) (*Ejabberd, error) {
	if why := EjabberdAvailable(); why != "" {
		return nil, errors.New(why)
	}
	if opt.Prefix == "" {
		opt.Prefix = "ejt"
	}
	if opt.Cookie == "" {
		opt.Cookie = "cookie" + RandomID(16)
	}
	if opt.Host == "" {
		opt.Host = "example.com"
	}
	base := opt.Base
	if base == "" {
		var err error
		if base, err = os.MkdirTemp("", "mimmigrate-"+opt.Prefix+"-"); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if opt.Name == "" {
		opt.Name = opt.Prefix + "-" + RandomID(6) + "@localhost"
	}
	e := &Ejabberd{Name: opt.Name, Cookie: opt.Cookie, Base: base, Host: opt.Host, C2SPort: port, opt: opt}
	if opt.WebSocket {
		if e.WSPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"conf", "spool", "logs"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"conf/ejabberd.yml": ejabberdConfig(opt, port, e.WSPort),
		"conf/ejabberdctl.cfg": "EJABBERD_CONFIG_PATH=" + filepath.Join(base, "conf", "ejabberd.yml") + "\n" +
			"ERL_OPTIONS=\"" + TimeWarpFlags + "\"\n",
		"conf/vm.args": "-setcookie " + opt.Cookie + "\n",
		"conf/inetrc":  "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(base, name), []byte(content), 0o640); err != nil {
			return nil, err
		}
	}
	if err := chownEjabberd(base); err != nil {
		return nil, err
	}
	if out, err := e.Ctl("start"); err != nil {
		return nil, fmt.Errorf("ejabberdctl start: %v: %s", err, out)
	}
	if err := e.WaitStarted(60 * time.Second); err != nil {
		return nil, err
	}
	return e, nil
}

func chownEjabberd(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("ejabberd")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// Load compiles an Erlang module (its source text), loads it into the node
// and evaluates expr there, returning what it prints as ~p (or the string
// it returns).
func (e *Ejabberd) Load(source []byte, module, expr string) (string, error) {
	return e.LoadWithin(source, module, expr, time.Minute)
}

// LoadWithin is Load with another time limit for the evaluation.
func (e *Ejabberd) LoadWithin(source []byte, module, expr string, limit time.Duration) (string, error) {
	dir := filepath.Join(e.Base, "load")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(dir, module+".erl")
	if err := os.WriteFile(src, source, 0o644); err != nil {
		return "", err
	}
	if out, err := exec.Command("erlc", "-o", dir, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("erlc: %v: %s", err, out)
	}
	if err := chownEjabberd(dir); err != nil {
		return "", err
	}
	return EvalOnWithin(e.Name, e.Cookie, fmt.Sprintf("{module, _} = code:load_abs(%s), %s", erlString(filepath.Join(dir, module)), expr), limit)
}

// Restart stops the node and starts it again on the same spool, with
// extra configuration in place of the first.
func (e *Ejabberd) Restart(extraConfig string) error {
	if err := e.Stop(); err != nil {
		return err
	}
	opt := e.opt
	opt.Base, opt.Name, opt.Cookie, opt.ExtraConfig = e.Base, e.Name, e.Cookie, extraConfig
	ne, err := StartEjabberd(opt)
	if err != nil {
		return err
	}
	*e = *ne
	return nil
}

// RestartOnSQL stops the node and starts it again on the same spool with
// its data in SQL (auth_method and default_db sql) and extraConfig (the
// sql_* options).
func (e *Ejabberd) RestartOnSQL(extraConfig string) error {
	if err := e.Stop(); err != nil {
		return err
	}
	opt := e.opt
	opt.Base, opt.Name, opt.Cookie, opt.ExtraConfig, opt.SQL = e.Base, e.Name, e.Cookie, extraConfig, true
	ne, err := StartEjabberd(opt)
	if err != nil {
		return err
	}
	*e = *ne
	return nil
}

// Diagnose tells why a node may have gone: the tails of its logs and the
// slogan of any crash dump it wrote.
func (e *Ejabberd) Diagnose() string {
	var b strings.Builder
	dir := filepath.Join(e.Base, "logs")
	for _, f := range []string{"ejabberd.log", "error.log", "crash.log"} {
		if data, err := os.ReadFile(filepath.Join(dir, f)); err == nil && len(data) > 0 {
			fmt.Fprintf(&b, "--- %s:\n%s\n", f, tail(string(data), 2000))
		}
	}
	dumps, _ := filepath.Glob(filepath.Join(dir, "erl_crash*.dump"))
	for _, d := range dumps {
		if data, err := os.ReadFile(d); err == nil {
			fmt.Fprintf(&b, "--- %s:\n%s\n", filepath.Base(d), tail(string(data[:min(len(data), 600)]), 600))
		}
	}
	return b.String()
}

// Ctl runs ejabberdctl against this node with its private directories.
func (e *Ejabberd) Ctl(args ...string) (string, error) {
	all := append([]string{"--config-dir", filepath.Join(e.Base, "conf"), "--node", e.Name,
		"--spool", filepath.Join(e.Base, "spool"), "--logs", filepath.Join(e.Base, "logs")}, args...)
	cmd := exec.Command("ejabberdctl", all...)
	if e.opt.NoFile > 0 && os.Geteuid() == 0 {
		// ejabberdctl run by root switches to the ejabberd user with su,
		// whose PAM session sets the soft limit back to 1,024: switch
		// without PAM instead.
		cmd = exec.Command("prlimit", append([]string{fmt.Sprintf("--nofile=%d:%d", e.opt.NoFile, e.opt.NoFile),
			"setpriv", "--reuid=ejabberd", "--regid=ejabberd", "--init-groups", "ejabberdctl"}, all...)...)
		cmd.Env = append(os.Environ(), "HOME=/var/lib/ejabberd")
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Pid is the node's VM process (0 when it is not running).
func (e *Ejabberd) Pid() int {
	out, err := exec.Command("pgrep", "-f", "--", "-sname "+e.Name+" ").Output()
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscan(strings.Fields(string(out))[0], &pid)
	return pid
}

// Alive is the part of the node name before '@'.
func (e *Ejabberd) Alive() string { return strings.SplitN(e.Name, "@", 2)[0] }

// SpoolDir is the node's Mnesia directory.
func (e *Ejabberd) SpoolDir() string { return filepath.Join(e.Base, "spool") }

// WaitStarted waits until ejabberd reports it has started.
func (e *Ejabberd) WaitStarted(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if out, err := e.Eval("lists:keymember(ejabberd, 1, application:which_applications())"); err == nil && out == "true" {
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(e.Base, "logs", "ejabberd.log"))
	return fmt.Errorf("ejabberd %s did not start within %s; log:\n%s", e.Name, limit, tail(string(log), 3000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Eval evaluates an Erlang expression on the node (see EvalOn).
func (e *Ejabberd) Eval(expr string) (string, error) { return EvalOn(e.Name, e.Cookie, expr) }

// Registered reports whether the node is registered with epmd.
func (e *Ejabberd) Registered() bool {
	out, err := exec.Command("epmd", "-names").Output()
	return err == nil && strings.Contains(string(out), "name "+e.Alive()+" at port")
}

// Stop stops the node cleanly (ejabberdctl stop) and waits until it is gone.
func (e *Ejabberd) Stop() error {
	e.Ctl("stop")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if !e.Registered() && !e.processAlive() {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.Kill()
	return fmt.Errorf("ejabberd %s did not stop within a minute; killed", e.Name)
}

// Kill kills the node's VM (kill -9), leaving its files as they are.
func (e *Ejabberd) Kill() {
	exec.Command("pkill", "-9", "-f", "--", "-sname "+e.Name+" ").Run()
	for i := 0; i < 100 && e.processAlive(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *Ejabberd) processAlive() bool {
	return exec.Command("pgrep", "-f", "--", "-sname "+e.Name+" ").Run() == nil
}

// Destroy kills the node and removes its directories.
func (e *Ejabberd) Destroy() {
	if e.processAlive() {
		e.Kill()
	}
	os.RemoveAll(e.Base)
}

// JoinCluster makes this node join other's Mnesia cluster (ejabberdctl join_cluster).
func (e *Ejabberd) JoinCluster(other *Ejabberd) error {
	if out, err := e.Ctl("join_cluster", other.Name); err != nil {
		return fmt.Errorf("join_cluster: %v: %s", err, out)
	}
	return e.WaitStarted(60 * time.Second)
}

// PopulateOptions sizes the data set.
type PopulateOptions struct {
	Users    int // default 3000
	APIUsers int // users created through ejabberd's APIs (default 100)
	Contacts int // roster items per user (default 5)
	Rooms    int // MUC rooms (default 30)
}

// Populate loads the data generator into the node and runs it. It returns
// the size of every table afterwards.
func (e *Ejabberd) Populate(opt PopulateOptions) (map[string]int, error) {
	if opt.Users == 0 {
		opt.Users = 3000
	}
	if opt.APIUsers == 0 {
		opt.APIUsers = 100
	}
	if opt.Contacts == 0 {
		opt.Contacts = 5
	}
	if opt.Rooms == 0 {
		opt.Rooms = 30
	}
	expr := fmt.Sprintf(`mimmigrate_populate:run(%s, #{users => %d, api_users => %d, contacts => %d, rooms => %d})`,
		"<<"+erlString(e.Host)+">>", opt.Users, opt.APIUsers, opt.Contacts, opt.Rooms)
	// about 10 ms a user at most on a slow machine
	out, err := e.LoadWithin(populateSource, "mimmigrate_populate",
		`lists:flatten([io_lib:format("~s ~b~n", [T, S]) || {T, S} <- `+expr+`])`,
		time.Minute+time.Duration(opt.Users)*10*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("populate: %v", err)
	}
	sizes := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var t string
		var n int
		if _, err := fmt.Sscanf(line, "%s %d", &t, &n); err != nil {
			return nil, fmt.Errorf("populate output %q", line)
		}
		sizes[t] = n
	}
	return sizes, nil
}

// EjabberdCluster is a set of private ejabberd nodes sharing one Mnesia schema.
type EjabberdCluster struct {
	Nodes []*Ejabberd
	Sizes map[string]int // table sizes after Populate
}

// StartEjabberdCluster starts n nodes with one cookie, joins nodes 2..n to
// node 1 and, when pop.Users > 0, fills the cluster with data through node 1.
func StartEjabberdCluster(n int, prefix string, pop PopulateOptions) (*EjabberdCluster, error) {
	return StartNamedEjabberdCluster(n, prefix, "", "", pop)
}

// StartNamedEjabberdCluster is StartEjabberdCluster with fixed node names
// (<prefix>N@localhost, when named is true), a given cookie and base directory.
func StartNamedEjabberdCluster(n int, prefix, cookie, baseDir string, pop PopulateOptions) (*EjabberdCluster, error) {
	return StartEjabberdClusterWith(n, EjabberdOptions{Prefix: prefix, Cookie: cookie}, baseDir, pop)
}

// StartEjabberdClusterWith is StartEjabberdCluster with every node started
// with base's options (its Prefix gets the node's number; Name and Base are
// set when baseDir is given).
func StartEjabberdClusterWith(n int, base EjabberdOptions, baseDir string, pop PopulateOptions) (*EjabberdCluster, error) {
	prefix, cookie := base.Prefix, base.Cookie
	if cookie == "" {
		cookie = "cookie" + RandomID(16)
	}
	c := &EjabberdCluster{}
	for i := 0; i < n; i++ {
		opt := base
		opt.Prefix, opt.Cookie, opt.Name, opt.Base = fmt.Sprintf("%s%d", prefix, i+1), cookie, "", ""
		if baseDir != "" {
			opt.Base = filepath.Join(baseDir, fmt.Sprintf("%s%d", prefix, i+1))
			opt.Name = fmt.Sprintf("%s%d@localhost", prefix, i+1)
		}
		e, err := StartEjabberd(opt)
		if err != nil {
			c.Destroy()
			return nil, err
		}
		c.Nodes = append(c.Nodes, e)
	}
	for _, e := range c.Nodes[1:] {
		if err := e.JoinCluster(c.Nodes[0]); err != nil {
			c.Destroy()
			return nil, err
		}
	}
	if pop.Users > 0 {
		sizes, err := c.Nodes[0].Populate(pop)
		if err != nil {
			c.Destroy()
			return nil, err
		}
		c.Sizes = sizes
	}
	return c, nil
}

// DropCopies removes node's copies of tables (mnesia:del_table_copy), leaving
// it with remote access only: the broken replication of the 2012 operator's log.
func (c *EjabberdCluster) DropCopies(node *Ejabberd, tables []string) error {
	for _, t := range tables {
		out, err := c.Nodes[0].Eval(fmt.Sprintf("mnesia:del_table_copy(%s, %s)", erlQuote(t), erlQuote(node.Name)))
		if err != nil || out != "{atomic,ok}" {
			return fmt.Errorf("del_table_copy(%s, %s): %v %s", t, node.Name, err, out)
		}
	}
	return nil
}

// Destroy kills every node and removes their directories.
func (c *EjabberdCluster) Destroy() {
	for _, e := range c.Nodes {
		e.Destroy()
	}
}
