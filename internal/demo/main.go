// Command demo starts (or stops) a private two-node ejabberd cluster with
// sample data, broken the way the 2012 operator's log describes: some tables
// have no copy on the second node, and the second node is stopped. Then
// migrate runs the whole migration on it with the mimmigrate binary:
// inspect, repair, sync, two Go nodes in standby, cutover, and a real
// client logging in on a Go node.
//
//	go run ./internal/demo start [-dir D] [-users N] [-healthy]
//	go run ./internal/demo migrate [-dir D] [-bin bin/mimmigrate]
//	go run ./internal/demo stop [-dir D]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

type state struct {
	Nodes []*testenv.Ejabberd `json:"nodes"`
	// Pids: sync and the Go nodes (each leads its own process group).
	Prefix   string `json:"prefix"`
	Pids     []int  `json:"pids,omitempty"`
	DB       string `json:"db,omitempty"`
	Migrated bool   `json:"migrated,omitempty"`
}

func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	if err != nil {
		return nil, fmt.Errorf("no demo running in %s (go run ./internal/demo start)", dir)
	}
	st := &state{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, err
	}
	if len(st.Nodes) < 2 {
		return nil, fmt.Errorf("%s: not a demo state", filepath.Join(dir, "demo.json"))
	}
	return st, nil
}

func saveState(dir string, st *state) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	return os.WriteFile(filepath.Join(dir, "demo.json"), b, 0o600)
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "start" && os.Args[1] != "stop" && os.Args[1] != "migrate") {
		fmt.Fprintln(os.Stderr, "usage: demo start|migrate|stop [-dir D] [-users N] [-healthy] [-bin B]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", filepath.Join(os.TempDir(), "mimmigrate-demo"), "directory for the demo nodes")
	users := fs.Int("users", 2000, "users to create")
	prefix := fs.String("prefix", "demo", "names: the nodes <prefix>1@localhost, <prefix>2@localhost, the Go nodes <prefix>-mim1@127.0.0.1, …, the database mimmigrate_<prefix>")
	healthy := fs.Bool("healthy", false, "leave the cluster healthy (do not drop copies or stop node 2)")
	bin := fs.String("bin", "bin/mimmigrate", "the mimmigrate binary migrate runs")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "start":
		err = start(*dir, *prefix, *users, !*healthy)
	case "migrate":
		err = migrate(*dir, *bin)
	default:
		err = stop(*dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func start(dir, prefix string, users int, broken bool) error {
	if why := testenv.EjabberdAvailable(); why != "" {
		return fmt.Errorf("%s", why)
	}
	if _, err := os.Stat(filepath.Join(dir, "demo.json")); err == nil {
		if err := stop(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cookie := "demo" + testenv.RandomID(16)
	cookieFile := filepath.Join(dir, "cookie")
	if err := os.WriteFile(cookieFile, []byte(cookie+"\n"), 0o600); err != nil {
		return err
	}
	t0 := time.Now()
	fmt.Printf("starting two ejabberd nodes in %s ...\n", dir)
	c, err := testenv.StartNamedEjabberdCluster(2, prefix, cookie, dir, testenv.PopulateOptions{Users: users})
	if err != nil {
		return err
	}
	if err := saveState(dir, &state{Nodes: c.Nodes, Prefix: prefix}); err != nil {
		return err
	}
	fmt.Printf("cluster %s + %s up with %d users, %d roster items, %d offline messages (%.0f s)\n",
		c.Nodes[0].Name, c.Nodes[1].Name, c.Sizes["passwd"], c.Sizes["roster"], c.Sizes["offline_msg"], time.Since(t0).Seconds())
	if broken {
		dropped := []string{"roster", "vcard", "offline_msg", "private_storage", "muc_room"}
		fmt.Printf("breaking it like the 2012 log: dropping %s's copies of %v, then stopping it\n", c.Nodes[1].Name, dropped)
		if err := c.DropCopies(c.Nodes[1], dropped); err != nil {
			return err
		}
		if err := c.Nodes[1].Stop(); err != nil {
			return err
		}
	}
	fmt.Printf("cookie file: %s\n", cookieFile)
	return nil
}

func stop(dir string) error {
	st, err := loadState(dir)
	if err != nil {
		return err
	}
	for _, pid := range st.Pids {
		syscall.Kill(-pid, syscall.SIGTERM)
	}
	time.Sleep(500 * time.Millisecond)
	for _, pid := range st.Pids {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	for _, n := range st.Nodes {
		n.Destroy()
	}
	if st.DB != "" {
		if err := dropDB(st.DB); err != nil {
			fmt.Fprintf(os.Stderr, "demo: dropping the database %s: %v\n", st.DB, err)
		}
	}
	fmt.Printf("stopped the demo (ejabberd nodes, sync, Go nodes), dropped its database and removed %s\n", dir)
	return os.RemoveAll(dir)
}
