package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/migrate/ejabberd"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

//go:embed testdata/mimmigrate_hard.erl
var hardSource []byte

// sqlConfig is ejabberd.yml's part for a PostgreSQL database (the oracle:
// ejabberd's own ejd2sql:export writes into it).
func sqlConfig(t testing.TB, dbURL string, multihost bool) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`
sql_type: pgsql
sql_server: "%s"
sql_port: %s
sql_database: "%s"
sql_username: "postgres"
sql_password: ""
sql_pool_size: 2
new_sql_schema: %v
`, u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/"), multihost)
}

// oracleExport lets the node's ejabberd write its Mnesia data into the
// database it is configured for, with ejd2sql:export(Host, sql).
func oracleExport(t *testing.T, e *testenv.Ejabberd) {
	t.Helper()
	// The SQL pool starts on demand; export2sql's direct mode needs it.
	expr := fmt.Sprintf(`H = <<"%s">>, catch ejabberd_sql_sup:start(H), timer:sleep(500), ejd2sql:export(H, sql)`, e.Host)
	out, err := e.Eval(expr)
	if err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("ejd2sql:export: %v %s", err, out)
	}
}

// schemaFile loads ejabberd's own schema file into a database.
func schemaFile(t *testing.T, dbURL, file string) {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("/usr/share/ejabberd/sql", file))
	if err != nil {
		t.Skipf("ejabberd's %s is not installed (apt-get install ejabberd): %v", file, err)
	}
	psqlExec(t, dbURL, string(text))
}

// tableRows reads a table's rows as text, each row one string, sorted.
func tableRows(t *testing.T, dbURL, table string, cols []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = fmt.Sprintf("coalesce(%s::text, '<NULL>')", pgx.Identifier{c}.Sanitize())
	}
	rows, err := conn.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+pgx.Identifier{table}.Sanitize())
	if err != nil {
		t.Fatalf("%s: %v", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, " | "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// compareWithOracle compares every table ejabberd's export fills with
// ours. Normalisations (docs/export.md, "Compared with ejabberd's export"):
// serial ids (privacy lists are joined by owner and name instead),
// created_at (ejabberd leaves it to now()), and the room subscribers
// ejabberd's export leaves inside muc_room.opts where ejabberd itself,
// when it stores a room in SQL, moves them to muc_room_subscribers.
func compareWithOracle(t *testing.T, oracle, ours string, tg schema.Schema) {
	t.Helper()
	seen := map[string]bool{}
	mangled := 0
	defer func() {
		if mangled == 0 {
			t.Errorf("no row has a backslash, quote or line break: the hard cases did not reach the database")
		}
	}()
	for _, tbl := range tg.Tables() {
		for _, tt := range tbl.Targets {
			if seen[tt] || tt == "muc_room_subscribers" || tt == "oauth_token" || tt == "oauth_client" || tt == "mqtt_pub" || tt == "caps_features" {
				continue
			}
			seen[tt] = true
			var cols []string
			for _, c := range tg.Columns(tt) {
				switch {
				case c == "created_at", c == "seq", tt == "archive" && c == "id",
					tt == "privacy_list" && c == "id", tt == "privacy_list_data" && c == "id":
					continue
				}
				cols = append(cols, c)
			}
			want, got := tableRows(t, oracle, tt, cols), tableRows(t, ours, tt, cols)
			if tt == "muc_room" {
				for i := range want {
					want[i] = dropSubscribers(want[i])
				}
				sort.Strings(want)
			}
			if tt == "privacy_list_data" {
				want = privacyData(t, oracle, tg)
				got = privacyData(t, ours, tg)
			}
			// ejabberd's export writes text with MySQL-style backslash
			// escapes even into PostgreSQL, where they stay in the data
			// (ejabberd #3680): compare our rows as ejabberd mangles them,
			// and count how many rows the bug hits.
			for i, r := range got {
				if m := mysqlMangle(r); m != r {
					got[i] = m
					mangled++
				}
			}
			sort.Strings(got)
			// ejabberd exports a room's archive once per MUC service and
			// once for the virtual host: groupchat rows come twice.
			if tt == "archive" {
				// In the multihost schema, ejabberd's export gives a room's
				// archive the MUC service as server_host, where ejabberd
				// itself stores the virtual host.
				if tg.Name() == "ejabberd-multihost" {
					for i, r := range want {
						f := strings.Split(r, " | ")
						if len(f) == len(cols) && f[len(f)-2] == "groupchat" {
							f[1] = strings.TrimPrefix(f[1], "conference.")
							want[i] = strings.Join(f, " | ")
						}
					}
					sort.Strings(want)
				}
				want = uniqueRows(want)
				if u := uniqueRows(got); len(u) != len(got) {
					t.Errorf("archive: our export has duplicate rows")
				}
			}
			if len(want) == 0 && tt != "pubsub_node_option" && tt != "motd" {
				t.Errorf("%s: ejabberd's export wrote no rows: the oracle data set misses this table", tt)
			}
			diffRows(t, tt, want, got)
		}
	}
}

// privacyData reads privacy_list_data with each list's id replaced by its
// owner and name.
func privacyData(t *testing.T, dbURL string, tg schema.Schema) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT l.username, l.name, d.t, d.value, d.action, d.ord::text, d.match_all, d.match_iq,
		d.match_message, d.match_presence_in, d.match_presence_out
		FROM privacy_list_data d JOIN privacy_list l ON l.id = d.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, _ := rows.Values()
		out = append(out, fmt.Sprint(vals...))
	}
	sort.Strings(out)
	return out
}

