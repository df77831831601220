package delta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
	"github.com/mimmigrate/mimmigrate/migrate/verify"
)

// repair makes the tables' rows what Mnesia holds, rewriting only the
// keys whose rows differ (found by row digests, as verify compares), then
// releases them. The tables are held meanwhile: their changes are applied
// after, and being idempotent they leave the rows as Mnesia's records.
func (s *Syncer) repair(ctx context.Context, tables []string) error {
	tables = s.expand(tables)
	s.app.Hold(tables...)
	for _, t := range tables {
		s.stats.SetState(t, "repairing", "")
	}
	// One pass makes every key that differed right as of its reading; the
	// changes held meanwhile are applied after. Rows no record accounts
	// for are deleted only when a second comparison finds them again: a
	// record the walk missed (it moved while being read) must not lose
	// its rows.
	strays := map[string]bool{}
	for pass, failures := 0, 0; pass < 2; {
		again, err := s.repairOnce(ctx, tables, strays)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err != nil {
			failures++
			s.cfg.Log.Warn("repair failed: retrying", "tables", tables, "error", err)
			if err := s.backOff(ctx, failures); err != nil {
				return err
			}
			continue
		}
		pass++
		if !again {
			break
		}
	}
	for _, t := range tables {
		if err := s.release(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// backOff waits before the next try of a step that failed (a second per
// failure so far, 10 s at most). Meanwhile the forwarders' notices are
// handled: a node that went away has its tables moved, and the next try
// reads them on the node they moved to.
func (s *Syncer) backOff(ctx context.Context, failures int) error {
	wait := time.After(min(time.Duration(failures)*time.Second, 10*time.Second))
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case fn := <-s.notices:
			if err := s.handleNotice(ctx, fn); err != nil {
				return err
			}
		case <-wait:
			return nil
		}
	}
}

// repairOnce compares and rewrites what differs. It reports whether
// another pass is needed: rows no record accounts for were seen for the
// first time (strays holds them for the next pass).
func (s *Syncer) repairOnce(ctx context.Context, tables []string, strays map[string]bool) (bool, error) {
	d, err := verify.Differences(ctx, s.src, s.cfg.Sink.DB.Pool, verify.Options{Schema: s.cfg.Schema, Scope: s.cfg.Scope, Tables: tables})
	if err != nil {
		return false, err
	}
	if d.Missing == 0 && d.Extra == 0 {
		return false, nil
	}
	s.cfg.Log.Info("repairing", "missing_rows", d.Missing, "extra_rows", d.Extra, "tables", tables)
	for table, keys := range d.Keys {
		if err := s.rewrite(ctx, table, keys); err != nil {
			return false, fmt.Errorf("repairing %s: %w", table, err)
		}
		for _, k := range keys {
			s.track.touch(table, k)
		}
	}
	seen := map[string]bool{}
	again := false
	for _, st := range d.Strays {
		q, args, ok := st.DeleteSQL()
		if !ok {
			continue
		}
		id := q + fmt.Sprint(args...)
		if !strays[id] {
			seen[id] = true
			again = true
			continue
		}
		if _, err := s.cfg.Sink.DB.Exec(ctx, q, args...); err != nil {
			return false, fmt.Errorf("deleting a row of %s no record accounts for: %w", st.Table, err)
		}
		s.stats.Repaired(s.ownerOf(st.Table, tables), 1)
		for _, t := range s.ownersOf(st.Table, tables) {
			s.track.whole(t)
		}
	}
	clear(strays)
	for id := range seen {
		strays[id] = true
	}
	return again, nil
}

// rewrite makes the keys' rows what Mnesia holds now, 500 keys per
// transaction, reading the keys' records 8 at a time.
func (s *Syncer) rewrite(ctx context.Context, table string, keys []term.Term) error {
	const perTx, readers = 500, 8
	for start := 0; start < len(keys); start += perTx {
		part := keys[start:min(start+perTx, len(keys))]
		recs := make([][]term.Term, len(part))
		errs := make([]error, len(part))
		var wg sync.WaitGroup
		sem := make(chan struct{}, readers)
		for i, k := range part {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				recs[i], errs[i] = s.readKey(ctx, table, k)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		units := make([][]schema.Op, 0, len(part))
		s.app.mmu.Lock()
		for i, k := range part {
			ops, err := s.mapping.rewriteOps(table, k, recs[i])
			var rj *Rejected
			if errors.As(err, &rj) {
				s.stats.rejected(table, 1)
			} else if err != nil {
				s.app.mmu.Unlock()
				return err
			}
			units = append(units, ops)
		}
		s.app.mmu.Unlock()
		if err := s.cfg.Sink.ApplyUnits(ctx, units); err != nil {
			return err
		}
		var rows int64
		for _, u := range units {
			for _, op := range u {
				if op.Kind == schema.Insert {
					rows++
				}
			}
		}
		s.stats.Repaired(table, rows)
	}
	return nil
}

// ownersOf are the Mnesia tables (of those repaired) that fill a SQL table.
func (s *Syncer) ownersOf(sqlTable string, tables []string) []string {
	var out []string
	for _, t := range s.plan.Tables {
		if slices.Contains(tables, t.Name) && slices.Contains(t.Targets, sqlTable) {
			out = append(out, t.Name)
		}
	}
	return out
}

// ownerOf is the Mnesia table (of those repaired) that fills a SQL table.
func (s *Syncer) ownerOf(sqlTable string, tables []string) string {
	if o := s.ownersOf(sqlTable, tables); len(o) > 0 {
		return o[0]
	}
	return sqlTable
}
