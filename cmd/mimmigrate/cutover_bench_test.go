package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
	"github.com/mimmigrate/mimmigrate/internal/xmpptest"
)

// BenchmarkCutoverDowntime measures, on one ejabberd 23.01 data set
// (populate: accounts, rosters, vCards, private storage, offline
// messages, MAM, …), how long the users cannot log in:
//
//	(a) mimmigrate: sync live, two Go nodes in standby, cutover -f; the
//	    downtime is from the moment the legacy listeners stopped to the
//	    moment the Go nodes serve (the cutover's own record), with the
//	    drain and the check of the keys that changed since the comparison
//	    of every table in between; users change their data (400 changes/s
//	    through ejabberd's code) during that comparison and 5 s after;
//	(b) ejabberd's documented path on the same data, after (a): export2sql
//	    into a file, psql -1 -f into a fresh database, ejabberd restarted
//	    on SQL until its c2s port accepts connections.
//
// Run:
//
//	MIMMIGRATE_BENCH_USERS=100000 go test -run XXX -bench CutoverDowntime -benchtime 1x -timeout 120m ./cmd/mimmigrate/
func BenchmarkCutoverDowntime(b *testing.B) {
	if why := xmpptest.Unavailable(); why != "" {
		b.Skip(why)
	}
	users := 10000
	if v := os.Getenv("MIMMIGRATE_BENCH_USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			b.Fatalf("MIMMIGRATE_BENCH_USERS=%q", v)
		}
		users = n
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "mimmigrate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	ca, err := xmpptest.NewCA(dir)
	if err != nil {
		b.Fatal(err)
	}
	// ejabberd needs an SQL pool for export2sql's privacy module.
	pool := testenv.PostgresDB(b)
	schemaFileB(b, pool, "pg.sql")
	e, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "ejcut", Host: xmpptest.Host, ExtraConfig: sqlConfig(b, pool, false)})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Destroy()
	t0 := time.Now()
	if _, err := e.Populate(testenv.PopulateOptions{Users: users, APIUsers: 100, Rooms: 30}); err != nil {
		b.Fatalf("%v\n%s", err, e.Diagnose())
	}
	b.Logf("populated %d users in %s", users, time.Since(t0).Round(time.Second))
	if _, err := e.Eval(fmt.Sprintf(`catch ejabberd_sql_sup:start(<<"%s">>)`, e.Host)); err != nil {
		b.Fatal(err)
	}
	cookie := testenv.WriteCookieFile(b, e.Cookie)

	// (a) sync, standby nodes, cutover.
	db := testenv.PostgresDB(b)
	if _, stderr, code := runCLIb(b, "db", "migrate", "--db", db, "--schema", "ejabberd"); code != 0 {
		b.Fatalf("db migrate: %s", stderr)
	}
	syncCmd := exec.Command(bin, "sync", "--json", "--interval", "200ms", "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", db, "--schema", "ejabberd")
	syncOut := &testenv.SyncBuffer{}
	syncCmd.Stdout, syncCmd.Stderr = syncOut, syncOut
	tSync := time.Now()
	if err := syncCmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { syncCmd.Process.Kill(); syncCmd.Wait() }()
	deadline := time.Now().Add(30 * time.Minute)
	for !strings.Contains(syncOut.String(), `"phase":"live","at"`) || !strings.Contains(syncOut.String(), `"state":"live"`) {
		if time.Now().After(deadline) {
			b.Fatalf("sync did not go live: %s", testenv.Tail(syncOut.String(), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Logf("sync live after %s", time.Since(tSync).Round(100*time.Millisecond))
	bed := &xmpptest.Bed{Dir: dir, CA: ca, Bin: bin, DBURL: db}
	modules := "modules:\n  mod_roster:\n    versioning: true\n  mod_last: {}\n  mod_offline: {}\n"
	cluster := "bc" + testenv.RandomID(4)
	n1 := bed.StartNodeProcess(b, cluster, modules, "--standby")
	n2 := bed.StartNodeProcess(b, cluster, modules, "--standby")
	nodesCookie := testenv.WriteCookieFile(b, n1.Cookie)
	args := []string{"cutover", "--cookie-file", cookie, "--nodes-cookie-file", nodesCookie, "--from", "node:" + e.Name, "--to", db,
		"--schema", "ejabberd", "--nodes", n1.Name + "," + n2.Name}
	// Users change their data while the cutover compares every table
	// (the legacy cluster still serves then): the keys they change are
	// those the check after the drain reads.
	const rate = 400
	if out, err := e.Load(trafficSource, "mimmigrate_traffic", fmt.Sprintf(`mimmigrate_traffic:start(<<"%s">>, %d, %d, <<"bench">>)`, e.Host, users, rate)); err != nil || !strings.Contains(out, "ok") {
		b.Fatalf("traffic: %v %s", err, out)
	}
	runCutover := func(stdin string, extra ...string) (string, error) {
		cmd := exec.Command(bin, append(args, extra...)...)
		cmd.Stdin = strings.NewReader(stdin)
		o, err := cmd.CombinedOutput()
		return string(o), err
	}
	var out string
	for try := 0; ; try++ {
		o, err := runCutover("yes\nno\n")
		out = o
		if strings.Contains(out, "not confirmed") {
			break
		}
		// The Go nodes may not have found each other yet.
		if try > 30 || !strings.Contains(out, "not one cluster") {
			b.Fatalf("cutover, the comparison: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
	}
	compare := regexp.MustCompile(`\(([0-9.]+) s\)`).FindStringSubmatch(out)
	// The users keep changing their data for as long again, then the
	// logins close (the sessions' changes end with them).
	time.Sleep(5 * time.Second)
	counts, _ := e.Eval(`mimmigrate_traffic:stop()`)
	b.Logf("traffic during the comparison and after: %s", counts)
	start := time.Now()
	o, err := runCutover("", "-f")
	out += o
	if err != nil {
		b.Fatalf("cutover: %v\n%s", err, out)
	}
	whole := time.Since(start)
	m := regexp.MustCompile(`Logins were closed for ([0-9.]+) s`).FindStringSubmatch(out)
	if m == nil || compare == nil {
		b.Fatalf("cutover output: %s", out)
	}
	ours, _ := strconv.ParseFloat(m[1], 64)
	if c, err := net.DialTimeout("tcp", n1.StartTLS, 2*time.Second); err != nil {
		b.Fatalf("the Go node does not serve after the cutover: %v", err)
	} else {
		c.Close()
	}
	rows := rowsOfB(b, db)

	// (b) ejabberd's path on the same data.
	file := filepath.Join(e.Base, "export2sql.sql")
	os.WriteFile(file, nil, 0o666)
	os.Chown(file, ejabberdUID(), -1)
	tb := time.Now()
	if o, err := e.Ctl("--no-timeout", "export2sql", e.Host, file); err != nil {
		b.Fatalf("export2sql: %v %s\n%s", err, testenv.Tail(o, 300), e.Diagnose())
	}
	tExport := time.Since(tb)
	dbA := testenv.PostgresDB(b)
	schemaFileB(b, dbA, "pg.sql")
	tl := time.Now()
	load := exec.Command("psql", "-X", "-q", "-1", "-d", dbA, "-f", file)
	load.Env = append(os.Environ(), "PGOPTIONS=-c standard_conforming_strings=off")
	if o, err := load.CombinedOutput(); err != nil {
		b.Fatalf("psql: %v %s", err, o)
	}
	tLoad := time.Since(tl)
	tr := time.Now()
	if err := e.RestartOnSQL(sqlConfig(b, dbA, false)); err != nil {
		b.Fatal(err)
	}
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", e.C2SPort), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Since(tr) > 5*time.Minute {
			b.Fatalf("ejabberd on SQL does not accept connections")
		}
		time.Sleep(50 * time.Millisecond)
	}
	tRestart := time.Since(tr)
	theirs := tExport + tLoad + tRestart
	fmt.Fprintf(os.Stderr, "BENCH users %d, rows %d\n", users, rows)
	fmt.Fprintf(os.Stderr, "BENCH (a) mimmigrate cutover: logins closed %.2f s (the comparison while serving %s s under %d changes/s; the second command %.1f s, preflight included)\n", ours, compare[1], rate, whole.Seconds())
	fmt.Fprintf(os.Stderr, "BENCH (b) ejabberd's path: export2sql %.1f s + psql %.1f s + restart on SQL %.1f s = %.1f s\n", tExport.Seconds(), tLoad.Seconds(), tRestart.Seconds(), theirs.Seconds())
	fmt.Fprintf(os.Stderr, "BENCH downtime ratio: %.0fx shorter\n", theirs.Seconds()/ours)
	fmt.Fprintf(os.Stderr, "BENCH cutover output:\n%s\n", out)
	b.ReportMetric(ours, "s-downtime")
	b.ReportMetric(theirs.Seconds(), "s-downtime-ejabberd")
}

// rowsOfB counts the rows of the main tables.
func rowsOfB(b *testing.B, dbURL string) int64 {
	out, err := psqlOut(dbURL, "-At", "-c", `SELECT sum(n) FROM (
		SELECT count(*) n FROM users UNION ALL SELECT count(*) FROM last UNION ALL SELECT count(*) FROM rosterusers
		UNION ALL SELECT count(*) FROM rostergroups UNION ALL SELECT count(*) FROM vcard UNION ALL SELECT count(*) FROM vcard_search
		UNION ALL SELECT count(*) FROM spool UNION ALL SELECT count(*) FROM private_storage UNION ALL SELECT count(*) FROM archive) x`)
	if err != nil {
		b.Fatalf("count: %v %s", err, out)
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	return n
}
