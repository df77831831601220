package mnesiaread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mimmigrate/mimmigrate/mnesiaread/dets"
	"github.com/mimmigrate/mimmigrate/mnesiaread/disklog"
)

// FormatError is input that is not Mnesia data of the kind expected (an
// empty file, a file of another format, a directory without a schema).
type FormatError struct {
	Msg string
	Err error
}

func (e *FormatError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *FormatError) Unwrap() error { return e.Err }

// IsFormatError reports whether err says the input is not Mnesia data
// of the kind expected.
func IsFormatError(err error) bool {
	var fe *FormatError
	return errors.As(err, &fe) || errors.Is(err, disklog.ErrNotALog)
}

func formatError(format string, args ...any) error {
	return &FormatError{Msg: fmt.Sprintf(format, args...)}
}

// OpenOptions configure Open.
type OpenOptions struct {
	// Node, IncludeUncertain: see DirOptions.
	Node             string
	IncludeUncertain bool
	// UTF8: see DumpOptions.
	UTF8 bool
	// Progress, when set, is told the bytes read so far of each file.
	Progress func(file string, done, total int64)
}

// Open opens path as what it is: a Mnesia directory, a backup (a disk_log
// that starts with a backup header), a text dump, or a single DETS file.
func Open(path string, opt OpenOptions) (Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return OpenDir(path, DirOptions{Node: opt.Node, IncludeUncertain: opt.IncludeUncertain, Progress: opt.Progress})
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, 64)
	n, err := io.ReadFull(f, head)
	f.Close()
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	head = head[:n]
	switch {
	case n == 0:
		return nil, formatError("%s is empty", path)
	case bytes.HasPrefix(head, []byte{1, 2, 3, 4}):
		b, err := OpenBackup(path)
		if err != nil {
			return nil, err
		}
		b.progress = opt.Progress
		return b, nil
	case isDETS(head):
		return OpenDETS(path, opt.Progress)
	case looksLikeText(head):
		d, err := OpenDump(path, DumpOptions{UTF8: opt.UTF8})
		if err != nil {
			return nil, err
		}
		d.progress = opt.Progress
		return d, nil
	}
	return nil, formatError("%s is neither a Mnesia directory, a backup, a text dump nor a DETS file", path)
}

// isDETS checks a DETS header's magic word.
func isDETS(head []byte) bool {
	return len(head) >= 8 && bytes.Equal(head[4:8], []byte{0x00, 0xAB, 0xCD, 0xEF})
}

func looksLikeText(head []byte) bool {
	for _, c := range head {
		if c < 9 || (c > 13 && c < 32) {
			return false
		}
	}
	return true
}

// DETSFile is one DETS file read on its own, for when a directory's schema
// is lost: the table is named after the file, and records come as stored.
type DETSFile struct {
	path     string
	table    Table
	progress func(file string, done, total int64)
	problems []Problem
}

// OpenDETS opens a single DETS file as a source.
func OpenDETS(path string, progress func(file string, done, total int64)) (*DETSFile, error) {
	f, err := dets.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	t := Table{Name: name, RecordName: name, Type: f.Header.Type.String(), Storage: StorageDiscOnly, Copies: map[string][]string{}}
	return &DETSFile{path: path, table: t, progress: progress}, nil
}

// Kind implements Source.
func (d *DETSFile) Kind() string { return "dets" }

// Node implements Source: a DETS file does not name its node.
func (d *DETSFile) Node() string { return "" }

// Tables implements Source.
func (d *DETSFile) Tables() []Table { return []Table{d.table} }

// Problems implements Source.
func (d *DETSFile) Problems() []Problem { return d.problems }

// Close implements Source.
func (d *DETSFile) Close() error { return nil }

// Records implements Source.
func (d *DETSFile) Records(sel []string, fn func(table string, rec []byte) error) error {
	if !wanted(sel, d.table.Name) {
		return nil
	}
	f, err := dets.Open(d.path)
	if err != nil {
		return err
	}
	defer f.Close()
	var progress func(int64)
	if d.progress != nil {
		name := baseName(d.path)
		progress = func(done int64) { d.progress(name, done, f.Size()) }
	}
	rep, err := f.Objects(func(obj []byte) error { return fn(d.table.Name, obj) }, progress)
	dir := &Dir{}
	dir.detsProblems(baseName(d.path), d.table.Name, f, rep)
	d.problems = dir.problems
	return err
}
