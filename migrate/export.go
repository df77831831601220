package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// Checkpoint is how far an export of one table got.
type Checkpoint struct {
	Records int64 // records of the source table consumed
	Rows    int64 // rows written
	Rejects int64
	Skipped int64 // records of hosts not exported
	Done    bool
}

// Chunk is a batch of rows of one source table, stored atomically with the
// table's new checkpoint.
type Chunk struct {
	Table schema.Table
	// Restart: what removes an earlier, unfinished run's rows of the
	// table, done first (the first chunk of a table that starts over).
	Restart []schema.Op
	Rows    map[string][][]any // SQL table -> rows
	Check   Checkpoint         // the checkpoint after this chunk
}

// Sink is where rows go: a PostgreSQL database, a psql file, or nowhere
// (a dry run).
type Sink interface {
	// Querier answers the schema's questions about what the target holds
	// (ids in use); a target that starts empty answers with no rows.
	schema.Querier
	// Checkpoints returns what an earlier run with this identity stored.
	Checkpoints(ctx context.Context, identity string) (map[string]Checkpoint, error)
	// Write stores a chunk and its checkpoint, all or nothing.
	Write(ctx context.Context, c *Chunk) error
	// Finish advances sequences and ends the export.
	Finish(ctx context.Context) error
}

// Options configure an export.
type Options struct {
	Schema schema.Schema
	Scope  *schema.Scope
	Tables []string // empty: every mapped, non-optional table
	// ChunkRecords bounds a chunk (default 5000).
	ChunkRecords int
	// Rejects receives each record that could not be mapped.
	Rejects func(Reject)
	// Progress is told the records consumed per table.
	Progress func(table string, records int64)
}

// Reject is a record that could not be mapped.
type Reject struct {
	Table    string
	Position int64 // the record's position in the table's stream
	Key      term.Term
	Reason   string
	Record   term.Term
}

// TableResult is one table's outcome.
type TableResult struct {
	Table    string
	Targets  []string
	Resumed  int64 // records done by earlier runs
	Check    Checkpoint
	Rows     map[string]int64 // rows per target table (this run)
	Duration time.Duration
}

// Result is an export's outcome.
type Result struct {
	Plan
	Tables []TableResult
}

// Rejected is the number of records rejected in all.
func (r *Result) Rejected() int64 {
	var n int64
	for _, t := range r.Tables {
		n += t.Check.Rejects
	}
	return n
}

// NotePass shows a mapping the records of the tables the planned ones
// need (pubsub nodes before their states and items).
func NotePass(ctx context.Context, src Source, tables []schema.Table, m schema.Mapping) error {
	var needs []string
	for _, t := range tables {
		for _, n := range t.Needs {
			if _, ok := src.Tables()[n]; ok && !slices.Contains(needs, n) {
				needs = append(needs, n)
			}
		}
	}
	if len(needs) == 0 {
		return nil
	}
	var mu sync.Mutex
	return src.Stream(ctx, needs, func(table string, rec []byte) error {
		v, err := term.Decode(rec)
		if tu, ok := v.(term.Tuple); err == nil && ok {
			mu.Lock()
			m.Note(table, tu)
			mu.Unlock()
		}
		return nil
	})
}

// Export reads the source and writes every planned table into the sink,
// resuming from the sink's checkpoints.
func Export(ctx context.Context, src Source, sink Sink, opt Options) (*Result, error) {
	plan, err := MakePlan(src, opt.Schema, opt.Tables)
	if err != nil {
		return nil, err
	}
	if opt.ChunkRecords <= 0 {
		opt.ChunkRecords = 5000
	}
	checks, err := sink.Checkpoints(ctx, src.Identity())
	if err != nil {
		return nil, err
	}
	runs := map[string]*tableRun{}
	for _, t := range plan.Tables {
		cp := checks[t.Name]
		r := &tableRun{t: t, sink: sink, opt: &opt, start: time.Now(), rows: map[string]int64{}}
		r.res = TableResult{Table: t.Name, Targets: t.Targets, Rows: r.rows}
		switch {
		case cp.Done:
			r.res.Check, r.res.Resumed = cp, cp.Records
		case cp.Records > 0 && src.Positional():
			r.check, r.skip, r.res.Resumed = cp, cp.Records, cp.Records
		default:
			r.restart = cp.Records > 0 || cp.Rows > 0
		}
		runs[t.Name] = r
	}
	mapping := opt.Schema.NewMapping(opt.Scope)
	if err := mapping.Load(ctx, sink, func(table string) bool { return runs[table] != nil && runs[table].restart }); err != nil {
		return nil, err
	}
	if err := NotePass(ctx, src, plan.Tables, mapping); err != nil {
		return nil, err
	}
	// Tables whose rows refer to ids the others assign go last.
	var first, second []string
	for _, t := range plan.Tables {
		r := runs[t.Name]
		if r.res.Check.Done {
			continue
		}
		r.m = NewMapper(opt.Schema, mapping.Mapper(t.Name))
		if t.After {
			second = append(second, t.Name)
		} else {
			first = append(first, t.Name)
		}
	}
	for _, group := range [][]string{first, second} {
		if len(group) == 0 {
			continue
		}
		if err := streamGroup(ctx, src, runs, group); err != nil {
			return nil, err
		}
	}
	if err := sink.Finish(ctx); err != nil {
		return nil, err
	}
	res := &Result{Plan: plan}
	for _, t := range plan.Tables {
		res.Tables = append(res.Tables, runs[t.Name].res)
	}
	return res, nil
}

