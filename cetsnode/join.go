package cetsnode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// Join merges this node's segment of every table with node's: the
// protocol of cets_join (pause both segments, dump, merge, install under a
// new join reference, resume). Joins are serialized by the JoinLocker.
func (c *Cluster) Join(ctx context.Context, node string) error {
	peer := term.Atom(node)
	if peer == c.self {
		return errors.New("a node cannot join itself")
	}
	if c.left.Load() {
		return ErrLeft
	}
	if err := c.t.Connect(ctx, peer); err != nil {
		return err
	}
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	if c.opt.JoinLock != nil {
		unlock, err := c.opt.JoinLock.JoinLock(ctx)
		if err != nil {
			return fmt.Errorf("taking the cluster's join lock: %w", err)
		}
		defer unlock()
	}
	joined := 0
	for _, t := range c.Tables() {
		err := c.joinTable(ctx, t, peer)
		switch {
		case errors.Is(err, ErrAlreadyJoined):
			joined++
		case err != nil:
			return fmt.Errorf("table %s: %w", t.name, err)
		}
	}
	if joined == len(c.Tables()) && joined > 0 {
		return ErrAlreadyJoined
	}
	return nil
}

// Joined reports whether node is in this node's segment of every table.
func (c *Cluster) Joined(node string) bool {
	tables := c.Tables()
	for _, t := range tables {
		if !slices.Contains(t.Nodes(), term.Atom(node)) {
			return false
		}
	}
	return len(tables) > 0
}

func (c *Cluster) info(ctx context.Context, node term.Atom, t *Table) (infoReply, error) {
	res, err := c.call(ctx, node, infoReq{Table: t.name})
	if err != nil {
		return infoReply{}, err
	}
	return decodeInfoReply(res)
}

func (c *Cluster) joinTable(ctx context.Context, t *Table, peer term.Atom) error {
	start := time.Now()
	// A member that no longer counts us in its segment (it dropped us while
	// we were frozen or cut off, and we missed its going) is stale: drop it
	// here, with the records it owned (the join brings back its current
	// ones), so that the join can take both back.
	for _, m := range t.Nodes() {
		info, err := c.info(ctx, m, t)
		if err != nil {
			continue
		}
		if !slices.Contains(info.Nodes, c.self) {
			c.log.Warn("a member no longer counts us in its segment: dropping it", "table", t.name, "member", m)
			done := make(chan struct{})
			t.post(func() { t.down(m); close(done) })
			<-done
		}
	}
	ours := append([]term.Atom{c.self}, t.Nodes()...)
	if slices.Contains(ours, peer) {
		return ErrAlreadyJoined
	}
	info, err := c.info(ctx, peer, t)
	if err != nil {
		return err
	}
	theirs := info.Nodes
	for _, a := range theirs {
		if slices.Contains(ours, a) {
			return fmt.Errorf("the segments overlap on %s: a partial join is in the way (it clears when the nodes drop each other)", a)
		}
	}
	all := append(append([]term.Atom{}, ours...), theirs...)
	// Every node must reach every node of the other segment.
	for _, n := range all {
		other := ours // a node of their segment reaches ours
		if slices.Contains(ours, n) {
			other = theirs
		}
		res, err := c.call(ctx, n, connectReq{Nodes: other})
		if err != nil {
			return err
		}
		if !term.IsAtom(res, "ok") {
			return fmt.Errorf("%s cannot reach %s", n, term.Format(res))
		}
	}
	pauseRef := newRef()
	var pausedOn []term.Atom
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, n := range pausedOn {
			if _, err := c.call(uctx, n, unpauseReq{Table: t.name, PauseRef: pauseRef}); err != nil {
				c.log.Warn("unpause failed (its pause ends when we go down or it loses us)", "node", n, "err", err)
			}
		}
	}()
	for _, n := range all {
		res, err := c.call(ctx, n, pauseReq{Table: t.name, PauseRef: pauseRef})
		if err != nil {
			return err
		}
		if !term.IsAtom(res, "ok") {
			return fmt.Errorf("%s refused to pause: %s", n, term.Format(res))
		}
		pausedOn = append(pausedOn, n)
	}
	// Each side streams its records, in chunks, to every node of the other
	// side, which merges them in with the table's conflict handler
	// (deterministic, so both sides agree); then the new join reference.
	moved := 0
	for _, pair := range [][2][]term.Atom{{{c.self}, theirs}, {{peer}, ours}} {
		n, err := c.stream(ctx, t, pauseRef, pair[0][0], pair[1])
		if err != nil {
			return err
		}
		moved += n
	}
	joinRef := newRef()
	for _, n := range all {
		res, err := c.call(ctx, n, installReq{Table: t.name, PauseRef: pauseRef, JoinRef: joinRef, Nodes: all})
		if err != nil {
			return err
		}
		if !term.IsAtom(res, "ok") {
			return fmt.Errorf("%s refused the join: %s", n, term.Format(res))
		}
	}
	c.log.Info("joined", "table", t.name, "with", peer, "nodes", len(all), "records_moved", moved, "ms", time.Since(start).Milliseconds())
	return nil
}

