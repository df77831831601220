package term

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// TextReader reads Erlang terms written as text, each ended by a full stop:
// the files file:consult reads and mnesia:dump_to_textfile and ejabberdctl
// dump write. Besides the literal syntax Erlang accepts it reads what ~p
// prints for values that have no literal form: pids (<0.42.0>), references
// (#Ref<0.1.2.3>) and ports (#Port<0.5>), all as local to an unnamed node.
// Funs printed as #Fun<...> have lost their code and are reported as errors.
//
// Text is latin-1 unless a "coding: utf-8" comment on the first two lines,
// as epp honours it, or TextOptions.UTF8 says otherwise. Latin-1 is what a
// file opened without an encoding receives and what mnesia:load_textfile
// assumes; file:consult assumes UTF-8 and so reads the bytes of UTF-8 text
// in binaries wrongly.
type TextReader struct {
	r        *bufio.Reader
	utf8     bool
	line     int
	col      int
	limit    int
	used     int
	sawTerm  bool
	fatal    error
	startLn  int
	startCol int
	depth    int
	off      int64
	startOff int64
}

// TextOptions adjusts a TextReader.
type TextOptions struct {
	// UTF8 reads the text as UTF-8 instead of latin-1.
	UTF8 bool
	// MaxTermBytes bounds the text of one term (default 256 MiB); a longer
	// term is reported as an error and skipped, so that a lost quote cannot
	// make the reader hold the rest of a large file in memory.
	MaxTermBytes int
}

// TextError is a syntax error at a position of the text (1-based).
type TextError struct {
	Line, Col int
	Msg       string
}

func (e *TextError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Col, e.Msg)
}

// NewTextReader reads terms from r.
func NewTextReader(r io.Reader, opt TextOptions) *TextReader {
	if opt.MaxTermBytes <= 0 {
		opt.MaxTermBytes = 256 << 20
	}
	return &TextReader{r: bufio.NewReaderSize(r, 256<<10), utf8: opt.UTF8, line: 1, col: 1, limit: opt.MaxTermBytes}
}

// Line is the line of the reader's position: after Next, the line that holds
// the end of the term just read.
func (tr *TextReader) Line() int { return tr.line }

// StartLine is the line where the term that Next last returned (or failed
// on) starts.
func (tr *TextReader) StartLine() int { return tr.startLn }

// StartOffset is the byte offset where that term starts.
func (tr *TextReader) StartOffset() int64 { return tr.startOff }

// ParseText reads the single term in s; a final full stop is optional.
func ParseText(s string) (Term, error) {
	tr := NewTextReader(strings.NewReader(s), TextOptions{UTF8: true})
	if err := tr.skipSpace(); err != nil {
		return nil, err
	}
	t, err := tr.term()
	if err != nil {
		return nil, err
	}
	if err := tr.skipSpace(); err != nil {
		return nil, err
	}
	if c, ok := tr.peek(); ok && c == '.' {
		tr.advance()
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
	}
	if _, ok := tr.peek(); ok {
		return nil, tr.errorf("unexpected text after the term")
	}
	return t, nil
}

var errTooLong = errors.New("term too long")

// maxDigits bounds the length of a number: reading a decimal number takes
// time quadratic in its length, and no stored value comes near this.
const maxDigits = 100000

// maxDepth bounds nesting, which the reader follows by recursion.
const maxDepth = 100000

// Next returns the next term, or io.EOF after the last one. After a
// *TextError the reader has skipped to the end of the bad term (the next
// full stop at the end of a line), so that reading can go on; other errors
// are final.
func (tr *TextReader) Next() (Term, error) {
	if tr.fatal != nil {
		return nil, tr.fatal
	}
	tr.used, tr.depth = 0, 0
	if err := tr.skipSpace(); err != nil {
		return nil, tr.fail(err)
	}
	tr.startLn, tr.startCol, tr.startOff = tr.line, tr.col, tr.off
	if _, ok := tr.peek(); !ok {
		if tr.fatal != nil {
			return nil, tr.fatal
		}
		return nil, io.EOF
	}
	tr.sawTerm = true
	t, err := tr.term()
	if err == nil {
		err = tr.fullStop()
	}
	if err != nil {
		return nil, tr.fail(err)
	}
	return t, nil
}

func (tr *TextReader) fail(err error) error {
	var te *TextError
	if tr.fatal != nil {
		return tr.fatal
	}
	if errors.As(err, &te) {
		tr.resync()
		return err
	}
	if errors.Is(err, errTooLong) {
		te := &TextError{Line: tr.startLn, Col: tr.startCol, Msg: fmt.Sprintf("term longer than %d bytes", tr.limit)}
		tr.resync()
		return te
	}
	tr.fatal = err
	return err
}

