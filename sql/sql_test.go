package sql_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// ejabberdSQL maps our schemas to the files ejabberd 23.01 ships.
var ejabberdSQL = map[string]string{
	"ejabberd":           "/usr/share/ejabberd/sql/pg.sql",
	"ejabberd-multihost": "/usr/share/ejabberd/sql/pg.new.sql",
}

func open(t *testing.T) (context.Context, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx, testenv.PostgresDB(t)
}

// Our migrations build exactly the layout ejabberd's own schema files
// build (columns, types, nullability, indexes and their names), checked
// in real PostgreSQL against the files of the installed ejabberd 23.01.
func TestSchemasMatchEjabberd(t *testing.T) {
	for schema, file := range ejabberdSQL {
		t.Run(schema, func(t *testing.T) {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Skipf("ejabberd's %s is not installed (apt-get install ejabberd): %v", file, err)
			}
			ctx, url := open(t)
			db := testenv.DB(t, url)
			want, err := mimsql.Expected(ctx, db, schema)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.SQL().ExecContext(ctx, string(text)); err != nil {
				t.Fatalf("loading ejabberd's %s: %v", file, err)
			}
			have, err := mimsql.Current(ctx, db, schema)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) < 300 {
				t.Fatalf("only %d columns and indexes: the comparison would prove nothing", len(want))
			}
			missing, extra := mimsql.Diff(want, have)
			for _, m := range missing {
				t.Errorf("ours has, ejabberd's has not: %s", m)
			}
			for _, e := range extra {
				t.Errorf("ejabberd's has, ours has not: %s", e)
			}
			// A database made by ejabberd's file is adopted as version 1.
			if _, err := mimsql.Migrate(ctx, db, schema); err == nil || !strings.Contains(err.Error(), "no record of the schema") {
				t.Errorf("migrate over foreign tables: %v", err)
			}
			if err := mimsql.Adopt(ctx, db, schema); err != nil {
				t.Fatalf("adopt: %v", err)
			}
			st, err := mimsql.Inspect(ctx, db, schema)
			if err != nil || st.Version != mimsql.Latest(schema) || st.Dirty {
				t.Errorf("after adopt: %+v, %v", st, err)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	ctx, url := open(t)
	db := testenv.DB(t, url)
	st, err := mimsql.Inspect(ctx, db, "ejabberd")
	if err != nil || st.Version != 0 || len(st.Foreign) != 0 {
		t.Fatalf("empty database: %+v, %v", st, err)
	}
	from, err := mimsql.Migrate(ctx, db, "ejabberd")
	if err != nil || from != 0 {
		t.Fatalf("migrate: from %d, %v", from, err)
	}
	st, _ = mimsql.Inspect(ctx, db, "ejabberd")
	if st.Version != mimsql.Latest("ejabberd") || st.Latest == 0 {
		t.Fatalf("after migrate: %+v", st)
	}
	// Again: nothing to do.
	if from, err := mimsql.Migrate(ctx, db, "ejabberd"); err != nil || from != st.Version {
		t.Fatalf("second migrate: from %d, %v", from, err)
	}
	var n int
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("users table: %d, %v", n, err)
	}
	// The other schema sees foreign tables, never a version of its own.
	st2, err := mimsql.Inspect(ctx, db, "ejabberd-multihost")
	if err != nil || st2.Version != 0 || len(st2.Foreign) == 0 {
		t.Fatalf("multihost in an ejabberd database: %+v, %v", st2, err)
	}
	var fe *mimsql.ForeignTablesError
	if _, err := mimsql.Migrate(ctx, db, "ejabberd-multihost"); !errors.As(err, &fe) {
		t.Fatalf("multihost over ejabberd: %v", err)
	}
	// A changed table is not adopted, and the mismatch is named.
	ctx2, url2 := open(t)
	db2 := testenv.DB(t, url2)
	text, _ := mimsql.UpSQL("ejabberd", 1)
	if _, err := db2.SQL().ExecContext(ctx2, strings.Replace(text, "    seconds text NOT NULL,", "    seconds integer NOT NULL,", 1)); err != nil {
		t.Fatal(err)
	}
	var me *mimsql.MismatchError
	if err := mimsql.Adopt(ctx2, db2, "ejabberd"); !errors.As(err, &me) || !strings.Contains(err.Error(), "last.seconds") {
		t.Fatalf("adopt of a changed schema: %v", err)
	}
	if _, err := mimsql.Inspect(ctx, db, "nosuch"); !errors.Is(err, mimsql.ErrUnknownSchema) {
		t.Errorf("unknown schema: %v", err)
	}
}

// The MongooseIM schema applies to a real PostgreSQL and has the layout
// MongooseIM 6.x's queries rely on (MongooseIM is not installed here, so
// the checks name its facts one by one).
func TestMongooseIMSchema(t *testing.T) {
	ctx, url := open(t)
	db := testenv.DB(t, url)
	if _, err := mimsql.Migrate(ctx, db, "mongooseim"); err != nil {
		t.Fatal(err)
	}
	have, err := mimsql.Current(ctx, db, "mongooseim")
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]bool{}
	for _, l := range have {
		if rest, ok := strings.CutPrefix(l, "column "); ok {
			tab, _, _ := strings.Cut(rest, ".")
			tables[tab] = true
		}
	}
	if len(tables) != 41 {
		t.Errorf("%d tables, want 41", len(tables))
	}
	for _, want := range []string{
		"column users.pass_details text(0) nullable=YES",
		"column users.server character varying(250) nullable=NO",
		"column last.seconds integer(0) nullable=NO",
		"column mam_message.message bytea(0) nullable=NO",
		"column mam_message.direction USER-DEFINED(0) nullable=NO",
		"column offline_message.expire bigint(0) nullable=YES",
		"column muc_rooms.options json(0) nullable=NO",
		"column vcard.server character varying(100) nullable=NO",
		"index privacy_list_data.privacy_list_data_pkey unique=true btree (id, ord)",
		"index mam_server_user.i_mam_server_user_name unique=true btree (server, user_name)",
		"index discovery_nodes.i_discovery_nodes_node_num unique=true btree (cluster_name, node_num)",
		"index inbox.i_inbox_box unique=false btree (box) WHERE ((box)::text = 'bin'::text)",
	} {
		found := false
		for _, l := range have {
			found = found || l == want
		}
		if !found {
			t.Errorf("layout lacks %q", want)
		}
	}
	// ejabberd's schemas see foreign tables here, and the reverse.
	if st, err := mimsql.Inspect(ctx, db, "ejabberd"); err != nil || st.Version != 0 || len(st.Foreign) == 0 {
		t.Errorf("ejabberd in a MongooseIM database: %+v, %v", st, err)
	}
}

