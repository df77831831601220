package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
	"github.com/mimmigrate/mimmigrate/migrate/sink"
	"github.com/mimmigrate/mimmigrate/migrate/source"
	"github.com/mimmigrate/mimmigrate/mnesiaread"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// ExportCmd is `export`.
type ExportCmd struct {
	exportFlags
	To               string `env:"MIMMIGRATE_DB" placeholder:"URL|FILE.sql" help:"postgres://user@host/db to load the rows, or a file for psql -1 -f (default: mimmigrate-export.sql). A password in the URL is never printed."`
	Rejects          string `default:"mimmigrate-rejects.jsonl" type:"path" help:"Where records that cannot be mapped go (JSON lines; written only if there are any)."`
	Fresh            bool   `help:"Start over: empty the target tables and the checkpoints first (asks for confirmation)."`
	Force            bool   `short:"f" help:"Do not ask for confirmation (--fresh, overwriting --to FILE)."`
	DryRun           bool   `name:"dry-run" help:"Read and map everything, count rows per table, write nothing."`
	JSON             bool   `help:"Print the summary as JSON (docs/export.md#the-json-summary)."`
	Chunk            int    `default:"5000" help:"Records per transaction (and per checkpoint)."`
	IncludeUncertain bool   `name:"include-uncertain" help:"Files: apply transactions whose outcome this node never learnt."`
}

// exportFlags are what export and verify share: the source, the schema
// and what of the source is covered.
type exportFlags struct {
	From    string   `required:"" placeholder:"SOURCE" help:"Where the data is: node:ejabberd@host (a running node), dir:/var/lib/ejabberd (a Mnesia directory), backup:FILE, dump:FILE."`
	Schema  string   `required:"" enum:"ejabberd,ejabberd-multihost,mongooseim" help:"Target schema: ejabberd (pg.sql, one virtual host per database), ejabberd-multihost (pg.new.sql) or mongooseim (MongooseIM 6.x priv/pg.sql)."`
	Host    []string `placeholder:"VHOST" help:"Only this virtual host (repeatable). Default: every host (the ejabberd schema holds one)."`
	Service []string `placeholder:"SERVICE=VHOST" help:"The virtual host a MUC or pubsub service belongs to, when its name does not say (repeatable)."`
	Table   []string `short:"t" placeholder:"TABLE" help:"Only this Mnesia table (repeatable; caps_features only when named)."`
	Workers int      `default:"2" help:"Tables read and written at once."`
}

// open opens the source and decides what the run covers.
func (f *exportFlags) open(g *Globals, includeUncertain bool) (source.Source, schema.Schema, *schema.Scope, error) {
	services := map[string]string{}
	for _, s := range f.Service {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" || v == "" {
			return nil, nil, nil, &userError{msg: fmt.Sprintf("--service %q: want SERVICE=VHOST", s)}
		}
		services[k] = v
	}
	if f.Workers < 1 {
		return nil, nil, nil, &userError{msg: "--workers must be at least 1"}
	}
	sc, err := migrate.SchemaByName(f.Schema)
	if err != nil {
		return nil, nil, nil, err
	}
	src, err := source.Open(g.ctx, f.From, source.Options{Client: g.client, Workers: f.Workers, Timeout: g.Timeout, IncludeUncertain: includeUncertain})
	var se *source.Error
	if errors.As(err, &se) {
		return nil, nil, nil, &userError{msg: "--from " + se.Msg, hint: se.Hint}
	}
	if err != nil {
		return nil, nil, nil, err
	}
	scope, err := migrate.ResolveScope(g.ctx, src, sc, f.Host, services)
	if err != nil {
		src.Close()
		return nil, nil, nil, err
	}
	return src, sc, scope, nil
}

