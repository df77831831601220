package term

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// DecodeError describes input that is not a valid external term.
type DecodeError struct {
	Offset int // byte offset in the buffer given to the decoder
	Msg    string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("bad external term at byte %d: %s", e.Offset, e.Msg)
}

// walker checks the structure of an encoded term: every length against the
// bytes that remain, every tag against the format, nesting against MaxDepth.
// With out set it also copies the term to out, rewriting maps and local funs
// into marker tuples that erlang_go decodes correctly (see decode.go).
type walker struct {
	b       []byte
	base    int     // offset of b[0] in the caller's buffer, for error messages
	out     *[]byte // transcoding target, or nil
	special bool    // the term holds a map or a local fun
	// canon: transcode into the canonical form (see Canonical) instead of
	// the form erlang_go needs.
	canon bool
}

func (w *walker) fail(pos int, format string, args ...any) error {
	return &DecodeError{Offset: w.base + pos, Msg: fmt.Sprintf(format, args...)}
}

// need checks that n bytes are available at pos.
func (w *walker) need(pos, n int) error {
	if n < 0 || pos+n > len(w.b) || pos+n < pos {
		return w.fail(pos, "truncated: need %d bytes, have %d", n, len(w.b)-pos)
	}
	return nil
}

func (w *walker) copyRange(from, to int) {
	if w.out != nil {
		*w.out = append(*w.out, w.b[from:to]...)
	}
}

func (w *walker) u16(pos int) int { return int(binary.BigEndian.Uint16(w.b[pos:])) }
func (w *walker) u32(pos int) int { return int(binary.BigEndian.Uint32(w.b[pos:])) }

// atom checks an atom (any of the four atom tags) at pos and returns the position after it.
func (w *walker) atom(pos int) (int, error) {
	if err := w.need(pos, 1); err != nil {
		return 0, err
	}
	var n, hdr int
	switch w.b[pos] {
	case tagAtom, tagAtomUTF8:
		if err := w.need(pos+1, 2); err != nil {
			return 0, err
		}
		n, hdr = w.u16(pos+1), 3
	case tagSmallAtom, tagSmallAtomUTF8:
		if err := w.need(pos+1, 1); err != nil {
			return 0, err
		}
		n, hdr = int(w.b[pos+1]), 2
	case tagAtomCacheRef:
		return 0, w.fail(pos, "atom cache reference outside a distribution header")
	default:
		return 0, w.fail(pos, "expected an atom, found tag %d", w.b[pos])
	}
	if err := w.need(pos+hdr, n); err != nil {
		return 0, err
	}
	// Erlang refuses atoms over 255 characters and UTF-8 atoms that are not UTF-8.
	text := w.b[pos+hdr : pos+hdr+n]
	if w.b[pos] == tagAtom || w.b[pos] == tagSmallAtom {
		if n > 255 {
			return 0, w.fail(pos, "atom of %d characters", n)
		}
	} else if !utf8.Valid(text) {
		return 0, w.fail(pos, "UTF-8 atom is not valid UTF-8")
	} else if c := utf8.RuneCount(text); c > 255 {
		return 0, w.fail(pos, "atom of %d characters", c)
	}
	return pos + hdr + n, nil
}

// fixed checks a run of fields at pos: an atom followed by n raw bytes.
func (w *walker) atomThen(pos, n int) (int, error) {
	end, err := w.atom(pos)
	if err != nil {
		return 0, err
	}
	if err := w.need(end, n); err != nil {
		return 0, err
	}
	return end + n, nil
}

// identifier checks a pid, port or reference: header bytes from start to
// atomPos, the node atom, then n fixed bytes. erlang_go computes the size of a
// small node atom as 1+Len in a uint8, so a 255-byte node name comes out empty;
// the transcoder widens such an atom to the two-byte-length form.
func (w *walker) identifier(start, atomPos, n int) (int, error) {
	end, err := w.atomThen(atomPos, n)
	if err != nil {
		return 0, err
	}
	small := w.b[atomPos] == tagSmallAtom || w.b[atomPos] == tagSmallAtomUTF8
	if w.canon || !small || w.b[atomPos+1] != 255 {
		w.copyRange(start, end)
		return end, nil
	}
	w.special = true
	if w.out != nil {
		wide := byte(tagAtomUTF8)
		if w.b[atomPos] == tagSmallAtom {
			wide = tagAtom
		}
		*w.out = append(*w.out, w.b[start:atomPos]...)
		*w.out = append(*w.out, wide, 0, 255)
		*w.out = append(*w.out, w.b[atomPos+2:end]...)
	}
	return end, nil
}

