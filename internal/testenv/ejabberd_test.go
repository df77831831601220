package testenv

import (
	"strings"
	"testing"
	"time"
)

// TestEjabberdCluster checks the test bed itself: two private nodes joined
// into one Mnesia cluster, data replicated, copies dropped, node 2 stopped.
func TestEjabberdCluster(t *testing.T) {
	if why := EjabberdAvailable(); why != "" {
		t.Skip(why)
	}
	start := time.Now()
	c, err := StartEjabberdCluster(2, "tb", PopulateOptions{Users: 500, APIUsers: 50, Rooms: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	t.Logf("cluster with data in %s: %v", time.Since(start), c.Sizes)
	n1, n2 := c.Nodes[0], c.Nodes[1]
	if c.Sizes["passwd"] != 500 || c.Sizes["roster"] != 2500 || c.Sizes["offline_msg"] != 250 || c.Sizes["muc_room"] != 5 {
		t.Errorf("sizes: %v", c.Sizes)
	}
	// The nodes run without time correction (see TimeWarpFlags).
	if out, err := n1.Eval("erlang:system_info(time_correction)"); err != nil || out != "false" {
		t.Errorf("time correction on node 1: %s %v", out, err)
	}
	running, err := n1.Eval("mnesia:system_info(running_db_nodes)")
	if err != nil || !strings.Contains(running, n2.Name) {
		t.Fatalf("running_db_nodes on node 1: %s %v", running, err)
	}
	// Node 2 has its own replica of passwd with all rows.
	if out, err := n2.Eval("{mnesia:table_info(passwd, storage_type), mnesia:table_info(passwd, size)}"); err != nil || out != "{disc_only_copies,500}" {
		t.Errorf("passwd on node 2: %s %v", out, err)
	}
	if err := c.DropCopies(n2, []string{"roster", "vcard"}); err != nil {
		t.Fatal(err)
	}
	if out, _ := n2.Eval("mnesia:table_info(roster, storage_type)"); out != "unknown" {
		t.Errorf("roster on node 2 after del_table_copy: %s", out)
	}
	if err := n2.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped, _ := n1.Eval("mnesia:system_info(db_nodes) -- mnesia:system_info(running_db_nodes)")
	if !strings.Contains(stopped, n2.Name) {
		t.Errorf("stopped db nodes on node 1: %s", stopped)
	}
}