// streamGroup streams a group of tables, each through its own writer.
func streamGroup(ctx context.Context, src Source, runs map[string]*tableRun, group []string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, name := range group {
		r := runs[name]
		r.chunks = make(chan *Chunk, 2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range r.chunks {
				if r.err != nil {
					continue
				}
				if err := r.sink.Write(ctx, c); err != nil {
					r.err = fmt.Errorf("table %s: %w", r.t.Name, err)
					cancel(r.err)
				}
			}
		}()
	}
	err := src.Stream(ctx, group, func(table string, rec []byte) error {
		r := runs[table]
		if r == nil {
			return nil
		}
		if err := context.Cause(ctx); err != nil {
			return err
		}
		return r.add(ctx, rec)
	})
	if err == nil {
		for _, name := range group {
			if e := runs[name].finish(ctx); e != nil && err == nil {
				err = e
			}
		}
	}
	for _, name := range group {
		close(runs[name].chunks)
	}
	wg.Wait()
	// The first failure cancels the others; report it, not the
	// cancellations it caused in the tables still in flight.
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	for _, name := range group {
		if runs[name].err != nil {
			return runs[name].err
		}
	}
	if err != nil {
		return err
	}
	for _, name := range group {
		r := runs[name]
		r.res.Check = r.check
		if !r.end.IsZero() {
			r.res.Duration = r.end.Sub(r.start)
		}
	}
	return nil
}

// tableRun is one table's export in progress.
type tableRun struct {
	t       schema.Table
	m       *Mapper
	sink    Sink
	opt     *Options
	start   time.Time
	end     time.Time
	check   Checkpoint
	skip    int64 // records done by an earlier run, passed over
	seen    int64 // records read in this run (skipped ones included)
	restart bool
	pending []pendingRec
	buf     []byte // the pending records' bytes
	lastKey []byte
	rows    map[string]int64
	res     TableResult
	chunks  chan *Chunk
	err     error
}

type pendingRec struct {
	pos      int64
	off, end int       // the encoded record in tableRun.buf
	rec      term.Term // decoded, where the chunk needs it before mapping
	err      error
}

func (r *tableRun) add(ctx context.Context, raw []byte) error {
	if r.seen == 0 {
		r.start = time.Now() // tables wait for a reader: time each from its first record
	}
	r.seen++
	if r.seen <= r.skip {
		if r.opt.Progress != nil && r.seen%4096 == 0 {
			r.opt.Progress(r.t.Name, r.seen)
		}
		return nil
	}
	// A chunk of a table grouped by key ends between keys, so that a
	// user's offline messages are ordered together.
	var key []byte
	if len(r.pending) >= r.opt.ChunkRecords {
		key, _ = term.Element(raw, 2)
		if !r.t.GroupByKey || !bytes.Equal(key, r.lastKey) {
			if err := r.flush(ctx, false); err != nil {
				return err
			}
		}
	}
	if r.t.GroupByKey {
		if key == nil {
			key, _ = term.Element(raw, 2)
		}
		r.lastKey = append(r.lastKey[:0], key...)
	}
	// Records wait as bytes (a decoded vCard is ten times its encoding)
	// and are decoded one at a time when the chunk is mapped.
	start := len(r.buf)
	r.buf = append(r.buf, raw...)
	r.pending = append(r.pending, pendingRec{pos: r.seen, off: start, end: len(r.buf)})
	return nil
}

func (r *tableRun) finish(ctx context.Context) error { return r.flush(ctx, true) }

