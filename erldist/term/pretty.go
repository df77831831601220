package term

import (
	"encoding/binary"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Pretty prints t as Erlang/OTP 25's io_lib:format("~p", [T]) does at
// column 1 with the default line length of 80, latin-1 output: the format of
// ejabberdctl dump and mnesia:dump_to_textfile, so that the two can be
// compared line by line. Characters above 255 appear as in Erlang's latin-1
// output (escaped); the returned string holds latin-1 characters as runes.
//
// The layout follows io_lib_pretty's rules: a term that fits on the rest of
// the line is written on one line; otherwise lists and tuples break after
// elements, tagged tuples ({atom, ...}) indent after their tag when it is
// short enough, maps break after pairs, and long binaries of integers wrap.
func Pretty(t Term) string { return PrettyWidth(t, 80) }

// PrettyWidth is Pretty with another line length: io_lib:print(T, 1,
// LineLength, -1). ejabberd writes Erlang terms into SQL text columns with
// a line length of 999999, that is on one line (misc:term_to_expr).
func PrettyWidth(t Term, lineLength int) string {
	p := &pretty{ll: lineLength}
	f := p.length(t)
	var sb strings.Builder
	p.m = f.len
	if f.len < p.ll-1 {
		p.write(&sb, f)
		return sb.String()
	}
	tind := 1
	for _, try := range []int{-1, 4} {
		if p.cind(f, 1, try, 0, 0) {
			tind = try
			break
		}
	}
	p.pp(&sb, f, 1, tind, indent(1), 0, 0)
	return sb.String()
}

type pform int

const (
	pLeaf  pform = iota // already written text
	pList               // [...]; elems, maybe tail
	pTuple              // {...}
	pMap                // #{...}
	pPair               // K => V
	pBin                // <<1,2,3>>: parts "1" "2" "3" (or "X:L" last)
)

type pnode struct {
	form   pform
	s      string // pLeaf
	elems  []*pnode
	tail   *pnode // improper list tail
	tagged bool
	k, v   *pnode
	parts  []string // pBin
	len    int
}

type pretty struct {
	ll, m int
}

// length builds the intermediate form with each node's one-line length
// (io_lib_pretty:print_length with unlimited depth).
func (p *pretty) length(t Term) *pnode {
	leaf := func(s string) *pnode { return &pnode{form: pLeaf, s: s, len: charLen(s)} }
	switch v := t.(type) {
	case Atom:
		return leaf(writeAtomLatin1(v))
	case List:
		if len(v) == 0 {
			return leaf("[]")
		}
		if s, ok := latin1String(v); ok {
			return leaf(writeLatin1String(s))
		}
		return p.list(v, nil)
	case Charlist:
		if len(v) == 0 {
			return leaf("[]")
		}
		if printableLatin1([]byte(v)) {
			return leaf(writeLatin1String(string(v)))
		}
		return p.list(v.List(), nil)
	case ImproperList:
		return p.list(v.Elems, v.Tail)
	case Tuple:
		if len(v) == 0 {
			return leaf("{}")
		}
		n := &pnode{form: pTuple}
		for _, e := range v {
			n.elems = append(n.elems, p.length(e))
		}
		_, isAtom := v[0].(Atom)
		n.tagged = isAtom && len(v) > 1
		n.len = listLen(n.elems, nil, 2)
		return n
	case Map:
		if len(v) == 0 {
			return leaf("#{}")
		}
		n := &pnode{form: pMap}
		for _, pr := range v {
			k, val := p.length(pr.Key), p.length(pr.Value)
			n.elems = append(n.elems, &pnode{form: pPair, k: k, v: val, len: k.len + 4 + val.len})
		}
		n.len = listLen(n.elems, nil, 3)
		return n
	case Binary:
		if len(v) == 0 {
			return leaf("<<>>")
		}
		if printableLatin1(v) {
			s := writeLatin1String(string(v))
			return leaf("<<" + s + ">>")
		}
		return binNode(v, 0)
	case BitBinary:
		return binNode(v.Bytes, v.Bits)
	}
	return leaf(writeAtomic(t))
}

func (p *pretty) list(elems []Term, tail Term) *pnode {
	n := &pnode{form: pList}
	for _, e := range elems {
		n.elems = append(n.elems, p.length(e))
	}
	if tail != nil {
		n.tail = p.length(tail)
	}
	n.len = listLen(n.elems, n.tail, 2)
	return n
}

// binNode is a binary that is not printable text: its bytes as integers.
func binNode(b []byte, bits uint8) *pnode {
	n := &pnode{form: pBin}
	last := len(b)
	if bits != 0 && bits != 8 {
		last--
	}
	for i := 0; i < last; i++ {
		n.parts = append(n.parts, strconv.Itoa(int(b[i])))
	}
	if last < len(b) {
		n.parts = append(n.parts, strconv.Itoa(int(b[last])>>(8-bits))+":"+strconv.Itoa(int(bits)))
	}
	n.len = 4 + len(n.parts) - 1
	for _, s := range n.parts {
		n.len += len(s)
	}
	return n
}

func listLen(elems []*pnode, tail *pnode, l0 int) int {
	n := l0
	for i, e := range elems {
		if i > 0 {
			n++
		}
		n += e.len
	}
	if tail != nil {
		n += 1 + tail.len
	}
	return n
}

// isLeaf is io_lib_pretty's ?ATM: the node is plain text.
func isLeaf(n *pnode) bool { return n.form == pLeaf }

func (p *pretty) write(sb *strings.Builder, n *pnode) {
	switch n.form {
	case pLeaf:
		sb.WriteString(n.s)
	case pList, pTuple, pMap:
		open, closeS, sep := "[", "]", "|"
		if n.form == pTuple {
			open, closeS, sep = "{", "}", ","
		} else if n.form == pMap {
			open, closeS, sep = "#{", "}", ","
		}
		sb.WriteString(open)
		for i, e := range n.elems {
			if i > 0 {
				sb.WriteByte(',')
			}
			p.write(sb, e)
		}
		if n.tail != nil {
			sb.WriteString(sep)
			p.write(sb, n.tail)
		}
		sb.WriteString(closeS)
	case pPair:
		p.write(sb, n.k)
		sb.WriteString(" => ")
		p.write(sb, n.v)
	case pBin:
		sb.WriteString("<<" + strings.Join(n.parts, ",") + ">>")
	}
}

func lastDepth(rest int, ld int) int {
	if rest > 0 {
		return 0
	}
	return ld + 1
}

// fits is the common test: the node fits on the rest of the line.
func (p *pretty) fits(n *pnode, col, ld, w int) bool {
	return n.len < p.ll-col-ld && n.len+w+ld <= p.m
}

func (p *pretty) pp(sb *strings.Builder, n *pnode, col, tind int, ind string, ld, w int) {
	if p.fits(n, col, ld, w) {
		p.write(sb, n)
		return
	}
	switch n.form {
	case pList:
		sb.WriteByte('[')
		p.ppList(sb, n.elems, n.tail, col+1, tind, indentBy(1, ind), ld, "|", w+1)
		sb.WriteByte(']')
	case pTuple:
		sb.WriteByte('{')
		if n.tagged {
			p.ppTagTuple(sb, n.elems, col, tind, ind, ld, w+1)
		} else {
			p.ppList(sb, n.elems, nil, col+1, tind, indentBy(1, ind), ld, ",", w+1)
		}
		sb.WriteByte('}')
	case pMap:
		sb.WriteString("#{")
		p.ppMap(sb, n.elems, col+2, tind, indentBy(2, ind), ld, w+1)
		sb.WriteByte('}')
	case pBin:
		p.ppBinary(sb, n, col+2, indentBy(2, ind), ld, w)
	default:
		p.write(sb, n)
	}
}

func (p *pretty) ppTagTuple(sb *strings.Builder, elems []*pnode, col, tind int, ind string, ld, w int) {
	tag := elems[0]
	tagInd := tag.len + 2
	tcol := col + tagInd
	if tind > 0 && tagInd > tind {
		col1 := col + tind
		p.write(sb, tag)
		p.ppTail(sb, elems[1:], nil, col1, tcol, tind, indentBy(tind, ind), ld, ",", w+tag.len)
		return
	}
	p.write(sb, tag)
	sb.WriteByte(',')
	p.ppList(sb, elems[1:], nil, tcol, tind, indentBy(tagInd, ind), ld, ",", w+tag.len+1)
}

func (p *pretty) ppList(sb *strings.Builder, elems []*pnode, tail *pnode, col0, tind int, ind string, ld int, sep string, w int) {
	we := p.ppElement(sb, elems[0], col0, tind, ind, lastDepth(len(elems)-1, ld), w)
	p.ppTail(sb, elems[1:], tail, col0, col0+we, tind, ind, ld, sep, w+we)
}

func (p *pretty) ppTail(sb *strings.Builder, elems []*pnode, tail *pnode, col0, col, tind int, ind string, ld int, sep string, w int) {
	for i, e := range elems {
		ld1 := lastDepth(len(elems)-1-i, ld)
		eLen := 1 + e.len
		if isLeaf(e) && ((ld1 == 0 && eLen+1 < p.ll-col && w+eLen+1 <= p.m) ||
			(ld1 > 0 && eLen < p.ll-col-ld1 && w+eLen+ld1 <= p.m)) {
			sb.WriteByte(',')
			p.write(sb, e)
			col += eLen
			w += eLen
			continue
		}
		sb.WriteString(",\n" + ind)
		we := p.ppElement(sb, e, col0, tind, ind, ld1, 0)
		col = col0 + we
		w = we
	}
	if tail == nil {
		return
	}
	// The improper tail, after '|' (or ',' in a tuple).
	if isLeaf(tail) && tail.len+1 < p.ll-col-(ld+1) && tail.len+1+w+(ld+1) <= p.m {
		sb.WriteString(sep)
		p.write(sb, tail)
		return
	}
	sb.WriteString(sep + "\n" + ind)
	p.pp(sb, tail, col0, tind, ind, ld+1, 0)
}

func (p *pretty) ppElement(sb *strings.Builder, e *pnode, col, tind int, ind string, ld, w int) int {
	if isLeaf(e) && p.fits(e, col, ld, w) {
		p.write(sb, e)
		return e.len
	}
	p.pp(sb, e, col, tind, ind, ld, w)
	return p.ll
}

func (p *pretty) ppMap(sb *strings.Builder, pairs []*pnode, col, tind int, ind string, ld, w int) {
	pw := p.ppPair(sb, pairs[0], col, tind, ind, lastDepth(len(pairs)-1, ld), w)
	col0 := col
	col = col0 + pw
	w = pw
	for i, pr := range pairs[1:] {
		ld1 := lastDepth(len(pairs)-2-i, ld)
		eLen := 1 + pr.len
		atm := isLeaf(pr.k) && isLeaf(pr.v)
		if atm && ((ld1 == 0 && eLen+1 < p.ll-col && w+eLen+1 <= p.m) ||
			(ld1 > 0 && eLen < p.ll-col-ld1 && w+eLen+ld1 <= p.m)) {
			sb.WriteByte(',')
			p.write(sb, pr)
			col += eLen
			w += eLen
			continue
		}
		sb.WriteString(",\n" + ind)
		pw := p.ppPair(sb, pr, col0, tind, ind, ld1, 0)
		col = col0 + pw
		w = pw
	}
}

func (p *pretty) ppPair(sb *strings.Builder, pr *pnode, col0, tind int, ind0 string, ld, w int) int {
	if p.fits(pr, col0, ld, w) {
		p.write(sb, pr)
		if isLeaf(pr.k) && isLeaf(pr.v) {
			return pr.len
		}
		return p.ll
	}
	i := mapValueIndent(tind)
	ind := indentBy(i, ind0)
	p.pp(sb, pr.k, col0, tind, ind0, ld, w)
	sb.WriteString(" =>\n" + ind)
	p.pp(sb, pr.v, col0+i, tind, ind, ld, 0)
	return p.ll
}

func mapValueIndent(tind int) int {
	if tind > 0 {
		return tind
	}
	return 4
}

// ppBinary wraps the integers of a long binary over several lines.
func (p *pretty) ppBinary(sb *strings.Builder, n *pnode, col int, ind string, ld, w int) {
	width := p.ll - col
	if m := p.m - 4 - w; m < width {
		width = m
	}
	width -= ld
	if width < 8 {
		width = 8
	}
	sb.WriteString("<<")
	left := width
	for i, part := range n.parts {
		last := i == len(n.parts)-1
		if !last {
			l := len(part) + 1
			if left-l < 0 {
				sb.WriteString("\n" + ind + part + ",")
				left = width - l
			} else {
				sb.WriteString(part + ",")
				left -= l
			}
			continue
		}
		if len(part) > left {
			sb.WriteString("\n" + ind)
		}
		sb.WriteString(part)
	}
	sb.WriteString(">>")
}

// cind reports whether tagged tuples can be printed with tind as their
// indentation (io_lib_pretty's cind: a layout that fails "throws").
func (p *pretty) cind(n *pnode, col, tind, ld, w int) bool {
	if p.fits(n, col, ld, w) {
		return true
	}
	switch n.form {
	case pList:
		return p.cindList(n.elems, n.tail, col+1, tind, ld, w+1)
	case pTuple:
		if n.tagged {
			return p.cindTagTuple(n.elems, col, tind, ld, w+1)
		}
		return p.cindList(n.elems, nil, col+1, tind, ld, w+1)
	case pMap:
		return p.cindMap(n.elems, col+2, tind, ld, w+2)
	}
	return true
}

func (p *pretty) cindTagTuple(elems []*pnode, col, tind, ld, w int) bool {
	tag := elems[0]
	tagInd := tag.len + 2
	tcol := col + tagInd
	if tind > 0 && tagInd > tind {
		col1 := col + tind
		if p.m+col1 <= p.ll || col1 <= p.ll/2 {
			return p.cindTail(elems[1:], nil, col1, tcol, tind, ld, w+tag.len)
		}
		return false
	}
	if p.m+tcol < p.ll || tcol < p.ll/2 {
		return p.cindList(elems[1:], nil, tcol, tind, ld, w+tag.len+1)
	}
	return false
}

func (p *pretty) cindList(elems []*pnode, tail *pnode, col0, tind, ld, w int) bool {
	if len(elems) == 0 {
		return true
	}
	we, ok := p.cindElement(elems[0], col0, tind, lastDepth(len(elems)-1, ld), w)
	if !ok {
		return false
	}
	return p.cindTail(elems[1:], tail, col0, col0+we, tind, ld, w+we)
}

func (p *pretty) cindTail(elems []*pnode, tail *pnode, col0, col, tind, ld, w int) bool {
	for i, e := range elems {
		ld1 := lastDepth(len(elems)-1-i, ld)
		eLen := 1 + e.len
		if isLeaf(e) && ((ld1 == 0 && eLen+1 < p.ll-col && w+eLen+1 <= p.m) ||
			(ld1 > 0 && eLen < p.ll-col-ld1 && w+eLen+ld1 <= p.m)) {
			col += eLen
			w += eLen
			continue
		}
		we, ok := p.cindElement(e, col0, tind, ld1, 0)
		if !ok {
			return false
		}
		col = col0 + we
		w = we
	}
	if tail == nil {
		return true
	}
	if isLeaf(tail) && tail.len+1 < p.ll-col-(ld+1) && tail.len+1+w+(ld+1) <= p.m {
		return true
	}
	return p.cind(tail, col, tind, ld+1, 0)
}

func (p *pretty) cindElement(e *pnode, col, tind, ld, w int) (int, bool) {
	if isLeaf(e) && p.fits(e, col, ld, w) {
		return e.len, true
	}
	return p.ll, p.cind(e, col, tind, ld, w)
}

func (p *pretty) cindMap(pairs []*pnode, col, tind, ld, w int) bool {
	pw, ok := p.cindPair(pairs[0], col, tind, lastDepth(len(pairs)-1, ld), w)
	if !ok {
		return false
	}
	col0 := col
	col = col0 + pw
	w += pw
	for i, pr := range pairs[1:] {
		ld1 := lastDepth(len(pairs)-2-i, ld)
		eLen := 1 + pr.len
		atm := isLeaf(pr.k) && isLeaf(pr.v)
		if atm && ((ld1 == 0 && eLen+1 < p.ll-col && w+eLen+1 <= p.m) ||
			(ld1 > 0 && eLen < p.ll-col-ld1 && w+eLen+ld1 <= p.m)) {
			col += eLen
			w += eLen
			continue
		}
		pw, ok := p.cindPair(pr, col0, tind, ld1, 0)
		if !ok {
			return false
		}
		col = col0 + pw
		w = pw
	}
	return true
}

func (p *pretty) cindPair(pr *pnode, col0, tind, ld, w int) (int, bool) {
	if p.fits(pr, col0, ld, w) {
		if isLeaf(pr.k) && isLeaf(pr.v) {
			return pr.len, true
		}
		return p.ll, true
	}
	if !p.cind(pr.k, col0, tind, ld, w) {
		return 0, false
	}
	return p.ll, p.cind(pr.v, col0+mapValueIndent(tind), tind, ld, 0)
}

func indent(col int) string { return strings.Repeat(" ", col-1) }

func indentBy(n int, ind string) string { return strings.Repeat(" ", n) + ind }

// charLen counts characters (the printer's texts are latin-1 as runes).
func charLen(s string) int {
	n := 0
	for range s {
		n++
	}
	return n
}

// latin1String reports whether a list is a printable latin-1 string.
func latin1String(l List) (string, bool) {
	b := make([]byte, len(l))
	for i, e := range l {
		n, ok := Int(e)
		if !ok || n < 0 || n > 255 {
			return "", false
		}
		b[i] = byte(n)
	}
	if !printableLatin1(b) {
		return "", false
	}
	return string(b), true
}

// printableLatin1 follows io_lib:printable_latin1_list.
func printableLatin1(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= 32 && c <= 126, c >= 160:
		case c == '\n', c == '\r', c == '\t', c == '\v', c == '\b', c == '\f', c == 27:
		default:
			return false
		}
	}
	return true
}

