package mnesiaread

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// The replay of logged operations on a table, the way Mnesia's startup does
// it: a table's base (its DCD, or its DETS file) plus, in order, the
// operations of its DCL and of the committed transactions in PREVIOUS.LOG
// and LATEST.LOG.
//
// Operations are kept per key (an overlay), so the base streams through:
// only base records whose keys the logs touch are held back, and the logs
// are bounded by Mnesia's dump thresholds.

type opKind int

const (
	opWrite opKind = iota
	opDelete
	opDeleteObject
	opUpdateCounter
)

type logOp struct {
	kind    opKind
	val     term.Term // the record (write), pattern (delete_object) or {RecName, Incr}
	key     term.Term
	detsRul bool // update_counter under the DETS rule (applied: see overlay.add)
}

type keyState struct {
	key  term.Term
	ops  []logOp
	base []term.Term // base records with this key, held back
}

// overlay collects the operations logged for one table.
type overlay struct {
	table    string
	typ      string // set, ordered_set, bag, duplicate_bag
	keyPos   int    // 2 for Mnesia tables
	cleared  bool   // a clear_table happened: the base is gone
	keys     map[string]*keyState
	order    []string
	touched  map[string]bool // keys written this log pass (the DETS counter rule)
	passClr  bool
	problems *[]Problem
}

func newOverlay(table, typ string, problems *[]Problem) *overlay {
	return &overlay{table: table, typ: typ, keyPos: 2, keys: map[string]*keyState{}, touched: map[string]bool{}, problems: problems}
}

func (o *overlay) empty() bool { return !o.cleared && len(o.keys) == 0 }

// newPass starts a log pass: Mnesia's DETS counter rule forgets what was
// touched at the end of each log it dumps.
func (o *overlay) newPass() {
	o.touched = map[string]bool{}
	o.passClr = false
}

// add records one logged operation {{Tab, Key}, Val, Op}. dets: the table
// is a disc_only_copies table, whose DETS file the transaction already
// updated: a logged update_counter is applied only if the same key was
// written (or the table cleared) earlier in this pass, as dets_incr_counter
// decides; otherwise the file already holds the result.
func (o *overlay) add(key, val term.Term, op term.Atom, dets bool) error {
	if op == "clear_table" {
		o.cleared = true
		o.keys = map[string]*keyState{}
		o.order = nil
		o.passClr = true
		return nil
	}
	k, err := term.CanonicalKey(key)
	if err != nil {
		return err
	}
	var kind opKind
	switch op {
	case "write":
		kind = opWrite
	case "delete":
		kind = opDelete
	case "delete_object":
		kind = opDeleteObject
	case "update_counter":
		kind = opUpdateCounter
		if dets && !o.passClr && !o.touched[k] {
			return nil // the DETS file already has it
		}
	default:
		return fmt.Errorf("unknown operation %s", op)
	}
	if kind != opUpdateCounter {
		o.touched[k] = true
	}
	ks := o.keys[k]
	if ks == nil {
		ks = &keyState{key: key}
		o.keys[k] = ks
		o.order = append(o.order, k)
	}
	ks.ops = append(ks.ops, logOp{kind: kind, val: val, key: key, detsRul: dets})
	return nil
}

// holdBack reports whether a base record must wait for the replay: its key
// has operations. keyBody is the encoded key (Element of the record).
func (o *overlay) holdBack(rec []byte) (bool, error) {
	if len(o.keys) == 0 {
		return false, nil
	}
	kb, err := term.Element(rec, o.keyPos)
	if err != nil {
		return false, err
	}
	k, err := term.CanonicalBody(kb)
	if err != nil {
		return false, err
	}
	ks, ok := o.keys[k]
	if !ok {
		return false, nil
	}
	v, err := term.Decode(rec)
	if err != nil {
		return false, err
	}
	ks.base = append(ks.base, v)
	return true, nil
}