// resync skips to just after a full stop that ends a line: ~p never writes
// a newline inside a term's strings, so that is where the next term starts.
func (tr *TextReader) resync() {
	prevDot := false
	for {
		c, err := tr.r.ReadByte()
		if err != nil {
			if err != io.EOF {
				tr.fatal = err
			}
			return
		}
		tr.count(c)
		if c == '\n' && prevDot {
			return
		}
		if c != '\r' {
			prevDot = c == '.'
		}
	}
}

func (tr *TextReader) fullStop() error {
	if err := tr.skipSpace(); err != nil {
		return err
	}
	c, ok := tr.peek()
	if !ok {
		if tr.fatal != nil {
			return tr.fatal
		}
		return tr.errorf("missing full stop at the end of the file")
	}
	if c != '.' {
		return tr.errorf("expected a full stop after the term, found %s", quoteByte(c))
	}
	tr.advance()
	c, ok = tr.peek()
	if ok && !tr.isSpace(c) && c != '%' {
		return tr.errorf("expected white space after the full stop")
	}
	return nil
}

func (tr *TextReader) errorf(format string, args ...any) error {
	return &TextError{Line: tr.line, Col: tr.col, Msg: fmt.Sprintf(format, args...)}
}

func quoteByte(c byte) string {
	if c >= 32 && c < 127 {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// peek returns the next byte without consuming it.
func (tr *TextReader) peek() (byte, bool) {
	b, err := tr.r.Peek(1)
	if err != nil {
		if err != io.EOF && tr.fatal == nil {
			tr.fatal = err
		}
		return 0, false
	}
	return b[0], true
}

// peekAt returns the byte i positions ahead.
func (tr *TextReader) peekAt(i int) (byte, bool) {
	b, err := tr.r.Peek(i + 1)
	if err != nil || len(b) <= i {
		return 0, false
	}
	return b[i], true
}

func (tr *TextReader) count(c byte) {
	tr.off++
	if c == '\n' {
		tr.line++
		tr.col = 1
	} else if !tr.utf8 || c < 0x80 || c >= 0xC0 {
		tr.col++
	}
}

// advance consumes one byte.
func (tr *TextReader) advance() {
	c, err := tr.r.ReadByte()
	if err == nil {
		tr.count(c)
		tr.used++
	}
}

// readChar consumes one character of the text's encoding.
func (tr *TextReader) readChar() (rune, error) {
	c, err := tr.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			return 0, tr.errorf("unexpected end of file")
		}
		return 0, err
	}
	tr.count(c)
	tr.used++
	if tr.used > tr.limit {
		return 0, errTooLong
	}
	if !tr.utf8 || c < 0x80 {
		return rune(c), nil
	}
	// A UTF-8 sequence: gather its continuation bytes.
	buf := [4]byte{c}
	n := 1
	for n < 4 && !utf8.FullRune(buf[:n]) {
		d, ok := tr.peek()
		if !ok || d&0xC0 != 0x80 {
			break
		}
		tr.advance()
		buf[n] = d
		n++
	}
	r, size := utf8.DecodeRune(buf[:n])
	if r == utf8.RuneError && size <= 1 {
		return 0, tr.errorf("invalid UTF-8 in the text (read it as latin-1?)")
	}
	return r, nil
}

// isSpace is erl_scan's white space: control characters and the space,
// and in latin-1 text also 0x80..0xA0.
func (tr *TextReader) isSpace(c byte) bool {
	return c <= ' ' || (!tr.utf8 && c >= 0x80 && c <= 0xA0)
}

var codingRE = regexp.MustCompile(`coding\s*[:=]\s*([-a-zA-Z0-9_]+)`)

// skipSpace skips white space and comments; a coding comment on one of the
// first two lines, before any term, selects the encoding.
func (tr *TextReader) skipSpace() error {
	for {
		c, ok := tr.peek()
		if !ok {
			return nil
		}
		switch {
		case c == '%':
			line := tr.line
			var sb strings.Builder
			for {
				c, ok := tr.peek()
				if !ok || c == '\n' {
					break
				}
				tr.advance()
				if sb.Len() < 200 {
					sb.WriteByte(c)
				}
			}
			if !tr.sawTerm && line <= 2 {
				if m := codingRE.FindStringSubmatch(sb.String()); m != nil {
					switch strings.ToLower(m[1]) {
					case "utf-8", "utf8":
						tr.utf8 = true
					case "latin-1", "latin1", "iso-8859-1":
						tr.utf8 = false
					}
				}
			}
		case tr.isSpace(c):
			tr.advance()
		default:
			return nil
		}
		if tr.used > tr.limit {
			return errTooLong
		}
	}
}

