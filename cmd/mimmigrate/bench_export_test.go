package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// BenchmarkExportVersusEjabberd times, on one data set in a real ejabberd
// 23.01 (populate: accounts, rosters with groups, vCards, private storage,
// last activity, privacy, rooms, offline messages, MAM):
//
//	(a) ejabberd's path: ejabberdctl export2sql into a file, then psql -1 -f
//	    of that file (with standard_conforming_strings=off, which its
//	    escapes need);
//	(b) mimmigrate export --from node:… into PostgreSQL;
//	(c) mimmigrate export --from dir:… (the stopped node's spool);
//	(d) mimmigrate verify --from dir:… of the whole set;
//
// with the peak RSS of our processes. Run:
//
//	MIMMIGRATE_BENCH_USERS=100000 go test -run XXX -bench ExportVersusEjabberd -benchtime 1x -timeout 120m ./cmd/mimmigrate/
func BenchmarkExportVersusEjabberd(b *testing.B) {
	if why := testenv.EjabberdAvailable(); why != "" {
		b.Skip(why)
	}
	users := 20000
	if v := os.Getenv("MIMMIGRATE_BENCH_USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			b.Fatalf("MIMMIGRATE_BENCH_USERS=%q", v)
		}
		users = n
	}
	bin := filepath.Join(b.TempDir(), "mimmigrate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	// ejabberd needs an SQL pool for export2sql's privacy module even
	// when it writes a file: give it one (no stall).
	pool := testenv.PostgresDB(b)
	schemaFileB(b, pool, "pg.sql")
	e, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "ejbx", ExtraConfig: sqlConfig(b, pool, false)})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Destroy()
	t0 := time.Now()
	if _, err := e.Populate(testenv.PopulateOptions{Users: users, APIUsers: 100, Rooms: 30}); err != nil {
		b.Fatal(err)
	}
	b.Logf("populated %d users in %s", users, time.Since(t0).Round(time.Second))
	if _, err := e.Eval(fmt.Sprintf(`catch ejabberd_sql_sup:start(<<"%s">>)`, e.Host)); err != nil {
		b.Fatal(err)
	}
	cookie := testenv.WriteCookieFile(b, e.Cookie)

	runTimed := func(name string, env []string, args ...string) (time.Duration, int64, string) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), env...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		if err != nil {
			b.Fatalf("%s: %v\n%s", name, err, out.String())
		}
		rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss / 1024
		return took, rss, out.String()
	}
	rowsOf := func(dbURL string) int64 {
		out, err := psqlOut(dbURL, "-At", "-c", `SELECT sum(n) FROM (
			SELECT count(*) n FROM users UNION ALL SELECT count(*) FROM last UNION ALL SELECT count(*) FROM rosterusers
			UNION ALL SELECT count(*) FROM rostergroups UNION ALL SELECT count(*) FROM roster_version UNION ALL SELECT count(*) FROM vcard
			UNION ALL SELECT count(*) FROM vcard_search UNION ALL SELECT count(*) FROM spool UNION ALL SELECT count(*) FROM private_storage
			UNION ALL SELECT count(*) FROM privacy_list_data UNION ALL SELECT count(*) FROM privacy_list UNION ALL SELECT count(*) FROM privacy_default_list
			UNION ALL SELECT count(*) FROM muc_room UNION ALL SELECT count(*) FROM muc_registered UNION ALL SELECT count(*) FROM archive
			UNION ALL SELECT count(*) FROM archive_prefs UNION ALL SELECT count(*) FROM sr_group UNION ALL SELECT count(*) FROM sr_user
			UNION ALL SELECT count(*) FROM motd) x`)
		if err != nil {
			b.Fatalf("count: %v %s", err, out)
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		return n
	}
	newDB := func() string {
		db := testenv.PostgresDB(b)
		if _, stderr, code := runCLIb(b, "db", "migrate", "--db", db, "--schema", "ejabberd"); code != 0 {
			b.Fatalf("db migrate: %s", stderr)
		}
		return db
	}

	// (a) ejabberd's export2sql and psql.
	file := filepath.Join(e.Base, "export2sql.sql")
	os.WriteFile(file, nil, 0o666)
	os.Chown(file, ejabberdUID(), -1)
	start := time.Now()
	if out, err := e.Ctl("--no-timeout", "export2sql", e.Host, file); err != nil {
		b.Fatalf("export2sql: %v %s", err, out)
	}
	tExport := time.Since(start)
	dbA := newDB()
	tLoad, _, _ := runTimed("psql", []string{"PGOPTIONS=-c standard_conforming_strings=off"}, "psql", "-X", "-q", "-1", "-d", dbA, "-f", file)
	rowsA := rowsOf(dbA)

	// (b) from the node.
	dbB := newDB()
	tB, rssB, outB := runTimed("export node", nil, bin, "export", "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", dbB, "--schema", "ejabberd",
		"--rejects", filepath.Join(b.TempDir(), "r.jsonl"))
	rowsB := rowsOf(dbB)

	// (c) and (d) from the spool of the stopped node.
	if err := e.Stop(); err != nil {
		b.Fatal(err)
	}
	dbC := newDB()
	tC, rssC, _ := runTimed("export dir", nil, bin, "export", "--from", "dir:"+e.SpoolDir(), "--to", dbC, "--schema", "ejabberd",
		"--rejects", filepath.Join(b.TempDir(), "r.jsonl"))
	rowsC := rowsOf(dbC)
	tD, rssD, outD := runTimed("verify dir", nil, bin, "verify", "--from", "dir:"+e.SpoolDir(), "--to", dbC, "--schema", "ejabberd")
	if !strings.Contains(outD, "every row matches") {
		b.Fatalf("verify: %s", outD)
	}
	_ = outB
	a := tExport + tLoad
	fmt.Fprintf(os.Stderr, "BENCH users %d, rows (ejabberd's path %d, node %d, dir %d)\n", users, rowsA, rowsB, rowsC)
	fmt.Fprintf(os.Stderr, "BENCH (a) export2sql %.1f s + psql %.1f s = %.1f s (%.0f rows/s)\n", tExport.Seconds(), tLoad.Seconds(), a.Seconds(), float64(rowsA)/a.Seconds())
	fmt.Fprintf(os.Stderr, "BENCH (b) export --from node %.1f s (%.0f rows/s, %.1fx faster than a), peak RSS %d MB\n", tB.Seconds(), float64(rowsB)/tB.Seconds(), a.Seconds()/tB.Seconds(), rssB)
	fmt.Fprintf(os.Stderr, "BENCH (c) export --from dir  %.1f s (%.0f rows/s, %.1fx faster than a), peak RSS %d MB\n", tC.Seconds(), float64(rowsC)/tC.Seconds(), a.Seconds()/tC.Seconds(), rssC)
	fmt.Fprintf(os.Stderr, "BENCH (d) verify --from dir  %.1f s (%.2f of the export's time), peak RSS %d MB\n", tD.Seconds(), tD.Seconds()/tC.Seconds(), rssD)
	b.ReportMetric(float64(rowsC)/tC.Seconds(), "rows/s-dir")
	b.ReportMetric(a.Seconds()/tB.Seconds(), "x-node-vs-ejabberd")
}

func runCLIb(b *testing.B, args ...string) (string, string, int) {
	var out, errOut strings.Builder
	code := run(args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

func schemaFileB(b *testing.B, dbURL, file string) {
	text, err := os.ReadFile(filepath.Join("/usr/share/ejabberd/sql", file))
	if err != nil {
		b.Skipf("ejabberd's %s is not installed: %v", file, err)
	}
	if out, err := psqlOut(dbURL, "-c", string(text)); err != nil {
		b.Fatalf("%v %s", err, out)
	}
}

func ejabberdUID() int {
	out, err := exec.Command("id", "-u", "ejabberd").Output()
	if err != nil {
		return -1
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}
