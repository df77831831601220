package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode"
	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/migrate/cutover"
	"github.com/mimmigrate/mimmigrate/migrate/delta"
	"github.com/mimmigrate/mimmigrate/migrate/sink"
	"github.com/mimmigrate/mimmigrate/migrate/source"
	"github.com/mimmigrate/mimmigrate/migrate/verify"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// CutoverCmd is `cutover`.
type CutoverCmd struct {
	Run    CutoverRunCmd    `cmd:"" default:"withargs" help:"Move the users to the Go nodes (the default): preflight, close the legacy logins, drain the sync, verify, mark the Go nodes ready."`
	Status CutoverStatusCmd `cmd:"" help:"Where the cutover of a database stands."`
	Abort  CutoverAbortCmd  `cmd:"" help:"Undo a cutover that has not made the Go nodes serve: the legacy listeners start again."`
}

// CutoverRunCmd is `cutover [run]`.
type CutoverRunCmd struct {
	exportFlags
	To              string        `required:"" env:"MIMMIGRATE_DB" placeholder:"URL" help:"The database sync keeps in step (postgres://…). A password in the URL is never printed."`
	Nodes           []string      `required:"" sep:"," placeholder:"NODE,NODE" help:"The Go nodes (mimmigrate node start --standby) that take the users."`
	NodesCookieFile string        `name:"nodes-cookie-file" type:"path" help:"The Go nodes' Erlang cookie, when it is not the legacy cluster's."`
	MaxLag          time.Duration `name:"max-lag" default:"5s" help:"The sync's lag at most for the preflight."`
	FullVerify      bool          `name:"full-verify" help:"Compare every table after the drain, while the logins are closed (minutes on a large cluster), instead of comparing them while the legacy cluster serves and, after the drain, only the keys that changed since."`
	Announce        string        `default:"The server is moving: reconnect in a few seconds." help:"Sent to the online users before their sessions close (empty: nothing)."`
	StopLegacy      bool          `name:"stop-legacy" help:"Stop the legacy nodes at the end (their Mnesia directories stay)."`
	DryRun          bool          `name:"dry-run" help:"Run the preflight and print the plan; change nothing."`
	Force           bool          `short:"f" help:"Do not ask before each step."`
}

// cutoverPlan is what each step does, in order.
var cutoverPlan = []string{
	"preflight: the legacy cluster has no critical problem; the database holds the schema; the Go nodes answer, are one cluster, serve the legacy virtual hosts with certificates for them; sync is live with a small lag",
	"compare every table with the legacy cluster while it serves; from then on sync notes every key that changes",
	"stop the legacy c2s listeners (every listener, as ejabberdctl stop_kindly does), announce, close the remaining sessions",
	"wait until sync has applied every change",
	"verify what changed since (the keys sync noted, and those that differed): refuse to go on if anything differs",
	"mark the Go nodes ready: they open their c2s listeners, /healthz turns 200",
}