// expect consumes the byte c (after white space) or fails.
func (tr *TextReader) expect(c byte, what string) error {
	if err := tr.skipSpace(); err != nil {
		return err
	}
	d, ok := tr.peek()
	if !ok {
		return tr.errorf("unexpected end of file, expected %s", what)
	}
	if d != c {
		return tr.errorf("expected %s, found %s", what, quoteByte(d))
	}
	tr.advance()
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Latin-1 letter classes of erl_scan.
func isLowerStart(c rune) bool {
	return (c >= 'a' && c <= 'z') || (c >= 0xDF && c <= 0xFF && c != 0xF7)
}
func isUpperStart(c rune) bool {
	return (c >= 'A' && c <= 'Z') || c == '_' || (c >= 0xC0 && c <= 0xDE && c != 0xD7)
}
func isNameChar(c rune) bool {
	return isLowerStart(c) || isUpperStart(c) || (c >= '0' && c <= '9') || c == '@'
}

// term reads one term; white space before it is already skipped.
func (tr *TextReader) term() (Term, error) {
	tr.depth++
	defer func() { tr.depth-- }()
	if tr.depth > maxDepth {
		return nil, tr.errorf("terms nested deeper than %d levels", maxDepth)
	}
	c, ok := tr.peek()
	if !ok {
		if tr.fatal != nil {
			return nil, tr.fatal
		}
		return nil, tr.errorf("unexpected end of file, expected a term")
	}
	if tr.used > tr.limit {
		return nil, errTooLong
	}
	switch {
	case c == '{':
		tr.advance()
		elems, err := tr.sequence('}')
		if err != nil {
			return nil, err
		}
		return Tuple(elems), nil
	case c == '[':
		tr.advance()
		return tr.list()
	case c == '#':
		return tr.hash()
	case c == '<':
		if d, _ := tr.peekAt(1); d == '<' {
			tr.advance()
			tr.advance()
			return tr.bitstring()
		}
		tr.advance()
		return tr.pid()
	case c == '"':
		return tr.strings()
	case c == '\'':
		tr.advance()
		s, err := tr.quoted('\'')
		if err != nil {
			return nil, err
		}
		return Atom(string(s)), nil
	case c == '$':
		tr.advance()
		r, err := tr.charLit()
		if err != nil {
			return nil, err
		}
		return int64(r), nil
	case isDigit(c):
		return tr.number(false)
	case c == '-' || c == '+':
		tr.advance()
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
		d, ok := tr.peek()
		if !ok || !(isDigit(d) || d == '$') {
			return nil, tr.errorf("expected a number after %q", c)
		}
		if d == '$' {
			tr.advance()
			r, err := tr.charLit()
			if err != nil {
				return nil, err
			}
			if c == '-' {
				return -int64(r), nil
			}
			return int64(r), nil
		}
		return tr.number(c == '-')
	}
	// An unquoted atom, a keyword or a variable.
	first, err := tr.peekChar()
	if err != nil {
		return nil, err
	}
	switch {
	case isLowerStart(first):
		name, err := tr.name()
		if err != nil {
			return nil, err
		}
		if name == "fun" {
			return tr.export()
		}
		if reservedWords[name] {
			return nil, tr.errorf("%q is a reserved word; as an atom it must be quoted", name)
		}
		return Atom(name), nil
	case isUpperStart(first):
		name, _ := tr.name()
		return nil, tr.errorf("variable %s: a data file holds only literal terms", name)
	}
	return nil, tr.errorf("unexpected %s", quoteByte(c))
}

// peekChar returns the next character without consuming it.
func (tr *TextReader) peekChar() (rune, error) {
	c, ok := tr.peek()
	if !ok {
		return 0, tr.errorf("unexpected end of file")
	}
	if !tr.utf8 || c < 0x80 {
		return rune(c), nil
	}
	b, _ := tr.r.Peek(4)
	r, _ := utf8.DecodeRune(b)
	return r, nil
}

// name reads an unquoted atom or variable name.
func (tr *TextReader) name() (string, error) {
	var sb strings.Builder
	for {
		c, ok := tr.peek()
		if !ok {
			break
		}
		if c < 0x80 {
			if !isNameChar(rune(c)) {
				break
			}
			tr.advance()
			sb.WriteByte(c)
			continue
		}
		r, err := tr.peekChar()
		if err != nil || !isNameChar(r) {
			break
		}
		if _, err := tr.readChar(); err != nil {
			return "", err
		}
		sb.WriteRune(r)
	}
	return sb.String(), nil
}

// sequence reads comma-separated terms up to the closing byte.
func (tr *TextReader) sequence(closing byte) ([]Term, error) {
	if err := tr.skipSpace(); err != nil {
		return nil, err
	}
	if c, ok := tr.peek(); ok && c == closing {
		tr.advance()
		return nil, nil
	}
	var elems []Term
	for {
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
		t, err := tr.term()
		if err != nil {
			return nil, err
		}
		elems = append(elems, t)
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
		c, ok := tr.peek()
		switch {
		case !ok:
			return nil, tr.errorf("unexpected end of file, expected ',' or %q", closing)
		case c == ',':
			tr.advance()
		case c == closing:
			tr.advance()
			return elems, nil
		default:
			return nil, tr.errorf("expected ',' or %q, found %s", closing, quoteByte(c))
		}
	}
}

func (tr *TextReader) list() (Term, error) {
	if err := tr.skipSpace(); err != nil {
		return nil, err
	}
	if c, ok := tr.peek(); ok && c == ']' {
		tr.advance()
		return List{}, nil
	}
	var elems []Term
	for {
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
		t, err := tr.term()
		if err != nil {
			return nil, err
		}
		elems = append(elems, t)
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
		c, ok := tr.peek()
		switch {
		case !ok:
			return nil, tr.errorf("unexpected end of file in a list")
		case c == ',':
			tr.advance()
		case c == ']':
			tr.advance()
			return List(elems), nil
		case c == '|':
			tr.advance()
			if err := tr.skipSpace(); err != nil {
				return nil, err
			}
			tail, err := tr.term()
			if err != nil {
				return nil, err
			}
			if err := tr.expect(']', "']'"); err != nil {
				return nil, err
			}
			return joinList(elems, tail), nil
		default:
			return nil, tr.errorf("expected ',', '|' or ']', found %s", quoteByte(c))
		}
	}
}

// joinList builds [Elems | Tail], flattening a proper or improper list tail.
func joinList(elems []Term, tail Term) Term {
	switch t := tail.(type) {
	case List:
		return List(append(elems, t...))
	case Charlist:
		return List(append(elems, t.List()...))
	case ImproperList:
		return ImproperList{Elems: append(elems, t.Elems...), Tail: t.Tail}
	}
	return ImproperList{Elems: elems, Tail: tail}
}

// hash reads what starts with '#': a map, or ~p's text for a reference,
// port or fun.
func (tr *TextReader) hash() (Term, error) {
	tr.advance()
	c, ok := tr.peek()
	if ok && c == '{' {
		tr.advance()
		return tr.mapBody()
	}
	name, err := tr.name()
	if err != nil {
		return nil, err
	}
	if c, ok := tr.peek(); !ok || c != '<' {
		if name != "" {
			return nil, tr.errorf("record syntax #%s{...} cannot be read without the record definition", name)
		}
		return nil, tr.errorf("unexpected '#'")
	}
	tr.advance()
	switch name {
	case "Ref":
		nums, err := tr.dotted()
		if err != nil {
			return nil, err
		}
		if len(nums) < 2 || len(nums) > 6 {
			return nil, tr.errorf("a reference has 2 to 6 numbers")
		}
		ref := Ref{Node: localNode(nums[0])}
		for i := len(nums) - 1; i >= 1; i-- {
			ref.ID = append(ref.ID, uint32(nums[i]))
		}
		return ref, nil
	case "Port":
		nums, err := tr.dotted()
		if err != nil {
			return nil, err
		}
		if len(nums) != 2 {
			return nil, tr.errorf("a port has 2 numbers")
		}
		return Port{Node: localNode(nums[0]), ID: nums[1]}, nil
	case "Fun":
		return nil, tr.errorf("a fun printed as #Fun<...> has lost its code and cannot be read back")
	}
	return nil, tr.errorf("unknown #%s<...>", name)
}

func localNode(n uint64) Atom {
	if n == 0 {
		return "nonode@nohost"
	}
	return Atom(fmt.Sprintf("unknown_node_%d@nohost", n))
}

// dotted reads N.N.N...> (the '<' is consumed).
func (tr *TextReader) dotted() ([]uint64, error) {
	var nums []uint64
	for {
		var n uint64
		digits := 0
		for {
			c, ok := tr.peek()
			if !ok || !isDigit(c) {
				break
			}
			tr.advance()
			digits++
			if n > (math.MaxUint64-9)/10 {
				return nil, tr.errorf("number too large")
			}
			n = n*10 + uint64(c-'0')
		}
		if digits == 0 {
			return nil, tr.errorf("expected a number")
		}
		nums = append(nums, n)
		c, ok := tr.peek()
		if !ok {
			return nil, tr.errorf("unexpected end of file")
		}
		tr.advance()
		if c == '>' {
			return nums, nil
		}
		if c != '.' {
			return nil, tr.errorf("expected '.' or '>', found %s", quoteByte(c))
		}
	}
}

func (tr *TextReader) pid() (Term, error) {
	nums, err := tr.dotted()
	if err != nil {
		return nil, err
	}
	if len(nums) != 3 || nums[1] > math.MaxUint32 || nums[2] > math.MaxUint32 {
		return nil, tr.errorf("a pid is <Node.Number.Serial>")
	}
	return Pid{Node: localNode(nums[0]), ID: uint32(nums[1]), Serial: uint32(nums[2])}, nil
}

func (tr *TextReader) mapBody() (Term, error) {
	m := Map{}
	if err := tr.skipSpace(); err != nil {
		return nil, err
	}
	if c, ok := tr.peek(); ok && c == '}' {
		tr.advance()
		return m, nil
	}
	for {
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
		k, err := tr.term()
		if err != nil {
			return nil, err
		}
		if err := tr.expect('=', "'=>'"); err != nil {
			return nil, err
		}
		if c, ok := tr.peek(); !ok || c != '>' {
			return nil, tr.errorf("expected '=>'")
		}
		tr.advance()
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
		v, err := tr.term()
		if err != nil {
			return nil, err
		}
		m = append(m, MapPair{Key: k, Value: v})
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
		c, ok := tr.peek()
		switch {
		case ok && c == ',':
			tr.advance()
		case ok && c == '}':
			tr.advance()
			return dedupeMap(m), nil
		case !ok:
			return nil, tr.errorf("unexpected end of file in a map")
		default:
			return nil, tr.errorf("expected ',' or '}' in a map, found %s", quoteByte(c))
		}
	}
}

// dedupeMap keeps the last value of a repeated key, as Erlang's map
// construction does.
func dedupeMap(m Map) Map {
	if len(m) < 2 {
		return m
	}
	seen := make(map[string]int, len(m))
	out := m[:0]
	for _, p := range m {
		k, err := canonicalKey(p.Key)
		if err != nil {
			out = append(out, p)
			continue
		}
		if i, ok := seen[k]; ok {
			out[i].Value = p.Value
			continue
		}
		seen[k] = len(out)
		out = append(out, p)
	}
	return out
}

// export reads "M:F/A" after the keyword fun.
func (tr *TextReader) export() (Term, error) {
	atom := func() (Atom, error) {
		if err := tr.skipSpace(); err != nil {
			return "", err
		}
		t, err := tr.term()
		if err != nil {
			return "", err
		}
		a, ok := t.(Atom)
		if !ok {
			return "", tr.errorf("expected an atom in fun M:F/A")
		}
		return a, nil
	}
	m, err := atom()
	if err != nil {
		return nil, err
	}
	if err := tr.expect(':', "':' in fun M:F/A"); err != nil {
		return nil, err
	}
	f, err := atom()
	if err != nil {
		return nil, err
	}
	if err := tr.expect('/', "'/' in fun M:F/A"); err != nil {
		return nil, err
	}
	if err := tr.skipSpace(); err != nil {
		return nil, err
	}
	a, err := tr.term()
	if err != nil {
		return nil, err
	}
	n, ok := a.(int64)
	if !ok || n < 0 || n > 255 {
		return nil, tr.errorf("bad arity in fun M:F/A")
	}
	return Export{Module: m, Function: f, Arity: int(n)}, nil
}

// number reads an integer (decimal or Base#Digits) or a float.
func (tr *TextReader) number(neg bool) (Term, error) {
	digits, err := tr.digits(10)
	if err != nil {
		return nil, err
	}
	c, _ := tr.peek()
	switch c {
	case '#':
		base, err := strconv.Atoi(digits)
		if err != nil || base < 2 || base > 36 {
			return nil, tr.errorf("bad base %s", digits)
		}
		tr.advance()
		ds, err := tr.digits(base)
		if err != nil {
			return nil, err
		}
		return intTerm(ds, base, neg, tr)
	case '.':
		if d, ok := tr.peekAt(1); ok && isDigit(d) {
			tr.advance()
			frac, err := tr.digits(10)
			if err != nil {
				return nil, err
			}
			s := digits + "." + frac
			if e, _ := tr.peek(); e == 'e' || e == 'E' {
				d1, _ := tr.peekAt(1)
				d2, _ := tr.peekAt(2)
				if isDigit(d1) || ((d1 == '-' || d1 == '+') && isDigit(d2)) {
					tr.advance()
					s += "e"
					if !isDigit(d1) {
						tr.advance()
						s += string(d1)
					}
					exp, err := tr.digits(10)
					if err != nil {
						return nil, err
					}
					s += exp
				}
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, tr.errorf("bad float %s", s)
			}
			if neg {
				f = -f
			}
			return f, nil
		}
	}
	return intTerm(digits, 10, neg, tr)
}

func intTerm(ds string, base int, neg bool, tr *TextReader) (Term, error) {
	if n, err := strconv.ParseInt(ds, base, 64); err == nil {
		if neg {
			n = -n
		}
		return n, nil
	}
	b, ok := new(big.Int).SetString(ds, base)
	if !ok {
		return nil, tr.errorf("bad integer %s", ds)
	}
	if neg {
		b.Neg(b)
	}
	if b.IsInt64() {
		return b.Int64(), nil
	}
	return b, nil
}

// digits reads digits of base, allowing single '_' separators between them.
func (tr *TextReader) digits(base int) (string, error) {
	var sb strings.Builder
	for {
		c, ok := tr.peek()
		if !ok {
			break
		}
		v := digitValue(c)
		if v < base {
			tr.advance()
			sb.WriteByte(c)
			if sb.Len() > maxDigits {
				return "", tr.errorf("number longer than %d digits", maxDigits)
			}
			continue
		}
		if c == '_' && sb.Len() > 0 {
			if d, ok := tr.peekAt(1); ok && digitValue(d) < base {
				tr.advance()
				continue
			}
		}
		break
	}
	if sb.Len() == 0 {
		return "", tr.errorf("expected digits")
	}
	return sb.String(), nil
}

func digitValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}

