package term

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
)

// Encoding is done here rather than through erlang_go's TermToBinary, which
// cannot encode maps with binary or tuple keys, writes int64 values as
// bignums, encodes []interface{} as a tuple, and builds every term through a
// bytes.Buffer with reflection-based writes (too slow for writing backups of
// millions of records). Its decoder is used; see decode.go.

// EncodeOptions selects the wire forms for the peer.
type EncodeOptions struct {
	// Legacy writes the forms pre-OTP-19 nodes understand: latin-1 atom tags,
	// PID_EXT/PORT_EXT/NEW_REFERENCE_EXT with a 2-bit creation, no maps.
	Legacy bool

	// expandCharlists writes a Charlist as the list of its integers, so that
	// equal terms always encode alike (for map key comparison).
	expandCharlists bool
}

// Encode returns t in external format, version byte first.
func Encode(t Term) ([]byte, error) {
	return Append(make([]byte, 0, 64), t, EncodeOptions{})
}

// Append appends t in external format (version byte first) to dst.
func Append(dst []byte, t Term, opt EncodeOptions) ([]byte, error) {
	return appendTerm(append(dst, tagVersion), t, opt, 0)
}

// AppendBody appends t without the version byte (as inside another term).
func AppendBody(dst []byte, t Term, opt EncodeOptions) ([]byte, error) {
	return appendTerm(dst, t, opt, 0)
}