// term checks the term whose tag is at pos and returns the position after it.
func (w *walker) term(pos, depth int) (int, error) {
	if depth > MaxDepth {
		return 0, w.fail(pos, "nested deeper than %d", MaxDepth)
	}
	if err := w.need(pos, 1); err != nil {
		return 0, err
	}
	start := pos
	tag := w.b[pos]
	pos++
	var end int
	var err error
	switch tag {
	case tagSmallInt:
		err, end = w.need(pos, 1), pos+1
	case tagInt:
		if err, end = w.need(pos, 4), pos+4; err == nil && w.canon && w.out != nil {
			*w.out = appendInt(*w.out, int64(int32(w.u32(pos))))
			return end, nil
		}
	case tagNewFloat:
		err, end = w.need(pos, 8), pos+8
	case tagFloat:
		err, end = w.need(pos, 31), pos+31
	case tagAtom, tagAtomUTF8, tagSmallAtom, tagSmallAtomUTF8:
		if end, err = w.atom(start); err == nil && w.canon && w.out != nil {
			a, _, _ := readAtom(w.b[start:end])
			*w.out, _ = appendAtom(*w.out, a, EncodeOptions{})
			return end, nil
		}
	case tagNil:
		end = pos
	case tagString:
		if err = w.need(pos, 2); err == nil {
			n := w.u16(pos)
			if err, end = w.need(pos+2, n), pos+2+n; err == nil && w.canon && w.out != nil {
				*w.out, _ = appendList(*w.out, Charlist(w.b[pos+2:end]).List(), List(nil), EncodeOptions{}, 0)
				return end, nil
			}
		}
	case tagBinary:
		if err = w.need(pos, 4); err == nil {
			n := w.u32(pos)
			err, end = w.need(pos+4, n), pos+4+n
		}
	case tagBitBinary:
		if err = w.need(pos, 5); err == nil {
			n, bits := w.u32(pos), w.b[pos+4]
			switch {
			case bits < 1 || bits > 8:
				err = w.fail(pos+4, "bitstring with %d bits in its last byte", bits)
			case n == 0:
				err = w.fail(pos, "bitstring with no bytes")
			default:
				err, end = w.need(pos+5, n), pos+5+n
			}
		}
	case tagSmallBig:
		if err = w.need(pos, 2); err != nil {
			return 0, err
		}
		return w.bignum(start, int(w.b[pos]), pos+1)
	case tagLargeBig:
		if err = w.need(pos, 5); err != nil {
			return 0, err
		}
		return w.bignum(start, w.u32(pos), pos+4)
	case tagPid:
		return w.identifier(start, pos, 9)
	case tagNewPid:
		return w.identifier(start, pos, 12)
	case tagPort, tagRef:
		return w.identifier(start, pos, 5)
	case tagNewPort:
		return w.identifier(start, pos, 8)
	case tagV4Port:
		return w.identifier(start, pos, 12)
	case tagNewRef, tagNewerRef:
		if err = w.need(pos, 2); err == nil {
			words := w.u16(pos)
			if words > maxRefWords {
				return 0, w.fail(pos, "reference with %d words", words)
			}
			creation := 1
			if tag == tagNewerRef {
				creation = 4
			}
			return w.identifier(start, pos+2, creation+4*words)
		}
	case tagExport:
		if end, err = w.atom(pos); err == nil {
			if end, err = w.atom(end); err == nil {
				if err = w.need(end, 2); err == nil && w.b[end] != tagSmallInt {
					err = w.fail(end, "export arity is not a small integer")
				}
				end += 2
			}
		}
	case tagSmallTuple, tagLargeTuple:
		return w.tuple(start, depth)
	case tagList:
		return w.list(start, depth)
	case tagMap:
		return w.mapTerm(start, depth)
	case tagNewFun, tagFun:
		return w.fun(start, depth)
	case tagCompressed:
		return 0, w.fail(start, "compressed term inside a term")
	case tagAtomCacheRef:
		return 0, w.fail(start, "atom cache reference outside a distribution header")
	case tagLocal:
		return 0, w.fail(start, "LOCAL_EXT term: only the node that made it can decode it")
	default:
		return 0, w.fail(start, "unknown tag %d", tag)
	}
	if err != nil {
		return 0, err
	}
	w.copyRange(start, end)
	return end, nil
}

// bignum checks an integer of n magnitude bytes whose sign byte is at signPos.
// Large ones become {Marker(big), <<Sign, Magnitude...>>}: erlang_go's
// decoding of them is quadratic.
func (w *walker) bignum(start, n, signPos int) (int, error) {
	if err := w.need(signPos, 1+n); err != nil {
		return 0, err
	}
	end := signPos + 1 + n
	if w.canon {
		if w.out != nil {
			v := bigFromWire(w.b[signPos], w.b[signPos+1:end])
			if v.IsInt64() {
				*w.out = appendInt(*w.out, v.Int64())
			} else {
				*w.out = appendBig(*w.out, v)
			}
		}
		return end, nil
	}
	// A sign byte other than 0 or 1 means negative to binary_to_term but
	// positive to erlang_go: such a bignum takes the marker path too.
	if n <= bigInline && w.b[signPos] <= 1 {
		w.copyRange(start, end)
		return end, nil
	}
	w.special = true
	if w.out != nil {
		*w.out = append(*w.out, tagSmallTuple, 2, markerTag, markerBig, tagBinary)
		*w.out = binary.BigEndian.AppendUint32(*w.out, uint32(1+n))
		*w.out = append(*w.out, w.b[signPos:end]...)
	}
	return end, nil
}

