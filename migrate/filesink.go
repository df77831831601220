package migrate

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
)

// SQLFileSink writes a file psql loads in one transaction (psql -1 -f):
// COPY blocks in text format, which mean the same under any setting of
// standard_conforming_strings, then the sequences. It refuses to load into
// tables that hold rows, as the export into a database does.
type SQLFileSink struct {
	mu     sync.Mutex // tables are written from several goroutines
	w      *bufio.Writer
	tg     Target
	err    error
	header bool
	nextID map[string]int64
}

// NewSQLFileSink writes to w; description goes into the header comment.
func NewSQLFileSink(w io.Writer, tg Target, description string) *SQLFileSink {
	s := &SQLFileSink{w: bufio.NewWriterSize(w, 1<<20), tg: tg, nextID: map[string]int64{}}
	s.printf("-- %s\n-- Load with: psql -1 -v ON_ERROR_STOP=1 -f FILE (or psql -1 -f FILE)\n", description)
	s.printf("SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n")
	return s
}

func (s *SQLFileSink) printf(format string, args ...any) {
	if s.err == nil {
		_, s.err = fmt.Fprintf(s.w, format, args...)
	}
}

// Checkpoints implements Sink: a file starts over every time. The file
// first checks that the target tables are empty.
func (s *SQLFileSink) Checkpoints(context.Context, string) (map[string]Checkpoint, error) {
	var names []string
	for _, t := range s.tg.Tables() {
		for _, tt := range t.Targets {
			names = append(names, tt)
		}
	}
	names = dedup(names)
	s.printf("DO $mimmigrate$\nBEGIN\n")
	for _, n := range names {
		s.printf("  IF EXISTS (SELECT 1 FROM %s) THEN RAISE EXCEPTION 'mimmigrate: table %s is not empty: nothing loaded'; END IF;\n",
			pgx.Identifier{n}.Sanitize(), n)
	}
	s.printf("END\n$mimmigrate$;\n")
	return map[string]Checkpoint{}, s.err
}

// MamUsers implements Sink: the file loads into empty tables.
func (s *SQLFileSink) MamUsers(context.Context) (map[string]int32, error) { return nil, nil }

// NextID implements Sink: the file loads into empty tables.
func (s *SQLFileSink) NextID(context.Context, string, string) (int64, error) { return 1, nil }

// Write implements Sink.
func (s *SQLFileSink) Write(_ context.Context, c *Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tt := range c.Table.Targets {
		rows := c.Rows[tt]
		if len(rows) == 0 {
			continue
		}
		cols := s.tg.Columns(tt)
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

// Finish implements Sink.
func (s *SQLFileSink) Finish(context.Context) error {
	for _, q := range SequenceSQL(s.tg) {
		s.printf("%s\n", q)
	}
	if s.err == nil {
		s.err = s.w.Flush()
	}
	return s.err
}

// DrySink counts and writes nothing.
type DrySink struct{}

// Checkpoints implements Sink.
func (DrySink) Checkpoints(context.Context, string) (map[string]Checkpoint, error) {
	return map[string]Checkpoint{}, nil
}

// MamUsers implements Sink.
func (DrySink) MamUsers(context.Context) (map[string]int32, error) { return nil, nil }

// NextID implements Sink.
func (DrySink) NextID(context.Context, string, string) (int64, error) { return 1, nil }

// Write implements Sink.
func (DrySink) Write(context.Context, *Chunk) error { return nil }

// Finish implements Sink.
func (DrySink) Finish(context.Context) error { return nil }
