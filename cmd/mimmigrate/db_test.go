package main

import (
	"context"
	dbsql "database/sql"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

func TestDBMigrate(t *testing.T) {
	url := testenv.PostgresDB(t)
	out, stderr, code := runCLI(t, "", "db", "status", "--db", url, "--schema", "ejabberd")
	if code != 0 || !strings.Contains(out, "schema ejabberd not created") {
		t.Fatalf("status of an empty database: %d %q %q", code, out, stderr)
	}
	out, stderr, code = runCLI(t, "", "db", "migrate", "--db", url, "--schema", "ejabberd")
	if code != 0 || !strings.Contains(out, "migrated from version 0 to 1") {
		t.Fatalf("migrate: %d %q %q", code, out, stderr)
	}
	out, _, code = runCLI(t, "", "db", "migrate", "--db", url, "--schema", "ejabberd")
	if code != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second migrate: %d %q", code, out)
	}
	out, _, code = runCLI(t, "", "db", "status", "--db", url, "--schema", "ejabberd")
	if code != 0 || !strings.Contains(out, "version 1 (latest)") {
		t.Fatalf("status: %d %q", code, out)
	}
	// Another schema over these tables: refused, exit 5, saying which
	// schema the database holds (not --adopt: it would only list
	// differences).
	_, stderr, code = runCLI(t, "", "db", "migrate", "--db", url, "--schema", "ejabberd-multihost")
	oneLineError(t, stderr, code, exitRefused, "the database holds schema ejabberd", "--schema ejabberd")
	out, _, code = runCLI(t, "", "db", "status", "--db", url, "--schema", "ejabberd-multihost")
	if code != 0 || !strings.Contains(out, "the database holds schema ejabberd") {
		t.Errorf("status of the other schema: %d %q", code, out)
	}
	_, stderr, code = runCLI(t, "", "db", "migrate", "--db", url, "--schema", "ejabberd-multihost", "--adopt")
	oneLineError(t, stderr, code, exitRefused, "the database holds schema ejabberd")

	// A database made with ejabberd's own pg.sql is adopted, unchanged.
	text, err := os.ReadFile("/usr/share/ejabberd/sql/pg.new.sql")
	if err != nil {
		t.Skipf("ejabberd's pg.new.sql is not installed (apt-get install ejabberd): %v", err)
	}
	url2 := testenv.PostgresDB(t)
	psqlExec(t, url2, string(text))
	_, stderr, code = runCLI(t, "", "db", "migrate", "--db", url2, "--schema", "ejabberd-multihost")
	oneLineError(t, stderr, code, exitRefused, "no record of the schema")
	out, stderr, code = runCLI(t, "", "db", "migrate", "--db", url2, "--schema", "ejabberd-multihost", "--adopt")
	if code != 0 || !strings.Contains(out, "recorded") {
		t.Fatalf("adopt: %d %q %q", code, out, stderr)
	}
	// Adopting the wrong schema lists the differences and refuses.
	url3 := testenv.PostgresDB(t)
	psqlExec(t, url3, string(text))
	_, stderr, code = runCLI(t, "", "db", "migrate", "--db", url3, "--schema", "ejabberd", "--adopt")
	if code != exitRefused || !strings.Contains(stderr, "missing:") || !strings.Contains(stderr, "tables differ") {
		t.Fatalf("adopt of the wrong schema: %d %q", code, stderr)
	}
}

func TestDBBadInput(t *testing.T) {
	testenv.PostgresAddr(t)
	_, stderr, code := runCLI(t, "", "db", "status", "--db", "postgres://bob:s3cret-pw@127.0.0.1:1/x", "--schema", "ejabberd", "--timeout", "3s")
	oneLineError(t, stderr, code, exitConnect, "cannot connect to bob@127.0.0.1:1/x")
	if strings.Contains(stderr, "s3cret-pw") {
		t.Errorf("the password was printed: %q", stderr)
	}
	_, stderr, code = runCLI(t, "", "db", "status", "--db", "postgres://bob:s3cret%zz@[::1", "--schema", "ejabberd")
	oneLineError(t, stderr, code, exitUsage, "--db")
	if strings.Contains(stderr, "s3cret") {
		t.Errorf("the password was printed: %q", stderr)
	}
	_, stderr, code = runCLI(t, "", "db", "migrate", "--db", "postgres://127.0.0.1/x", "--schema", "oracle")
	if code != exitUsage || !strings.Contains(stderr, "--schema") {
		t.Errorf("unknown schema: %d %q", code, stderr)
	}
}

// psqlExec runs SQL text in a database through the sql package's driver.
func psqlExec(t *testing.T, url, text string) {
	t.Helper()
	db, err := mimsqlOpen(url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(text); err != nil {
		t.Fatal(err)
	}
}

func mimsqlOpen(url string) (*dbsql.DB, error) {
	db, err := mimsql.Connect(context.Background(), url, mimsql.ConnectOptions{Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	return db.SQL(), nil
}
