package sink

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/samples"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// schemaDB is a fresh database holding the schema, and a sink into it.
func schemaDB(ctx context.Context, t *testing.T, sc schema.Schema) (*mimsql.DB, *Postgres) {
	db := testenv.DB(t, testenv.PostgresDB(t))
	if _, err := mimsql.Migrate(ctx, db, sc.Name()); err != nil {
		t.Fatal(err)
	}
	return db, NewPostgres(db, sc)
}

// counts is every target table's row count.
func counts(t *testing.T, db *mimsql.DB, sc schema.Schema) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, tt := range targets(sc) {
		var n int64
		if err := db.QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{tt}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tt] = n
	}
	return out
}

// A mapper's inserts of one record go into the real schema, and what the
// mapper's Delete of the record's key returns removes exactly them: for
// every table of every schema, in real PostgreSQL. This is the seam a live
// change of one record goes through (delete by key, then insert).
func TestInsertThenDeleteByKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recs := samples.Records()
	for _, sc := range migrate.Schemas {
		t.Run(sc.Name(), func(t *testing.T) {
			db, pg := schemaDB(ctx, t, sc)
			scope := schema.NewScope([]string{samples.Host}, []string{samples.Host}, nil)
			mapping := sc.NewMapping(scope)
			mapping.Note("pubsub_node", recs["pubsub_node"])
			var names []string
			for _, tbl := range sc.Tables() {
				if _, ok := recs[tbl.Name]; ok && len(tbl.Targets) > 0 {
					names = append(names, tbl.Name)
				}
			}
			// Dependencies first: nodes before their items, and a user's
			// archive before the preferences that reuse its id.
			sort.SliceStable(names, func(i, j int) bool { return names[i] == "pubsub_node" && names[j] != "pubsub_node" })
			for _, name := range names {
				rec := recs[name]
				m := migrate.NewMapper(sc, mapping.Mapper(name))
				ops, err := m.Map(rec)
				if err != nil {
					t.Fatalf("%s: map: %v", name, err)
				}
				if len(ops) == 0 {
					t.Fatalf("%s: no rows", name)
				}
				before := counts(t, db, sc)
				if err := pg.Apply(ctx, ops); err != nil {
					t.Fatalf("%s: insert: %v", name, err)
				}
				added := counts(t, db, sc)
				if fmt.Sprint(added) == fmt.Sprint(before) {
					t.Fatalf("%s: the inserts added nothing", name)
				}
				dels, err := mapping.Mapper(name).Delete(samples.Key(rec))
				if err != nil || len(dels) == 0 {
					t.Fatalf("%s: delete: %v %v", name, dels, err)
				}
				for _, d := range dels {
					if d.Kind != schema.Delete || len(d.Where) == 0 {
						t.Fatalf("%s: delete by key is not a conditional delete: %v", name, d)
					}
				}
				if err := pg.Apply(ctx, dels); err != nil {
					t.Fatalf("%s: delete: %v", name, err)
				}
				after := counts(t, db, sc)
				for tt, n := range after {
					want := before[tt]
					if tt == "mam_server_user" {
						want = added[tt] // archive ids stay: other tables refer to them
					}
					if n != want {
						t.Errorf("%s: after the delete %s holds %d rows, want %d (before the insert %d)", name, tt, n, want, before[tt])
					}
				}
				// Mapped again, the record goes in again: the delete left no
				// row a key would collide with.
				again, err := migrate.NewMapper(sc, mapping.Mapper(name)).Map(rec)
				if err != nil {
					t.Fatalf("%s: map again: %v", name, err)
				}
				if err := pg.Apply(ctx, again); err != nil {
					t.Errorf("%s: insert after delete: %v", name, err)
				}
			}
		})
	}
}

// A mapping continues from the ids the database holds (privacy lists,
// rooms, archive owners): the ids of a second export do not collide.
func TestMappingLoadsIDs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs := samples.Records()
	for _, sc := range migrate.Schemas {
		t.Run(sc.Name(), func(t *testing.T) {
			_, pg := schemaDB(ctx, t, sc)
			scope := schema.NewScope(nil, []string{samples.Host}, nil)
			first := sc.NewMapping(scope)
			for _, name := range []string{"privacy", "muc_room", "archive_msg"} {
				ops, err := first.Mapper(name).Map(recs[name])
				if err != nil {
					t.Fatal(err)
				}
				if err := pg.Apply(ctx, ops); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			second := sc.NewMapping(scope)
			if err := second.Load(ctx, pg, func(string) bool { return false }); err != nil {
				t.Fatal(err)
			}
			// Another user's lists and the same rooms under another name.
			other := append(recs["privacy"][:0:0], recs["privacy"]...)
			other[1] = term.Tuple{term.Binary("carol"), term.Binary(samples.Host)}
			ops, err := second.Mapper("privacy").Map(other)
			if err != nil {
				t.Fatal(err)
			}
			if err := pg.Apply(ctx, ops); err != nil {
				t.Errorf("privacy lists of a second run collide: %v", err)
			}
			if sc.Name() == "mongooseim" {
				// The owner already has an archive id: no second row for it.
				ops, err := second.Mapper("archive_msg").Map(recs["archive_msg"])
				if err != nil {
					t.Fatal(err)
				}
				for _, op := range ops {
					if op.Table == "mam_server_user" {
						t.Errorf("a known archive owner got a new id: %v", op)
					}
				}
			}
		})
	}
}
