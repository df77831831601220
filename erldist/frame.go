package erldist

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/mimmigrate/mimmigrate/erldist/term"
)

// MaxPacket bounds one distribution packet. Big RPC replies (a table's
// records) can be large, but a length beyond this is a broken stream.
const MaxPacket = 1 << 30

const passThrough = 'p'

// readPacket reads one 4-byte-framed packet. A tick is an empty packet (nil, nil).
// Above 16 MB, memory grows with the bytes that really arrive, not with the
// length claimed.
func readPacket(r *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, nil
	}
	if n > MaxPacket {
		return nil, fmt.Errorf("packet of %d bytes exceeds the %d limit", n, MaxPacket)
	}
	if n <= 16<<20 { // up to 16 MB taken at its word: a join's chunks
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, unexpected(err)
		}
		return buf, nil
	}
	var buf bytes.Buffer
	buf.Grow(16 << 20)
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		return nil, unexpected(err)
	}
	return buf.Bytes(), nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendPacket appends a framed pass-through packet: control term and, when
// msg is not nil, the message term.
func appendPacket(dst []byte, control, msg term.Term, opt term.EncodeOptions) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, passThrough)
	var err error
	if dst, err = term.Append(dst, control, opt); err != nil {
		return dst[:start], err
	}
	if msg != nil {
		if dst, err = term.Append(dst, msg, opt); err != nil {
			return dst[:start], err
		}
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst, nil
}

// splitPacket splits a pass-through packet into its control term and its
// message (nil when the control message has none).
func splitPacket(p []byte) (control term.Tuple, msg term.Term, err error) {
	if len(p) == 0 || p[0] != passThrough {
		if len(p) > 1 && p[0] == 131 && (p[1] == 68 || p[1] == 69 || p[1] == 70) {
			return nil, nil, fmt.Errorf("packet with a distribution header (atom cache or fragments were not negotiated)")
		}
		return nil, nil, fmt.Errorf("packet does not start with the pass-through byte")
	}
	ctl, n, err := term.DecodePrefix(p[1:])
	if err != nil {
		return nil, nil, fmt.Errorf("control message: %w", err)
	}
	tu, ok := ctl.(term.Tuple)
	if !ok || len(tu) == 0 {
		return nil, nil, fmt.Errorf("control message is not a tuple: %s", term.Format(ctl))
	}
	if _, ok := term.Int(tu[0]); !ok {
		return nil, nil, fmt.Errorf("control message has no operation: %s", term.Format(ctl))
	}
	rest := p[1+n:]
	if len(rest) == 0 {
		return tu, nil, nil
	}
	msg, err = term.Decode(rest)
	if err != nil {
		return nil, nil, fmt.Errorf("message: %w", err)
	}
	return tu, msg, nil
}
