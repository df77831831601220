package cetsnode

import (
	"context"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Routes maps domains to the nodes serving them (an external component's
// domain, a MUC service): {route, Domain, Node, Stamp}. A domain is
// registered by one node; two registrations made on both sides of a
// netsplit meet at the join, where the later one wins.
type Routes struct{ T *Table }

// NewRoutes creates the route table.
func NewRoutes(c *Cluster) *Routes {
	return &Routes{T: c.Table("route", TableOptions{
		KeyPos: 2,
		Owner:  func(r Record) term.Atom { a, _ := r[2].(term.Atom); return a },
	})}
}

// Register points domain at this node.
func (rt *Routes) Register(ctx context.Context, domain string) error {
	return rt.T.Insert(ctx, Record{term.Atom("route"), term.Binary(domain), rt.T.c.self})
}

// Lookup tells which node serves domain.
func (rt *Routes) Lookup(domain string) (term.Atom, bool) {
	r, ok := rt.T.Lookup(term.Binary(domain))
	if !ok || len(r) < 3 {
		return "", false
	}
	n, _ := r[2].(term.Atom)
	return n, true
}
