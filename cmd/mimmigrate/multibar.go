package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// multiBar draws one progress line per table on a terminal: records read,
// records per second, and the ETA when the table's size is known.
type multiBar struct {
	w      io.Writer
	mu     sync.Mutex
	totals map[string]int64
	state  map[string]*barState
	drawn  int
	stop   chan struct{}
	wg     sync.WaitGroup
}

type barState struct {
	start time.Time
	done  int64
	last  time.Time
}

// newMultiBar returns nil (no bars) when stderr is not a terminal.
func newMultiBar(g *Globals) *multiBar {
	if !isTerminal(g.stderr) {
		return nil
	}
	b := &multiBar{w: g.stderr, totals: map[string]int64{}, state: map[string]*barState{}, stop: make(chan struct{})}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.draw()
			}
		}
	}()
	return b
}

// setTotal gives a table's record count, for the bar and the ETA.
func (b *multiBar) setTotal(table string, n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.totals[table] = n
	b.mu.Unlock()
}

func (b *multiBar) update(table string, records int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.state[table]
	if st == nil {
		st = &barState{start: time.Now()}
		b.state[table] = st
	}
	st.done, st.last = records, time.Now()
}

func (b *multiBar) draw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	names := make([]string, 0, len(b.state))
	for n := range b.state {
		names = append(names, n)
	}
	sort.Strings(names)
	var out strings.Builder
	if b.drawn > 0 {
		fmt.Fprintf(&out, "\x1b[%dA", b.drawn)
	}
	for _, n := range names {
		st := b.state[n]
		secs := max(time.Since(st.start).Seconds(), 0.001)
		rate := float64(st.done) / secs
		line := fmt.Sprintf("%-16s %10d records %8.0f/s", n, st.done, rate)
		if total := b.totals[n]; total > 0 {
			frac := min(float64(st.done)/float64(total), 1)
			filled := int(frac * 30)
			line = fmt.Sprintf("%-16s [%s%s] %5.1f%% %10d/%d %8.0f/s", n, strings.Repeat("=", filled), strings.Repeat(" ", 30-filled), frac*100, st.done, total, rate)
			if rate > 0 && st.done < total {
				line += fmt.Sprintf(" ETA %s", time.Duration(float64(total-st.done)/rate*float64(time.Second)).Round(time.Second))
			}
		}
		out.WriteString("\x1b[2K" + line + "\n")
	}
	b.drawn = len(names)
	io.WriteString(b.w, out.String())
}

func (b *multiBar) done() {
	if b == nil {
		return
	}
	close(b.stop)
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn > 0 {
		fmt.Fprintf(b.w, "\x1b[%dA\x1b[J", b.drawn)
	}
}
