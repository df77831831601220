package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

//go:embed testdata/mimmigrate_writer.erl
var writerSource []byte

// BenchmarkSyncDelta measures the live delta on a real ejabberd 23.01
// node: each write is a Mnesia transaction on last_activity, as ejabberd
// makes when a user's last activity changes.
//
//   - the legacy node's write latency (median, p99) at 1 000 writes/s,
//     without and with sync's forwarder subscribed (goal: under 10 % more);
//   - the lag at 1 000 writes/s: p99 over the intervals of the largest
//     delay between a change on the node and its commit in PostgreSQL
//     (goal: under 1 s);
//   - the delta's throughput: a burst from 8 processes, the rate the node
//     writes at vs the rate sync applies at (goal: never the bottleneck).
//
// Run:
//
//	go test -run XXX -bench SyncDelta -benchtime 1x -timeout 30m ./cmd/mimmigrate/
func BenchmarkSyncDelta(b *testing.B) {
	if why := testenv.EjabberdAvailable(); why != "" {
		b.Skip(why)
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "mimmigrate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	e, err := testenv.StartEjabberd(testenv.EjabberdOptions{Prefix: "ejsd"})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Destroy()
	if _, err := e.Populate(testenv.PopulateOptions{Users: 2000, APIUsers: 50, Rooms: 5}); err != nil {
		b.Fatal(err)
	}
	cookie := testenv.WriteCookieFile(b, e.Cookie)
	if out, err := e.Load(writerSource, "mimmigrate_writer", "ok"); err != nil {
		b.Fatalf("loading the writer: %v %s", err, out)
	}
	eval := func(expr string) string {
		out, err := testenv.EvalOnWithin(e.Name, e.Cookie, expr, 10*time.Minute)
		if err != nil {
			b.Fatalf("%s: %v %s\n%s", expr, err, out, e.Diagnose())
		}
		return out
	}
	tuple := regexp.MustCompile(`\{(\d+),(\d+),(\d+)\}`)
	paced := func() (n, med, p99 int) {
		m := tuple.FindStringSubmatch(eval(fmt.Sprintf(`mimmigrate_writer:paced(<<"%s">>, 2000, 1000, 20)`, e.Host)))
		if m == nil {
			b.Fatal("paced: no result")
		}
		n, _ = strconv.Atoi(m[1])
		med, _ = strconv.Atoi(m[2])
		p99, _ = strconv.Atoi(m[3])
		return
	}
	// Without the forwarder (twice: the first warms the node up).
	paced()
	_, med0, p990 := paced()

	db := testenv.PostgresDB(b)
	if _, stderr, code := runCLIb(b, "db", "migrate", "--db", db, "--schema", "ejabberd"); code != 0 {
		b.Fatalf("db migrate: %s", stderr)
	}
	cmd := exec.Command(bin, "sync", "--json", "--interval", "250ms", "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", db, "--schema", "ejabberd")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var mu sync.Mutex
	var lines []syncLine
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l syncLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				mu.Lock()
				lines = append(lines, l)
				mu.Unlock()
			}
		}
	}()
	last := func() syncLine {
		mu.Lock()
		defer mu.Unlock()
		if len(lines) == 0 {
			return syncLine{}
		}
		return lines[len(lines)-1]
	}
	waitFor := func(what string, cond func(syncLine) bool) {
		deadline := time.Now().Add(10 * time.Minute)
		for !cond(last()) {
			if time.Now().After(deadline) {
				b.Fatalf("sync: no %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("live phase", func(l syncLine) bool { return l.Phase == "live" && allLive(l) })

	// With the forwarder: the node's latency, and sync's lag.
	mu.Lock()
	from := len(lines)
	mu.Unlock()
	_, med1, p991 := paced()
	mu.Lock()
	var lags []float64
	for _, l := range lines[from:] {
		lags = append(lags, l.LagSeconds)
	}
	mu.Unlock()
	sort.Float64s(lags)
	lagP99 := lags[len(lags)*99/100]
	lagMax := lags[len(lags)-1]

	// The burst: the node's rate vs sync's.
	before := last().Applied
	t0 := time.Now()
	m := regexp.MustCompile(`\{(\d+),(\d+)\}`).FindStringSubmatch(eval(fmt.Sprintf(`mimmigrate_writer:burst(<<"%s">>, 2000, 8, 5000)`, e.Host)))
	if m == nil {
		b.Fatal("burst: no result")
	}
	writes, _ := strconv.Atoi(m[1])
	us, _ := strconv.Atoi(m[2])
	waitFor("the burst applied", func(l syncLine) bool { return l.Applied-before >= int64(writes) })
	applyTime := time.Since(t0)
	nodeRate := float64(writes) / (float64(us) / 1e6)
	syncRate := float64(writes) / applyTime.Seconds()
	var overflows int64
	for _, t := range last().Tables {
		overflows += t.Overflow
	}
	fmt.Fprintf(os.Stderr, "BENCH legacy write latency at 1000/s: median %d µs -> %d µs (%.2fx), p99 %d µs -> %d µs (%.2fx) with the forwarder\n",
		med0, med1, float64(med1)/float64(med0), p990, p991, float64(p991)/float64(p990))
	fmt.Fprintf(os.Stderr, "BENCH lag at 1000 changes/s: p99 %.3f s, max %.3f s over %d reports\n", lagP99, lagMax, len(lags))
	fmt.Fprintf(os.Stderr, "BENCH burst of %d transactions: node %.0f/s, applied by sync within %.2f s of its start (%.0f/s, %.2f of the node's rate), overflows %d\n",
		writes, nodeRate, applyTime.Seconds(), syncRate, syncRate/nodeRate, overflows)
	b.ReportMetric(float64(p991)/float64(p990), "x-p99-latency")
	b.ReportMetric(lagP99, "s-lag-p99")
	b.ReportMetric(syncRate/nodeRate, "x-apply-vs-write")
}