// strings reads one or more adjacent string literals.
func (tr *TextReader) strings() (Term, error) {
	var all []rune
	for {
		tr.advance() // the opening quote
		s, err := tr.quoted('"')
		if err != nil {
			return nil, err
		}
		all = append(all, s...)
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
		if c, ok := tr.peek(); !ok || c != '"' {
			break
		}
	}
	return stringTerm(all), nil
}

func stringTerm(rs []rune) Term {
	if len(rs) == 0 {
		return List{}
	}
	b := make([]byte, len(rs))
	for i, r := range rs {
		if r > 255 {
			l := make(List, len(rs))
			for j, r := range rs {
				l[j] = int64(r)
			}
			return l
		}
		b[i] = byte(r)
	}
	return Charlist(b)
}

// quoted reads characters up to the closing quote q (the opening one is consumed).
func (tr *TextReader) quoted(q rune) ([]rune, error) {
	var out []rune
	for {
		r, err := tr.readChar()
		if err != nil {
			return nil, err
		}
		switch r {
		case q:
			return out, nil
		case '\\':
			r, err = tr.escape()
			if err != nil {
				return nil, err
			}
		}
		out = append(out, r)
	}
}

func (tr *TextReader) charLit() (rune, error) {
	r, err := tr.readChar()
	if err != nil {
		return 0, err
	}
	if r == '\\' {
		return tr.escape()
	}
	return r, nil
}