// flush maps the pending records and hands the chunk to the writer.
func (r *tableRun) flush(ctx context.Context, last bool) error {
	if len(r.pending) == 0 && !last {
		return nil
	}
	if r.t.Less != nil {
		// Decode the chunk first to order it.
		for i := range r.pending {
			r.pending[i].decode(r.buf)
		}
		sort.SliceStable(r.pending, func(i, j int) bool { return r.t.Less(r.pending[i].rec, r.pending[j].rec) })
	}
	c := &Chunk{Table: r.t, Rows: map[string][][]any{}}
	if r.restart {
		c.Restart = r.opt.Schema.Restart(r.t.Name)
		r.restart = false
	}
	maxPos := r.check.Records
	for i := range r.pending {
		p := &r.pending[i]
		maxPos = max(maxPos, p.pos)
		p.decode(r.buf)
		if p.err != nil {
			r.reject(p, "undecodable record")
			continue
		}
		ops, err := r.m.Map(p.rec)
		var skip *schema.Skip
		var rj *schema.Reject
		switch {
		case errors.As(err, &skip):
			r.check.Skipped++
			continue
		case errors.As(err, &rj):
			r.reject(p, rj.Reason)
			continue
		case err != nil:
			return err
		}
		p.rec = nil
		for _, op := range ops {
			c.Rows[op.Table] = append(c.Rows[op.Table], op.Values)
			r.rows[op.Table]++
			r.check.Rows++
		}
	}
	if last {
		maxPos = max(maxPos, r.seen)
	}
	r.check.Records = maxPos
	r.check.Done = last
	if last {
		r.end = time.Now()
	}
	c.Check = r.check
	// Drop the decoded records now: a finished table must not keep its
	// last chunk alive for the rest of the export.
	clear(r.pending)
	r.pending, r.buf = r.pending[:0], r.buf[:0]
	if last {
		r.pending, r.buf = nil, nil
	}
	if r.opt.Progress != nil {
		r.opt.Progress(r.t.Name, r.seen)
	}
	select {
	case r.chunks <- c:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// decode decodes the record once.
func (p *pendingRec) decode(buf []byte) {
	if p.rec == nil && p.err == nil {
		p.rec, p.err = term.Decode(buf[p.off:p.end])
	}
}

func (r *tableRun) reject(p *pendingRec, reason string) {
	r.check.Rejects++
	if r.opt.Rejects == nil {
		return
	}
	rj := Reject{Table: r.t.Name, Position: p.pos, Reason: reason, Record: p.rec}
	if tu, ok := p.rec.(term.Tuple); ok && len(tu) > 1 {
		rj.Key = tu[1]
	}
	if p.err != nil {
		rj.Record = term.Binary(bytes.Clone(r.buf[p.off:p.end]))
	}
	r.opt.Rejects(rj)
}

// Mapper maps one table's records and checks their rows: text PostgreSQL
// cannot store (NUL bytes, invalid UTF-8) and XML the server could not
// parse back reject the whole record, never a part of it.
type Mapper struct {
	sc    schema.Schema
	m     schema.Mapper
	xml   map[string]bool   // "table.column"
	xmlAt map[string][]bool // per SQL table: which values are XML
}

// NewMapper wraps a schema's mapper of one table.
func NewMapper(sc schema.Schema, m schema.Mapper) *Mapper {
	c := &Mapper{sc: sc, m: m, xml: map[string]bool{}, xmlAt: map[string][]bool{}}
	for _, col := range sc.XMLColumns() {
		c.xml[col] = true
	}
	return c
}

// Map maps one record.
func (c *Mapper) Map(rec term.Term) ([]schema.Op, error) {
	tu, ok := rec.(term.Tuple)
	if !ok || len(tu) == 0 {
		return nil, schema.Rejectf("not a record: %s", term.Short(rec))
	}
	ops, err := c.m.Map(tu)
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		if err := c.check(op); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

// Delete returns what removes the rows of every record with this key.
func (c *Mapper) Delete(key term.Term) ([]schema.Op, error) { return c.m.Delete(key) }

func (c *Mapper) check(op schema.Op) error {
	isXML, ok := c.xmlAt[op.Table]
	if !ok {
		cols := c.sc.Columns(op.Table)
		isXML = make([]bool, len(cols))
		for i, col := range cols {
			isXML[i] = c.xml[op.Table+"."+col]
		}
		c.xmlAt[op.Table] = isXML
	}
	column := func(i int) string {
		if cols := c.sc.Columns(op.Table); i < len(cols) {
			return cols[i]
		}
		return "?"
	}
	for i, v := range op.Values {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if strings.IndexByte(s, 0) >= 0 {
			return schema.Rejectf("%s.%s holds a NUL byte, which PostgreSQL text cannot store", op.Table, column(i))
		}
		if !utf8.ValidString(s) {
			return schema.Rejectf("%s.%s is not valid UTF-8", op.Table, column(i))
		}
		if i < len(isXML) && isXML[i] {
			if r, bad := forbiddenXMLChar(s); bad {
				return schema.Rejectf("%s.%s holds U+%04X, which XML 1.0 forbids: the server could not parse the row back", op.Table, column(i), r)
			}
		}
	}
	return nil
}

// forbiddenXMLChar finds a character outside XML 1.0's Char production
// (C0 controls other than tab, LF and CR; U+FFFE, U+FFFF), which expat
// and so fxml and exml refuse.
func forbiddenXMLChar(s string) (rune, bool) {
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return r, true
		}
	}
	return 0, false
}
