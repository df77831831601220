// Package source opens what an export reads: a running node (node:NAME),
// a Mnesia directory (dir:PATH), a backup (backup:FILE) or a text dump
// (dump:FILE), as a stream of tables and their records.
package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/mnesiaread"
)

// Source is an open source: close it when done.
type Source interface {
	migrate.Source
	Close() error
}

// Error is a source spec or path that cannot be used: bad input. Its
// message starts with the spec (or its path), so that a caller can say
// where the spec came from before it.
type Error struct{ Msg, Hint string }

func (e *Error) Error() string { return e.Msg }

// Options configure Open.
type Options struct {
	// Client makes the distribution client for node: sources.
	Client func() (*erldist.Client, error)
	// Workers is how many tables are read at once.
	Workers int
	// Timeout bounds each call to a node and the wait for each chunk.
	Timeout time.Duration
	// IncludeUncertain: files: apply transactions whose outcome this node
	// never learnt.
	IncludeUncertain bool
}

// Kinds are the spec prefixes Open takes.
const Kinds = "node:NAME, dir:PATH, backup:FILE or dump:FILE"

// Open opens a source spec.
func Open(ctx context.Context, spec string, opt Options) (Source, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok || arg == "" {
		return nil, &Error{Msg: fmt.Sprintf("%q: want %s", spec, Kinds)}
	}
	switch kind {
	case "node":
		if _, _, err := erldist.SplitNode(arg); err != nil {
			return nil, &Error{Msg: fmt.Sprintf("node:%s: %q is not a node name", arg, arg),
				Hint: "a node name looks like ejabberd@host; `epmd -names` on the host lists the names"}
		}
		cl, err := opt.Client()
		if err != nil {
			return nil, err
		}
		return OpenNode(ctx, cl, arg, opt.Workers, opt.Timeout)
	case "dir", "backup", "dump":
		st, err := os.Stat(arg)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, &Error{Msg: arg + ": no such file or directory"}
			}
			return nil, &Error{Msg: err.Error()}
		}
		if (kind == "dir") != st.IsDir() {
			what := "is not a directory"
			if st.IsDir() {
				what = "is a directory"
			}
			return nil, &Error{Msg: fmt.Sprintf("%s:%s: %s", kind, arg, what)}
		}
		fsrc, err := OpenFiles(arg, mnesiaread.OpenOptions{IncludeUncertain: opt.IncludeUncertain}, opt.Workers)
		if err != nil {
			return nil, &Error{Msg: err.Error(), Hint: "dir: is a Mnesia directory (e.g. /var/lib/ejabberd), backup: a Mnesia backup, dump: an ejabberdctl dump"}
		}
		got := fsrc.Source().Kind()
		want := map[string]string{"dir": "directory", "backup": "backup", "dump": "dump"}[kind]
		if got != want {
			fsrc.Close()
			return nil, &Error{Msg: fmt.Sprintf("%s:%s is a %s, not a %s", kind, arg, got, want)}
		}
		return fsrc, nil
	}
	return nil, &Error{Msg: fmt.Sprintf("%q: unknown kind %q", spec, kind), Hint: Kinds}
}