// escape reads what follows a backslash.
func (tr *TextReader) escape() (rune, error) {
	r, err := tr.readChar()
	if err != nil {
		return 0, err
	}
	switch r {
	case 'b':
		return '\b', nil
	case 'd':
		return 127, nil
	case 'e':
		return 27, nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 's':
		return ' ', nil
	case 't':
		return '\t', nil
	case 'v':
		return '\v', nil
	case '^':
		c, err := tr.readChar()
		if err != nil {
			return 0, err
		}
		return c & 31, nil
	case 'x':
		if c, ok := tr.peek(); ok && c == '{' {
			tr.advance()
			var v rune
			n := 0
			for {
				c, ok := tr.peek()
				if !ok {
					return 0, tr.errorf("unexpected end of file in \\x{...}")
				}
				tr.advance()
				if c == '}' {
					break
				}
				d := digitValue(c)
				if d >= 16 || n >= 8 {
					return 0, tr.errorf("bad \\x{...} escape")
				}
				v = v*16 + rune(d)
				n++
			}
			if n == 0 || v > 0x10FFFF {
				return 0, tr.errorf("bad \\x{...} escape")
			}
			return v, nil
		}
		var v rune
		for i := 0; i < 2; i++ {
			c, ok := tr.peek()
			if !ok || digitValue(c) >= 16 {
				return 0, tr.errorf("bad \\x escape")
			}
			tr.advance()
			v = v*16 + rune(digitValue(c))
		}
		return v, nil
	}
	if r >= '0' && r <= '7' {
		v := r - '0'
		for i := 0; i < 2; i++ {
			c, ok := tr.peek()
			if !ok || c < '0' || c > '7' {
				break
			}
			tr.advance()
			v = v*8 + rune(c-'0')
		}
		return v, nil
	}
	return r, nil
}

