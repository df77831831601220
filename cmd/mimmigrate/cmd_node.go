package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mimmigrate/mimmigrate/cetsnode"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp"
	xmppconfig "github.com/mimmigrate/mimmigrate/cetsnode/xmpp/config"
	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/migrate/cutover"
	"github.com/mimmigrate/mimmigrate/migrate/sink"
)

// NodeCmd is `node`.
type NodeCmd struct {
	Start  NodeStartCmd  `cmd:"" help:"Run a cluster node in the foreground: replicated in-memory tables, discovery through PostgreSQL, and with --config the XMPP service."`
	Config NodeConfigCmd `cmd:"" help:"Write the ejabberd.yml the Go nodes take over with, from a running ejabberd node's effective options."`
}

// NodeConfigCmd is `node config`.
type NodeConfigCmd struct {
	From  string `help:"The legacy ejabberd node: node:NAME." required:"" placeholder:"node:NAME"`
	Out   string `short:"o" help:"The file to write." required:"" type:"path" placeholder:"FILE"`
	Force bool   `short:"f" help:"Replace FILE without asking."`
}

// Run reads the node's options and writes the file.
func (c *NodeConfigCmd) Run(g *Globals) error {
	name, ok := strings.CutPrefix(c.From, "node:")
	if !ok {
		return &userError{msg: fmt.Sprintf("--from %q: expected node:NAME", c.From), hint: "e.g. --from node:ejabberd@xmpp1"}
	}
	if err := checkNode("--from", name); err != nil {
		return err
	}
	if err := g.checkOutput(c.Out, c.Force, "Replace it?"); err != nil {
		return err
	}
	cl, err := g.client()
	if err != nil {
		return err
	}
	conn, err := cl.Dial(g.ctx, name)
	if err != nil {
		return err
	}
	defer conn.Close()
	yml, notes, err := xmppconfig.FromEjabberd(g.ctx, conn, name)
	if err != nil {
		return &remoteFailure{msg: fmt.Sprintf("%s: %v", name, err)}
	}
	out := sink.NewBeside(c.Out)
	defer out.Abort()
	f, err := out.Create()
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil { // it may hold sql_password
		return err
	}
	if _, err := f.Write(yml); err != nil {
		return err
	}
	if err := out.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "Wrote %s from %s.\n", c.Out, name)
	for _, n := range notes {
		fmt.Fprintf(g.stdout, "note: %s\n", n)
	}
	fmt.Fprintf(g.stdout, "Start a Go node with it: mimmigrate node start --config %s --name NAME [--db URL]\n", c.Out)
	return nil
}

