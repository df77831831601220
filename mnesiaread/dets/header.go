// Package dets reads DETS version 9 files (Mnesia's disc_only_copies tables,
// schema.DAT), read-only, including files that were never closed.
//
// It reads the hash structure (header, segment-array parts, segments, slots)
// to find the live object collections, and scans the whole file linearly as
// Erlang's repair does, to find collections the hash structure no longer
// points to. Live collections are authoritative; collections found only by
// the scan ("orphans") are reported with their offsets and, when no live
// object has the same key (set) or is the same object (bag), recovered. It
// never trusts the header's counters, which are stale in a file that was not
// closed: Erlang's own repair drops objects larger than anything the header
// counts (OTP issue #8513).
package dets

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
)

// File format constants (stdlib's dets_v9.erl and dets.hrl).
const (
	cookie       = 0x00ABCDEF
	version      = 9
	statusActive = 0x12345678
	statusFree   = 0x03ABCDEF
	headEnd      = 312  // after the fixed header fields and the reserved area
	base         = 1336 // after the 256 segment-array part pointers
	partSlots    = 512  // segment pointers per part
	segSlots     = 256  // slots per segment
	minBlock     = 16
)

// Type is the table type.
type Type int

// Table types.
const (
	Set          Type = 1
	Bag          Type = 2
	DuplicateBag Type = 3
)

func (t Type) String() string {
	switch t {
	case Set:
		return "set"
	case Bag:
		return "bag"
	case DuplicateBag:
		return "duplicate_bag"
	}
	return fmt.Sprintf("type %d", int(t))
}

// Header is the file header. The counters are only true for a file that
// was closed properly.
type Header struct {
	FreelistsPointer uint32
	ClosedProperly   bool
	Type             Type
	KeyPos           int
	M, Next, N       uint32
	NoObjects        uint32
	NoKeys           uint32
	MinNoSlots       uint32
	MaxNoSlots       uint32
	HashMethod       uint32
	NoColls          [28]uint32
	FlBase           uint32
	// MD5OK is false when the header has an MD5 that does not match.
	MD5OK bool
	// Problems lists header fields that were unreadable and what was assumed.
	Problems []string
	parts    [256]uint32
}

// ErrNotDETS is returned for files that are not DETS version 9.
var ErrNotDETS = errors.New("not a DETS version 9 file")

func parseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < base {
		return h, fmt.Errorf("%w: %d bytes", ErrNotDETS, len(b))
	}
	u := func(off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }
	if u(4) != cookie {
		return h, fmt.Errorf("%w: bad magic %08x", ErrNotDETS, u(4))
	}
	// The magic says it is DETS; past it, an unreadable field is a damaged
	// header to work around, not a reason to give up on the objects.
	switch u(8) {
	case 0:
	case 1:
		h.ClosedProperly = true
	default:
		h.Problems = append(h.Problems, fmt.Sprintf("closed flag %d: treated as not closed", u(8)))
	}
	if v := u(16); v != version {
		if v < 9 && v != 0 {
			return h, fmt.Errorf("%w: version %d (written before OTP R8)", ErrNotDETS, v)
		}
		h.Problems = append(h.Problems, fmt.Sprintf("version field %d: read as version 9", v))
	}
	h.FreelistsPointer = u(0)
	h.Type = Type(u(12))
	if h.Type < Set || h.Type > DuplicateBag {
		h.Problems = append(h.Problems, fmt.Sprintf("table type %d: each collection is read as a set or, failing that, a bag", u(12)))
		h.Type = 0
	}
	h.M, h.Next = u(20), u(24)
	h.KeyPos = int(u(28))
	if h.KeyPos < 1 || h.KeyPos > 255 {
		h.Problems = append(h.Problems, fmt.Sprintf("key position %d: assumed 2, as Mnesia uses", h.KeyPos))
		h.KeyPos = 2
	}
	h.NoObjects, h.NoKeys = u(32), u(36)
	h.MinNoSlots, h.MaxNoSlots = u(40), u(44)
	h.HashMethod, h.N = u(48), u(52)
	for i := range h.NoColls {
		h.NoColls[i] = u(56 + 4*i)
	}
	var zero [16]byte
	stored := b[168:184]
	sum := md5.Sum(b[12:168])
	h.MD5OK = string(stored) == string(zero[:]) || string(stored) == string(sum[:])
	h.FlBase = u(184)
	for i := range h.parts {
		h.parts[i] = u(headEnd + 4*i)
	}
	return h, nil
}
