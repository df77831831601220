package cetsnode

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// StatusSchema names the JSON layout of Status (docs/cluster.md).
const StatusSchema = "mimmigrate.cluster-status/1"

// Status is MongooseIM's CETS systemInfo for this cluster, as this node
// sees it (the field meanings are cets_status's; the JSON keys are its
// names in snake_case; see docs/cluster.md).
type Status struct {
	Schema                       string        `json:"schema"`
	Node                         string        `json:"node"`
	AvailableNodes               []string      `json:"available_nodes"`
	UnavailableNodes             []string      `json:"unavailable_nodes"`
	JoinedNodes                  []string      `json:"joined_nodes"`
	DiscoveredNodes              []string      `json:"discovered_nodes"`
	DiscoveryWorks               bool          `json:"discovery_works"`
	RemoteNodesWithoutDisco      []string      `json:"remote_nodes_without_disco"`
	RemoteNodesWithUnknownTables []string      `json:"remote_nodes_with_unknown_tables"`
	RemoteUnknownTables          []string      `json:"remote_unknown_tables"`
	RemoteNodesWithMissingTables []string      `json:"remote_nodes_with_missing_tables"`
	RemoteMissingTables          []string      `json:"remote_missing_tables"`
	ConflictNodes                []string      `json:"conflict_nodes"`
	ConflictTables               []string      `json:"conflict_tables"`
	Tables                       []TableStatus `json:"tables"`
	// Sessions are the XMPP sessions in the session table, by the node
	// that owns them (every node the table knows, 0 included).
	Sessions       []NodeSessions `json:"sessions"`
	NodeNum        int            `json:"node_num"`
	DiscoveryError string         `json:"discovery_error,omitempty"`
	Left           bool           `json:"left"`
	Healthy        bool           `json:"healthy"`
	Verdict        string         `json:"verdict"`
}

// NodeSessions is the number of sessions a node owns.
type NodeSessions struct {
	Node     string `json:"node"`
	Sessions int    `json:"sessions"`
}

// TableStatus is one table on this node.
type TableStatus struct {
	Name   string   `json:"table_name"`
	Size   int      `json:"size"`
	Memory int64    `json:"memory"` // bytes of the records' external term encoding
	Nodes  []string `json:"nodes"`  // this node and those it replicates to
}

