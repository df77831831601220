package cetsnode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
	return t.write(ctx, term.Tuple{term.Atom("insert"), recordList(recs)})
}

// Delete removes the records with these keys.
func (t *Table) Delete(ctx context.Context, keys ...term.Term) error {
	return t.write(ctx, term.Tuple{term.Atom("delete"), term.List(keys)})
}

// DeleteObject removes records that are exactly these.
func (t *Table) DeleteObject(ctx context.Context, recs ...Record) error {
	return t.write(ctx, term.Tuple{term.Atom("delete_object"), recordList(recs)})
}

func recordList(recs []Record) term.List {
	l := make(term.List, len(recs))
	for i, r := range recs {
		l[i] = r
	}
	return l
}

func (t *Table) write(ctx context.Context, op term.Tuple) error {
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

func (t *Table) apply(op term.Tuple, stamp int64, writer term.Atom) {
	if len(op) != 2 {
		return
	}
	items, _ := term.Elems(op[1])
	switch {
	case term.IsAtom(op[0], "insert"):
		recs := make([]Record, 0, len(items))
		for _, i := range items {
			if r, ok := i.(term.Tuple); ok {
				recs = append(recs, r)
			}
		}
		t.st.insert(recs, stamp, writer)
	case term.IsAtom(op[0], "delete"):
		t.st.delete(items)
	case term.IsAtom(op[0], "delete_object"):
		recs := make([]Record, 0, len(items))
		for _, i := range items {
			if r, ok := i.(term.Tuple); ok {
				recs = append(recs, r)
			}
		}
		t.st.deleteObjects(recs)
	}
}

// doWrite applies a write here and sends it to the segment (on the
// goroutine). While a join holds the table paused, writes wait in order.
func (t *Table) doWrite(op term.Tuple, stamp int64, done chan struct{}) {
	if len(t.paused) > 0 {
		t.backlog = append(t.backlog, func() { t.doWrite(op, stamp, done) })
		return
	}
	self := t.c.self
	t.apply(op, stamp, self)
	t.replicate(op, stamp, self, done)
}

func (t *Table) replicate(op term.Tuple, stamp int64, writer term.Atom, done chan struct{}) {
	if len(t.members) == 0 {
		close(done)
		return
	}
	t.seq++
	p := &pending{waiting: map[term.Atom]bool{}, done: done}
	msg, err := term.Encode(term.Tuple{term.Atom("op"), t.name, int64(t.seq), term.Binary(t.joinRef), stamp, writer, op})
	if err != nil {
		t.c.Log.Error("cannot encode a write", "table", t.name, "err", err)
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

// remote handles one-way messages from a peer (on the goroutine).
func (t *Table) remote(from term.Atom, kind term.Atom, msg term.Tuple) {
	switch kind {
	case "op":
		if len(msg) != 7 {
			return
		}
		ref, _ := msg[3].(term.Binary)
		stamp, _ := term.Int(msg[4])
		writer, _ := msg[5].(term.Atom)
		op, _ := msg[6].(term.Tuple)
		if string(ref) == t.joinRef {
			t.apply(op, stamp, writer)
		} else {
			t.c.Log.Debug("dropped an operation of another join", "table", t.name, "from", from)
		}
		// Acknowledged either way, so the writer never hangs. A sender's
		// operations arrive in order, so one acknowledgement covers every
		// operation up to it: while more events wait, they are coalesced.
		seq, _ := term.Int(msg[2])
		if t.ackOwed == nil {
			t.ackOwed = map[term.Atom]int64{}
		}
		t.ackOwed[from] = max(t.ackOwed[from], seq)
		t.ackCount++
		if len(t.ev) == 0 || t.ackCount >= 64 {
			t.flushAcks()
		}
	case "ack":
		if len(msg) != 3 {
			return
		}
		seq, _ := term.Int(msg[2])
		t.ackedUpTo(uint64(seq), from)
	case "check":
		if len(msg) != 3 {
			return
		}
		ref, _ := msg[2].(term.Binary)
		if string(ref) != t.joinRef && t.members[from] {
			t.c.Log.Warn("a peer holds another join reference: dropping each other", "table", t.name, "peer", from)
			t.drop(from)
			t.c.send(from, term.Tuple{term.Atom("check_failed"), t.name})
		}
	case "check_failed":
		if t.members[from] {
			t.drop(from)
		}
	}
}

// flushAcks sends the acknowledgements owed.
func (t *Table) flushAcks() {
	for peer, seq := range t.ackOwed {
		t.c.send(peer, term.Tuple{term.Atom("ack"), t.name, seq})
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
		t.c.Log.Info("peer dropped from table", "table", t.name, "peer", peer, "records_removed", removed)
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
		t.c.send(m, term.Tuple{term.Atom("check"), t.name, term.Binary(t.joinRef)})
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

// request serves a {req, …} from a peer or this node (on the goroutine).
func (t *Table) request(from term.Atom, kind term.Atom, body term.Tuple, reply func(term.Term)) {
	ok := term.Atom("ok")
	switch kind {
	case "info":
		nodes := append([]term.Atom{t.c.self}, t.sortedMembers()...)
		reply(term.Tuple{nodeList(nodes), term.Binary(t.joinRef)})
	case "pause":
		ref, _ := body[2].(term.Binary)
		t.paused[string(ref)] = from
		// Paused once our own writes have reached every peer.
		if len(t.pending) == 0 {
			reply(ok)
		} else {
			t.pauseWait = append(t.pauseWait, func() { reply(ok) })
		}
	case "dump":
		// {dump, T, PauseRef, I}: chunk I of a snapshot taken at the first
		// (stable: the table is paused), and whether more follow.
		if len(body) != 4 {
			reply(term.Atom("badarg"))
			return
		}
		ref, _ := body[2].(term.Binary)
		i, _ := term.Int(body[3])
		if _, held := t.paused[string(ref)]; !held {
			reply(term.Atom("not_paused"))
			return
		}
		if i == 0 || t.snap == nil || t.snapRef != string(ref) {
			t.snap, t.snapRef = t.st.entries(), string(ref)
		}
		lo, hi := int(i)*dumpChunk, int(i+1)*dumpChunk
		lo, hi = min(lo, len(t.snap)), min(hi, len(t.snap))
		more := hi < len(t.snap)
		reply(term.Tuple{encodeEntries(t.snap[lo:hi]), term.Atom(fmt.Sprint(more)), int64(len(t.snap))})
		if !more {
			t.snap, t.snapRef = nil, ""
		}
	case "install_chunk":
		ref, _ := body[2].(term.Binary)
		if _, held := t.paused[string(ref)]; !held {
			reply(term.Atom("not_paused"))
			return
		}
		entries, err := decodeEntries(body[3])
		if err != nil {
			reply(term.Atom("bad_dump"))
			return
		}
		if len(body) > 4 {
			if total, ok := term.Int(body[4]); ok {
				t.st.reserve(int(total))
			}
		}
		t.st.mergeIn(entries)
		reply(ok)
	case "install":
		if len(body) != 5 {
			reply(term.Atom("badarg"))
			return
		}
		ref, _ := body[2].(term.Binary)
		if _, held := t.paused[string(ref)]; !held {
			reply(term.Atom("not_paused"))
			return
		}
		joinRef, _ := body[3].(term.Binary)
		nodes, _ := term.Elems(body[4])
		t.members = map[term.Atom]bool{}
		for _, n := range nodes {
			if a, ok := n.(term.Atom); ok && a != t.c.self {
				t.members[a] = true
			}
		}
		t.joinRef = string(joinRef)
		t.publish()
		reply(ok)
	case "unpause":
		ref, _ := body[2].(term.Binary)
		t.unpause(string(ref))
		reply(ok)
	case "insert_new":
		if len(body) != 4 {
			reply(term.Atom("badarg"))
			return
		}
		if l := t.leader(); l != t.c.self {
			reply(term.Tuple{term.Atom("wrong_leader"), l})
			return
		}
		stamp, _ := term.Int(body[2])
		rec, _ := body[3].(term.Tuple)
		t.leaderInsert(rec, stamp, from, reply)
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
	t.replicate(term.Tuple{term.Atom("insert"), term.List{rec}}, stamp, writer, done)
	go func() {
		<-done
		reply(term.Atom("true"))
	}()
}

// ErrLeader: insert_new found no leader to answer in time.
var ErrLeader = errors.New("no leader answered insert_new")

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
				t.request(t.c.self, "insert_new", term.Tuple{term.Atom("insert_new"), t.name, stamp, rec}, func(r term.Term) { ch <- r })
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
				r, err := t.c.call(ctx, l, term.Tuple{term.Atom("insert_new"), t.name, stamp, rec})
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
