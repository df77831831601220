package mnesia

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Refusal explains why a repair must not run.
type Refusal struct {
	Reason string `json:"reason"`
	Hint   string `json:"hint"`
	// BadInput: the request names what the cluster does not have (a
	// table, a node): a mistake, not a danger.
	BadInput bool `json:"bad_input,omitempty"`
}

// TableCopy is one table's copy that a repair removes.
type TableCopy struct {
	Table     string   `json:"table"`
	Type      CopyType `json:"type"`
	Remaining []string `json:"remaining"` // nodes that keep a copy
}

// Removal is what removing a db node would do.
type Removal struct {
	On       string      `json:"on"`
	Remove   string      `json:"remove"`
	Losing   []TableCopy `json:"losing"`
	Warnings []string    `json:"warnings"`
	Refusal  *Refusal    `json:"refusal,omitempty"`
}

// PlanRemoval decides whether remove can be taken out of the cluster the
// snapshot shows, and what that costs. The removal runs on s.Target.
func PlanRemoval(s *Snapshot, remove string) Removal {
	r := Removal{On: s.Target, Remove: remove, Losing: []TableCopy{}, Warnings: []string{}}
	status := nodeStatus(s)
	switch {
	case remove == s.Target:
		r.Refusal = &Refusal{Reason: fmt.Sprintf("%s is the node the removal would run on", remove),
			Hint: "run it from another running node of the cluster"}
		return r
	case !slices.Contains(s.Cluster.DBNodes, remove):
		r.Refusal = &Refusal{Reason: fmt.Sprintf("%s is not a db node of this cluster", remove),
			Hint: "the db nodes are: " + strings.Join(s.Cluster.DBNodes, ", "), BadInput: true}
		return r
	case status[remove] == NodeRunning || status[remove] == NodeUnreachable:
		r.Refusal = &Refusal{Reason: fmt.Sprintf("%s is running", remove),
			Hint: fmt.Sprintf("stop it first (ejabberdctl --node %s stop, or mnesia:stop() there); only a dead node can be removed", remove)}
		return r
	}
	if status[remove] == NodeMnesiaStopped {
		r.Warnings = append(r.Warnings, fmt.Sprintf(
			"the Erlang node %s is up (Mnesia is stopped): delete its Mnesia directory before Mnesia starts there again, or it will not rejoin", remove))
	}
	var lastCopy []string
	for _, t := range s.Tables {
		ct := t.Copies[remove]
		if ct == CopyNone {
			continue
		}
		var remaining []string
		discLeft := false
		for _, n := range holdersOf(t) {
			if n != remove {
				remaining = append(remaining, n)
				discLeft = discLeft || t.Copies[n].OnDisc()
			}
		}
		if t.Name != "schema" {
			r.Losing = append(r.Losing, TableCopy{Table: t.Name, Type: ct, Remaining: remaining})
		}
		switch {
		case t.Name == "schema" || t.LocalContent:
		case len(remaining) == 0:
			lastCopy = append(lastCopy, t.Name)
		case ct.OnDisc() && !discLeft && !t.Volatile:
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s keeps no disc copy: it lives only in RAM on %s", t.Name, strings.Join(remaining, ", ")))
		}
	}
	if len(lastCopy) > 0 {
		r.Refusal = &Refusal{
			Reason: fmt.Sprintf("removing %s would delete the last copy of %s", remove, abbreviate(lastCopy, 6)),
			Hint:   fmt.Sprintf("start %s and copy those tables to another node first (mimmigrate set-copy), or read them from its directory", remove),
		}
	}
	return r
}

// Remove runs mnesia:del_table_copy(schema, Node) on the planned node, then
// checks that the node is gone from db_nodes. It returns the db nodes after.
func (sess *Session) Remove(ctx context.Context, r Removal) ([]string, error) {
	if r.Refusal != nil {
		return nil, fmt.Errorf("refused: %s", r.Refusal.Reason)
	}
	c := sess.Conn(r.On)
	if c == nil {
		return nil, fmt.Errorf("not connected to %s", r.On)
	}
	res, err := c.Call(ctx, "mnesia", "del_table_copy", term.Atom("schema"), term.Atom(r.Remove))
	if err != nil {
		return nil, err
	}
	if err := atomicOK(res, r.On, "mnesia:del_table_copy(schema, "+r.Remove+")"); err != nil {
		return nil, err
	}
	after, err := c.Call(ctx, "mnesia", "system_info", term.Atom("db_nodes"))
	if err != nil {
		return nil, err
	}
	nodes := atoms(after)
	if slices.Contains(nodes, r.Remove) {
		return nodes, &erldist.Error{Kind: erldist.KindOther, Node: r.On,
			Msg:  fmt.Sprintf("%s is still in db_nodes after the removal", r.Remove),
			Hint: "run inspect again; another node may have re-added it"}
	}
	return nodes, nil
}

