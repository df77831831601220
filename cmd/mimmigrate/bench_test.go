package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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
	bin := filepath.Join(b.TempDir(), "mimmigrate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
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
