package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// RecordSource is where an export reads records: a Mnesia directory, a
// backup, a dump, or a live node.
type RecordSource interface {
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
	Table   Table
	Restart bool // the first chunk of a table exported from its start
	Rows    map[string][][]any
	Check   Checkpoint // the checkpoint after this chunk
}

// Sink is where rows go: a PostgreSQL database, a psql file, or nowhere
// (a dry run).
type Sink interface {
	// Checkpoints returns what an earlier run with this identity stored.
	Checkpoints(ctx context.Context, identity string) (map[string]Checkpoint, error)
	// NextID is the next free id of a serial column the export fills
	// itself (privacy_list.id).
	NextID(ctx context.Context, table, column string) (int64, error)
	// MamUsers are the MongooseIM archive ids the target holds
	// (server \x00 user -> id).
	MamUsers(ctx context.Context) (map[string]int32, error)
	// Write stores a chunk and its checkpoint, all or nothing.
	Write(ctx context.Context, c *Chunk) error
	// Finish advances sequences and ends the export.
	Finish(ctx context.Context) error
}

// Options configure an export.
type Options struct {
	Target Target
	Hosts  []string // empty: every host
	Known  []string // the virtual hosts the source serves
	Tables []string // empty: every mapped, non-optional table
	// Services maps service hosts to their virtual host.
	Services map[string]string
	// ChunkRecords bounds a chunk (default 5000).
	ChunkRecords int
	// Workers is how many tables are written at once (default 2).
	Workers int
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
	Tables   []TableResult
	Volatile []string // tables skipped as running state
	Unmapped []string // tables with data the export has no mapping for
	Optional []string // mapped tables left out unless named
}

// Rejected is the number of records rejected in all.
func (r *Result) Rejected() int64 {
	var n int64
	for _, t := range r.Tables {
		n += t.Check.Rejects
	}
	return n
}

// Plan decides which of a source's tables are exported.
func Plan(src RecordSource, opt Options) (tables []Table, res Result, err error) {
	have := src.Tables()
	named := map[string]bool{}
	for _, t := range opt.Tables {
		if _, ok := opt.Target.TableByName(t); !ok {
			if _, vol := Volatile[t]; vol {
				return nil, res, fmt.Errorf("table %s holds only running state (%s): nothing to export", t, Volatile[t])
			}
			return nil, res, fmt.Errorf("table %s has no SQL mapping", t)
		}
		if _, ok := have[t]; !ok {
			return nil, res, fmt.Errorf("the source has no table %s", t)
		}
		named[t] = true
	}
	for _, t := range opt.Target.Tables() {
		if _, ok := have[t.Name]; !ok {
			continue
		}
		switch {
		case len(named) > 0 && !named[t.Name]:
		case len(named) == 0 && t.Optional:
			res.Optional = append(res.Optional, t.Name)
		default:
			tables = append(tables, t)
		}
	}
	for name := range have {
		if _, ok := opt.Target.TableByName(name); ok {
			continue
		}
		if _, vol := Volatile[name]; vol {
			res.Volatile = append(res.Volatile, name)
		} else {
			res.Unmapped = append(res.Unmapped, name)
		}
	}
	sort.Strings(res.Volatile)
	sort.Strings(res.Unmapped)
	return tables, res, nil
}

