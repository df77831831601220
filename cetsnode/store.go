package cetsnode

import (
	"sort"
	"sync"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Record is a table's record: a tuple whose key is element KeyPos.
type Record = term.Tuple

// Entry is a record with the time it was written (µs, the writer's clock)
// and the node that wrote it: what a conflict handler decides on.
type Entry struct {
	Rec    Record
	Stamp  int64
	Writer term.Atom
}

// ConflictFunc picks the entry that survives a join when both sides hold
// one with the same key and they differ. It must be deterministic: every
// node of the join computes the same result.
type ConflictFunc func(a, b Entry) Entry

// LastWriterWins is the default conflict handler: the later write, ties
// broken by the writer's name.
func LastWriterWins(a, b Entry) Entry {
	if a.Stamp != b.Stamp {
		if a.Stamp > b.Stamp {
			return a
		}
		return b
	}
	if a.Writer >= b.Writer {
		return a
	}
	return b
}

// TableOptions configure a table.
type TableOptions struct {
	KeyPos   int          // 1-based key position (default 1)
	Conflict ConflictFunc // default LastWriterWins
	// Owner names the node a record belongs to: when that node goes down,
	// every survivor deletes its records. Nil: records outlive nodes.
	Owner func(Record) term.Atom
	// Index, when set, keeps the records grouped by a secondary key (a
	// session table by bare JID) for Select.
	Index func(Record) string
}

// store is a table's local copy.
type store struct {
	mu   sync.RWMutex
	recs map[string]Entry
	idx  map[string]map[string]struct{} // Index value -> keys
	opt  TableOptions
}

func newStore(opt TableOptions) *store {
	if opt.KeyPos <= 0 {
		opt.KeyPos = 1
	}
	if opt.Conflict == nil {
		opt.Conflict = LastWriterWins
	}
	return &store{recs: map[string]Entry{}, idx: map[string]map[string]struct{}{}, opt: opt}
}

// put and del keep the index; the caller holds the write lock.
func (s *store) put(k string, e Entry) {
	if s.opt.Index != nil {
		if old, ok := s.recs[k]; ok {
			s.unindex(k, old.Rec)
		}
		ix := s.opt.Index(e.Rec)
		if s.idx[ix] == nil {
			s.idx[ix] = map[string]struct{}{}
		}
		s.idx[ix][k] = struct{}{}
	}
	s.recs[k] = e
}

func (s *store) del(k string) {
	if old, ok := s.recs[k]; ok {
		if s.opt.Index != nil {
			s.unindex(k, old.Rec)
		}
		delete(s.recs, k)
	}
}

func (s *store) unindex(k string, r Record) {
	ix := s.opt.Index(r)
	if m := s.idx[ix]; m != nil {
		delete(m, k)
		if len(m) == 0 {
			delete(s.idx, ix)
		}
	}
}

// selectIndex returns the records whose Index value is ix.
func (s *store) selectIndex(ix string) []Record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Record
	for k := range s.idx[ix] {
		out = append(out, s.recs[k].Rec)
	}
	return out
}

func (s *store) keyOf(r Record) (string, bool) {
	if len(r) < s.opt.KeyPos {
		return "", false
	}
	return canonKey(r[s.opt.KeyPos-1])
}

func canonKey(k term.Term) (string, bool) {
	ks, err := term.CanonicalKey(k)
	return ks, err == nil
}

func (s *store) insert(recs []Record, stamp int64, writer term.Atom) {
	s.mu.Lock()
	for _, r := range recs {
		if k, ok := s.keyOf(r); ok {
			s.put(k, Entry{Rec: r, Stamp: stamp, Writer: writer})
		}
	}
	s.mu.Unlock()
}

func (s *store) insertNew(r Record, stamp int64, writer term.Atom) bool {
	k, ok := s.keyOf(r)
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.recs[k]; exists {
		return false
	}
	s.put(k, Entry{Rec: r, Stamp: stamp, Writer: writer})
	return true
}

func (s *store) delete(keys []term.Term) {
	s.mu.Lock()
	for _, k := range keys {
		if ks, ok := canonKey(k); ok {
			s.del(ks)
		}
	}
	s.mu.Unlock()
}

func (s *store) deleteObjects(recs []Record) {
	s.mu.Lock()
	for _, r := range recs {
		if k, ok := s.keyOf(r); ok {
			if cur, ok := s.recs[k]; ok && term.Equal(cur.Rec, r) {
				s.del(k)
			}
		}
	}
	s.mu.Unlock()
}

func (s *store) lookup(key term.Term) (Record, bool) {
	k, ok := canonKey(key)
	if !ok {
		return nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.recs[k]
	return e.Rec, ok
}

// each calls fn on every record (under the read lock: fn must not write).
func (s *store) each(fn func(Record)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.recs {
		fn(e.Rec)
	}
}

// entries returns every entry, unordered.
func (s *store) entries() []Entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Entry, 0, len(s.recs))
	for _, e := range s.recs {
		out = append(out, e)
	}
	return out
}

// reserve makes room for n more records when the table is empty (a node
// joining a big table): the map does not grow step by step.
func (s *store) reserve(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recs) == 0 && n > 1024 {
		s.recs = make(map[string]Entry, n)
	}
}

// mergeIn adds the other side's entries at a join: a key held here too
// goes through the conflict handler (which both sides run alike).
func (s *store) mergeIn(es []Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range es {
		k, ok := s.keyOf(e.Rec)
		if !ok {
			continue
		}
		if cur, ok := s.recs[k]; ok {
			if term.Equal(cur.Rec, e.Rec) && cur.Stamp == e.Stamp {
				continue
			}
			e = s.opt.Conflict(cur, e)
		}
		s.put(k, e)
	}
}

// dump returns every entry, sorted by key.
func (s *store) dump() []Entry {
	s.mu.RLock()
	keys := make([]string, 0, len(s.recs))
	for k := range s.recs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Entry, len(keys))
	for i, k := range keys {
		out[i] = s.recs[k]
	}
	s.mu.RUnlock()
	return out
}

func (s *store) replace(entries []Entry) {
	s.mu.Lock()
	s.recs = make(map[string]Entry, len(entries))
	s.idx = map[string]map[string]struct{}{}
	for _, e := range entries {
		if k, ok := s.keyOf(e.Rec); ok {
			s.put(k, e)
		}
	}
	s.mu.Unlock()
}

func (s *store) size() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.recs)
}

// removeOwned deletes the records owned by node and returns how many.
func (s *store) removeOwned(node term.Atom) int {
	if s.opt.Owner == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, e := range s.recs {
		if s.opt.Owner(e.Rec) == node {
			s.del(k)
			n++
		}
	}
	return n
}
