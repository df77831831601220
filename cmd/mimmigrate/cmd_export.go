package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/mnesiaread"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// ExportCmd is `export`.
type ExportCmd struct {
	From             string   `required:"" placeholder:"SOURCE" help:"Where the data is: node:ejabberd@host (a running node), dir:/var/lib/ejabberd (a Mnesia directory), backup:FILE, dump:FILE."`
	To               string   `env:"MIMMIGRATE_DB" placeholder:"URL|FILE.sql" help:"postgres://user@host/db to load the rows, or a file for psql -1 -f (default: mimmigrate-export.sql). A password in the URL is never printed."`
	Schema           string   `required:"" enum:"ejabberd,ejabberd-multihost,mongooseim" help:"Target schema: ejabberd (pg.sql, one virtual host per database), ejabberd-multihost (pg.new.sql) or mongooseim (MongooseIM 6.x priv/pg.sql)."`
	Host             []string `placeholder:"VHOST" help:"Export only this virtual host (repeatable). Default: every host (the ejabberd schema holds one)."`
	Service          []string `placeholder:"SERVICE=VHOST" help:"The virtual host a MUC or pubsub service belongs to, when its name does not say (repeatable)."`
	Table            []string `short:"t" placeholder:"TABLE" help:"Only this Mnesia table (repeatable; caps_features only when named)."`
	Rejects          string   `default:"mimmigrate-rejects.jsonl" type:"path" help:"Where records that cannot be mapped go (JSON lines; written only if there are any)."`
	Fresh            bool     `help:"Start over: empty the target tables and the checkpoints first (asks for confirmation)."`
	Force            bool     `short:"f" help:"Do not ask for confirmation (--fresh, overwriting --to FILE)."`
	DryRun           bool     `name:"dry-run" help:"Read and map everything, count rows per table, write nothing."`
	JSON             bool     `help:"Print the summary as JSON (schema mimmigrate.export-summary/1)."`
	Workers          int      `default:"2" help:"Tables read and written at once."`
	Chunk            int      `default:"5000" help:"Records per transaction (and per checkpoint)."`
	IncludeUncertain bool     `name:"include-uncertain" help:"Files: apply transactions whose outcome this node never learnt."`
}

// exportSource opens --from.
func openExportSource(g *Globals, from string, workers int, includeUncertain bool) (migrate.RecordSource, func(), error) {
	kind, arg, ok := strings.Cut(from, ":")
	if !ok || arg == "" {
		return nil, nil, &userError{msg: fmt.Sprintf("--from %q: want node:NAME, dir:PATH, backup:FILE or dump:FILE", from)}
	}
	switch kind {
	case "node":
		src, err := openNodeSource(g, arg, workers)
		if err != nil {
			return nil, nil, err
		}
		return src, src.Close, nil
	case "dir", "backup", "dump":
		st, err := os.Stat(arg)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil, &userError{msg: arg + ": no such file or directory"}
			}
			return nil, nil, &userError{msg: err.Error()}
		}
		if (kind == "dir") != st.IsDir() {
			return nil, nil, &userError{msg: fmt.Sprintf("--from %s:%s: %s", kind, arg, map[bool]string{true: "is a directory", false: "is not a directory"}[st.IsDir()])}
		}
		fsrc, err := migrate.OpenFiles(arg, mnesiaread.OpenOptions{IncludeUncertain: includeUncertain}, workers)
		if err != nil {
			return nil, nil, &userError{msg: err.Error(), hint: "dir: is a Mnesia directory (e.g. /var/lib/ejabberd), backup: a Mnesia backup, dump: an ejabberdctl dump"}
		}
		got := fsrc.Source().Kind()
		want := map[string]string{"dir": "directory", "backup": "backup", "dump": "dump"}[kind]
		if got != want {
			fsrc.Close()
			return nil, nil, &userError{msg: fmt.Sprintf("--from %s:%s is a %s, not a %s", kind, arg, got, want)}
		}
		return fsrc, func() { fsrc.Close() }, nil
	}
	return nil, nil, &userError{msg: fmt.Sprintf("--from %q: unknown kind %q", from, kind), hint: "node:NAME, dir:PATH, backup:FILE or dump:FILE"}
}

