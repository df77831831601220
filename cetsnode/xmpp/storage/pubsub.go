package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PubSubNode is a row of pubsub_node with its options (name → the value
// as Erlang term text, as nodetree_tree_sql writes them).
type PubSubNode struct {
	Nidx    int64
	Host    string // a PEP owner's bare JID
	Node    string
	Plugin  string
	Options map[string]string
}

// PubSubItem is a row of pubsub_item.
type PubSubItem struct {
	ID, Publisher string
	Creation      string // "MMMMMM:SSSSSS:UUUUUU" (node_flat_sql's encode_now)
	Modification  string
	Payload       string
}

// EncodeNow writes a time as node_flat_sql's encode_now does.
func EncodeNow(t time.Time) string {
	us := t.UnixMicro()
	return fmt.Sprintf("%06d:%06d:%06d", us/1e12, us/1e6%1e6, us%1e6)
}

// DecodeNow reads it back (zero when it is not one).
func DecodeNow(s string) time.Time {
	var mega, sec, micro int64
	if _, err := fmt.Sscanf(s, "%d:%d:%d", &mega, &sec, &micro); err != nil {
		return time.Time{}
	}
	return time.UnixMicro((mega*1e6+sec)*1e6 + micro)
}

// PubSubNodes are a host's nodes (a PEP owner's, by bare JID).
func (s *Store) PubSubNodes(ctx context.Context, host string) ([]*PubSubNode, error) {
	return s.pubsubNodes(ctx, `WHERE host = $1`, host)
}

// PubSubNode reads one node (nil when there is none).
func (s *Store) PubSubNode(ctx context.Context, host, node string) (*PubSubNode, error) {
	ns, err := s.pubsubNodes(ctx, `WHERE host = $1 AND node = $2`, host, node)
	if err != nil || len(ns) == 0 {
		return nil, err
	}
	return ns[0], nil
}

func (s *Store) pubsubNodes(ctx context.Context, where string, args ...any) ([]*PubSubNode, error) {
	rows, err := s.pool.Query(ctx, `SELECT n.nodeid, n.host, n.node, n.plugin, o.name, o.val
		FROM pubsub_node n LEFT JOIN pubsub_node_option o USING (nodeid) `+strings.Replace(where, "host", "n.host", 1)+` ORDER BY n.nodeid`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*PubSubNode
	for rows.Next() {
		var n PubSubNode
		var name, val *string
		if err := rows.Scan(&n.Nidx, &n.Host, &n.Node, &n.Plugin, &name, &val); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Nidx != n.Nidx {
			n.Options = map[string]string{}
			out = append(out, &n)
		}
		if name != nil && val != nil {
			out[len(out)-1].Options[*name] = *val
		}
	}
	return out, rows.Err()
}

// ErrNodeExists: a node of that name is there already.
var ErrNodeExists = errors.New("node already exists")

// CreatePubSubNode writes a node, its options (in the order given) and
// its owner's state, as nodetree_tree_sql and node_flat_sql do, in one
// transaction.
func (s *Store) CreatePubSubNode(ctx context.Context, host, node, plugin string, options [][2]string, owner string) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	var nidx int64
	err = tx.QueryRow(ctx, `INSERT INTO pubsub_node (host, node, parent, plugin) VALUES ($1, $2, '', $3)
		ON CONFLICT (host, node) DO NOTHING RETURNING nodeid`, host, node, plugin).Scan(&nidx)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrNodeExists
	}
	if err != nil {
		return 0, err
	}
	for _, o := range options {
		if _, err := tx.Exec(ctx, `INSERT INTO pubsub_node_option (nodeid, name, val) VALUES ($1, $2, $3)`, nidx, o[0], o[1]); err != nil {
			return 0, err
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO pubsub_state (nodeid, jid, affiliation, subscriptions) VALUES ($1, $2, 'o', '')`, nidx, owner); err != nil {
		return 0, err
	}
	return nidx, tx.Commit(ctx)
}

// SetPubSubOptions replaces a node's options (nodetree_tree_sql's
// set_node: all of them rewritten).
func (s *Store) SetPubSubOptions(ctx context.Context, nidx int64, options [][2]string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `DELETE FROM pubsub_node_option WHERE nodeid = $1`, nidx); err != nil {
		return err
	}
	for _, o := range options {
		if _, err := tx.Exec(ctx, `INSERT INTO pubsub_node_option (nodeid, name, val) VALUES ($1, $2, $3)`, nidx, o[0], o[1]); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// DeletePubSubNode removes a node (its options, states and items go
// with it).
func (s *Store) DeletePubSubNode(ctx context.Context, nidx int64) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM pubsub_node WHERE nodeid = $1`, nidx)
	return err
}

// Affiliation is a JID's affiliation with a node (node_flat_sql's
// letters: o, p, u, m, c; "n" when it has none) and its subscriptions
// text.
func (s *Store) Affiliation(ctx context.Context, nidx int64, jid string) (string, string, error) {
	var a, subs string
	err := s.pool.QueryRow(ctx, `SELECT affiliation, subscriptions FROM pubsub_state WHERE nodeid = $1 AND jid = $2`, nidx, jid).Scan(&a, &subs)
	if errors.Is(err, pgx.ErrNoRows) {
		return "n", "", nil
	}
	return a, subs, err
}

const itemCols = `itemid, publisher, creation, modification, payload`

func scanItems(rows pgx.Rows) ([]PubSubItem, error) {
	defer rows.Close()
	var out []PubSubItem
	for rows.Next() {
		var it PubSubItem
		if err := rows.Scan(&it.ID, &it.Publisher, &it.Creation, &it.Modification, &it.Payload); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// PubSubItems are a node's items, oldest first (by creation); with
// limit > 0, the newest limit of them, newest first (node_flat_sql's
// last page).
func (s *Store) PubSubItems(ctx context.Context, nidx int64, limit int) ([]PubSubItem, int, error) {
	if limit <= 0 {
		rows, err := s.pool.Query(ctx, `SELECT `+itemCols+` FROM pubsub_item WHERE nodeid = $1 ORDER BY creation ASC`, nidx)
		if err != nil {
			return nil, 0, err
		}
		items, err := scanItems(rows)
		return items, len(items), err
	}
	var count int
	if err := s.pool.QueryRow(ctx, `SELECT count(itemid) FROM pubsub_item WHERE nodeid = $1`, nidx).Scan(&count); err != nil {
		return nil, 0, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+itemCols+` FROM pubsub_item WHERE nodeid = $1 ORDER BY creation DESC LIMIT $2`, nidx, limit)
	if err != nil {
		return nil, 0, err
	}
	items, err := scanItems(rows)
	return items, count, err
}

// LastPubSubItem is the item last modified (ok false when there is none).
func (s *Store) LastPubSubItem(ctx context.Context, nidx int64) (PubSubItem, bool, error) {
	return s.oneItem(ctx, `WHERE nodeid = $1 ORDER BY modification DESC LIMIT 1`, nidx)
}

// PubSubItem reads one item.
func (s *Store) PubSubItem(ctx context.Context, nidx int64, id string) (PubSubItem, bool, error) {
	return s.oneItem(ctx, `WHERE nodeid = $1 AND itemid = $2`, nidx, id)
}

func (s *Store) oneItem(ctx context.Context, where string, args ...any) (PubSubItem, bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+itemCols+` FROM pubsub_item `+where, args...)
	if err != nil {
		return PubSubItem{}, false, err
	}
	items, err := scanItems(rows)
	if err != nil || len(items) == 0 {
		return PubSubItem{}, false, err
	}
	return items[0], true, nil
}

// PublishPubSubItem stores an item as node_flat_sql's publish_item does:
// an item of that id is replaced when the publisher's bare JID created
// it (else forbidden: ok false); a new one is written, and the
// publisher's oldest items beyond maxItems (0: unlimited) removed — their
// ids are returned.
func (s *Store) PublishPubSubItem(ctx context.Context, nidx int64, it PubSubItem, bare string, maxItems int) (removed []string, ok bool, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback(ctx)
	var oldPublisher string
	err = tx.QueryRow(ctx, `SELECT publisher FROM pubsub_item WHERE nodeid = $1 AND itemid = $2 FOR UPDATE`, nidx, it.ID).Scan(&oldPublisher)
	switch {
	case err == nil:
		if pubBare(oldPublisher) != bare {
			return nil, false, nil
		}
		if _, err := tx.Exec(ctx, `UPDATE pubsub_item SET publisher = $3, modification = $4, payload = $5 WHERE nodeid = $1 AND itemid = $2`,
			nidx, it.ID, it.Publisher, it.Modification, it.Payload); err != nil {
			return nil, false, err
		}
		return nil, true, tx.Commit(ctx)
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, false, err
	}
	if maxItems > 0 {
		rows, err := tx.Query(ctx, `SELECT itemid FROM pubsub_item WHERE nodeid = $1 AND (publisher = $2 OR publisher LIKE $3 ESCAPE '\')
			ORDER BY modification DESC`, nidx, bare, likeEscape(bare)+"/%")
		if err != nil {
			return nil, false, err
		}
		ids := []string{it.ID}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, false, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if len(ids) > maxItems {
			removed = ids[maxItems:]
			if _, err := tx.Exec(ctx, `DELETE FROM pubsub_item WHERE nodeid = $1 AND itemid = ANY($2)`, nidx, removed); err != nil {
				return nil, false, err
			}
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO pubsub_item (nodeid, itemid, publisher, creation, modification, payload) VALUES ($1, $2, $3, $4, $5, $6)`,
		nidx, it.ID, it.Publisher, it.Creation, it.Modification, it.Payload); err != nil {
		return nil, false, err
	}
	return removed, true, tx.Commit(ctx)
}

// DeletePubSubItem removes an item (false when there was none).
func (s *Store) DeletePubSubItem(ctx context.Context, nidx int64, id string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM pubsub_item WHERE nodeid = $1 AND itemid = $2`, nidx, id)
	return tag.RowsAffected() == 1, err
}

func pubBare(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// CapsFeatures reads the features ejabberd's mod_caps learnt for a caps
// node and version (ok false when it has none).
func (s *Store) CapsFeatures(ctx context.Context, node, subnode string) ([]string, bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT feature FROM caps_features WHERE node = $1 AND subnode = $2`, node, subnode)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			return nil, false, err
		}
		out = append(out, f)
	}
	return out, len(out) > 0, rows.Err()
}

// SetCapsFeatures replaces them, as mod_caps_sql does.
func (s *Store) SetCapsFeatures(ctx context.Context, node, subnode string, features []string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `DELETE FROM caps_features WHERE node = $1 AND subnode = $2`, node, subnode); err != nil {
		return err
	}
	for _, f := range features {
		if _, err := tx.Exec(ctx, `INSERT INTO caps_features (node, subnode, feature) VALUES ($1, $2, $3)`, node, subnode, f); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}
