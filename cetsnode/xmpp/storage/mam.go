package storage

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Message archive (XEP-0313) in ejabberd 23.01's SQL tables: archive rows
// keyed by the user and a microsecond timestamp, which is also the
// message's archive id (what clients know as its stanza id), and
// archive_prefs holding default, always and never (the lists as Erlang
// terms, as mod_mam_sql writes them).

// ArchiveRow is one archived message to store.
type ArchiveRow struct {
	ID       int64  // microseconds since the epoch: the archive id
	Peer     string // the other party, lowercased (full JID as addressed)
	BarePeer string
	XML      string
	Text     string // the first body's text
	Kind     string // chat (groupchat for rooms)
	Nick     string
}

// Archive stores a message in a user's archive.
func (s *Store) Archive(ctx context.Context, host, user string, r ArchiveRow) error {
	cols := "username, timestamp, peer, bare_peer, xml, txt, kind, nick"
	if s.Multihost {
		cols = "username, server_host, timestamp, peer, bare_peer, xml, txt, kind, nick"
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO archive (`+cols+`) VALUES ($1, `+pl(s, 0, 7)+`)`,
		s.args(host, user, r.ID, r.Peer, r.BarePeer, r.XML, r.Text, r.Kind, r.Nick)...)
	return err
}

// ArchivePrefs are a user's archiving preferences as stored: Default is
// always, never or roster; Always and Never are Erlang terms (lists of
// {User, Server, Resource} tuples).
type ArchivePrefs struct {
	Default, Always, Never string
}

// ArchivePrefs reads a user's preferences; ok is false when the user has
// none stored.
func (s *Store) ArchivePrefs(ctx context.Context, host, user string) (p ArchivePrefs, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT def, always, never FROM archive_prefs WHERE username = $1`+s.hostCond(2), s.args(host, user)...).
		Scan(&p.Default, &p.Always, &p.Never)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, false, nil
	}
	return p, err == nil, err
}

// SetArchivePrefs writes a user's preferences.
func (s *Store) SetArchivePrefs(ctx context.Context, host, user string, p ArchivePrefs) error {
	cols, key := "username, def, always, never", "username"
	if s.Multihost {
		cols, key = "username, server_host, def, always, never", "username, server_host"
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO archive_prefs (`+cols+`) VALUES ($1, `+pl(s, 0, 3)+`)
		ON CONFLICT (`+key+`) DO UPDATE SET def = EXCLUDED.def, always = EXCLUDED.always, never = EXCLUDED.never`,
		s.args(host, user, p.Default, p.Always, p.Never)...)
	return err
}

// ArchiveQuery selects from a user's archive as mod_mam_sql does.
type ArchiveQuery struct {
	// With is the peer as the client wrote it; WithFull says it has a
	// resource (then the full peer is matched, else the bare one).
	With     string
	WithFull bool
	// Start and End bound the timestamp, in microseconds (0: unbounded).
	Start, End int64
	HasStart   bool
	HasEnd     bool
	// WithText is a full-text search (ejabberd's SQL backend writes it
	// in MySQL's words, which PostgreSQL refuses: see QueryArchive).
	WithText string
	// Before and After are RSM's ids as given; Direction is "before",
	// "after" or "". An id that is not a non-negative integer does not
	// bound the page (a before without one asks for the last page).
	Direction string
	ID        string
	// Max is the page size (negative: no limit).
	Max int
}

// ArchivedMessage is one row a query returns.
type ArchivedMessage struct {
	ID   string // the timestamp as the database writes it
	XML  string
	Peer string
	Kind string
	Nick string
}

// ErrFullText is a query with a text search: ejabberd's SQL backend
// fails it on PostgreSQL, and so does this one (the caller answers as
// ejabberd does: an empty, incomplete page).
var ErrFullText = errors.New("full-text search is not available on PostgreSQL")

// QueryArchive returns the page of a user's archive a query selects
// (up to Max+1 rows, oldest first, the extra one telling the page is not
// the last) and how many messages match without paging.
func (s *Store) QueryArchive(ctx context.Context, host, user string, q ArchiveQuery) ([]ArchivedMessage, int64, error) {
	if q.WithText != "" {
		return nil, 0, ErrFullText
	}
	args := s.args(host, user)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var where strings.Builder
	where.WriteString("username = $1")
	where.WriteString(s.hostCond(2))
	if q.With != "" {
		if q.WithFull {
			where.WriteString(" AND peer = " + arg(q.With))
		} else {
			where.WriteString(" AND bare_peer = " + arg(q.With))
		}
	}
	if q.HasStart {
		where.WriteString(" AND timestamp >= " + arg(q.Start))
	}
	if q.HasEnd {
		where.WriteString(" AND timestamp <= " + arg(q.End))
	}
	countArgs := len(args)
	filter := where.String()
	if id, ok := archiveID(q.ID); ok {
		// Compared as bigint, so that the (username, timestamp) index
		// bounds the page; an id past the bigint range is after every
		// timestamp.
		n, err := strconv.ParseInt(id, 10, 64)
		switch {
		case err != nil && q.Direction == "after":
			where.WriteString(" AND false")
		case err != nil:
		case q.Direction == "before":
			where.WriteString(" AND timestamp < " + arg(n))
		case q.Direction == "after":
			where.WriteString(" AND timestamp > " + arg(n))
		}
	}
	limit := ""
	if q.Max >= 0 {
		limit = " LIMIT " + strconv.Itoa(q.Max+1)
	}
	// The timestamp is read as it is (bigint): the rows are ordered by
	// it, along the (username, timestamp) index.
	sel := "SELECT timestamp, xml, peer, coalesce(kind, ''), coalesce(nick, '') FROM archive WHERE " + where.String()
	var sqlText string
	if q.Direction == "before" {
		sqlText = "SELECT * FROM (" + sel + " ORDER BY timestamp DESC" + limit + ") AS t ORDER BY timestamp ASC"
	} else {
		sqlText = sel + " ORDER BY timestamp ASC" + limit
	}
	batch := &pgx.Batch{}
	batch.Queue(sqlText, args...)
	batch.Queue("SELECT count(*) FROM archive WHERE "+filter, args[:countArgs]...)
	br := s.pool.SendBatch(ctx, batch)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, 0, err
	}
	var out []ArchivedMessage
	for rows.Next() {
		var m ArchivedMessage
		var ts int64
		if err := rows.Scan(&ts, &m.XML, &m.Peer, &m.Kind, &m.Nick); err != nil {
			rows.Close()
			return nil, 0, err
		}
		m.ID = strconv.FormatInt(ts, 10)
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	var count int64
	if err := br.QueryRow().Scan(&count); err != nil {
		return nil, 0, err
	}
	return out, count, nil
}

// archiveID reads an RSM id as mod_mam_sql does (binary_to_integer, then
// at least 0): an optional sign, then digits (any number of them).
func archiveID(s string) (string, bool) {
	d := strings.TrimPrefix(s, "+")
	if d == "" {
		return "", false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return d, true
}