func (c *CutoverRunCmd) setup(g *Globals) (*cutover.Config, func(), error) {
	if len(c.Nodes) == 0 {
		return nil, nil, &userError{msg: "--nodes: give the Go nodes"}
	}
	for _, n := range c.Nodes {
		if err := checkNode("--nodes", n); err != nil {
			return nil, nil, err
		}
	}
	if !strings.HasPrefix(c.From, "node:") {
		return nil, nil, &userError{msg: "--from must be the legacy cluster's running node (node:ejabberd@host)"}
	}
	if _, _, err := mimsql.ParseURL(c.To); err != nil {
		return nil, nil, g.dbError("--to", err)
	}
	src, sc, scope, err := c.open(g, false)
	if err != nil {
		return nil, nil, err
	}
	ns, ok := src.(*source.Node)
	if !ok {
		src.Close()
		return nil, nil, &userError{msg: "--from must be a running node"}
	}
	db, err := g.connectDB("--to", c.To, c.Workers+2)
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	closeAll := func() { db.Close(); src.Close() }
	if err := schemaReady(g.ctx, db, sc.Name()); err != nil {
		closeAll()
		return nil, nil, err
	}
	cl, err := g.client()
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	if c.NodesCookieFile != "" {
		b, err := os.ReadFile(c.NodesCookieFile)
		if err != nil {
			closeAll()
			return nil, nil, &userError{msg: "--nodes-cookie-file: " + err.Error()}
		}
		cookie := strings.TrimSpace(string(b))
		if cookie == "" || strings.ContainsAny(cookie, "\n\r") {
			closeAll()
			return nil, nil, &userError{msg: "--nodes-cookie-file: the file holds no cookie (one line expected)"}
		}
		g.secret(cookie)
		cl = &erldist.Client{Name: cl.Name, Cookie: cookie, Version: cl.Version, EPMDPort: cl.EPMDPort,
			DialTimeout: cl.DialTimeout, Timeouts: cl.Timeouts, Logger: cl.Logger}
	}
	admin := &cetsnode.Admin{Client: cl}
	cfg := &cutover.Config{
		Source: ns.Identity(), Snapshot: ns.Snapshot(), Session: ns.Session(), DB: db.Pool,
		Nodes: c.Nodes, Admin: admin, MaxLag: c.MaxLag, Announce: c.Announce,
		StopLegacy: c.StopLegacy, Timeout: g.Timeout,
		Verify: func(ctx context.Context) (int64, error) {
			res, err := verify.Verify(ctx, src, db.Pool, verify.Options{Schema: sc, Scope: scope, Tables: c.Table, MaxReport: 5})
			if err != nil {
				return 0, err
			}
			return printDifferences(g, res.Tables), nil
		},
		Print: func(format string, args ...any) { fmt.Fprintf(g.stdout, format+"\n", args...) },
	}
	if !c.FullVerify {
		check := delta.CheckConfig{Source: ns, Sink: sink.NewPostgres(db, sc), Schema: sc, Scope: scope, Tables: c.Table,
			Timeout: g.Timeout, MaxReport: 5}
		cfg.PreVerify = func(ctx context.Context) error {
			d, err := delta.PreCheck(ctx, check)
			if err != nil {
				return err
			}
			keys := 0
			for _, ks := range d.Keys {
				keys += len(ks)
			}
			cfg.Print("  %d rows differ now (%d keys, %d rows no key accounts for): changes in flight, checked again after the drain", d.Missing+d.Extra, keys, len(d.Strays))
			return nil
		}
		cfg.Verify = func(ctx context.Context) (int64, error) {
			ch, err := delta.ReadChanges(ctx, db.Pool, ns.Identity())
			if err != nil {
				return 0, err
			}
			res, err := delta.CheckChanges(ctx, check, ch)
			if err != nil {
				return 0, err
			}
			whole := "none"
			if len(res.Whole) > 0 {
				whole = strings.Join(res.Whole, ", ")
			}
			cfg.Print("  %d keys changed since the comparison: %d rows compared in %.2f s (reading Mnesia %.2f s); tables compared whole: %s",
				res.Keys, res.Rows, res.Took.Seconds(), res.Read.Seconds(), whole)
			return printDifferences(g, res.Diff), nil
		}
	}
	if !c.Force {
		cfg.Confirm = func(step, what string) bool { return g.confirm("Next: " + what + ". Go on?") }
	}
	return cfg, func() { closeAll(); admin.Close() }, nil
}

// Run runs the cutover, from where it stands.
func (c *CutoverRunCmd) Run(g *Globals) error {
	cfg, closeAll, err := c.setup(g)
	if err != nil {
		return err
	}
	defer closeAll()
	if c.DryRun {
		fmt.Fprintf(g.stdout, "Cutover of %s to %s, the plan:\n", cfg.Source, strings.Join(c.Nodes, ", "))
		for i, s := range cutoverPlan {
			fmt.Fprintf(g.stdout, "  %d. %s\n", i+1, s)
		}
		if c.StopLegacy {
			fmt.Fprintf(g.stdout, "  %d. stop the legacy nodes (their Mnesia directories stay)\n", len(cutoverPlan)+1)
		}
		fmt.Fprintln(g.stdout, "Preflight:")
		lines, _, err := cutover.Preflight(g.ctx, cfg)
		for _, l := range lines {
			fmt.Fprintf(g.stdout, "  ok  %s\n", l)
		}
		if err != nil {
			return cutoverError(err)
		}
		fmt.Fprintln(g.stdout, "Dry run: nothing changed.")
		return nil
	}
	g.interrupted = "the cutover stopped; its state is kept in the database: the same command goes on, `cutover abort` undoes it (before the Go nodes serve)"
	st, err := cutover.Run(g.ctx, cfg)
	if err != nil {
		return cutoverError(err)
	}
	fmt.Fprintf(g.stdout, "Cutover done: the Go nodes serve. Logins were closed for %.1f s.\n", st.Downtime().Seconds())
	fmt.Fprintln(g.stdout, "Switch the clients: point the load balancer (or the DNS records, _xmpp-client SRV included) of the virtual hosts at the Go nodes' c2s listeners above; a load balancer that checks /healthz switches by itself.")
	return nil
}

