package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode"
	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// NodeCmd is `node`.
type NodeCmd struct {
	Start NodeStartCmd `cmd:"" help:"Run a cluster node in the foreground: replicated in-memory tables, discovery through PostgreSQL."`
}

// NodeStartCmd is `node start`.
type NodeStartCmd struct {
	DB            string        `help:"PostgreSQL URL of the discovery table (created when missing)." required:""`
	ClusterName   string        `name:"cluster-name" default:"mimmigrate" help:"Nodes with the same cluster name (and protocol version, which is appended) find each other."`
	ListenPort    int           `name:"listen-port" help:"Distribution port (0: any free port; epmd tells peers)."`
	ListenAddr    string        `name:"listen-addr" help:"Address to listen on (default: the node name's host)."`
	ExpireTime    time.Duration `name:"expire-time" default:"3600s" help:"A node whose discovery row was not updated for this long is removed from the table."`
	CheckInterval time.Duration `name:"check-interval" default:"5s" help:"Discovery checks this often during the first --initial-phase, then every --regular-interval."`
	Regular       time.Duration `name:"regular-interval" default:"5m" help:"Discovery interval after the initial phase."`
	InitialPhase  time.Duration `name:"initial-phase" default:"5m" help:"How long discovery checks at --check-interval after start."`
	NetTick       time.Duration `name:"net-ticktime" default:"60s" help:"A peer silent for this long is down (Erlang's net_ticktime)."`
	LogFormat     string        `name:"log-format" enum:"text,json" default:"text" help:"Log format on stderr."`
}

// Run starts the node and serves until SIGTERM or SIGINT.
func (c *NodeStartCmd) Run(g *Globals) error {
	if g.Name == "" {
		return &userError{msg: "--name is required: the node's name", hint: "e.g. --name mim1@127.0.0.1 (the host part must be this machine)"}
	}
	_, host, err := erldist.SplitNode(g.Name)
	if err != nil {
		return &userError{msg: fmt.Sprintf("--name: %q is not a node name", g.Name), hint: "a node name looks like mim1@127.0.0.1"}
	}
	cookie, _, err := erldist.ResolveCookie(g.Cookie, g.CookieFile)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if g.Verbose {
		level = slog.LevelDebug
	}
	var h slog.Handler = slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level})
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(g.stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(h).With("node", g.Name)

	ctx, stop := signal.NotifyContext(g.ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	db, err := g.connectDB("--db", c.DB, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	shown, pool := db.Shown, db.Pool
	if err := ensureDiscoveryTable(ctx, db); err != nil {
		return &unreachable{msg: fmt.Sprintf("%s: %s", shown, err)}
	}

	addr := c.ListenAddr
	if addr == "" {
		addr = host
	}
	node := &erldist.Node{Name: g.Name, Cookie: cookie, ListenAddr: net.JoinHostPort(addr, strconv.Itoa(c.ListenPort)),
		EPMDPort: g.EPMDPort, ServeEPMD: true, Logger: log,
		Timeouts: erldist.Timeouts{Tick: c.NetTick / 4, Peer: c.NetTick, Write: c.NetTick, Call: g.Timeout}}
	cluster := cetsnode.New(node, log)
	sessions := cetsnode.NewSessions(cluster)
	d := cetsnode.NewDiscovery(cluster, pool, c.ClusterName)
	d.UseSessions(sessions)
	d.UseRoutes(cetsnode.NewRoutes(cluster))
	d.ExpireTime, d.Initial, d.Regular, d.InitialPhase = c.ExpireTime, c.CheckInterval, c.Regular, c.InitialPhase
	d.AfterError = min(time.Second, c.CheckInterval)
	node.RPC = d.RPC()
	sctx, cancel := context.WithTimeout(ctx, g.Timeout)
	err = node.Start(sctx)
	cancel()
	if err != nil {
		return &unreachable{msg: err.Error()}
	}
	d.Address = addr
	log.Info("node started", "cluster", d.FullName(), "port", node.Port(), "db", shown)
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	<-ctx.Done()
	log.Info("stopping")
	<-done
	node.Close()
	log.Info("stopped")
	return nil
}

// ensureDiscoveryTable creates discovery_nodes unless it exists (made by
// us, or by MongooseIM's own schema).
func ensureDiscoveryTable(ctx context.Context, mdb *mimsql.DB) error {
	db := mdb.SQL()
	// Nodes starting together must not create it twice.
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(hashtext('mimmigrate:discovery schema'))"); err != nil {
		return err
	}
	defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(hashtext('mimmigrate:discovery schema'))")
	var exists bool
	if err := conn.QueryRowContext(ctx, "SELECT to_regclass('discovery_nodes') IS NOT NULL").Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = mimsql.Migrate(ctx, mdb, "discovery")
	return err
}

// ClusterCmd is `cluster`.
type ClusterCmd struct {
	Status ClusterStatusCmd `cmd:"" help:"A cluster node's view: available, unavailable, joined and discovered nodes, problems, tables."`
	Join   ClusterJoinCmd   `cmd:"" help:"Make --node join another node's cluster now (merge its tables), without waiting for discovery."`
	Leave  ClusterLeaveCmd  `cmd:"" help:"Make --node leave the cluster: stop replicating, remove its discovery row, stay out until restarted."`
	Remove ClusterRemoveCmd `cmd:"" help:"Remove a dead node from the cluster now: its discovery row and its records on every node."`
}

type clusterNode struct {
	Node string `help:"The cluster node to ask, alive@host." required:""`
}

// call makes an RPC to a cluster node as a hidden client.
func (f *clusterNode) call(g *Globals, fn string, args ...term.Term) (term.Term, error) {
	if err := checkNode("--node", f.Node); err != nil {
		return nil, err
	}
	cl, err := g.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.Timeout+60*time.Second)
	defer cancel()
	conn, err := cl.Dial(ctx, f.Node)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	res, err := conn.Call(ctx, "mimmigrate", term.Atom(fn), args...)
	if err != nil {
		return nil, err
	}
	if tu, ok := res.(term.Tuple); ok && len(tu) == 2 && term.IsAtom(tu[0], "badrpc") {
		return nil, &remoteFailure{msg: fmt.Sprintf("%s is not a mimmigrate cluster node (it does not serve mimmigrate:%s)", f.Node, fn)}
	}
	return res, nil
}

