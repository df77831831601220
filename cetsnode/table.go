package cetsnode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Table is one replicated table on this node. Reads are local and take a
// read lock; every change of the table's membership, pauses and pending
// writes happens on the table's goroutine.
type Table struct {
	name term.Atom
	c    *Cluster
	st   *store
	ev   chan func()

	// owned by the goroutine
	members   map[term.Atom]bool // the other nodes of our segment
	joinRef   string
	seq       uint64
	pending   map[uint64]*pending
	paused    map[string]term.Atom // pause ref -> the node holding it
	pauseWait []func()             // pause replies waiting for pending writes
	backlog   []func()
	downs     []DownEvent
	ackOwed   map[term.Atom]int64 // peer -> its last operation applied, not yet acknowledged
	ackCount  int
	snap      []Entry // the dump a join is streaming
	snapRef   string

	view sync.Mutex // a copy for readers on other goroutines
	vMem []term.Atom
	vRef string
}

// newTable makes a table of a cluster (its goroutine is started by the
// caller).
func newTable(c *Cluster, name term.Atom, opt TableOptions) *Table {
	t := &Table{name: name, c: c, st: newStore(opt), ev: make(chan func(), 4096),
		members: map[term.Atom]bool{}, joinRef: newRef(), pending: map[uint64]*pending{}, paused: map[string]term.Atom{}}
	t.publish()
	return t
}

// dumpChunk is how many records a join moves per message.
const dumpChunk = 20000

// DownEvent is a peer this table lost.
type DownEvent struct {
	Node    term.Atom
	At      time.Time
	Removed int // its records deleted here
}

type pending struct {
	waiting map[term.Atom]bool
	done    chan struct{}
}

// Name is the table's name.
func (t *Table) Name() string { return string(t.name) }

func (t *Table) post(f func()) { t.ev <- f }

func (t *Table) loop() {
	for f := range t.ev {
		f()
		if len(t.ackOwed) > 0 && len(t.ev) == 0 {
			t.flushAcks()
		}
	}
}

// sync copies the membership for readers.
func (t *Table) publish() {
	mem := make([]term.Atom, 0, len(t.members))
	for m := range t.members {
		mem = append(mem, m)
	}
	sort.Slice(mem, func(i, j int) bool { return mem[i] < mem[j] })
	t.view.Lock()
	t.vMem, t.vRef = mem, t.joinRef
	t.view.Unlock()
}

// Nodes are the other nodes this table replicates to now.
func (t *Table) Nodes() []term.Atom {
	t.view.Lock()
	defer t.view.Unlock()
	return append([]term.Atom(nil), t.vMem...)
}

// JoinRef is the table's join reference.
func (t *Table) JoinRef() string {
	t.view.Lock()
	defer t.view.Unlock()
	return t.vRef
}

// Size is the number of records.
func (t *Table) Size() int { return t.st.size() }

// Lookup reads a record by key, locally.
func (t *Table) Lookup(key term.Term) (Record, bool) { return t.st.lookup(key) }

// Select returns the records of an Index value, locally.
func (t *Table) Select(index string) []Record { return t.st.selectIndex(index) }

// Each calls fn on every record, locally (fn must not write to the table).
func (t *Table) Each(fn func(Record)) { t.st.each(fn) }

// Dump returns every entry, sorted by key.
func (t *Table) Dump() []Entry { return t.st.dump() }

