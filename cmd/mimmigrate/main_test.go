package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
	mimsql "github.com/mimmigrate/mimmigrate/sql"
)

// runCLI runs the command in-process with the given stdin.
func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// buildBinary builds the command into a temporary directory, for the
// tests that run it as a process of its own.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mimmigrate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// schemaDB is a fresh database holding a schema, as `db migrate` makes
// it; it is dropped when the test ends.
func schemaDB(t testing.TB, schema string) string {
	t.Helper()
	url := testenv.PostgresDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := mimsql.Connect(ctx, url, mimsql.ConnectOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := mimsql.Migrate(ctx, db, schema); err != nil {
		t.Fatalf("db migrate: %v", err)
	}
	return url
}

// oneLineError checks a failure: the wanted exit code, one line on stderr
// that says what is wrong, no Go stack trace, no cookie.
func oneLineError(t *testing.T, stderr string, code, want int, contains ...string) {
	t.Helper()
	if code != want {
		t.Errorf("exit code %d, want %d; stderr: %s", code, want, stderr)
	}
	if strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 || !strings.HasPrefix(stderr, "mimmigrate: ") {
		t.Errorf("not a one-line error: %q", stderr)
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Errorf("stack trace: %s", stderr)
	}
	for _, c := range contains {
		if !strings.Contains(stderr, c) {
			t.Errorf("stderr %q lacks %q", stderr, c)
		}
	}
}

func inspectJSON(t *testing.T, cookieFile, node string) *mnesia.Snapshot {
	t.Helper()
	out, stderr, code := runCLI(t, "", "inspect", "--node", node, "--cookie-file", cookieFile, "--json")
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, stderr)
	}
	var s mnesia.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	// Only a size or memory that is not known may be null (docs/json.md).
	for _, k := range testenv.NullKeys(t, []byte(out)) {
		if !strings.HasSuffix(k, ".size") && !strings.HasSuffix(k, ".memory_bytes") {
			t.Errorf("inspect --json: %s is null", k)
		}
	}
	// MIMMIGRATE_CAPTURE_SNAPSHOTS=DIR keeps each snapshot (the table
	// tests of erldist/mnesia run on such captures: see its testdata).
	if dir := os.Getenv("MIMMIGRATE_CAPTURE_SNAPSHOTS"); dir != "" {
		name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + ".json"
		os.WriteFile(filepath.Join(dir, name), []byte(out), 0o644)
	}
	return &s
}

// mnesiaFacts is what Mnesia itself says, read by an erl helper node.
type mnesiaFacts struct {
	dbNodes, running string
	tables           map[string]tableFacts
}

type tableFacts struct {
	ram, disc, discOnly string // comma-separated sorted node lists, "-" for none
	typ                 string
	size                string // "undefined" when not loaded
	localContent        string
	whereToRead         string
	attributes          string
}

const factsExpr = `
F = fun([]) -> "-"; (L) -> string:join([atom_to_list(X) || X <- lists:sort(L)], ",") end,
A = fun(L) -> string:join([atom_to_list(X) || X <- L], ",") end,
Head = io_lib:format("db ~s~nrunning ~s~n", [F(mnesia:system_info(db_nodes)), F(mnesia:system_info(running_db_nodes))]),
Rows = [io_lib:format("table ~s ~s ~s ~s ~s ~p ~s ~s ~s~n",
          [T, F(mnesia:table_info(T, ram_copies)), F(mnesia:table_info(T, disc_copies)),
           F(mnesia:table_info(T, disc_only_copies)), mnesia:table_info(T, type),
           mnesia:table_info(T, size), mnesia:table_info(T, local_content),
           mnesia:table_info(T, where_to_read), A(mnesia:table_info(T, attributes))])
        || T <- mnesia:system_info(tables)],
lists:flatten([Head | Rows])`

func readFacts(t *testing.T, node, cookie string) mnesiaFacts {
	t.Helper()
	out, err := testenv.EvalOn(node, cookie, factsExpr)
	if err != nil {
		t.Fatalf("facts from %s: %v", node, err)
	}
	f := mnesiaFacts{tables: map[string]tableFacts{}}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		w := strings.Fields(line)
		switch {
		case len(w) == 2 && w[0] == "db":
			f.dbNodes = w[1]
		case len(w) == 2 && w[0] == "running":
			f.running = w[1]
		case len(w) == 10 && w[0] == "table":
			f.tables[w[1]] = tableFacts{ram: w[2], disc: w[3], discOnly: w[4], typ: w[5], size: w[6],
				localContent: w[7], whereToRead: w[8], attributes: w[9]}
		default:
			t.Fatalf("facts line %q", line)
		}
	}
	return f
}

func nodesWith(s mnesia.Table, ct mnesia.CopyType) string {
	var ns []string
	for _, n := range sortedNames(s.Copies) {
		if s.Copies[n] == ct {
			ns = append(ns, n)
		}
	}
	if len(ns) == 0 {
		return "-"
	}
	return strings.Join(ns, ",")
}

// checkAgainstMnesia compares inspect's snapshot with Mnesia's own answers on node.
func checkAgainstMnesia(t *testing.T, s *mnesia.Snapshot, f mnesiaFacts) {
	t.Helper()
	if got := strings.Join(s.Cluster.DBNodes, ","); got != f.dbNodes {
		t.Errorf("db nodes: inspect %s, Mnesia %s", got, f.dbNodes)
	}
	if got := strings.Join(s.Cluster.RunningDBNodes, ","); got != f.running {
		t.Errorf("running db nodes: inspect %s, Mnesia %s", got, f.running)
	}
	if len(s.Tables) != len(f.tables) {
		t.Errorf("inspect lists %d tables, Mnesia %d", len(s.Tables), len(f.tables))
	}
	for _, tab := range s.Tables {
		m, ok := f.tables[tab.Name]
		if !ok {
			t.Errorf("inspect lists %s, Mnesia does not", tab.Name)
			continue
		}
		size := "undefined"
		if tab.Size != nil {
			size = strconv.FormatInt(*tab.Size, 10)
		}
		got := fmt.Sprintf("%s %s %s %s %s %v %s %s", nodesWith(tab, mnesia.CopyRAM), nodesWith(tab, mnesia.CopyDisc),
			nodesWith(tab, mnesia.CopyDiscOnly), tab.Type, size, tab.LocalContent, tab.WhereToRead, strings.Join(tab.Attributes, ","))
		want := fmt.Sprintf("%s %s %s %s %s %s %s %s", m.ram, m.disc, m.discOnly, m.typ, m.size, m.localContent, m.whereToRead, m.attributes)
		if got != want {
			t.Errorf("table %s:\n inspect %s\n  Mnesia %s", tab.Name, got, want)
		}
	}
}

func hasDiag(s *mnesia.Snapshot, code, node, table string) bool {
	for _, d := range s.Diagnostics {
		if d.Code == code && (node == "" || d.Node == node) && (table == "" || d.Table == table) {
			return true
		}
	}
	return false
}

func writeCookie(t *testing.T, cookie string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cookie")
	if err := os.WriteFile(p, []byte(cookie+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
