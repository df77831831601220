package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/mnesia"
)

// SetCopyCmd adds, changes or drops one table copy.
type SetCopyCmd struct {
	Node      string        `required:"" help:"A running node of the cluster; the change runs there." placeholder:"NODE"`
	Table     string        `required:"" help:"The table." placeholder:"TABLE"`
	On        string        `required:"" help:"The node whose copy changes." placeholder:"NODE"`
	Type      string        `required:"" enum:"ram_copies,disc_copies,disc_only_copies,none" help:"The copy type wanted: ram_copies, disc_copies, disc_only_copies, or none to drop the copy."`
	Force     bool          `short:"f" help:"Do not ask for confirmation."`
	DryRun    bool          `name:"dry-run" help:"Show what would change, change nothing."`
	OpTimeout time.Duration `name:"op-timeout" default:"30m" help:"Deadline for the change itself (adding a copy of a big table copies all of it)."`
}

// Run checks, asks, changes and verifies.
func (c *SetCopyCmd) Run(g *Globals) error {
	if err := checkNode("--on", c.On); err != nil {
		return err
	}
	snap, sess, err := g.attach(c.Node, mnesia.DefaultParams())
	if err != nil {
		return err
	}
	defer sess.Close()
	ch := mnesia.PlanCopyChange(snap, c.Table, c.On, mnesia.CopyType(c.Type))
	if ch.Refusal != nil {
		return refused(fmt.Sprintf("refusing to set %s on %s to %s: %s", c.Table, c.On, c.Type, ch.Refusal.Reason), ch.Refusal)
	}
	w := g.stdout
	if ch.NoOp {
		fmt.Fprintf(w, "%s already has %s on %s: nothing to do.\n", c.Table, c.Type, c.On)
		return nil
	}
	fmt.Fprintf(w, "%s on %s: %s -> %s\n", c.Table, c.On, ch.From, ch.To)
	fmt.Fprintf(w, "runs on %s: %s\n", c.Node, ch.Call)
	for _, warn := range ch.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if ok, err := g.proceed(c.DryRun, c.Force, "Do you want to continue?"); !ok {
		return err
	}
	ctx, cancel := context.WithTimeout(g.ctx, c.OpTimeout)
	defer cancel()
	if err := sess.ApplyCopyChange(ctx, ch); err != nil {
		return err
	}
	fmt.Fprintf(w, "Done: %s on %s is now %s.\n", c.Table, c.On, c.Type)
	return nil
}
