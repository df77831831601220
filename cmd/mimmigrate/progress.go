package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress is a progress bar on stderr, shown only when stderr is a
// terminal. Sources report bytes per file (some files are read twice); the
// bar shows how far into each file the reading has got, summed. It shows
// no rate: a reader skips the free space of a DETS file, so offsets jump
// ahead of what was read (a rate of "97 GB/s" said nothing true).
type progress struct {
	bar   *progressbar.ProgressBar
	desc  string
	total int64
	files map[string]int64
	sum   int64
}

func newProgress(g *Globals, total int64, desc string) *progress {
	if total <= 0 || !isTerminal(g.stderr) {
		return &progress{}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(g.stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionClearOnFinish(),
	)
	return &progress{bar: bar, desc: desc, total: total, files: map[string]int64{}}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) update(file string, done, _ int64) {
	if p == nil || p.bar == nil || done <= p.files[file] {
		return
	}
	p.sum += done - p.files[file]
	p.files[file] = done
	p.bar.Describe(fmt.Sprintf("%s %s of %s", p.desc, compactBytes(min(p.sum, p.total)), compactBytes(p.total)))
	p.bar.Set64(min(p.sum, p.total))
}

func (p *progress) done() {
	if p != nil && p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}
