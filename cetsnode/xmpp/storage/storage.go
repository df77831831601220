// Package storage reads and writes the XMPP service's data in PostgreSQL,
// in the tables and formats of ejabberd 23.01's SQL backend (pg.sql, one
// virtual host per database, or pg.new.sql with a server_host column) —
// whichever the database holds — so that ejabberd started on the same
// database reads everything written here.
package storage

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/sasl"
)

// Store is the database of one cluster.
type Store struct {
	pool *pgxpool.Pool
	// Multihost: the tables have a server_host column (pg.new.sql).
	Multihost bool
}

// Open finds which of ejabberd's schemas the database holds.
func Open(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	var tables, hostCol int
	err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'users'),
		(SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'users' AND column_name = 'server_host')`).
		Scan(&tables, &hostCol)
	if err != nil {
		return nil, fmt.Errorf("reading the database's schema: %w", err)
	}
	if tables == 0 {
		return nil, errors.New("the database has no users table: export into it first (mimmigrate db migrate, mimmigrate export)")
	}
	return &Store{pool: pool, Multihost: hostCol > 0}, nil
}

// hostCond is the condition on the virtual host of a pg.new.sql table.
func (s *Store) hostCond(arg int) string {
	if s.Multihost {
		return fmt.Sprintf(" AND server_host = $%d", arg)
	}
	return ""
}

// Credentials reads an account's password or SCRAM credentials as
// ejabberd_auth_sql stores them: a password in clear leaves serverkey
// and salt empty and iterationcount 0; SCRAM keeps StoredKey in password
// (base64, prefixed "sha256:" or "sha512:" for those hashes), ServerKey
// and salt in base64.
func (s *Store) Credentials(ctx context.Context, host, user string) (sasl.Credentials, error) {
	q := `SELECT password, serverkey, salt, iterationcount FROM users WHERE username = $1` + s.hostCond(2)
	args := []any{user}
	if s.Multihost {
		args = append(args, host)
	}
	var password, serverKey, salt string
	var iterations int
	err := s.pool.QueryRow(ctx, q, args...).Scan(&password, &serverKey, &salt, &iterations)
	if errors.Is(err, pgx.ErrNoRows) {
		return sasl.Credentials{}, sasl.ErrNoUser
	}
	if err != nil {
		return sasl.Credentials{}, err
	}
	if serverKey == "" && salt == "" && iterations == 0 {
		return sasl.Credentials{Plain: password}, nil
	}
	h, stored := sasl.SHA1, password
	if rest, ok := strings.CutPrefix(password, "sha256:"); ok {
		h, stored = sasl.SHA256, rest
	} else if rest, ok := strings.CutPrefix(password, "sha512:"); ok {
		h, stored = sasl.SHA512, rest
	}
	sc := &sasl.SCRAM{Hash: h, Iterations: iterations}
	for _, f := range []struct {
		dst *[]byte
		src string
	}{{&sc.StoredKey, stored}, {&sc.ServerKey, serverKey}, {&sc.Salt, salt}} {
		b, err := base64.StdEncoding.DecodeString(f.src)
		if err != nil {
			return sasl.Credentials{}, fmt.Errorf("the users row of %s@%s holds SCRAM credentials that are not base64", user, host)
		}
		*f.dst = b
	}
	return sasl.Credentials{SCRAM: sc}, nil
}

// UserExists reports whether an account exists.
func (s *Store) UserExists(ctx context.Context, host, user string) (bool, error) {
	q := `SELECT EXISTS (SELECT 1 FROM users WHERE username = $1` + s.hostCond(2) + `)`
	args := []any{user}
	if s.Multihost {
		args = append(args, host)
	}
	var ok bool
	err := s.pool.QueryRow(ctx, q, args...).Scan(&ok)
	return ok, err
}

// SetPassword stores an account's new credentials as ejabberd_auth_sql
// does: SCRAM's StoredKey in password (base64, prefixed for SHA-256 and
// SHA-512), ServerKey and salt in base64, the iteration count; or the
// password in clear with the SCRAM columns empty.
func (s *Store) SetPassword(ctx context.Context, host, user string, c sasl.Credentials) error {
	password, serverKey, salt, iterations := c.Plain, "", "", 0
	if sc := c.SCRAM; sc != nil {
		password = base64.StdEncoding.EncodeToString(sc.StoredKey)
		if sc.Hash == sasl.SHA256 || sc.Hash == sasl.SHA512 {
			password = string(sc.Hash) + ":" + password
		}
		serverKey, salt, iterations = base64.StdEncoding.EncodeToString(sc.ServerKey), base64.StdEncoding.EncodeToString(sc.Salt), sc.Iterations
	}
	q := `UPDATE users SET password = $2, serverkey = $3, salt = $4, iterationcount = $5 WHERE username = $1`
	args := []any{user, password, serverKey, salt, iterations}
	if s.Multihost {
		q += ` AND server_host = $6`
		args = append(args, host)
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err == nil && tag.RowsAffected() == 0 {
		return sasl.ErrNoUser
	}
	return err
}
