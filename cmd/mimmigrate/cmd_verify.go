package main

import (
	"fmt"
	"time"

	"github.com/mimmigrate/mimmigrate/migrate/verify"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// VerifyCmd is `verify`.
type VerifyCmd struct {
	exportFlags
	To        string `required:"" env:"MIMMIGRATE_DB" placeholder:"URL" help:"The PostgreSQL database it was exported into (a password in it is never printed)."`
	JSON      bool   `help:"Print the result as JSON (schema mimmigrate.verify/1)."`
	MaxReport int    `name:"max-report" default:"20" help:"Mismatches listed per table."`
}

type verifyJSON struct {
	Schema       string         `json:"schema"`
	TargetSchema string         `json:"target_schema"`
	OK           bool           `json:"ok"`
	Rejects      int64          `json:"source_rejects"`
	Tables       []verify.Table `json:"tables"`
	Seconds      float64        `json:"seconds"`
}

// Run verifies.
func (c *VerifyCmd) Run(g *Globals) error {
	if _, _, err := mimsql.ParseURL(c.To); err != nil {
		return g.dbError("--to", err)
	}
	src, sc, scope, err := c.open(g, false)
	if err != nil {
		return err
	}
	defer src.Close()
	db, err := g.connectDB("--to", c.To, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	res, err := verify.Verify(g.ctx, src, db.Pool, verify.Options{Schema: sc, Scope: scope, Tables: c.Table, MaxReport: c.MaxReport})
	if err != nil {
		return err
	}
	ok := true
	for _, t := range res.Tables {
		ok = ok && t.OK()
	}
	if c.JSON {
		tables := res.Tables
		if tables == nil {
			tables = []verify.Table{}
		}
		printJSON(g, verifyJSON{Schema: "mimmigrate.verify/1", TargetSchema: sc.Name(), OK: ok, Rejects: res.Rejects, Tables: tables, Seconds: time.Since(start).Seconds()})
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
		fmt.Fprintf(g.stdout, "verified %s against %s in %.1f s: ", c.From, db.Shown, time.Since(start).Seconds())
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
