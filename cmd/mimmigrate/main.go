// Command mimmigrate inspects, repairs, reads and migrates ejabberd and
// MongooseIM Mnesia clusters.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/migrate"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// Exit codes (docs/exit-codes.md).
const (
	exitOK          = 0
	exitFailure     = 1 // anything not below
	exitUsage       = 2 // bad arguments or input
	exitConnect     = 3 // cannot reach or authenticate to a node or database
	exitRemote      = 4 // the node refused or failed the operation
	exitRefused     = 5 // refused for safety, or not confirmed
	exitFindings    = 6 // inspect --check found warnings or worse
	exitPartial     = 7 // export rejected records; verify found differences
	exitInterrupted = 130
	exitInternal    = 70
)

// CLI is the command line.
type CLI struct {
	Globals
	VersionFlag kong.VersionFlag `name:"version" help:"Print the version and exit."`

	Inspect    InspectCmd    `cmd:"" help:"Show a Mnesia cluster: nodes, every table's copies on every node, problems and how to fix them."`
	RemoveNode RemoveNodeCmd `cmd:"" name:"remove-node" help:"Remove a dead node from the Mnesia cluster (mnesia:del_table_copy(schema, Node))."`
	SetCopy    SetCopyCmd    `cmd:"" name:"set-copy" help:"Add, change or drop a table's copy on a node."`
	Read       ReadCmd       `cmd:"" help:"Read a Mnesia directory, backup, text dump or DETS file without Erlang: records as JSON lines or Erlang terms, or a summary."`
	Backup     BackupCmd     `cmd:"" help:"Write a Mnesia backup from a node's directory without Erlang (optionally renaming the node)."`
	RenameNode RenameNodeCmd `cmd:"" name:"rename-node" help:"Rename a node in a Mnesia backup (offline mnesia_change_nodename)."`
	DB         DBCmd         `cmd:"" name:"db" help:"Create, upgrade or check the SQL schema export writes into."`
	Export     ExportCmd     `cmd:"" help:"Export every persistent table into PostgreSQL (ejabberd's schemas): from a live node or from files; resumable."`
	Verify     VerifyCmd     `cmd:"" help:"Compare a database with the source it was exported from, row by row (counts, then a digest of every row)."`
	Sync       SyncCmd       `cmd:"" help:"Keep PostgreSQL in step with a running Mnesia cluster: subscribe to every exported table, copy, then apply each change as it is made."`
	Cutover    CutoverCmd    `cmd:"" help:"Move the users from the legacy cluster to the Go nodes, with the sync drained and verified: seconds of closed logins."`
	Node       NodeCmd       `cmd:"" help:"Run mimmigrate's own cluster node (replicated in-memory tables, discovery through PostgreSQL)."`
	Cluster    ClusterCmd    `cmd:"" help:"Status, join, leave and remove for mimmigrate's cluster nodes."`
	XMPP       XMPPCmd       `cmd:"" name:"xmpp" help:"Sessions of the Go nodes' XMPP service: connected-users, kick, send-message (as ejabberdctl's)."`
	Version    VersionCmd    `cmd:"" help:"Print the version."`
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints the version.
func (VersionCmd) Run(g *Globals) error {
	fmt.Fprintln(g.stdout, "mimmigrate", version)
	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: tests call it.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "mimmigrate: internal error: %v (please report this with the command you ran)\n", r)
			code = exitInternal
		}
	}()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0)) // commands may lower it (see attach)
	var cli CLI
	exitCode := -1
	parser, err := kong.New(&cli,
		kong.Name("mimmigrate"),
		kong.Description("Inspect, repair, read and migrate ejabberd / MongooseIM Mnesia clusters."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { exitCode = c }),
		kong.Vars{"version": "mimmigrate " + version},
	)
	if err != nil {
		fmt.Fprintf(stderr, "mimmigrate: %v\n", err)
		return exitInternal
	}
	kctx, err := parser.Parse(args)
	if exitCode >= 0 { // --help
		return exitCode
	}
	if err != nil {
		fmt.Fprintf(stderr, "mimmigrate: %v (see mimmigrate --help)\n", oneLine(err.Error()))
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cli.Globals.ctx = ctx
	cli.Globals.stdin, cli.Globals.stdout, cli.Globals.stderr = stdin, stdout, stderr
	if err := kctx.Run(&cli.Globals); err != nil {
		if ctx.Err() != nil {
			msg := "interrupted"
			if cli.Globals.interrupted != "" {
				msg += ": " + cli.Globals.interrupted
			}
			fmt.Fprintln(stderr, "mimmigrate:", msg)
			return exitInterrupted
		}
		return report(stderr, err, cli.Globals.secrets)
	}
	return cli.Globals.exit
}

