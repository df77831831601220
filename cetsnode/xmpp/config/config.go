// Package config reads ejabberd's own YAML configuration (ejabberd.yml)
// for what the cluster node's XMPP service implements: the virtual
// hosts, certificates, c2s listeners, authentication and SQL options, the
// limits, and mod_fail2ban. Every other option and module is reported
// once as a warning; a configuration the service cannot serve safely
// (another authentication method, a database that is not PostgreSQL, a
// listener with no certificate for its hosts) is refused with an error.
package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is what the XMPP service takes from ejabberd.yml.
type Config struct {
	Hosts     []string
	Certfiles []string // after glob expansion
	Listeners []Listener
	Language  string
	// DiscoName is the server's name in service discovery (mod_disco's
	// name).
	DiscoName string
	Auth      Auth
	SQL       SQL
	// ResourceConflict is what binding a resource already bound does:
	// acceptnew (ejabberd's default), closeold, closenew or setresource.
	ResourceConflict string
	// MaxUserSessions bounds a user's sessions (shaper_rules
	// max_user_sessions; 0 = unlimited).
	MaxUserSessions int
	// NegotiationTimeout bounds the time from connecting to a bound
	// session (negotiation_timeout, 30 s).
	NegotiationTimeout time.Duration
	Fail2ban           Fail2ban
	// Modules are the modules listed that this service implements.
	Modules map[string]bool
	// Roster are mod_roster's options.
	Roster Roster
	PubSub PubSub
	// Offline are mod_offline's options.
	Offline Offline
	// MAM are mod_mam's options.
	MAM MAM
	// SM are mod_stream_mgmt's options (nil: the module is not loaded).
	SM *SM
	// Ping are mod_ping's options.
	Ping Ping
	// CSI are mod_client_state's options: what waits while a client is
	// inactive.
	CSI struct{ Presence, ChatStates, PEP bool }
	// PasswordStrength is mod_register's password_strength: the least
	// entropy of a new password (0: any).
	PasswordStrength float64
	// Warnings are the options and modules read but not implemented, one
	// line each.
	Warnings []string
}

// Roster are mod_roster's options (XEP-0237 roster versioning).
// PubSub is what mod_pubsub serves: PEP (its pep plugin) or nothing.
type PubSub struct {
	PEP bool
}

type Roster struct {
	Versioning     bool
	StoreCurrentID bool
}

// Offline are mod_offline's options (XEP-0160).
type Offline struct {
	// MaxMessages bounds a user's stored messages (the shaper rule
	// access_max_user_messages names; 0: no limit).
	MaxMessages int
	// StoreEmptyBody: true, false or unless_chat_state (the default).
	StoreEmptyBody                  string
	StoreGroupchat, BounceGroupchat bool
}

// MAM are mod_mam's options (XEP-0313).
type MAM struct {
	// Default is what a user without stored preferences archives:
	// always, never (ejabberd's default) or roster.
	Default string
	// RequestActivates: a user's first query stores the default as the
	// user's preferences, and until then nothing is archived.
	RequestActivates bool
}

// Ping are mod_ping's options (XEP-0199): with Send, the server pings
// each client after Interval without a stanza from it, and with
// TimeoutAction kill closes a connection that does not answer within
// AckTimeout (a session with stream management then waits for
// resumption).
type Ping struct {
	Send                 bool
	Interval, AckTimeout time.Duration
	TimeoutAction        string // none or kill
}

// SM are mod_stream_mgmt's options (XEP-0198).
type SM struct {
	ResumeTimeout, MaxResumeTimeout, AckTimeout time.Duration
	MaxAckQueue                                 int    // 0: infinity
	ResendOnTimeout                             string // false, true, if_offline
}

// Listener is one listen entry with module ejabberd_c2s.
type Listener struct {
	Port int
	IP   string
	// TLS is direct TLS (XEP-0368); otherwise STARTTLS is offered, and
	// required unless StartTLSRequired is false.
	TLS              bool
	StartTLSRequired bool
	MaxStanzaSize    int
	// MaxFSMQueue bounds the stanzas waiting to be written to one client
	// (ejabberd's max_fsm_queue, 10000 by default): a client that does
	// not read its stream is disconnected past it.
	MaxFSMQueue int
	// Ciphers and ProtocolOptions are OpenSSL's words, as ejabberd takes
	// them (c2s_ciphers, protocol_options).
	Ciphers         string
	ProtocolOptions []string
	// WebSocket is the path an ejabberd_http listener serves XMPP over
	// WebSocket on (its request handler ejabberd_http_ws); "" for c2s.
	WebSocket string
}

// Addr is the listener's address for net.Listen.
func (l Listener) Addr() string {
	ip := l.IP
	if ip == "" || ip == "::" || ip == "0.0.0.0" {
		ip = ""
	}
	return netJoin(ip, l.Port)
}

