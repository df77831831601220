package erldist

import (
	"context"
	"fmt"
	"sort"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Eval evaluates Erlang expressions (the text of erl_eval:exprs, ending
// in a dot or not) on the node with the given variable bindings, and
// returns the value of the last one. Nothing is loaded on the node: the
// node's own erl_scan, erl_parse and erl_eval do the work, in three
// calls, each bounded by ctx (the connection's call timeout without one).
func (c *Conn) Eval(ctx context.Context, src string, bindings map[string]term.Term) (term.Term, error) {
	if n := len(src); n == 0 || src[n-1] != '.' {
		src += "."
	}
	scanned, err := c.Call(ctx, "erl_scan", "string", term.Charlist(src))
	if err != nil {
		return nil, err
	}
	st, ok := scanned.(term.Tuple)
	if !ok || len(st) != 3 || !term.IsAtom(st[0], "ok") {
		return nil, fmt.Errorf("evaluating on %s: erl_scan: %s", c.peer, term.Format(scanned))
	}
	parsed, err := c.Call(ctx, "erl_parse", "parse_exprs", st[1])
	if err != nil {
		return nil, err
	}
	pt, ok := parsed.(term.Tuple)
	if !ok || len(pt) != 2 || !term.IsAtom(pt[0], "ok") {
		return nil, fmt.Errorf("evaluating on %s: erl_parse: %s", c.peer, term.Format(parsed))
	}
	// erl_eval's bindings: an orddict, sorted by name.
	names := make([]string, 0, len(bindings))
	for k := range bindings {
		names = append(names, k)
	}
	sort.Strings(names)
	bs := term.List{}
	for _, k := range names {
		bs = append(bs, term.Tuple{term.Atom(k), bindings[k]})
	}
	v, err := c.Call(ctx, "erl_eval", "exprs", pt[1], bs)
	if err != nil {
		return nil, err
	}
	vt, ok := v.(term.Tuple)
	if !ok || len(vt) != 3 || !term.IsAtom(vt[0], "value") {
		return nil, fmt.Errorf("evaluating on %s: %s", c.peer, term.Format(v))
	}
	return vt[1], nil
}