// Status gathers the cluster's state: discovery's view, and each
// available node's tables with the nodes each replicates to.
func (n *Node) Status(ctx context.Context) Status {
	c := n.Cluster
	ds := n.Discovery.State()
	st := Status{Schema: StatusSchema, Node: string(c.self), DiscoveryWorks: ds.Works, NodeNum: ds.NodeNum,
		DiscoveryError: ds.LastError, Left: c.HasLeft(), Tables: []TableStatus{}, Sessions: []NodeSessions{}}
	by := n.Sessions.CountByNode()
	for _, node := range append([]term.Atom{c.self}, n.Sessions.T.Nodes()...) {
		if _, ok := by[node]; !ok {
			by[node] = 0
		}
	}
	for node, k := range by {
		st.Sessions = append(st.Sessions, NodeSessions{Node: string(node), Sessions: k})
	}
	sort.Slice(st.Sessions, func(i, j int) bool { return st.Sessions[i].Node < st.Sessions[j].Node })
	ours := map[string][]string{}
	for _, t := range c.Tables() {
		nodes := append([]string{string(c.self)}, atomsToStrings(t.Nodes())...)
		sort.Strings(nodes)
		ours[string(t.name)] = nodes
		var mem int64
		t.Each(func(r Record) {
			if b, err := term.Encode(r); err == nil {
				mem += int64(len(b))
			}
		})
		st.Tables = append(st.Tables, TableStatus{Name: string(t.name), Size: t.Size(), Memory: mem, Nodes: nodes})
	}
	st.DiscoveredNodes = atomsToStrings(ds.Nodes)
	unknown, missing, conflict := map[string]bool{}, map[string]bool{}, map[string]bool{}
	joined := []string{string(c.self)}
	st.AvailableNodes = []string{string(c.self)}
	for _, n := range ds.Nodes {
		if n == c.self {
			continue
		}
		if _, down := ds.Unavailable[n]; down || !c.t.Connected(n) {
			st.UnavailableNodes = append(st.UnavailableNodes, string(n))
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := c.call(cctx, n, tablesReq{})
		cancel()
		var reply tablesReply
		if err == nil {
			reply, err = decodeTablesReply(res)
		}
		if err != nil {
			st.RemoteNodesWithoutDisco = append(st.RemoteNodesWithoutDisco, string(n))
			continue
		}
		st.AvailableNodes = append(st.AvailableNodes, string(n))
		theirs := map[string][]string{}
		for name, nodes := range reply {
			theirs[name] = atomsToStrings(nodes)
		}
		same, hasUnknown, hasMissing, hasConflict := true, false, false, false
		for name, nodes := range theirs {
			o, ok := ours[name]
			if !ok {
				unknown[name], hasUnknown = true, true
				continue
			}
			if fmt.Sprint(o) != fmt.Sprint(nodes) {
				same = false
				if slices.Contains(o, string(n)) || slices.Contains(nodes, string(c.self)) {
					conflict[name], hasConflict = true, true
				}
			}
		}
		for name := range ours {
			if _, ok := theirs[name]; !ok {
				missing[name], hasMissing = true, true
				same = false
			}
		}
		if same && slices.Contains(ours[firstKey(ours)], string(n)) {
			joined = append(joined, string(n))
		}
		if hasUnknown {
			st.RemoteNodesWithUnknownTables = append(st.RemoteNodesWithUnknownTables, string(n))
		}
		if hasMissing {
			st.RemoteNodesWithMissingTables = append(st.RemoteNodesWithMissingTables, string(n))
		}
		if hasConflict {
			st.ConflictNodes = append(st.ConflictNodes, string(n))
		}
	}
	sort.Strings(joined)
	sort.Strings(st.AvailableNodes)
	st.JoinedNodes = joined
	st.RemoteUnknownTables, st.RemoteMissingTables, st.ConflictTables = keys(unknown), keys(missing), keys(conflict)
	problems := len(st.UnavailableNodes) + len(st.RemoteNodesWithoutDisco) + len(st.RemoteNodesWithUnknownTables) +
		len(st.RemoteNodesWithMissingTables) + len(st.ConflictNodes)
	st.Healthy = ds.Works && fmt.Sprint(st.JoinedNodes) == fmt.Sprint(st.DiscoveredNodes) && problems == 0
	switch {
	case !ds.Works:
		st.Verdict = "unhealthy: discovery cannot reach the database: " + ds.LastError
	case st.Healthy:
		st.Verdict = fmt.Sprintf("healthy: %s joined, every discovered node", plural(len(st.JoinedNodes), "node"))
	default:
		st.Verdict = fmt.Sprintf("unhealthy: %d of %s joined", len(st.JoinedNodes), plural(len(st.DiscoveredNodes), "discovered node"))
		if len(st.UnavailableNodes) > 0 {
			st.Verdict += fmt.Sprintf("; unavailable: %v", st.UnavailableNodes)
		}
		if len(st.ConflictNodes) > 0 {
			st.Verdict += fmt.Sprintf("; replicating to other node sets: %v", st.ConflictNodes)
		}
	}
	st.nonNil()
	return st
}

// plural is "1 node", "2 nodes".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// nonNil makes every list of the status a list in JSON, never null.
func (st *Status) nonNil() {
	for _, l := range []*[]string{&st.AvailableNodes, &st.UnavailableNodes, &st.JoinedNodes, &st.DiscoveredNodes,
		&st.RemoteNodesWithoutDisco, &st.RemoteNodesWithUnknownTables, &st.RemoteUnknownTables,
		&st.RemoteNodesWithMissingTables, &st.RemoteMissingTables, &st.ConflictNodes, &st.ConflictTables} {
		if *l == nil {
			*l = []string{}
		}
	}
}

func atomsToStrings(as []term.Atom) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = string(a)
	}
	sort.Strings(out)
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func firstKey(m map[string][]string) string {
	for _, k := range keys(boolKeys(m)) {
		return k
	}
	return ""
}

func boolKeys(m map[string][]string) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}