func appendTerm(b []byte, t Term, opt EncodeOptions, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return b, fmt.Errorf("encode: term nested deeper than %d", MaxDepth)
	}
	var err error
	switch v := t.(type) {
	case Atom:
		return appendAtom(b, v, opt)
	case bool:
		if v {
			return appendAtom(b, True, opt)
		}
		return appendAtom(b, False, opt)
	case int:
		return appendInt(b, int64(v)), nil
	case int64:
		return appendInt(b, v), nil
	case uint32:
		return appendInt(b, int64(v)), nil
	case *big.Int:
		if v.IsInt64() {
			return appendInt(b, v.Int64()), nil
		}
		return appendBig(b, v), nil
	case float64:
		b = append(b, tagNewFloat)
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v)), nil
	case Binary:
		b = append(b, tagBinary)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		return append(b, v...), nil
	case BitBinary:
		if len(v.Bytes) == 0 || v.Bits < 1 || v.Bits > 8 {
			return b, fmt.Errorf("encode: bitstring of %d bytes with %d bits in the last", len(v.Bytes), v.Bits)
		}
		b = append(b, tagBitBinary)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v.Bytes)))
		b = append(b, v.Bits)
		return append(b, v.Bytes...), nil
	case Charlist:
		switch {
		case opt.expandCharlists && len(v) > 0:
			return appendList(b, v.List(), List(nil), opt, depth)
		case len(v) == 0:
			return append(b, tagNil), nil
		case len(v) <= math.MaxUint16:
			b = append(b, tagString)
			b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
			return append(b, v...), nil
		}
		b = append(b, tagList)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		for i := 0; i < len(v); i++ {
			b = append(b, tagSmallInt, v[i])
		}
		return append(b, tagNil), nil
	case Tuple:
		if len(v) <= math.MaxUint8 {
			b = append(b, tagSmallTuple, uint8(len(v)))
		} else {
			b = append(b, tagLargeTuple)
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		}
		for _, e := range v {
			if b, err = appendTerm(b, e, opt, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case List:
		return appendList(b, v, List(nil), opt, depth)
	case ImproperList:
		if len(v.Elems) == 0 {
			return appendTerm(b, v.Tail, opt, depth+1)
		}
		return appendList(b, v.Elems, v.Tail, opt, depth)
	case Map:
		if opt.Legacy {
			return b, fmt.Errorf("encode: maps cannot be sent to a node older than OTP 17")
		}
		b = append(b, tagMap)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		for _, p := range v {
			if b, err = appendTerm(b, p.Key, opt, depth+1); err != nil {
				return b, err
			}
			if b, err = appendTerm(b, p.Value, opt, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case Pid:
		if opt.Legacy {
			b = append(b, tagPid)
			if b, err = appendAtom(b, v.Node, opt); err != nil {
				return b, err
			}
			b = binary.BigEndian.AppendUint32(b, v.ID)
			b = binary.BigEndian.AppendUint32(b, v.Serial)
			return append(b, byte(v.Creation&3)), nil
		}
		b = append(b, tagNewPid)
		if b, err = appendAtom(b, v.Node, opt); err != nil {
			return b, err
		}
		b = binary.BigEndian.AppendUint32(b, v.ID)
		b = binary.BigEndian.AppendUint32(b, v.Serial)
		return binary.BigEndian.AppendUint32(b, v.Creation), nil
	case Port:
		switch {
		case opt.Legacy:
			b = append(b, tagPort)
		case v.ID > math.MaxUint32:
			b = append(b, tagV4Port)
		default:
			b = append(b, tagNewPort)
		}
		if b, err = appendAtom(b, v.Node, opt); err != nil {
			return b, err
		}
		switch {
		case opt.Legacy:
			b = binary.BigEndian.AppendUint32(b, uint32(v.ID))
			return append(b, byte(v.Creation&3)), nil
		case v.ID > math.MaxUint32:
			b = binary.BigEndian.AppendUint64(b, v.ID)
		default:
			b = binary.BigEndian.AppendUint32(b, uint32(v.ID))
		}
		return binary.BigEndian.AppendUint32(b, v.Creation), nil
	case Ref:
		if len(v.ID) > maxRefWords {
			return b, fmt.Errorf("encode: reference with %d words", len(v.ID))
		}
		if opt.Legacy {
			b = append(b, tagNewRef)
		} else {
			b = append(b, tagNewerRef)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(v.ID)))
		if b, err = appendAtom(b, v.Node, opt); err != nil {
			return b, err
		}
		if opt.Legacy {
			b = append(b, byte(v.Creation&3))
		} else {
			b = binary.BigEndian.AppendUint32(b, v.Creation)
		}
		for _, w := range v.ID {
			b = binary.BigEndian.AppendUint32(b, w)
		}
		return b, nil
	case Export:
		if v.Arity < 0 || v.Arity > 255 {
			return b, fmt.Errorf("encode: export arity %d", v.Arity)
		}
		b = append(b, tagExport)
		if b, err = appendAtom(b, v.Module, opt); err != nil {
			return b, err
		}
		if b, err = appendAtom(b, v.Function, opt); err != nil {
			return b, err
		}
		return append(b, tagSmallInt, byte(v.Arity)), nil
	case Fun:
		if len(v.Raw) == 0 || (v.Raw[0] != tagNewFun && v.Raw[0] != tagFun) {
			return b, fmt.Errorf("encode: fun without its encoded form")
		}
		return append(b, v.Raw...), nil
	case nil:
		return b, fmt.Errorf("encode: nil is not a term (use term.Undefined or term.List{})")
	}
	return b, fmt.Errorf("encode: %T is not a term", t)
}

func appendList(b []byte, elems []Term, tail Term, opt EncodeOptions, depth int) ([]byte, error) {
	if len(elems) == 0 {
		return append(b, tagNil), nil
	}
	b = append(b, tagList)
	b = binary.BigEndian.AppendUint32(b, uint32(len(elems)))
	var err error
	for _, e := range elems {
		if b, err = appendTerm(b, e, opt, depth+1); err != nil {
			return b, err
		}
	}
	return appendTerm(b, tail, opt, depth+1)
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0 && v <= math.MaxUint8:
		return append(b, tagSmallInt, byte(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		b = append(b, tagInt)
		return binary.BigEndian.AppendUint32(b, uint32(int32(v)))
	}
	sign := byte(0)
	mag := uint64(v)
	if v < 0 {
		sign, mag = 1, uint64(-v) // -MinInt64 wraps to 1<<63, which is right
	}
	n := 0
	var digits [8]byte
	for m := mag; m > 0; m >>= 8 {
		digits[n] = byte(m)
		n++
	}
	b = append(b, tagSmallBig, byte(n), sign)
	return append(b, digits[:n]...)
}

func appendBig(b []byte, v *big.Int) []byte {
	mag := v.Bytes() // big-endian magnitude
	n := len(mag)
	if n <= math.MaxUint8 {
		b = append(b, tagSmallBig, byte(n))
	} else {
		b = append(b, tagLargeBig)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	if v.Sign() < 0 {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	for i := n - 1; i >= 0; i-- {
		b = append(b, mag[i])
	}
	return b
}

func appendAtom(b []byte, a Atom, opt EncodeOptions) ([]byte, error) {
	s := string(a)
	if opt.Legacy {
		l, ok := toLatin1(s)
		if !ok {
			return b, fmt.Errorf("encode: atom %q has characters an old node cannot take", s)
		}
		s = l
	} else if len([]rune(s)) > 255 {
		return b, fmt.Errorf("encode: atom of %d characters", len([]rune(s)))
	}
	switch {
	case len(s) <= math.MaxUint8 && opt.Legacy:
		b = append(b, tagSmallAtom, byte(len(s)))
	case len(s) <= math.MaxUint8:
		b = append(b, tagSmallAtomUTF8, byte(len(s)))
	case opt.Legacy:
		b = append(b, tagAtom)
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	default:
		b = append(b, tagAtomUTF8)
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	}
	return append(b, s...), nil
}

func toLatin1(s string) (string, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 255 {
			return "", false
		}
		out = append(out, byte(r))
	}
	return string(out), true
}