// Ready decides whether a database can take a schema's rows, from what
// Inspect found.
func TestStatusReady(t *testing.T) {
	for _, c := range []struct {
		st     mimsql.Status
		reason string // "" = ready
	}{
		{mimsql.Status{Schema: "ejabberd", Version: 1, Latest: 1}, ""},
		{mimsql.Status{Schema: "ejabberd", Version: 1, Latest: 1, Dirty: true}, mimsql.NotReadyDirty},
		{mimsql.Status{Schema: "ejabberd", Latest: 1, Others: []string{"ejabberd-multihost"}, Foreign: []string{"users"}}, mimsql.NotReadyOther},
		{mimsql.Status{Schema: "ejabberd", Latest: 1, Foreign: []string{"users"}}, mimsql.NotReadyForeign},
		{mimsql.Status{Schema: "ejabberd", Latest: 1}, mimsql.NotReadyMissing},
		{mimsql.Status{Schema: "ejabberd", Version: 2, Latest: 1}, mimsql.NotReadyVersion},
	} {
		err := c.st.Ready()
		var nr *mimsql.NotReadyError
		switch {
		case c.reason == "" && err != nil:
			t.Errorf("%+v: %v, want ready", c.st, err)
		case c.reason != "" && (!errors.As(err, &nr) || nr.Reason != c.reason):
			t.Errorf("%+v: %v, want %s", c.st, err, c.reason)
		}
	}
	err := mimsql.Status{Schema: "ejabberd", Latest: 1, Others: []string{"mongooseim"}}.Ready()
	if err == nil || err.Error() != "the database holds the mongooseim schema, not ejabberd" {
		t.Errorf("other schema: %v", err)
	}
}

// A secret is never printed; a short one is redacted where it stands
// alone, not inside other words.
func TestRedact(t *testing.T) {
	for _, c := range []struct{ msg, secret, want string }{
		{"postgres://u:hunter2secret@h/db failed", "hunter2secret", "postgres://u:xxxxx@h/db failed"},
		{"postgres://u:pw@h/db: cannot connect", "pw", "postgres://u:xxxxx@h/db: cannot connect"},
		{"--config c.yml: option x", "c", "--config xxxxx.yml: option x"},
		{"cookie c rejected", "c", "cookie xxxxx rejected"},
		{"pwpw", "pw", "pwpw"},
	} {
		if got := mimsql.Redact(c.msg, c.secret); got != c.want {
			t.Errorf("Redact(%q, %q) = %q, want %q", c.msg, c.secret, got, c.want)
		}
	}
}
