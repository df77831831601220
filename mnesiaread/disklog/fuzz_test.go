package disklog_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/mnesiaread/disklog"
)

// FuzzDiskLog: any file is either refused or read to the end without a
// panic or a hang, items come in increasing offsets, and the damage report
// names offsets inside the file. Seeds: logs our writer makes (their format
// is checked against Erlang in TestWriterReadByErlang), small and with an
// item big enough for the MD5 variant.
func FuzzDiskLog(f *testing.F) {
	dir := f.TempDir()
	for i, items := range [][][]byte{
		{mustEncode(f, term.Tuple{term.Atom("log_header"), term.Atom("dcl_log"), term.Charlist("1.0"), term.Charlist("4.21.3"), term.Atom("n@h"), term.Tuple{int64(1), int64(2), int64(3)}}),
			mustEncode(f, term.Tuple{term.Atom("user"), int64(1), term.Binary("alice")})},
		{mustEncode(f, term.Tuple{term.Atom("big"), term.Binary(bytes.Repeat([]byte("x"), 70000))}), mustEncode(f, term.Atom("after"))},
	} {
		p := filepath.Join(dir, "seed"+string(rune('a'+i)))
		w, err := disklog.Create(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, it := range items {
			w.WriteItem(it)
		}
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := disklog.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		last := int64(-1)
		for {
			_, off, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return
			}
			if off <= last || off >= int64(len(b)) {
				t.Fatalf("item at %d after %d in %d bytes", off, last, len(b))
			}
			last = off
		}
		for _, d := range r.Damage {
			if d.Offset < 0 || d.Offset > int64(len(b)) {
				t.Fatalf("damage at %d in %d bytes", d.Offset, len(b))
			}
		}
	})
}

func mustEncode(f *testing.F, t term.Term) []byte {
	b, err := term.Encode(t)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
