package testenv

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// NetBed is a private network for fault tests: a bridge in our namespace
// and one network namespace per node, joined to it by a veth pair, all in
// a /24 of their own. Cut drops the traffic between two groups (blackhole
// routes in their namespaces; no firewall needed), Heal restores it.
type NetBed struct {
	t      testing.TB
	id     string
	Bridge string
	HostIP string // our address on the bridge
	NS     []string
	IPs    []string
	cuts   [][2]int
}

// NetnsAvailable says why network namespaces cannot be made here, or "".
func NetnsAvailable() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip command is missing (apt-get install iproute2)"
	}
	return ""
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// NewNetBed makes n namespaces on a new bridge; the test's cleanup removes them.
func NewNetBed(t testing.TB, n int) *NetBed {
	t.Helper()
	if why := NetnsAvailable(); why != "" {
		t.Skip(why)
	}
	id := RandomID(4)
	subnet := fmt.Sprintf("10.%d.%d", 100+rand.Intn(100), rand.Intn(250))
	b := &NetBed{t: t, id: id, Bridge: "mimbr" + id, HostIP: subnet + ".1"}
	t.Cleanup(b.destroy)
	must := func(args ...string) {
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("link", "add", b.Bridge, "type", "bridge")
	must("addr", "add", b.HostIP+"/24", "dev", b.Bridge)
	must("link", "set", b.Bridge, "up")
	for i := range n {
		ns := fmt.Sprintf("mimns%s%d", id, i)
		host, peer := fmt.Sprintf("mh%s%d", id, i), fmt.Sprintf("mn%s%d", id, i)
		ip := fmt.Sprintf("%s.%d", subnet, 10+i)
		must("netns", "add", ns)
		b.NS = append(b.NS, ns)
		must("link", "add", host, "type", "veth", "peer", "name", peer)
		must("link", "set", peer, "netns", ns)
		must("link", "set", host, "master", b.Bridge)
		must("link", "set", host, "up")
		must("netns", "exec", ns, "ip", "addr", "add", ip+"/24", "dev", peer)
		must("netns", "exec", ns, "ip", "link", "set", peer, "up")
		must("netns", "exec", ns, "ip", "link", "set", "lo", "up")
		b.IPs = append(b.IPs, ip)
	}
	return b
}

// Command runs a program in namespace i.
func (b *NetBed) Command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", b.NS[i], name}, args...)...)
}

// Cut drops every packet between the namespaces of group a and group c.
func (b *NetBed) Cut(a, c []int) {
	b.t.Helper()
	for _, x := range a {
		for _, y := range c {
			for _, p := range [][2]int{{x, y}, {y, x}} {
				if err := ipCmd("netns", "exec", b.NS[p[0]], "ip", "route", "add", "blackhole", b.IPs[p[1]]+"/32"); err != nil {
					b.t.Fatal(err)
				}
				b.cuts = append(b.cuts, p)
			}
		}
	}
}

// Heal removes every cut.
func (b *NetBed) Heal() {
	b.t.Helper()
	for _, p := range b.cuts {
		if err := ipCmd("netns", "exec", b.NS[p[0]], "ip", "route", "del", "blackhole", b.IPs[p[1]]+"/32"); err != nil {
			b.t.Error(err)
		}
	}
	b.cuts = nil
}

func (b *NetBed) destroy() {
	for _, ns := range b.NS {
		ipCmd("netns", "del", ns)
	}
	ipCmd("link", "del", b.Bridge)
}