// writeLatin1String quotes bytes as io_lib:write_latin1_string does; bytes
// 160..255 stay as characters (returned as runes U+00A0..U+00FF).
func writeLatin1String(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		writeStringChar(&sb, rune(s[i]), '"')
	}
	sb.WriteByte('"')
	return sb.String()
}

func writeStringChar(sb *strings.Builder, c rune, q rune) {
	switch {
	case c == q:
		sb.WriteByte('\\')
		sb.WriteRune(c)
	case c == '\\':
		sb.WriteString(`\\`)
	case c >= 32 && c <= 126:
		sb.WriteRune(c)
	case c >= 160 && c <= 255:
		sb.WriteRune(c)
	case c > 255:
		sb.WriteString(`\x{` + strings.ToUpper(strconv.FormatInt(int64(c), 16)) + `}`)
	case c == '\n':
		sb.WriteString(`\n`)
	case c == '\r':
		sb.WriteString(`\r`)
	case c == '\t':
		sb.WriteString(`\t`)
	case c == '\v':
		sb.WriteString(`\v`)
	case c == '\b':
		sb.WriteString(`\b`)
	case c == '\f':
		sb.WriteString(`\f`)
	case c == 27:
		sb.WriteString(`\e`)
	case c == 127:
		sb.WriteString(`\d`)
	default:
		sb.WriteByte('\\')
		sb.WriteByte(byte('0' + (c>>6)&7))
		sb.WriteByte(byte('0' + (c>>3)&7))
		sb.WriteByte(byte('0' + c&7))
	}
}