// Run exports.
func (c *ExportCmd) Run(g *Globals) error {
	if c.Chunk < 1 {
		return &userError{msg: "--chunk must be at least 1"}
	}
	toDB := strings.HasPrefix(c.To, "postgres://") || strings.HasPrefix(c.To, "postgresql://")
	file := c.To
	if file == "" {
		file = "mimmigrate-export.sql"
	}
	if toDB {
		if _, _, err := mimsql.ParseURL(c.To); err != nil {
			return g.dbError("--to", err)
		}
	} else if !c.DryRun {
		if err := g.checkOutput(file, c.Force, "Overwrite it?"); err != nil {
			return err
		}
	}
	src, sc, scope, err := c.open(g, c.IncludeUncertain)
	if err != nil {
		return err
	}
	defer src.Close()

	var out migrate.Sink
	var pg *sink.Postgres
	var outFile *sink.Beside
	dest := "nowhere (dry run)"
	switch {
	case c.DryRun:
		out = sink.Dry{}
	case toDB:
		db, err := g.connectDB("--to", c.To, c.Workers+1)
		if err != nil {
			return err
		}
		defer db.Close()
		if err := schemaReady(g.ctx, db, sc.Name()); err != nil {
			return err
		}
		pg, dest = sink.NewPostgres(db, sc), db.Shown
		g.interrupted = "what was committed stays in " + db.Shown + "; run the same command again to resume"
		if c.Fresh {
			if !c.Force && !g.confirm(fmt.Sprintf("Empty every %s table in %s and start the export over?", sc.Name(), db.Shown)) {
				return &refusal{msg: "not confirmed: nothing changed", hint: "answer yes, or pass -f"}
			}
			if err := pg.Fresh(g.ctx); err != nil {
				return fmt.Errorf("%s: %w", db.Shown, err)
			}
		}
		out = pg
	default:
		outFile = sink.NewBeside(file)
		f, err := outFile.Create()
		if err != nil {
			return &userError{msg: err.Error()}
		}
		defer outFile.Abort()
		g.interrupted = file + " was not written; run the same command again"
		out, dest = sink.NewFile(f, sc, fmt.Sprintf("mimmigrate %s export of %s into the %s schema", version, c.From, sc.Name())), file
	}

	var resumed map[string]migrate.Checkpoint
	if pg != nil {
		// Resuming: keep the rejects of the chunks that were committed.
		if resumed, err = pg.Checkpoints(g.ctx, src.Identity()); err != nil {
			return exportError(err, true)
		}
	}
	rejects := sink.NewRejects(c.Rejects, resumed)
	bars := newMultiBar(g)
	if bars != nil {
		sizes := src.Tables()
		if fs, ok := src.(*source.Files); ok {
			if counts, err := mnesiaread.Count(fs.Source(), nil); err == nil {
				for t, n := range counts {
					sizes[t] = n
				}
			}
		}
		for t, n := range sizes {
			if n > 0 {
				bars.setTotal(t, n)
			}
		}
	}
	start := time.Now()
	res, err := migrate.Export(g.ctx, src, out, migrate.Options{
		Schema: sc, Scope: scope, Tables: c.Table, ChunkRecords: c.Chunk,
		Rejects: rejects.Add, Progress: bars.update,
	})
	bars.done()
	if cerr := rejects.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return exportError(err, pg != nil)
	}
	if outFile != nil {
		if err := outFile.Commit(); err != nil {
			return err
		}
	}
	if fs, ok := src.(*source.Files); ok {
		for _, p := range fs.Problems() {
			if p.Kind != mnesiaread.ProblemNote {
				fmt.Fprintln(g.stderr, "warning:", p.String())
			}
		}
	}
	sum := summarize(res, sc.Name(), dest, time.Since(start))
	if c.JSON {
		printJSON(g, sum)
	} else {
		printExportSummary(g, sum, rejects.Path)
	}
	if n := res.Rejected(); n > 0 {
		g.exit = exitPartial
		fmt.Fprintf(g.stderr, "mimmigrate: export is partial: %d records rejected (see %s)\n", n, rejects.Path)
	}
	return nil
}

// schemaReady refuses a database that cannot take the schema's rows
// (sql.Status.Ready decides), with the command that helps.
func schemaReady(ctx context.Context, db *mimsql.DB, name string) error {
	st, err := mimsql.Inspect(ctx, db, name)
	if err != nil {
		return fmt.Errorf("%s: %w", db.Shown, err)
	}
	var nr *mimsql.NotReadyError
	if err := st.Ready(); errors.As(err, &nr) {
		return &refusal{msg: err.Error(), hint: notReadyHints(nr)}
	}
	return nil
}

// notReadyHints words what to do about a database that cannot take a
// schema's rows.
func notReadyHints(nr *mimsql.NotReadyError) string {
	name := nr.Status.Schema
	switch nr.Reason {
	case mimsql.NotReadyDirty:
		return "see `mimmigrate db status`; repair it, then `mimmigrate db migrate`"
	case mimsql.NotReadyOther:
		return fmt.Sprintf("export with --schema %s, or into a database migrated for %s", nr.Status.Others[0], name)
	case mimsql.NotReadyForeign:
		return fmt.Sprintf("run `mimmigrate db migrate --schema %s --adopt` to check them and record the version", name)
	case mimsql.NotReadyMissing:
		return fmt.Sprintf("create it with `mimmigrate db migrate --db URL --schema %s`", name)
	}
	return "run `mimmigrate db migrate` (or use the mimmigrate release that made it)"
}

// exportError says what a failed export means: a database holding other
// rows is refused; a failure mid-way into a database leaves what was
// committed, and the same command resumes.
func exportError(err error, intoDB bool) error {
	var ne *sink.NotEmptyError
	if errors.As(err, &ne) {
		return &refusal{msg: err.Error(), hint: "export into an empty database, or pass --fresh to empty these tables first"}
	}
	var ie *migrate.InputError
	if errors.As(err, &ie) || !intoDB {
		return err
	}
	return &remoteFailure{msg: err.Error() + " (what was committed stays: run the same command again to resume)"}
}

// remoteFailure: the database failed mid-way (exit code 4).
type remoteFailure struct{ msg string }

func (e *remoteFailure) Error() string { return e.msg }

