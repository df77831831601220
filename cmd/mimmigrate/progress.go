package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress is a progress bar on stderr, shown only when stderr is a
// terminal. Sources report bytes per file (some files are read twice); the
// bar shows how far into each file the reading has got, summed.
type progress struct {
	bar   *progressbar.ProgressBar
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
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
	return &progress{bar: bar, files: map[string]int64{}}
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
	p.bar.Set64(p.sum)
}

func (p *progress) done() {
	if p != nil && p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}
