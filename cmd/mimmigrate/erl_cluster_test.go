package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// startMnesiaCluster starts n plain erl nodes sharing one Mnesia schema.
func startMnesiaCluster(t *testing.T, n int) []*testenv.ErlNode {
	t.Helper()
	first := testenv.StartErl(t, testenv.ErlOptions{Prefix: "mnc", Mnesia: true})
	nodes := []*testenv.ErlNode{first}
	for i := 1; i < n; i++ {
		nodes = append(nodes, testenv.StartErl(t, testenv.ErlOptions{Prefix: "mnc", Mnesia: true, Cookie: first.Cookie, Join: first.Name}))
	}
	return nodes
}

func mustEval(t *testing.T, n *testenv.ErlNode, expr, want string) {
	t.Helper()
	if got := n.Eval(t, expr); got != want {
		t.Fatalf("%s on %s = %s, want %s", expr, n.Name, got, want)
	}
}

// TestPlainMnesiaCluster: three plain erl nodes with tables of every copy
// type, master nodes set on one; inspect's findings are checked against
// Mnesia, and set-copy adds, changes and drops copies for real.
func TestPlainMnesiaCluster(t *testing.T) {
	ns := startMnesiaCluster(t, 3)
	a, b, c := ns[0], ns[1], ns[2]
	q := func(n *testenv.ErlNode) string { return "'" + n.Name + "'" }
	mustEval(t, a, fmt.Sprintf("mnesia:create_table(t_disc, [{disc_copies, [%s, %s]}, {attributes, [k, v, w]}, {index, [w]}])", q(a), q(b)), "{atomic,ok}")
	mustEval(t, a, fmt.Sprintf("mnesia:create_table(t_ram, [{ram_copies, [%s]}])", q(a)), "{atomic,ok}")
	mustEval(t, a, fmt.Sprintf("mnesia:create_table(t_single, [{disc_only_copies, [%s]}, {type, bag}])", q(a)), "{atomic,ok}")
	mustEval(t, a, fmt.Sprintf("mnesia:create_table(t_ord, [{disc_copies, [%s, %s, %s]}, {type, ordered_set}])", q(a), q(b), q(c)), "{atomic,ok}")
	mustEval(t, a, "[mnesia:dirty_write({t_disc, K, v, K * 2}) || K <- lists:seq(1, 500)], ok", "ok")
	mustEval(t, a, "[mnesia:dirty_write({t_single, K, bag}) || K <- lists:seq(1, 20)], ok", "ok")
	mustEval(t, b, fmt.Sprintf("mnesia:set_master_nodes(t_disc, [%s])", q(a)), "ok")
	cookie := writeCookie(t, a.Cookie)

	s := inspectJSON(t, cookie, a.Name)
	checkAgainstMnesia(t, s, readFacts(t, a.Name, a.Cookie))
	if s.Nodes[0].Product.Name != "mnesia" || len(s.Cluster.RunningDBNodes) != 3 || !s.Cluster.Agree {
		t.Errorf("cluster: %+v, product %+v", s.Cluster, s.Nodes[0].Product)
	}
	for _, want := range []struct{ code, node, table string }{
		{mnesia.CodeMasterNodes, b.Name, ""},
		{mnesia.CodeNoDiscCopy, "", "t_ram"},
		{mnesia.CodeSingleCopy, a.Name, "t_single"},
		{mnesia.CodeSingleCopy, a.Name, "t_ram"},
		{mnesia.CodeRemoteOnly, c.Name, "t_disc"},
		{mnesia.CodeRemoteOnly, b.Name, "t_single"},
	} {
		if !hasDiag(s, want.code, want.node, want.table) {
			t.Errorf("missing diagnostic %+v", want)
		}
	}
	if hasDiag(s, mnesia.CodeRemoteOnly, "", "t_ord") || hasDiag(s, mnesia.CodeStoppedDBNode, "", "") {
		t.Errorf("unexpected diagnostics: %+v", s.Diagnostics)
	}
	for _, tab := range s.Tables {
		if tab.Name == "t_disc" && (strings.Join(tab.Indexes, ",") != "w" || *tab.Size != 500 ||
			strings.Join(tab.PerNode[b.Name].MasterNodes, ",") != a.Name) {
			t.Errorf("t_disc: %+v", tab)
		}
	}

	setCopy := func(table string, on *testenv.ErlNode, typ string) (string, string, int) {
		return runCLI(t, "", "set-copy", "--node", a.Name, "--table", table, "--on", on.Name, "--type", typ, "--cookie-file", cookie, "-f")
	}
	// add, change, drop: each checked against Mnesia.
	if out, stderr, code := setCopy("t_single", b, "disc_only_copies"); code != 0 || !strings.Contains(out, "add_table_copy") {
		t.Fatalf("add: %d %s %s", code, out, stderr)
	}
	mustEval(t, b, "{mnesia:table_info(t_single, storage_type), mnesia:table_info(t_single, size)}", "{disc_only_copies,20}")
	if out, stderr, code := setCopy("t_ram", a, "disc_copies"); code != 0 || !strings.Contains(out, "change_table_copy_type") {
		t.Fatalf("change: %d %s %s", code, out, stderr)
	}
	mustEval(t, a, "mnesia:table_info(t_ram, storage_type)", "disc_copies")
	if out, stderr, code := setCopy("t_disc", b, "none"); code != 0 || !strings.Contains(out, "del_table_copy") {
		t.Fatalf("drop: %d %s %s", code, out, stderr)
	}
	mustEval(t, a, "mnesia:table_info(t_disc, disc_copies)", "['"+a.Name+"']")
	// Already so: nothing to do.
	if out, _, code := setCopy("t_disc", a, "disc_copies"); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("no-op: %d %s", code, out)
	}
	// Refusals: the last copy, disc_only for an ordered_set, a dry run changes nothing.
	_, stderr, code := setCopy("t_disc", a, "none")
	oneLineError(t, stderr, code, exitRefused, "last copy")
	_, stderr, code = setCopy("t_ord", a, "disc_only_copies")
	oneLineError(t, stderr, code, exitRefused, "ordered_set")
	// A table the cluster does not have is a mistake, not a danger: exit 2,
	// with the table meant.
	_, stderr, code = setCopy("t_sngle", a, "disc_copies")
	oneLineError(t, stderr, code, exitUsage, `no table "t_sngle"`, "t_single")
	out, _, code := runCLI(t, "", "set-copy", "--node", a.Name, "--table", "t_ord", "--on", c.Name, "--type", "ram_copies", "--cookie-file", cookie, "--dry-run")
	if code != 0 || !strings.Contains(out, "Dry run") {
		t.Errorf("dry run: %d %s", code, out)
	}
	mustEval(t, c, "mnesia:table_info(t_ord, storage_type)", "disc_copies")
	// A running node cannot be removed.
	_, stderr, code = runCLI(t, "", "remove-node", "--node", a.Name, c.Name, "--cookie-file", cookie, "-f")
	oneLineError(t, stderr, code, exitRefused, "is running", "stop it first")
}