// outcome reads {ok, Msg} / {error, Msg}.
func outcome(res term.Term) (string, error) {
	tu, ok := res.(term.Tuple)
	if !ok || len(tu) != 2 {
		return "", &remoteFailure{msg: "unexpected answer " + term.Format(res)}
	}
	msg, _ := term.Text(tu[1])
	if term.IsAtom(tu[0], "ok") {
		return msg, nil
	}
	return "", &remoteFailure{msg: msg}
}

// ClusterStatusCmd is `cluster status`.
type ClusterStatusCmd struct {
	clusterNode
	JSON bool `name:"json" help:"Print the status as JSON."`
}

// Run prints the status.
func (c *ClusterStatusCmd) Run(g *Globals) error {
	res, err := c.call(g, "cluster_status")
	if err != nil {
		return err
	}
	text, err := outcome(res)
	if err != nil {
		return err
	}
	var st cetsnode.Status
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		return &remoteFailure{msg: "unreadable status: " + err.Error()}
	}
	if c.JSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintln(g.stdout, string(b))
	} else {
		printStatus(g, st)
	}
	if !st.Healthy {
		g.exit = exitFindings
	}
	return nil
}

func printStatus(g *Globals, st cetsnode.Status) {
	w := g.stdout
	list := func(l []string) string {
		if len(l) == 0 {
			return "-"
		}
		return strings.Join(l, ", ")
	}
	fmt.Fprintf(w, "%s\n", st.Verdict)
	fmt.Fprintf(w, "  node               %s (node_num %d)\n", st.Node, st.NodeNum)
	fmt.Fprintf(w, "  discoveredNodes    %s\n", list(st.DiscoveredNodes))
	fmt.Fprintf(w, "  joinedNodes        %s\n", list(st.JoinedNodes))
	fmt.Fprintf(w, "  availableNodes     %s\n", list(st.AvailableNodes))
	fmt.Fprintf(w, "  unavailableNodes   %s\n", list(st.UnavailableNodes))
	fmt.Fprintf(w, "  discoveryWorks     %v\n", st.DiscoveryWorks)
	for _, p := range []struct {
		name string
		l    []string
	}{{"remoteNodesWithoutDisco", st.RemoteNodesWithoutDisco}, {"remoteNodesWithUnknownTables", st.RemoteNodesWithUnknownTables},
		{"remoteUnknownTables", st.RemoteUnknownTables}, {"remoteNodesWithMissingTables", st.RemoteNodesWithMissingTables},
		{"remoteMissingTables", st.RemoteMissingTables}, {"conflictNodes", st.ConflictNodes}, {"conflictTables", st.ConflictTables}} {
		if len(p.l) > 0 {
			fmt.Fprintf(w, "  %-18s %s\n", p.name, list(p.l))
		}
	}
	fmt.Fprintf(w, "  %-12s %8s %12s  %s\n", "TABLE", "SIZE", "MEMORY", "NODES")
	for _, t := range st.Tables {
		fmt.Fprintf(w, "  %-12s %8d %12s  %s\n", t.Name, t.Size, humanBytes(t.Memory), list(t.Nodes))
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// ClusterJoinCmd is `cluster join`.
type ClusterJoinCmd struct {
	clusterNode
	Target string `arg:"" help:"A node of the cluster to join."`
	Force  bool   `short:"f" help:"Do not ask for confirmation."`
}

// Run joins.
func (c *ClusterJoinCmd) Run(g *Globals) error {
	if err := checkNode("target", c.Target); err != nil {
		return err
	}
	if !c.Force && !g.confirm(fmt.Sprintf("Warning. %s's tables will be merged with those of %s's cluster; writes pause on every member while they merge.\nDo you want to continue?", c.Node, c.Target)) {
		return &refusal{msg: "Operation discarded by user", hint: "answer yes, or pass -f"}
	}
	fmt.Fprintln(g.stdout, "Joining the cluster...")
	return c.report(g, "cluster_join", term.Binary(c.Target))
}

func (f *clusterNode) report(g *Globals, fn string, args ...term.Term) error {
	res, err := f.call(g, fn, args...)
	if err != nil {
		return err
	}
	msg, err := outcome(res)
	if err != nil {
		var rf *remoteFailure
		if errors.As(err, &rf) && (strings.Contains(rf.msg, "already_joined") || strings.Contains(rf.msg, "not_in_cluster") || strings.Contains(rf.msg, "node_is_alive")) {
			return &refusal{msg: rf.msg}
		}
		return err
	}
	fmt.Fprintln(g.stdout, msg)
	return nil
}

// ClusterLeaveCmd is `cluster leave`.
type ClusterLeaveCmd struct {
	clusterNode
	Force bool `short:"f" help:"Do not ask for confirmation."`
}

// Run leaves.
func (c *ClusterLeaveCmd) Run(g *Globals) error {
	if !c.Force && !g.confirm(fmt.Sprintf("Warning. %s will stop replicating and stay out of the cluster until it is started again; its sessions stay on it alone.\nDo you want to continue?", c.Node)) {
		return &refusal{msg: "Operation discarded by user", hint: "answer yes, or pass -f"}
	}
	fmt.Fprintln(g.stdout, "Leaving the cluster...")
	return c.report(g, "cluster_leave")
}

// ClusterRemoveCmd is `cluster remove`.
type ClusterRemoveCmd struct {
	clusterNode
	Target string `arg:"" help:"The dead node to remove."`
	Force  bool   `short:"f" help:"Do not ask for confirmation."`
}

// Run removes a dead node.
func (c *ClusterRemoveCmd) Run(g *Globals) error {
	if err := checkNode("target", c.Target); err != nil {
		return err
	}
	if !c.Force && !g.confirm(fmt.Sprintf("Warning. %s's discovery row and every record it owned (its sessions) will be removed on every node; refused if it is alive.\nDo you want to continue?", c.Target)) {
		return &refusal{msg: "Operation discarded by user", hint: "answer yes, or pass -f"}
	}
	fmt.Fprintln(g.stdout, "Removing node from the cluster...")
	return c.report(g, "cluster_remove", term.Binary(c.Target))
}