func netJoin(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// Auth is how passwords are checked and offered.
type Auth struct {
	// PasswordFormat is plain or scram (auth_password_format): what a
	// changed password is stored as, and which SCRAM hashes are offered.
	PasswordFormat string
	ScramHash      string // sha, sha256 or sha512 (auth_scram_hash)
	// DisabledMechanisms are disable_sasl_mechanisms.
	DisabledMechanisms []string
}

// SQL is the database, from the sql_* options.
type SQL struct {
	Type, Server, Database, Username, Password string
	Port                                       int
	SSL, SSLVerify                             bool
	SSLCAFile                                  string
	PoolSize                                   int
}

// URL is the database as a PostgreSQL URL (empty when sql_server is not
// set).
func (s SQL) URL() string {
	if s.Server == "" {
		return ""
	}
	u := "postgres://"
	if s.Username != "" {
		u += urlEscape(s.Username)
		if s.Password != "" {
			u += ":" + urlEscape(s.Password)
		}
		u += "@"
	}
	port := s.Port
	if port == 0 {
		port = 5432
	}
	u += netJoin(s.Server, port) + "/" + urlEscape(s.Database)
	switch {
	case s.SSL && s.SSLVerify:
		u += "?sslmode=verify-full"
		if s.SSLCAFile != "" {
			u += "&sslrootcert=" + urlEscape(s.SSLCAFile)
		}
	case s.SSL:
		u += "?sslmode=require"
	default:
		u += "?sslmode=disable"
	}
	return u
}

func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Fail2ban is mod_fail2ban: an address with MaxFailures failed logins is
// refused until BanLifetime after its last failure.
type Fail2ban struct {
	MaxFailures int
	BanLifetime time.Duration
}

// Error is a configuration the service refuses.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func refuse(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// Load reads ejabberd.yml.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b, filepath.Dir(path))
}

// Parse reads a configuration; relative certfiles are relative to dir.
func Parse(data []byte, dir string) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, refuse("not YAML: %v", err)
	}
	if len(doc.Content) == 0 {
		return nil, refuse("the configuration is empty")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, refuse("the configuration is not a mapping of options")
	}
	p := &parser{cfg: &Config{Language: "en", ResourceConflict: "acceptnew", NegotiationTimeout: 30 * time.Second,
		Auth: Auth{PasswordFormat: "plain", ScramHash: "sha"}, Fail2ban: Fail2ban{MaxFailures: 20, BanLifetime: time.Hour}}}
	if err := p.macros(root); err != nil {
		return nil, err
	}
	opts := map[string]*yaml.Node{}
	var names []string
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i].Value
		if _, dup := opts[k]; dup {
			return nil, refuse("option %s is given twice", k)
		}
		opts[k] = root.Content[i+1]
		names = append(names, k)
	}
	for _, name := range names {
		if err := p.option(name, opts[name], opts); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := p.finish(dir); err != nil {
		return nil, err
	}
	return p.cfg, nil
}

type parser struct {
	cfg   *Config
	rules map[string]int // shaper_rules that are numbers (0: infinity)
	// offlineRule is the rule mod_offline limits its queues by.
	offlineRule string
}

func (p *parser) warn(format string, args ...any) {
	p.cfg.Warnings = append(p.cfg.Warnings, fmt.Sprintf(format, args...))
}

// macros applies define_macro: a value equal to a macro's name is
// replaced by the macro's value, as ejabberd does.
func (p *parser) macros(root *yaml.Node) error {
	var defs *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "define_macro" {
			defs = root.Content[i+1]
		}
	}
	if defs == nil {
		return nil
	}
	if defs.Kind != yaml.MappingNode {
		return refuse("define_macro: not a mapping")
	}
	m := map[string]*yaml.Node{}
	for i := 0; i+1 < len(defs.Content); i += 2 {
		m[defs.Content[i].Value] = defs.Content[i+1]
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		for i, c := range n.Content {
			if n.Kind == yaml.MappingNode && i%2 == 0 {
				continue // keys
			}
			if c.Kind == yaml.ScalarNode {
				if v, ok := m[c.Value]; ok {
					n.Content[i] = v
					continue
				}
			}
			walk(c)
		}
	}
	walk(root)
	return nil
}

