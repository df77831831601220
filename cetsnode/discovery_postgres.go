package cetsnode

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// PostgresDiscovery keeps the cluster in MongooseIM's discovery_nodes
// table: its layout, the database's clock for heartbeats, the lowest free
// node_num, expiry of stale rows (never our own), joins serialized by an
// advisory lock.
type PostgresDiscovery struct{ db *mimsql.DB }

// NewPostgresDiscovery uses db's discovery_nodes, creating it (as the
// migration "discovery") when missing — made by us or by MongooseIM's own
// schema. Nodes starting together create it once: they take an advisory
// lock first.
func NewPostgresDiscovery(ctx context.Context, db *mimsql.DB) (*PostgresDiscovery, error) {
	// The lock is held on a connection of its own, outside the pool the
	// migration uses (several nodes of one process must not starve it).
	conn, err := pgx.ConnectConfig(ctx, db.Config().ConnConfig)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	const lock = "mimmigrate:discovery schema"
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", lock); err != nil {
		return nil, err
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('discovery_nodes') IS NOT NULL").Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		if _, err := mimsql.Migrate(ctx, db, "discovery"); err != nil {
			return nil, fmt.Errorf("creating discovery_nodes: %w", err)
		}
	}
	return &PostgresDiscovery{db: db}, nil
}

// Heartbeat implements DiscoveryStore.
func (p *PostgresDiscovery) Heartbeat(ctx context.Context, cluster, self, address string, expireAfter time.Duration) (Heartbeat, error) {
	var hb Heartbeat
	var now int64
	if err := p.db.QueryRow(ctx, "SELECT CAST(extract(epoch from now()) AS bigint)").Scan(&now); err != nil {
		return hb, err
	}
	rows, err := p.db.Query(ctx, "SELECT node_name, node_num, updated_timestamp FROM discovery_nodes WHERE cluster_name = $1", cluster)
	if err != nil {
		return hb, err
	}
	type row struct {
		name string
		num  int
		ts   int64
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.name, &r.num, &r.ts); err != nil {
			rows.Close()
			return hb, err
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return hb, err
	}
	expire := int64(expireAfter / time.Second)
	present := false
	used := map[int]bool{}
	for _, r := range all {
		if r.name == self {
			present, hb.NodeNum = true, r.num
			continue
		}
		if now-r.ts > expire {
			hb.Expired = append(hb.Expired, r.name)
			continue
		}
		used[r.num] = true
		hb.Nodes = append(hb.Nodes, term.Atom(r.name))
	}
	if present {
		if _, err := p.db.Exec(ctx, "UPDATE discovery_nodes SET updated_timestamp = $1, address = $2 WHERE node_name = $3",
			now, address, self); err != nil {
			return hb, err
		}
	} else {
		num := 1
		for used[num] {
			num++
		}
		tx, err := p.db.Begin(ctx)
		if err != nil {
			return hb, err
		}
		_, err = tx.Exec(ctx, "DELETE FROM discovery_nodes WHERE node_name = $1", self)
		if err == nil {
			_, err = tx.Exec(ctx, `INSERT INTO discovery_nodes (cluster_name, node_name, node_num, address, updated_timestamp)
				VALUES ($1, $2, $3, $4, $5)`, cluster, self, num, address, now)
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		if err != nil {
			tx.Rollback(ctx)
			return hb, fmt.Errorf("registering in discovery_nodes (node_num %d): %w", num, err)
		}
		hb.NodeNum, hb.Registered = num, true
	}
	if len(hb.Expired) > 0 {
		if _, err := p.db.Exec(ctx, `DELETE FROM discovery_nodes WHERE cluster_name = $1 AND node_name <> $2 AND $3 - updated_timestamp > $4`,
			cluster, self, now, expire); err != nil {
			return hb, err
		}
	}
	hb.Nodes = append(hb.Nodes, term.Atom(self))
	sort.Slice(hb.Nodes, func(i, j int) bool { return hb.Nodes[i] < hb.Nodes[j] })
	return hb, nil
}

// Remove implements DiscoveryStore.
func (p *PostgresDiscovery) Remove(ctx context.Context, cluster, node string) error {
	_, err := p.db.Exec(ctx, "DELETE FROM discovery_nodes WHERE node_name = $1 AND cluster_name = $2", node, cluster)
	return err
}

// JoinLock implements DiscoveryStore with a PostgreSQL advisory lock,
// held on one connection for the join's length.
func (p *PostgresDiscovery) JoinLock(ctx context.Context, cluster string) (func(), error) {
	conn, err := p.db.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	key := "mimmigrate-join:" + cluster
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", key); err != nil {
		conn.Release()
		return nil, err
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock(hashtext($1))", key); err != nil {
			conn.Conn().Close(uctx) // the lock goes with the session
		}
		conn.Release()
	}, nil
}
