package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mimmigrate/mimmigrate/erldist/term"
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

// verifyColumns are the columns compared per table (serial ids left out)
// and how many of them name the row in a report.
func (tg Target) verifyColumns(table string) (cols []string, keyCols int) {
	if tg.Mongoose {
		if v, ok := mimVerify[table]; ok {
			return v.cols, v.key
		}
		return tg.Columns(table), 2
	}
	for _, c := range tg.Columns(table) {
		if (table == "privacy_list" || table == "privacy_list_data") && c == "id" {
			continue
		}
		cols = append(cols, c)
	}
	keyCols = 1
	if tg.Multihost && hostIndex[table] == 1 {
		keyCols = 2
	}
	switch table {
	case "rosterusers", "rostergroups", "private_storage", "privacy_list":
		keyCols++
	case "muc_room", "muc_room_subscribers", "pubsub_node", "pubsub_item", "pubsub_state":
		keyCols = 2
	}
	if table == "privacy_list_data" {
		// owner, (server_host,) list name first
		extra := []string{"l.username", "l.name"}
		if tg.Multihost {
			extra = []string{"l.username", "l.server_host", "l.name"}
		}
		return append(extra, cols...), len(extra)
	}
	return cols, keyCols
}

// mimVerify says how the MongooseIM tables whose rows hold assigned ids
// are compared: the ids replaced by what they stand for (the same order as
// the mapper's Row.Canon), read through joins.
var mimVerify = map[string]struct {
	cols []string
	from string
	key  int
}{
	"privacy_list":      {[]string{"server", "username", "name"}, "", 3},
	"privacy_list_data": {[]string{"l.server", "l.username", "l.name", "d.t", "d.value", "d.action", "d.ord", "d.match_all", "d.match_iq", "d.match_message", "d.match_presence_in", "d.match_presence_out"}, "privacy_list_data d JOIN privacy_list l ON l.id = d.id", 3},
	"muc_rooms":         {[]string{"muc_host", "room_name", "options"}, "", 2},
	"muc_room_aff":      {[]string{"r.muc_host", "r.room_name", "a.luser", "a.lserver", "a.resource", "a.aff"}, "muc_room_aff a JOIN muc_rooms r ON r.id = a.room_id", 2},
	"mam_server_user":   {[]string{"server", "user_name"}, "", 2},
	"mam_message":       {[]string{"u.server", "u.user_name", "m.id", "m.from_jid", "m.remote_bare_jid", "m.remote_resource", "m.direction", "m.message", "m.search_body", "m.origin_id", "m.is_groupchat"}, "mam_message m JOIN mam_server_user u ON u.id = m.user_id", 3},
	"mam_muc_message":   {[]string{"r.server", "r.user_name", "m.id", "s.server", "s.user_name", "m.nick_name", "m.message", "m.search_body", "m.origin_id"}, "mam_muc_message m JOIN mam_server_user r ON r.id = m.room_id JOIN mam_server_user s ON s.id = m.sender_id", 3},
	"mam_config":        {[]string{"u.server", "u.user_name", "c.remote_jid", "c.behaviour"}, "mam_config c JOIN mam_server_user u ON u.id = c.user_id", 3},
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
	Table string
	Kind  string // missing (in the source, not in the database), extra, different
	Key   string
	Count int
}

// TableVerify is one target table's comparison.
type TableVerify struct {
	Table      string
	Source     int64 // rows the source maps to
	Database   int64
	Missing    int64
	Extra      int64
	Different  int64
	Mismatches []Mismatch // the first few
}

// OK reports whether the table matches.
func (t TableVerify) OK() bool { return t.Missing == 0 && t.Extra == 0 && t.Different == 0 }

// VerifyResult is a verification's outcome.
type VerifyResult struct {
	Tables  []TableVerify
	Rejects int64 // source records that cannot be mapped (not expected in the database)
}

