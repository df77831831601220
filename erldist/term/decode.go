package term

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/big"
	"unicode/utf8"

	erlang "github.com/okeuday/erlang_go/v2/erlang"
)

// Decode decodes b, which must hold exactly one term in external format
// (starting with the version byte 131).
func Decode(b []byte) (Term, error) {
	t, n, err := DecodePrefix(b)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, &DecodeError{Offset: n, Msg: fmt.Sprintf("%d bytes after the term", len(b)-n)}
	}
	return t, nil
}

// Len returns the encoded length of the external term at the start of b
// (version byte included) after checking its whole structure. It does not
// allocate, so it is the cheap way to split a buffer holding several terms.
func Len(b []byte) (int, error) {
	if err := checkVersion(b); err != nil {
		return 0, err
	}
	if b[1] == tagCompressed {
		_, n, err := inflate(b)
		return n, err
	}
	w := walker{b: b}
	return w.term(1, 0)
}

// DecodePrefix decodes the external term at the start of b and returns it
// with the number of bytes it took; b may hold more after it.
func DecodePrefix(b []byte) (Term, int, error) {
	if err := checkVersion(b); err != nil {
		return nil, 0, err
	}
	if b[1] == tagCompressed {
		plain, n, err := inflate(b)
		if err != nil {
			return nil, 0, err
		}
		t, err := decodeChecked(plain)
		return t, n, err
	}
	w := walker{b: b}
	end, err := w.term(1, 0)
	if err != nil {
		return nil, 0, err
	}
	t, err := decodeWalked(b[:end], w.special)
	return t, end, err
}

func checkVersion(b []byte) error {
	if len(b) < 2 {
		return &DecodeError{Offset: len(b), Msg: "truncated: no term"}
	}
	if b[0] != tagVersion {
		return &DecodeError{Offset: 0, Msg: fmt.Sprintf("version byte is %d, not 131", b[0])}
	}
	return nil
}

// decodeChecked walks and decodes a buffer that must be exactly one term.
func decodeChecked(b []byte) (Term, error) {
	w := walker{b: b}
	end, err := w.term(1, 0)
	if err != nil {
		return nil, err
	}
	if end != len(b) {
		return nil, &DecodeError{Offset: end, Msg: "compressed term has trailing bytes"}
	}
	return decodeWalked(b, w.special)
}

// decodeWalked hands a checked term to erlang_go, rewriting maps and local
// funs first when the walk found any, and normalises the result.
func decodeWalked(b []byte, special bool) (Term, error) {
	if !special {
		if t, end, ok := fastDecode(b, 1); ok && end == len(b) {
			return t, nil
		}
	}
	return decodeGeneral(b, special)
}

// decodeGeneral decodes a checked term through erlang_go.
func decodeGeneral(b []byte, special bool) (Term, error) {
	if special {
		out := make([]byte, 1, len(b)+64)
		out[0] = tagVersion
		w := walker{b: b, out: &out}
		if _, err := w.term(1, 0); err != nil {
			return nil, err
		}
		b = out
	}
	v, err := erlang.BinaryToTerm(b)
	if err != nil {
		// The walk accepted it, so this is a gap between the walker and erlang_go.
		return nil, &DecodeError{Offset: 0, Msg: "erlang_go: " + err.Error()}
	}
	return normalise(v)
}