// userError is bad input from the user: exit code 2.
type userError struct{ msg, hint string }

func (e *userError) Error() string { return e.msg }

// refusal is an operation refused for safety or not confirmed: exit code 5.
type refusal struct{ msg, hint string }

func (e *refusal) Error() string { return e.msg }

// report prints err as one line with its hint, never a secret, and
// returns the exit code. It is the one place errors are printed.
func report(w io.Writer, err error, secrets []string) int {
	msg, hint, code := oneLine(err.Error()), "", exitFailure
	var ue *userError
	var rf *refusal
	var de *erldist.Error
	var un *unreachable
	var rm *remoteFailure
	var ie *migrate.InputError
	switch {
	case errors.As(err, &ie):
		hint, code = ie.Hint, exitUsage
	case errors.As(err, &un):
		code = exitConnect
	case errors.As(err, &rm):
		code = exitRemote
	case errors.As(err, &ue):
		hint, code = ue.hint, exitUsage
	case errors.As(err, &rf):
		hint, code = rf.hint, exitRefused
	case errors.As(err, &de):
		hint = cliHint(de)
		switch de.Kind {
		case erldist.KindBadName, erldist.KindNoCookie:
			code = exitUsage
		case erldist.KindBadRPC, erldist.KindTimeout, erldist.KindConnectionLost:
			code = exitRemote
		case erldist.KindOther, erldist.KindProtocol:
			code = exitFailure
		default:
			code = exitConnect
		}
	}
	for _, s := range secrets {
		msg, hint = mimsql.Redact(msg, s), mimsql.Redact(hint, s)
	}
	if hint != "" {
		fmt.Fprintf(w, "mimmigrate: %s (hint: %s)\n", msg, hint)
	} else {
		fmt.Fprintf(w, "mimmigrate: %s\n", msg)
	}
	return code
}

// cliHints are erldist failures' hints in the CLI's words: the flag that
// changes what the remedy names.
var cliHints = map[erldist.Remedy]string{
	erldist.RemedyOwnName:       "other mimmigrate runs are connected under every client name, or their connections have not timed out yet (up to a minute): retry shortly or pass --name",
	erldist.RemedyAllowName:     "net_kernel:allow/1 on that node must include our node name (see --name), or the node requires distribution features this client lacks",
	erldist.RemedyCookie:        "pass --cookie-file (e.g. /var/lib/ejabberd/.erlang.cookie), set " + erldist.CookieEnv + ", or create ~/.erlang.cookie",
	erldist.RemedyRightCookie:   "use the cookie of the node's service user (e.g. --cookie-file /var/lib/ejabberd/.erlang.cookie), or set " + erldist.CookieEnv,
	erldist.RemedyEPMDPort:      "check --epmd-port (or ERL_EPMD_PORT); epmd normally listens on 4369",
	erldist.RemedyNoEPMD:        "is the node running on that host? epmd starts with the first Erlang node; a node started with -start_epmd false needs --dist-port",
	erldist.RemedyPeerName:      "use the name the node itself uses: --node %s",
	erldist.RemedyVersion6:      "OTP 25.0-25.2 refuse the version 5 handshake: retry with --dist-version 6",
	erldist.RemedyVersion5:      "an OTP older than 23 needs --dist-version 5; a port that is not an Erlang node does this too",
	erldist.RemedyDistPortOrTLS: "check --dist-port, or whether the node uses TLS distribution",
	erldist.RemedyDistPort:      "check --dist-port",
	erldist.RemedyNameTaken:     "another node uses the name %s on this host: give another --name, or stop that node (epmd -names lists them)",
}

// cliHint is an erldist failure's hint for the command line.
func cliHint(e *erldist.Error) string {
	h, ok := cliHints[e.Remedy]
	switch {
	case !ok:
		return e.Hint
	case strings.Contains(h, "%s"):
		return fmt.Sprintf(h, e.Detail)
	}
	return h
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
