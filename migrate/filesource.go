package migrate

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

// FileSource reads a Mnesia directory, a backup or a text dump.
type FileSource struct {
	src     mnesiaread.Source
	path    string
	id      string
	workers int

	mu       sync.Mutex
	problems []mnesiaread.Problem
}

// OpenFiles opens a Mnesia directory, backup or dump for an export.
// workers is how many tables of a directory are read at once.
func OpenFiles(path string, opt mnesiaread.OpenOptions, workers int) (*FileSource, error) {
	src, err := mnesiaread.Open(path, opt)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	fs := &FileSource{src: src, path: abs, workers: max(1, workers)}
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
func (fs *FileSource) Source() mnesiaread.Source { return fs.src }

// Identity implements RecordSource.
func (fs *FileSource) Identity() string { return fs.id }

// Positional implements RecordSource: files give their records in the same
// order every time.
func (fs *FileSource) Positional() bool { return true }

// Tables implements RecordSource.
func (fs *FileSource) Tables() map[string]int64 {
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
func (fs *FileSource) Problems() []mnesiaread.Problem {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append(fs.src.Problems(), fs.problems...)
}

// Close closes the reader.
func (fs *FileSource) Close() error { return fs.src.Close() }

// Stream implements RecordSource: a directory's tables are read several at
// once, a backup or dump in one pass.
func (fs *FileSource) Stream(ctx context.Context, tables []string, fn func(string, []byte) error) error {
	dir, ok := fs.src.(*mnesiaread.Dir)
	if !ok {
		return fs.src.Records(tables, func(t string, rec []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(t, rec)
		})
	}
	jobs := make(chan string)
	errs := make(chan error, len(tables))
	var wg sync.WaitGroup
	for range min(fs.workers, len(tables)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range jobs {
				probs, err := dir.TableRecords(t, func(rec []byte) error {
					if err := ctx.Err(); err != nil {
						return err
					}
					return fn(t, rec)
				})
				fs.mu.Lock()
				fs.problems = append(fs.problems, probs...)
				fs.mu.Unlock()
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, t := range tables {
		jobs <- t
	}
	close(jobs)
	wg.Wait()
	close(errs)
	return <-errs
}
