package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Debian's own ejabberd.yml (installed with ejabberd) reads as the same
// service: its host, its two c2s listeners, its certificate, its SASL and
// session settings; everything else is named in warnings.
func TestDebianDefault(t *testing.T) {
	const path = "/etc/ejabberd/ejabberd.yml"
	if _, err := os.Stat(path); err != nil {
		t.Skip("ejabberd is not installed (apt-get install ejabberd)")
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Hosts, []string{"localhost"}) || c.Auth.PasswordFormat != "scram" || c.MaxUserSessions != 10 {
		t.Errorf("hosts %v, password format %s, max sessions %d", c.Hosts, c.Auth.PasswordFormat, c.MaxUserSessions)
	}
	if len(c.Listeners) != 3 || c.Listeners[0].Port != 5222 || !c.Listeners[0].StartTLSRequired || c.Listeners[0].TLS ||
		c.Listeners[1].Port != 5223 || !c.Listeners[1].TLS || c.Listeners[0].MaxStanzaSize != 262144 ||
		c.Listeners[2].Port != 5443 || !c.Listeners[2].TLS || c.Listeners[2].WebSocket != "/ws" || c.Listeners[1].WebSocket != "" {
		t.Errorf("listeners %+v", c.Listeners)
	}
	if !slices.Contains(c.Listeners[0].ProtocolOptions, "no_tlsv1_1") || c.Listeners[0].Ciphers == "" {
		t.Errorf("TLS macros not applied: %+v", c.Listeners[0])
	}
	if !slices.Equal(c.Auth.DisabledMechanisms, []string{"digest-md5", "X-OAUTH2"}) {
		t.Errorf("disabled %v", c.Auth.DisabledMechanisms)
	}
	warned := strings.Join(c.Warnings, "\n")
	for _, w := range []string{"mod_pubsub plugin flat: the pubsub service (pubsub.HOST) is not implemented", "mod_vcard search: user directory search (XEP-0055) is not served", "listener ejabberd_http on port 5280 has no WebSocket handler (ejabberd_http_ws); not opened", "listener ejabberd_http on port 5443: request handler /bosh (mod_bosh) is not implemented; answered 404"} {
		if !strings.Contains(warned, w) {
			t.Errorf("no warning %q in\n%s", w, warned)
		}
	}
}

func TestRefused(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "c.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	base := "hosts: [localhost]\ncertfiles: [" + cert + "]\n"
	for _, c := range []struct{ yml, want string }{
		{"hosts: []\n", "no virtual host"},
		{base + "auth_method: ldap\n", "auth_method ldap is not implemented"},
		{base + "sql_type: mysql\n", "only PostgreSQL"},
		{base + "auth_password_format: md5\n", "neither plain nor scram"},
		{"hosts: [a]\nlisten:\n  - port: 5222\n    module: ejabberd_c2s\n    starttls: false\n", "neither tls nor starttls"},
		{"hosts: [a]\nlisten:\n  - port: 5222\n    module: ejabberd_c2s\n", "needs certificates"},
		{base + "certfiles: [/nonexistent/*.pem]\n", "option certfiles is given twice"},
		{"hosts: [a]\ncertfiles: [/nonexistent/*.pem]\n", "no such file"},
		{base + "host_config:\n  localhost:\n    auth_method: sql\n", "per-host authentication"},
		{base + "resource_conflict: kick\n", "not acceptnew"},
		{"hosts: [a\n", "not YAML"},
	} {
		if _, err := Parse([]byte(c.yml), dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yml, err, c.want)
		}
	}
}

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "c.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	yml := `hosts: [Example.COM, b.org]
certfiles: [c.pem]
define_macro:
  PORT: 15222
listen:
  - port: PORT
    ip: 127.0.0.1
    module: ejabberd_c2s
    max_stanza_size: infinity
    starttls_required: false
  - port: 15223
    module: ejabberd_c2s
    tls: true
    max_stanza_size: 65536
negotiation_timeout: 10 sec
resource_conflict: closeold
auth_scram_hash: sha256
auth_password_format: scram
sql_type: pgsql
sql_server: db.example
sql_database: ejabberd
sql_username: ej
sql_password: "p@ss word"
shaper_rules:
  max_user_sessions:
    5: all
modules:
  mod_fail2ban:
    c2s_max_auth_failures: 3
    c2s_auth_ban_lifetime: 5 min
  mod_ping:
    send_pings: true
  mod_muc: {}
`
	c, err := Parse([]byte(yml), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Hosts, []string{"example.com", "b.org"}) || c.Listeners[0].Port != 15222 || c.Listeners[0].Addr() != "127.0.0.1:15222" ||
		c.Listeners[1].Addr() != ":15223" || c.Listeners[0].MaxStanzaSize != MaxStanzaSizeCap || c.Listeners[1].MaxStanzaSize != 65536 ||
		c.Listeners[0].StartTLSRequired || !c.Listeners[1].TLS {
		t.Errorf("listeners %+v", c.Listeners)
	}
	if c.NegotiationTimeout != 10*time.Second || c.ResourceConflict != "closeold" || c.Auth.ScramHash != "sha256" || c.MaxUserSessions != 5 ||
		c.Fail2ban.MaxFailures != 3 || c.Fail2ban.BanLifetime != 5*time.Minute || !c.Modules["mod_ping"] || c.Modules["mod_muc"] {
		t.Errorf("%+v", c)
	}
	if u := c.SQL.URL(); u != "postgres://ej:p%40ss%20word@db.example:5432/ejabberd?sslmode=disable" {
		t.Errorf("URL %s", u)
	}
	if !slices.Equal(c.Certfiles, []string{filepath.Join(dir, "c.pem")}) {
		t.Errorf("certfiles %v", c.Certfiles)
	}
	if !c.Ping.Send || c.Ping.Interval != time.Minute || c.Ping.AckTimeout != 32*time.Second || c.Ping.TimeoutAction != "none" {
		t.Errorf("mod_ping %+v", c.Ping)
	}
	if w := strings.Join(c.Warnings, "\n"); !strings.Contains(w, "module mod_muc is not implemented") || !strings.Contains(w, "infinity is bounded") ||
		strings.Contains(w, "mod_ping") {
		t.Errorf("warnings:\n%s", w)
	}
}

// mod_mam's options: the default, request_activates_archiving; the
// compressed format is refused, access rules warned about.
func TestMAMOptions(t *testing.T) {
	base := "hosts: [example.com]\nmodules:\n  mod_mam:\n"
	c, err := Parse([]byte(base+"    default: roster\n    request_activates_archiving: true\n    access_preferences: admin\n    db_type: sql\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Modules["mod_mam"] || c.MAM.Default != "roster" || !c.MAM.RequestActivates {
		t.Errorf("%+v", c.MAM)
	}
	if w := strings.Join(c.Warnings, "\n"); !strings.Contains(w, "access_preferences") || strings.Contains(w, "db_type") {
		t.Errorf("warnings:\n%s", w)
	}
	if c, err := Parse([]byte("hosts: [example.com]\nmodules:\n  mod_mam: {}\n"), t.TempDir()); err != nil || c.MAM.Default != "never" {
		t.Errorf("default: %v %+v", err, c)
	}
	for _, bad := range []string{"    compress_xml: true\n", "    default: sometimes\n", "    request_activates_archiving: maybe\n"} {
		if _, err := Parse([]byte(base+bad), t.TempDir()); err == nil || !strings.Contains(err.Error(), "mod_mam") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
