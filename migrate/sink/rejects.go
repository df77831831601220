package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/migrate"
)

// Rejects writes the records an export could not map as JSON lines
// (docs/export.md): {"table", "position", "reason", "key", "record"}, the
// terms as docs/term-json.md maps them. The file is created at the first
// reject. Resuming, it keeps the lines of the chunks an earlier run
// committed and drops the rest (they are rejected again).
type Rejects struct {
	Path string
	keep map[string]migrate.Checkpoint
	mu   sync.Mutex
	f    *os.File
	n    int64
	err  error
}

// NewRejects writes to path; keep are the checkpoints resumed from.
func NewRejects(path string, keep map[string]migrate.Checkpoint) *Rejects {
	if keep == nil {
		keep = map[string]migrate.Checkpoint{}
	}
	return &Rejects{Path: path, keep: keep}
}

func (r *Rejects) open() {
	var kept []byte
	if old, err := os.ReadFile(r.Path); err == nil {
		for _, line := range strings.SplitAfter(string(old), "\n") {
			var v struct {
				Table    string `json:"table"`
				Position int64  `json:"position"`
			}
			if json.Unmarshal([]byte(line), &v) == nil && v.Position <= r.keep[v.Table].Records {
				kept = append(kept, line...)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(r.Path), 0o755); err != nil {
		r.err = err
		return
	}
	r.f, r.err = os.Create(r.Path)
	if r.err == nil {
		_, r.err = r.f.Write(kept)
	}
}

// Add writes one reject (safe for concurrent use).
func (r *Rejects) Add(rj migrate.Reject) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil && r.err == nil {
		r.open()
	}
	r.n++
	if r.err != nil {
		return
	}
	line := []byte(`{"table":`)
	line = AppendJSONString(line, rj.Table)
	line = fmt.Appendf(line, `,"position":%d,"reason":`, rj.Position)
	line = AppendJSONString(line, rj.Reason)
	line = append(line, `,"key":`...)
	if rj.Key != nil {
		line = term.AppendJSON(line, rj.Key)
	} else {
		line = append(line, "null"...)
	}
	line = append(line, `,"record":`...)
	line = term.AppendJSON(line, rj.Record)
	line = append(line, "}\n"...)
	_, r.err = r.f.Write(line)
}

// Count is the number of rejects written by this run.
func (r *Rejects) Count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Close closes the file, reporting the first error met.
func (r *Rejects) Close() error {
	if r.f != nil {
		if err := r.f.Close(); err != nil && r.err == nil {
			r.err = err
		}
	}
	if r.err != nil {
		return fmt.Errorf("rejects file %s: %w", r.Path, r.err)
	}
	return nil
}

// AppendJSONString appends s as a JSON string, leaving <, > and & as they
// are (they are not HTML).
func AppendJSONString(dst []byte, s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return append(dst, bytes.TrimRight(b.Bytes(), "\n")...)
}
