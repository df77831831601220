package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// RosterItem is one contact of a roster as ejabberd keeps it (mod_roster's
// #roster record; rosterusers and rostergroups rows).
type RosterItem struct {
	JID          string // the contact's bare JID, prepared
	Name         string
	Subscription string // none, to, from, both
	// Ask is the pending state: none, in, out, both (and subscribe,
	// unsubscribe, which older ejabberd versions wrote).
	Ask        string
	AskMessage string
	Groups     []string
}

var subscriptionCode = map[string]string{"both": "B", "to": "T", "from": "F", "none": "N"}
var askCode = map[string]string{"subscribe": "S", "unsubscribe": "U", "both": "B", "out": "O", "in": "I", "none": "N"}

func decodeSubscription(s string) string {
	for k, v := range subscriptionCode {
		if v == s {
			return k
		}
	}
	return "none"
}

func decodeAsk(s string) string {
	for k, v := range askCode {
		if v == s {
			return k
		}
	}
	return "none"
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// args are the user's key (and the host with pg.new.sql), then more.
func (s *Store) args(host, user string, more ...any) []any {
	a := []any{user}
	if s.Multihost {
		a = append(a, host)
	}
	return append(a, more...)
}

// n is the number of the next placeholder after the user's key.
func (s *Store) n(i int) string {
	if s.Multihost {
		return fmt.Sprintf("$%d", i+3)
	}
	return fmt.Sprintf("$%d", i+2)
}

// Roster reads a user's roster, as mod_roster_sql does.
func (s *Store) Roster(ctx context.Context, host, user string) ([]RosterItem, error) {
	return s.roster(ctx, s.pool, host, user, "")
}

func (s *Store) roster(ctx context.Context, q querier, host, user, jid string) ([]RosterItem, error) {
	cond := `username = $1` + s.hostCond(2)
	args := s.args(host, user)
	if jid != "" {
		cond += ` AND jid = ` + s.n(0)
		args = append(args, jid)
	}
	rows, err := q.Query(ctx, `SELECT jid, nick, subscription, ask, askmessage FROM rosterusers WHERE `+cond+` ORDER BY jid`, args...)
	if err != nil {
		return nil, err
	}
	var items []RosterItem
	for rows.Next() {
		var it RosterItem
		var sub, ask string
		if err := rows.Scan(&it.JID, &it.Name, &sub, &ask, &it.AskMessage); err != nil {
			rows.Close()
			return nil, err
		}
		it.Subscription, it.Ask = decodeSubscription(sub), decodeAsk(ask)
		items = append(items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, nil
	}
	rows, err = q.Query(ctx, `SELECT jid, grp FROM rostergroups WHERE `+cond+` ORDER BY jid, grp`, args...)
	if err != nil {
		return nil, err
	}
	groups := map[string][]string{}
	for rows.Next() {
		var j, g string
		if err := rows.Scan(&j, &g); err != nil {
			rows.Close()
			return nil, err
		}
		groups[j] = append(groups[j], g)
	}
	rows.Close()
	for i := range items {
		items[i].Groups = groups[items[i].JID]
	}
	return items, rows.Err()
}

// RosterTx is a change of one user's roster, in one transaction that
// holds the user's roster lock (two nodes changing one roster wait for
// each other, as in ejabberd's SQL transaction).
type RosterTx struct {
	s          *Store
	tx         pgx.Tx
	host, user string
}

// ChangeRoster runs fn in a transaction on a user's roster.
func (s *Store) ChangeRoster(ctx context.Context, host, user string, fn func(*RosterTx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('mimmigrate roster ' || $1))`, user+"@"+host); err != nil {
		return err
	}
	if err := fn(&RosterTx{s: s, tx: tx, host: host, user: user}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Item reads one contact (ok false: not in the roster).
func (t *RosterTx) Item(ctx context.Context, jid string) (RosterItem, bool, error) {
	items, err := t.s.roster(ctx, t.tx, t.host, t.user, jid)
	if err != nil || len(items) == 0 {
		return RosterItem{}, false, err
	}
	return items[0], true, nil
}

// Put writes a contact as mod_roster_sql's roster_subscribe does (server
// 'N', subscribe ”, type 'item'), and with groups its groups too
// (update_roster).
func (t *RosterTx) Put(ctx context.Context, it RosterItem, groups bool) error {
	s := t.s
	sub, ask := subscriptionCode[it.Subscription], askCode[it.Ask]
	if sub == "" || ask == "" {
		return errors.New("a roster item with an unknown subscription or ask")
	}
	key := "(username, jid)"
	cols := "username, jid"
	if s.Multihost {
		key, cols = "(server_host, username, jid)", "username, server_host, jid"
	}
	args := s.args(t.host, t.user, it.JID, it.Name, sub, ask, it.AskMessage)
	_, err := t.tx.Exec(ctx, `INSERT INTO rosterusers (`+cols+`, nick, subscription, ask, askmessage, server, subscribe, type)
		VALUES ($1, `+pl(s, 0, 5)+`, 'N', '', 'item')
		ON CONFLICT `+key+` DO UPDATE SET nick = EXCLUDED.nick, subscription = EXCLUDED.subscription, ask = EXCLUDED.ask,
			askmessage = EXCLUDED.askmessage, server = 'N', subscribe = '', type = 'item'`, args...)
	if err != nil || !groups {
		return err
	}
	if _, err := t.tx.Exec(ctx, `DELETE FROM rostergroups WHERE username = $1`+s.hostCond(2)+` AND jid = `+s.n(0), s.args(t.host, t.user, it.JID)...); err != nil {
		return err
	}
	gcols := "username, jid, grp"
	if s.Multihost {
		gcols = "username, server_host, jid, grp"
	}
	for _, g := range it.Groups {
		if _, err := t.tx.Exec(ctx, `INSERT INTO rostergroups (`+gcols+`) VALUES ($1, `+pl(s, 0, 2)+`)`, s.args(t.host, t.user, it.JID, g)...); err != nil {
			return err
		}
	}
	return nil
}

// pl lists the placeholders of k values after the user's key, from i.
func pl(s *Store, i, k int) string {
	out := ""
	if s.Multihost {
		out = "$2, "
	}
	for j := i; j < i+k; j++ {
		if j > i {
			out += ", "
		}
		out += s.n(j)
	}
	return out
}

// Delete removes a contact and its groups.
func (t *RosterTx) Delete(ctx context.Context, jid string) error {
	s := t.s
	for _, tbl := range []string{"rosterusers", "rostergroups"} {
		if _, err := t.tx.Exec(ctx, `DELETE FROM `+tbl+` WHERE username = $1`+s.hostCond(2)+` AND jid = `+s.n(0), s.args(t.host, t.user, jid)...); err != nil {
			return err
		}
	}
	return nil
}

// SetVersion stores the roster's version (mod_roster store_current_id).
func (t *RosterTx) SetVersion(ctx context.Context, v string) error {
	return t.s.setRosterVersion(ctx, t.tx, t.host, t.user, v)
}

// RosterVersion reads the stored roster version ("" when none).
func (s *Store) RosterVersion(ctx context.Context, host, user string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT version FROM roster_version WHERE username = $1`+s.hostCond(2), s.args(host, user)...).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return v, err
}

// SetRosterVersion stores a roster version outside a roster change.
func (s *Store) SetRosterVersion(ctx context.Context, host, user, v string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := s.setRosterVersion(ctx, tx, host, user, v); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (s *Store) setRosterVersion(ctx context.Context, tx pgx.Tx, host, user, v string) error {
	key, cols := "(username)", "username"
	if s.Multihost {
		key, cols = "(server_host, username)", "username, server_host"
	}
	_, err := tx.Exec(ctx, `INSERT INTO roster_version (`+cols+`, version) VALUES ($1, `+pl(s, 0, 1)+`)
		ON CONFLICT `+key+` DO UPDATE SET version = EXCLUDED.version`, s.args(host, user, v)...)
	return err
}

// SetLast stores a user's last activity as mod_last_sql does: the time in
// seconds and the status of the last unavailable presence.
func (s *Store) SetLast(ctx context.Context, host, user string, seconds int64, state string) error {
	key, cols := "(username)", "username"
	if s.Multihost {
		key, cols = "(server_host, username)", "username, server_host"
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO last (`+cols+`, seconds, state) VALUES ($1, `+pl(s, 0, 2)+`)
		ON CONFLICT `+key+` DO UPDATE SET seconds = EXCLUDED.seconds, state = EXCLUDED.state`,
		s.args(host, user, fmt.Sprint(seconds), state)...)
	return err
}

// Last reads a user's last activity (ok false: none stored).
func (s *Store) Last(ctx context.Context, host, user string) (seconds int64, state string, ok bool, err error) {
	var sec string
	err = s.pool.QueryRow(ctx, `SELECT seconds, state FROM last WHERE username = $1`+s.hostCond(2), s.args(host, user)...).Scan(&sec, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, err
	}
	if _, err := fmt.Sscan(sec, &seconds); err != nil {
		return 0, "", false, fmt.Errorf("the last row of %s@%s holds %q, not a number of seconds", user, host, sec)
	}
	return seconds, state, true, nil
}

// RosterItem reads one contact of a user's roster (ok false: none).
func (s *Store) RosterItem(ctx context.Context, host, user, jid string) (RosterItem, bool, error) {
	items, err := s.roster(ctx, s.pool, host, user, jid)
	if err != nil || len(items) == 0 {
		return RosterItem{}, false, err
	}
	return items[0], true, nil
}
