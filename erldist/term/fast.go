package term

import (
	"encoding/binary"
	"math"
)

// The direct decoder builds this package's types from a term the walker has
// already checked, for the shapes Mnesia records are made of: integers,
// floats, atoms, binaries, tuples, lists and strings. It skips erlang_go's
// intermediate values (a third of an export's CPU went there). Anything else
// (pids, ports, references, funs, maps, bit strings, old floats) makes it
// give up, and the caller decodes the term the general way. A fuzz test holds
// the two paths to the same results.

// fastDecode decodes the checked term at b[pos:]. ok is false when the term
// holds a type the direct path leaves to erlang_go.
func fastDecode(b []byte, pos int) (t Term, end int, ok bool) {
	switch tag := b[pos]; tag {
	case tagSmallInt:
		return int64(b[pos+1]), pos + 2, true
	case tagInt:
		return int64(int32(binary.BigEndian.Uint32(b[pos+1:]))), pos + 5, true
	case tagNewFloat:
		f := math.Float64frombits(binary.BigEndian.Uint64(b[pos+1:]))
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, 0, false // the general path says why
		}
		return f, pos + 9, true
	case tagAtomUTF8, tagAtom:
		n := int(binary.BigEndian.Uint16(b[pos+1:]))
		s := string(b[pos+3 : pos+3+n])
		if tag == tagAtom {
			s = latin1(s)
		}
		return Atom(s), pos + 3 + n, true
	case tagSmallAtomUTF8, tagSmallAtom:
		n := int(b[pos+1])
		s := string(b[pos+2 : pos+2+n])
		if tag == tagSmallAtom {
			s = latin1(s)
		}
		return Atom(s), pos + 2 + n, true
	case tagSmallTuple, tagLargeTuple:
		var n int
		if tag == tagSmallTuple {
			n, pos = int(b[pos+1]), pos+2
		} else {
			n, pos = int(binary.BigEndian.Uint32(b[pos+1:])), pos+5
		}
		tu := make(Tuple, n)
		for i := range tu {
			if tu[i], pos, ok = fastDecode(b, pos); !ok {
				return nil, 0, false
			}
		}
		return tu, pos, true
	case tagNil:
		return List{}, pos + 1, true
	case tagString:
		n := int(binary.BigEndian.Uint16(b[pos+1:]))
		return Charlist(b[pos+3 : pos+3+n]), pos + 3 + n, true
	case tagList:
		n := int(binary.BigEndian.Uint32(b[pos+1:]))
		pos += 5
		elems := make([]Term, n)
		for i := range elems {
			if elems[i], pos, ok = fastDecode(b, pos); !ok {
				return nil, 0, false
			}
		}
		if b[pos] == tagNil {
			return List(elems), pos + 1, true
		}
		tail, pos, ok := fastDecode(b, pos)
		if !ok {
			return nil, 0, false
		}
		return joinTail(elems, tail), pos, true
	case tagBinary:
		n := int(binary.BigEndian.Uint32(b[pos+1:]))
		v := make(Binary, n)
		copy(v, b[pos+5:])
		return v, pos + 5 + n, true
	case tagSmallBig, tagLargeBig:
		var n int
		if tag == tagSmallBig {
			n, pos = int(b[pos+1]), pos+2
		} else {
			n, pos = int(binary.BigEndian.Uint32(b[pos+1:])), pos+5
		}
		if n > 64 {
			return nil, 0, false // huge: the general path's bignum handling
		}
		v := bigFromWire(b[pos], b[pos+1:pos+1+n])
		if v.IsInt64() {
			return v.Int64(), pos + 1 + n, true
		}
		return v, pos + 1 + n, true
	}
	return nil, 0, false
}
