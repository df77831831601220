package config

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Caller calls functions on an Erlang node (an erldist connection).
type Caller interface {
	Call(ctx context.Context, mod, fun term.Atom, args ...term.Term) (term.Term, error)
}

// FromEjabberd reads a running ejabberd's effective options (defaults
// applied, macros expanded) and writes the ejabberd.yml the Go nodes take
// over with: the same hosts, c2s ports, certificates, authentication and
// limits; the modules it runs are listed so that the Go node names those
// it does not implement. Notes say what was not carried over.
func FromEjabberd(ctx context.Context, c Caller, source string) (yml []byte, notes []string, err error) {
	call := func(fun string, args ...term.Term) (term.Term, error) {
		v, err := c.Call(ctx, "ejabberd_option", term.Atom(fun), args...)
		if err != nil {
			return nil, fmt.Errorf("ejabberd_option:%s: %w", fun, err)
		}
		return v, nil
	}
	doc := &mapping{}
	hostsT, err := call("hosts")
	if err != nil {
		return nil, nil, err
	}
	hosts := texts(hostsT)
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("the node reports no hosts: is it ejabberd?")
	}
	doc.add("hosts", hosts)
	if v, err := call("certfiles"); err == nil && len(texts(v)) > 0 {
		doc.add("certfiles", texts(v))
	} else {
		notes = append(notes, "the node has no certfiles: add the certificates of its hosts (the Go nodes serve c2s over TLS only)")
	}
	if v, err := call("language"); err == nil {
		if s, ok := term.Text(v); ok {
			doc.add("language", s)
		}
	}
	if v, err := call("negotiation_timeout"); err == nil {
		if ms, ok := term.Int(v); ok {
			doc.add("negotiation_timeout", int(time.Duration(ms)*time.Millisecond/time.Second))
		}
	}
	listeners, lnotes, err := c2sListeners(call)
	if err != nil {
		return nil, nil, err
	}
	notes = append(notes, lnotes...)
	if len(listeners) > 0 {
		doc.add("listen", listeners)
	}
	h := term.Binary(hosts[0])
	if len(hosts) > 1 {
		notes = append(notes, fmt.Sprintf("per-host options were read from %s, the first host", hosts[0]))
	}
	if v, err := call("auth_method", h); err == nil {
		methods := texts(v)
		doc.add("auth_method", "sql")
		if !slices.Equal(methods, []string{"sql"}) {
			notes = append(notes, fmt.Sprintf("auth_method was %v: the Go nodes serve the accounts exported into SQL", methods))
		}
	}
	for _, opt := range []string{"auth_password_format", "auth_scram_hash", "resource_conflict"} {
		if v, err := call(opt, h); err == nil {
			if s, ok := term.Text(v); ok {
				doc.add(opt, s)
			}
		}
	}
	if v, err := call("disable_sasl_mechanisms", h); err == nil {
		if m := texts(v); len(m) > 0 {
			doc.add("disable_sasl_mechanisms", m)
		}
	}
	if v, err := call("shaper_rules"); err == nil {
		rules, _ := term.Elems(v)
		for _, r := range rules {
			tu, ok := r.(term.Tuple)
			if !ok || len(tu) != 2 || !term.IsAtom(tu[0], "max_user_sessions") {
				continue
			}
			if n, ok := allRule(tu[1]); ok {
				doc.add("shaper_rules", &mapping{pairs: []pair{{"max_user_sessions", n}}})
			} else {
				notes = append(notes, "max_user_sessions depends on access lists: not carried over (sessions are not limited)")
			}
		}
	}
	sqlType, _ := call("sql_type", h)
	if t, _ := term.Text(sqlType); t == "pgsql" {
		doc.add("sql_type", "pgsql")
		for _, opt := range []string{"sql_server", "sql_port", "sql_database", "sql_username", "sql_password", "sql_ssl", "sql_ssl_verify", "sql_pool_size"} {
			v, err := call(opt, h)
			if err != nil || term.IsAtom(v, "undefined") {
				continue
			}
			if n, ok := term.Int(v); ok {
				doc.add(opt, int(n))
			} else if b, ok := term.Bool(v); ok {
				doc.add(opt, b)
			} else if s, ok := term.Text(v); ok {
				doc.add(opt, s)
			}
		}
	} else {
		notes = append(notes, "the node keeps no PostgreSQL database: set sql_server, sql_database and the other sql_* options to the database you exported into (or pass --db to node start)")
	}
	modules, err := c.Call(ctx, "gen_mod", "loaded_modules", h)
	if err != nil {
		return nil, nil, fmt.Errorf("gen_mod:loaded_modules: %w", err)
	}
	mods := &mapping{}
	names := texts(modules)
	sort.Strings(names)
	for _, m := range names {
		if m != "mod_fail2ban" && m != "mod_roster" && m != "mod_pubsub" {
			mods.add(m, &mapping{})
			continue
		}
		opts := &mapping{}
		if v, err := c.Call(ctx, "gen_mod", "get_module_opts", h, term.Atom(m)); err == nil {
			if mp, ok := v.(term.Map); ok {
				for _, p := range mp {
					k, _ := term.Text(p.Key)
					n, isInt := term.Int(p.Value)
					b, isBool := term.Bool(p.Value)
					switch {
					case k == "c2s_max_auth_failures" && isInt:
						opts.add(k, int(n))
					case k == "c2s_auth_ban_lifetime" && isInt:
						opts.add(k, int(time.Duration(n)*time.Millisecond/time.Second))
					case (k == "versioning" || k == "store_current_id") && isBool:
						opts.add(k, b)
					case k == "plugins":
						// mod_pubsub: PEP is served when pep is there.
						if l, ok := p.Value.(term.List); ok {
							var plugins []string
							for _, x := range l {
								if t, ok := term.Text(x); ok {
									plugins = append(plugins, t)
								}
							}
							opts.add(k, plugins)
						}
					}
				}
			}
		}
		mods.add(m, opts)
	}
	doc.add("modules", mods)

	var node yaml.Node
	if err := node.Encode(doc); err != nil {
		return nil, nil, err
	}
	node.HeadComment = fmt.Sprintf("Written by mimmigrate node config from %s at %s:\nthe options of the legacy node the Go nodes implement, for\n`mimmigrate node start --config`.", source, time.Now().UTC().Format(time.RFC3339))
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return nil, nil, err
	}
	enc.Close()
	return b.Bytes(), notes, nil
}