// exportSummary is the --json summary (docs/export.md#the-json-summary).
type exportSummary struct {
	Schema       string               `json:"schema"`
	TargetSchema string               `json:"target_schema"`
	To           string               `json:"to"`
	Seconds      float64              `json:"seconds"`
	Tables       []exportTableSummary `json:"tables"`
	Rows         int64                `json:"rows"`
	RowsThisRun  int64                `json:"rows_this_run"`
	Rejects      int64                `json:"rejects"`
	Volatile     []string             `json:"skipped_volatile"`
	Unmapped     []string             `json:"skipped_unmapped"`
	Optional     []string             `json:"skipped_optional"`
	Partial      bool                 `json:"partial"`
}

type exportTableSummary struct {
	Table      string           `json:"table"`
	Records    int64            `json:"records"`
	Resumed    int64            `json:"resumed_after"`
	Rows       int64            `json:"rows"`
	RowsByDest map[string]int64 `json:"rows_by_table"`
	Rejects    int64            `json:"rejects"`
	OtherHosts int64            `json:"other_hosts"`
	Seconds    float64          `json:"seconds"`
	RowsPerSec float64          `json:"rows_per_second"`
	Done       bool             `json:"done_before"`
}

func summarize(res *migrate.Result, target, dest string, took time.Duration) exportSummary {
	sum := exportSummary{Schema: "mimmigrate.export-summary/1", TargetSchema: target, To: dest, Seconds: took.Seconds(),
		Tables: []exportTableSummary{}, Volatile: nonNil(res.Volatile), Unmapped: nonNil(res.Unmapped), Optional: nonNil(res.Optional)}
	for _, t := range res.Tables {
		ts := exportTableSummary{Table: t.Table, Records: t.Check.Records, Resumed: t.Resumed, Rows: t.Check.Rows,
			RowsByDest: t.Rows, Rejects: t.Check.Rejects, OtherHosts: t.Check.Skipped, Seconds: t.Duration.Seconds(),
			Done: t.Duration == 0 && t.Check.Done}
		var thisRun int64
		for _, n := range t.Rows {
			thisRun += n
		}
		if t.Duration > 0 {
			ts.RowsPerSec = float64(thisRun) / t.Duration.Seconds()
		}
		sum.Tables = append(sum.Tables, ts)
		sum.Rows += t.Check.Rows
		sum.RowsThisRun += thisRun
		sum.Rejects += t.Check.Rejects
	}
	sum.Partial = sum.Rejects > 0
	return sum
}

func printExportSummary(g *Globals, sum exportSummary, rejectsPath string) {
	cols := newColumns(g.stdout)
	cols.row("TABLE", "RECORDS", "ROWS", "REJECTS", "OTHER HOSTS", "SECONDS", "ROWS/S", "INTO")
	for _, t := range sum.Tables {
		var into []string
		for k, n := range t.RowsByDest {
			into = append(into, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(into)
		rate := "-"
		if t.RowsPerSec > 0 {
			rate = fmt.Sprintf("%.0f", t.RowsPerSec)
		}
		secs := fmt.Sprintf("%.2f", t.Seconds)
		if t.Done {
			secs = "done before"
		}
		cols.row(t.Table, fmt.Sprint(t.Records), fmt.Sprint(t.Rows), fmt.Sprint(t.Rejects), fmt.Sprint(t.OtherHosts), secs, rate, orDash(strings.Join(into, ", ")))
	}
	cols.flush()
	switch {
	case len(sum.Tables) > 0 && sum.RowsThisRun == 0 && allDone(sum):
		fmt.Fprintf(g.stdout, "nothing to do: every table was exported before (%d rows in %s)\n", sum.Rows, sum.To)
	default:
		fmt.Fprintf(g.stdout, "%d rows into %s in %.1f s", sum.Rows, sum.To, sum.Seconds)
		if sum.Seconds > 0 && sum.RowsThisRun > 0 {
			fmt.Fprintf(g.stdout, " (%.0f rows/s)", float64(sum.RowsThisRun)/sum.Seconds)
		}
		fmt.Fprintln(g.stdout)
	}
	if len(sum.Volatile) > 0 {
		fmt.Fprintf(g.stdout, "skipped (running state, not data): %s\n", strings.Join(sum.Volatile, ", "))
	}
	if len(sum.Optional) > 0 {
		fmt.Fprintf(g.stdout, "skipped (a cache; name it with -t to export it): %s\n", strings.Join(sum.Optional, ", "))
	}
	if len(sum.Unmapped) > 0 {
		fmt.Fprintf(g.stdout, "not exported (no SQL mapping): %s\n", strings.Join(sum.Unmapped, ", "))
	}
	if sum.Rejects > 0 {
		fmt.Fprintf(g.stdout, "%d records rejected: %s\n", sum.Rejects, rejectsPath)
	}
}

func allDone(sum exportSummary) bool {
	for _, t := range sum.Tables {
		if !t.Done {
			return false
		}
	}
	return true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
