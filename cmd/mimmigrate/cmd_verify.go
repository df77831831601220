package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mimmigrate/mimmigrate/migrate"
)

// VerifyCmd is `verify`.
type VerifyCmd struct {
	From      string   `required:"" placeholder:"SOURCE" help:"The data exported: node:NAME, dir:PATH, backup:FILE or dump:FILE."`
	To        string   `required:"" env:"MIMMIGRATE_DB" placeholder:"URL" help:"The PostgreSQL database it was exported into (a password in it is never printed)."`
	Schema    string   `required:"" enum:"ejabberd,ejabberd-multihost,mongooseim" help:"The schema it was exported into."`
	Host      []string `placeholder:"VHOST" help:"As given to export."`
	Service   []string `placeholder:"SERVICE=VHOST" help:"As given to export."`
	Table     []string `short:"t" placeholder:"TABLE" help:"Only this Mnesia table's rows (repeatable)."`
	JSON      bool     `help:"Print the result as JSON (schema mimmigrate.verify/1)."`
	MaxReport int      `name:"max-report" default:"20" help:"Mismatches listed per table."`
	Workers   int      `default:"2" help:"Tables read at once."`
}

type verifyJSON struct {
	Schema  string                `json:"schema"`
	OK      bool                  `json:"ok"`
	Rejects int64                 `json:"source_rejects"`
	Tables  []migrate.TableVerify `json:"tables"`
	Seconds float64               `json:"seconds"`
}

// Run verifies.
func (c *VerifyCmd) Run(g *Globals) error {
	shown, pw, err := describeDB(c.To)
	if err != nil {
		return &userError{msg: "--to: " + err.Error(), hint: "a URL like postgres://user@127.0.0.1:5432/ejabberd"}
	}
	services := map[string]string{}
	for _, s := range c.Service {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" || v == "" {
			return &userError{msg: fmt.Sprintf("--service %q: want SERVICE=VHOST", s)}
		}
		services[k] = v
	}
	tg := migrate.Target{Multihost: c.Schema == "ejabberd-multihost", Mongoose: c.Schema == "mongooseim"}
	src, closeSrc, err := openExportSource(g, c.From, c.Workers, false)
	if err != nil {
		return err
	}
	defer closeSrc()
	known, err := migrate.VirtualHosts(g.ctx, src)
	if err != nil {
		return err
	}
	if ns, ok := src.(*migrate.NodeSource); ok {
		known = mergeHosts(known, ns.VirtualHosts())
		for svc, vh := range ns.Services() {
			if _, given := services[svc]; !given {
				services[svc] = vh
			}
		}
	}
	hosts := c.Host
	if tg.OneHost() && len(hosts) == 0 && len(known) == 1 {
		hosts = known
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.Timeout)
	pool, err := pgxpool.New(ctx, c.To)
	if err == nil {
		err = pool.Ping(ctx)
	}
	cancel()
	if err != nil {
		return &unreachable{msg: fmt.Sprintf("cannot connect to %s: %s", shown, dedupe(redact(err.Error(), pw)))}
	}
	defer pool.Close()
	start := time.Now()
	res, err := migrate.Verify(g.ctx, src, pool, migrate.Options{Target: tg, Hosts: hosts, Known: known,
		Tables: c.Table, Services: services}, c.MaxReport)
	if err != nil {
		return &userError{msg: redact(err.Error(), pw)}
	}
	ok := true
	for _, t := range res.Tables {
		ok = ok && t.OK()
	}
	if c.JSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(verifyJSON{Schema: "mimmigrate.verify/1", OK: ok, Rejects: res.Rejects, Tables: res.Tables, Seconds: time.Since(start).Seconds()})
	} else {
		cols := newColumns(g.stdout)
		cols.row("TABLE", "SOURCE", "DATABASE", "MISSING", "EXTRA", "DIFFERENT", "")
		for _, t := range res.Tables {
			verdict := "ok"
			if !t.OK() {
				verdict = "DIFFERS"
			}
			cols.row(t.Table, fmt.Sprint(t.Source), fmt.Sprint(t.Database), fmt.Sprint(t.Missing), fmt.Sprint(t.Extra), fmt.Sprint(t.Different), verdict)
		}
		cols.flush()
		for _, t := range res.Tables {
			for _, m := range t.Mismatches {
				fmt.Fprintf(g.stdout, "  %s %s: %s", m.Table, m.Kind, m.Key)
				if m.Count > 1 {
					fmt.Fprintf(g.stdout, " (%d rows)", m.Count)
				}
				fmt.Fprintln(g.stdout)
			}
		}
		if res.Rejects > 0 {
			fmt.Fprintf(g.stdout, "%d source records cannot be mapped (export's rejects): not expected in the database\n", res.Rejects)
		}
		fmt.Fprintf(g.stdout, "verified %s against %s in %.1f s: ", c.From, shown, time.Since(start).Seconds())
		if ok {
			fmt.Fprintln(g.stdout, "every row matches")
		} else {
			fmt.Fprintln(g.stdout, "DIFFERENCES")
		}
	}
	if !ok {
		g.exit = exitPartial
	}
	return nil
}