// c2sListeners reads ejabberd_option:listen(): {{Port, IP, Transport},
// Module, Opts}.
func c2sListeners(call func(string, ...term.Term) (term.Term, error)) ([]*mapping, []string, error) {
	v, err := call("listen")
	if err != nil {
		return nil, nil, err
	}
	ls, _ := term.Elems(v)
	var out []*mapping
	var notes []string
	for _, l := range ls {
		tu, ok := l.(term.Tuple)
		if !ok || len(tu) != 3 {
			continue
		}
		key, ok := tu[0].(term.Tuple)
		if !ok || len(key) != 3 {
			continue
		}
		port, _ := term.Int(key[0])
		module, _ := term.Text(tu[1])
		if module != "ejabberd_c2s" {
			notes = append(notes, fmt.Sprintf("listener %s on port %d is not carried over (the Go nodes serve c2s)", module, port))
			continue
		}
		opts, _ := tu[2].(term.Map)
		get := func(k string) term.Term {
			for _, p := range opts {
				if term.IsAtom(p.Key, term.Atom(k)) {
					return p.Value
				}
			}
			return nil
		}
		m := &mapping{}
		m.add("port", int(port))
		m.add("ip", ipText(key[1]))
		m.add("module", "ejabberd_c2s")
		if n, ok := term.Int(get("max_stanza_size")); ok {
			m.add("max_stanza_size", int(n))
		} else {
			m.add("max_stanza_size", "infinity")
		}
		tls, _ := term.Bool(get("tls"))
		starttls, _ := term.Bool(get("starttls"))
		required, _ := term.Bool(get("starttls_required"))
		switch {
		case tls:
			m.add("tls", true)
		default:
			// The Go nodes always offer STARTTLS, and require it unless
			// told otherwise: say what the legacy node did.
			m.add("starttls", true)
			m.add("starttls_required", required)
			if !starttls && !required {
				notes = append(notes, fmt.Sprintf("the c2s listener on port %d had no TLS: the Go nodes offer STARTTLS there (not required, as before)", port))
			}
		}
		for _, k := range []string{"ciphers", "protocol_options"} {
			if v := get(k); v != nil && !term.IsAtom(v, "undefined") {
				if s, ok := term.Text(v); ok {
					m.add(k, s)
				} else if l := texts(v); len(l) > 0 {
					m.add(k, l)
				}
			}
		}
		for _, k := range []string{"shaper", "access"} {
			if v := get(k); v != nil && !term.IsAtom(v, "none") && !term.IsAtom(v, "all") {
				s, _ := term.Text(v)
				notes = append(notes, fmt.Sprintf("the c2s listener on port %d: %s %s is not carried over", port, k, s))
			}
		}
		out = append(out, m)
	}
	return out, notes, nil
}

func ipText(t term.Term) string {
	tu, ok := t.(term.Tuple)
	if !ok {
		return "::"
	}
	b := make([]byte, 0, 16)
	switch len(tu) {
	case 4:
		for _, x := range tu {
			n, _ := term.Int(x)
			b = append(b, byte(n))
		}
	case 8:
		for _, x := range tu {
			n, _ := term.Int(x)
			b = append(b, byte(n>>8), byte(n))
		}
	default:
		return "::"
	}
	a, _ := netip.AddrFromSlice(b)
	return a.String()
}

// allRule reads a shaper rule that gives one value to all: [{N, [{acl, all}]}]
// or a bare number.
func allRule(t term.Term) (any, bool) {
	if n, ok := term.Int(t); ok {
		return int(n), true
	}
	if term.IsAtom(t, "infinity") {
		return "infinity", true
	}
	l, _ := term.Elems(t)
	if len(l) != 1 {
		return nil, false
	}
	tu, ok := l[0].(term.Tuple)
	if !ok || len(tu) != 2 {
		return nil, false
	}
	cond, _ := term.Elems(tu[1])
	if len(cond) != 1 {
		return nil, false
	}
	if c, ok := cond[0].(term.Tuple); !ok || len(c) != 2 || !term.IsAtom(c[0], "acl") || !term.IsAtom(c[1], "all") {
		if !term.IsAtom(cond[0], "all") {
			return nil, false
		}
	}
	return allRule(tu[0])
}

func texts(t term.Term) []string {
	l, _ := term.Elems(t)
	out := make([]string, 0, len(l))
	for _, e := range l {
		if s, ok := term.Text(e); ok {
			out = append(out, s)
		}
	}
	return out
}

// mapping is an ordered YAML mapping.
type mapping struct{ pairs []pair }

type pair struct {
	k string
	v any
}

func (m *mapping) add(k string, v any) { m.pairs = append(m.pairs, pair{k, v}) }

// MarshalYAML keeps the keys in order.
func (m *mapping) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	if len(m.pairs) == 0 {
		n.Style = yaml.FlowStyle
	}
	for _, p := range m.pairs {
		var v yaml.Node
		if err := v.Encode(p.v); err != nil {
			return nil, err
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: p.k}, &v)
	}
	return n, nil
}
