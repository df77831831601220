package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/mnesiaread"
)

// BackupCmd writes a Mnesia backup from a directory, with no Erlang running.
type BackupCmd struct {
	sourceFlags
	Out        string   `required:"" short:"o" help:"The backup file to write." type:"path" placeholder:"FILE"`
	RenameNode []string `name:"rename-node" help:"Write NEW wherever the schema names OLD (repeatable), as ejabberdctl mnesia_change_nodename does." placeholder:"OLD=NEW"`
	Force      bool     `short:"f" help:"Overwrite FILE without asking."`
}

// RenameNodeCmd renames nodes in a backup: the offline mnesia_change_nodename.
type RenameNodeCmd struct {
	Backup string `arg:"" help:"The backup to read (mnesia:backup, ejabberdctl backup, or mimmigrate backup)." type:"path" placeholder:"BACKUP"`
	From   string `required:"" help:"The node name in the backup." placeholder:"OLD"`
	To     string `required:"" help:"The new node name." placeholder:"NEW"`
	Out    string `required:"" short:"o" help:"The renamed backup to write." type:"path" placeholder:"FILE"`
	Force  bool   `short:"f" help:"Overwrite FILE without asking."`
}

// parseRenames reads OLD=NEW pairs.
func parseRenames(pairs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, p := range pairs {
		from, to, ok := strings.Cut(p, "=")
		if !ok {
			return nil, &userError{msg: fmt.Sprintf("--rename-node %q: expected OLD=NEW", p), hint: "e.g. --rename-node ejabberd@oldhost=ejabberd@newhost"}
		}
		for _, n := range []string{from, to} {
			if _, _, err := erldist.SplitNode(n); err != nil {
				return nil, &userError{msg: fmt.Sprintf("--rename-node: %q is not a node name", n), hint: "a node name looks like ejabberd@host"}
			}
		}
		m[from] = to
	}
	return m, nil
}

// nodesOf lists the nodes a source names: its own and every copy holder.
func nodesOf(src mnesiaread.Source) []string {
	set := map[string]bool{}
	if n := src.Node(); n != "" {
		set[n] = true
	}
	for _, t := range src.Tables() {
		for _, nodes := range t.Copies {
			for _, n := range nodes {
				set[n] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func checkRenames(src mnesiaread.Source, renames map[string]string) error {
	known := nodesOf(src)
	for from := range renames {
		if !contains(known, from) {
			return &userError{msg: fmt.Sprintf("node %s does not appear in %s", from, src.Kind()),
				hint: "the nodes it names are: " + joinOrDash(known)}
		}
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// prepareOut checks the output path: never one of the inputs; an existing
// file is replaced only after confirmation. It returns a temporary path
// beside it to write, renamed over it by commit.
func (g *Globals) prepareOut(out string, force bool, inputs ...string) (string, error) {
	abs, _ := filepath.Abs(out)
	for _, in := range inputs {
		inAbs, _ := filepath.Abs(in)
		if abs == inAbs || strings.HasPrefix(abs, inAbs+string(filepath.Separator)) {
			return "", &refusal{msg: "refusing to write " + out + ": it is (inside) the input", hint: "write the backup somewhere else"}
		}
	}
	st, err := os.Stat(out)
	switch {
	case err == nil && st.IsDir():
		return "", &userError{msg: out + " is a directory", hint: "give a file name"}
	case err == nil:
		if !force && !g.confirm(out+" exists. Replace it?") {
			return "", &refusal{msg: "not confirmed: " + out + " left as it was", hint: "answer yes, or pass -f"}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	dir := filepath.Dir(out)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", &userError{msg: "cannot write " + out + ": no directory " + dir}
	}
	tmp := filepath.Join(dir, "."+filepath.Base(out)+".mimmigrate-"+fmt.Sprint(os.Getpid()))
	os.Remove(tmp) // our own leftover from an interrupted run
	return tmp, nil
}

// Run reads the source and writes the backup.
func (c *BackupCmd) Run(g *Globals) error {
	renames, err := parseRenames(c.RenameNode)
	if err != nil {
		return err
	}
	tmp, err := g.prepareOut(c.Out, c.Force, c.Path)
	if err != nil {
		return err
	}
	start := time.Now()
	src, prog, err := c.open(g)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := checkRenames(src, renames); err != nil {
		prog.done()
		return err
	}
	rep, err := mnesiaread.WriteBackup(src, tmp, mnesiaread.BackupOptions{Rename: renames})
	prog.done()
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", c.Out, err)
	}
	if err := os.Rename(tmp, c.Out); err != nil {
		os.Remove(tmp)
		return err
	}
	w := g.stdout
	node := src.Node()
	if to, ok := renames[node]; ok {
		node = to
	}
	fmt.Fprintf(w, "Wrote %s: %d tables, %d records from %s %s in %.1fs.\n", c.Out, rep.Tables, rep.Records, src.Kind(), c.Path, time.Since(start).Seconds())
	for from, to := range renames {
		fmt.Fprintf(w, "Renamed node %s to %s.\n", from, to)
	}
	if node == "" {
		node = "the node"
	}
	fmt.Fprintf(w, "To load it, on a fresh %s with Mnesia running:\n", node)
	fmt.Fprintf(w, "  mnesia:restore(%q, [{default_op, recreate_tables}]).\n", c.Out)
	fmt.Fprintf(w, "or, to replace everything at the next start: mnesia:install_fallback(%q).\n", c.Out)
	warnProblems(g, src.Problems(), "read --summary "+c.Path)
	return nil
}

// Run renames the nodes and writes the new backup.
func (c *RenameNodeCmd) Run(g *Globals) error {
	renames, err := parseRenames([]string{c.From + "=" + c.To})
	if err != nil {
		return err
	}
	b, err := mnesiaread.OpenBackup(c.Backup)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &userError{msg: c.Backup + ": no such file"}
		}
		return &userError{msg: err.Error(), hint: "rename-node works on backups; for a directory use mimmigrate backup DIR --rename-node OLD=NEW"}
	}
	if err := checkRenames(b, renames); err != nil {
		return err
	}
	tmp, err := g.prepareOut(c.Out, c.Force, c.Backup)
	if err != nil {
		return err
	}
	items, err := mnesiaread.RenameBackup(c.Backup, tmp, renames)
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, c.Out); err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(g.stdout, "Wrote %s: %d items, node %s renamed to %s.\n", c.Out, items, c.From, c.To)
	fmt.Fprintf(g.stdout, "On a fresh %s: mnesia:install_fallback(%q), then restart Mnesia; or mnesia:restore(%q, [{default_op, recreate_tables}]).\n", c.To, c.Out, c.Out)
	return nil
}