// dropSubscribers removes {subscribers,[...]} from an opts text.
func dropSubscribers(s string) string {
	i := strings.Index(s, "{subscribers,")
	if i < 0 {
		return s
	}
	// The test data has no brackets inside strings.
	depth := 0
	for j := i; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				end := j + 1
				if end < len(s) && s[end] == ',' {
					end++
				} else if i > 0 && s[i-1] == ',' {
					i--
				}
				return s[:i] + s[end:]
			}
		}
	}
	return s
}

func diffRows(t *testing.T, table string, want, got []string) {
	t.Helper()
	wc, gc := map[string]int{}, map[string]int{}
	for _, r := range want {
		wc[r]++
	}
	for _, r := range got {
		gc[r]++
	}
	var missing, extra []string
	for r, n := range wc {
		for k := gc[r]; k < n; k++ {
			missing = append(missing, r)
		}
	}
	for r, n := range gc {
		for k := wc[r]; k < n; k++ {
			extra = append(extra, r)
		}
	}
	if len(missing)+len(extra) == 0 {
		return
	}
	sort.Strings(missing)
	sort.Strings(extra)
	clip := func(xs []string) []string {
		out := make([]string, 0, 3)
		for _, x := range xs[:min(3, len(xs))] {
			if len(x) > 400 {
				x = x[:400] + "..."
			}
			out = append(out, x)
		}
		return out
	}
	t.Errorf("%s: %d rows from ejabberd, %d from us; %d missing, e.g. %q; %d extra, e.g. %q",
		table, len(want), len(got), len(missing), clip(missing), len(extra), clip(extra))
}