// bitstring reads the segments of <<...>> (the "<<" is consumed).
func (tr *TextReader) bitstring() (Term, error) {
	var bw bitWriter
	if err := tr.skipSpace(); err != nil {
		return nil, err
	}
	if c, ok := tr.peek(); ok && c == '>' {
		if err := tr.closeBin(); err != nil {
			return nil, err
		}
		return Binary{}, nil
	}
	for {
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
		if err := tr.segment(&bw); err != nil {
			return nil, err
		}
		if err := tr.skipSpace(); err != nil {
			return nil, err
		}
		c, ok := tr.peek()
		switch {
		case ok && c == ',':
			tr.advance()
		case ok && c == '>':
			if err := tr.closeBin(); err != nil {
				return nil, err
			}
			return bw.term(), nil
		default:
			return nil, tr.errorf("expected ',' or '>>' in a binary")
		}
	}
}

func (tr *TextReader) closeBin() error {
	if d, _ := tr.peekAt(1); d != '>' {
		return tr.errorf("expected '>>'")
	}
	tr.advance()
	tr.advance()
	return nil
}

type segSpec struct {
	kind   string // integer, float, binary, bitstring, utf8, utf16, utf32
	little bool
	signed bool
	size   int64 // -1: default
	unit   int64 // 0: default
}