// inflate decompresses a COMPRESSED term (131, 80, Size:32, zlib data) and
// returns it as a plain external term, with the compressed length used.
func inflate(b []byte) ([]byte, int, error) {
	if len(b) < 6 {
		return nil, 0, &DecodeError{Offset: len(b), Msg: "truncated compressed term"}
	}
	size := int(binary.BigEndian.Uint32(b[2:]))
	if size > MaxDecompressed {
		return nil, 0, &DecodeError{Offset: 2, Msg: fmt.Sprintf("compressed term claims %d bytes", size)}
	}
	src := bytes.NewReader(b[6:])
	zr, err := zlib.NewReader(src)
	if err != nil {
		return nil, 0, &DecodeError{Offset: 6, Msg: "compressed term: " + err.Error()}
	}
	var plain bytes.Buffer
	plain.WriteByte(tagVersion)
	// Read one byte more than declared to notice a lying size; the data only
	// grows as far as the stream really goes, so a false size cannot make us
	// allocate it up front.
	if _, err := io.Copy(&plain, io.LimitReader(zr, int64(size)+1)); err != nil {
		return nil, 0, &DecodeError{Offset: 6, Msg: "compressed term: " + err.Error()}
	}
	if plain.Len()-1 != size {
		return nil, 0, &DecodeError{Offset: 2, Msg: fmt.Sprintf("compressed term is %d bytes, header says %d", plain.Len()-1, size)}
	}
	// Drain to the end of the stream so the checksum is read and verified.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, 0, &DecodeError{Offset: 6, Msg: "compressed term: " + err.Error()}
	}
	return plain.Bytes(), len(b) - src.Len(), nil
}

// normalise turns what erlang_go returns into this package's types.
func normalise(v any) (Term, error) {
	switch x := v.(type) {
	case uint8:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), nil
		}
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, &DecodeError{Msg: "float is not finite (Erlang has no NaN or infinity)"}
		}
		return x, nil
	case bool:
		if x {
			return True, nil
		}
		return False, nil
	case nil:
		return Undefined, nil // erlang_go's stand-in for the atom undefined
	case erlang.OtpErlangAtomUTF8:
		return Atom(x), nil
	case erlang.OtpErlangAtom:
		return Atom(latin1(string(x))), nil
	case string:
		return Charlist(x), nil
	case erlang.OtpErlangBinary:
		if x.Bits == 8 {
			return Binary(x.Value), nil
		}
		// The unused low bits of the last byte mean nothing to Erlang:
		// clear them so that equal bitstrings are equal here too.
		if n := len(x.Value); n > 0 && x.Bits >= 1 && x.Bits <= 7 && x.Value[n-1]&^(0xFF<<(8-x.Bits)) != 0 {
			b := append([]byte(nil), x.Value...)
			b[n-1] &= 0xFF << (8 - x.Bits)
			return BitBinary{Bytes: b, Bits: x.Bits}, nil
		}
		return BitBinary{Bytes: x.Value, Bits: x.Bits}, nil
	case erlang.OtpErlangTuple:
		if len(x) == 2 {
			if kind, ok := x[0].(erlang.OtpErlangAtomCacheRef); ok {
				return fromMarker(uint8(kind), x[1])
			}
		}
		t := make(Tuple, len(x))
		for i, e := range x {
			var err error
			if t[i], err = normalise(e); err != nil {
				return nil, err
			}
		}
		return t, nil
	case erlang.OtpErlangList:
		elems := make([]Term, len(x.Value))
		for i, e := range x.Value {
			var err error
			if elems[i], err = normalise(e); err != nil {
				return nil, err
			}
		}
		if x.Improper {
			return joinTail(elems[:len(elems)-1], elems[len(elems)-1]), nil
		}
		return List(elems), nil
	case erlang.OtpErlangPid:
		node, err := nodeAtom(x.NodeTag, x.Node)
		if err != nil {
			return nil, err
		}
		return Pid{Node: node, ID: be32(x.ID), Serial: be32(x.Serial), Creation: creation(x.Creation)}, nil
	case erlang.OtpErlangPort:
		node, err := nodeAtom(x.NodeTag, x.Node)
		if err != nil {
			return nil, err
		}
		var id uint64
		for _, c := range x.ID {
			id = id<<8 | uint64(c)
		}
		return Port{Node: node, ID: id, Creation: creation(x.Creation)}, nil
	case erlang.OtpErlangReference:
		node, err := nodeAtom(x.NodeTag, x.Node)
		if err != nil {
			return nil, err
		}
		ids := make([]uint32, len(x.ID)/4)
		for i := range ids {
			ids[i] = binary.BigEndian.Uint32(x.ID[4*i:])
		}
		return Ref{Node: node, Creation: creation(x.Creation), ID: ids}, nil
	case erlang.OtpErlangFunction:
		if x.Tag == tagExport {
			return exportFromBytes(x.Value)
		}
		return nil, &DecodeError{Msg: fmt.Sprintf("unexpected function tag %d", x.Tag)}
	}
	return nil, &DecodeError{Msg: fmt.Sprintf("unexpected value %T from erlang_go", v)}
}

