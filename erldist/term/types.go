// Package term is the project's one view of Erlang terms.
//
// Every package that touches Erlang data (the distribution client, the Mnesia
// file readers, the exporters) uses these types. Decoding goes through
// github.com/okeuday/erlang_go, behind a scanner that bounds-checks the input,
// splits buffers holding several terms, and rewrites the constructs erlang_go
// mis-decodes (see decode.go). The result is normalised into the small set of
// Go types below, so callers never see erlang_go's two atom types, its
// bool/nil stand-ins for atoms or its tuple-shaped []interface{}.
//
// Mapping:
//
//	atom                 Atom (UTF-8; latin-1 atoms are converted)
//	integer              int64, or *big.Int when it does not fit
//	float                float64
//	binary               Binary
//	bitstring            BitBinary
//	tuple                Tuple
//	proper list          List ([] for nil)
//	improper list        ImproperList
//	list of bytes        Charlist (what STRING_EXT carries; equal to the List of its bytes)
//	map                  Map (pairs in the order they were encoded)
//	pid, port, ref       Pid, Port, Ref
//	fun M:F/A            Export
//	local fun            Fun (opaque bytes, re-encoded verbatim)
package term

import (
	"fmt"
	"math/big"
	"strconv"
)

// Term is any Erlang term in its normalised Go form.
type Term = any

// Atom is an Erlang atom, as UTF-8 text.
type Atom string

// Common atoms.
const (
	True      Atom = "true"
	False     Atom = "false"
	Undefined Atom = "undefined"
	OK        Atom = "ok"
	Error     Atom = "error"
)

// Tuple is an Erlang tuple.
type Tuple []Term

// List is a proper Erlang list. A nil or empty List is [].
type List []Term

// ImproperList is a list whose tail is not [] (for example [alias|Ref]).
type ImproperList struct {
	Elems []Term
	Tail  Term
}

// Charlist is a list of integers 0..255 as STRING_EXT carries it ("abc").
// Erlang cannot tell it from the List of the same integers; Equal treats them alike.
type Charlist string

// Binary is an Erlang binary.
type Binary []byte

// BitBinary is a bitstring whose last byte holds only Bits (1..7) significant bits.
type BitBinary struct {
	Bytes []byte
	Bits  uint8
}

// MapPair is one association of a Map.
type MapPair struct {
	Key, Value Term
}

// Map is an Erlang map, its pairs in encoding order.
type Map []MapPair

// Pid is an Erlang process identifier.
type Pid struct {
	Node     Atom
	ID       uint32
	Serial   uint32
	Creation uint32
}

// Port is an Erlang port identifier.
type Port struct {
	Node     Atom
	ID       uint64
	Creation uint32
}

// Ref is an Erlang reference.
type Ref struct {
	Node     Atom
	Creation uint32
	ID       []uint32
}

// Export is an external fun, fun M:F/A.
type Export struct {
	Module   Atom
	Function Atom
	Arity    int
}

// Fun is a local fun. Its contents are kept as the original encoded bytes
// (starting with the tag) so that it can be passed back unchanged.
type Fun struct {
	Raw []byte
}

// Key returns a comparable identity for the reference, for use as a map key.
func (r Ref) Key() string {
	b := make([]byte, 0, len(r.Node)+8+4*len(r.ID))
	b = append(b, r.Node...)
	b = append(b, 0)
	b = strconv.AppendUint(b, uint64(r.Creation), 10)
	for _, w := range r.ID {
		b = append(b, '.')
		b = strconv.AppendUint(b, uint64(w), 10)
	}
	return string(b)
}

func (p Pid) String() string {
	return fmt.Sprintf("<%s.%d.%d>", p.Node, p.ID, p.Serial)
}

func (r Ref) String() string {
	s := "#Ref<" + string(r.Node)
	for i := len(r.ID) - 1; i >= 0; i-- {
		s += "." + strconv.FormatUint(uint64(r.ID[i]), 10)
	}
	return s + ">"
}

func (p Port) String() string {
	return fmt.Sprintf("#Port<%s.%d>", p.Node, p.ID)
}

// Bytes returns the list's elements as integers.
func (c Charlist) List() List {
	l := make(List, len(c))
	for i := 0; i < len(c); i++ {
		l[i] = int64(c[i])
	}
	return l
}

// Int converts an integer term to int64. It reports false for non-integers
// and for integers that do not fit.
func Int(t Term) (int64, bool) {
	switch v := t.(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case int32: // Go values that are not terms (a database column's)
		return int64(v), true
	case int16:
		return int64(v), true
	case *big.Int:
		if v.IsInt64() {
			return v.Int64(), true
		}
	}
	return 0, false
}

// IsAtom reports whether t is the atom a.
func IsAtom(t Term, a Atom) bool {
	v, ok := t.(Atom)
	return ok && v == a
}

// Bool converts the atoms true and false.
func Bool(t Term) (value, ok bool) {
	switch t {
	case True:
		return true, true
	case False:
		return false, true
	}
	return false, false
}

// Elems returns the elements of a proper list given in any of its forms
// (List or Charlist). It reports false for anything else.
func Elems(t Term) ([]Term, bool) {
	switch v := t.(type) {
	case List:
		return v, true
	case Charlist:
		return v.List(), true
	}
	return nil, false
}

// Text returns the text of a binary, a charlist, an atom, or a proper list of
// byte-sized integers. It is how callers read "a string" regardless of which
// of Erlang's string representations a node used.
func Text(t Term) (string, bool) {
	switch v := t.(type) {
	case Binary:
		return string(v), true
	case Charlist:
		return string(v), true
	case Atom:
		return string(v), true
	case List:
		b := make([]byte, 0, len(v))
		for _, e := range v {
			n, ok := Int(e)
			if !ok || n < 0 || n > 255 {
				return "", false
			}
			b = append(b, byte(n))
		}
		return string(b), true
	}
	return "", false
}

// IsRecord reports whether t is a tuple of the given size whose first element is the atom name.
func IsRecord(t Term, name Atom, size int) (Tuple, bool) {
	tu, ok := t.(Tuple)
	if !ok || (size >= 0 && len(tu) != size) || len(tu) == 0 || !IsAtom(tu[0], name) {
		return nil, false
	}
	return tu, true
}

// Proplist looks key up in a list of {Key, Value} tuples (bare atoms count as {Atom, true}).
func Proplist(t Term, key Atom) (Term, bool) {
	elems, ok := Elems(t)
	if !ok {
		return nil, false
	}
	for _, e := range elems {
		switch v := e.(type) {
		case Tuple:
			if len(v) >= 1 && IsAtom(v[0], key) {
				if len(v) == 2 {
					return v[1], true
				}
				return v, true
			}
		case Atom:
			if v == key {
				return True, true
			}
		}
	}
	return nil, false
}
