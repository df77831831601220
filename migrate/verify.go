package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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

type rowSet struct {
	mu    sync.Mutex
	count map[digest]int32
	key   map[digest]string // the row's key columns, for the report
	n     int64
}

func newRowSet() *rowSet { return &rowSet{count: map[digest]int32{}, key: map[digest]string{}} }

func (s *rowSet) add(vals []string, keyCols int) {
	h := sha256.New()
	for _, v := range vals {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	var d digest
	copy(d[:], h.Sum(nil))
	s.mu.Lock()
	s.count[d]++
	if _, ok := s.key[d]; !ok {
		s.key[d] = strings.Join(vals[:min(keyCols, len(vals))], "/")
	}
	s.n++
	s.mu.Unlock()
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
	want := map[string]*rowSet{}
	var targets []string
	for _, t := range tables {
		for _, tt := range t.Targets {
			if want[tt] == nil {
				want[tt] = newRowSet()
				targets = append(targets, tt)
			}
		}
	}
	mappers := map[string]*Mapper{}
	byName := map[string]Table{}
	for _, t := range tables {
		m := *base
		mappers[t.Name] = &m
		byName[t.Name] = t
	}
	var names []string
	for _, t := range tables {
		names = append(names, t.Name)
	}
	res := &VerifyResult{}
	var rejMu sync.Mutex
	err = src.Stream(ctx, names, func(table string, raw []byte) error {
		t, m := byName[table], mappers[table]
		v, err := term.Decode(raw)
		if err != nil {
			rejMu.Lock()
			res.Rejects++
			rejMu.Unlock()
			return nil
		}
		rows, skip, err := m.Map(t, v)
		if err == nil {
			err = m.Target.checkRows(rows)
		}
		if skip != "" || err != nil {
			if err != nil {
				rejMu.Lock()
				res.Rejects++
				rejMu.Unlock()
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
			cols, keyCols := opt.Target.verifyColumns(row.Table)
			vals := make([]string, 0, len(cols))
			switch {
			case row.Canon != nil:
				for _, v := range row.Canon {
					vals = append(vals, canonical(v))
				}
				want[row.Table].add(vals, keyCols)
				continue
			}
			switch row.Table {
			case "privacy_list":
				for _, v := range row.Values[:len(row.Values)-1] {
					vals = append(vals, canonical(v))
				}
			case "privacy_list_data":
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
	if err != nil {
		return nil, err
	}
	sort.Strings(targets)
	for _, tt := range targets {
		got, err := readTable(ctx, pool, opt.Target, tt)
		if err != nil {
			return nil, err
		}
		res.Tables = append(res.Tables, compareSets(tt, want[tt], got, maxReport))
	}
	return res, nil
}

// readTable reads a table's rows in canonical form.
func readTable(ctx context.Context, pool *pgxpool.Pool, tg Target, table string) (*rowSet, error) {
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
		if c == "created_at" {
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
		return nil, fmt.Errorf("reading %s: %w", table, err)
	}
	defer rows.Close()
	set := newRowSet()
	vals := make([]string, len(cols))
	nullable := make([]*string, len(cols))
	ptrs := make([]any, len(cols))
	for i := range nullable {
		ptrs[i] = &nullable[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, c := range cols {
			switch {
			case nullable[i] == nil:
				vals[i] = canonical(nil)
			case c == "created_at":
				// as canonical prints a time: no trailing zeros in the fraction
				vals[i] = strings.TrimRight(strings.TrimRight(*nullable[i], "0"), ".")
			default:
				vals[i] = *nullable[i]
			}
		}
		set.add(vals, keyCols)
	}
	return set, rows.Err()
}

func compareSets(table string, want, got *rowSet, maxReport int) TableVerify {
	tv := TableVerify{Table: table, Source: want.n, Database: got.n}
	missingKeys, extraKeys := map[string]int{}, map[string]int{}
	for d, n := range want.count {
		if k := n - got.count[d]; k > 0 {
			missingKeys[want.key[d]] += int(k)
		}
	}
	for d, n := range got.count {
		if k := n - want.count[d]; k > 0 {
			extraKeys[got.key[d]] += int(k)
		}
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