func fromMarker(kind uint8, payload any) (Term, error) {
	switch kind {
	case markerMap:
		pairs, _ := payload.(erlang.OtpErlangList)
		m := make(Map, len(pairs.Value))
		for i, p := range pairs.Value {
			kv, ok := p.(erlang.OtpErlangTuple)
			if !ok || len(kv) != 2 {
				return nil, &DecodeError{Msg: "malformed map marker"}
			}
			var err error
			if m[i].Key, err = normalise(kv[0]); err != nil {
				return nil, err
			}
			if m[i].Value, err = normalise(kv[1]); err != nil {
				return nil, err
			}
		}
		if err := checkDistinctKeys(m); err != nil {
			return nil, err
		}
		return m, nil
	case markerFun:
		raw, ok := payload.(erlang.OtpErlangBinary)
		if !ok {
			return nil, &DecodeError{Msg: "malformed fun marker"}
		}
		return Fun{Raw: raw.Value}, nil
	case markerBig:
		raw, ok := payload.(erlang.OtpErlangBinary)
		if !ok || len(raw.Value) < 1 {
			return nil, &DecodeError{Msg: "malformed bignum marker"}
		}
		v := bigFromWire(raw.Value[0], raw.Value[1:])
		if v.IsInt64() {
			return v.Int64(), nil
		}
		return v, nil
	}
	return nil, &DecodeError{Msg: fmt.Sprintf("unknown marker %d", kind)}
}

// exportFromBytes parses EXPORT_EXT's body: Module atom, Function atom, Arity.
func exportFromBytes(b []byte) (Term, error) {
	mod, n, err := readAtom(b)
	if err != nil {
		return nil, err
	}
	fn, m, err := readAtom(b[n:])
	if err != nil {
		return nil, err
	}
	rest := b[n+m:]
	if len(rest) != 2 || rest[0] != tagSmallInt {
		return nil, &DecodeError{Msg: "bad export arity"}
	}
	return Export{Module: mod, Function: fn, Arity: int(rest[1])}, nil
}

// readAtom reads a tagged atom from b.
func readAtom(b []byte) (Atom, int, error) {
	if len(b) < 2 {
		return "", 0, &DecodeError{Msg: "truncated atom"}
	}
	var n, hdr int
	switch b[0] {
	case tagAtom, tagAtomUTF8:
		if len(b) < 3 {
			return "", 0, &DecodeError{Msg: "truncated atom"}
		}
		n, hdr = int(binary.BigEndian.Uint16(b[1:])), 3
	case tagSmallAtom, tagSmallAtomUTF8:
		n, hdr = int(b[1]), 2
	default:
		return "", 0, &DecodeError{Msg: fmt.Sprintf("expected an atom, found tag %d", b[0])}
	}
	if len(b) < hdr+n {
		return "", 0, &DecodeError{Msg: "truncated atom"}
	}
	s := string(b[hdr : hdr+n])
	if b[0] == tagAtom || b[0] == tagSmallAtom {
		s = latin1(s)
	}
	return Atom(s), hdr + n, nil
}

// nodeAtom decodes the node name erlang_go keeps as tag + length-prefixed text.
func nodeAtom(tag uint8, b []byte) (Atom, error) {
	a, _, err := readAtom(append([]byte{tag}, b...))
	return a, err
}

func be32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func creation(b []byte) uint32 {
	if len(b) == 1 {
		return uint32(b[0])
	}
	return be32(b)
}

