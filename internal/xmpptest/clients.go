package xmpptest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"
)

//go:embed testdata/slix.py
var slixScript []byte

//go:embed testdata/xmppjs-login.js
var xmppjsScript []byte

// Login is how one client logs in.
type Login struct {
	Account Account
	Addr    string // host:port
	// DirectTLS: the listener speaks TLS at once (XEP-0368); otherwise
	// the client negotiates STARTTLS.
	DirectTLS bool
	// Mechanism forces a SASL mechanism (when the client can be told).
	Mechanism string
	CA        *CA
	// PEP: the slixmpp chat client advertises entity capabilities and
	// asks for the PEP nodes of OMEMO, avatars and nicknames (+notify).
	PEP bool
}

// Result is what a client said: OK <JID>, or FAIL <why>.
type Result struct {
	OK     bool
	Line   string
	Output string // everything it printed
}

func runClient(name string, cmd *exec.Cmd) Result {
	out, err := cmd.CombinedOutput()
	text := strings.TrimSpace(string(out))
	last := "FAIL no result from " + name
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "OK ") || strings.HasPrefix(l, "FAIL ") {
			last = l
		}
	}
	r := Result{Line: last, Output: text, OK: strings.HasPrefix(last, "OK ")}
	if err != nil && r.OK {
		r.OK, r.Line = false, fmt.Sprintf("FAIL %s exited: %v", name, err)
	}
	return r
}

func writeScript(dir, name string, b []byte) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, b, 0o755)
}

// Slixmpp logs in with Debian's python3-slixmpp.
func Slixmpp(dir string, l Login) (Result, error) {
	if _, err := os.Stat("/usr/lib/python3/dist-packages/slixmpp"); err != nil {
		return Result{}, fmt.Errorf("slixmpp: %w (apt-get install python3-slixmpp)", ErrSkip)
	}
	script, err := writeScript(dir, "slix.py", slixScript)
	if err != nil {
		return Result{}, err
	}
	args := []string{script, "--jid", l.Account.JID(), "--password", l.Account.Password, "--addr", l.Addr, "--ca", l.CA.CertFile}
	if l.DirectTLS {
		args = append(args, "--direct-tls")
	}
	if l.Mechanism != "" {
		args = append(args, "--mech", l.Mechanism)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	return runClient("slixmpp", exec.CommandContext(ctx, "/usr/bin/python3", args...)), nil
}

var npmOnce sync.Once
var npmDir string
var npmErr error

// NodeModules installs @xmpp/client 0.14.0 once, in the user's cache
// (.ci/setup installs it there beforehand), and returns its node_modules.
func NodeModules() (string, error) {
	npmOnce.Do(func() {
		if _, err := exec.LookPath("npm"); err != nil {
			npmErr = fmt.Errorf("npm: %w (apt-get install npm)", ErrSkip)
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			npmErr = err
			return
		}
		dir := filepath.Join(cache, "mimmigrate", "npm")
		npmDir = filepath.Join(dir, "node_modules")
		if _, err := os.Stat(filepath.Join(npmDir, "@xmpp", "client", "package.json")); err == nil {
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			npmErr = err
			return
		}
		out, err := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "@xmpp/client@0.14.0").CombinedOutput()
		if err != nil {
			npmErr = fmt.Errorf("npm install @xmpp/client: %v\n%s", err, out)
		}
	})
	return npmDir, npmErr
}

// XMPPJS logs in with @xmpp/client (npm), which uses SCRAM-SHA-1.
func XMPPJS(dir string, l Login) (Result, error) {
	mods, err := NodeModules()
	if err != nil {
		return Result{}, err
	}
	script, err := writeScript(dir, "xmppjs-login.js", xmppjsScript)
	if err != nil {
		return Result{}, err
	}
	service := "xmpp://" + l.Addr
	if l.DirectTLS {
		service = "xmpps://" + l.Addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, service, Host, l.Account.User, l.Account.Password)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods, "NODE_EXTRA_CA_CERTS="+l.CA.CertFile)
	return runClient("node", cmd), nil
}

