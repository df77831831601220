package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// BenchmarkInspectVersusEjabberdctl times the whole command, process start
// included: `mimmigrate inspect` of a healthy two-node ejabberd cluster with
// 3000 users (connecting to both nodes, every table on each) against
// `ejabberdctl mnesia_info` on the same node (one node's system_info only),
// alternating in the same run.
//
//	go test -run XXX -bench InspectVersusEjabberdctl -benchtime 20x ./cmd/mimmigrate/
func BenchmarkInspectVersusEjabberdctl(b *testing.B) {
	if why := testenv.EjabberdAvailable(); why != "" {
		b.Skip(why)
	}
	bin := buildBinary(b)
	c, err := testenv.StartEjabberdCluster(2, "ejb", testenv.PopulateOptions{Users: 3000})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Destroy()
	n1 := c.Nodes[0]
	cookie := filepath.Join(b.TempDir(), "cookie")
	os.WriteFile(cookie, []byte(n1.Cookie), 0o600)
	var maxRSS int64
	inspect := func() {
		cmd := exec.Command(bin, "inspect", "--node", n1.Name, "--cookie-file", cookie)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "TABLES (") {
			b.Fatalf("inspect: %v\n%s", err, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > maxRSS {
			maxRSS = ru.Maxrss
		}
	}
	ctl := func() {
		out, err := n1.Ctl("mnesia_info")
		if err != nil || !strings.Contains(out, "running_db_nodes") {
			b.Fatalf("ejabberdctl mnesia_info: %v\n%s", err, out)
		}
	}
	inspect()
	ctl()
	var ours, theirs []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		inspect()
		t1 := time.Now()
		ctl()
		ours = append(ours, float64(t1.Sub(t0).Microseconds())/1000)
		theirs = append(theirs, float64(time.Since(t1).Microseconds())/1000)
	}
	b.StopTimer()
	sort.Float64s(ours)
	sort.Float64s(theirs)
	mo, mt := ours[len(ours)/2], theirs[len(theirs)/2]
	b.ReportMetric(mo, "inspect-ms")
	b.ReportMetric(mt, "ejabberdctl-ms")
	b.ReportMetric(mt/mo, "speedup")
	b.ReportMetric(theirs[0]/ours[0], "speedup-of-best")
	b.ReportMetric(float64(maxRSS)/1024, "inspect-maxrss-MB")
	b.Logf("median of %d: mimmigrate inspect %.1f ms, ejabberdctl mnesia_info %.1f ms; best: %.1f ms vs %.1f ms",
		len(ours), mo, mt, ours[0], theirs[0])
}