// writeAtomLatin1 is io_lib:write_atom_as_latin1.
func writeAtomLatin1(a Atom) string {
	if !atomNeedsQuotes(string(a)) {
		return string(a)
	}
	var sb strings.Builder
	sb.WriteByte('\'')
	for _, r := range string(a) {
		writeStringChar(&sb, r, '\'')
	}
	sb.WriteByte('\'')
	return sb.String()
}

// writeAtomic is io_lib:write for terms that are not containers.
func writeAtomic(t Term) string {
	switch v := t.(type) {
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case *big.Int:
		return v.String()
	case float64:
		return ErlangFloat(v)
	case Pid:
		return "<0." + strconv.FormatUint(uint64(v.ID), 10) + "." + strconv.FormatUint(uint64(v.Serial), 10) + ">"
	case Port:
		return "#Port<0." + strconv.FormatUint(v.ID, 10) + ">"
	case Ref:
		s := "#Ref<0"
		for i := len(v.ID) - 1; i >= 0; i-- {
			s += "." + strconv.FormatUint(uint64(v.ID[i]), 10)
		}
		return s + ">"
	case Export:
		return "fun " + writeAtomLatin1(v.Module) + ":" + writeAtomLatin1(v.Function) + "/" + strconv.Itoa(v.Arity)
	case Fun:
		return funText(v)
	}
	return Format(t)
}

