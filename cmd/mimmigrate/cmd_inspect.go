package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
)

// InspectCmd shows a Mnesia cluster.
type InspectCmd struct {
	Node       string   `required:"" help:"A node of the cluster, e.g. ejabberd@host." placeholder:"NODE"`
	JSON       bool     `help:"Print the whole snapshot as JSON (docs/inspect-json.md)."`
	Long       bool     `short:"l" help:"Also print each table's record, attributes, indexes and load details."`
	Check      bool     `help:"Exit with code 6 when there is a warning or a critical problem."`
	LargeTable ByteSize `name:"large-table" default:"512MiB" help:"Tables this big get disc_only_copies in the suggested plan."`
}

// Run inspects the cluster and prints the report.
func (c *InspectCmd) Run(g *Globals) error {
	params := mnesia.DefaultParams()
	params.LargeTableByte = int64(c.LargeTable)
	snap, sess, err := g.attach(c.Node, params)
	if err != nil {
		return err
	}
	sess.Close()
	if c.JSON {
		printJSON(g, snap)
	} else {
		printSnapshot(g.stdout, snap, c.Long)
	}
	if c.Check {
		for _, d := range snap.Diagnostics {
			if d.Severity != mnesia.SevInfo {
				g.exit = exitFindings
			}
		}
	}
	return nil
}

func printSnapshot(w io.Writer, s *mnesia.Snapshot, long bool) {
	target := nodeByName(s, s.Target)
	product := productText(target.Product) + ", "
	if target.Product.Name == "mnesia" {
		product = "plain "
	}
	fmt.Fprintf(w, "Mnesia cluster of %s\n%sMnesia %s, OTP %s; inspected in %.2f s\n\n",
		s.Target, product, target.MnesiaVersion, target.OTPRelease, float64(s.ElapsedMS)/1000)

	fmt.Fprintln(w, "NODES")
	cols := newColumns(w)
	cols.row("NAME", "STATUS", "PRODUCT", "MNESIA", "OTP", "SCHEMA", "TABLES", "LOCKS")
	for _, n := range s.Nodes {
		tables, locks := "-", "-"
		if n.Status == mnesia.NodeRunning {
			tables = fmt.Sprint(n.LocalTables)
			locks = fmt.Sprintf("%d held, %d waiting", len(n.HeldLocks), len(n.LockQueue))
		}
		cols.row(n.Name, n.Status, orDash(productText(n.Product)), orDash(n.MnesiaVersion), orDash(n.OTPRelease),
			n.SchemaCopy.Short(), tables, locks)
	}
	cols.flush()
	fmt.Fprintln(w)
	kv := newColumns(w)
	kv.row("db nodes:", joinOrDash(s.Cluster.DBNodes))
	kv.row("running:", joinOrDash(s.Cluster.RunningDBNodes))
	kv.row("stopped:", joinOrDash(s.Cluster.StoppedDBNodes))
	kv.row("extra db nodes:", joinOrDash(s.Cluster.ExtraDBNodes))
	var masters []string
	for _, n := range sortedNames(s.Cluster.MasterNodeTables) {
		masters = append(masters, fmt.Sprintf("%s (%d tables)", n, len(s.Cluster.MasterNodeTables[n])))
	}
	kv.row("master nodes:", joinOrDash(masters))
	kv.row("directory:", fmt.Sprintf("%s (on %s, schema %s)", orDash(target.Directory), target.Name, orDash(target.SchemaLocation)))
	agree := "yes"
	if !s.Cluster.Agree {
		agree = "NO: see the problems below"
	}
	kv.row("nodes agree:", agree)
	kv.flush()
	fmt.Fprintln(w)

	// Tables: one column per db node, labelled n1, n2, ...
	labels := map[string]string{}
	var legend []string
	for i, n := range s.Cluster.DBNodes {
		labels[n] = fmt.Sprintf("n%d", i+1)
		legend = append(legend, fmt.Sprintf("%s = %s", labels[n], n))
	}
	fmt.Fprintf(w, "TABLES (%d)   copies per node: %s\n", len(s.Tables), strings.Join(legend, ", "))
	tc := newColumns(w)
	head := []string{"NAME", "TYPE"}
	for _, n := range s.Cluster.DBNodes {
		head = append(head, labels[n])
	}
	tc.row(append(head, "SIZE", "MEMORY", "READ", "NOTES")...)
	for _, t := range s.Tables {
		row := []string{t.Name, t.Type}
		for _, n := range s.Cluster.DBNodes {
			row = append(row, t.Copies[n].Short())
		}
		size, mem := "-", "-"
		if t.Size != nil {
			size = fmt.Sprint(*t.Size)
		}
		if t.MemoryBytes != nil {
			mem = compactBytes(*t.MemoryBytes)
		}
		read := t.WhereToRead
		if l, ok := labels[read]; ok {
			read = l
		}
		tc.row(append(row, size, mem, read, strings.Join(tableNotes(t), ", "))...)
	}
	tc.flush()
	fmt.Fprintln(w)

	if long {
		fmt.Fprintln(w, "TABLE DETAILS")
		for _, t := range s.Tables {
			fmt.Fprintf(w, "  %s: record %s\n", t.Name, wrap(fmt.Sprintf("%s {%s}", t.RecordName, strings.Join(t.Attributes, ", ")), 90-len(t.Name), "      "))
			fmt.Fprintf(w, "      %s\n", wrap(fmt.Sprintf("indexes: %s; local_content: %v; majority: %v; nodes agree: %v",
				joinOrDash(t.Indexes), t.LocalContent, t.Majority, t.Agree), 92, "      "))
			label := func(n string) string {
				if l, ok := labels[n]; ok {
					return l
				}
				return orDash(n)
			}
			for _, n := range sortedNames(t.PerNode) {
				nt := t.PerNode[n]
				fmt.Fprintf(w, "      %s: own copy %s, reads from %s, loaded from %s (%s)\n",
					label(n), nt.StorageType.Short(), label(nt.WhereToRead), label(nt.LoadNode), orDash(nt.LoadReason))
			}
		}
		fmt.Fprintln(w)
	}

	counts := map[string]int{}
	for _, d := range s.Diagnostics {
		counts[d.Severity]++
	}
	if len(s.Diagnostics) == 0 {
		fmt.Fprintln(w, "PROBLEMS: none found")
	} else {
		fmt.Fprintf(w, "PROBLEMS (%d critical, %d warnings, %d notes)\n",
			counts[mnesia.SevCritical], counts[mnesia.SevWarning], counts[mnesia.SevInfo])
		for _, d := range s.Diagnostics {
			fmt.Fprintf(w, "  %-8s  %s\n", d.Severity, wrap(d.Message, 86, "            "))
			fmt.Fprintf(w, "            fix: %s\n", wrapCommand(d.Fix, 83, "                 "))
		}
	}
	fmt.Fprintln(w)
	if len(s.Plan) == 0 {
		fmt.Fprintln(w, "SUGGESTED COPY PLAN: the copies already follow the rules")
		return
	}
	fmt.Fprintf(w, "SUGGESTED COPY PLAN (%d steps; RAM+disc everywhere, RAM only for node-specific tables,\n", len(s.Plan))
	fmt.Fprintln(w, "disc_only only for very large ones; nodes that are not running are left out)")
	for _, p := range s.Plan {
		fmt.Fprintf(w, "  %s\n      # %s -> %s: %s\n", wrapCommand(p.Command, 96, "  "), p.From.Short(), p.To.Short(), p.Reason)
	}
}

