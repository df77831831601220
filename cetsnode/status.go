package cetsnode

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Status is MongooseIM's CETS systemInfo for this cluster, as this node
// sees it (the field meanings are cets_status's; see docs/cluster.md).
type Status struct {
	Node                         string        `json:"node"`
	AvailableNodes               []string      `json:"availableNodes"`
	UnavailableNodes             []string      `json:"unavailableNodes"`
	JoinedNodes                  []string      `json:"joinedNodes"`
	DiscoveredNodes              []string      `json:"discoveredNodes"`
	DiscoveryWorks               bool          `json:"discoveryWorks"`
	RemoteNodesWithoutDisco      []string      `json:"remoteNodesWithoutDisco"`
	RemoteNodesWithUnknownTables []string      `json:"remoteNodesWithUnknownTables"`
	RemoteUnknownTables          []string      `json:"remoteUnknownTables"`
	RemoteNodesWithMissingTables []string      `json:"remoteNodesWithMissingTables"`
	RemoteMissingTables          []string      `json:"remoteMissingTables"`
	ConflictNodes                []string      `json:"conflictNodes"`
	ConflictTables               []string      `json:"conflictTables"`
	Tables                       []TableStatus `json:"tables"`
	NodeNum                      int           `json:"nodeNum"`
	DiscoveryError               string        `json:"discoveryError,omitempty"`
	Healthy                      bool          `json:"healthy"`
	Verdict                      string        `json:"verdict"`
}

// TableStatus is one table on this node.
type TableStatus struct {
	Name   string   `json:"tableName"`
	Size   int      `json:"size"`
	Memory int64    `json:"memory"` // bytes of the records' external term encoding
	Nodes  []string `json:"nodes"`  // this node and those it replicates to
}

// Status gathers the cluster's state: discovery's view, and each
// available node's tables with the nodes each replicates to.
func (d *Discovery) Status(ctx context.Context) Status {
	c := d.c
	ds := d.State()
	st := Status{Node: string(c.self), DiscoveryWorks: ds.Works, NodeNum: ds.NodeNum, DiscoveryError: ds.LastError}
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
		if _, down := ds.Unavailable[n]; down || c.Node.Conn(n) == nil {
			st.UnavailableNodes = append(st.UnavailableNodes, string(n))
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := c.call(cctx, n, term.Tuple{term.Atom("tables")})
		cancel()
		if err != nil {
			st.RemoteNodesWithoutDisco = append(st.RemoteNodesWithoutDisco, string(n))
			continue
		}
		st.AvailableNodes = append(st.AvailableNodes, string(n))
		theirs := map[string][]string{}
		l, _ := term.Elems(res)
		for _, e := range l {
			tu, ok := e.(term.Tuple)
			if !ok || len(tu) != 2 {
				continue
			}
			name, _ := tu[0].(term.Atom)
			ns, _ := term.Elems(tu[1])
			var nodes []string
			for _, x := range ns {
				if a, ok := x.(term.Atom); ok {
					nodes = append(nodes, string(a))
				}
			}
			sort.Strings(nodes)
			theirs[string(name)] = nodes
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
				if contains(o, string(n)) || contains(nodes, string(c.self)) {
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
		if same && contains(ours[firstKey(ours)], string(n)) {
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
		st.Verdict = fmt.Sprintf("healthy: %d nodes joined, every discovered node", len(st.JoinedNodes))
	default:
		st.Verdict = fmt.Sprintf("unhealthy: %d of %d discovered nodes joined", len(st.JoinedNodes), len(st.DiscoveredNodes))
		if len(st.UnavailableNodes) > 0 {
			st.Verdict += fmt.Sprintf("; unavailable: %v", st.UnavailableNodes)
		}
		if len(st.ConflictNodes) > 0 {
			st.Verdict += fmt.Sprintf("; replicating to other node sets: %v", st.ConflictNodes)
		}
	}
	return st
}

func atomsToStrings(as []term.Atom) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = string(a)
	}
	sort.Strings(out)
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
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

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