// Options with no meaning for this server (logging, caches, Erlang
// tuning): accepted without a warning.
var harmless = []string{"loglevel", "log_rotate_count", "log_rotate_size", "log_burst_limit_window_time", "log_burst_limit_count",
	"log_modules_fully", "hide_sensitive_log_data", "cache_life_time", "cache_missed", "cache_size", "use_cache", "auth_use_cache",
	"auth_cache_life_time", "auth_cache_missed", "auth_cache_size", "define_macro", "oom_killer", "oom_queue", "oom_watermark",
	"net_ticktime", "version", "default_db", "default_ram_db", "queue_type", "sql_prepared_statements",
	"sql_keepalive_interval", "sql_start_interval", "sql_connect_timeout", "sql_query_timeout", "sql_queue_type",
	"update_sql_schema", "new_sql_schema", "allow_contrib_modules", "pgsql_users_number_estimate", "acl", "access_rules",
	"api_permissions", "s2s_ciphers", "s2s_protocol_options", "s2s_use_starttls", "s2s_dhfile", "s2s_cafile", "s2s_access",
	"s2s_tls_compression", "fqdn"}

func (p *parser) option(name string, v *yaml.Node, all map[string]*yaml.Node) error {
	c := p.cfg
	switch name {
	case "hosts":
		hosts, err := stringList(v)
		if err != nil {
			return err
		}
		if len(hosts) == 0 {
			return refuse("no virtual host")
		}
		c.Hosts = hosts
	case "certfiles":
		files, err := stringList(v)
		if err != nil {
			return err
		}
		c.Certfiles = files
	case "listen":
		return p.listen(v, all)
	case "language":
		c.Language = v.Value
	case "auth_method":
		methods, err := stringList(v)
		if err != nil {
			return err
		}
		for _, m := range methods {
			// internal (Mnesia) data is served from its export.
			if m != "sql" && m != "internal" && m != "mnesia" {
				return refuse("auth_method %s is not implemented: only the accounts in the SQL database (sql, or internal after an export) can be served", m)
			}
		}
	case "auth_password_format":
		if v.Value != "plain" && v.Value != "scram" {
			return refuse("%q is neither plain nor scram", v.Value)
		}
		c.Auth.PasswordFormat = v.Value
	case "auth_scram_hash":
		if v.Value != "sha" && v.Value != "sha256" && v.Value != "sha512" {
			return refuse("%q is not sha, sha256 or sha512", v.Value)
		}
		c.Auth.ScramHash = v.Value
	case "disable_sasl_mechanisms":
		m, err := stringList(v)
		if err != nil {
			return err
		}
		c.Auth.DisabledMechanisms = m
	case "sql_type":
		if v.Value != "pgsql" {
			return refuse("sql_type %s is not implemented: only PostgreSQL (pgsql)", v.Value)
		}
		c.SQL.Type = v.Value
	case "sql_server":
		c.SQL.Server = v.Value
	case "sql_port":
		n, err := intValue(v)
		if err != nil {
			return err
		}
		c.SQL.Port = n
	case "sql_database":
		c.SQL.Database = v.Value
	case "sql_username":
		c.SQL.Username = v.Value
	case "sql_password":
		c.SQL.Password = v.Value
	case "sql_ssl":
		c.SQL.SSL = v.Value == "true"
	case "sql_ssl_verify":
		c.SQL.SSLVerify = v.Value == "true"
	case "sql_ssl_cafile":
		c.SQL.SSLCAFile = v.Value
	case "sql_pool_size":
		n, err := intValue(v)
		if err != nil {
			return err
		}
		c.SQL.PoolSize = n
	case "resource_conflict":
		switch v.Value {
		case "acceptnew", "closeold", "closenew", "setresource":
			c.ResourceConflict = v.Value
		default:
			return refuse("%q is not acceptnew, closeold, closenew or setresource", v.Value)
		}
	case "negotiation_timeout":
		d, err := duration(v, time.Second)
		if err != nil {
			return err
		}
		c.NegotiationTimeout = d
	case "shaper_rules":
		return p.shaperRules(v)
	case "shaper":
		// The shapers the c2s listeners name are read with them.
	case "modules":
		return p.modules(v)
	case "c2s_ciphers", "c2s_protocol_options", "max_fsm_queue":
		// Read with the listeners.
	case "host_config", "append_host_config":
		return p.hostConfig(name, v)
	default:
		if slices.Contains(harmless, name) {
			return nil
		}
		p.warn("option %s is not implemented; ignored", name)
	}
	return nil
}

