package sql

import (
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// DB is a pool of connections to one PostgreSQL database: the one way
// mimmigrate opens PostgreSQL.
type DB struct {
	*pgxpool.Pool
	// Shown is the database as it may be printed: user@host:port/db,
	// never the password.
	Shown string
	sqldb *dbsql.DB
}

// ConnectOptions configure Connect.
type ConnectOptions struct {
	// Timeout bounds connecting (and each later connection's dial).
	Timeout time.Duration
	// MaxConns bounds the pool (default 4).
	MaxConns int
}

// URLError is a database URL that does not parse. Its message never
// holds the URL or the password.
type URLError struct{ Msg string }

func (e *URLError) Error() string { return e.Msg }

// ConnectError is a database that cannot be reached or logged in to. Its
// message names the database as Shown, never the password.
type ConnectError struct {
	Shown string
	Msg   string
}

func (e *ConnectError) Error() string { return fmt.Sprintf("cannot connect to %s: %s", e.Shown, e.Msg) }

// ParseURL checks a database URL and returns it as it may be shown, and
// the password (to keep out of messages).
func ParseURL(raw string) (shown, password string, err error) {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		// pgx's message may quote the URL: say only what is wrong.
		msg := err.Error()
		if u, perr := url.Parse(raw); perr == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				msg = Redact(msg, p)
			}
		}
		return "", "", &URLError{Msg: Redact(msg, raw)}
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database), cfg.Password, nil
}

// Connect opens a pool and checks that the database answers within the
// timeout. What it returns never holds the password.
func Connect(ctx context.Context, raw string, opt ConnectOptions) (*DB, error) {
	shown, pw, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, &URLError{Msg: Redact(Redact(err.Error(), pw), raw)}
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	cfg.ConnConfig.ConnectTimeout = opt.Timeout
	cfg.MaxConns = int32(max(opt.MaxConns, 4))
	pctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(pctx, cfg)
	if err == nil {
		err = pool.Ping(pctx)
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		return nil, &ConnectError{Shown: shown, Msg: Redact(describe(ctx, cfg.ConnConfig, err), pw)}
	}
	return &DB{Pool: pool, Shown: shown}, nil
}

// SQL is a database/sql handle on the pool (for golang-migrate).
func (db *DB) SQL() *dbsql.DB {
	if db.sqldb == nil {
		db.sqldb = stdlib.OpenDBFromPool(db.Pool)
	}
	return db.sqldb
}

// Close closes the pool.
func (db *DB) Close() {
	if db.sqldb != nil {
		db.sqldb.Close()
	}
	db.Pool.Close()
}

// Redact removes a secret from a message.
func Redact(msg, secret string) string {
	if secret == "" {
		return msg
	}
	if len(secret) >= 6 {
		return strings.ReplaceAll(msg, secret, "xxxxx")
	}
	// A short secret is redacted where it stands alone (not inside a
	// word): replacing every "c" of a cookie "c" would garble the
	// message and tell no more.
	var b strings.Builder
	prev := byte(' ')
	for {
		i := strings.Index(msg, secret)
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		before := prev
		if i > 0 {
			before = msg[i-1]
		}
		end := i + len(secret)
		alone := !wordByte(before) && (end == len(msg) || !wordByte(msg[end]))
		b.WriteString(msg[:i])
		if alone {
			b.WriteString("xxxxx")
		} else {
			b.WriteString(secret)
		}
		prev = msg[end-1]
		msg = msg[end:]
	}
}

func wordByte(c byte) bool {
	return c == '_' || c >= 0x80 || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// describe says why a connection failed in one line: PostgreSQL's own
// refusal, or, when the port answered but not as PostgreSQL does, what it
// sent instead.
func describe(ctx context.Context, cfg *pgx.ConnConfig, err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Severity + ": " + pe.Message + " (SQLSTATE " + pe.Code + ")"
	}
	msg := oneLine(err.Error())
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "no such host") || cfg.Host == "" || strings.HasPrefix(cfg.Host, "/") {
		return msg
	}
	// Something answered. Ask it the first question a PostgreSQL client
	// asks (an SSLRequest): PostgreSQL answers with one byte, S or N.
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if got, ok := probe(ctx, addr); !ok {
		return fmt.Sprintf("%s answers, but not as PostgreSQL does (it sent %s): is this the database's host and port?", addr, got)
	}
	return msg
}

// probe sends an SSLRequest and reports what came back.
func probe(ctx context.Context, addr string) (got string, isPostgres bool) {
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "nothing", true // gone meanwhile: keep pgx's own message
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
		return "nothing", true
	}
	buf := make([]byte, 16)
	n, err := io.ReadAtLeast(c, buf, 1)
	if n == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			return "nothing before closing", false
		}
		return "nothing", false
	}
	if n == 1 && (buf[0] == 'S' || buf[0] == 'N') {
		return "", true
	}
	return strconv.Quote(string(buf[:n])), false
}

func oneLine(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, " ")
}

// Absent reports whether a query found nothing because nothing is there
// yet: no row, or no such table or column (a table a command creates when
// it first runs).
func Absent(err error) bool {
	var pe *pgconn.PgError
	return errors.Is(err, pgx.ErrNoRows) || errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "42703")
}