// stream moves one side's records to every node of the other side, chunk
// by chunk, the next chunk on its way while one is merged.
func (c *Cluster) stream(ctx context.Context, t *Table, pauseRef string, from term.Atom, to []term.Atom) (int, error) {
	type chunk struct {
		rep dumpReply
		err error
	}
	fetch := func(i int) chan chunk {
		ch := make(chan chunk, 1)
		go func() {
			res, err := c.call(ctx, from, dumpReq{Table: t.name, PauseRef: pauseRef, Chunk: int64(i)})
			if err != nil {
				ch <- chunk{err: err}
				return
			}
			rep, err := decodeDumpReply(res)
			if err != nil {
				err = fmt.Errorf("%s's dump: %w", from, err)
			}
			ch <- chunk{rep, err}
		}()
		return ch
	}
	moved := 0
	next := fetch(0)
	for i := 0; ; i++ {
		got := <-next
		if got.err != nil {
			return moved, got.err
		}
		if got.rep.More {
			next = fetch(i + 1)
		}
		moved += len(got.rep.Items)
		for _, n := range to {
			res, err := c.call(ctx, n, installChunkReq{Table: t.name, PauseRef: pauseRef, Items: got.rep.Items, Total: got.rep.Total})
			if err != nil {
				return moved, err
			}
			if !term.IsAtom(res, "ok") {
				return moved, fmt.Errorf("%s refused records: %s", n, term.Format(res))
			}
		}
		if !got.rep.More {
			return moved, nil
		}
	}
}

// Leave stops replicating: every table drops its peers (and they drop
// us), and the node refuses joins until it is started again.
func (c *Cluster) Leave() (members int) {
	for _, t := range c.Tables() {
		members += len(t.Nodes())
	}
	c.left.Store(true)
	for _, t := range c.Tables() {
		done := make(chan struct{})
		t.post(func() {
			for m := range t.members {
				c.send(m, checkFailedMsg{Table: t.name})
			}
			t.members = map[term.Atom]bool{}
			t.joinRef = newRef() // late writes of the old segment are dropped
			t.publish()
			close(done)
		})
		<-done
	}
	return members
}

// HasLeft reports whether the node left the cluster.
func (c *Cluster) HasLeft() bool { return c.left.Load() }

// DropNode makes every node of our segments drop a dead node and the
// records it owned.
func (c *Cluster) DropNode(ctx context.Context, node term.Atom) {
	targets := map[term.Atom]bool{c.self: true}
	for _, t := range c.Tables() {
		for _, m := range t.Nodes() {
			targets[m] = true
		}
	}
	for n := range targets {
		if _, err := c.call(ctx, n, removeNodeReq{Node: node}); err != nil {
			c.log.Warn("remove: a node did not confirm", "node", n, "err", err)
		}
	}
}
