package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

var droppedOnNode2 = []string{"roster", "vcard", "offline_msg", "private_storage", "muc_room"}

// TestBrokenEjabberdCluster runs inspect, remove-node and set-copy against
// the 2012 operator's broken state, built for real: a two-node ejabberd 23.01
// cluster with a few thousand users, some tables' copies dropped from the
// second node, and the second node stopped. Every answer of inspect is
// checked against what Mnesia itself says.
func TestBrokenEjabberdCluster(t *testing.T) {
	if why := testenv.EjabberdAvailable(); why != "" {
		t.Skip(why)
	}
	start := time.Now()
	c, err := testenv.StartEjabberdCluster(2, "ejc", testenv.PopulateOptions{Users: 3000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Destroy)
	n1, n2 := c.Nodes[0], c.Nodes[1]
	if c.Sizes["passwd"] != 3000 || c.Sizes["roster"] != 15000 || c.Sizes["vcard"] != 1000 ||
		c.Sizes["offline_msg"] != 1500 || c.Sizes["private_storage"] != 1000 || c.Sizes["muc_room"] != 30 {
		t.Fatalf("populated sizes: %v", c.Sizes)
	}
	if err := c.DropCopies(n2, droppedOnNode2); err != nil {
		t.Fatal(err)
	}
	if err := n2.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("broken cluster ready in %s", time.Since(start))
	cookie := writeCookie(t, n1.Cookie)

	t.Run("inspect agrees with Mnesia", func(t *testing.T) {
		s := inspectJSON(t, cookie, n1.Name)
		checkAgainstMnesia(t, s, readFacts(t, n1.Name, n1.Cookie))
		if s.Schema != mnesia.SchemaVersion || s.Target != n1.Name {
			t.Errorf("schema %q target %q", s.Schema, s.Target)
		}
		if strings.Join(s.Cluster.StoppedDBNodes, ",") != n2.Name {
			t.Errorf("stopped db nodes: %v", s.Cluster.StoppedDBNodes)
		}
		byName := map[string]mnesia.Node{}
		for _, n := range s.Nodes {
			byName[n.Name] = n
		}
		if n := byName[n1.Name]; n.Status != mnesia.NodeRunning || n.Product.Name != "ejabberd" ||
			!strings.HasPrefix(n.Product.Version, "23.01") || n.MnesiaVersion == "" || n.OTPRelease == "" ||
			n.SchemaCopy != mnesia.CopyDisc || n.Directory != n1.SpoolDir() {
			t.Errorf("node 1: %+v", n)
		}
		if n := byName[n2.Name]; n.Status != mnesia.NodeStopped || n.SchemaCopy != mnesia.CopyDisc {
			t.Errorf("node 2: %+v", n)
		}
		tables := map[string]mnesia.Table{}
		for _, tab := range s.Tables {
			tables[tab.Name] = tab
		}
		for _, name := range droppedOnNode2 {
			tab := tables[name]
			if tab.Copies[n2.Name] != mnesia.CopyNone || !tab.Copies[n1.Name].OnDisc() {
				t.Errorf("%s copies: %v", name, tab.Copies)
			}
			if !hasDiag(s, mnesia.CodeRemoteOnly, n2.Name, name) {
				t.Errorf("no remote-only diagnostic for %s on node 2", name)
			}
			if !hasDiag(s, mnesia.CodeSingleCopy, n1.Name, name) {
				t.Errorf("no single-copy diagnostic for %s", name)
			}
		}
		if tab := tables["passwd"]; tab.Copies[n2.Name] != mnesia.CopyDiscOnly || *tab.Size != 3000 ||
			tab.MemoryBytes == nil || *tab.MemoryBytes < 3000*50 {
			t.Errorf("passwd: %+v", tab)
		}
		if tab := tables["session"]; !tab.Volatile || tables["roster"].Volatile {
			t.Error("volatile classification")
		}
		if tab := tables["vcard_search"]; len(tab.Indexes) == 0 || tab.Indexes[0] != "luser" {
			t.Errorf("vcard_search indexes: %v", tab.Indexes)
		}
		if !hasDiag(s, mnesia.CodeStoppedDBNode, n2.Name, "") {
			t.Error("no stopped-db-node diagnostic")
		}
		for _, d := range s.Diagnostics {
			if d.Fix == "" || d.Message == "" {
				t.Errorf("diagnostic without message or fix: %+v", d)
			}
			if d.Code == mnesia.CodeRemoteOnly && d.Node == n1.Name {
				t.Errorf("node 1 holds every table, yet: %+v", d)
			}
		}
		if len(s.Plan) == 0 {
			t.Error("no copy plan")
		}
		for _, p := range s.Plan {
			if p.Node == n2.Name {
				t.Errorf("plan step for the stopped node: %+v", p)
			}
		}
	})

	t.Run("inspect report", func(t *testing.T) {
		out, stderr, code := runCLI(t, "", "inspect", "--node", n1.Name, "--cookie-file", cookie, "-l")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, want := range []string{n2.Name + "  stopped", "remote only", "mimmigrate remove-node --node " + n1.Name + " " + n2.Name,
			"SUGGESTED COPY PLAN", "roster: record roster {usj, us, jid, name, subscription, ask, groups, askmessage, xs}"} {
			if !strings.Contains(out, want) {
				t.Errorf("report lacks %q", want)
			}
		}
		for i, line := range strings.Split(out, "\n") {
			if len([]rune(line)) > 100 {
				t.Errorf("line %d is %d columns: %s", i+1, len([]rune(line)), line)
			}
		}
		_, _, code = runCLI(t, "", "inspect", "--node", n1.Name, "--cookie-file", cookie, "--check")
		if code != exitFindings {
			t.Errorf("--check with warnings: exit %d", code)
		}
	})

	t.Run("remove-node refusals", func(t *testing.T) {
		_, stderr, code := runCLI(t, "", "remove-node", "--node", n1.Name, n1.Name, "--cookie-file", cookie, "-f")
		oneLineError(t, stderr, code, exitRefused, "the node the removal would run on")
		// A node the cluster does not have is a mistake: bad input.
		_, stderr, code = runCLI(t, "", "remove-node", "--node", n1.Name, "ghost@localhost", "--cookie-file", cookie, "-f")
		oneLineError(t, stderr, code, exitUsage, "not a db node")
	})

	t.Run("remove-node dry run and no", func(t *testing.T) {
		out, stderr, code := runCLI(t, "", "remove-node", "--node", n1.Name, n2.Name, "--cookie-file", cookie, "--dry-run")
		if code != 0 || !strings.Contains(out, "passwd") || !strings.Contains(out, "Dry run: nothing changed.") {
			t.Errorf("dry run: exit %d\n%s%s", code, out, stderr)
		}
		if strings.Contains(out, "roster ") {
			t.Errorf("roster has no copy on node 2, yet the dry run lists it:\n%s", out)
		}
		out, stderr, code = runCLI(t, "no\n", "remove-node", "--node", n1.Name, n2.Name, "--cookie-file", cookie)
		oneLineError(t, stderr, code, exitRefused, "not confirmed")
		if !strings.Contains(out, "(yes/no)") {
			t.Errorf("no prompt: %s", out)
		}
		if f := readFacts(t, n1.Name, n1.Cookie); !strings.Contains(f.dbNodes, n2.Name) {
			t.Fatalf("node 2 is gone after a dry run / a no: %s", f.dbNodes)
		}
	})

	t.Run("remove-node", func(t *testing.T) {
		out, stderr, code := runCLI(t, "yes\n", "remove-node", "--node", n1.Name, n2.Name, "--cookie-file", cookie)
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, stderr, out)
		}
		if !strings.Contains(out, "The node "+n2.Name+" has been removed from the cluster. db nodes now: "+n1.Name) {
			t.Errorf("output:\n%s", out)
		}
		f := readFacts(t, n1.Name, n1.Cookie)
		if f.dbNodes != n1.Name {
			t.Fatalf("Mnesia's db nodes after removal: %s", f.dbNodes)
		}
		for name, tab := range f.tables {
			if strings.Contains(tab.ram+tab.disc+tab.discOnly, n2.Name) {
				t.Errorf("%s still has a copy on node 2", name)
			}
		}
		s := inspectJSON(t, cookie, n1.Name)
		checkAgainstMnesia(t, s, f)
		if len(s.Cluster.StoppedDBNodes) != 0 || hasDiag(s, mnesia.CodeStoppedDBNode, "", "") || hasDiag(s, mnesia.CodeRemoteOnly, "", "") {
			t.Errorf("after removal: stopped %v, diagnostics %+v", s.Cluster.StoppedDBNodes, s.Diagnostics)
		}
	})

	t.Run("set-copy on ejabberd", func(t *testing.T) {
		out, stderr, code := runCLI(t, "", "set-copy", "--node", n1.Name, "--table", "motd", "--on", n1.Name,
			"--type", "disc_copies", "--cookie-file", cookie, "-f")
		if code != 0 || !strings.Contains(out, "mnesia:change_table_copy_type(motd, '"+n1.Name+"', disc_copies)") {
			t.Fatalf("exit %d: %s\n%s", code, stderr, out)
		}
		if got := readFacts(t, n1.Name, n1.Cookie).tables["motd"]; got.disc != n1.Name || got.discOnly != "-" || got.size != "1" {
			t.Errorf("motd after set-copy: %+v", got)
		}
		_, stderr, code = runCLI(t, "", "set-copy", "--node", n1.Name, "--table", "motd", "--on", n1.Name,
			"--type", "none", "--cookie-file", cookie, "-f")
		oneLineError(t, stderr, code, exitRefused, "last copy")
	})
}
