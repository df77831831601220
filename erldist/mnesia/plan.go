package mnesia

import "fmt"

// desiredFor is the copy type the 2012 operator's rules give a table:
// RAM and disc everywhere by default; RAM only for node-specific (volatile)
// tables; disc_only only for very large tables that are not in RAM already.
func desiredFor(t Table, p InspectParams) CopyType {
	switch {
	case t.Name == "schema":
		return CopyDisc
	case t.Volatile:
		return CopyRAM
	case t.MemoryBytes != nil && *t.MemoryBytes >= p.LargeTableByte && t.Type != "ordered_set":
		return CopyDiscOnly
	}
	return CopyDisc
}

// plan lists set-copy commands that bring every running node to the layout
// of desiredFor. Nodes that are not running are left out: start or remove
// them first.
func plan(s *Snapshot) []PlanStep {
	steps := []PlanStep{}
	var running []string
	for _, n := range s.Nodes {
		if n.Status == NodeRunning {
			running = append(running, n.Name)
		}
	}
	// The schema first: disc tables need a disc schema.
	ordered := make([]Table, 0, len(s.Tables))
	for _, t := range s.Tables {
		if t.Name == "schema" {
			ordered = append([]Table{t}, ordered...)
		} else {
			ordered = append(ordered, t)
		}
	}
	for _, t := range ordered {
		want := desiredFor(t, s.Settings)
		for _, n := range running {
			have := t.Copies[n]
			if want == CopyDiscOnly && have.OnDisc() {
				continue // large and already on disc: leave it
			}
			if have == want {
				continue
			}
			steps = append(steps, PlanStep{
				Command: setCopyCmd(s.Target, t.Name, n, want),
				Table:   t.Name, Node: n, From: have, To: want,
				Reason: reasonFor(t, want, have),
			})
		}
	}
	return steps
}

func reasonFor(t Table, want, have CopyType) string {
	switch {
	case t.Name == "schema":
		return "a node needs its schema on disc to keep disc tables and start on its own"
	case want == CopyRAM:
		return "node-specific data, rebuilt at start: RAM only on every node"
	case want == CopyDiscOnly:
		return fmt.Sprintf("very large (%s): on disc only, not in RAM", HumanBytes(*t.MemoryBytes))
	case have == CopyNone:
		return "no local copy: the node cannot start on its own"
	case have == CopyRAM:
		return "RAM only here: lost when the node stops"
	}
	return "RAM and disc on every node by default (fast reads, no DETS limit)"
}