// BenchmarkReadVersusErlang reads a large Mnesia directory (scale 1: about
// 1.4 GB of DETS and 3.6 M records, made by real Erlang with
// mnesiaread/testdata/mbench.erl and kept between runs) with `mimmigrate
// read --summary`, with `mimmigrate read` (every record decoded and printed
// as JSON, to /dev/null), and with Erlang reading the same files without
// Mnesia (dets:foldl over each DAT, disk_log over the DCD; one file at a
// time and one process per file), alternating in the same run. Every
// program must count the same records per table. The files are in the page
// cache for every run but the very first (warm-up) round.
//
//	go test -run XXX -bench ReadVersusErlang -benchtime 3x -timeout 60m ./cmd/mimmigrate/
//
// MIMMIGRATE_BENCH_SCALE (default 1) scales every table.
func BenchmarkReadVersusErlang(b *testing.B) {
	erl := testenv.Erl(b)
	erlc := testenv.Tool(b, "erlc", "erlang-dev")
	scale := os.Getenv("MIMMIGRATE_BENCH_SCALE")
	if scale == "" {
		scale = "1"
	}
	if _, err := strconv.ParseFloat(scale, 64); err != nil {
		b.Fatalf("MIMMIGRATE_BENCH_SCALE=%q: %v", scale, err)
	}
	bin := buildBinary(b)
	// The data set is kept: generating scale 1 takes minutes.
	work := filepath.Join(os.TempDir(), "mimmigrate-bench-read-"+scale)
	db := filepath.Join(work, "db")
	beams := filepath.Join(work, "beam")
	os.MkdirAll(beams, 0o755)
	if out, err := exec.Command(erlc, "-o", beams, "../../mnesiaread/testdata/mbench.erl").CombinedOutput(); err != nil {
		b.Fatalf("erlc: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(work, "complete")); err != nil {
		os.RemoveAll(db)
		b.Logf("generating the data set in %s (scale %s)", work, scale)
		sc := scale
		if !strings.Contains(sc, ".") {
			sc += ".0" // list_to_float
		}
		cmd := exec.Command(erl, "-noshell", "-sname", "mbenchgen-"+testenv.RandomID(4), "-pa", beams,
			"-mnesia", "dir", strconv.Quote(db), "-run", "mbench", "gen", sc)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("mbench gen: %v\n%s", err, out)
		}
		os.WriteFile(filepath.Join(work, "complete"), nil, 0o644)
	}

	type run struct {
		name    string
		args    []string
		counts  func(out string) map[string]int64
		discard bool
		secs    []float64
		maxRSS  int64
		records int64
	}
	summaryCounts := func(out string) map[string]int64 {
		var s summary
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			b.Fatalf("summary: %v\n%s", err, out)
		}
		if len(s.Problems) != 0 {
			b.Fatalf("problems in a clean data set: %+v", s.Problems)
		}
		m := map[string]int64{}
		for _, t := range s.Tables {
			m[t.Name] = t.Records
		}
		return m
	}
	erlCounts := func(out string) map[string]int64 {
		m := map[string]int64{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
			if err != nil {
				b.Fatalf("count line %q", l)
			}
			m[f[0]] = n
		}
		delete(m, "total")
		return m
	}
	runs := []*run{
		{name: "mimmigrate read --summary", args: []string{bin, "read", db, "--summary", "--json"}, counts: summaryCounts},
		// Every record decoded and written as JSON, to /dev/null; the
		// warm-up round counts its lines per table instead.
		{name: "mimmigrate read (jsonl)", args: []string{bin, "read", db}, discard: true},
		{name: "erlang dets:foldl", args: []string{erl, "-noshell", "-pa", beams, "-run", "mbench", "count", db}, counts: erlCounts},
		{name: "erlang dets:foldl, 1 process per file", args: []string{erl, "-noshell", "-pa", beams, "-run", "mbench", "count", db, "par"}, counts: erlCounts},
	}
	var want map[string]int64
	check := func(r *run, got map[string]int64) {
		if want == nil {
			want = got
		} else if fmt.Sprint(got) != fmt.Sprint(want) {
			b.Fatalf("%s counted %v\nfirst program counted %v", r.name, got, want)
		}
		r.records = 0
		for _, n := range got {
			r.records += n
		}
	}
	do := func(r *run, warm bool) float64 {
		cmd := exec.Command(r.args[0], r.args[1:]...)
		var stderr, stdout strings.Builder
		cmd.Stderr = &stderr
		var lines *jsonlTally
		switch {
		case r.discard && warm:
			lines = &jsonlTally{counts: map[string]int64{}}
			cmd.Stdout = lines
		case r.discard:
			// Stdout left nil: the child writes to /dev/null, no pipe.
		default:
			cmd.Stdout = &stdout
		}
		t0 := time.Now()
		err := cmd.Run()
		took := time.Since(t0).Seconds()
		if err != nil {
			b.Fatalf("%s: %v\n%s", r.name, err, stderr.String())
		}
		switch {
		case lines != nil:
			check(r, lines.counts)
		case !r.discard:
			check(r, r.counts(stdout.String()))
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > r.maxRSS {
			r.maxRSS = ru.Maxrss
		}
		return took
	}
	var size int64
	for _, e := range mustReadDir(b, db) {
		if info, err := e.Info(); err == nil {
			size += info.Size()
		}
	}
	for _, r := range runs { // warm-up: page cache, and the counts agree
		do(r, true)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, r := range runs {
			r.secs = append(r.secs, do(r, false))
		}
	}
	b.StopTimer()
	med := func(r *run) float64 {
		s := append([]float64(nil), r.secs...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	b.Logf("data set: %s, %.0f MB in %d records (scale %s); medians of %d rounds", db, float64(size)/1e6, runs[0].records, scale, b.N)
	for _, r := range runs {
		m := med(r)
		b.Logf("%-40s %7.2f s  %7.1f MB/s  %9.0f records/s  peak RSS %6.1f MB", r.name, m,
			float64(size)/1e6/m, float64(r.records)/m, float64(r.maxRSS)/1024)
	}
	b.ReportMetric(med(runs[0]), "summary-s")
	b.ReportMetric(med(runs[1]), "jsonl-s")
	b.ReportMetric(med(runs[2]), "erlang-s")
	b.ReportMetric(med(runs[3]), "erlang-par-s")
	b.ReportMetric(med(runs[2])/med(runs[0]), "summary-speedup")
	b.ReportMetric(med(runs[3])/med(runs[0]), "summary-speedup-vs-par")
	b.ReportMetric(med(runs[2])/med(runs[1]), "jsonl-speedup")
	b.ReportMetric(float64(runs[0].maxRSS)/1024, "summary-maxrss-MB")
	b.ReportMetric(float64(runs[1].maxRSS)/1024, "jsonl-maxrss-MB")
}

func mustReadDir(b *testing.B, dir string) []os.DirEntry {
	es, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	return es
}

// jsonlTally counts `read` output lines per table as they stream by.
type jsonlTally struct {
	counts  map[string]int64
	partial []byte
}

func (j *jsonlTally) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			j.partial = append(j.partial, p...)
			break
		}
		line := p[:i]
		if len(j.partial) > 0 {
			line = append(j.partial, line...)
			j.partial = j.partial[:0]
		}
		const prefix = `{"table":"`
		if len(line) > len(prefix) && string(line[:len(prefix)]) == prefix {
			rest := line[len(prefix):]
			if k := bytes.IndexByte(rest, '"'); k > 0 {
				j.counts[string(rest[:k])]++
			}
		}
		p = p[i+1:]
	}
	return n, nil
}

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
	bin := buildBinary(b)
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