// Run exports.
func (c *ExportCmd) Run(g *Globals) error {
	services := map[string]string{}
	for _, s := range c.Service {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" || v == "" {
			return &userError{msg: fmt.Sprintf("--service %q: want SERVICE=VHOST", s)}
		}
		services[k] = v
	}
	if c.Workers < 1 || c.Chunk < 1 {
		return &userError{msg: "--workers and --chunk must be at least 1"}
	}
	toDB := strings.HasPrefix(c.To, "postgres://") || strings.HasPrefix(c.To, "postgresql://")
	file := c.To
	if file == "" {
		file = "mimmigrate-export.sql"
	}
	var shown, pw string
	if toDB {
		var err error
		if shown, pw, err = describeDB(c.To); err != nil {
			return &userError{msg: "--to: " + err.Error(), hint: "a URL like postgres://user@127.0.0.1:5432/ejabberd"}
		}
	} else if !c.DryRun {
		if _, err := os.Stat(file); err == nil && !c.Force {
			if !g.confirm(fmt.Sprintf("%s exists. Overwrite it?", file)) {
				return &refusal{msg: "not confirmed: " + file + " left as it is", hint: "answer yes, pass -f, or give another --to"}
			}
		}
	}
	tg := migrate.Target{Multihost: c.Schema == "ejabberd-multihost", Mongoose: c.Schema == "mongooseim"}

	src, closeSrc, err := openExportSource(g, c.From, c.Workers, c.IncludeUncertain)
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
	if tg.OneHost() && len(c.Host) == 0 && len(known) > 1 {
		return &userError{msg: fmt.Sprintf("the source serves %d virtual hosts (%s); the ejabberd schema holds one", len(known), strings.Join(known, ", ")),
			hint: "pick one with --host, or use --schema ejabberd-multihost"}
	}
	if tg.OneHost() && len(c.Host) > 1 {
		return &userError{msg: "the ejabberd schema holds one virtual host: give --host once", hint: "or use --schema ejabberd-multihost"}
	}
	hosts := c.Host
	if tg.OneHost() && len(hosts) == 0 && len(known) == 1 {
		hosts = known
	}

	var sink migrate.Sink
	var pg *migrate.PGSink
	var tmp string
	var out *os.File
	switch {
	case c.DryRun:
		sink = migrate.DrySink{}
	case toDB:
		db, err := mimsql.Open(g.ctx, c.To, g.Timeout)
		if err != nil {
			return &unreachable{msg: fmt.Sprintf("cannot connect to %s: %s", shown, dedupe(redact(err.Error(), pw)))}
		}
		st, err := mimsql.Inspect(g.ctx, db, c.Schema)
		db.Close()
		if err != nil {
			return fmt.Errorf("%s: %s", shown, redact(err.Error(), pw))
		}
		if err := schemaReady(st, c.Schema); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(g.ctx, g.Timeout)
		pg, err = migrate.NewPGSink(ctx, c.To, c.Workers+1, tg)
		cancel()
		if err != nil {
			return &unreachable{msg: fmt.Sprintf("cannot connect to %s: %s", shown, dedupe(redact(err.Error(), pw)))}
		}
		defer pg.Close()
		if c.Fresh {
			if !c.Force && !g.confirm(fmt.Sprintf("Empty every ejabberd table in %s and start the export over?", shown)) {
				return &refusal{msg: "not confirmed: nothing changed", hint: "answer yes, or pass -f"}
			}
			if err := pg.Fresh(g.ctx); err != nil {
				return fmt.Errorf("%s: %s", shown, redact(err.Error(), pw))
			}
		}
		sink = pg
	default:
		tmp = file + ".partial"
		if out, err = os.Create(tmp); err != nil {
			return &userError{msg: err.Error()}
		}
		defer func() {
			if out != nil {
				out.Close()
				os.Remove(tmp)
			}
		}()
		sink = migrate.NewSQLFileSink(out, tg, fmt.Sprintf("mimmigrate %s export of %s into the %s schema", version, c.From, c.Schema))
	}

	rj := &rejectsFile{path: c.Rejects}
	if pg != nil {
		// Resuming: keep the rejects of the chunks that were committed.
		checks, err := pg.Checkpoints(g.ctx, src.Identity())
		if err != nil {
			return exportRefusal(err, pw)
		}
		rj.keep = checks
	} else {
		rj.keep = map[string]migrate.Checkpoint{}
	}
	bars := newMultiBar(g)
	if bars != nil {
		sizes := src.Tables()
		if fs, ok := src.(*migrate.FileSource); ok {
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
	res, err := migrate.Export(g.ctx, src, sink, migrate.Options{
		Target: tg, Hosts: hosts, Known: known, Tables: c.Table, Services: services,
		ChunkRecords: c.Chunk, Workers: c.Workers,
		Rejects:  rj.add,
		Progress: bars.update,
	})
	bars.done()
	if cerr := rj.close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		var ne *migrate.NotEmptyError
		if errors.As(err, &ne) {
			return exportRefusal(err, pw)
		}
		msg := redact(err.Error(), pw)
		if pg != nil {
			return &remoteFailure{msg: msg + " (what was committed stays: run the same command again to resume)"}
		}
		return errors.New(msg)
	}
	if out != nil {
		if err := out.Close(); err != nil {
			return err
		}
		out = nil
		if err := os.Rename(tmp, file); err != nil {
			return err
		}
	}
	if fs, ok := src.(*migrate.FileSource); ok {
		for _, p := range fs.Problems() {
			if p.Kind != mnesiaread.ProblemNote {
				fmt.Fprintln(g.stderr, "warning:", p.String())
			}
		}
	}
	dest := shown
	if !toDB {
		dest = file
	}
	if c.DryRun {
		dest = "nowhere (dry run)"
	}
	c.printSummary(g, res, dest, time.Since(start), rj)
	if n := res.Rejected(); n > 0 {
		g.exit = exitPartial
		fmt.Fprintf(g.stderr, "mimmigrate: export is partial: %d records rejected (see %s)\n", n, rj.path)
	}
	return nil
}