func TestExportMatchesEjabberd(t *testing.T) {
	if why := testenv.EjabberdAvailable(); why != "" {
		t.Skip(why)
	}
	oracleSingle := testenv.PostgresDB(t)
	schemaFile(t, oracleSingle, "pg.sql")
	e, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "ejexp", ExtraConfig: sqlConfig(t, oracleSingle, false)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy()
	if _, err := e.Populate(testenv.PopulateOptions{Users: 400, APIUsers: 40, Rooms: 6}); err != nil {
		t.Fatal(err)
	}
	if out, err := e.Load(hardSource, "mimmigrate_hard", fmt.Sprintf(`mimmigrate_hard:run(<<"%s">>)`, e.Host)); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("hard cases: %v %s", err, out)
	}
	oracleExport(t, e)
	cookie := testenv.WriteCookieFile(t, e.Cookie)

	// Single host, from the live node.
	ours := schemaDB(t, "ejabberd")
	out, stderr, code := runCLI(t, "", "export", "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", ours,
		"--schema", "ejabberd", "--rejects", filepath.Join(t.TempDir(), "rejects.jsonl"))
	if code != 0 {
		t.Fatalf("export from the node: %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("export from the node:\n%s", out)
	compareWithOracle(t, oracleSingle, ours, ejabberd.Single)
	verifyOK(t, "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", ours, "--schema", "ejabberd")
	exportAgainJSON(t, "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", ours, "--schema", "ejabberd")
	// Three changes behind the export's back: verify names each.
	psql(t, ours, "-c", `UPDATE vcard SET vcard = vcard || ' ' WHERE username = 'hard';
		DELETE FROM users WHERE username = 'user7';
		INSERT INTO rostergroups (username, jid, grp) VALUES ('ghost', 'x@y', 'g')`)
	out, stderr, code = runCLI(t, "", "verify", "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", ours, "--schema", "ejabberd")
	if code != exitPartial || !strings.Contains(out, "vcard different: hard") || !strings.Contains(out, "users missing: user7") ||
		!strings.Contains(out, "rostergroups extra: ghost/x@y") || !strings.Contains(out, "DIFFERENCES") {
		t.Errorf("verify after tampering: %d\n%s\n%s", code, out, stderr)
	}
	verifyJSONNames(t, map[string]string{"vcard": "different hard", "users": "missing user7", "rostergroups": "extra ghost/x@y"},
		"--cookie-file", cookie, "--from", "node:"+e.Name, "--to", ours, "--schema", "ejabberd")

	// The psql file, loaded as the operator would.
	file := filepath.Join(t.TempDir(), "export.sql")
	if out, stderr, code := runCLI(t, "", "export", "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", file,
		"--schema", "ejabberd"); code != 0 {
		t.Fatalf("export to a file: %d\n%s\n%s", code, out, stderr)
	}
	loaded := schemaDB(t, "ejabberd")
	psql(t, loaded, "-1", "-f", file)
	compareWithOracle(t, oracleSingle, loaded, ejabberd.Single)
	// Loading it twice is refused, and changes nothing.
	if out, _ := psqlOut(loaded, "-1", "-f", file); !strings.Contains(out, "is not empty: nothing loaded") {
		t.Errorf("second load of the file: %s", out)
	}
	compareWithOracle(t, oracleSingle, loaded, ejabberd.Single)

	// Multihost: ejabberd's export again, with new_sql_schema, into
	// pg.new.sql; ours from the spool directory, a backup and a dump.
	oracleMulti := testenv.PostgresDB(t)
	schemaFile(t, oracleMulti, "pg.new.sql")
	backup := filepath.Join(e.Base, "export.backup")
	dump := filepath.Join(e.Base, "export.dump")
	for _, args := range [][]string{{"backup", backup}, {"dump", dump}} {
		if out, err := e.Ctl(args...); err != nil {
			t.Fatalf("ejabberdctl %v: %v %s", args, err, out)
		}
	}
	if err := e.Restart(sqlConfig(t, oracleMulti, true)); err != nil {
		t.Fatal(err)
	}
	oracleExport(t, e)
	answers := ejabberdAnswers(t, e)
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	multi := ejabberd.Multihost
	var fromDir string
	for _, from := range []string{"dir:" + e.SpoolDir(), "backup:" + backup, "dump:" + dump} {
		db, out := exportInto(t, "ejabberd-multihost", "--from", from)
		t.Logf("export from %s:\n%s", from, out)
		compareWithOracle(t, oracleMulti, db, multi)
		verifyOK(t, "--from", from, "--to", db, "--schema", "ejabberd-multihost")
		if fromDir == "" {
			fromDir = db
		}
	}
	ejabberdReadsExport(t, answers, fromDir)
	mongooseChecks(t, e.SpoolDir(), oracleMulti)
	exportFaults(t, e, oracleMulti)
}

func verifyOK(t *testing.T, args ...string) {
	t.Helper()
	out, stderr, code := runCLI(t, "", append([]string{"verify"}, args...)...)
	if code != 0 || !strings.Contains(out, "every row matches") {
		t.Errorf("verify %v: %d\n%s\n%s", args, code, out, stderr)
	}
}

// exportAgainJSON runs a finished export again with --json: nothing to do,
// and the summary (docs/export.md#the-json-summary) says so: every table
// done before, no rows this run, the totals of the first run.
func exportAgainJSON(t *testing.T, args ...string) {
	t.Helper()
	out, stderr, code := runCLI(t, "", append([]string{"export", "--json", "--rejects", filepath.Join(t.TempDir(), "r.jsonl")}, args...)...)
	if code != 0 {
		t.Fatalf("export again: %d\n%s\n%s", code, out, stderr)
	}
	if nulls := testenv.NullKeys(t, []byte(out)); len(nulls) > 0 {
		t.Errorf("export --json: null %v", nulls)
	}
	var sum struct {
		Schema       string `json:"schema"`
		TargetSchema string `json:"target_schema"`
		Rows         int64  `json:"rows"`
		RowsThisRun  int64  `json:"rows_this_run"`
		Partial      bool   `json:"partial"`
		Tables       []struct {
			Table      string `json:"table"`
			Rows       int64  `json:"rows"`
			DoneBefore bool   `json:"done_before"`
		} `json:"tables"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("export --json: %v\n%s", err, out)
	}
	var rows int64
	for _, tb := range sum.Tables {
		rows += tb.Rows
		if !tb.DoneBefore {
			t.Errorf("export again: %s not done before", tb.Table)
		}
	}
	if sum.Schema != "mimmigrate.export-summary/1" || sum.TargetSchema == "" || sum.RowsThisRun != 0 || sum.Rows == 0 ||
		sum.Rows != rows || len(sum.Tables) < 10 || sum.Partial {
		t.Errorf("export again --json: %s", out)
	}
}

// verifyJSONNames runs verify --json and wants exactly the mismatches
// given per table ("kind key"), every other table matching.
func verifyJSONNames(t *testing.T, want map[string]string, args ...string) {
	t.Helper()
	out, stderr, code := runCLI(t, "", append([]string{"verify", "--json"}, args...)...)
	if code != exitPartial {
		t.Fatalf("verify --json: %d\n%s\n%s", code, out, stderr)
	}
	if nulls := testenv.NullKeys(t, []byte(out)); len(nulls) > 0 {
		t.Errorf("verify --json: null %v", nulls)
	}
	var res struct {
		Schema string `json:"schema"`
		OK     bool   `json:"ok"`
		Tables []struct {
			Table      string `json:"table"`
			Mismatches []struct {
				Kind string `json:"kind"`
				Key  string `json:"key"`
			} `json:"mismatches"`
		} `json:"tables"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, tb := range res.Tables {
		for _, m := range tb.Mismatches {
			got[tb.Table] = strings.TrimSpace(got[tb.Table] + " " + m.Kind + " " + m.Key)
		}
	}
	if res.Schema != "mimmigrate.verify/1" || res.OK || !reflect.DeepEqual(got, want) {
		t.Errorf("verify --json: mismatches %v, want %v\n%s", got, want, out)
	}
}

// exportFaults: records PostgreSQL cannot store, kill -9 of the export
// mid-table (from files and from the node), a database that refuses rows,
// a source node that dies mid-export. Each time the same command again
// finishes the export, and verify finds every row exactly once.
func exportFaults(t *testing.T, e *testenv.Ejabberd, oracleMulti string) {
	bin := buildBinary(t)
	multi := ejabberd.Multihost
	// kill -9 mid-export from the spool directory (positional resume).
	db := schemaDB(t, "ejabberd-multihost")
	args := []string{"export", "--from", "dir:" + e.SpoolDir(), "--to", db, "--schema", "ejabberd-multihost",
		"--chunk", "1", "--workers", "1", "--rejects", filepath.Join(t.TempDir(), "r.jsonl")}
	killMidway(t, bin, db, args)
	if out, stderr, code := runCLI(t, "", args...); code != 0 {
		t.Fatalf("resumed export: %d\n%s\n%s", code, out, stderr)
	} else if !strings.Contains(out, "done before") && !strings.Contains(out, "RECORDS") {
		t.Errorf("resumed export's summary: %s", out)
	}
	compareWithOracle(t, oracleMulti, db, multi)
	verifyOK(t, "--from", "dir:"+e.SpoolDir(), "--to", db, "--schema", "ejabberd-multihost")

	// A database that refuses a row: a clear error, exit 4; what was
	// committed stays; after the cause is gone, the same command finishes.
	db2 := schemaDB(t, "ejabberd-multihost")
	psql(t, db2, "-c", "ALTER TABLE last ADD CONSTRAINT no_hard CHECK (username <> 'hard')")
	args2 := []string{"export", "--from", "dir:" + e.SpoolDir(), "--to", db2, "--schema", "ejabberd-multihost",
		"--rejects", filepath.Join(t.TempDir(), "r.jsonl")}
	_, stderr, code := runCLI(t, "", args2...)
	oneLineError(t, stderr, code, exitRemote, "PostgreSQL refused rows for last", "no_hard", "run the same command again to resume")
	psql(t, db2, "-c", "ALTER TABLE last DROP CONSTRAINT no_hard")
	if out, stderr, code := runCLI(t, "", args2...); code != 0 {
		t.Fatalf("export after the refusal: %d\n%s\n%s", code, out, stderr)
	}
	verifyOK(t, "--from", "dir:"+e.SpoolDir(), "--to", db2, "--schema", "ejabberd-multihost")

	// Into a database that holds rows already: refused until --fresh.
	_, stderr, code = runCLI(t, "", "export", "--from", "backup:"+filepath.Join(e.Base, "export.backup"), "--to", db2, "--schema", "ejabberd-multihost")
	oneLineError(t, stderr, code, exitRefused, "another source", "--fresh")
	if out, stderr, code := runCLI(t, "no\n", "export", "--from", "backup:"+filepath.Join(e.Base, "export.backup"), "--to", db2,
		"--schema", "ejabberd-multihost", "--fresh"); code != exitRefused {
		t.Errorf("--fresh answered no: %d %s %s", code, out, stderr)
	}

	// Records with NUL bytes: rejected with the reason, counted, exit 7;
	// verify knows they are not in the database.
	if err := e.Restart(""); err != nil {
		t.Fatal(err)
	}
	if out, err := e.Load(hardSource, "mimmigrate_hard", fmt.Sprintf(`mimmigrate_hard:nul(<<"%s">>)`, e.Host)); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("nul: %v %s", err, out)
	}
	cookie := testenv.WriteCookieFile(t, e.Cookie)
	db3 := schemaDB(t, "ejabberd-multihost")
	rejects := filepath.Join(t.TempDir(), "rejects.jsonl")
	nodeArgs := []string{"export", "--cookie-file", cookie, "--from", "node:" + e.Name, "--to", db3, "--schema", "ejabberd-multihost",
		"--rejects", rejects, "--chunk", "1", "--workers", "1"}
	out, stderr, code := runCLI(t, "", nodeArgs...)
	if code != exitPartial || !strings.Contains(stderr, "3 records rejected") {
		t.Errorf("export with NUL bytes: %d\n%s\n%s", code, out, stderr)
	}
	rj, _ := os.ReadFile(rejects)
	if n := strings.Count(string(rj), "\n"); n != 3 || !strings.Contains(string(rj), `"table":"vcard"`) ||
		!strings.Contains(string(rj), "NUL byte") || !strings.Contains(string(rj), `"table":"last_activity"`) ||
		!strings.Contains(string(rj), "private_storage.data holds U+001F, which XML 1.0 forbids") {
		t.Errorf("rejects file: %s", rj)
	}
	if out, stderr, code := runCLI(t, "", "verify", "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", db3,
		"--schema", "ejabberd-multihost"); code != 0 || !strings.Contains(out, "3 source records cannot be mapped") {
		t.Errorf("verify with rejects: %d\n%s\n%s", code, out, stderr)
	}

	// kill -9 mid-export from the live node: the unfinished table starts
	// over (a live table has no stable order), the finished ones stay.
	db4 := schemaDB(t, "ejabberd-multihost")
	nodeArgs4 := append([]string{}, nodeArgs...)
	nodeArgs4[6] = db4
	killMidway(t, bin, db4, nodeArgs4)
	if out, stderr, code := runCLI(t, "", nodeArgs4...); code != exitPartial {
		t.Fatalf("resumed export from the node: %d\n%s\n%s", code, out, stderr)
	}
	verifyOK(t, "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", db4, "--schema", "ejabberd-multihost")

	// The source node dies mid-export: one line, exit 4; resumable once it
	// is back.
	db5 := schemaDB(t, "ejabberd-multihost")
	nodeArgs5 := append([]string{}, nodeArgs...)
	nodeArgs5[6] = db5
	cmd := exec.Command(bin, nodeArgs5...)
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(t, db5)
	e.Kill()
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitRemote || strings.Count(strings.TrimSpace(errBuf.String()), "\n") != 0 ||
		!strings.Contains(errBuf.String(), "resume") {
		t.Errorf("node killed mid-export: exit %d, stderr %q", code, errBuf.String())
	}
	if err := e.Restart(""); err != nil {
		t.Fatal(err)
	}
	if out, stderr, code := runCLI(t, "", nodeArgs5...); code != exitPartial {
		t.Fatalf("export after the node came back: %d\n%s\n%s", code, out, stderr)
	}
	verifyOK(t, "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", db5, "--schema", "ejabberd-multihost")
}

// waitCheckpoint waits until an export has committed a chunk of a table it
// has not finished.
func waitCheckpoint(t *testing.T, dbURL string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := psqlOut(dbURL, "-At", "-c", "SELECT count(*) FROM mimmigrate_export WHERE NOT done AND records > 0")
		if n := strings.TrimSpace(out); n != "" && n != "0" && !strings.Contains(n, "ERROR") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the export committed no chunk within a minute")
}

// killMidway starts the export as a process and kills it (-9) once it has
// committed part of a table.
func killMidway(t *testing.T, bin, dbURL string, args []string) {
	t.Helper()
	killMidTable(t, bin, dbURL, "", args)
}

// killMidTable is killMidway once the given Mnesia table (any, if "") has
// committed a chunk but not its last.
func killMidTable(t *testing.T, bin, dbURL, table string, args []string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cond := ""
		if table != "" {
			cond = " AND source_table = '" + table + "'"
		}
		out, _ := psqlOut(dbURL, "-At", "-c", "SELECT count(*) FROM mimmigrate_export WHERE NOT done AND records > 0"+cond)
		if n := strings.TrimSpace(out); n != "" && n != "0" && !strings.Contains(n, "ERROR") {
			break
		}
		select {
		case <-done:
			t.Fatalf("the export ended before it was killed: %s", errBuf.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the export committed no chunk within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	<-done
	out, _ := psqlOut(dbURL, "-At", "-c", "SELECT count(*) FROM mimmigrate_export WHERE NOT done")
	if strings.TrimSpace(out) == "0" {
		t.Fatalf("the export finished before it was killed")
	}
}

func psqlOut(dbURL string, args ...string) (string, error) {
	cmd := exec.Command("psql", append([]string{"-X", "-q", "-d", dbURL}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func psql(t *testing.T, dbURL string, args ...string) {
	t.Helper()
	if out, err := psqlOut(dbURL, args...); err != nil || strings.Contains(out, "ERROR") {
		t.Fatalf("psql %v: %v\n%s", args, err, out)
	}
}

// mysqlMangle is what ejabberd's export makes of text in PostgreSQL: its
// escapes (backslash, double quote, NUL, line ends, tab, backspace) stay.
func mysqlMangle(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\r':
			b.WriteString(`\r`)
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func uniqueRows(rows []string) []string {
	var out []string
	for i, r := range rows {
		if i == 0 || r != rows[i-1] {
			out = append(out, r)
		}
	}
	return out
}

// exportInto makes a database with our schema and exports into it.
func exportInto(t *testing.T, schema string, args ...string) (dbURL, out string) {
	t.Helper()
	dbURL = testenv.PostgresDB(t)
	if _, stderr, code := runCLI(t, "", "db", "migrate", "--db", dbURL, "--schema", schema); code != 0 {
		t.Fatalf("db migrate: %s", stderr)
	}
	all := append([]string{"export", "--to", dbURL, "--schema", schema,
		"--rejects", filepath.Join(t.TempDir(), "rejects.jsonl")}, args...)
	out, stderr, code := runCLI(t, "", all...)
	if code != 0 {
		t.Fatalf("export %v: %d\n%s\n%s", args, code, out, stderr)
	}
	return dbURL, out
}

// ejabberdAnswers asks a node what its storage holds, through ejabberd's
// own commands and functions: accounts (SCRAM, plain, escapes), rosters,
// vCards, private storage, last activity, offline messages, privacy lists,
// rooms, shared roster groups. The Mnesia node before the export and a
// node reading the exported database must answer alike.
func ejabberdAnswers(t *testing.T, e *testenv.Ejabberd) []string {
	t.Helper()
	h, muc := e.Host, "conference."+e.Host
	var out []string
	for _, args := range [][]string{
		{"check_password", "user5", h, "pw-user5"},   // SCRAM, through the API
		{"check_password", "user41", h, "pw-user1"},  // SCRAM, a copied record
		{"check_password", "user60", h, "pw-user60"}, // plain text
		{"check_password", "hard", h, `pw ' " \ x`},
		{"check_password", "user5", h, "wrong"},
		{"get_roster", "user5", h}, {"get_roster", "user100", h},
		{"get_vcard", "user4", h, "FN"}, {"get_vcard2", "user4", h, "N", "FAMILY"}, {"get_vcard", "hard", h, "FN"},
		{"get_vcard", "hard", h, "NICKNAME"},
		{"private_get", "user4", h, "storage", "storage:bookmarks"},
		{"get_last", "user7", h}, {"get_last", "hard", h},
		{"get_offline_count", "user5", h}, {"get_offline_count", "hard", h},
		{"get_room_options", "room1", muc}, {"get_room_affiliations", "room1", muc},
		{"get_room_options", "hardroom", muc}, {"get_room_affiliations", "hardroom", muc},
		{"srg_get_members", "staff", h},
	} {
		got, err := e.Ctl(args...)
		if err != nil {
			got = "FAILED " + got
		}
		// Rows come in the storage's order (a roster item's groups, a
		// group's members): compare them as a set.
		lines := strings.Split(strings.TrimSpace(got), "\n")
		sort.Strings(lines)
		out = append(out, strings.Join(args, " ")+" => "+strings.Join(lines, "\n"))
	}
	// Privacy lists in name order (each list's items keep theirs). Offline
	// messages in their order, with the delay element reduced to its stamp:
	// ejabberd's Mnesia backend adds <delay>Offline storage</delay> when it
	// reads, its SQL backend stores <delay>Offline Storage</delay> (as
	// ejabberd's own export2sql writes it, and so do we).
	privacy := `case mod_privacy:get_user_lists(<<"%s">>, <<"` + h + `">>) of {ok, {privacy, US, D, L}} -> {US, D, lists:sort(L)}; E -> E end`
	offline := `[re:replace(fxml:element_to_binary(xmpp:encode(M)), "<delay[^>]*stamp='([^']*)'[^>]*>[^<]*</delay>", "<delay stamp='\\1'/>", [{return, binary}])
		|| M <- mod_offline:get_offline_els(<<"%s">>, <<"` + h + `">>)]`
	for _, expr := range []string{
		fmt.Sprintf(privacy, "user1"), fmt.Sprintf(privacy, "hard"),
		fmt.Sprintf(offline, "hard"), fmt.Sprintf(offline, "user5"),
	} {
		got, err := e.Eval(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		out = append(out, expr+" => "+got)
	}
	return out
}

// ejabberdReadsExport starts an ejabberd node on the exported database
// (auth_method and default_db sql) and compares its answers with the
// Mnesia node's.
func ejabberdReadsExport(t *testing.T, want []string, dbURL string) {
	t.Helper()
	// The questions must have real answers, or agreeing proves nothing.
	// (check_password says nothing when the password is right; the fifth
	// is wrong.)
	for i, w := range want {
		failed := strings.Contains(w, "=> FAILED")
		empty := strings.HasSuffix(w, "=> ") || strings.HasSuffix(w, "=> 0") || strings.HasSuffix(w, "=> []")
		switch {
		case i < 4 && (failed || !empty):
			t.Errorf("the right password is refused by the Mnesia node: %s", w)
		case i == 4 && !failed:
			t.Errorf("a wrong password is accepted by the Mnesia node: %s", w)
		case i > 4 && (failed || empty):
			t.Errorf("the Mnesia node's answer does not test anything: %s", w)
		}
	}
	s, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "ejsql", SQL: true, ExtraConfig: sqlConfig(t, dbURL, true)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	got := ejabberdAnswers(t, s)
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("ejabberd on the exported database answers differently:\nmnesia: %s\nsql:    %s", want[i], got[i])
		}
	}
}