func (p *parser) listen(v *yaml.Node, all map[string]*yaml.Node) error {
	if v.Kind != yaml.SequenceNode {
		return refuse("not a list of listeners")
	}
	for _, l := range v.Content {
		if l.Kind != yaml.MappingNode {
			return refuse("a listener is not a mapping")
		}
		opts := map[string]*yaml.Node{}
		for i := 0; i+1 < len(l.Content); i += 2 {
			opts[l.Content[i].Value] = l.Content[i+1]
		}
		module := ""
		if m := opts["module"]; m != nil {
			module = m.Value
		}
		port := 0
		if n := opts["port"]; n != nil {
			var err error
			if port, err = intValue(n); err != nil || port <= 0 || port > 65535 {
				return refuse("port %q is not a TCP port", n.Value)
			}
		}
		wsPath := ""
		if module == "ejabberd_http" {
			// XMPP over WebSocket on the path of ejabberd_http_ws; the
			// other request handlers are not served (404).
			var others []string
			if rh := opts["request_handlers"]; rh != nil && rh.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(rh.Content); i += 2 {
					path, mod := rh.Content[i].Value, rh.Content[i+1].Value
					if mod == "ejabberd_http_ws" && wsPath == "" {
						wsPath = path
					} else {
						others = append(others, path+" ("+mod+")")
					}
				}
			}
			if wsPath == "" {
				p.warn("listener ejabberd_http on port %d has no WebSocket handler (ejabberd_http_ws); not opened (its handlers %s are not implemented)", port, strings.Join(others, ", "))
				continue
			}
			for _, o := range others {
				p.warn("listener ejabberd_http on port %d: request handler %s is not implemented; answered 404", port, o)
			}
		} else if module != "ejabberd_c2s" {
			p.warn("listener %s on port %d is not implemented; only ejabberd_c2s and ejabberd_http's WebSocket are served", module, port)
			continue
		}
		ln := Listener{Port: port, IP: "::", StartTLSRequired: true, MaxStanzaSize: 262144, MaxFSMQueue: DefaultMaxFSMQueue, WebSocket: wsPath}
		if q := all["max_fsm_queue"]; q != nil {
			n, err := intValue(q)
			if err != nil || n <= 0 {
				return refuse("max_fsm_queue %q is not a positive number", q.Value)
			}
			ln.MaxFSMQueue = n
		}
		if c := all["c2s_ciphers"]; c != nil {
			ln.Ciphers = c.Value
		}
		if po := all["c2s_protocol_options"]; po != nil {
			ln.ProtocolOptions, _ = stringList(po)
		}
		starttls := true
		names := make([]string, 0, len(opts))
		for k := range opts {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			o := opts[k]
			switch k {
			case "port", "module":
			case "request_handlers":
				if wsPath == "" {
					p.warn("listener on port %d: option %s is not implemented; ignored", port, k)
				}
			case "ip":
				ln.IP = o.Value
			case "tls":
				ln.TLS = o.Value == "true"
			case "starttls":
				starttls = o.Value != "false"
			case "starttls_required":
				ln.StartTLSRequired = o.Value != "false"
			case "max_stanza_size":
				if o.Value == "infinity" {
					ln.MaxStanzaSize = MaxStanzaSizeCap
					p.warn("listener on port %d: max_stanza_size infinity is bounded to %d bytes here", port, MaxStanzaSizeCap)
					continue
				}
				n, err := intValue(o)
				if err != nil || n <= 0 {
					return refuse("max_stanza_size %q is not a positive size", o.Value)
				}
				ln.MaxStanzaSize = min(n, MaxStanzaSizeCap)
			case "max_fsm_queue":
				n, err := intValue(o)
				if err != nil || n <= 0 {
					return refuse("max_fsm_queue %q is not a positive number", o.Value)
				}
				ln.MaxFSMQueue = n
			case "ciphers":
				ln.Ciphers = o.Value
			case "protocol_options":
				ln.ProtocolOptions, _ = stringList(o)
			case "backlog":
			case "transport":
				if o.Value != "tcp" {
					return refuse("the c2s listener on port %d: transport %s is not TCP", port, o.Value)
				}
			case "shaper", "access":
				p.warn("listener on port %d: %s is not implemented; ignored", port, k)
			default:
				p.warn("listener on port %d: option %s is not implemented; ignored", port, k)
			}
		}
		if wsPath != "" {
			ln.StartTLSRequired = false
			if !ln.TLS && !loopback(ln.IP) {
				p.warn("listener ejabberd_http on port %d serves WebSocket without tls: clients' passwords cross the network in clear unless a TLS proxy is in front", port)
			}
			p.cfg.Listeners = append(p.cfg.Listeners, ln)
			continue
		}
		if !ln.TLS && !starttls {
			if !loopback(ln.IP) {
				return refuse("the c2s listener on port %d has neither tls nor starttls: passwords would cross the network in clear", port)
			}
			ln.StartTLSRequired = false
			p.warn("listener on port %d serves without TLS (loopback only)", port)
		}
		if !ln.TLS && !ln.StartTLSRequired && !loopback(ln.IP) {
			p.warn("listener on port %d: starttls_required is false, so clients may send passwords in clear", port)
		}
		p.cfg.Listeners = append(p.cfg.Listeners, ln)
	}
	return nil
}

