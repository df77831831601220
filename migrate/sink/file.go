package sink

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mimmigrate/mimmigrate/migrate"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// File writes a file psql loads in one transaction (psql -1 -f):
// COPY blocks in text format, which mean the same under any setting of
// standard_conforming_strings, then the sequences. It refuses to load into
// tables that hold rows, as the export into a database does.
type File struct {
	mu     sync.Mutex // tables are written from several goroutines
	w      *bufio.Writer
	sc     schema.Schema
	err    error
	header bool
}

// NewFile writes to w; description goes into the header comment.
func NewFile(w io.Writer, sc schema.Schema, description string) *File {
	s := &File{w: bufio.NewWriterSize(w, 1<<20), sc: sc}
	s.printf("-- %s\n-- Load with: psql -1 -v ON_ERROR_STOP=1 -f FILE (or psql -1 -f FILE)\n", description)
	s.printf("SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n")
	return s
}

func (s *File) printf(format string, args ...any) {
	if s.err == nil {
		_, s.err = fmt.Fprintf(s.w, format, args...)
	}
}

// Checkpoints implements migrate.Sink: a file starts over every time.
// The file first checks that the target tables are empty.
func (s *File) Checkpoints(context.Context, string) (map[string]migrate.Checkpoint, error) {
	names := targets(s.sc)
	s.printf("DO $mimmigrate$\nBEGIN\n")
	for _, n := range names {
		s.printf("  IF EXISTS (SELECT 1 FROM %s) THEN RAISE EXCEPTION 'mimmigrate: table %s is not empty: nothing loaded'; END IF;\n",
			pgx.Identifier{n}.Sanitize(), n)
	}
	s.printf("END\n$mimmigrate$;\n")
	return map[string]migrate.Checkpoint{}, s.err
}

// Query implements schema.Querier: the file loads into empty tables.
func (s *File) Query(context.Context, string, func([]any) error) error { return nil }

// Write implements migrate.Sink. A restart has nothing to undo: the file
// is written whole every time.
func (s *File) Write(_ context.Context, c *migrate.Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tt := range c.Table.Targets {
		rows := c.Rows[tt]
		if len(rows) == 0 {
			continue
		}
		cols := s.sc.Columns(tt)
		q := make([]string, len(cols))
		for i, col := range cols {
			q[i] = pgx.Identifier{col}.Sanitize()
		}
		s.printf("COPY %s (%s) FROM stdin;\n", pgx.Identifier{tt}.Sanitize(), strings.Join(q, ", "))
		var line []byte
		for _, r := range rows {
			line = line[:0]
			for i, v := range r {
				if i > 0 {
					line = append(line, '\t')
				}
				var err error
				if line, err = appendCopyValue(line, v); err != nil {
					return fmt.Errorf("%s: %w", tt, err)
				}
			}
			line = append(line, '\n')
			if s.err == nil {
				_, s.err = s.w.Write(line)
			}
		}
		s.printf("\\.\n")
	}
	return s.err
}

// appendCopyValue writes a value in COPY's text format.
func appendCopyValue(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, `\N`...), nil
	case string:
		return appendCopyText(dst, v), nil
	case []byte:
		dst = append(dst, `\\x`...)
		return hex.AppendEncode(dst, v), nil
	case bool:
		if v {
			return append(dst, 't'), nil
		}
		return append(dst, 'f'), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case time.Time:
		return v.UTC().AppendFormat(dst, "2006-01-02 15:04:05.999999"), nil
	}
	return dst, fmt.Errorf("no COPY form for %T", v)
}

func appendCopyText(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// Finish implements migrate.Sink.
func (s *File) Finish(context.Context) error {
	for _, q := range SequenceSQL(s.sc) {
		s.printf("%s\n", q)
	}
	if s.err == nil {
		s.err = s.w.Flush()
	}
	return s.err
}

// Dry counts and writes nothing.
type Dry struct{}

// Checkpoints implements migrate.Sink.
func (Dry) Checkpoints(context.Context, string) (map[string]migrate.Checkpoint, error) {
	return map[string]migrate.Checkpoint{}, nil
}

// Query implements schema.Querier.
func (Dry) Query(context.Context, string, func([]any) error) error { return nil }

// Write implements migrate.Sink.
func (Dry) Write(context.Context, *migrate.Chunk) error { return nil }

// Finish implements migrate.Sink.
func (Dry) Finish(context.Context) error { return nil }
