package verify

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/samples"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
	"github.com/mimmigrate/mimmigrate/migrate/sink"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// CompareKeys, for a record of every table of every schema in real
// PostgreSQL: the key's rows as written compare equal; once the key's
// rows are deleted, they are missing — or, for a table whose rows the
// key's deletes do not select, the table is named for a whole comparison.
func TestCompareKeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recs := samples.Records()
	for _, sc := range migrate.Schemas {
		t.Run(sc.Name(), func(t *testing.T) {
			db := testenv.DB(t, testenv.PostgresDB(t))
			if _, err := mimsql.Migrate(ctx, db, sc.Name()); err != nil {
				t.Fatal(err)
			}
			pg := sink.NewPostgres(db, sc)
			mapping := sc.NewMapping(schema.NewScope([]string{samples.Host}, []string{samples.Host}, nil))
			mapping.Note("pubsub_node", recs["pubsub_node"])
			var names []string
			for _, tbl := range sc.Tables() {
				if _, ok := recs[tbl.Name]; ok && len(tbl.Targets) > 0 {
					names = append(names, tbl.Name)
				}
			}
			sort.SliceStable(names, func(i, j int) bool { return names[i] == "pubsub_node" && names[j] != "pubsub_node" })
			keyRows := func(name string) KeyRows {
				t.Helper()
				m := migrate.NewMapper(sc, mapping.Mapper(name))
				dels, err := m.Delete(samples.Key(recs[name]))
				if err != nil {
					t.Fatalf("%s: delete: %v", name, err)
				}
				rows, err := m.Map(recs[name])
				if err != nil {
					t.Fatalf("%s: map: %v", name, err)
				}
				return KeyRows{Table: name, Key: samples.Key(recs[name]), Ops: append(dels, rows...)}
			}
			for _, name := range names {
				kr := keyRows(name)
				var inserts, deletes []schema.Op
				for _, op := range kr.Ops {
					if op.Kind == schema.Insert {
						inserts = append(inserts, op)
					} else {
						deletes = append(deletes, op)
					}
				}
				if err := pg.Apply(ctx, inserts); err != nil {
					t.Fatalf("%s: insert: %v", name, err)
				}
				res, err := CompareKeys(ctx, db.Pool, sc, []KeyRows{kr}, 5)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				var rows int64
				for _, tv := range res.Tables {
					rows += tv.Source
					if !tv.OK() {
						t.Errorf("%s: the rows as written differ in %s: %+v", name, tv.Table, tv)
					}
				}
				if rows == 0 && len(res.Whole) == 0 {
					t.Errorf("%s: nothing compared", name)
				}
				// The key's rows gone: missing, unless the table is left
				// to a whole comparison.
				if err := pg.Apply(ctx, deletes); err != nil {
					t.Fatalf("%s: delete: %v", name, err)
				}
				res, err = CompareKeys(ctx, db.Pool, sc, []KeyRows{kr}, 5)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				var missing int64
				for _, tv := range res.Tables {
					missing += tv.Missing
				}
				if missing == 0 && len(res.Whole) == 0 {
					t.Errorf("%s: the key's rows were deleted and nothing is missing", name)
				}
				if len(res.Whole) > 0 {
					t.Logf("%s: compared whole: %v", name, res.Whole)
				}
				// Written again for the tables that refer to it (the
				// shared rows stayed).
				var again []schema.Op
				for _, op := range inserts {
					if !sc.Verify(op.Table).Shared {
						again = append(again, op)
					}
				}
				if err := pg.Apply(ctx, again); err != nil {
					t.Fatalf("%s: insert again: %v", name, err)
				}
			}
		})
	}
}