// DefaultMaxFSMQueue is ejabberd_c2s's max_fsm_queue default.
const DefaultMaxFSMQueue = 10000

// MaxStanzaSizeCap bounds max_stanza_size: memory per connection is
// bounded whatever a peer sends.
const MaxStanzaSizeCap = 16 << 20

func loopback(ip string) bool {
	return ip == "127.0.0.1" || ip == "::1" || strings.HasPrefix(ip, "127.")
}

// shaperRules reads the rules that are a number (or infinity): a plain
// number, a mapping or list of numbers by access list with one for all
// (that one applies to everybody: access lists are not implemented, a
// warning says so). max_user_sessions, and the rule mod_offline names,
// are used; the others are warned about when the modules are known.
func (p *parser) shaperRules(v *yaml.Node) error {
	if v.Kind != yaml.MappingNode {
		return refuse("not a mapping")
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		name, rule := v.Content[i].Value, v.Content[i+1]
		n, exact, err := ruleNumber(rule)
		if err != nil {
			p.warn("shaper_rules %s: %v; ignored", name, err)
			continue
		}
		if !exact {
			p.warn("shaper_rules %s: rules by access list are not implemented; the value for all (%s) applies to everybody", name, limitText(n))
		}
		if p.rules == nil {
			p.rules = map[string]int{}
		}
		p.rules[name] = n
	}
	return nil
}

func limitText(n int) string {
	if n == 0 {
		return "infinity"
	}
	return strconv.Itoa(n)
}

// ruleNumber reads a number rule: its value for all (0: infinity), and
// whether that is all the rule says.
func ruleNumber(n *yaml.Node) (int, bool, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "infinity" {
			return 0, true, nil
		}
		v, err := intValue(n)
		return v, true, err
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i+1].Value == "all" {
				v, _, err := ruleNumber(n.Content[i])
				return v, len(n.Content) == 2, err
			}
		}
	case yaml.SequenceNode:
		if len(n.Content) > 0 {
			last := n.Content[len(n.Content)-1]
			if last.Kind == yaml.ScalarNode {
				v, _, err := ruleNumber(last)
				return v, len(n.Content) == 1, err
			}
			v, exact, err := ruleNumber(last)
			return v, exact && len(n.Content) == 1, err
		}
	}
	return 0, false, errors.New("no value for all users")
}

// Modules this service implements (with what ejabberd.yml sets for them).
var implemented = map[string]bool{"mod_fail2ban": true, "mod_ping": true, "mod_roster": true, "mod_last": true, "mod_offline": true, "mod_register": true, "mod_mam": true, "mod_carboncopy": true, "mod_stream_mgmt": true, "mod_client_state": true, "mod_vcard": true, "mod_vcard_xupdate": true, "mod_private": true, "mod_privacy": true, "mod_blocking": true, "mod_caps": true, "mod_pubsub": true, "mod_disco": true, "mod_version": true, "mod_time": true}

// moduleSilent are module options with no meaning here (caches, the
// database a module would use: everything is in SQL).
var moduleSilent = map[string]bool{"db_type": true, "use_cache": true, "cache_size": true, "cache_missed": true, "cache_life_time": true}

