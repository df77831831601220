package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/migrate/sink"
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

// checkRenames refuses renaming a node the source does not name.
func checkRenames(src mnesiaread.Source, renames map[string]string) error {
	return notNamed(mnesiaread.CheckNodes(src, slices.Sorted(maps.Keys(renames))...))
}

// Run reads the source and writes the backup.
func (c *BackupCmd) Run(g *Globals) error {
	renames, err := parseRenames(c.RenameNode)
	if err != nil {
		return err
	}
	if err := g.checkOutput(c.Out, c.Force, "Replace it?", c.Path); err != nil {
		return err
	}
	out := sink.NewBeside(c.Out)
	defer out.Abort()
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
	rep, err := mnesiaread.WriteBackup(src, out.Temp, mnesiaread.BackupOptions{Rename: renames})
	prog.done()
	if err != nil {
		return fmt.Errorf("writing %s: %w", c.Out, err)
	}
	if err := out.Commit(); err != nil {
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
	if err := g.checkOutput(c.Out, c.Force, "Replace it?", c.Backup); err != nil {
		return err
	}
	out := sink.NewBeside(c.Out)
	defer out.Abort()
	rep, err := mnesiaread.RenameBackup(c.Backup, out.Temp, renames)
	if err != nil {
		return err
	}
	if err := out.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "Wrote %s: %d tables, %d records, node %s renamed to %s.\n", c.Out, rep.Tables, rep.Records, c.From, c.To)
	fmt.Fprintf(g.stdout, "On a fresh %s: mnesia:install_fallback(%q), then restart Mnesia; or mnesia:restore(%q, [{default_op, recreate_tables}]).\n", c.To, c.Out, c.Out)
	return nil
}
