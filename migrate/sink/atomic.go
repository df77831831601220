package sink

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Beside is a file written under a name beside its final one and renamed
// into place only when complete: an interrupted write never leaves a
// partial file under the name, and never harms the file it replaces.
type Beside struct {
	Temp, Final string
	f           *os.File
	done        bool
}

// NewBeside reserves the name to write path under (a leftover of an
// earlier interrupted run of this process id is removed).
func NewBeside(path string) *Beside {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".mimmigrate-"+fmt.Sprint(os.Getpid()))
	os.Remove(tmp)
	return &Beside{Temp: tmp, Final: path}
}

// Create creates the file under its temporary name.
func (b *Beside) Create() (*os.File, error) {
	f, err := os.OpenFile(b.Temp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	b.f = f
	return f, err
}

// Commit closes the file (if Create opened it) and renames it into place.
func (b *Beside) Commit() error {
	if b.done {
		return nil
	}
	b.done = true
	if b.f != nil {
		if err := b.f.Close(); err != nil {
			os.Remove(b.Temp)
			return err
		}
	}
	if err := os.Rename(b.Temp, b.Final); err != nil {
		os.Remove(b.Temp)
		return err
	}
	return nil
}

// Abort drops what was written (after a Commit it does nothing).
func (b *Beside) Abort() {
	if b.done {
		return
	}
	b.done = true
	if b.f != nil {
		b.f.Close()
	}
	os.Remove(b.Temp)
}

// OutputError is an output path that cannot be used as asked.
type OutputError struct {
	Msg, Hint string
	// Exists: the file is there already (replace it only when asked).
	Exists bool
	// Inside: the output is (inside) one of the inputs.
	Inside bool
}

func (e *OutputError) Error() string { return e.Msg }

// CheckOutput says whether path can be written: never one of the inputs
// or inside one; its directory must exist; an existing file is reported
// with Exists (the caller asks before replacing it).
func CheckOutput(path string, inputs ...string) error {
	abs, _ := filepath.Abs(path)
	for _, in := range inputs {
		inAbs, _ := filepath.Abs(in)
		if abs == inAbs || strings.HasPrefix(abs, inAbs+string(filepath.Separator)) {
			return &OutputError{Msg: "refusing to write " + path + ": it is (inside) the input", Hint: "write it somewhere else", Inside: true}
		}
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return &OutputError{Msg: path + " is a directory", Hint: "give a file name"}
	case err == nil:
		return &OutputError{Msg: path + " exists", Exists: true}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return &OutputError{Msg: "cannot write " + path + ": no directory " + dir}
	}
	return nil
}