// NodeStartCmd is `node start`.
type NodeStartCmd struct {
	Config        string        `help:"ejabberd.yml to serve XMPP from (its hosts, certfiles, c2s listeners, auth and sql_* options)." type:"existingfile" placeholder:"FILE"`
	DB            string        `help:"PostgreSQL URL of the discovery table (created when missing) and of the exported data; default: the sql_* options of --config."`
	ClusterName   string        `name:"cluster-name" default:"mimmigrate" help:"Nodes with the same cluster name (and protocol version, which is appended) find each other."`
	ListenPort    int           `name:"listen-port" help:"Distribution port (0: any free port; epmd tells peers)."`
	ListenAddr    string        `name:"listen-addr" help:"Address to listen on (default: the node name's host)."`
	ExpireTime    time.Duration `name:"expire-time" default:"3600s" help:"A node whose discovery row was not updated for this long is removed from the table."`
	CheckInterval time.Duration `name:"check-interval" default:"5s" help:"Discovery checks this often during the first --initial-phase, then every --regular-interval."`
	Regular       time.Duration `name:"regular-interval" default:"5m" help:"Discovery interval after the initial phase."`
	InitialPhase  time.Duration `name:"initial-phase" default:"5m" help:"How long discovery checks at --check-interval after start."`
	NetTick       time.Duration `name:"net-ticktime" default:"60s" help:"A peer silent for this long is down (Erlang's net_ticktime)."`
	LogFormat     string        `name:"log-format" enum:"text,json" default:"text" help:"Log format on stderr."`
	Standby       bool          `help:"Start without serving c2s: the listeners open when a cutover marks the nodes ready (at once if the database says a cutover did)."`
	HTTP          string        `name:"http" placeholder:"ADDR" help:"Serve /healthz (200 while the node serves c2s) and /metrics (Prometheus) on this address, e.g. 127.0.0.1:5281 (needs --config)."`
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
	g.secret(cookie)
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
	var xcfg *xmppconfig.Config
	dbURL, conns := c.DB, 4
	if c.Config != "" {
		if xcfg, err = xmppconfig.Load(c.Config); err != nil {
			return &userError{msg: fmt.Sprintf("--config %s: %v", c.Config, err)}
		}
		g.secret(xcfg.SQL.Password)
		for _, w := range xcfg.Warnings {
			log.Warn("config: " + w)
		}
		if dbURL == "" {
			dbURL = xcfg.SQL.URL()
		}
		conns = max(xcfg.SQL.PoolSize, 10)
	}
	if dbURL == "" {
		return &userError{msg: "no database: give --db, or sql_server and the other sql_* options in --config"}
	}
	db, err := g.connectDB("--db", dbURL, conns)
	if err != nil {
		return err
	}
	defer db.Close()
	store, err := cetsnode.NewPostgresDiscovery(ctx, db)
	if err != nil {
		return &unreachable{msg: fmt.Sprintf("%s: %s", db.Shown, err)}
	}
	addr := c.ListenAddr
	if addr == "" {
		addr = host
	}
	cfg := cetsnode.DefaultConfig()
	cfg.Name, cfg.Cookie, cfg.Store, cfg.Logger = g.Name, cookie, store, log
	cfg.ListenAddr, cfg.Address, cfg.EPMDPort = net.JoinHostPort(addr, strconv.Itoa(c.ListenPort)), addr, g.EPMDPort
	cfg.ClusterName, cfg.ExpireTime, cfg.NetTickTime, cfg.CallTimeout = c.ClusterName, c.ExpireTime, c.NetTick, g.Timeout
	cfg.CheckInterval, cfg.RegularInterval, cfg.InitialPhase = c.CheckInterval, c.Regular, c.InitialPhase
	if c.HTTP != "" && xcfg == nil {
		return &userError{msg: "--http serves the XMPP service's health and metrics: it needs --config"}
	}
	var svc *xmpp.Service
	if xcfg != nil {
		standby := false
		if c.Standby {
			serving, err := cutover.Serving(ctx, db.Pool)
			if err != nil {
				return fmt.Errorf("%s: %w", db.Shown, err)
			}
			standby = !serving
		}
		svc, err = xmpp.New(xmpp.Options{Config: xcfg, DB: db, Secret: xmpp.Secret(cookie, c.ClusterName), Log: log, Standby: standby})
		if err != nil {
			return &userError{msg: fmt.Sprintf("--config %s: %v", c.Config, err)}
		}
		cfg.Services = append(cfg.Services, svc)
	}
	var hl net.Listener
	if c.HTTP != "" {
		if hl, err = net.Listen("tcp", c.HTTP); err != nil {
			return &userError{msg: fmt.Sprintf("--http %s: %v", c.HTTP, err)}
		}
		defer hl.Close()
	}
	node, err := cetsnode.Start(ctx, cfg)
	var ce *xmppconfig.Error
	switch {
	case cetsnode.IsConfigError(err), errors.As(err, &ce):
		return &userError{msg: err.Error()}
	case err != nil:
		return err
	}
	if hl != nil {
		hs := &http.Server{Handler: svc.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
		go hs.Serve(hl)
		defer hs.Close()
		log.Info("http listening", "addr", hl.Addr().String())
	}
	log.Info("serving", "db", db.Shown)
	<-ctx.Done()
	log.Info("stopping")
	node.Close()
	log.Info("stopped")
	return nil
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

// admin checks the node name and makes the admin client.
func (f *clusterNode) admin(g *Globals) (*cetsnode.Admin, context.Context, context.CancelFunc, error) {
	if err := checkNode("--node", f.Node); err != nil {
		return nil, nil, nil, err
	}
	cl, err := g.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.Timeout+60*time.Second)
	a := &cetsnode.Admin{Client: cl}
	return a, ctx, func() { cancel(); a.Close() }, nil
}

// clusterError maps an admin client's errors: refusals in MongooseIM's
// words (exit 5), a node that is not a cluster node or failed (exit 4).
func clusterError(node string, err error) error {
	var ae *cetsnode.AdminError
	switch {
	case errors.As(err, &ae) && ae.Code != "failed":
		return &refusal{msg: ae.Msg}
	case errors.As(err, &ae):
		return &remoteFailure{msg: ae.Msg}
	case errors.Is(err, cetsnode.ErrNotClusterNode):
		return &remoteFailure{msg: fmt.Sprintf("%s is not a mimmigrate cluster node (%s)", node, strings.TrimSuffix(err.Error(), ": "+cetsnode.ErrNotClusterNode.Error()))}
	}
	return err
}

// ClusterStatusCmd is `cluster status`.
type ClusterStatusCmd struct {
	clusterNode
	JSON bool `name:"json" help:"Print the status as JSON (docs/cluster.md)."`
}

// Run prints the status.
func (c *ClusterStatusCmd) Run(g *Globals) error {
	a, ctx, cancel, err := c.admin(g)
	if err != nil {
		return err
	}
	defer cancel()
	st, err := a.Status(ctx, c.Node)
	if err != nil {
		return clusterError(c.Node, err)
	}
	if c.JSON {
		printJSON(g, st)
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
	fmt.Fprintf(w, "%s\n", st.Verdict)
	fmt.Fprintf(w, "  node               %s (node_num %d)\n", st.Node, st.NodeNum)
	fmt.Fprintf(w, "  discoveredNodes    %s\n", joinOrDash(st.DiscoveredNodes))
	fmt.Fprintf(w, "  joinedNodes        %s\n", joinOrDash(st.JoinedNodes))
	fmt.Fprintf(w, "  availableNodes     %s\n", joinOrDash(st.AvailableNodes))
	fmt.Fprintf(w, "  unavailableNodes   %s\n", joinOrDash(st.UnavailableNodes))
	fmt.Fprintf(w, "  discoveryWorks     %v\n", st.DiscoveryWorks)
	var sessions []string
	for _, ns := range st.Sessions {
		sessions = append(sessions, fmt.Sprintf("%s %d", ns.Node, ns.Sessions))
	}
	fmt.Fprintf(w, "  sessions           %s\n", joinOrDash(sessions))
	if st.Left {
		fmt.Fprintf(w, "  left               true (stays out of the cluster until started again)\n")
	}
	for _, p := range []struct {
		name string
		l    []string
	}{{"remoteNodesWithoutDisco", st.RemoteNodesWithoutDisco}, {"remoteNodesWithUnknownTables", st.RemoteNodesWithUnknownTables},
		{"remoteUnknownTables", st.RemoteUnknownTables}, {"remoteNodesWithMissingTables", st.RemoteNodesWithMissingTables},
		{"remoteMissingTables", st.RemoteMissingTables}, {"conflictNodes", st.ConflictNodes}, {"conflictTables", st.ConflictTables}} {
		if len(p.l) > 0 {
			fmt.Fprintf(w, "  %-18s %s\n", p.name, joinOrDash(p.l))
		}
	}
	fmt.Fprintf(w, "  %-12s %8s %12s  %s\n", "TABLE", "SIZE", "MEMORY", "NODES")
	for _, t := range st.Tables {
		fmt.Fprintf(w, "  %-12s %8d %12s  %s\n", t.Name, t.Size, mnesia.HumanBytes(t.Memory), joinOrDash(t.Nodes))
	}
}

// operate runs a cluster operation as MongooseIM's ctl does: refused at
// once when check says it cannot start, then the question (unless
// force), the progress line, the operation, its message.
func (f *clusterNode) operate(g *Globals, target string, force bool, question, progress string,
	check func(context.Context, *cetsnode.Admin) error, op func(context.Context, *cetsnode.Admin) (string, error)) error {
	if target != "" {
		if err := checkNode("target", target); err != nil {
			return err
		}
	}
	a, ctx, cancel, err := f.admin(g)
	if err != nil {
		return err
	}
	defer cancel()
	if check != nil {
		if err := check(ctx, a); err != nil {
			return clusterError(f.Node, err)
		}
	}
	if !force && !g.confirm(question+"\nDo you want to continue?") {
		return &refusal{msg: "Operation discarded by user", hint: "answer yes, or pass -f"}
	}
	fmt.Fprintln(g.stdout, progress)
	msg, err := op(ctx, a)
	if err != nil {
		return clusterError(f.Node, err)
	}
	fmt.Fprintln(g.stdout, msg)
	return nil
}

// ClusterJoinCmd is `cluster join`.
type ClusterJoinCmd struct {
	clusterNode
	Target string `arg:"" help:"A node of the cluster to join."`
	Force  bool   `short:"f" help:"Do not ask for confirmation."`
}

// Run joins: refused at once when the join cannot start (the node left,
// or is joined already), before asking.
func (c *ClusterJoinCmd) Run(g *Globals) error {
	return c.operate(g, c.Target, c.Force,
		fmt.Sprintf("Warning. %s's tables will be merged with those of %s's cluster; writes pause on every member while they merge.", c.Node, c.Target),
		"Joining the cluster...",
		func(ctx context.Context, a *cetsnode.Admin) error { return a.CheckJoin(ctx, c.Node, c.Target) },
		func(ctx context.Context, a *cetsnode.Admin) (string, error) { return a.Join(ctx, c.Node, c.Target) })
}

// ClusterLeaveCmd is `cluster leave`.
type ClusterLeaveCmd struct {
	clusterNode
	Force bool `short:"f" help:"Do not ask for confirmation."`
}

// Run leaves.
func (c *ClusterLeaveCmd) Run(g *Globals) error {
	return c.operate(g, "", c.Force,
		fmt.Sprintf("Warning. %s will stop replicating and stay out of the cluster until it is started again; its sessions stay on it alone.", c.Node),
		"Leaving the cluster...", nil,
		func(ctx context.Context, a *cetsnode.Admin) (string, error) { return a.Leave(ctx, c.Node) })
}

// ClusterRemoveCmd is `cluster remove`.
type ClusterRemoveCmd struct {
	clusterNode
	Target string `arg:"" help:"The dead node to remove."`
	Force  bool   `short:"f" help:"Do not ask for confirmation."`
}

// Run removes a dead node: refused at once while it answers, before
// asking.
func (c *ClusterRemoveCmd) Run(g *Globals) error {
	return c.operate(g, c.Target, c.Force,
		fmt.Sprintf("Warning. %s's discovery row and every record it owned (its sessions) will be removed on every node; refused if it is alive.", c.Target),
		"Removing node from the cluster...",
		func(ctx context.Context, a *cetsnode.Admin) error { return a.CheckRemove(ctx, c.Node, c.Target) },
		func(ctx context.Context, a *cetsnode.Admin) (string, error) { return a.Remove(ctx, c.Node, c.Target) })
}