// TestTableNotLoaded: the node that stopped first cannot load a table whose
// newest copy is on a node that is still down; inspect says so and how to fix it.
func TestTableNotLoaded(t *testing.T) {
	ns := startMnesiaCluster(t, 2)
	a, b := ns[0], ns[1]
	mustEval(t, a, fmt.Sprintf("mnesia:create_table(shared, [{disc_copies, ['%s', '%s']}])", a.Name, b.Name), "{atomic,ok}")
	mustEval(t, a, "mnesia:dirty_write({shared, 1, one})", "ok")
	a.Halt(t)
	time.Sleep(500 * time.Millisecond)
	mustEval(t, b, "mnesia:dirty_write({shared, 2, two})", "ok") // newer data only on b
	b.Halt(t)
	a2 := a.Restart(t)
	cookie := writeCookie(t, a2.Cookie)
	s := inspectJSON(t, cookie, a2.Name)
	checkAgainstMnesia(t, s, readFacts(t, a2.Name, a2.Cookie))
	if !hasDiag(s, mnesia.CodeNotLoaded, a2.Name, "shared") {
		t.Fatalf("no table-not-loaded diagnostic: %+v", s.Diagnostics)
	}
	for _, d := range s.Diagnostics {
		if d.Code == mnesia.CodeNotLoaded && (!strings.Contains(d.Fix, "start "+b.Name) || !strings.Contains(d.Fix, "force_load_table")) {
			t.Errorf("fix: %s", d.Fix)
		}
	}
	for _, tab := range s.Tables {
		if tab.Name == "shared" && (tab.Loaded || tab.Size != nil) {
			t.Errorf("shared: loaded %v size %v", tab.Loaded, tab.Size)
		}
	}
	out, _, _ := runCLI(t, "", "inspect", "--node", a2.Name, "--cookie-file", cookie)
	if !strings.Contains(out, "NOT LOADED") || !strings.Contains(out, "critical") {
		t.Errorf("report:\n%s", out)
	}
}

// TestInspectRabbitMQ inspects a private RabbitMQ node's Mnesia.
func TestInspectRabbitMQ(t *testing.T) {
	r := testenv.StartRabbitMQ(t)
	// The broker runs without time correction, as every test VM (see testenv.TimeWarpFlags).
	if out, err := r.TryEval("erlang:system_info(time_correction)"); err != nil || strings.TrimSpace(out) != "false" {
		t.Errorf("time correction: %q %v", out, err)
	}
	cookie := writeCookie(t, r.Cookie)
	s := inspectJSON(t, cookie, r.Name)
	checkAgainstMnesia(t, s, readFacts(t, r.Name, r.Cookie))
	if s.Nodes[0].Product.Name != "rabbitmq" || s.Nodes[0].Product.Version == "" {
		t.Errorf("product: %+v", s.Nodes[0].Product)
	}
	found := map[string]mnesia.Table{}
	for _, tab := range s.Tables {
		found[tab.Name] = tab
	}
	if q, ok := found["rabbit_durable_queue"]; !ok || q.Copies[r.Name] != mnesia.CopyDisc || q.Volatile {
		t.Errorf("rabbit_durable_queue: %+v", q)
	}
	if q, ok := found["rabbit_queue"]; !ok || !q.Volatile {
		t.Errorf("rabbit_queue: %+v", q)
	}
	if hasDiag(s, mnesia.CodeNoDiscCopy, "", "") {
		t.Errorf("RabbitMQ's RAM tables are by design: %+v", s.Diagnostics)
	}
}