func tableNotes(t mnesia.Table) []string {
	var notes []string
	if !t.Loaded {
		notes = append(notes, "NOT LOADED")
	}
	if !t.Agree {
		notes = append(notes, "NODES DISAGREE")
	}
	if t.Volatile {
		notes = append(notes, "volatile")
	}
	if t.LocalContent {
		notes = append(notes, "local")
	}
	if t.Majority {
		notes = append(notes, "majority")
	}
	switch {
	case len(t.Indexes) > 1:
		notes = append(notes, fmt.Sprintf("%d indexes", len(t.Indexes)))
	case len(t.Indexes) > 0:
		notes = append(notes, "index "+strings.Join(t.Indexes, "+"))
	}
	return notes
}

func productText(p mnesia.Product) string {
	if p.Name == "" {
		return ""
	}
	if p.Version == "" {
		return p.Name
	}
	return p.Name + " " + p.Version
}

func nodeByName(s *mnesia.Snapshot, name string) mnesia.Node {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n
		}
	}
	return mnesia.Node{Name: name}
}

func sortedNames[V any](m map[string]V) []string { return mnesia.SortedKeys(m) }

// compactBytes is HumanBytes for table cells: 2.4K, 3.1M, 1.2G.
func compactBytes(n int64) string {
	h := mnesia.HumanBytes(n)
	return strings.NewReplacer(" KiB", "K", " MiB", "M", " GiB", "G", " B", "B").Replace(h)
}
