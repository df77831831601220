package storage

import (
	"context"
	"errors"
	"sort"
)

// ErrSpoolFull is a message refused: the user's offline queue holds the
// most it may.
var ErrSpoolFull = errors.New("the offline message queue is full")

// StoreOffline adds a message (the XML ejabberd's SQL backend writes) to
// a user's spool, unless it already holds max messages (0: no limit).
// Stores for one user are serialised, so the limit holds with several
// nodes.
func (s *Store) StoreOffline(ctx context.Context, host, user, xml string, max int) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('mimmigrate spool ' || $1))`, user+"@"+host); err != nil {
		return err
	}
	if max > 0 {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM spool WHERE username = $1`+s.hostCond(2), s.args(host, user)...).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return ErrSpoolFull
		}
	}
	cols := "username, xml"
	if s.Multihost {
		cols = "username, server_host, xml"
	}
	if _, err := tx.Exec(ctx, `INSERT INTO spool (`+cols+`) VALUES ($1, `+pl(s, 0, 1)+`)`, s.args(host, user, xml)...); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// PopOffline takes a user's stored messages, oldest first, and deletes
// them (ejabberd's pop_messages).
func (s *Store) PopOffline(ctx context.Context, host, user string) ([]string, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('mimmigrate spool ' || $1))`, user+"@"+host); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `DELETE FROM spool WHERE username = $1`+s.hostCond(2)+` RETURNING seq, xml`, s.args(host, user)...)
	if err != nil {
		return nil, err
	}
	type msg struct {
		seq int64
		xml string
	}
	var msgs []msg
	for rows.Next() {
		var m msg
		if err := rows.Scan(&m.seq, &m.xml); err != nil {
			rows.Close()
			return nil, err
		}
		msgs = append(msgs, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].seq < msgs[j].seq }) // oldest first
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.xml
	}
	return out, nil
}

// CountOffline is the number of messages in a user's spool.
func (s *Store) CountOffline(ctx context.Context, host, user string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM spool WHERE username = $1`+s.hostCond(2), s.args(host, user)...).Scan(&n)
	return n, err
}
