package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Privacy lists (XEP-0016) in ejabberd 23.01's SQL tables: privacy_list
// names a user's lists (with an id), privacy_list_data holds their items,
// privacy_default_list the default one. Blocking (XEP-0191) is kept in
// the default list, as ejabberd keeps it.

// PrivacyItem is one rule of a list, as mod_privacy_sql stores it.
type PrivacyItem struct {
	Type  byte   // n (any), j (a JID), g (a roster group), s (a subscription)
	Value string // the JID (prepared), the group, the subscription
	Deny  bool
	Order string // a non-negative integer, as stored (numeric)
	// MatchAll: every kind of stanza; else the kinds named.
	MatchAll, IQ, Message, PresenceIn, PresenceOut bool
}

// ErrNoList is a privacy list that does not exist; ErrDefaultList one
// that cannot be removed as it is the default.
var (
	ErrNoList      = errors.New("no such privacy list")
	ErrDefaultList = errors.New("the list is the default one")
)

// PrivacyLists returns the default list's name ("" for none) and the
// names of a user's lists.
func (s *Store) PrivacyLists(ctx context.Context, host, user string) (string, []string, error) {
	var def string
	err := s.pool.QueryRow(ctx, `SELECT name FROM privacy_default_list WHERE username = $1`+s.hostCond(2), s.args(host, user)...).Scan(&def)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", nil, err
	}
	// In the order the database reads them, as ejabberd's query (the
	// same one) has them.
	rows, err := s.pool.Query(ctx, `SELECT name FROM privacy_list WHERE username = $1`+s.hostCond(2), s.args(host, user)...)
	if err != nil {
		return "", nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return def, names, err
}

// PrivacyList reads a list's items by order; found is false when there
// is no list of that name.
func (s *Store) PrivacyList(ctx context.Context, host, user, name string) (items []PrivacyItem, found bool, err error) {
	var id int64
	err = s.pool.QueryRow(ctx, `SELECT id FROM privacy_list WHERE username = $1`+s.hostCond(2)+` AND name = `+s.n(0), s.args(host, user, name)...).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	rows, err := s.pool.Query(ctx, `SELECT t, value, action, ord::text AS ord_text, match_all, match_iq, match_message, match_presence_in, match_presence_out
		FROM privacy_list_data WHERE id = $1 ORDER BY ord`, id)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var it PrivacyItem
		var t, action string
		if err := rows.Scan(&t, &it.Value, &action, &it.Order, &it.MatchAll, &it.IQ, &it.Message, &it.PresenceIn, &it.PresenceOut); err != nil {
			return nil, false, err
		}
		if t == "" {
			continue
		}
		it.Type, it.Deny = t[0], action == "d"
		items = append(items, it)
	}
	return items, true, rows.Err()
}

// DefaultPrivacyList reads the default list: its name ("" for none) and
// items.
func (s *Store) DefaultPrivacyList(ctx context.Context, host, user string) (string, []PrivacyItem, error) {
	def, _, err := s.PrivacyLists(ctx, host, user)
	if err != nil || def == "" {
		return "", nil, err
	}
	items, _, err := s.PrivacyList(ctx, host, user, def)
	return def, items, err
}

// SetPrivacyList writes a list (made when new) with its items; with
// makeDefault it becomes the default list in the same transaction.
func (s *Store) SetPrivacyList(ctx context.Context, host, user, name string, items []PrivacyItem, makeDefault bool) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var id int64
	err = tx.QueryRow(ctx, `SELECT id FROM privacy_list WHERE username = $1`+s.hostCond(2)+` AND name = `+s.n(0), s.args(host, user, name)...).Scan(&id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		cols := "username, name"
		if s.Multihost {
			cols = "username, server_host, name"
		}
		if err := tx.QueryRow(ctx, `INSERT INTO privacy_list (`+cols+`) VALUES ($1, `+pl(s, 0, 1)+`) RETURNING id`, s.args(host, user, name)...).Scan(&id); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM privacy_list_data WHERE id = $1`, id); err != nil {
		return err
	}
	for _, it := range items {
		action := "a"
		if it.Deny {
			action = "d"
		}
		if _, err := tx.Exec(ctx, `INSERT INTO privacy_list_data (id, t, value, action, ord, match_all, match_iq, match_message, match_presence_in, match_presence_out)
			VALUES ($1, $2, $3, $4, $5::numeric, $6, $7, $8, $9, $10)`, id, string(it.Type), it.Value, action, it.Order,
			it.MatchAll, it.IQ, it.Message, it.PresenceIn, it.PresenceOut); err != nil {
			return err
		}
	}
	if makeDefault {
		if err := s.setDefault(ctx, tx, host, user, name); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

func (s *Store) setDefault(ctx context.Context, tx pgx.Tx, host, user, name string) error {
	cols, key := "username, name", "username"
	if s.Multihost {
		cols, key = "username, server_host, name", "server_host, username"
	}
	_, err := tx.Exec(ctx, `INSERT INTO privacy_default_list (`+cols+`) VALUES ($1, `+pl(s, 0, 1)+`)
		ON CONFLICT (`+key+`) DO UPDATE SET name = EXCLUDED.name`, s.args(host, user, name)...)
	return err
}

// SetDefaultPrivacyList makes a list the default ("" : no default).
func (s *Store) SetDefaultPrivacyList(ctx context.Context, host, user, name string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if name == "" {
		if _, err := tx.Exec(ctx, `DELETE FROM privacy_default_list WHERE username = $1`+s.hostCond(2), s.args(host, user)...); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM privacy_list WHERE username = $1`+s.hostCond(2)+` AND name = `+s.n(0), s.args(host, user, name)...).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrNoList
	}
	if err := s.setDefault(ctx, tx, host, user, name); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// RemovePrivacyList removes a list that is not the default.
func (s *Store) RemovePrivacyList(ctx context.Context, host, user, name string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var def string
	err = tx.QueryRow(ctx, `SELECT name FROM privacy_default_list WHERE username = $1`+s.hostCond(2), s.args(host, user)...).Scan(&def)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if def == name {
		return ErrDefaultList
	}
	tag, err := tx.Exec(ctx, `DELETE FROM privacy_list WHERE username = $1`+s.hostCond(2)+` AND name = `+s.n(0), s.args(host, user, name)...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNoList
	}
	return tx.Commit(ctx)
}

func (it PrivacyItem) String() string {
	return fmt.Sprintf("%c:%s deny=%v order=%s", it.Type, it.Value, it.Deny, it.Order)
}
