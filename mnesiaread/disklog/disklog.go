// Package disklog reads and writes Erlang disk_log files in the "internal"
// format Mnesia uses: LATEST.LOG, PREVIOUS.LOG, DECISION_TAB.LOG, .DCD and
// .DCL table logs, and backups.
//
// Layout (kernel's disk_log_1 and disk_log.hrl): an 8-byte header, the magic
// 01 02 03 04 and a state word (opened, or closed once the log was closed
// properly), then items. An item is Size:32, a magic word and Size bytes of
// payload (a term_to_binary); items of 65528 bytes or more carry the MD5 of
// the size word after the magic. Very old logs use another magic and no MD5.
//
// The reader never writes. Like disk_log's read-only chunking it skips
// damage one byte at a time until items parse again, and it reports every
// skipped range and a truncated last item with their offsets.
package disklog

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/mnesiaread/internal/readat"
)

// Format constants.
var (
	logMagic    = []byte{1, 2, 3, 4}
	stateOpened = []byte{6, 7, 8, 9}
	stateClosed = []byte{0x63, 0x58, 0x4D, 0x0B}
)

const (
	headerSize = 8
	bigMagic   = 0x62574C41 // "bWLA"
	oldMagic   = 0x0C212C37
	// MinMD5Item is the payload size from which an item carries an MD5.
	MinMD5Item = 65528
	maxItem    = 1<<31 - 1
)

// State is the header's record of how the log was left.
type State int

// Header states.
const (
	Closed State = iota // closed properly
	Opened              // still open: the writer died or the node was killed
)

func (s State) String() string {
	if s == Opened {
		return "not closed"
	}
	return "closed"
}

// Damage is a range of the file that held no readable item.
type Damage struct {
	Offset int64
	Length int64
	Reason string
}

func (d Damage) String() string {
	return fmt.Sprintf("%d bytes at offset %d: %s", d.Length, d.Offset, d.Reason)
}

// ErrNotALog is returned for a file without the disk_log magic.
var ErrNotALog = errors.New("not a disk_log file")

// Reader reads the items of one log, in file order.
type Reader struct {
	f     io.ReaderAt
	size  int64
	State State

	buf    []byte // window of the file starting at bufOff
	bufOff int64
	pos    int64 // offset of the next item

	Damage   []Damage
	BadBytes int64
	Items    int64
	bad      *Damage // the damaged range being extended
	closer   io.Closer
}

// Open opens a log file read-only.
func Open(path string) (*Reader, error) {
	r, f, err := readat.Open(path, func(f *os.File, size int64) (*Reader, error) { return NewReader(f, size) })
	if err != nil {
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads a log of the given size from f.
func NewReader(f io.ReaderAt, size int64) (*Reader, error) {
	r := &Reader{f: f, size: size, pos: headerSize}
	var hdr [headerSize]byte
	if size < headerSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrNotALog, size)
	}
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, err
	}
	if !bytes.Equal(hdr[:4], logMagic) {
		return nil, ErrNotALog
	}
	switch {
	case bytes.Equal(hdr[4:], stateClosed):
		r.State = Closed
	case bytes.Equal(hdr[4:], stateOpened):
		r.State = Opened
	default:
		return nil, fmt.Errorf("%w: unknown state %x", ErrNotALog, hdr[4:])
	}
	return r, nil
}

// Close closes the file if the Reader opened it.
func (r *Reader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// Size is the file's size.
func (r *Reader) Size() int64 { return r.size }

// Offset is where the next item would start (for progress reports).
func (r *Reader) Offset() int64 { return r.pos }

const window = 1 << 20

// peek returns n bytes at the current position, or fewer at EOF.
func (r *Reader) peek(n int64) ([]byte, error) {
	start := r.pos - r.bufOff
	if r.pos >= r.bufOff && start+n <= int64(len(r.buf)) {
		return r.buf[start : start+n], nil
	}
	want := n
	if want < window {
		want = window
	}
	if r.pos+want > r.size {
		want = r.size - r.pos
	}
	if want < 0 {
		want = 0
	}
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	got, err := r.f.ReadAt(r.buf, r.pos)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	r.buf, r.bufOff = r.buf[:got], r.pos
	if int64(got) < n {
		return r.buf, nil
	}
	return r.buf[:n], nil
}

// Next returns the next item's payload (valid until the next call) and its
// offset. It returns io.EOF after the last item.
func (r *Reader) Next() (item []byte, offset int64, err error) {
	for {
		if r.pos+8 > r.size {
			if r.pos < r.size {
				r.markBad(r.size-r.pos, "truncated item at the end of the file")
			}
			r.endBad()
			r.pos = r.size
			return nil, 0, io.EOF
		}
		hdr, err := r.peek(8)
		if err != nil {
			return nil, 0, err
		}
		size := int64(binary.BigEndian.Uint32(hdr))
		magic := binary.BigEndian.Uint32(hdr[4:])
		skip := int64(8)
		switch {
		case magic == bigMagic && size >= MinMD5Item:
			skip += md5.Size
		case magic == bigMagic, magic == oldMagic:
		default:
			r.markBad(1, "no item header")
			r.pos++
			continue
		}
		if r.pos+skip+size > r.size {
			// Usually the last write, cut short; but resynchronise anyway
			// in case later items are intact.
			r.markBad(1, fmt.Sprintf("item of %d bytes runs past the end of the file (truncated)", size))
			r.pos++
			continue
		}
		full, err := r.peek(skip + size)
		if err != nil {
			return nil, 0, err
		}
		if skip > 8 {
			sum := md5.Sum(full[:4])
			if !bytes.Equal(full[8:8+md5.Size], sum[:]) {
				r.markBad(1, "item size does not match its MD5")
				r.pos++
				continue
			}
		}
		payload := full[skip:]
		if n, err := term.Len(payload); err != nil || int64(n) != size {
			r.markBad(1, "item is not a complete term")
			r.pos++
			continue
		}
		r.endBad()
		offset = r.pos
		r.pos += skip + size
		r.Items++
		return payload, offset, nil
	}
}

func (r *Reader) markBad(n int64, reason string) {
	r.BadBytes += n
	if r.bad != nil && r.bad.Offset+r.bad.Length == r.pos {
		r.bad.Length += n
		return
	}
	r.endBad()
	r.bad = &Damage{Offset: r.pos, Length: n, Reason: reason}
}

func (r *Reader) endBad() {
	if r.bad != nil {
		r.Damage = append(r.Damage, *r.bad)
		r.bad = nil
	}
}
