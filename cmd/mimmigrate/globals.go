package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/migrate/sink"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// Globals are the options every command shares, and the process's streams.
type Globals struct {
	Cookie      string        `help:"Erlang cookie. Prefer --cookie-file or $MIMMIGRATE_COOKIE: other users can read arguments." placeholder:"COOKIE"`
	CookieFile  string        `name:"cookie-file" help:"File holding the Erlang cookie (e.g. /var/lib/ejabberd/.erlang.cookie). Default: $MIMMIGRATE_COOKIE, then ~/.erlang.cookie." type:"path"`
	Name        string        `help:"Our node name. Default: mimmigrate-<user>@<host> (a stable name: every new name is a permanent atom on the node)."`
	EPMDPort    int           `name:"epmd-port" env:"ERL_EPMD_PORT" default:"4369" help:"epmd's port on the nodes' hosts."`
	DistPort    int           `name:"dist-port" help:"Connect to this distribution port directly, without asking epmd."`
	DistVersion int           `name:"dist-version" enum:"0,5,6" default:"0" help:"Handshake version: 6 (OTP 23+), 5 (older), 0 = as epmd says."`
	Timeout     time.Duration `default:"30s" help:"Deadline for connecting and for each query."`
	Verbose     bool          `short:"v" help:"Log protocol details to stderr."`

	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	exit           int
	stdinReader    *bufio.Reader
	// secrets are kept out of every message report prints (database
	// passwords, the cookie).
	secrets []string
	// interrupted is what to say when the command is interrupted.
	interrupted string
}

// secret registers a string report must never print.
func (g *Globals) secret(s string) {
	if s != "" {
		g.secrets = append(g.secrets, s)
	}
}

// connectDB opens the database a flag names: the one way a command opens
// PostgreSQL. Its password is registered as a secret.
func (g *Globals) connectDB(flag, url string, conns int) (*mimsql.DB, error) {
	if _, pw, err := mimsql.ParseURL(url); err == nil {
		g.secret(pw)
	}
	db, err := mimsql.Connect(g.ctx, url, mimsql.ConnectOptions{Timeout: g.Timeout, MaxConns: conns})
	if err != nil {
		return nil, g.dbError(flag, err)
	}
	return db, nil
}

// dbError maps the sql package's errors: a bad URL is bad input (2), an
// unreachable database exit code 3.
func (g *Globals) dbError(flag string, err error) error {
	var ue *mimsql.URLError
	var ce *mimsql.ConnectError
	switch {
	case errors.As(err, &ue):
		return &userError{msg: flag + ": " + ue.Msg, hint: "a URL like postgres://user@127.0.0.1:5432/ejabberd"}
	case errors.As(err, &ce):
		return &unreachable{msg: ce.Error()}
	}
	return err
}

// unreachable: cannot reach or log in to a database (exit code 3).
type unreachable struct{ msg string }

func (e *unreachable) Error() string { return e.msg }

// checkOutput checks a file to write: never inside an input; an existing
// file is replaced only after confirmation (or force).
func (g *Globals) checkOutput(path string, force bool, question string, inputs ...string) error {
	err := sink.CheckOutput(path, inputs...)
	var oe *sink.OutputError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &oe) && oe.Exists:
		if !force && !g.confirm(path+" exists. "+question) {
			return &refusal{msg: "not confirmed: " + path + " left as it was", hint: "answer yes, or pass -f"}
		}
		return nil
	case errors.As(err, &oe) && oe.Inside:
		return &refusal{msg: oe.Msg, hint: oe.Hint}
	case errors.As(err, &oe):
		return &userError{msg: oe.Msg, hint: oe.Hint}
	}
	return err
}

// client builds the distribution client from the flags.
func (g *Globals) client() (*erldist.Client, error) {
	cookie, source, err := erldist.ResolveCookie(g.Cookie, g.CookieFile)
	if err != nil {
		return nil, err
	}
	g.secret(cookie)
	level := slog.LevelWarn
	if g.Verbose {
		level = slog.LevelDebug
	}
	tm := erldist.DefaultTimeouts()
	tm.Call = g.Timeout
	logger := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
	logger.Debug("cookie found", "source", source) // where from, never the cookie itself
	return &erldist.Client{
		Name: g.Name, Cookie: cookie, Version: g.DistVersion, EPMDPort: g.EPMDPort, DistPort: g.DistPort,
		DialTimeout: g.Timeout, Timeouts: tm,
		Logger: logger,
	}, nil
}

// checkNode validates a node name given on the command line.
func checkNode(flag, node string) error {
	if _, _, err := erldist.SplitNode(node); err != nil {
		return &userError{msg: fmt.Sprintf("%s: %q is not a node name", flag, node),
			hint: "a node name looks like ejabberd@host; `epmd -names` on the host lists the names"}
	}
	return nil
}

// attach checks the node name, connects to the cluster and inspects it.
//
// These commands only wait on the network, so they run on one P: with more,
// every message the reader hands to a waiting call also wakes an idle thread
// (a futex call) for nothing. Measured on 2 cores: 75 -> 63 us per call,
// 46k -> 61k calls/s with 32 in flight (docs/benchmarks.md).
func (g *Globals) attach(node string, params mnesia.InspectParams) (*mnesia.Snapshot, *mnesia.Session, error) {
	runtime.GOMAXPROCS(1)
	if err := checkNode("--node", node); err != nil {
		return nil, nil, err
	}
	cl, err := g.client()
	if err != nil {
		return nil, nil, err
	}
	return mnesia.Inspect(g.ctx, mnesia.Options{Client: cl, Params: params}, node)
}

// proceed ends a dry run, or asks for confirmation unless force is set. It
// reports whether the change should go ahead.
func (g *Globals) proceed(dryRun, force bool, question string) (bool, error) {
	if dryRun {
		fmt.Fprintln(g.stdout, "Dry run: nothing changed.")
		return false, nil
	}
	if !force && !g.confirm(question) {
		return false, &refusal{msg: "not confirmed: nothing changed", hint: "answer yes, or pass -f"}
	}
	return true, nil
}

// confirm asks a yes/no question on stdin, MongooseIM style.
func (g *Globals) confirm(question string) bool {
	fmt.Fprintf(g.stdout, "%s (yes/no) ", question)
	if g.stdinReader == nil {
		g.stdinReader = bufio.NewReader(g.stdin)
	}
	line, _ := g.stdinReader.ReadString('\n')
	fmt.Fprintln(g.stdout)
	return strings.EqualFold(strings.TrimSpace(line), "yes")
}

// refused maps a repair's refusal: naming what the cluster does not have
// is bad input (exit 2), anything else a refusal for safety (exit 5).
func refused(msg string, r *mnesia.Refusal) error {
	if r.BadInput {
		return &userError{msg: msg, hint: r.Hint}
	}
	return &refusal{msg: msg, hint: r.Hint}
}
