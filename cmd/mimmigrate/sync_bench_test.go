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
	"syscall"
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
		m := tuple.FindStringSubmatch(eval(fmt.Sprintf(`mimmigrate_writer:paced(<<"%s">>, 2000, 1000, 10)`, e.Host)))
		if m == nil {
			b.Fatal("paced: no result")
		}
		n, _ = strconv.Atoi(m[1])
		med, _ = strconv.Atoi(m[2])
		p99, _ = strconv.Atoi(m[3])
		return
	}
	paced() // warms the node up

	db := testenv.PostgresDB(b)
	if _, stderr, code := runCLIb(b, "db", "migrate", "--db", db, "--schema", "ejabberd"); code != 0 {
		b.Fatalf("db migrate: %s", stderr)
	}
	var mu sync.Mutex
	var lines []syncLine
	var cmd *exec.Cmd
	var exited chan struct{}
	start := func() {
		cmd = exec.Command(bin, "sync", "--json", "--interval", "250ms", "--cookie-file", cookie, "--from", "node:"+e.Name, "--to", db, "--schema", "ejabberd")
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		lines = nil
		mu.Unlock()
		exited = make(chan struct{})
		go func(done chan struct{}) {
			defer close(done)
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
		}(exited)
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGINT)
		<-exited
		cmd.Wait()
	}
	defer func() {
		if cmd != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
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

	// The latency, in rounds that alternate (the machine's own drift
	// weighs on every configuration alike): without sync; with sync live
	// (its lag measured meanwhile); with sync stopped (SIGSTOP) but its
	// forwarder subscribed — the cost the legacy node bears itself, as when
	// sync and PostgreSQL run on other machines.
	const rounds = 3
	var without, with, fwdOnly [][2]int
	var lags []float64
	for r := 0; r < rounds; r++ {
		_, med, p99 := paced()
		without = append(without, [2]int{med, p99})
		start()
		waitFor("live phase", func(l syncLine) bool { return l.Phase == "live" && allLive(l) })
		mu.Lock()
		from := len(lines)
		mu.Unlock()
		_, med, p99 = paced()
		with = append(with, [2]int{med, p99})
		mu.Lock()
		for _, l := range lines[from:] {
			lags = append(lags, l.LagSeconds)
		}
		mu.Unlock()
		cmd.Process.Signal(syscall.SIGSTOP)
		_, med, p99 = paced()
		fwdOnly = append(fwdOnly, [2]int{med, p99})
		cmd.Process.Signal(syscall.SIGCONT)
		waitFor("catching up", func(l syncLine) bool { return l.Phase == "live" && l.LagEvents == 0 })
		if r < rounds-1 {
			stop()
		}
	}
	middle := func(xs [][2]int, i int) int {
		v := make([]int, len(xs))
		for j, x := range xs {
			v[j] = x[i]
		}
		sort.Ints(v)
		return v[len(v)/2]
	}
	med0, p990 := middle(without, 0), middle(without, 1)
	med1, p991 := middle(with, 0), middle(with, 1)
	med2, p992 := middle(fwdOnly, 0), middle(fwdOnly, 1)
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
	fmt.Fprintf(os.Stderr, "BENCH rounds (median, p99 µs): without %v, with sync %v, forwarder only %v\n", without, with, fwdOnly)
	fmt.Fprintf(os.Stderr, "BENCH legacy write latency at 1000/s: median %d µs -> %d µs (%.2fx), p99 %d µs -> %d µs (%.2fx) with sync on the same 2 cores\n",
		med0, med1, float64(med1)/float64(med0), p990, p991, float64(p991)/float64(p990))
	fmt.Fprintf(os.Stderr, "BENCH legacy write latency at 1000/s, the forwarder alone (sync stopped): median %d µs -> %d µs (%.2fx), p99 %d µs -> %d µs (%.2fx)\n",
		med0, med2, float64(med2)/float64(med0), p990, p992, float64(p992)/float64(p990))
	fmt.Fprintf(os.Stderr, "BENCH lag at 1000 changes/s: p99 %.3f s, max %.3f s over %d reports\n", lagP99, lagMax, len(lags))
	fmt.Fprintf(os.Stderr, "BENCH burst of %d transactions: node %.0f/s, applied by sync within %.2f s of its start (%.0f/s, %.2f of the node's rate), overflows %d\n",
		writes, nodeRate, applyTime.Seconds(), syncRate, syncRate/nodeRate, overflows)
	b.ReportMetric(float64(p991)/float64(p990), "x-p99-latency")
	b.ReportMetric(lagP99, "s-lag-p99")
	b.ReportMetric(syncRate/nodeRate, "x-apply-vs-write")
}