// funText is erlang:fun_to_list of a local fun: #Fun<Module.Index.Uniq>.
func funText(f Fun) string {
	b := f.Raw
	if len(b) < 30 || b[0] != tagNewFun {
		return "#Fun<>"
	}
	// NEW_FUN_EXT: Size:4, Arity:1, Uniq:16, Index:4, NumFree:4, Module, OldIndex, OldUniq, ...
	pos := 1 + 4 + 1 + 16
	index := binary.BigEndian.Uint32(b[pos:])
	pos += 8
	mod, n, err := readAtom(b[pos:])
	if err != nil {
		return "#Fun<>"
	}
	pos += n
	oldIndex, m := readSmallInt(b[pos:])
	pos += m
	oldUniq, _ := readSmallInt(b[pos:])
	_ = index
	return "#Fun<" + string(mod) + "." + strconv.FormatInt(oldIndex, 10) + "." + strconv.FormatInt(oldUniq, 10) + ">"
}

func readSmallInt(b []byte) (int64, int) {
	if len(b) >= 2 && b[0] == tagSmallInt {
		return int64(b[1]), 2
	}
	if len(b) >= 5 && b[0] == tagInt {
		return int64(int32(binary.BigEndian.Uint32(b[1:]))), 5
	}
	return 0, len(b)
}

// ErlangFloat prints a float as OTP 25's float_to_list(F, [short]): the
// shortest digits that read back exactly, in fixed notation when that is
// no longer than scientific notation (and the value is below 2^53 if it is
// a whole number), else in scientific notation: 0.1, 100.0, 1.0e3, 1.23e-4.
func ErlangFloat(f float64) string {
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// Shortest digits d1..dn and exponent such that f = 0.d1..dn * 10^place.
	s := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expS, _ := strings.Cut(s, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expS)
	n, place := len(digits), exp+1
	sciExp := strconv.Itoa(place - 1)
	var sci string
	if n == 1 {
		sci = digits + ".0e" + sciExp
	} else {
		sci = digits[:1] + "." + digits[1:] + "e" + sciExp
	}
	var fixed string
	switch {
	case place <= 0:
		fixed = "0." + strings.Repeat("0", -place) + digits
	case place < n:
		fixed = digits[:place] + "." + digits[place:]
	default:
		fixed = digits + strings.Repeat("0", place-n) + ".0"
	}
	if place >= n && f >= 1<<53 {
		return sign + sci
	}
	if len(fixed) <= len(sci) {
		return sign + fixed
	}
	return sign + sci
}