// schemaReady refuses a database whose schema version export does not know.
func schemaReady(st mimsql.Status, schema string) error {
	switch {
	case st.Dirty:
		return &refusal{msg: fmt.Sprintf("the %s schema in the database is dirty (a migration failed half way)", schema),
			hint: "see `mimmigrate db status`; repair it, then `mimmigrate db migrate`"}
	case st.Version == 0 && len(st.Foreign) > 0:
		return &refusal{msg: fmt.Sprintf("the database has %s tables mimmigrate did not create", schema),
			hint: fmt.Sprintf("run `mimmigrate db migrate --schema %s --adopt` to check them and record the version", schema)}
	case st.Version == 0:
		return &refusal{msg: fmt.Sprintf("the database has no %s schema", schema),
			hint: fmt.Sprintf("create it with `mimmigrate db migrate --db URL --schema %s`", schema)}
	case st.Version != st.Latest:
		return &refusal{msg: fmt.Sprintf("the database's %s schema is at version %d; this export writes version %d", schema, st.Version, st.Latest),
			hint: "run `mimmigrate db migrate` (or use the mimmigrate release that made it)"}
	}
	return nil
}

func exportRefusal(err error, pw string) error {
	var ne *migrate.NotEmptyError
	if errors.As(err, &ne) {
		return &refusal{msg: redact(err.Error(), pw), hint: "export into an empty database, or pass --fresh to empty these tables first"}
	}
	return errors.New(redact(err.Error(), pw))
}

// remoteFailure: the database failed mid-way (exit code 4).
type remoteFailure struct{ msg string }

func (e *remoteFailure) Error() string { return e.msg }

// rejectsFile collects rejects as JSON lines, created on the first one.
type rejectsFile struct {
	path string
	keep map[string]migrate.Checkpoint
	mu   sync.Mutex
	f    *os.File
	n    int64
	err  error
}

