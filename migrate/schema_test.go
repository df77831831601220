package migrate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// The columns every schema writes exist in that schema, checked in real
// PostgreSQL, and every SQL table a Mnesia table fills has columns.
func TestColumnsExistInSchema(t *testing.T) {
	url := testenv.PostgresDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := testenv.DB(t, url)
	for _, sc := range Schemas {
		shape, err := mimsql.Expected(ctx, db, sc.Name())
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, line := range shape {
			if f := strings.Fields(line); f[0] == "column" {
				have[f[1]] = true
			}
		}
		for _, tbl := range sc.Tables() {
			for _, tt := range tbl.Targets {
				if len(sc.Columns(tt)) == 0 {
					t.Errorf("%s: no columns for %s", sc.Name(), tt)
				}
				for _, c := range sc.Columns(tt) {
					if !have[tt+"."+c] {
						t.Errorf("%s: no column %s.%s", sc.Name(), tt, c)
					}
				}
			}
		}
		for _, col := range sc.XMLColumns() {
			if !have[col] {
				t.Errorf("%s: no XML column %s", sc.Name(), col)
			}
		}
	}
}
