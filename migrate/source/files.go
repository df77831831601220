package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/mimmigrate/mimmigrate/mnesiaread"
)

// Files reads a Mnesia directory, a backup or a text dump.
type Files struct {
	src     mnesiaread.Source
	path    string
	id      string
	workers int

	mu       sync.Mutex
	problems []mnesiaread.Problem
}

// OpenFiles opens a Mnesia directory, backup or dump for an export.
// workers is how many tables of a directory are read at once.
func OpenFiles(path string, opt mnesiaread.OpenOptions, workers int) (*Files, error) {
	src, err := mnesiaread.Open(path, opt)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	fs := &Files{src: src, path: abs, workers: max(1, workers)}
	fs.id = src.Kind() + ":" + abs + "#" + fingerprint(abs)
	return fs, nil
}

// fingerprint sums the names, sizes and times of a path's files: a
// checkpoint is resumed record by record only if none changed.
func fingerprint(path string) string {
	h := sha256.New()
	add := func(p string) {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			fmt.Fprintf(h, "%s %d %d\n", filepath.Base(p), st.Size(), st.ModTime().UnixNano())
		}
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		names, _ := filepath.Glob(filepath.Join(path, "*"))
		sort.Strings(names)
		for _, n := range names {
			add(n)
		}
	} else {
		add(path)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Source is the underlying reader.
func (fs *Files) Source() mnesiaread.Source { return fs.src }

// Identity implements migrate.Source.
func (fs *Files) Identity() string { return fs.id }

// Positional implements migrate.Source: files give their records in the same
// order every time.
func (fs *Files) Positional() bool { return true }

// Tables implements migrate.Source.
func (fs *Files) Tables() map[string]int64 {
	out := map[string]int64{}
	for _, t := range fs.src.Tables() {
		if t.HasData() {
			out[t.Name] = -1
		}
	}
	return out
}

// Problems lists what the readers met (damage, orphans, uncertain
// transactions).
func (fs *Files) Problems() []mnesiaread.Problem {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append(fs.src.Problems(), fs.problems...)
}

// Close closes the reader.
func (fs *Files) Close() error { return fs.src.Close() }

// Stream implements migrate.Source: a directory's tables are read several at
// once, a backup or dump in one pass.
func (fs *Files) Stream(ctx context.Context, tables []string, fn func(string, []byte) error) error {
	dir, ok := fs.src.(*mnesiaread.Dir)
	if !ok {
		return fs.src.Records(tables, func(t string, rec []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(t, rec)
		})
	}
	return eachTable(ctx, tables, fs.workers, func(ctx context.Context, t string) error {
		probs, err := dir.TableRecords(t, func(rec []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(t, rec)
		})
		fs.mu.Lock()
		fs.problems = append(fs.problems, probs...)
		fs.mu.Unlock()
		return err
	})
}