// latin1 converts latin-1 text (ATOM_EXT, SMALL_ATOM_EXT) to UTF-8.
func latin1(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

// checkDistinctKeys refuses a map with two equal keys, as binary_to_term does.
func checkDistinctKeys(m Map) error {
	if len(m) < 2 {
		return nil
	}
	seen := make(map[string]struct{}, len(m))
	for _, p := range m {
		k, err := canonicalKey(p.Key)
		if err != nil {
			return &DecodeError{Msg: "map key: " + err.Error()}
		}
		if _, dup := seen[string(k)]; dup {
			return &DecodeError{Msg: "map with a duplicate key " + Format(p.Key)}
		}
		seen[string(k)] = struct{}{}
	}
	return nil
}

// canonicalKey encodes a term so that equal terms give equal strings: our
// encoding, passed through the same canonical transcoding as CanonicalBody.
func canonicalKey(t Term) (string, error) {
	k, err := AppendBody(nil, t, EncodeOptions{})
	if err != nil {
		return "", err
	}
	return CanonicalBody(k)
}

// joinTail builds [Elems | Tail]. A tail that is itself a list (possible in
// crafted input: Erlang writes one LIST_EXT) continues the list, as in Erlang.
func joinTail(elems []Term, tail Term) Term {
	switch t := tail.(type) {
	case List:
		return List(append(elems, t...))
	case Charlist:
		return List(append(elems, t.List()...))
	case ImproperList:
		return joinTail(append(elems, t.Elems...), t.Tail)
	}
	if len(elems) == 0 {
		return tail // LIST_EXT with no elements is its tail alone
	}
	return ImproperList{Elems: elems, Tail: tail}
}

// Element returns the encoded bytes of element i (1-based) of the tuple
// encoded in b (version byte first), without decoding anything: the cheap
// way to get a record's key. The bytes lack the version byte.
func Element(b []byte, i int) ([]byte, error) {
	start, end, err := ElementSpan(b, i)
	if err != nil {
		return nil, err
	}
	return b[start:end], nil
}

// ElementSpan is Element returning where the element lies in b.
func ElementSpan(b []byte, i int) (start, end int, err error) {
	if err := checkVersion(b); err != nil {
		return 0, 0, err
	}
	w := walker{b: b}
	pos := 1
	var n int
	switch b[1] {
	case tagSmallTuple:
		if len(b) < 3 {
			return 0, 0, w.fail(len(b), "truncated tuple")
		}
		n, pos = int(b[2]), 3
	case tagLargeTuple:
		if len(b) < 6 {
			return 0, 0, w.fail(len(b), "truncated tuple")
		}
		n, pos = w.u32(2), 6
	default:
		return 0, 0, w.fail(1, "not a tuple")
	}
	if i < 1 || i > n {
		return 0, 0, w.fail(pos, "tuple of %d elements has no element %d", n, i)
	}
	for k := 1; ; k++ {
		end, err := w.term(pos, 1)
		if err != nil {
			return 0, 0, err
		}
		if k == i {
			return pos, end, nil
		}
		pos = end
	}
}

// CanonicalKey returns bytes that are equal for equal terms (=:=), whatever
// encoding produced them: latin-1 or UTF-8 atom tags, STRING_EXT or a list
// of small integers, a small bignum or an integer.
func CanonicalKey(t Term) (string, error) { return canonicalKey(t) }

// CanonicalBody is CanonicalKey of the term encoded (without version byte)
// in body, computed from the bytes without decoding the term.
func CanonicalBody(body []byte) (string, error) {
	out := make([]byte, 0, len(body)+8)
	w := walker{b: body, out: &out, canon: true}
	end, err := w.term(0, 0)
	if err != nil {
		return "", err
	}
	if end != len(body) {
		return "", &DecodeError{Offset: end, Msg: "trailing bytes after the term"}
	}
	return string(out), nil
}

// bigFromWire builds an integer from a sign byte and a little-endian magnitude.
func bigFromWire(sign byte, mag []byte) *big.Int {
	be := make([]byte, len(mag))
	for i, c := range mag {
		be[len(mag)-1-i] = c
	}
	v := new(big.Int).SetBytes(be)
	if sign != 0 {
		v.Neg(v)
	}
	return v
}