// segment reads Value[:Size][/Type-Specifiers].
func (tr *TextReader) segment(bw *bitWriter) error {
	c, _ := tr.peek()
	var val Term
	var err error
	switch {
	case c == '"':
		var all []rune
		for {
			tr.advance()
			s, err := tr.quoted('"')
			if err != nil {
				return err
			}
			all = append(all, s...)
			if err := tr.skipSpace(); err != nil {
				return err
			}
			if c, ok := tr.peek(); !ok || c != '"' {
				break
			}
		}
		val = all
	case c == '<':
		if d, _ := tr.peekAt(1); d != '<' {
			return tr.errorf("unexpected '<' in a binary")
		}
		tr.advance()
		tr.advance()
		val, err = tr.bitstring()
	case isDigit(c), c == '-', c == '+', c == '$':
		val, err = tr.term()
	default:
		return tr.errorf("a binary segment must be a number, a string or a binary")
	}
	if err != nil {
		return err
	}
	spec := segSpec{kind: "", size: -1}
	if err := tr.skipSpace(); err != nil {
		return err
	}
	if c, ok := tr.peek(); ok && c == ':' {
		tr.advance()
		if err := tr.skipSpace(); err != nil {
			return err
		}
		ds, err := tr.digits(10)
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(ds, 10, 32)
		if err != nil {
			return tr.errorf("segment size too large")
		}
		spec.size = n
		if err := tr.skipSpace(); err != nil {
			return err
		}
	}
	if c, ok := tr.peek(); ok && c == '/' {
		tr.advance()
		for {
			if err := tr.skipSpace(); err != nil {
				return err
			}
			name, err := tr.name()
			if err != nil {
				return err
			}
			switch name {
			case "integer", "float", "binary", "bitstring", "utf8", "utf16", "utf32":
				spec.kind = name
			case "bytes":
				spec.kind = "binary"
			case "bits":
				spec.kind = "bitstring"
			case "little":
				spec.little = true
			case "big", "native":
				spec.little = false
				if name == "native" {
					spec.little = true // every platform this tool runs on
				}
			case "signed":
				spec.signed = true
			case "unsigned":
				spec.signed = false
			case "unit":
				if err := tr.expect(':', "':' after unit"); err != nil {
					return err
				}
				ds, err := tr.digits(10)
				if err != nil {
					return err
				}
				u, _ := strconv.ParseInt(ds, 10, 16)
				if u < 1 || u > 256 {
					return tr.errorf("unit must be 1..256")
				}
				spec.unit = u
			default:
				return tr.errorf("unknown binary type specifier %q", name)
			}
			if c, ok := tr.peek(); ok && c == '-' {
				tr.advance()
				continue
			}
			break
		}
	}
	if rs, ok := val.([]rune); ok {
		for _, r := range rs {
			if err := tr.put(bw, int64(r), spec); err != nil {
				return err
			}
		}
	} else if err := tr.put(bw, val, spec); err != nil {
		return err
	}
	// Sizes can make a binary far larger than its text: hold it to the
	// same bound as the text of a term.
	if len(bw.b) > tr.limit {
		return errTooLong
	}
	return nil
}