// Verify maps the source as an export would and compares every row with
// the database.
func Verify(ctx context.Context, src RecordSource, pool *pgxpool.Pool, opt Options, maxReport int) (*VerifyResult, error) {
	tables, _, err := Plan(src, opt)
	if err != nil {
		return nil, err
	}
	base := &Mapper{Target: opt.Target, Services: opt.Services, Known: map[string]bool{}, MamUsers: NewMamUsers(nil)}
	if len(opt.Hosts) > 0 {
		base.Hosts = map[string]bool{}
		for _, h := range opt.Hosts {
			base.Hosts[h] = true
		}
	}
	for _, h := range append(opt.Known, opt.Hosts...) {
		base.Known[h] = true
	}
	if _, ok := src.Tables()["pubsub_node"]; ok {
		base.PubsubNodes = map[int64]string{}
		if err := src.Stream(ctx, []string{"pubsub_node"}, func(_ string, rec []byte) error {
			if v, err := term.Decode(rec); err == nil {
				base.NotePubsubNode(v)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	var targets []string
	seen := map[string]bool{}
	var names []string
	for _, t := range tables {
		names = append(names, t.Name)
		for _, tt := range t.Targets {
			if !seen[tt] {
				seen[tt] = true
				targets = append(targets, tt)
			}
		}
	}
	sort.Strings(targets)
	res := &VerifyResult{}
	want := map[string]*rowSet{}
	for _, tt := range targets {
		want[tt] = &rowSet{}
	}
	if res.Rejects, err = verifySource(ctx, src, base, tables, names, opt.Target, want); err != nil {
		return nil, err
	}
	missing, extra := map[string]map[digest]int{}, map[string]map[digest]int{}
	for _, tt := range targets {
		got := &rowSet{}
		if err := readTable(ctx, pool, opt.Target, tt, got); err != nil {
			return nil, err
		}
		w := want[tt]
		w.sort()
		got.sort()
		tv := TableVerify{Table: tt, Source: int64(len(w.ds)), Database: int64(len(got.ds))}
		missing[tt], extra[tt] = diffSorted(w.ds, got.ds)
		w.ds = nil
		res.Tables = append(res.Tables, tv)
	}
	// Second passes, only where rows differ: name them by their keys.
	var again []Table
	for _, t := range tables {
		for _, tt := range t.Targets {
			if len(missing[tt]) > 0 {
				again = append(again, t)
				break
			}
		}
	}
	if len(again) > 0 {
		var againNames []string
		for _, tt := range targets {
			want[tt] = &rowSet{find: map[digest]string{}}
			for d := range missing[tt] {
				want[tt].find[d] = ""
			}
		}
		for _, t := range again {
			againNames = append(againNames, t.Name)
		}
		if _, err := verifySource(ctx, src, base, again, againNames, opt.Target, want); err != nil {
			return nil, err
		}
	}
	for i, tt := range targets {
		got := &rowSet{find: map[digest]string{}}
		for d := range extra[tt] {
			got.find[d] = ""
		}
		if len(got.find) > 0 {
			if err := readTable(ctx, pool, opt.Target, tt, got); err != nil {
				return nil, err
			}
		}
		res.Tables[i] = compareSets(res.Tables[i], missing[tt], want[tt].find, extra[tt], got.find, maxReport)
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

// verifySource maps the source's records as an export would and adds every
// row to its table's set. It returns the count of records that cannot be
// mapped.
func verifySource(ctx context.Context, src RecordSource, base *Mapper, tables []Table, names []string, tg Target, want map[string]*rowSet) (int64, error) {
	mappers := map[string]*Mapper{}
	byName := map[string]Table{}
	mam := NewMamUsers(nil) // each pass numbers the archive owners afresh
	for _, t := range tables {
		m := *base
		m.MamUsers = mam
		mappers[t.Name] = &m
		byName[t.Name] = t
	}
	var rejMu sync.Mutex
	var rejects int64
	reject := func() {
		rejMu.Lock()
		rejects++
		rejMu.Unlock()
	}
	err := src.Stream(ctx, names, func(table string, raw []byte) error {
		t, m := byName[table], mappers[table]
		v, err := term.Decode(raw)
		if err != nil {
			reject()
			return nil
		}
		rows, skip, err := m.Map(t, v)
		if err == nil {
			err = m.Target.checkRows(rows)
		}
		if skip != "" || err != nil {
			if err != nil {
				reject()
			}
			return nil
		}
		lists := map[int64][]string{} // privacy list id -> owner, (host,) name
		for _, row := range rows {
			if row.Table == "privacy_list" {
				vals := make([]string, 0, 3)
				for _, v := range row.Values[:len(row.Values)-1] {
					vals = append(vals, canonical(v))
				}
				lists[row.Values[len(row.Values)-1].(int64)] = vals
			}
		}
		for _, row := range rows {
			_, keyCols := tg.verifyColumns(row.Table)
			var vals []string
			switch {
			case row.Canon != nil:
				for _, v := range row.Canon {
					vals = append(vals, canonical(v))
				}
			case row.Table == "privacy_list":
				for _, v := range row.Values[:len(row.Values)-1] {
					vals = append(vals, canonical(v))
				}
			case row.Table == "privacy_list_data":
				vals = append(vals, lists[row.Values[0].(int64)]...)
				for _, v := range row.Values[1:] {
					vals = append(vals, canonical(v))
				}
			default:
				for _, v := range row.Values {
					vals = append(vals, canonical(v))
				}
			}
			want[row.Table].add(vals, keyCols)
		}
		return nil
	})
	return rejects, err
}

// readTable reads a table's rows in canonical form.
func readTable(ctx context.Context, pool *pgxpool.Pool, tg Target, table string, set *rowSet) error {
	cols, keyCols := tg.verifyColumns(table)
	sel := make([]string, len(cols))
	for i, c := range cols {
		name := c
		if !strings.Contains(c, ".") {
			name = pgx.Identifier{c}.Sanitize()
			if table == "privacy_list_data" && !tg.Mongoose {
				name = "d." + name
			}
		}
		sel[i] = name + "::text"
		if c == "created_at" && !tg.Mongoose { // ejabberd's timestamp column (MongooseIM's are µs integers)
			sel[i] = fmt.Sprintf("to_char(%s, 'YYYY-MM-DD HH24:MI:SS.US')", name)
		}
	}
	from := pgx.Identifier{table}.Sanitize()
	if table == "privacy_list_data" {
		from = "privacy_list_data d JOIN privacy_list l ON l.id = d.id"
	}
	if v, ok := mimVerify[table]; ok && tg.Mongoose && v.from != "" {
		from = v.from
	}
	rows, err := pool.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+from)
	if err != nil {
		return fmt.Errorf("reading %s: %w", table, err)
	}
	defer rows.Close()
	vals := make([]string, len(cols))
	nullable := make([]*string, len(cols))
	ptrs := make([]any, len(cols))
	for i := range nullable {
		ptrs[i] = &nullable[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i, c := range cols {
			switch {
			case nullable[i] == nil:
				vals[i] = canonical(nil)
			case c == "created_at" && !tg.Mongoose:
				// as canonical prints a time: no trailing zeros in the fraction
				vals[i] = strings.TrimRight(strings.TrimRight(*nullable[i], "0"), ".")
			default:
				vals[i] = *nullable[i]
			}
		}
		set.add(vals, keyCols)
	}
	return rows.Err()
}

// compareSets names the differences by key: a key with rows missing and
// rows extra has different rows.
func compareSets(tv TableVerify, missing map[digest]int, missingKey map[digest]string, extra map[digest]int, extraKey map[digest]string, maxReport int) TableVerify {
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
	tv.Mismatches = out
	return tv
}
