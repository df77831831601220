package disklog

import (
	"bufio"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Writer writes a new log in the internal format. The header says "opened"
// while it is written and "closed" once Close succeeds, as disk_log does.
type Writer struct {
	f   *os.File
	w   *bufio.Writer
	err error
}

// Create creates path, which must not exist.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, w: bufio.NewWriterSize(f, 1<<20)}
	w.w.Write(logMagic)
	w.w.Write(stateOpened)
	return w, nil
}

// WriteItem appends one item; payload must be a complete term_to_binary.
func (w *Writer) WriteItem(payload []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(payload) > maxItem {
		return fmt.Errorf("item of %d bytes is too large for disk_log", len(payload))
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	binary.BigEndian.PutUint32(hdr[4:], bigMagic)
	w.w.Write(hdr[:])
	if len(payload) >= MinMD5Item {
		sum := md5.Sum(hdr[:4])
		w.w.Write(sum[:])
	}
	_, w.err = w.w.Write(payload)
	return w.err
}

// Close flushes, marks the log closed, syncs and closes the file.
func (w *Writer) Close() error {
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if w.err == nil {
		_, w.err = w.f.WriteAt(stateClosed, 4)
	}
	if w.err == nil {
		w.err = w.f.Sync()
	}
	if err := w.f.Close(); w.err == nil {
		w.err = err
	}
	return w.err
}

// Abort closes and removes the unfinished file.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

var _ io.Closer = (*Writer)(nil)
