// Package verify compares a database with the source it was exported
// from: the source is mapped again as an export would map it, and every
// row is compared by a digest of its canonical form.
package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// A row's canonical form is its columns as PostgreSQL prints them as text
// (col::text), joined by a separator that text cannot hold; rows are
// compared by a SHA-256 digest of that form. Serial ids are left out (they
// differ between runs); a privacy item names its list by owner and name.

type digest [16]byte

// rowSet holds a table's rows as digests only (16 bytes a row): the
// comparison sorts and merges the two sides, and the keys of the rows that
// differ are found in a second pass over just those tables.
type rowSet struct {
	mu sync.Mutex
	ds []digest
	// find, in the second pass: digest -> the row's key columns
	find map[digest]string
}

func rowDigest(vals []string) digest {
	h := sha256.New()
	var sep = []byte{0}
	for _, v := range vals {
		h.Write([]byte(v))
		h.Write(sep)
	}
	var sum [sha256.Size]byte
	var d digest
	copy(d[:], h.Sum(sum[:0]))
	return d
}

func (s *rowSet) add(vals []string, keyCols int) {
	d := rowDigest(vals)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.find != nil {
		if k, ok := s.find[d]; ok && k == "" {
			s.find[d] = strings.Join(vals[:min(keyCols, len(vals))], "/")
		}
		return
	}
	s.ds = append(s.ds, d)
}

func (s *rowSet) sort() {
	slices.SortFunc(s.ds, func(a, b digest) int { return bytes.Compare(a[:], b[:]) })
}

// canonical writes a mapped value as PostgreSQL's ::text prints it.
func canonical(v any) string {
	switch v := v.(type) {
	case nil:
		return "\x00NULL"
	case string:
		return v
	case []byte:
		return `\x` + hex.EncodeToString(v)
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int16:
		return strconv.FormatInt(int64(v), 10)
	case int:
		return strconv.Itoa(v)
	case time.Time:
		s := v.UTC().Format("2006-01-02 15:04:05.999999")
		return s
	}
	return fmt.Sprint(v)
}

// Mismatch is one difference verify found.
type Mismatch struct {
	Table string `json:"table"`
	Kind  string `json:"kind"` // missing (in the source, not in the database), extra, different
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// Table is one target table's comparison.
type Table struct {
	Table      string     `json:"table"`
	Source     int64      `json:"source"` // rows the source maps to
	Database   int64      `json:"database"`
	Missing    int64      `json:"missing"`
	Extra      int64      `json:"extra"`
	Different  int64      `json:"different"`
	Mismatches []Mismatch `json:"mismatches"` // the first few
}

// OK reports whether the table matches.
func (t Table) OK() bool { return t.Missing == 0 && t.Extra == 0 && t.Different == 0 }

// Result is a verification's outcome.
type Result struct {
	Tables  []Table
	Rejects int64 // source records that cannot be mapped (not expected in the database)
}

// Options configure a verification.
type Options struct {
	Schema schema.Schema
	Scope  *schema.Scope
	Tables []string // empty: every mapped, non-optional table
	// MaxReport bounds the mismatches listed per table.
	MaxReport int
}

// Verify maps the source as an export would and compares every row with
// the database.
func Verify(ctx context.Context, src migrate.Source, pool *pgxpool.Pool, opt Options) (*Result, error) {
	plan, err := migrate.MakePlan(src, opt.Schema, opt.Tables)
	if err != nil {
		return nil, err
	}
	tables := plan.Tables
	var targets []string
	seen := map[string]bool{}
	for _, t := range tables {
		for _, tt := range t.Targets {
			if !seen[tt] {
				seen[tt] = true
				targets = append(targets, tt)
			}
		}
	}
	sort.Strings(targets)
	res := &Result{}
	want := map[string]*rowSet{}
	for _, tt := range targets {
		want[tt] = &rowSet{}
	}
	if res.Rejects, err = mapSource(ctx, src, opt, tables, want); err != nil {
		return nil, err
	}
	missing, extra := map[string]map[digest]int{}, map[string]map[digest]int{}
	for _, tt := range targets {
		got := &rowSet{}
		if err := readTable(ctx, pool, opt.Schema.Verify(tt), tt, got); err != nil {
			return nil, err
		}
		w := want[tt]
		w.sort()
		got.sort()
		tv := Table{Table: tt, Source: int64(len(w.ds)), Database: int64(len(got.ds))}
		missing[tt], extra[tt] = diffSorted(w.ds, got.ds)
		w.ds = nil
		res.Tables = append(res.Tables, tv)
	}
	// Second passes, only where rows differ: name them by their keys.
	var again []schema.Table
	for _, t := range tables {
		for _, tt := range t.Targets {
			if len(missing[tt]) > 0 {
				again = append(again, t)
				break
			}
		}
	}
	if len(again) > 0 {
		for _, tt := range targets {
			want[tt] = &rowSet{find: map[digest]string{}}
			for d := range missing[tt] {
				want[tt].find[d] = ""
			}
		}
		if _, err := mapSource(ctx, src, opt, again, want); err != nil {
			return nil, err
		}
	}
	for i, tt := range targets {
		got := &rowSet{find: map[digest]string{}}
		for d := range extra[tt] {
			got.find[d] = ""
		}
		if len(got.find) > 0 {
			if err := readTable(ctx, pool, opt.Schema.Verify(tt), tt, got); err != nil {
				return nil, err
			}
		}
		res.Tables[i] = compareSets(res.Tables[i], missing[tt], want[tt].find, extra[tt], got.find, opt.MaxReport)
	}
	return res, nil
}

// diffSorted merges two sorted digest lists: the source's digests the
// database lacks and the database's the source lacks, with multiplicity.
func diffSorted(want, got []digest) (missing, extra map[digest]int) {
	missing, extra = map[digest]int{}, map[digest]int{}
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		c := 0
		switch {
		case i == len(want):
			c = 1
		case j == len(got):
			c = -1
		default:
			c = bytes.Compare(want[i][:], got[j][:])
		}
		switch {
		case c == 0:
			i++
			j++
		case c < 0:
			missing[want[i]]++
			i++
		default:
			extra[got[j]]++
			j++
		}
	}
	return missing, extra
}