// CopyChange is what set-copy would do.
type CopyChange struct {
	On       string   `json:"on"`
	Table    string   `json:"table"`
	Node     string   `json:"node"`
	From     CopyType `json:"from"`
	To       CopyType `json:"to"`
	Call     string   `json:"call"`
	NoOp     bool     `json:"no_op"`
	Warnings []string `json:"warnings"`
	Refusal  *Refusal `json:"refusal,omitempty"`
}

// PlanCopyChange decides whether table's copy on node can become to.
func PlanCopyChange(s *Snapshot, table, node string, to CopyType) CopyChange {
	c := CopyChange{On: s.Target, Table: table, Node: node, To: to, Warnings: []string{}}
	var t *Table
	for i := range s.Tables {
		if s.Tables[i].Name == table {
			t = &s.Tables[i]
		}
	}
	refuse := func(reason, hint string) CopyChange {
		c.Refusal = &Refusal{Reason: reason, Hint: hint}
		return c
	}
	if t == nil {
		c.Refusal = &Refusal{Reason: fmt.Sprintf("there is no table %q in this cluster", table), Hint: similar(s, table), BadInput: true}
		return c
	}
	if !slices.Contains(s.Cluster.DBNodes, node) {
		c.Refusal = &Refusal{Reason: fmt.Sprintf("%s is not a db node of this cluster", node),
			Hint: "the db nodes are: " + strings.Join(s.Cluster.DBNodes, ", "), BadInput: true}
		return c
	}
	c.From = t.Copies[node]
	switch c.From {
	case to:
		c.NoOp = true
		return c
	case CopyNone:
		c.Call = fmt.Sprintf("mnesia:add_table_copy(%s, %s, %s)", q(table), q(node), to)
	default:
		if to == CopyNone {
			c.Call = fmt.Sprintf("mnesia:del_table_copy(%s, %s)", q(table), q(node))
		} else {
			c.Call = fmt.Sprintf("mnesia:change_table_copy_type(%s, %s, %s)", q(table), q(node), to)
		}
	}
	status := nodeStatus(s)
	holders := holdersOf(*t)
	switch {
	case table == "schema" && to == CopyNone:
		return refuse("dropping a node's schema removes the node", "use mimmigrate remove-node")
	case table == "schema" && to == CopyDiscOnly:
		return refuse("the schema cannot be disc_only_copies", "use disc_copies")
	case to == CopyDiscOnly && t.Type == "ordered_set":
		return refuse(fmt.Sprintf("%s is an ordered_set, which Mnesia cannot keep in disc_only_copies", table), "use disc_copies")
	case to == CopyNone && len(holders) == 1:
		return refuse(fmt.Sprintf("%s holds the last copy of %s", node, table),
			"add a copy on another node first, or read the data out before dropping it")
	case to != CopyNone && status[node] != NodeRunning:
		return refuse(fmt.Sprintf("%s is not running (%s): Mnesia adds and changes copies only on running nodes", node, status[node]),
			"start it, then run set-copy again")
	case to.OnDisc() && table != "schema" && schemaCopy(s, node) == CopyRAM:
		return refuse(fmt.Sprintf("%s keeps its schema in RAM, so it cannot hold disc tables", node),
			fmt.Sprintf("first: mimmigrate set-copy --node %s --table schema --on %s --type disc_copies", s.Target, node))
	case table == "schema" && to == CopyRAM && holdsDiscTables(s, node):
		return refuse(fmt.Sprintf("%s holds disc tables, which need a disc schema", node), "change those tables first")
	}
	discLeft := to.OnDisc()
	for _, n := range holders {
		if n != node && t.Copies[n].OnDisc() {
			discLeft = true
		}
	}
	if c.From.OnDisc() && !discLeft && !t.Volatile {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s will have no disc copy: it is lost when every node holding it stops", table))
	}
	if to == CopyNone && len(holders) == 2 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s will have a single copy left", table))
	}
	if t.MemoryBytes != nil {
		if (to == CopyDisc || to == CopyRAM) && *t.MemoryBytes >= s.Settings.LargeTableByte {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s takes %s: %s keeps it in RAM on %s", table, HumanBytes(*t.MemoryBytes), to, node))
		}
		if to == CopyDiscOnly && *t.MemoryBytes >= s.Settings.DETSWarnBytes {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s takes %s, close to the 2 GiB DETS limit of disc_only_copies", table, HumanBytes(*t.MemoryBytes)))
		}
	}
	if c.From != CopyNone && to != CopyNone && len(t.Indexes) > 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("Mnesia then lists %s's indexes twice on %s until Mnesia restarts there (every write updates them twice; inspect reports it)", table, node))
	}
	if c.From == CopyNone && t.Size != nil && *t.Size > 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%d records are copied to %s; large tables take a while", *t.Size, node))
	}
	return c
}