func (p *parser) modules(v *yaml.Node) error {
	if v.Kind != yaml.MappingNode {
		return refuse("not a mapping of modules")
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		name, opts := v.Content[i].Value, v.Content[i+1]
		if !implemented[name] {
			p.warn("module %s is not implemented; ignored", name)
			continue
		}
		if p.cfg.Modules == nil {
			p.cfg.Modules = map[string]bool{}
		}
		p.cfg.Modules[name] = true
		if name == "mod_register" && opts.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(opts.Content); j += 2 {
				k, o := opts.Content[j].Value, opts.Content[j+1]
				switch k {
				case "password_strength":
					n, err := intValue(o)
					if err != nil || n < 0 {
						return refuse("mod_register password_strength %q is not a number", o.Value)
					}
					p.cfg.PasswordStrength = float64(n)
				case "access", "access_from", "access_remove", "captcha_protected", "ip_access", "redirect_url", "registration_watchers", "welcome_message", "allow_modules":
					p.warn("mod_register %s: registering and removing accounts are not served; ignored", k)
				default:
					p.warn("mod_register %s is not implemented; ignored", k)
				}
			}
		}
		if name == "mod_offline" {
			p.offlineRule = "max_user_offline_messages"
			p.cfg.Offline.StoreEmptyBody = "unless_chat_state"
		}
		if name == "mod_offline" && opts.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(opts.Content); j += 2 {
				k, o := opts.Content[j].Value, opts.Content[j+1]
				switch {
				case moduleSilent[k]:
				case k == "access_max_user_messages" && o.Kind == yaml.ScalarNode:
					p.offlineRule = o.Value
				case k == "store_empty_body" && (o.Value == "true" || o.Value == "false" || o.Value == "unless_chat_state"):
					p.cfg.Offline.StoreEmptyBody = o.Value
				case k == "store_groupchat" || k == "bounce_groupchat":
					b, err := boolValue(o)
					if err != nil {
						return refuse("mod_offline %s: %v", k, err)
					}
					if k == "store_groupchat" {
						p.cfg.Offline.StoreGroupchat = b
					} else {
						p.cfg.Offline.BounceGroupchat = b
					}
				case k == "use_mam_for_storage" && o.Value == "true":
					return refuse("mod_offline use_mam_for_storage: offline messages kept in the MAM archive are not implemented")
				case k == "use_mam_for_storage":
				default:
					p.warn("mod_offline %s is not implemented; ignored", k)
				}
			}
		}
		if (name == "mod_vcard" || name == "mod_vcard_xupdate" || name == "mod_private" || name == "mod_privacy" || name == "mod_blocking" || name == "mod_carboncopy") && opts.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(opts.Content); j += 2 {
				switch k := opts.Content[j].Value; {
				case moduleSilent[k]:
				case name == "mod_vcard" && (k == "search" || k == "matches" || k == "allow_return_all" || k == "search_all_hosts" || k == "host" || k == "hosts" || k == "name"):
					p.warn("mod_vcard %s: user directory search (XEP-0055) is not served; ignored", k)
				default:
					p.warn("%s %s is not implemented; ignored", name, k)
				}
			}
		}
		if name == "mod_client_state" {
			p.cfg.CSI.Presence, p.cfg.CSI.ChatStates, p.cfg.CSI.PEP = true, true, true
			if opts.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(opts.Content); j += 2 {
					k, o := opts.Content[j].Value, opts.Content[j+1]
					b, err := boolValue(o)
					switch {
					case k != "queue_presence" && k != "queue_chat_states" && k != "queue_pep":
						p.warn("mod_client_state %s is not implemented; ignored", k)
					case err != nil:
						return refuse("mod_client_state %s: %v", k, err)
					case k == "queue_presence":
						p.cfg.CSI.Presence = b
					case k == "queue_chat_states":
						p.cfg.CSI.ChatStates = b
					default:
						p.cfg.CSI.PEP = b
					}
				}
			}
		}
		if name == "mod_pubsub" {
			p.pubsub(opts)
		}
		if name == "mod_disco" {
			p.cfg.DiscoName = "mimmigrate"
			if opts.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(opts.Content); j += 2 {
					if k := opts.Content[j].Value; k == "name" {
						p.cfg.DiscoName = opts.Content[j+1].Value
					} else if !moduleSilent[k] {
						p.warn("mod_disco %s is not implemented; ignored", k)
					}
				}
			}
		}
		if name == "mod_stream_mgmt" {
			if err := p.sm(opts); err != nil {
				return err
			}
		}
		if name == "mod_mam" {
			p.cfg.MAM.Default = "never"
			if err := p.mam(opts); err != nil {
				return err
			}
		}
		if (name == "mod_roster" || name == "mod_last") && opts.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(opts.Content); j += 2 {
				k, o := opts.Content[j].Value, opts.Content[j+1]
				switch {
				case moduleSilent[k]:
				case name == "mod_roster" && (k == "versioning" || k == "store_current_id"):
					b, err := boolValue(o)
					if err != nil {
						return refuse("mod_roster %s: %v", k, err)
					}
					if k == "versioning" {
						p.cfg.Roster.Versioning = b
					} else {
						p.cfg.Roster.StoreCurrentID = b
					}
				default:
					p.warn("%s %s is not implemented; ignored", name, k)
				}
			}
		}
		if name == "mod_ping" {
			p.cfg.Ping = Ping{Interval: time.Minute, AckTimeout: 32 * time.Second, TimeoutAction: "none"}
		}
		if name == "mod_ping" && opts.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(opts.Content); j += 2 {
				k, o := opts.Content[j].Value, opts.Content[j+1]
				switch k {
				case "send_pings":
					b, err := boolValue(o)
					if err != nil {
						return refuse("mod_ping send_pings: %v", err)
					}
					p.cfg.Ping.Send = b
				case "ping_interval", "ping_ack_timeout":
					d, err := duration(o, time.Second)
					if err != nil || d <= 0 || d == time.Duration(math.MaxInt64) {
						return refuse("mod_ping %s %q is not a timeout", k, o.Value)
					}
					if k == "ping_interval" {
						p.cfg.Ping.Interval = d
					} else {
						p.cfg.Ping.AckTimeout = d
					}
				case "timeout_action":
					if o.Value != "none" && o.Value != "kill" {
						return refuse("mod_ping timeout_action %q is not none or kill", o.Value)
					}
					p.cfg.Ping.TimeoutAction = o.Value
				default:
					p.warn("mod_ping %s is not implemented; ignored", k)
				}
			}
		}
		if name == "mod_fail2ban" && opts.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(opts.Content); j += 2 {
				k, o := opts.Content[j].Value, opts.Content[j+1]
				switch k {
				case "c2s_max_auth_failures":
					n, err := intValue(o)
					if err != nil || n <= 0 {
						return refuse("mod_fail2ban c2s_max_auth_failures %q is not a positive number", o.Value)
					}
					p.cfg.Fail2ban.MaxFailures = n
				case "c2s_auth_ban_lifetime":
					d, err := duration(o, time.Second)
					if err != nil {
						return err
					}
					p.cfg.Fail2ban.BanLifetime = d
				default:
					p.warn("mod_fail2ban %s is not implemented; ignored", k)
				}
			}
		}
	}
	return nil
}

