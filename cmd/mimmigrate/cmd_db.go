package main

import (
	dbsql "database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// DBCmd groups the commands on a target database.
type DBCmd struct {
	Migrate DBMigrateCmd `cmd:"" help:"Create or upgrade a schema in a PostgreSQL database."`
	Status  DBStatusCmd  `cmd:"" help:"Say which schema and version a database holds."`
}

// dbFlags are the flags naming a database and a schema.
type dbFlags struct {
	DB     string `name:"db" required:"" env:"MIMMIGRATE_DB" placeholder:"URL" help:"PostgreSQL URL (postgres://user@host:5432/db); a password in it is never printed. Or $MIMMIGRATE_DB."`
	Schema string `required:"" enum:"ejabberd,ejabberd-multihost,mongooseim" help:"Target schema: ejabberd (pg.sql, one host), ejabberd-multihost (pg.new.sql), mongooseim (MongooseIM 6.x priv/pg.sql)."`
}

// DBMigrateCmd is `db migrate`.
type DBMigrateCmd struct {
	dbFlags
	Adopt bool `help:"The tables exist already (made with ejabberd's own pg.sql): check that they match the schema exactly and record its version, without changing them."`
}

// DBStatusCmd is `db status`.
type DBStatusCmd struct {
	dbFlags
}

// openDB connects within --timeout; errors never carry the password. It
// returns the database as it may be shown, and the password to scrub from
// later messages.
func (f *dbFlags) openDB(g *Globals) (db *dbsql.DB, shown, pw string, err error) {
	shown, pw, err = describeDB(f.DB)
	if err != nil {
		return nil, "", "", &userError{msg: "--db: " + err.Error(), hint: "a URL like postgres://user@127.0.0.1:5432/ejabberd"}
	}
	db, err = mimsql.Open(g.ctx, f.DB, g.Timeout)
	if err != nil {
		return nil, shown, pw, &unreachable{msg: fmt.Sprintf("cannot connect to %s: %s", shown, dedupe(redact(err.Error(), pw)))}
	}
	return db, shown, pw, nil
}

// describeDB checks a database URL and returns it without its password,
// and the password (to scrub from messages).
func describeDB(raw string) (shown, password string, err error) {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		// pgx's message may quote the URL: say only what is wrong.
		msg := err.Error()
		if u, perr := url.Parse(raw); perr == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				msg = redact(msg, p)
			}
		}
		return "", "", errors.New(redact(msg, raw))
	}
	shown = fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	return shown, cfg.Password, nil
}

// unreachable: cannot reach or log in to a database (exit code 3).
type unreachable struct{ msg string }

func (e *unreachable) Error() string { return e.msg }

// dedupe drops repeated lines from pgx's message, which lists each
// connection attempt (with and without TLS) on a line of its own.
func dedupe(msg string) string {
	var out []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, " ")
}

// redact removes a secret from a message.
func redact(msg, secret string) string {
	if secret == "" {
		return msg
	}
	return strings.ReplaceAll(msg, secret, "xxxxx")
}

// Run migrates.
func (c *DBMigrateCmd) Run(g *Globals) error {
	db, shown, pw, err := c.openDB(g)
	if err != nil {
		return err
	}
	defer db.Close()
	if c.Adopt {
		err := mimsql.Adopt(g.ctx, db, c.Schema)
		var me *mimsql.MismatchError
		if errors.As(err, &me) {
			for _, m := range me.Missing {
				fmt.Fprintf(g.stderr, "  missing:    %s\n", m)
			}
			for _, x := range me.Extra {
				fmt.Fprintf(g.stderr, "  unexpected: %s\n", x)
			}
			return &refusal{msg: redact(err.Error(), pw), hint: "the differences are listed above; fix the tables or start from an empty database"}
		}
		if err != nil {
			return fmt.Errorf("%s: %s", shown, redact(err.Error(), pw))
		}
		fmt.Fprintf(g.stdout, "%s: tables match schema %s version %d; recorded\n", shown, c.Schema, mimsql.Latest(c.Schema))
		return nil
	}
	from, err := mimsql.Migrate(g.ctx, db, c.Schema)
	var fe *mimsql.ForeignTablesError
	if errors.As(err, &fe) {
		return &refusal{msg: redact(err.Error(), pw),
			hint: "if ejabberd's own pg.sql made them, `mimmigrate db migrate --adopt` checks and records them; otherwise use an empty database"}
	}
	if errors.Is(err, mimsql.ErrUnknownSchema) {
		return &userError{msg: err.Error()}
	}
	if err != nil {
		return fmt.Errorf("%s: migrating schema %s: %s", shown, c.Schema, redact(err.Error(), pw))
	}
	to := mimsql.Latest(c.Schema)
	if from == to {
		fmt.Fprintf(g.stdout, "%s: schema %s is at version %d already; nothing to do\n", shown, c.Schema, to)
	} else {
		fmt.Fprintf(g.stdout, "%s: schema %s migrated from version %d to %d\n", shown, c.Schema, from, to)
	}
	return nil
}

// Run prints the status.
func (c *DBStatusCmd) Run(g *Globals) error {
	db, shown, pw, err := c.openDB(g)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := mimsql.Inspect(g.ctx, db, c.Schema)
	if err != nil {
		return fmt.Errorf("%s: %s", shown, redact(err.Error(), pw))
	}
	switch {
	case st.Dirty:
		fmt.Fprintf(g.stdout, "%s: schema %s version %d, DIRTY (a migration failed half way)\n", shown, st.Schema, st.Version)
	case st.Version == 0 && len(st.Foreign) > 0:
		fmt.Fprintf(g.stdout, "%s: no record of schema %s, but %d of its tables exist (made by other means?)\n", shown, st.Schema, len(st.Foreign))
	case st.Version == 0:
		fmt.Fprintf(g.stdout, "%s: schema %s not created (latest version %d)\n", shown, st.Schema, st.Latest)
	case st.Version < st.Latest:
		fmt.Fprintf(g.stdout, "%s: schema %s version %d; version %d is available (mimmigrate db migrate)\n", shown, st.Schema, st.Version, st.Latest)
	default:
		fmt.Fprintf(g.stdout, "%s: schema %s version %d (latest)\n", shown, st.Schema, st.Version)
	}
	return nil
}
