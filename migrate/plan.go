// Package migrate moves Mnesia data into SQL: a source yields tables and
// their records (migrate/source), a schema's mapper turns one record into
// row operations (migrate/ejabberd, migrate/mongooseim, over the shared
// readers of migrate/records and the encoders of migrate/codec), a sink
// writes the rows (migrate/sink), and migrate/verify compares both ends.
// This package is the engine between them; it knows no table by name.
package migrate

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/ejabberd"
	"github.com/mimmigrate/mimmigrate/migrate/mongooseim"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// Schemas are the target schemas, by name.
var Schemas = []schema.Schema{ejabberd.Single, ejabberd.Multihost, mongooseim.Schema{}}

// SchemaByName finds a target schema.
func SchemaByName(name string) (schema.Schema, error) {
	var names []string
	for _, s := range Schemas {
		if s.Name() == name {
			return s, nil
		}
		names = append(names, s.Name())
	}
	return nil, &InputError{Msg: fmt.Sprintf("unknown schema %q (known: %s)", name, strings.Join(names, ", "))}
}

// Source is where records come from: a Mnesia directory, a backup, a
// dump, or a live node.
type Source interface {
	// Identity names the data (kind, place, and for files a fingerprint):
	// a checkpoint is resumed only by the same identity.
	Identity() string
	// Positional: the source gives the same records in the same order every
	// time (files that did not change), so an export can resume after the
	// last record it committed. A live node is not positional: an unfinished
	// table is exported again from its start.
	Positional() bool
	// Tables lists the tables that hold data, with a record count estimate
	// (-1 when unknown).
	Tables() map[string]int64
	// Stream reads the named tables and calls fn with each record (its
	// term_to_binary, valid during the call). fn may be called from several
	// goroutines, but never for one table from two at once.
	Stream(ctx context.Context, tables []string, fn func(table string, rec []byte) error) error
}

// InputError is a request the source or schema cannot serve (a table it
// does not have, a host it does not serve): bad input.
type InputError struct{ Msg, Hint string }

func (e *InputError) Error() string { return e.Msg }

// Plan is what an export or verify covers.
type Plan struct {
	Tables   []schema.Table
	Volatile []string // tables skipped as running state
	Unmapped []string // tables with data the schema has no mapping for
	Optional []string // mapped tables left out unless named
}

// MakePlan decides which of a source's tables are exported: the named
// ones (tables), or every mapped table but the optional ones.
func MakePlan(src Source, sc schema.Schema, tables []string) (Plan, error) {
	var p Plan
	have := src.Tables()
	byName := map[string]schema.Table{}
	for _, t := range sc.Tables() {
		byName[t.Name] = t
	}
	named := map[string]bool{}
	for _, t := range tables {
		if _, ok := byName[t]; !ok {
			if what, vol := mnesia.Volatile("", t); vol {
				return p, &InputError{Msg: fmt.Sprintf("table %s holds only running state (%s): nothing to export", t, what)}
			}
			return p, &InputError{Msg: fmt.Sprintf("table %s has no SQL mapping", t)}
		}
		if _, ok := have[t]; !ok {
			return p, &InputError{Msg: fmt.Sprintf("the source has no table %s", t)}
		}
		named[t] = true
	}
	for _, t := range sc.Tables() {
		if _, ok := have[t.Name]; !ok {
			continue
		}
		switch {
		case len(named) > 0 && !named[t.Name]:
		case len(named) == 0 && t.Optional:
			p.Optional = append(p.Optional, t.Name)
		default:
			p.Tables = append(p.Tables, t)
		}
	}
	for name := range have {
		if _, ok := byName[name]; ok {
			continue
		}
		if _, vol := mnesia.Volatile("", name); vol {
			p.Volatile = append(p.Volatile, name)
		} else {
			p.Unmapped = append(p.Unmapped, name)
		}
	}
	sort.Strings(p.Volatile)
	sort.Strings(p.Unmapped)
	return p, nil
}

// Hosted is a source that knows its virtual hosts and services from its
// configuration (a live ejabberd node).
type Hosted interface {
	VirtualHosts() []string
	Services() map[string]string
}

// ResolveScope decides what an export covers: the virtual hosts asked for
// (none: every one, or for a single-host schema the only one there is),
// checked against those the source serves — the servers of its users
// (passwd's keys; roster's when there is no passwd) and, for a live node,
// its configuration — and the service mapping (given ones first).
func ResolveScope(ctx context.Context, src Source, sc schema.Schema, hosts []string, services map[string]string) (*schema.Scope, error) {
	known, err := VirtualHosts(ctx, src)
	if err != nil {
		return nil, err
	}
	svcs := map[string]string{}
	for k, v := range services {
		svcs[k] = v
	}
	if h, ok := src.(Hosted); ok {
		known = mergeHosts(known, h.VirtualHosts())
		for svc, vh := range h.Services() {
			if _, given := svcs[svc]; !given {
				svcs[svc] = vh
			}
		}
	}
	if len(known) > 0 {
		for _, h := range hosts {
			if !slices.Contains(known, h) {
				return nil, &InputError{Msg: fmt.Sprintf("the source serves no virtual host %s", h),
					Hint: "it serves " + strings.Join(known, ", ")}
			}
		}
	}
	if sc.SingleHost() {
		switch {
		case len(hosts) > 1:
			return nil, &InputError{Msg: fmt.Sprintf("the %s schema holds one virtual host: give one host", sc.Name()),
				Hint: "or use the ejabberd-multihost schema"}
		case len(hosts) == 0 && len(known) > 1:
			return nil, &InputError{Msg: fmt.Sprintf("the source serves %d virtual hosts (%s); the %s schema holds one", len(known), strings.Join(known, ", "), sc.Name()),
				Hint: "pick one host, or use the ejabberd-multihost schema"}
		case len(hosts) == 0 && len(known) == 1:
			hosts = known
		}
	}
	return schema.NewScope(hosts, known, svcs), nil
}

// VirtualHosts lists the virtual hosts a source's users belong to (the
// servers of passwd's keys; of roster's when there is no passwd).
func VirtualHosts(ctx context.Context, src Source) ([]string, error) {
	have := src.Tables()
	table := "passwd"
	if _, ok := have[table]; !ok {
		table = "roster"
		if _, ok := have[table]; !ok {
			return nil, nil
		}
	}
	seen := map[string]bool{}
	err := src.Stream(ctx, []string{table}, func(_ string, rec []byte) error {
		k, err := term.Element(rec, 2)
		if err != nil {
			return nil
		}
		kv, err := term.Decode(append([]byte{131}, k...))
		if err != nil {
			return nil
		}
		if tu, ok := kv.(term.Tuple); ok && len(tu) >= 2 {
			if s, ok := term.Text(tu[1]); ok {
				seen[s] = true
			}
		}
		return nil
	})
	out := make([]string, 0, len(seen))
	for h := range seen {
		out = append(out, h)
	}
	sort.Strings(out)
	return out, err
}

func mergeHosts(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, h := range append(append([]string(nil), a...), b...) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}