// hostConfig: per-host options are not implemented; those that change
// who can log in or where accounts are would be served wrongly.
func (p *parser) hostConfig(name string, v *yaml.Node) error {
	if v.Kind != yaml.MappingNode {
		return refuse("not a mapping of hosts")
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		host, opts := v.Content[i].Value, v.Content[i+1]
		for j := 0; opts.Kind == yaml.MappingNode && j+1 < len(opts.Content); j += 2 {
			k := opts.Content[j].Value
			if strings.HasPrefix(k, "auth_") || strings.HasPrefix(k, "sql_") {
				return refuse("%s for %s sets %s: per-host authentication and databases are not implemented", name, host, k)
			}
		}
		p.warn("%s for %s is not implemented; ignored", name, host)
	}
	return nil
}

func (p *parser) finish(dir string) error {
	c := p.cfg
	names := make([]string, 0, len(p.rules))
	for name := range p.rules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n := p.rules[name]
		switch name {
		case "max_user_sessions":
			c.MaxUserSessions = n
		case p.offlineRule:
			c.Offline.MaxMessages = n
		default:
			p.warn("shaper_rules %s is not implemented; ignored", name)
		}
	}
	if len(c.Hosts) == 0 {
		return refuse("hosts: no virtual host")
	}
	for i, h := range c.Hosts {
		c.Hosts[i] = strings.ToLower(h)
	}
	var files []string
	for _, f := range c.Certfiles {
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, f)
		}
		matches, err := filepath.Glob(f)
		if err != nil || len(matches) == 0 {
			return refuse("certfiles: %s: no such file", f)
		}
		files = append(files, matches...)
	}
	c.Certfiles = files
	if len(c.Listeners) > 0 && len(c.Certfiles) == 0 {
		if !slices.ContainsFunc(c.Listeners, func(l Listener) bool { return l.TLS || l.StartTLSRequired }) {
			return nil
		}
		return refuse("certfiles: a c2s listener needs certificates for TLS")
	}
	return nil
}

func stringList(n *yaml.Node) ([]string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{n.Value}, nil
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, refuse("not a list of strings")
			}
			out = append(out, c.Value)
		}
		return out, nil
	}
	return nil, refuse("not a list of strings")
}

func intValue(n *yaml.Node) (int, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, refuse("not a number")
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		return 0, refuse("%q is not a number", n.Value)
	}
	return v, nil
}

// duration reads ejabberd's timeouts: a number of units, or "N unit"
// (sec, min, hour, day, with plurals and short forms), or infinity.
func duration(n *yaml.Node, unit time.Duration) (time.Duration, error) {
	s := strings.TrimSpace(n.Value)
	if s == "infinity" || s == "infinite" || s == "unlimited" {
		return time.Duration(math.MaxInt64), nil
	}
	if v, err := strconv.Atoi(s); err == nil {
		return time.Duration(v) * unit, nil
	}
	f := strings.Fields(s)
	if len(f) == 1 {
		i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
		if i > 0 {
			f = []string{s[:i], s[i:]}
		}
	}
	if len(f) == 2 {
		v, err := strconv.Atoi(f[0])
		if err == nil {
			u := strings.ToLower(f[1])
			switch {
			case strings.HasPrefix(u, "ms") || strings.HasPrefix(u, "msec") || strings.HasPrefix(u, "milli"):
				return time.Duration(v) * time.Millisecond, nil
			case strings.HasPrefix(u, "s"):
				return time.Duration(v) * time.Second, nil
			case strings.HasPrefix(u, "m"):
				return time.Duration(v) * time.Minute, nil
			case strings.HasPrefix(u, "h"):
				return time.Duration(v) * time.Hour, nil
			case strings.HasPrefix(u, "d"):
				return time.Duration(v) * 24 * time.Hour, nil
			}
		}
	}
	return 0, refuse("%q is not a timeout", s)
}