// Export reads the source and writes every mapped table into the sink,
// resuming from the sink's checkpoints.
func Export(ctx context.Context, src RecordSource, sink Sink, opt Options) (*Result, error) {
	tables, res, err := Plan(src, opt)
	if err != nil {
		return nil, err
	}
	if opt.ChunkRecords <= 0 {
		opt.ChunkRecords = 5000
	}
	if opt.Workers <= 0 {
		opt.Workers = 2
	}
	checks, err := sink.Checkpoints(ctx, src.Identity())
	if err != nil {
		return nil, err
	}
	base := &Mapper{Target: opt.Target, Services: opt.Services, Known: map[string]bool{}}
	if len(opt.Hosts) > 0 {
		base.Hosts = map[string]bool{}
		for _, h := range opt.Hosts {
			base.Hosts[h] = true
		}
	}
	for _, h := range append(opt.Known, opt.Hosts...) {
		base.Known[h] = true
	}
	// pubsub states and items are checked against the nodes: read them
	// first (a small table).
	needNodes := false
	for _, t := range tables {
		needNodes = needNodes || t.Name == "pubsub_state" || t.Name == "pubsub_item"
	}
	if _, ok := src.Tables()["pubsub_node"]; ok && needNodes {
		base.PubsubNodes = map[int64]string{}
		if err := src.Stream(ctx, []string{"pubsub_node"}, func(_ string, rec []byte) error {
			v, err := term.Decode(rec)
			if err == nil {
				base.NotePubsubNode(v)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}

	if opt.Target.Mongoose {
		// Archive ids: those the database holds, unless the archive
		// starts over (its first chunk deletes them).
		known, err := sink.MamUsers(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range tables {
			if t.Name == "archive_msg" && !checks[t.Name].Done && !(checks[t.Name].Records > 0 && src.Positional()) &&
				(checks[t.Name].Records > 0 || checks[t.Name].Rows > 0) {
				known = nil
			}
		}
		base.MamUsers = NewMamUsers(known)
	}
	runs := map[string]*tableRun{}
	var todo []string
	for _, t := range tables {
		cp := checks[t.Name]
		r := &tableRun{t: t, sink: sink, opt: &opt, start: time.Now(), rows: map[string]int64{}}
		m := *base
		r.m = &m
		r.res = TableResult{Table: t.Name, Targets: t.Targets, Rows: r.rows}
		switch {
		case cp.Done:
			r.res.Check, r.res.Resumed = cp, cp.Records
		case cp.Records > 0 && src.Positional():
			r.check, r.skip, r.res.Resumed = cp, cp.Records, cp.Records
		default:
			r.restart = cp.Records > 0 || cp.Rows > 0
		}
		if t.Name == "privacy" && !cp.Done {
			if r.m.NextPrivacyID, err = sink.NextID(ctx, "privacy_list", "id"); err != nil {
				return nil, err
			}
		}
		if t.Name == "muc_room" && opt.Target.Mongoose && !cp.Done {
			if r.m.NextRoomID, err = sink.NextID(ctx, "muc_rooms", "id"); err != nil {
				return nil, err
			}
		}

		runs[t.Name] = r
		if !cp.Done {
			todo = append(todo, t.Name)
		}
	}
	// pubsub_node goes before the tables whose rows refer to it.
	var first, second []string
	for _, name := range todo {
		if runs[name].t.After {
			second = append(second, name)
		} else {
			first = append(first, name)
		}
	}
	for _, group := range [][]string{first, second} {
		if len(group) == 0 {
			continue
		}
		if err := streamGroup(ctx, src, runs, group, opt.Workers); err != nil {
			return nil, err
		}
	}
	if err := sink.Finish(ctx); err != nil {
		return nil, err
	}
	for _, t := range tables {
		res.Tables = append(res.Tables, runs[t.Name].res)
	}
	return &res, nil
}

// streamGroup streams a group of tables, each through its own writer.
func streamGroup(ctx context.Context, src RecordSource, runs map[string]*tableRun, group []string, workers int) error {
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
	_ = workers // the source decides how many tables it reads at once
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
	t       Table
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
	// A chunk ends between keys, so that a user's offline messages are
	// ordered together.
	var key []byte
	if len(r.pending) >= r.opt.ChunkRecords {
		key, _ = term.Element(raw, 2)
		if !bytes.Equal(key, r.lastKey) {
			if err := r.flush(ctx, false); err != nil {
				return err
			}
		}
	}
	if r.t.Name == "offline_msg" {
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
	if r.t.Name == "offline_msg" {
		// A user's messages are written in their time order: decode the
		// chunk first to sort it.
		for i := range r.pending {
			r.pending[i].decode(r.buf)
		}
		sort.SliceStable(r.pending, func(i, j int) bool {
			ki, kj := spoolKey(r.pending[i].rec), spoolKey(r.pending[j].rec)
			if ki != kj {
				return ki < kj
			}
			return OfflineTime(r.pending[i].rec) < OfflineTime(r.pending[j].rec)
		})
	}
	c := &Chunk{Table: r.t, Restart: r.restart, Rows: map[string][][]any{}}
	r.restart = false
	maxPos := r.check.Records
	for i := range r.pending {
		p := &r.pending[i]
		maxPos = max(maxPos, p.pos)
		p.decode(r.buf)
		if p.err != nil {
			r.reject(p, "undecodable record")
			continue
		}
		rows, skip, err := r.m.Map(r.t, p.rec)
		if skip != "" {
			r.check.Skipped++
			continue
		}
		if err == nil {
			err = r.m.Target.checkRows(rows)
		}
		if err != nil {
			var re *RejectError
			if !errors.As(err, &re) {
				return err
			}
			r.reject(p, re.Reason)
			continue
		}
		p.rec = nil
		for _, row := range rows {
			c.Rows[row.Table] = append(c.Rows[row.Table], row.Values)
			r.rows[row.Table]++
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

// checkRows refuses text PostgreSQL cannot store: NUL bytes and invalid
// UTF-8 (the whole record is rejected, never a part of it).
func (tg Target) checkRows(rows []Row) error {
	for _, row := range rows {
		cols := tg.Columns(row.Table)
		for i, v := range row.Values {
			s, ok := v.(string)
			if !ok {
				continue
			}
			col := "?"
			if i < len(cols) {
				col = cols[i]
			}
			if bytes.IndexByte([]byte(s), 0) >= 0 {
				return reject("%s.%s holds a NUL byte, which PostgreSQL text cannot store", row.Table, col)
			}
			if !utf8.ValidString(s) {
				return reject("%s.%s is not valid UTF-8", row.Table, col)
			}
			if xmlColumns[row.Table+"."+col] {
				if r, bad := forbiddenXMLChar(s); bad {
					return reject("%s.%s holds U+%04X, which XML 1.0 forbids: the server could not parse the row back", row.Table, col, r)
				}
			}
		}
	}
	return nil
}

// xmlColumns are the columns a server parses as XML when it reads them.
var xmlColumns = map[string]bool{
	"vcard.vcard": true, "private_storage.data": true, "spool.xml": true, "archive.xml": true,
	"pubsub_item.payload": true, "motd.xml": true,
	"offline_message.packet": true, "pubsub_items.payload": true,
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

// VirtualHosts lists the virtual hosts a source's users belong to (the
// servers of passwd's keys; of roster's when there is no passwd).
func VirtualHosts(ctx context.Context, src RecordSource) ([]string, error) {
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