// put appends one segment value.
func (tr *TextReader) put(bw *bitWriter, v Term, spec segSpec) error {
	kind := spec.kind
	if kind == "" {
		switch v.(type) {
		case float64:
			kind = "float"
		case Binary, BitBinary:
			kind = "binary"
		default:
			kind = "integer"
		}
	}
	switch kind {
	case "integer":
		unit := spec.unit
		if unit == 0 {
			unit = 1
		}
		size := spec.size
		if size < 0 {
			size = 8
		}
		bits := size * unit
		if bits > 1<<20 {
			return tr.errorf("integer segment larger than %d bits", 1<<20)
		}
		var n *big.Int
		switch x := v.(type) {
		case int64:
			n = big.NewInt(x)
		case *big.Int:
			n = x
		default:
			return tr.errorf("an integer segment needs an integer")
		}
		bw.putInt(n, int(bits), spec.little)
	case "float":
		size := spec.size
		if size < 0 {
			size = 64
		}
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case int64:
			f = float64(x)
		case *big.Int:
			f, _ = new(big.Float).SetInt(x).Float64()
		default:
			return tr.errorf("a float segment needs a number")
		}
		var bits uint64
		switch size * max(spec.unit, 1) {
		case 64:
			bits = math.Float64bits(f)
		case 32:
			bits = uint64(math.Float32bits(float32(f)))
		default:
			return tr.errorf("float segments are 32 or 64 bits")
		}
		bw.putInt(new(big.Int).SetUint64(bits), int(size), spec.little)
	case "binary", "bitstring":
		var data []byte
		var nbits int
		switch x := v.(type) {
		case Binary:
			data, nbits = x, 8*len(x)
		case BitBinary:
			data, nbits = x.Bytes, 8*(len(x.Bytes)-1)+int(x.Bits)
		default:
			return tr.errorf("a binary segment needs a binary")
		}
		if spec.size >= 0 {
			unit := spec.unit
			if unit == 0 {
				unit = 8
				if kind == "bitstring" {
					unit = 1
				}
			}
			want := int(spec.size * unit)
			if want > nbits {
				return tr.errorf("binary segment shorter than its size")
			}
			nbits = want
		} else if kind == "binary" && nbits%8 != 0 {
			return tr.errorf("a binary segment must be a whole number of bytes")
		}
		bw.putBits(data, nbits)
	case "utf8", "utf16", "utf32":
		n, ok := v.(int64)
		if !ok || n < 0 || n > 0x10FFFF || (n >= 0xD800 && n <= 0xDFFF) {
			return tr.errorf("bad %s character", kind)
		}
		var enc []byte
		switch kind {
		case "utf8":
			enc = utf8.AppendRune(nil, rune(n))
		case "utf16":
			var units []uint16
			if n >= 0x10000 {
				m := n - 0x10000
				units = []uint16{uint16(0xD800 + m>>10), uint16(0xDC00 + m&0x3FF)}
			} else {
				units = []uint16{uint16(n)}
			}
			for _, u := range units {
				if spec.little {
					enc = append(enc, byte(u), byte(u>>8))
				} else {
					enc = append(enc, byte(u>>8), byte(u))
				}
			}
		case "utf32":
			if spec.little {
				enc = []byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}
			} else {
				enc = []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
			}
		}
		bw.putBits(enc, 8*len(enc))
	}
	return nil
}

// bitWriter builds a bitstring most significant bit first.
type bitWriter struct {
	b    []byte
	bits int // total bits written
}

func (w *bitWriter) putBit(one bool) {
	if w.bits%8 == 0 {
		w.b = append(w.b, 0)
	}
	if one {
		w.b[len(w.b)-1] |= 0x80 >> (w.bits % 8)
	}
	w.bits++
}

// putInt writes the low bits of n (two's complement for negatives).
func (w *bitWriter) putInt(n *big.Int, bits int, little bool) {
	if bits == 0 {
		return
	}
	// Two's complement modulo 2^bits.
	m := new(big.Int).Lsh(big.NewInt(1), uint(bits))
	v := new(big.Int).Mod(n, m)
	if little && bits%8 == 0 {
		// Byte order reversed; whole bytes only, as Erlang does for sizes
		// that are multiples of 8.
		raw := v.FillBytes(make([]byte, bits/8))
		for i := len(raw) - 1; i >= 0; i-- {
			w.putBits(raw[i:i+1], 8)
		}
		return
	}
	if w.bits%8 == 0 && bits%8 == 0 {
		w.b = append(w.b, v.FillBytes(make([]byte, bits/8))...)
		w.bits += bits
		return
	}
	for i := bits - 1; i >= 0; i-- {
		w.putBit(v.Bit(i) == 1)
	}
}

func (w *bitWriter) putBits(data []byte, nbits int) {
	if w.bits%8 == 0 && nbits%8 == 0 {
		w.b = append(w.b, data[:nbits/8]...)
		w.bits += nbits
		return
	}
	for i := 0; i < nbits; i++ {
		w.putBit(data[i/8]&(0x80>>(i%8)) != 0)
	}
}

func (w *bitWriter) term() Term {
	if w.bits%8 == 0 {
		if w.b == nil {
			return Binary{}
		}
		return Binary(w.b)
	}
	return BitBinary{Bytes: w.b, Bits: uint8(w.bits % 8)}
}