// sm reads mod_stream_mgmt's options.
func (p *parser) sm(opts *yaml.Node) error {
	sm := &SM{ResumeTimeout: 300 * time.Second, AckTimeout: 60 * time.Second, MaxAckQueue: 5000, ResendOnTimeout: "false"}
	p.cfg.SM = sm
	if opts.Kind != yaml.MappingNode {
		return nil
	}
	for j := 0; j+1 < len(opts.Content); j += 2 {
		k, o := opts.Content[j].Value, opts.Content[j+1]
		switch k {
		case "queue_type", "cache_size", "cache_life_time":
		case "resume_timeout", "max_resume_timeout", "ack_timeout":
			d, err := duration(o, time.Second)
			if err != nil || d < 0 || (k != "ack_timeout" && d == time.Duration(math.MaxInt64)) {
				return refuse("mod_stream_mgmt %s %q is not a timeout", k, o.Value)
			}
			switch k {
			case "resume_timeout":
				sm.ResumeTimeout = d
			case "max_resume_timeout":
				sm.MaxResumeTimeout = d
			default:
				if d == time.Duration(math.MaxInt64) {
					d = 0
				}
				sm.AckTimeout = d
			}
		case "max_ack_queue":
			if o.Value == "infinity" {
				sm.MaxAckQueue = 0
				continue
			}
			n, err := intValue(o)
			if err != nil || n <= 0 {
				return refuse("mod_stream_mgmt max_ack_queue %q is not a positive number", o.Value)
			}
			sm.MaxAckQueue = n
		case "resend_on_timeout":
			switch o.Value {
			case "true", "false", "if_offline":
				sm.ResendOnTimeout = o.Value
			default:
				return refuse("mod_stream_mgmt resend_on_timeout %q is not true, false or if_offline", o.Value)
			}
		default:
			p.warn("mod_stream_mgmt %s is not implemented; ignored", k)
		}
	}
	if sm.MaxResumeTimeout < sm.ResumeTimeout {
		sm.MaxResumeTimeout = sm.ResumeTimeout
	}
	return nil
}

// mam reads mod_mam's options.
func (p *parser) mam(opts *yaml.Node) error {
	if opts.Kind != yaml.MappingNode {
		return nil
	}
	for j := 0; j+1 < len(opts.Content); j += 2 {
		k, o := opts.Content[j].Value, opts.Content[j+1]
		switch k {
		case "db_type", "use_cache", "cache_size", "cache_missed", "cache_life_time":
		case "default":
			switch o.Value {
			case "always", "never", "roster":
				p.cfg.MAM.Default = o.Value
			default:
				return refuse("mod_mam default %q is not always, never or roster", o.Value)
			}
		case "request_activates_archiving":
			b, err := boolValue(o)
			if err != nil {
				return refuse("mod_mam %s: %v", k, err)
			}
			p.cfg.MAM.RequestActivates = b
		case "compress_xml":
			b, err := boolValue(o)
			if err != nil {
				return refuse("mod_mam %s: %v", k, err)
			}
			if b {
				return refuse("mod_mam compress_xml: ejabberd's compressed archive format is not implemented (the archive would hold rows ejabberd and this node read differently)")
			}
		case "access_preferences":
			if o.Value != "all" {
				p.warn("mod_mam access_preferences: access rules are not implemented; every user may change their preferences")
			}
		default:
			p.warn("mod_mam %s is not implemented; ignored", k)
		}
	}
	return nil
}

func boolValue(n *yaml.Node) (bool, error) {
	switch {
	case n.Kind == yaml.ScalarNode && n.Value == "true":
		return true, nil
	case n.Kind == yaml.ScalarNode && n.Value == "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", n.Value)
}

// pubsub reads mod_pubsub's options: PEP is served when its plugins
// include pep; the pubsub service of the other plugins is not.
func (p *parser) pubsub(opts *yaml.Node) {
	plugins := []string{"flat"}
	if opts.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(opts.Content); j += 2 {
			k, o := opts.Content[j].Value, opts.Content[j+1]
			switch {
			case moduleSilent[k]:
			case k == "plugins" && o.Kind == yaml.SequenceNode:
				plugins = nil
				for _, c := range o.Content {
					plugins = append(plugins, c.Value)
				}
			default:
				p.warn("mod_pubsub %s is not implemented; ignored", k)
			}
		}
	}
	for _, pl := range plugins {
		if pl == "pep" {
			p.cfg.PubSub.PEP = true
		} else {
			p.warn("mod_pubsub plugin %s: the pubsub service (pubsub.HOST) is not implemented, only PEP; ignored", pl)
		}
	}
}