// Digest is a SHA-256 over every entry in key order (record, stamp,
// writer): equal digests, equal tables.
func (t *Table) Digest() string {
	h := sha256.New()
	for _, e := range t.st.dump() {
		b, _ := term.Encode(term.Tuple{e.Rec, e.Stamp, e.Writer})
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Downs are the peers this table lost, oldest first.
func (t *Table) Downs() []DownEvent {
	ch := make(chan []DownEvent, 1)
	t.post(func() { ch <- append([]DownEvent(nil), t.downs...) })
	return <-ch
}

// Insert writes records; it returns when every live peer has them.
func (t *Table) Insert(ctx context.Context, recs ...Record) error {
	return t.write(ctx, writeOp{Kind: "insert", Items: recordList(recs)})
}

// Delete removes the records with these keys.
func (t *Table) Delete(ctx context.Context, keys ...term.Term) error {
	return t.write(ctx, writeOp{Kind: "delete", Items: term.List(keys)})
}

// DeleteObject removes records that are exactly these.
func (t *Table) DeleteObject(ctx context.Context, recs ...Record) error {
	return t.write(ctx, writeOp{Kind: "delete_object", Items: recordList(recs)})
}

func recordList(recs []Record) term.List {
	l := make(term.List, len(recs))
	for i, r := range recs {
		l[i] = r
	}
	return l
}

func (t *Table) write(ctx context.Context, op writeOp) error {
	done := make(chan struct{})
	select {
	case t.ev <- func() { t.doWrite(op, time.Now().UnixMicro(), done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *Table) apply(op writeOp, stamp int64, writer term.Atom) {
	recs := func() []Record {
		out := make([]Record, 0, len(op.Items))
		for _, i := range op.Items {
			if r, ok := i.(term.Tuple); ok {
				out = append(out, r)
			}
		}
		return out
	}
	switch op.Kind {
	case "insert":
		t.st.insert(recs(), stamp, writer)
	case "delete":
		t.st.delete(op.Items)
	case "delete_object":
		t.st.deleteObjects(recs())
	}
}

// doWrite applies a write here and sends it to the segment (on the
// goroutine). While a join holds the table paused, writes wait in order.
func (t *Table) doWrite(op writeOp, stamp int64, done chan struct{}) {
	if len(t.paused) > 0 {
		t.backlog = append(t.backlog, func() { t.doWrite(op, stamp, done) })
		return
	}
	self := t.c.self
	t.apply(op, stamp, self)
	t.replicate(op, stamp, self, done)
}

func (t *Table) replicate(op writeOp, stamp int64, writer term.Atom, done chan struct{}) {
	if len(t.members) == 0 {
		close(done)
		return
	}
	t.seq++
	p := &pending{waiting: map[term.Atom]bool{}, done: done}
	msg, err := term.Encode(opMsg{Table: t.name, Seq: int64(t.seq), JoinRef: t.joinRef, Stamp: stamp, Writer: writer, Op: op}.encode())
	if err != nil {
		t.c.log.Error("cannot encode a write", "table", t.name, "err", err)
		close(done)
		return
	}
	for m := range t.members {
		if t.c.sendEncoded(m, msg) {
			p.waiting[m] = true
		}
	}
	if len(p.waiting) == 0 {
		close(done)
		return
	}
	t.pending[t.seq] = p
}

// remoteOp applies a peer's write, when it is of our join (on the
// goroutine).
func (t *Table) remoteOp(from term.Atom, m opMsg) {
	if m.JoinRef == t.joinRef {
		t.apply(m.Op, m.Stamp, m.Writer)
	} else {
		t.c.log.Debug("dropped an operation of another join", "table", t.name, "from", from)
	}
	// Acknowledged either way, so the writer never hangs. A sender's
	// operations arrive in order, so one acknowledgement covers every
	// operation up to it: while more events wait, they are coalesced.
	if t.ackOwed == nil {
		t.ackOwed = map[term.Atom]int64{}
	}
	t.ackOwed[from] = max(t.ackOwed[from], m.Seq)
	t.ackCount++
	if len(t.ev) == 0 || t.ackCount >= 64 {
		t.flushAcks()
	}
}

// check: a member holding another join reference is not of our segment:
// both drop each other.
func (t *Table) check(from term.Atom, joinRef string) {
	if joinRef != t.joinRef && t.members[from] {
		t.c.log.Warn("a peer holds another join reference: dropping each other", "table", t.name, "peer", from)
		t.drop(from)
		t.c.send(from, checkFailedMsg{Table: t.name})
	}
}

// flushAcks sends the acknowledgements owed.
func (t *Table) flushAcks() {
	for peer, seq := range t.ackOwed {
		t.c.send(peer, ackMsg{Table: t.name, Seq: seq})
	}
	clear(t.ackOwed)
	t.ackCount = 0
}

// ackedUpTo: the peer has applied every operation up to seq.
func (t *Table) ackedUpTo(seq uint64, from term.Atom) {
	for s, p := range t.pending {
		if s <= seq && p.waiting[from] {
			t.acked(s, from)
		}
	}
}

func (t *Table) acked(seq uint64, from term.Atom) {
	p := t.pending[seq]
	if p == nil {
		return
	}
	delete(p.waiting, from)
	if len(p.waiting) == 0 {
		close(p.done)
		delete(t.pending, seq)
		if len(t.pending) == 0 {
			t.flushPauseWaiters()
		}
	}
}

// drop removes a peer from the segment: its pending acks count as given.
func (t *Table) drop(peer term.Atom) {
	delete(t.members, peer)
	for seq := range t.pending {
		t.acked(seq, peer)
	}
	t.publish()
}

func (t *Table) down(peer term.Atom) {
	wasMember := t.members[peer]
	t.drop(peer)
	removed := t.st.removeOwned(peer)
	t.downs = append(t.downs, DownEvent{Node: peer, At: time.Now(), Removed: removed})
	if len(t.downs) > 100 {
		t.downs = t.downs[len(t.downs)-100:]
	}
	// Pauses held by the lost node end with it.
	for ref, holder := range t.paused {
		if holder == peer {
			t.unpause(ref)
		}
	}
	if wasMember || removed > 0 {
		t.c.log.Info("peer dropped from table", "table", t.name, "peer", peer, "records_removed", removed)
	}
}

func (t *Table) flushPauseWaiters() {
	w := t.pauseWait
	t.pauseWait = nil
	for _, f := range w {
		f()
	}
}

func (t *Table) unpause(ref string) {
	if _, ok := t.paused[ref]; !ok {
		return
	}
	delete(t.paused, ref)
	if len(t.paused) > 0 {
		return
	}
	// Peers of another join drop us (and we them) before any queued
	// write goes out.
	for m := range t.members {
		t.c.send(m, checkMsg{Table: t.name, JoinRef: t.joinRef})
	}
	b := t.backlog
	t.backlog = nil
	for _, f := range b {
		f()
	}
}

// leader is the node every member picks for insert_new: the greatest name.
func (t *Table) leader() term.Atom {
	l := t.c.self
	for m := range t.members {
		if m > l {
			l = m
		}
	}
	return l
}

// request serves a request from a peer or this node (on the goroutine).
func (t *Table) request(from term.Atom, body request, reply func(term.Term)) {
	ok := term.Atom("ok")
	held := func(ref string) bool {
		if _, held := t.paused[ref]; !held {
			reply(term.Atom("not_paused"))
			return false
		}
		return true
	}
	switch r := body.(type) {
	case infoReq:
		reply(infoReply{Nodes: append([]term.Atom{t.c.self}, t.sortedMembers()...), JoinRef: t.joinRef}.encode())
	case pauseReq:
		t.paused[r.PauseRef] = from
		// Paused once our own writes have reached every peer.
		if len(t.pending) == 0 {
			reply(ok)
		} else {
			t.pauseWait = append(t.pauseWait, func() { reply(ok) })
		}
	case dumpReq:
		// Chunk I of a snapshot taken at the first (stable: the table is
		// paused), and whether more follow.
		if !held(r.PauseRef) {
			return
		}
		if r.Chunk == 0 || t.snap == nil || t.snapRef != r.PauseRef {
			t.snap, t.snapRef = t.st.entries(), r.PauseRef
		}
		lo, hi := int(r.Chunk)*dumpChunk, int(r.Chunk+1)*dumpChunk
		lo, hi = min(lo, len(t.snap)), min(hi, len(t.snap))
		more := hi < len(t.snap)
		reply(dumpReply{Entries: t.snap[lo:hi], More: more, Total: int64(len(t.snap))}.encode())
		if !more {
			t.snap, t.snapRef = nil, ""
		}
	case installChunkReq:
		if !held(r.PauseRef) {
			return
		}
		entries := r.Entries
		if entries == nil { // served here: the chunk as the join forwards it, checked
			entries, _ = decodeEntries(r.Items)
		}
		t.st.reserve(int(r.Total))
		t.st.mergeIn(entries)
		reply(ok)
	case installReq:
		if !held(r.PauseRef) {
			return
		}
		t.members = map[term.Atom]bool{}
		for _, n := range r.Nodes {
			if n != t.c.self {
				t.members[n] = true
			}
		}
		t.joinRef = r.JoinRef
		t.publish()
		reply(ok)
	case unpauseReq:
		t.unpause(r.PauseRef)
		reply(ok)
	case insertNewReq:
		if l := t.leader(); l != t.c.self {
			reply(term.Tuple{term.Atom("wrong_leader"), l})
			return
		}
		t.leaderInsert(r.Rec, r.Stamp, from, reply)
	default:
		reply(term.Tuple{term.Atom("error"), term.Atom("unknown_request")})
	}
}

func (t *Table) sortedMembers() []term.Atom {
	out := make([]term.Atom, 0, len(t.members))
	for m := range t.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// leaderInsert runs insert_new on the leader: written and replicated only
// when the key is new. Paused tables queue it like any write.
func (t *Table) leaderInsert(rec Record, stamp int64, writer term.Atom, reply func(term.Term)) {
	if len(t.paused) > 0 {
		t.backlog = append(t.backlog, func() { t.leaderInsert(rec, stamp, writer, reply) })
		return
	}
	if !t.st.insertNew(rec, stamp, writer) {
		reply(term.Atom("false"))
		return
	}
	done := make(chan struct{})
	t.replicate(writeOp{Kind: "insert", Items: term.List{rec}}, stamp, writer, done)
	go func() {
		<-done
		reply(term.Atom("true"))
	}()
}

// InsertNew writes rec unless a record with its key exists anywhere in the
// segment: the segment's leader (the greatest node name) decides, so two
// nodes cannot both win. It reports whether rec was written. Within one
// side of a netsplit only: after the split heals the conflict handler
// decides.
func (t *Table) InsertNew(ctx context.Context, rec Record) (bool, error) {
	stamp := time.Now().UnixMicro()
	backoff := []time.Duration{10, 50, 100, 500, 1000, 2000, 2000}
	for attempt := 0; ; attempt++ {
		ch := make(chan term.Term, 1)
		select {
		case t.ev <- func() {
			if leader := t.leader(); leader == t.c.self {
				t.request(t.c.self, insertNewReq{Table: t.name, Stamp: stamp, Rec: rec}, func(r term.Term) { ch <- r })
			} else {
				ch <- term.Tuple{term.Atom("wrong_leader"), leader}
			}
		}:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		var res term.Term
		select {
		case res = <-ch:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		if tu, ok := res.(term.Tuple); ok && len(tu) == 2 && term.IsAtom(tu[0], "wrong_leader") {
			l, _ := tu[1].(term.Atom)
			if l != t.c.self {
				r, err := t.c.call(ctx, l, insertNewReq{Table: t.name, Stamp: stamp, Rec: rec})
				if err == nil {
					res = r
				} else {
					res = term.Tuple{term.Atom("error"), term.Binary(err.Error())}
				}
			}
		}
		switch {
		case term.IsAtom(res, "true"):
			return true, nil
		case term.IsAtom(res, "false"):
			return false, nil
		}
		if attempt >= len(backoff) {
			return false, fmt.Errorf("%w: %s", ErrLeader, term.Format(res))
		}
		select {
		case <-time.After(backoff[attempt] * time.Millisecond):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}
