package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/migrate/delta"
	"github.com/mimmigrate/mimmigrate/migrate/sink"
	"github.com/mimmigrate/mimmigrate/migrate/source"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// SyncCmd is `sync`.
type SyncCmd struct {
	exportFlags
	To       string        `required:"" env:"MIMMIGRATE_DB" placeholder:"URL" help:"postgres://user@host/db to keep in step. A password in the URL is never printed."`
	JSON     bool          `help:"Print the state as JSON lines (the default when stdout is not a terminal)."`
	Interval time.Duration `default:"1s" help:"How often the state is printed."`
	Cap      int           `default:"100000" help:"Changes of one table queued on a legacy node at most; past it the table is subscribed again and repaired."`
}

// syncLine is one JSON line of the state.
type syncLine struct {
	Phase string `json:"phase"`
	delta.Snapshot
}

// Run syncs until interrupted.
func (c *SyncCmd) Run(g *Globals) error {
	if !strings.HasPrefix(c.From, "node:") {
		return &userError{msg: "--from must be a running node (node:ejabberd@host): only a live cluster has changes to follow",
			hint: "for files, use export"}
	}
	if _, _, err := mimsql.ParseURL(c.To); err != nil {
		return g.dbError("--to", err)
	}
	if c.Interval < 100*time.Millisecond {
		return &userError{msg: "--interval must be at least 100ms"}
	}
	if c.Cap < 1000 {
		return &userError{msg: "--cap must be at least 1000"}
	}
	src, sc, scope, err := c.open(g, false)
	if err != nil {
		return err
	}
	defer src.Close()
	ns, ok := src.(*source.Node)
	if !ok {
		return &userError{msg: "--from must be a running node"}
	}
	db, err := g.connectDB("--to", c.To, c.Workers+4)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := schemaReady(g.ctx, db, sc.Name()); err != nil {
		return err
	}
	g.interrupted = "sync stopped; what was applied stays in " + db.Shown + ": the same command resumes (it repairs what changed meanwhile by row digests)"
	out := newSyncOutput(g, c.JSON)
	logLevel := slog.LevelWarn
	if g.Verbose {
		logLevel = slog.LevelDebug
	}
	err = delta.Run(g.ctx, delta.Config{
		Source: ns, Sink: sink.NewPostgres(db, sc), Schema: sc, Scope: scope, Tables: c.Table,
		Forwarder: mnesia.ForwarderOptions{Cap: c.Cap},
		Timeout:   g.Timeout, Interval: c.Interval,
		Log:      slog.New(slog.NewTextHandler(out.logs(), &slog.HandlerOptions{Level: logLevel})),
		Report:   out.report,
		Phase:    out.phase,
		Progress: out.progress,
	})
	out.close()
	if err != nil && g.ctx.Err() == nil {
		return exportError(err, true)
	}
	return err
}

// syncOutput prints the state: a view redrawn in place on a terminal,
// JSON lines otherwise.
type syncOutput struct {
	g      *Globals
	json   bool
	mu     sync.Mutex
	ph     string
	drawn  int
	copied map[string]int64
}

func newSyncOutput(g *Globals, jsonLines bool) *syncOutput {
	return &syncOutput{g: g, json: jsonLines || !isTerminal(g.stdout), copied: map[string]int64{}}
}

// logs is where warnings go: stderr, between redraws.
func (o *syncOutput) logs() io.Writer { return lockedWriter{o} }

type lockedWriter struct{ o *syncOutput }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	w.o.drawn = 0
	return w.o.g.stderr.Write(p)
}

func (o *syncOutput) phase(p string) {
	o.mu.Lock()
	o.ph = p
	o.mu.Unlock()
	if !o.json {
		return
	}
	o.line(syncLine{Phase: p, Snapshot: delta.Snapshot{At: time.Now(), Tables: []delta.TableStats{}}})
}

func (o *syncOutput) progress(table string, records int64) {
	o.mu.Lock()
	o.copied[table] = records
	o.mu.Unlock()
}

func (o *syncOutput) line(l syncLine) {
	if l.Tables == nil {
		l.Tables = []delta.TableStats{}
	}
	b, _ := json.Marshal(l)
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.g.stdout, "%s\n", b)
}

func (o *syncOutput) report(sn delta.Snapshot) {
	o.mu.Lock()
	ph := o.ph
	o.mu.Unlock()
	if o.json {
		o.line(syncLine{Phase: ph, Snapshot: sn})
		return
	}
	o.draw(ph, sn)
}

// draw redraws the view: one line for the sync, one per table.
func (o *syncOutput) draw(ph string, sn delta.Snapshot) {
	var b strings.Builder
	fmt.Fprintf(&b, "sync %-10s applied %d (%.0f/s)  lag %.2f s / %d events  repaired %d rows", ph, sn.Applied, sn.Rate, sn.LagSeconds, sn.LagEvents, sn.Repaired)
	if sn.DBError != "" {
		fmt.Fprintf(&b, "  PostgreSQL: %s", sn.DBError)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  %-18s %-12s %-24s %10s %9s %8s %9s\n", "TABLE", "STATE", "NODE", "APPLIED", "EVENTS/S", "REJECTS", "REPAIRED")
	o.mu.Lock()
	for _, t := range sn.Tables {
		state := t.State
		if state == "copying" {
			state = fmt.Sprintf("copying %d", o.copied[t.Table])
		}
		fmt.Fprintf(&b, "  %-18s %-12s %-24s %10d %9.0f %8d %9d\n", t.Table, state, t.Node, t.Applied, t.Rate, t.Rejected, t.Repaired)
	}
	if o.drawn > 0 {
		fmt.Fprintf(o.g.stdout, "\033[%dA\033[J", o.drawn)
	}
	out := b.String()
	fmt.Fprint(o.g.stdout, out)
	o.drawn = strings.Count(out, "\n")
	o.mu.Unlock()
}

func (o *syncOutput) close() {}