// printDifferences lists the first mismatches and counts the rows that differ.
func printDifferences(g *Globals, tables []verify.Table) int64 {
	var n int64
	for _, t := range tables {
		n += t.Missing + t.Extra + t.Different
		for _, m := range t.Mismatches {
			fmt.Fprintf(g.stdout, "  %s %s: %s\n", m.Table, m.Kind, m.Key)
		}
	}
	return n
}

func cutoverError(err error) error {
	var r *cutover.Refusal
	if errors.As(err, &r) {
		return &refusal{msg: "cutover: " + r.Msg, hint: r.Hint}
	}
	return err
}

// CutoverStatusCmd is `cutover status`.
type CutoverStatusCmd struct {
	To   string `required:"" env:"MIMMIGRATE_DB" placeholder:"URL" help:"The database of the cutover."`
	JSON bool   `help:"Print the state as JSON."`
}

// Run prints the state.
func (c *CutoverStatusCmd) Run(g *Globals) error {
	db, err := g.connectDB("--to", c.To, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := cutover.Read(g.ctx, db.Pool)
	if err != nil {
		return err
	}
	if c.JSON {
		if st == nil {
			st = &cutover.State{}
		}
		printJSON(g, st)
		return nil
	}
	if st == nil {
		fmt.Fprintf(g.stdout, "No cutover was started in %s.\n", db.Shown)
		return nil
	}
	fmt.Fprintf(g.stdout, "Cutover of %s to %s: %s (since %s)\n", st.Source, st.Nodes, stepText(st.Step), st.UpdatedAt.Format(time.RFC3339))
	if d := st.Downtime(); d > 0 {
		fmt.Fprintf(g.stdout, "Logins were closed for %.1f s.\n", d.Seconds())
	}
	return nil
}

func stepText(step string) string {
	switch step {
	case cutover.StepPreflight:
		return "preflight passed, nothing changed yet"
	case cutover.StepPreverified:
		return "compared while the legacy cluster serves, sync notes the keys that change; the logins close next"
	case cutover.StepLoginsClosed:
		return "legacy logins closed, draining the sync"
	case cutover.StepDrained:
		return "drained, verify next"
	case cutover.StepVerified:
		return "verified, the Go nodes are marked ready next"
	case cutover.StepReady:
		return "done: the Go nodes serve"
	case cutover.StepLegacyDown:
		return "done: the Go nodes serve, the legacy nodes are stopped"
	case cutover.StepAborted:
		return "aborted: the legacy listeners run again"
	}
	return step
}

// CutoverAbortCmd is `cutover abort`.
type CutoverAbortCmd struct {
	From  string `required:"" placeholder:"node:NODE" help:"The legacy cluster's running node."`
	To    string `required:"" env:"MIMMIGRATE_DB" placeholder:"URL" help:"The database of the cutover."`
	Force bool   `short:"f" help:"Do not ask for confirmation."`
}

// Run aborts.
func (c *CutoverAbortCmd) Run(g *Globals) error {
	node, ok := strings.CutPrefix(c.From, "node:")
	if !ok {
		return &userError{msg: "--from must be the legacy cluster's running node (node:ejabberd@host)"}
	}
	if err := checkNode("--from", node); err != nil {
		return err
	}
	db, err := g.connectDB("--to", c.To, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	snap, sess, err := g.attach(node, mnesia.DefaultParams())
	if err != nil {
		return err
	}
	defer sess.Close()
	if !c.Force && !g.confirm("Start the legacy listeners again and mark the cutover aborted?") {
		return &refusal{msg: "not confirmed: nothing changed", hint: "answer yes, or pass -f"}
	}
	cfg := &cutover.Config{Source: c.From, Snapshot: snap, Session: sess, DB: db.Pool, Timeout: g.Timeout,
		Print: func(format string, args ...any) { fmt.Fprintf(g.stdout, format+"\n", args...) }}
	if _, err := cutover.Abort(g.ctx, cfg); err != nil {
		return cutoverError(err)
	}
	fmt.Fprintln(g.stdout, "Cutover aborted: the legacy cluster serves as before.")
	return nil
}
