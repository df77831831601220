package cetsnode

import (
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// Four nodes, each in its own network namespace; the network between
// {1, 2} and {3, 4} is cut while writers run on every node and a route is
// registered on both sides; healed, both sides converge and the later
// route wins.
func TestGoClusterNetsplit(t *testing.T) {
	net4 := testenv.NewNetBed(t, 4)
	b := newProcBed(t)
	u, err := url.Parse(b.db)
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL on loopback, reached from the namespaces through a proxy.
	u.Host = testenv.StartProxy(t, net4.HostIP+":0", u.Host).Addr
	db := u.String()
	var names []string
	for i := range 4 {
		name := fmt.Sprintf("mims%d@%s", i+1, net4.IPs[i])
		names = append(names, name)
		b.start(nodeSpec{Name: name, DB: db, CheckInterval: 300 * time.Millisecond, Expire: time.Hour},
			func(bin string, args ...string) *exec.Cmd { return net4.Command(i, bin, args...) })
	}
	for _, n := range names {
		b.waitFor("four nodes joined, seen from "+n, 30*time.Second, func() (bool, string) { return b.healthy(n, 4) })
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	counts := make([]int, 4)
	for i, n := range names {
		wg.Add(1)
		go b.writer(n, stop, &wg, &counts[i])
	}
	time.Sleep(500 * time.Millisecond)

	net4.Cut([]int{0, 1}, []int{2, 3})
	t0 := time.Now()
	sides := func() (bool, string) {
		for i, n := range names {
			_, nodes, _, err := b.info(n)
			if err != nil {
				return false, err.Error()
			}
			if len(nodes) != 2 {
				return false, fmt.Sprintf("%s replicates to %v", names[i], nodes)
			}
		}
		return true, ""
	}
	b.waitFor("two sides after the cut", 15*time.Second, sides)
	t.Logf("split seen after %s (net_ticktime 2 s)", time.Since(t0).Round(100*time.Millisecond))
	// The same route registered on both sides, the second later.
	for _, n := range []string{names[0], names[2]} {
		res, err := b.rpc(n, "route_register", term.Binary("conf.example.com"))
		if _, e := outcome(res); err != nil || e != nil {
			t.Fatalf("route_register on %s: %v %v", n, err, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)

	net4.Heal()
	t1 := time.Now()
	for _, n := range names {
		b.waitFor("healed, seen from "+n, 30*time.Second, func() (bool, string) { return b.healthy(n, 4) })
	}
	t.Logf("healed after %s", time.Since(t1).Round(100*time.Millisecond))
	close(stop)
	wg.Wait()
	t.Logf("sessions registered per node: %v", counts)
	b.waitFor("every node holds the same table", 15*time.Second, func() (bool, string) { return b.converged(names...) })
	for _, n := range names {
		res, err := b.rpc(n, "route_lookup", term.Binary("conf.example.com"))
		if err != nil || !strings.Contains(term.Format(res), names[2]) {
			t.Errorf("route on %s after the heal: %s %v (want %s's, the later)", n, term.Format(res), err, names[2])
		}
	}
	for i, c := range counts {
		if c == 0 {
			t.Errorf("the writer on %s registered nothing", names[i])
		}
	}
}
