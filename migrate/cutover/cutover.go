package cutover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mimmigrate/mimmigrate/cetsnode"
	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/delta"
)

// Config is one cutover.
type Config struct {
	// Source is the legacy node sync follows ("node:NAME"), Legacy its
	// cluster, inspected.
	Source   string
	Snapshot *mnesia.Snapshot
	Session  *mnesia.Session
	DB       *pgxpool.Pool
	// Nodes are the Go nodes; Admin calls them.
	Nodes []string
	Admin GoNodes
	// MaxLag: the sync's lag at most for the preflight (default 5 s).
	MaxLag time.Duration
	// Announce is sent to the online users before their sessions close.
	Announce string
	// StopLegacy stops the legacy nodes at the end.
	StopLegacy bool
	Timeout    time.Duration
	// PreVerify compares every table while the legacy cluster still
	// serves, once sync notes the keys that change, and adds the keys
	// that differ to those noted. Verify, after the drain, compares the
	// noted keys (every table when PreVerify is nil); it returns the
	// number of rows that differ.
	PreVerify func(ctx context.Context) error
	Verify    func(ctx context.Context) (int64, error)
	// Confirm is asked before each step that changes something.
	Confirm func(step, what string) bool
	// Print says what happens.
	Print func(format string, args ...any)
}

// GoNodes is what the cutover asks of the Go nodes (cetsnode.Admin).
type GoNodes interface {
	Call(ctx context.Context, node, module, fn string, args ...term.Term) (term.Term, error)
	Status(ctx context.Context, node string) (cetsnode.Status, error)
}

// NodeInfo is what a Go node's XMPP service says of itself.
type NodeInfo struct {
	Node                string
	Hosts               []string
	Serving, Standby    bool
	Listeners           []string
	Addresses           []string
	CertificateProblems []string
}

// Refusal is a check that failed: the cutover does not go on.
type Refusal struct{ Msg, Hint string }

func (e *Refusal) Error() string { return e.Msg }

// Info asks a Go node's XMPP service.
func Info(ctx context.Context, g GoNodes, node string) (*NodeInfo, error) {
	v, err := g.Call(ctx, node, "mimmigrate_xmpp", "info")
	if err != nil {
		return nil, err
	}
	in := &NodeInfo{Node: node}
	items, _ := term.Elems(v)
	texts := func(t term.Term) []string {
		var out []string
		l, _ := term.Elems(t)
		for _, x := range l {
			if s, ok := term.Text(x); ok {
				out = append(out, s)
			}
		}
		return out
	}
	for _, it := range items {
		tu, ok := it.(term.Tuple)
		if !ok || len(tu) != 2 {
			continue
		}
		k, _ := term.Text(tu[0])
		switch k {
		case "hosts":
			in.Hosts = texts(tu[1])
		case "serving":
			in.Serving = term.IsAtom(tu[1], "true") || tu[1] == true
		case "standby":
			in.Standby = term.IsAtom(tu[1], "true") || tu[1] == true
		case "listeners":
			in.Listeners = texts(tu[1])
		case "addresses":
			in.Addresses = texts(tu[1])
		case "certificate_problems":
			in.CertificateProblems = texts(tu[1])
		}
	}
	return in, nil
}

