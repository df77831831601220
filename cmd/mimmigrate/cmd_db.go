package main

import (
	"errors"
	"fmt"
	"strings"

	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// DBCmd groups the commands on a target database.
type DBCmd struct {
	Migrate DBMigrateCmd `cmd:"" help:"Create or upgrade a schema in a PostgreSQL database."`
	Status  DBStatusCmd  `cmd:"" help:"Say which schema and version a database holds."`
}

// dbFlags are the flags naming a database and a schema.
type dbFlags struct {
	DB     string `name:"db" required:"" env:"MIMMIGRATE_DB" placeholder:"URL" help:"PostgreSQL URL (postgres://user@host:5432/db); a password in it is never printed."`
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

// openDB connects within --timeout.
func (f *dbFlags) openDB(g *Globals) (*mimsql.DB, error) {
	return g.connectDB("--db", f.DB, 2)
}

// Run migrates.
func (c *DBMigrateCmd) Run(g *Globals) error {
	db, err := c.openDB(g)
	if err != nil {
		return err
	}
	defer db.Close()
	shown := db.Shown
	if c.Adopt {
		err := mimsql.Adopt(g.ctx, db, c.Schema)
		var me *mimsql.MismatchError
		var fe *mimsql.ForeignTablesError
		if errors.As(err, &fe) {
			return foreignTables(fe)
		}
		if errors.As(err, &me) {
			for _, m := range me.Missing {
				fmt.Fprintf(g.stderr, "  missing:    %s\n", m)
			}
			for _, x := range me.Extra {
				fmt.Fprintf(g.stderr, "  unexpected: %s\n", x)
			}
			return &refusal{msg: err.Error(), hint: "the differences are listed above; fix the tables or start from an empty database"}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", shown, err)
		}
		fmt.Fprintf(g.stdout, "%s: tables match schema %s version %d; recorded\n", shown, c.Schema, mimsql.Latest(c.Schema))
		return nil
	}
	from, err := mimsql.Migrate(g.ctx, db, c.Schema)
	var fe *mimsql.ForeignTablesError
	if errors.As(err, &fe) {
		return foreignTables(fe)
	}
	if errors.Is(err, mimsql.ErrUnknownSchema) {
		return &userError{msg: err.Error()}
	}
	if err != nil {
		return fmt.Errorf("%s: migrating schema %s: %w", shown, c.Schema, err)
	}
	to := mimsql.Latest(c.Schema)
	if from == to {
		fmt.Fprintf(g.stdout, "%s: schema %s is at version %d already; nothing to do\n", shown, c.Schema, to)
	} else {
		fmt.Fprintf(g.stdout, "%s: schema %s migrated from version %d to %d\n", shown, c.Schema, from, to)
	}
	return nil
}

// foreignTables refuses a database holding the schema's tables without
// a record of it: another schema's (say so), or made by hand (--adopt
// checks them).
func foreignTables(fe *mimsql.ForeignTablesError) error {
	if len(fe.Others) > 0 {
		return &refusal{msg: fe.Error(), hint: fmt.Sprintf("use --schema %s with this database, or an empty database for %s", fe.Others[0], fe.Schema)}
	}
	return &refusal{msg: fe.Error(),
		hint: "if ejabberd's own pg.sql made them, `mimmigrate db migrate --adopt` checks and records them; otherwise use an empty database"}
}

// Run prints the status.
func (c *DBStatusCmd) Run(g *Globals) error {
	db, err := c.openDB(g)
	if err != nil {
		return err
	}
	defer db.Close()
	shown := db.Shown
	st, err := mimsql.Inspect(g.ctx, db, c.Schema)
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	switch {
	case st.Dirty:
		fmt.Fprintf(g.stdout, "%s: schema %s version %d, DIRTY (a migration failed half way)\n", shown, st.Schema, st.Version)
	case st.Version == 0 && len(st.Others) > 0:
		fmt.Fprintf(g.stdout, "%s: schema %s not created: the database holds schema %s\n", shown, st.Schema, strings.Join(st.Others, ", "))
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