// elements checks n consecutive terms starting at pos.
func (w *walker) elements(pos, n, depth int) (int, error) {
	var err error
	for i := 0; i < n; i++ {
		if pos, err = w.term(pos, depth+1); err != nil {
			return 0, err
		}
	}
	return pos, nil
}

func (w *walker) tuple(start, depth int) (int, error) {
	pos := start + 1
	var n int
	if w.b[start] == tagSmallTuple {
		if err := w.need(pos, 1); err != nil {
			return 0, err
		}
		n, pos = int(w.b[pos]), pos+1
	} else {
		if err := w.need(pos, 4); err != nil {
			return 0, err
		}
		n, pos = w.u32(pos), pos+4
	}
	// Every element takes at least one byte: refuse counts the input cannot hold
	// before anyone allocates for them.
	if err := w.need(pos, n); err != nil {
		return 0, err
	}
	w.copyRange(start, pos)
	return w.elements(pos, n, depth)
}

func (w *walker) list(start, depth int) (int, error) {
	pos := start + 1
	if err := w.need(pos, 4); err != nil {
		return 0, err
	}
	n := w.u32(pos)
	pos += 4
	if err := w.need(pos, n+1); err != nil {
		return 0, err
	}
	w.copyRange(start, pos)
	pos, err := w.elements(pos, n, depth)
	if err != nil {
		return 0, err
	}
	return w.term(pos, depth+1) // the tail
}

// mapTerm rewrites #{K => V, ...} as {Marker(map), [{K, V}, ...]}: erlang_go
// decodes maps into Go maps, which fail on binary or tuple keys and lose order.
func (w *walker) mapTerm(start, depth int) (int, error) {
	w.special = true
	pos := start + 1
	if err := w.need(pos, 4); err != nil {
		return 0, err
	}
	n := w.u32(pos)
	pos += 4
	if err := w.need(pos, 2*n); err != nil {
		return 0, err
	}
	if w.canon {
		w.copyRange(start, pos)
		return w.elements(pos, 2*n, depth)
	}
	if w.out != nil {
		*w.out = append(*w.out, tagSmallTuple, 2, markerTag, markerMap)
		if n == 0 {
			*w.out = append(*w.out, tagNil)
		} else {
			*w.out = append(*w.out, tagList)
			*w.out = binary.BigEndian.AppendUint32(*w.out, uint32(n))
		}
	}
	var err error
	for i := 0; i < n; i++ {
		if w.out != nil {
			*w.out = append(*w.out, tagSmallTuple, 2)
		}
		if pos, err = w.elements(pos, 2, depth); err != nil {
			return 0, err
		}
	}
	if w.out != nil && n > 0 {
		*w.out = append(*w.out, tagNil)
	}
	return pos, nil
}

// fun checks a local fun and rewrites it as {Marker(fun), <<Raw>>}: erlang_go
// reads NEW_FUN_EXT's size as excluding its own four bytes and over-reads.
func (w *walker) fun(start, depth int) (int, error) {
	w.special = true
	end, err := w.funEnd(start, depth)
	if err != nil {
		return 0, err
	}
	if w.canon {
		w.copyRange(start, end)
		return end, nil
	}
	if w.out != nil {
		raw := w.b[start:end]
		*w.out = append(*w.out, tagSmallTuple, 2, markerTag, markerFun, tagBinary)
		*w.out = binary.BigEndian.AppendUint32(*w.out, uint32(len(raw)))
		*w.out = append(*w.out, raw...)
	}
	return end, nil
}

// funEnd returns the position after the fun at start, without copying anything.
func (w *walker) funEnd(start, depth int) (int, error) {
	pos := start + 1
	if err := w.need(pos, 4); err != nil {
		return 0, err
	}
	if w.b[start] == tagNewFun {
		size := w.u32(pos) // counts itself
		if size < 4+25 {
			return 0, w.fail(pos, "fun of %d bytes", size)
		}
		if err := w.need(pos, size); err != nil {
			return 0, err
		}
		return pos + size, nil
	}
	// FUN_EXT (before OTP 23): NumFree, Pid, Module, Index, Uniq, free variables.
	out := w.out
	w.out = nil
	end, err := w.elements(pos+4, 4, depth)
	numFree := w.u32(pos)
	if err == nil {
		if err = w.need(end, numFree); err == nil {
			end, err = w.elements(end, numFree, depth)
		}
	}
	w.out = out
	return end, err
}
