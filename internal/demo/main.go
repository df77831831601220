// Command demo starts (or stops) a private two-node ejabberd cluster with
// sample data, broken the way the 2012 operator's log describes: some tables
// have no copy on the second node, and the second node is stopped.
//
//	go run ./internal/demo start [-dir D] [-users N] [-healthy]
//	go run ./internal/demo stop [-dir D]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

type state struct {
	Nodes []*testenv.Ejabberd `json:"nodes"`
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "start" && os.Args[1] != "stop") {
		fmt.Fprintln(os.Stderr, "usage: demo start|stop [-dir D] [-users N] [-healthy]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", filepath.Join(os.TempDir(), "mimmigrate-demo"), "directory for the demo nodes")
	users := fs.Int("users", 2000, "users to create")
	healthy := fs.Bool("healthy", false, "leave the cluster healthy (do not drop copies or stop node 2)")
	fs.Parse(os.Args[2:])
	var err error
	if os.Args[1] == "start" {
		err = start(*dir, *users, !*healthy)
	} else {
		err = stop(*dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func start(dir string, users int, broken bool) error {
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
	c, err := testenv.StartNamedEjabberdCluster(2, "demo", cookie, dir, testenv.PopulateOptions{Users: users})
	if err != nil {
		return err
	}
	st := state{Nodes: c.Nodes}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "demo.json"), b, 0o600); err != nil {
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
	fmt.Printf("\ncookie file: %s\ntry:\n  ./bin/mimmigrate inspect --node %s --cookie-file %s\n",
		cookieFile, c.Nodes[0].Name, cookieFile)
	fmt.Printf("  ./bin/mimmigrate remove-node --node %s %s --cookie-file %s --dry-run\n", c.Nodes[0].Name, c.Nodes[1].Name, cookieFile)
	fmt.Printf("stop it with: make demo-stop\n")
	return nil
}

func stop(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	if err != nil {
		return fmt.Errorf("no demo running in %s", dir)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	for _, n := range st.Nodes {
		n.Destroy()
	}
	fmt.Printf("stopped the demo nodes and removed %s\n", dir)
	return os.RemoveAll(dir)
}