// ApplyCopyChange runs the change on the planned node and checks the result.
func (sess *Session) ApplyCopyChange(ctx context.Context, c CopyChange) error {
	if c.Refusal != nil {
		return fmt.Errorf("refused: %s", c.Refusal.Reason)
	}
	if c.NoOp {
		return nil
	}
	conn := sess.Conn(c.On)
	if conn == nil {
		return fmt.Errorf("not connected to %s", c.On)
	}
	tab, node := term.Atom(c.Table), term.Atom(c.Node)
	var res term.Term
	var err error
	switch {
	case c.From == CopyNone:
		res, err = conn.Call(ctx, "mnesia", "add_table_copy", tab, node, term.Atom(c.To))
	case c.To == CopyNone:
		res, err = conn.Call(ctx, "mnesia", "del_table_copy", tab, node)
	default:
		res, err = conn.Call(ctx, "mnesia", "change_table_copy_type", tab, node, term.Atom(c.To))
	}
	if err != nil {
		return err
	}
	if err := atomicOK(res, c.On, c.Call); err != nil {
		return err
	}
	info := map[term.Atom]term.Term{}
	for _, k := range []term.Atom{"ram_copies", "disc_copies", "disc_only_copies"} {
		v, err := conn.Call(ctx, "mnesia", "table_info", tab, k)
		if err != nil {
			return err
		}
		info[k] = v
	}
	if got := copyOf(info, c.Node); got != c.To {
		return &erldist.Error{Kind: erldist.KindOther, Node: c.On,
			Msg:  fmt.Sprintf("after %s, %s's copy on %s is %s, not %s", c.Call, c.Table, c.Node, got, c.To),
			Hint: "run inspect again"}
	}
	return nil
}

// atomicOK checks a schema transaction's {atomic, ok}.
func atomicOK(res term.Term, node, call string) error {
	if tu, ok := res.(term.Tuple); ok && len(tu) == 2 {
		if term.IsAtom(tu[0], "atomic") {
			return nil
		}
		if term.IsAtom(tu[0], "aborted") {
			return &erldist.Error{Kind: erldist.KindBadRPC, Node: node,
				Msg:  fmt.Sprintf("Mnesia on %s refused %s: %s", node, call, term.Format(tu[1])),
				Hint: abortHint(tu[1])}
		}
	}
	return &erldist.Error{Kind: erldist.KindProtocol, Node: node,
		Msg: fmt.Sprintf("unexpected answer to %s: %s", call, term.Format(res))}
}

func abortHint(reason term.Term) string {
	s := term.Format(reason)
	switch {
	case strings.Contains(s, "not_active"):
		return "a node involved is not running"
	case strings.Contains(s, "already_exists"):
		return "the copy already exists; run inspect again"
	case strings.Contains(s, "no_exists"):
		return "the table or node is unknown to Mnesia; run inspect again"
	}
	return ""
}

func nodeStatus(s *Snapshot) map[string]string {
	m := map[string]string{}
	for _, n := range s.Nodes {
		m[n.Name] = n.Status
	}
	return m
}

func schemaCopy(s *Snapshot, node string) CopyType {
	for _, t := range s.Tables {
		if t.Name == "schema" {
			return t.Copies[node]
		}
	}
	return CopyNone
}

func holdsDiscTables(s *Snapshot, node string) bool {
	for _, t := range s.Tables {
		if t.Name != "schema" && t.Copies[node].OnDisc() {
			return true
		}
	}
	return false
}

// q quotes an atom as Erlang source would.
func q(a string) string { return term.QuoteAtom(term.Atom(a)) }

func similar(s *Snapshot, name string) string {
	var near []string
	for _, t := range s.Tables {
		if strings.Contains(t.Name, name) || strings.Contains(name, t.Name) || editDistance(t.Name, name) <= 2 {
			near = append(near, t.Name)
		}
	}
	sort.Strings(near)
	if len(near) > 0 {
		return "did you mean " + strings.Join(near, " or ") + "?"
	}
	return "mimmigrate inspect lists the tables"
}

// editDistance is the Levenshtein distance of two names.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