func goSendXMPP(ctx context.Context, l Login, args ...string) (*exec.Cmd, error) {
	if _, err := exec.LookPath("go-sendxmpp"); err != nil {
		return nil, fmt.Errorf("go-sendxmpp: %w (apt-get install go-sendxmpp)", ErrSkip)
	}
	base := []string{"-u", l.Account.JID(), "-p", l.Account.Password, "-j", l.Addr, "--timeout", "15", "--tls-version", "12"}
	if l.DirectTLS {
		base = append(base, "-t")
	}
	cmd := exec.CommandContext(ctx, "go-sendxmpp", append(base, args...)...)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+l.CA.CertFile, "HOME="+os.TempDir())
	return cmd, nil
}

// GoSendXMPP sends a message with Debian's go-sendxmpp (PLAIN); it
// succeeds when it could log in.
func GoSendXMPP(l Login, to, message string) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd, err := goSendXMPP(ctx, l, to)
	if err != nil {
		return Result{}, err
	}
	cmd.Stdin = strings.NewReader(message)
	out, err := cmd.CombinedOutput()
	r := Result{Output: strings.TrimSpace(string(out)), OK: err == nil}
	if err != nil {
		r.Line = "FAIL " + r.Output
	} else {
		r.Line = "OK " + l.Account.JID()
	}
	return r, nil
}

// GoSendXMPPListen starts go-sendxmpp in listen mode (-l): it logs in,
// sends its presence and prints every message it receives; Stop it (it
// is killed after two minutes in any case).
func GoSendXMPPListen(l Login) (*Background, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd, err := goSendXMPP(ctx, l, "-l")
	if err != nil {
		cancel()
		return nil, err
	}
	return startBackground(cmd, cancel)
}

// GoXMPP logs in with github.com/xmppo/go-xmpp v0.4.1 (a Go client that
// does SCRAM -PLUS with tls-exporter or tls-server-end-point, chosen
// from the server's XEP-0440 list).
func GoXMPP(l Login) Result {
	pem, err := os.ReadFile(l.CA.CertFile)
	if err != nil {
		return Result{Line: "FAIL " + err.Error()}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	opts := goxmpp.Options{Host: l.Addr, User: l.Account.JID(), Password: l.Account.Password, Resource: "goxmpp",
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: Host, MinVersion: tls.VersionTLS12}, Mechanism: l.Mechanism,
		NoTLS: !l.DirectTLS, StartTLS: !l.DirectTLS, DialTimeout: 10 * time.Second}
	c, err := opts.NewClient()
	if err != nil {
		return Result{Line: "FAIL " + err.Error(), Output: err.Error()}
	}
	defer c.Close()
	return Result{OK: true, Line: "OK " + c.JID()}
}

// GoXMPPClient logs in with github.com/xmppo/go-xmpp v0.4.1 (which sends
// its initial presence at once) and returns the client.
func GoXMPPClient(l Login) (*goxmpp.Client, error) {
	pem, err := os.ReadFile(l.CA.CertFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	opts := goxmpp.Options{Host: l.Addr, User: l.Account.JID(), Password: l.Account.Password, Resource: "goxmpp",
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: Host, MinVersion: tls.VersionTLS12}, Mechanism: l.Mechanism,
		NoTLS: !l.DirectTLS, StartTLS: !l.DirectTLS, DialTimeout: 10 * time.Second}
	return opts.NewClient()
}

//go:embed testdata/xmppjs-chat.js
var xmppjsChatScript []byte

// XMPPJSChat runs a scripted @xmpp/client session (testdata/xmppjs-chat.js):
// roster fetch, initial presence, a message to peer (once peer's presence
// came, with waitPresence), a message awaited ("-": none). It returns when
// the script ends.
func XMPPJSChat(dir string, l Login, peer, send, expect string, waitPresence bool) (Result, error) {
	mods, err := NodeModules()
	if err != nil {
		return Result{}, err
	}
	script, err := writeScript(dir, "xmppjs-chat.js", xmppjsChatScript)
	if err != nil {
		return Result{}, err
	}
	service := "xmpp://" + l.Addr
	if l.DirectTLS {
		service = "xmpps://" + l.Addr
	}
	wait := "no"
	if waitPresence {
		wait = "yes"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, service, Host, l.Account.User, l.Account.Password, peer, send, expect, wait)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods, "NODE_EXTRA_CA_CERTS="+l.CA.CertFile)
	return runClient("node", cmd), nil
}
