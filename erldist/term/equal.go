package term

import (
	"bytes"
	"math/big"
	"slices"
)

// Equal reports whether a and b are the same Erlang term (=:=). A Charlist
// equals the List of the same integers, and integers compare by value
// whatever their Go type.
func Equal(a, b Term) bool {
	if ai, ok := intValue(a); ok {
		bi, ok := intValue(b)
		return ok && ai.Cmp(bi) == 0
	}
	switch x := a.(type) {
	case Atom:
		y, ok := b.(Atom)
		return ok && x == y
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	case Binary:
		y, ok := b.(Binary)
		return ok && bytes.Equal(x, y)
	case BitBinary:
		y, ok := b.(BitBinary)
		return ok && x.Bits == y.Bits && bytes.Equal(x.Bytes, y.Bytes)
	case Tuple:
		y, ok := b.(Tuple)
		return ok && slices.EqualFunc(x, y, Equal)
	case List, Charlist:
		xs, _ := Elems(x)
		ys, ok := Elems(b)
		return ok && slices.EqualFunc(xs, ys, Equal)
	case ImproperList:
		y, ok := b.(ImproperList)
		return ok && slices.EqualFunc(x.Elems, y.Elems, Equal) && Equal(x.Tail, y.Tail)
	case Map:
		y, ok := b.(Map)
		if !ok || len(x) != len(y) {
			return false
		}
		// Pair order is an encoding detail: match keys by their canonical encoding.
		byKey := make(map[string]Term, len(y))
		for _, q := range y {
			k, err := canonicalKey(q.Key)
			if err != nil {
				return false
			}
			byKey[k] = q.Value
		}
		for _, p := range x {
			k, err := canonicalKey(p.Key)
			if err != nil {
				return false
			}
			v, found := byKey[k]
			if !found || !Equal(p.Value, v) {
				return false
			}
		}
		return true
	case Pid:
		y, ok := b.(Pid)
		return ok && x == y
	case Port:
		y, ok := b.(Port)
		return ok && x == y
	case Ref:
		y, ok := b.(Ref)
		return ok && x.Node == y.Node && x.Creation == y.Creation && slices.Equal(x.ID, y.ID)
	case Export:
		y, ok := b.(Export)
		return ok && x == y
	case Fun:
		y, ok := b.(Fun)
		return ok && bytes.Equal(x.Raw, y.Raw)
	}
	return false
}

func intValue(t Term) (*big.Int, bool) {
	switch v := t.(type) {
	case int64:
		return big.NewInt(v), true
	case int:
		return big.NewInt(int64(v)), true
	case *big.Int:
		return v, true
	}
	return nil, false
}