// legacyHosts are the virtual hosts the legacy nodes serve.
func legacyHosts(ctx context.Context, c *erldist.Conn) ([]string, error) {
	v, err := c.Call(ctx, "ejabberd_option", "hosts")
	if err != nil {
		return nil, err
	}
	var out []string
	l, _ := term.Elems(v)
	for _, h := range l {
		if s, ok := term.Text(h); ok {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (cfg *Config) running() []string {
	return cfg.Snapshot.Cluster.RunningDBNodes
}

func (cfg *Config) call(ctx context.Context, node string, mod, fn term.Atom, args ...term.Term) (term.Term, error) {
	c := cfg.Session.Conn(node)
	if c == nil {
		return nil, fmt.Errorf("%s is not connected", node)
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	return c.Call(cctx, mod, fn, args...)
}

// Preflight checks that the cutover can go: the legacy cluster has no
// critical problem; the Go nodes are up, clustered, serve the legacy
// virtual hosts with certificates for them and do not serve yet; sync
// runs, live, with a lag under MaxLag. It returns what it checked, one
// line each, and the first failure as a *Refusal.
func Preflight(ctx context.Context, cfg *Config) ([]string, []*NodeInfo, error) {
	var done []string
	ok := func(format string, args ...any) { done = append(done, fmt.Sprintf(format, args...)) }
	for _, d := range cfg.Snapshot.Diagnostics {
		if d.Severity == mnesia.SevCritical {
			return done, nil, &Refusal{Msg: "the legacy cluster has a critical problem: " + d.Message, Hint: d.Fix}
		}
	}
	ok("legacy cluster: %d running node(s), no critical problem", len(cfg.running()))
	c := cfg.Session.Conn(cfg.Snapshot.Target)
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	hosts, err := legacyHosts(cctx, c)
	cancel()
	if err != nil {
		return done, nil, fmt.Errorf("reading the legacy virtual hosts: %w", err)
	}
	var infos []*NodeInfo
	for _, n := range cfg.Nodes {
		cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		in, err := Info(cctx, cfg.Admin, n)
		cancel()
		if err != nil {
			return done, nil, &Refusal{Msg: fmt.Sprintf("the Go node %s does not answer as an XMPP node: %v", n, err),
				Hint: "start it with `mimmigrate node start --config ejabberd.yml --standby`"}
		}
		for _, h := range hosts {
			if !slices.Contains(in.Hosts, h) {
				return done, nil, &Refusal{Msg: fmt.Sprintf("the Go node %s does not serve the virtual host %s", n, h),
					Hint: "give it the legacy configuration (`mimmigrate node config --from node:…`)"}
			}
		}
		if len(in.CertificateProblems) > 0 {
			return done, nil, &Refusal{Msg: fmt.Sprintf("the Go node %s: %s", n, strings.Join(in.CertificateProblems, "; ")),
				Hint: "give it certificates for every virtual host (certfiles)"}
		}
		infos = append(infos, in)
	}
	ok("Go nodes: %s answer, serve %s, certificates cover every host", strings.Join(cfg.Nodes, ", "), strings.Join(hosts, ", "))
	cctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
	cs, err := cfg.Admin.Status(cctx, cfg.Nodes[0])
	cancel()
	if err != nil {
		return done, nil, err
	}
	for _, n := range cfg.Nodes[1:] {
		if !slices.Contains(cs.AvailableNodes, n) {
			return done, nil, &Refusal{Msg: fmt.Sprintf("the Go nodes %s and %s are not one cluster", cfg.Nodes[0], n),
				Hint: "check `mimmigrate cluster status --node " + cfg.Nodes[0] + "`"}
		}
	}
	if len(cfg.Nodes) > 1 {
		ok("Go nodes are one cluster")
	}
	st, err := delta.ReadStatus(ctx, cfg.DB, cfg.Source)
	if err != nil {
		return done, nil, err
	}
	switch {
	case st == nil:
		return done, nil, &Refusal{Msg: "no sync of " + cfg.Source + " has run against this database",
			Hint: "start `mimmigrate sync --from " + cfg.Source + " …` and let it go live"}
	case st.Phase != "live" || time.Since(st.UpdatedAt) > 10*time.Second:
		return done, nil, &Refusal{Msg: fmt.Sprintf("the sync of %s is not running live (it said %q %s ago)", cfg.Source, st.Phase, time.Since(st.UpdatedAt).Round(time.Second)),
			Hint: "start `mimmigrate sync` and wait for the live phase"}
	case time.Duration(st.LagSeconds*float64(time.Second)) > cfg.MaxLag:
		return done, nil, &Refusal{Msg: fmt.Sprintf("the sync lags %.1f s behind (at most %s)", st.LagSeconds, cfg.MaxLag),
			Hint: "wait until it catches up, or raise --max-lag"}
	}
	ok("sync: live, lag %.2f s, %d changes applied", st.LagSeconds, st.Applied)
	return done, infos, nil
}

// Run runs the cutover from where its state stands.
func Run(ctx context.Context, cfg *Config) (*State, error) {
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = 5 * time.Second
	}
	nodes := strings.Join(cfg.Nodes, ",")
	st, err := Read(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	if st != nil && st.Step != StepAborted && (st.Source != cfg.Source || st.Nodes != nodes) && st.Step != StepNone {
		return st, &Refusal{Msg: fmt.Sprintf("this database holds a cutover from %s to %s (at %s)", st.Source, st.Nodes, st.Step),
			Hint: "run it with the same --from and --nodes, or `mimmigrate cutover abort` first"}
	}
	if st != nil && st.Step == StepAborted {
		if _, err := cfg.DB.Exec(ctx, `DELETE FROM `+StateTable); err != nil {
			return nil, err
		}
		st = nil
	}
	step := func(name, what string, run func() (string, error)) error {
		if st.Done(name) {
			cfg.Print("= %s: done before", what)
			return nil
		}
		if cfg.Confirm != nil && !cfg.Confirm(name, what) {
			return &Refusal{Msg: "not confirmed: the cutover stops before " + what, Hint: "the same command goes on from here; `cutover abort` undoes what was done"}
		}
		cfg.Print("> %s", what)
		began := time.Now()
		extra, err := run()
		if err != nil {
			return err
		}
		cfg.Print("  (%.2f s)", time.Since(began).Seconds())
		if err := record(ctx, cfg.DB, cfg.Source, nodes, name, extra); err != nil {
			return err
		}
		st, err = Read(ctx, cfg.DB)
		return err
	}
	var infos []*NodeInfo
	// The preflight runs every time until the logins are closed.
	if !st.Done(StepLoginsClosed) {
		lines, in, err := Preflight(ctx, cfg)
		for _, l := range lines {
			cfg.Print("  ok  %s", l)
		}
		if err != nil {
			return st, err
		}
		infos = in
		if !st.Done(StepPreflight) {
			if err := record(ctx, cfg.DB, cfg.Source, nodes, StepPreflight, ""); err != nil {
				return st, err
			}
			if st, err = Read(ctx, cfg.DB); err != nil {
				return st, err
			}
		}
	}
	err = step(StepPreverified, "compare every table while the legacy cluster serves; from now on sync notes every key that changes", func() (string, error) {
		if cfg.PreVerify == nil {
			cfg.Print("  skipped: every table is compared after the drain")
			return "", nil
		}
		if err := delta.NoteChanges(ctx, cfg.DB, cfg.Source, 30*time.Second); err != nil {
			return "", &Refusal{Msg: "sync cannot note the keys that change: " + err.Error(), Hint: "run `mimmigrate sync` of this version; the same cutover command goes on"}
		}
		return "", cfg.PreVerify(ctx)
	})
	if err != nil {
		return st, err
	}
	err = step(StepLoginsClosed, "stop the legacy listeners, tell the online users, close their sessions", func() (string, error) {
		return ", logins_stopped_at = now()", closeLogins(ctx, cfg)
	})
	if err != nil {
		return st, err
	}
	err = step(StepDrained, "wait until sync has applied every change", func() (string, error) {
		return "", drain(ctx, cfg, *st.LoginsStoppedAt)
	})
	if err != nil {
		return st, err
	}
	what := "verify what changed since the comparison against the legacy cluster"
	if cfg.PreVerify == nil {
		what = "verify every table against the legacy cluster"
	}
	err = step(StepVerified, what, func() (string, error) {
		n, err := cfg.Verify(ctx)
		if err != nil {
			return "", err
		}
		if n > 0 {
			return "", &Refusal{Msg: fmt.Sprintf("verify found %d rows that differ: the Go nodes are not marked ready", n),
				Hint: "see `mimmigrate verify`; `cutover abort` reopens the legacy listeners"}
		}
		return "", nil
	})
	if err != nil {
		return st, err
	}
	err = step(StepReady, "mark the Go nodes ready: they open their c2s listeners and /healthz turns 200", func() (string, error) {
		for _, n := range cfg.Nodes {
			cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			v, err := cfg.Admin.Call(cctx, n, "mimmigrate_xmpp", "serve")
			cancel()
			if err != nil {
				return "", err
			}
			if !term.IsAtom(v, "ok") {
				return "", fmt.Errorf("%s could not open its listeners: %s", n, term.Format(v))
			}
		}
		return ", ready_at = now()", nil
	})
	if err != nil {
		return st, err
	}
	// The Go nodes serve: sync need not note changes any more.
	if err := delta.StopNoting(ctx, cfg.DB, cfg.Source); err != nil {
		cfg.Print("  sync could not be told to stop noting changes: %v", err)
	}
	if infos == nil {
		for _, n := range cfg.Nodes {
			if in, err := Info(ctx, cfg.Admin, n); err == nil {
				infos = append(infos, in)
			}
		}
	}
	for _, in := range infos {
		cfg.Print("  %s serves c2s on %s", in.Node, strings.Join(in.Listeners, ", "))
	}
	if cfg.StopLegacy {
		err = step(StepLegacyDown, "stop the legacy nodes (their Mnesia directories stay as they are)", func() (string, error) {
			for _, n := range cfg.running() {
				cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
				c := cfg.Session.Conn(n)
				if c != nil {
					c.Call(cctx, "init", "stop")
				}
				cancel()
			}
			return "", nil
		})
	}
	return st, err
}

// closeLogins stops every legacy node's listeners (as ejabberdctl
// stop_kindly does first), announces, and closes the remaining sessions
// (ejabberd re-routes what stream management had not acknowledged into
// offline storage, which sync carries over).
func closeLogins(ctx context.Context, cfg *Config) error {
	for _, n := range cfg.running() {
		if _, err := cfg.call(ctx, n, "ejabberd_listener", "stop_listeners"); err != nil {
			return fmt.Errorf("stopping the listeners of %s: %w", n, err)
		}
		cfg.Print("  %s: listeners stopped", n)
	}
	c := cfg.Session.Conn(cfg.Snapshot.Target)
	if cfg.Announce != "" {
		cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		_, err := c.Eval(cctx, `[mod_announce:send_announcement_to_all(H, <<"Server move">>, Text) || H <- lists:sublist(ejabberd_option:hosts(), 1)], ok`,
			map[string]term.Term{"Text": term.Binary(cfg.Announce)})
		cancel()
		if err != nil {
			cfg.Print("  the announcement could not be sent: %v", err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	v, err := c.Eval(cctx, `S = ejabberd_sm:dirty_get_sessions_list(), [ejabberd_sm:route(jid:make(U, H, R), {exit, <<"The server moves">>}) || {U, H, R} <- S], length(S)`, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("closing the sessions: %w", err)
	}
	cfg.Print("  %s sessions closed", term.Format(v))
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		v, err := cfg.call(ctx, cfg.Snapshot.Target, "ejabberd_sm", "connected_users_number")
		if err == nil {
			if n, _ := term.Int(v); n == 0 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("sessions were still open 30 s after they were told to close")
}

// drain waits until sync reports, after the logins closed, nothing left
// to apply twice in a row.
func drain(ctx context.Context, cfg *Config, since time.Time) error {
	deadline := time.Now().Add(2 * time.Minute)
	quiet := 0
	var last time.Time
	for time.Now().Before(deadline) {
		st, err := delta.ReadStatus(ctx, cfg.DB, cfg.Source)
		if err != nil {
			return err
		}
		if st == nil || st.Phase != "live" {
			return &Refusal{Msg: "sync stopped during the drain", Hint: "start it again; the same cutover command goes on"}
		}
		if st.UpdatedAt.After(since) && st.UpdatedAt != last {
			last = st.UpdatedAt
			if st.LagEvents == 0 {
				quiet++
			} else {
				quiet = 0
			}
			if quiet >= 2 {
				cfg.Print("  sync: %d changes applied, nothing left", st.Applied)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("sync did not drain within 2 minutes")
}

// Abort undoes a cutover that has not made the Go nodes serve: the legacy
// listeners start again.
func Abort(ctx context.Context, cfg *Config) (*State, error) {
	st, err := Read(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	switch {
	case st == nil || st.Step == StepAborted:
		return st, &Refusal{Msg: "there is no cutover to abort"}
	case st.Done(StepReady):
		return st, &Refusal{Msg: "the Go nodes serve already: a cutover is not aborted after that",
			Hint: "the way back is ejabberd on the same database (docs/cutover.md)"}
	}
	if st.Done(StepLoginsClosed) {
		for _, n := range cfg.running() {
			if _, err := cfg.call(ctx, n, "ejabberd_listener", "start_listeners"); err != nil {
				return st, fmt.Errorf("starting the listeners of %s again: %w", n, err)
			}
			cfg.Print("  %s: listeners started", n)
		}
	}
	if err := delta.StopNoting(ctx, cfg.DB, cfg.Source); err != nil {
		return st, err
	}
	if _, err := cfg.DB.Exec(ctx, `UPDATE `+StateTable+` SET step = $1, updated_at = now()`, StepAborted); err != nil {
		return st, err
	}
	return Read(ctx, cfg.DB)
}
