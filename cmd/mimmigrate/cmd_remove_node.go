package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
)

// RemoveNodeCmd removes a dead node from the Mnesia cluster, as
// `ejabberdctl remove_node` and `mongooseimctl remove_from_cluster` do.
type RemoveNodeCmd struct {
	Node      string        `required:"" help:"A running node of the cluster; the removal runs there." placeholder:"NODE"`
	Target    string        `arg:"" help:"The dead node to remove." placeholder:"TARGET"`
	Force     bool          `short:"f" help:"Do not ask for confirmation."`
	DryRun    bool          `name:"dry-run" help:"Show what would change, change nothing."`
	OpTimeout time.Duration `name:"op-timeout" default:"5m" help:"Deadline for the removal itself."`
}

// Run checks, asks, removes and verifies.
func (c *RemoveNodeCmd) Run(g *Globals) error {
	if err := checkNode("TARGET", c.Target); err != nil {
		return err
	}
	snap, sess, err := g.attach(c.Node, mnesia.DefaultParams())
	if err != nil {
		return err
	}
	defer sess.Close()
	r := mnesia.PlanRemoval(snap, c.Target)
	if r.Refusal != nil {
		hint := r.Refusal.Hint
		if r.Remove == r.On {
			hint += ": --node <other node>"
		}
		return refused("refusing to remove "+c.Target+": "+r.Refusal.Reason, &mnesia.Refusal{Reason: r.Refusal.Reason, Hint: hint, BadInput: r.Refusal.BadInput})
	}
	w := g.stdout
	fmt.Fprintf(w, "Removing %s from the Mnesia cluster (the removal runs on %s).\n", c.Target, c.Node)
	if len(r.Losing) == 0 {
		fmt.Fprintf(w, "%s holds no table copies.\n", c.Target)
	} else {
		fmt.Fprintf(w, "These tables lose their copy on %s:\n", c.Target)
		cols := newColumns(w)
		cols.row("TABLE", "COPY", "STILL ON")
		for _, l := range r.Losing {
			cols.row(l.Table, l.Type.Short(), strings.Join(l.Remaining, ", "))
		}
		cols.flush()
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if !c.Force && !c.DryRun {
		fmt.Fprintf(w, "Warning. This removes %s from the cluster for good: the other nodes forget it and its copies.\n", c.Target)
	}
	if ok, err := g.proceed(c.DryRun, c.Force, "Do you want to continue?"); !ok {
		return err
	}
	ctx, cancel := context.WithTimeout(g.ctx, c.OpTimeout)
	defer cancel()
	nodes, err := sess.Remove(ctx, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "The node %s has been removed from the cluster. db nodes now: %s\n", c.Target, strings.Join(nodes, ", "))
	return nil
}
