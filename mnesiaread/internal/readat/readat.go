// Package readat opens a file for the mnesiaread readers, which all work on
// an io.ReaderAt of a known size.
package readat

import (
	"fmt"
	"os"
)

// Open opens path read-only and hands it with its size to parse. The file is
// closed if parse fails; otherwise the caller owns it. Errors from parse are
// prefixed with the path.
func Open[T any](path string, parse func(f *os.File, size int64) (T, error)) (T, *os.File, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return zero, nil, err
	}
	v, err := parse(f, st.Size())
	if err != nil {
		f.Close()
		return zero, nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, f, nil
}