// mapSource maps the source's records as an export would and adds every
// row to its table's set. It returns the count of records that cannot be
// mapped. Each pass numbers what the export numbers (ids) afresh: the
// canonical form leaves ids out.
func mapSource(ctx context.Context, src migrate.Source, opt Options, tables []schema.Table, want map[string]*rowSet) (int64, error) {
	mapping := opt.Schema.NewMapping(opt.Scope)
	if err := migrate.NotePass(ctx, src, tables, mapping); err != nil {
		return 0, err
	}
	mappers := map[string]*migrate.Mapper{}
	var names []string
	for _, t := range tables {
		mappers[t.Name] = migrate.NewMapper(opt.Schema, mapping.Mapper(t.Name))
		names = append(names, t.Name)
	}
	keyCols := map[string]int{}
	for _, t := range tables {
		for _, tt := range t.Targets {
			keyCols[tt] = opt.Schema.Verify(tt).KeyCols
		}
	}
	var rejects atomic.Int64
	err := src.Stream(ctx, names, func(table string, raw []byte) error {
		v, err := term.Decode(raw)
		if err != nil {
			rejects.Add(1)
			return nil
		}
		ops, err := mappers[table].Map(v)
		var skip *schema.Skip
		switch {
		case errors.As(err, &skip):
			return nil
		case err != nil:
			rejects.Add(1)
			return nil
		}
		for _, op := range ops {
			cv := op.CanonValues()
			vals := make([]string, len(cv))
			for i, v := range cv {
				vals[i] = canonical(v)
			}
			want[op.Table].add(vals, keyCols[op.Table])
		}
		return nil
	})
	return rejects.Load(), err
}

// readTable reads a table's rows in canonical form.
func readTable(ctx context.Context, pool *pgxpool.Pool, spec schema.VerifySpec, table string, set *rowSet) error {
	return scanTable(ctx, pool, spec, table, func(canon []string, _ []*string) { set.add(canon, spec.KeyCols) })
}

// compareSets names the differences by key: a key with rows missing and
// rows extra has different rows.
func compareSets(tv Table, missing map[digest]int, missingKey map[digest]string, extra map[digest]int, extraKey map[digest]string, maxReport int) Table {
	table := tv.Table
	missingKeys, extraKeys := map[string]int{}, map[string]int{}
	for d, n := range missing {
		missingKeys[missingKey[d]] += n
	}
	for d, n := range extra {
		extraKeys[extraKey[d]] += n
	}
	var out []Mismatch
	for k, n := range missingKeys {
		if e, ok := extraKeys[k]; ok {
			d := min(n, e)
			tv.Different += int64(d)
			out = append(out, Mismatch{Table: table, Kind: "different", Key: k, Count: d})
			n -= d
			extraKeys[k] = e - d
		}
		if n > 0 {
			tv.Missing += int64(n)
			out = append(out, Mismatch{Table: table, Kind: "missing", Key: k, Count: n})
		}
	}
	for k, n := range extraKeys {
		if n > 0 {
			tv.Extra += int64(n)
			out = append(out, Mismatch{Table: table, Kind: "extra", Key: k, Count: n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > maxReport {
		out = out[:maxReport]
	}
	if out == nil {
		out = []Mismatch{}
	}
	tv.Mismatches = out
	return tv
}