func (r *rejectsFile) open() {
	// Lines of chunks that an earlier run committed stay; the rest go.
	var kept []byte
	if old, err := os.ReadFile(r.path); err == nil {
		for _, line := range strings.SplitAfter(string(old), "\n") {
			var v struct {
				Table    string `json:"table"`
				Position int64  `json:"position"`
			}
			if json.Unmarshal([]byte(line), &v) == nil && v.Position <= r.keep[v.Table].Records {
				kept = append(kept, line...)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o755); err != nil {
		r.err = err
		return
	}
	r.f, r.err = os.Create(r.path)
	if r.err == nil {
		_, r.err = r.f.Write(kept)
	}
}

func (r *rejectsFile) add(rj migrate.Reject) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil && r.err == nil {
		r.open()
	}
	r.n++
	if r.err != nil {
		return
	}
	line := []byte(`{"table":`)
	line, _ = appendJSONString(line, rj.Table)
	line = fmt.Appendf(line, `,"position":%d,"reason":`, rj.Position)
	line, _ = appendJSONString(line, rj.Reason)
	line = append(line, `,"key":`...)
	if rj.Key != nil {
		line = term.AppendJSON(line, rj.Key)
	} else {
		line = append(line, "null"...)
	}
	line = append(line, `,"record":`...)
	line = term.AppendJSON(line, rj.Record)
	line = append(line, "}\n"...)
	_, r.err = r.f.Write(line)
}

func (r *rejectsFile) close() error {
	if r.f != nil {
		if err := r.f.Close(); err != nil && r.err == nil {
			r.err = err
		}
	}
	if r.err != nil {
		return fmt.Errorf("rejects file %s: %w", r.path, r.err)
	}
	return nil
}

func appendJSONString(dst []byte, s string) ([]byte, error) {
	b, err := json.Marshal(s)
	return append(dst, b...), err
}

// exportSummary is the --json summary (docs/export-json.md).
type exportSummary struct {
	Schema   string               `json:"schema"`
	To       string               `json:"to"`
	Seconds  float64              `json:"seconds"`
	Tables   []exportTableSummary `json:"tables"`
	Rows     int64                `json:"rows"`
	Rejects  int64                `json:"rejects"`
	Volatile []string             `json:"skipped_volatile"`
	Unmapped []string             `json:"skipped_unmapped"`
	Optional []string             `json:"skipped_optional"`
	Partial  bool                 `json:"partial"`
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
}

func (c *ExportCmd) printSummary(g *Globals, res *migrate.Result, dest string, took time.Duration, rj *rejectsFile) {
	sum := exportSummary{Schema: "mimmigrate.export-summary/1", To: dest, Seconds: took.Seconds(),
		Volatile: nonNil(res.Volatile), Unmapped: nonNil(res.Unmapped), Optional: nonNil(res.Optional)}
	for _, t := range res.Tables {
		ts := exportTableSummary{Table: t.Table, Records: t.Check.Records, Resumed: t.Resumed, Rows: t.Check.Rows,
			RowsByDest: t.Rows, Rejects: t.Check.Rejects, OtherHosts: t.Check.Skipped, Seconds: t.Duration.Seconds()}
		var thisRun int64
		for _, n := range t.Rows {
			thisRun += n
		}
		if t.Duration > 0 {
			ts.RowsPerSec = float64(thisRun) / t.Duration.Seconds()
		}
		sum.Tables = append(sum.Tables, ts)
		sum.Rows += t.Check.Rows
		sum.Rejects += t.Check.Rejects
	}
	sum.Partial = sum.Rejects > 0
	if c.JSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(sum)
		return
	}
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
		if t.Seconds == 0 {
			secs = "done before"
		}
		cols.row(t.Table, fmt.Sprint(t.Records), fmt.Sprint(t.Rows), fmt.Sprint(t.Rejects), fmt.Sprint(t.OtherHosts), secs, rate, orDash(strings.Join(into, ", ")))
	}
	cols.flush()
	fmt.Fprintf(g.stdout, "%d rows into %s in %.1f s", sum.Rows, dest, sum.Seconds)
	if sum.Seconds > 0 {
		fmt.Fprintf(g.stdout, " (%.0f rows/s)", float64(sum.Rows)/sum.Seconds)
	}
	fmt.Fprintln(g.stdout)
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
		fmt.Fprintf(g.stdout, "%d records rejected: %s\n", sum.Rejects, rj.path)
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// openNodeSource attaches to a running node.
func openNodeSource(g *Globals, node string, workers int) (*migrate.NodeSource, error) {
	if err := checkNode("--from node:", node); err != nil {
		return nil, err
	}
	cl, err := g.client()
	if err != nil {
		return nil, err
	}
	return migrate.OpenNode(g.ctx, cl, node, workers, g.Timeout)
}

func mergeHosts(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, h := range append(a, b...) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}