// finish applies every key's operations to its held-back base records and
// emits the results.
func (o *overlay) finish(emit func(term.Term) error) error {
	for _, k := range o.order {
		ks := o.keys[k]
		state := ks.base
		for _, op := range ks.ops {
			state = o.apply(state, op)
		}
		for _, r := range state {
			if err := emit(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o *overlay) bag() bool { return o.typ == "bag" || o.typ == "duplicate_bag" }

func (o *overlay) apply(state []term.Term, op logOp) []term.Term {
	switch op.kind {
	case opWrite:
		if !o.bag() {
			return []term.Term{op.val}
		}
		if o.typ == "bag" {
			for _, r := range state {
				if term.Equal(r, op.val) {
					return state
				}
			}
		}
		return append(state, op.val)
	case opDelete:
		return nil
	case opDeleteObject:
		out := state[:0:0]
		for _, r := range state {
			if !matchPattern(op.val, r, map[string]term.Term{}) {
				out = append(out, r)
			}
		}
		return out
	case opUpdateCounter:
		return o.updateCounter(state, op)
	}
	return state
}

// updateCounter follows ets:update_counter / dets:update_counter with
// Mnesia's fallback: on failure (no record, no integer in element 3, or —
// for the ets path — a negative result) the record becomes {RecName, Key, 0}
// when the increment is negative and {RecName, Key, Incr} otherwise.
func (o *overlay) updateCounter(state []term.Term, op logOp) []term.Term {
	spec, ok := op.val.(term.Tuple)
	if !ok || len(spec) != 2 {
		*o.problems = append(*o.problems, Problem{Kind: ProblemDamage, Offset: -1, Table: o.table,
			Detail: "update_counter with a malformed increment: " + term.Format(op.val)})
		return state
	}
	recName, incr := spec[0], toBig(spec[1])
	if incr == nil {
		return state
	}
	if !o.bag() && len(state) == 1 {
		if r, ok := state[0].(term.Tuple); ok && len(r) >= 3 {
			if old := toBig(r[2]); old != nil {
				v := new(big.Int).Add(old, incr)
				if op.detsRul || v.Sign() >= 0 {
					nr := append(term.Tuple(nil), r...)
					nr[2] = fromBig(v)
					return []term.Term{nr}
				}
			}
		}
	}
	fallback := term.Tuple{recName, op.key, fromBig(incr)}
	if incr.Sign() < 0 {
		fallback[2] = int64(0)
	}
	if o.bag() {
		return o.apply(state, logOp{kind: opWrite, val: fallback})
	}
	return []term.Term{fallback}
}

func toBig(t term.Term) *big.Int {
	switch v := t.(type) {
	case int64:
		return big.NewInt(v)
	case *big.Int:
		return v
	}
	return nil
}

func fromBig(v *big.Int) term.Term {
	if v.IsInt64() {
		return v.Int64()
	}
	return v
}

// matchPattern matches a term against an ets/dets match pattern: '_'
// matches anything; '$N' binds a variable that must match alike each time.
// matchEach matches patterns to terms one by one.
func matchEach(ps, ts []term.Term, vars map[string]term.Term) bool {
	if len(ps) != len(ts) {
		return false
	}
	for i := range ps {
		if !matchPattern(ps[i], ts[i], vars) {
			return false
		}
	}
	return true
}

func matchPattern(p, t term.Term, vars map[string]term.Term) bool {
	if a, ok := p.(term.Atom); ok {
		if a == "_" {
			return true
		}
		if isVariable(a) {
			if prev, bound := vars[string(a)]; bound {
				return term.Equal(prev, t)
			}
			vars[string(a)] = t
			return true
		}
	}
	switch pv := p.(type) {
	case term.Tuple:
		tv, ok := t.(term.Tuple)
		return ok && matchEach(pv, tv, vars)
	case term.List:
		tv, ok := term.Elems(t)
		return ok && matchEach(pv, tv, vars)
	case term.ImproperList:
		tv, ok := t.(term.ImproperList)
		return ok && matchEach(pv.Elems, tv.Elems, vars) && matchPattern(pv.Tail, tv.Tail, vars)
	}
	return term.Equal(p, t)
}

func isVariable(a term.Atom) bool {
	s := string(a)
	if !strings.HasPrefix(s, "$") || len(s) < 2 {
		return false
	}
	_, err := strconv.Atoi(s[1:])
	return err == nil
}
