// Package testenv starts the real components the tests run against: plain
// Erlang nodes with Mnesia, private ejabberd nodes and clusters, RabbitMQ
// nodes and PostgreSQL databases, each isolated in its own temporary
// directories with its own node names, cookies and ports.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// Tool returns the path of an installed program, or skips the test naming
// what is missing. CI installs every dependency, so CI never skips.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (Debian package %s); this test needs the real thing", name, pkg)
	}
	return p
}

// Escript returns the path of escript (Erlang/OTP).
func Escript(t testing.TB) string { return Tool(t, "escript", "erlang-base") }

// Erl returns the path of erl (Erlang/OTP).
func Erl(t testing.TB) string { return Tool(t, "erl", "erlang-base") }

// PostgresAddr returns host:port of the local PostgreSQL server, or skips.
func PostgresAddr(t testing.TB) string {
	t.Helper()
	addr := "127.0.0.1:5432"
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Skipf("PostgreSQL is not running on %s (start it: pg_ctlcluster 15 main start)", addr)
	}
	c.Close()
	return addr
}

// PostgresDB creates an empty database on the local PostgreSQL server for
// the test and drops it afterwards; it returns its URL.
func PostgresDB(t testing.TB) string {
	t.Helper()
	PostgresAddr(t)
	url, drop, err := NewPostgresDB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return url
}

// NewPostgresDB creates an empty database on the local PostgreSQL server
// (for a bed shared by a package's tests); drop removes it.
func NewPostgresDB() (url string, drop func(), err error) {
	addr := "127.0.0.1:5432"
	admin := "postgres://" + addr + "/test?sslmode=disable"
	name := "mimtest_" + RandomID(10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL at %s: %v", addr, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %v", err)
	}
	drop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, admin); err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
	return "postgres://" + addr + "/" + name + "?sslmode=disable", drop, nil
}

// DB connects to a database the way mimmigrate does (sql.Connect); it
// is closed when the test ends.
func DB(t testing.TB, url string) *mimsql.DB {
	t.Helper()
	db, err := mimsql.Connect(context.Background(), url, mimsql.ConnectOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// WaitFor polls cond every 100 ms until it holds; when limit passes first
// it calls onFail (to log what helps) and fails the test with cond's last
// reason.
func WaitFor(t testing.TB, what string, limit time.Duration, cond func() (bool, string), onFail func()) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(100 * time.Millisecond)
	}
	if onFail != nil {
		onFail()
	}
	t.Fatalf("%s: not within %s: %s", what, limit, last)
}

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
