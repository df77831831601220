package dets

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/mnesiaread/internal/readat"
)

// File is an open DETS file.
type File struct {
	f      io.ReaderAt
	size   int64
	Header Header
	closer io.Closer
}

// Open opens path read-only.
func Open(path string) (*File, error) {
	d, f, err := readat.Open(path, func(f *os.File, size int64) (*File, error) { return New(f, size) })
	if err != nil {
		return nil, err
	}
	d.closer = f
	return d, nil
}

// New reads a DETS file of the given size from f.
func New(f io.ReaderAt, size int64) (*File, error) {
	hdr := make([]byte, base)
	if size < base {
		return nil, fmt.Errorf("%w: %d bytes", ErrNotDETS, size)
	}
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return nil, err
	}
	h, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	return &File{f: f, size: size, Header: h}, nil
}

// Close closes the file if Open opened it.
func (d *File) Close() error {
	if d.closer != nil {
		return d.closer.Close()
	}
	return nil
}

// Size is the file's size in bytes.
func (d *File) Size() int64 { return d.size }

// Orphan is an object collection that the hash structure does not point to.
type Orphan struct {
	Offset  int64
	Objects int
	Key     string // the first object's key, as Erlang prints it
	// Recovered: no live object has its key (set) or equals it (bag), so its
	// objects were returned. Otherwise it is an older version, left out.
	Recovered bool
}

// Damage is something unreadable, with where it is.
type Damage struct {
	Offset int64
	Reason string
}

// Report says what reading the file found.
type Report struct {
	Slots            int   // slots that point to a collection
	LiveObjects      int64 // objects reached through the hash structure
	Orphans          []Orphan
	RecoveredObjects int64 // orphan objects returned
	Damage           []Damage
}

type collection struct {
	pos, size uint32
}

// Objects calls fn with every object's term_to_binary bytes (valid only
// during the call): the live objects in file order, then recovered orphans.
// progress, when not nil, is told how far the scan has got (in bytes).
func (d *File) Objects(fn func(obj []byte) error, progress func(done int64)) (*Report, error) {
	rep := &Report{}
	live, err := d.liveCollections(rep)
	if err != nil {
		return rep, err
	}
	rep.Slots = len(live)
	w := &window{f: d.f, size: d.size}
	defer w.close()
	var orphans []orphanColl
	next := 0 // index of the next live collection in file order
	// emitLive returns the objects of a live collection. A block whose own
	// header disagrees with its slot (a write torn by a crash, or a file
	// copied while it changed) is not trusted as live: false sends it to
	// the orphan rules, read by its own header, as Erlang's repair reads it.
	emitLive := func(c collection) (bool, error) {
		hdr, err := w.at(int64(c.pos), 8)
		if err != nil {
			return false, err
		}
		if sz, st := binary.BigEndian.Uint32(hdr), binary.BigEndian.Uint32(hdr[4:]); sz != c.size || st != statusActive {
			rep.Damage = append(rep.Damage, Damage{int64(c.pos), fmt.Sprintf(
				"slot says %d bytes here, the block says %d (status %08x): a torn write; read as the scan finds it", c.size, sz, st)})
			return false, nil
		}
		blk, err := w.at(int64(c.pos), int64(c.size))
		if err != nil {
			return false, err
		}
		objs, perr := d.parseCollection(blk, true)
		for _, o := range objs {
			rep.LiveObjects++
			if err := fn(o); err != nil {
				return true, err
			}
		}
		if perr != nil {
			rep.Damage = append(rep.Damage, Damage{int64(c.pos), "live collection: " + perr.Error()})
		}
		return true, nil
	}
	// orphanAt tries the block at p as a collection no slot vouches for; it
	// returns how far it reaches, or 0.
	orphanAt := func(p int64) (int64, error) {
		hdr, err := w.at(p, 8)
		if err != nil {
			return 0, err
		}
		sz := int64(binary.BigEndian.Uint32(hdr))
		if binary.BigEndian.Uint32(hdr[4:]) != statusActive || sz <= 8 || sz > d.size-p {
			return 0, nil
		}
		blk := blockSize(uint32(sz))
		// A live collection inside the block wins over it, unless its slot
		// is stale too (its block's header disagrees): after a crash the
		// segments may name collections that this newer block overwrote.
		for i := next; i < len(live) && int64(live[i].pos) < p+blk; i++ {
			c := live[i]
			h, err := w.at(int64(c.pos), 8)
			if err != nil {
				return 0, err
			}
			if binary.BigEndian.Uint32(h) == c.size && binary.BigEndian.Uint32(h[4:]) == statusActive {
				return 0, nil
			}
		}
		full, err := w.at(p, sz)
		if err != nil {
			return 0, err
		}
		objs, perr := d.parseCollection(full, false)
		if perr != nil || len(objs) == 0 {
			return 0, nil
		}
		orphans = append(orphans, orphanColl{offset: p, objs: copyAll(objs)})
		return blk, nil
	}
	p := int64(base)
	lastReport := int64(0)
	for p+8 <= d.size {
		if progress != nil && p-lastReport >= 4<<20 {
			progress(p)
			lastReport = p
		}
		// Live collections the scan has passed (not on the 16-byte grid
		// from the base, or inside what looked like an orphan) are read now.
		for next < len(live) && int64(live[next].pos) < p {
			c := live[next]
			next++
			ok, err := emitLive(c)
			if err != nil {
				return rep, err
			}
			if !ok {
				if _, err := orphanAt(int64(c.pos)); err != nil {
					return rep, err
				}
			}
		}
		if next < len(live) && int64(live[next].pos) == p {
			c := live[next]
			next++
			ok, err := emitLive(c)
			if err != nil {
				return rep, err
			}
			if ok {
				p += blockSize(c.size)
				continue
			}
		}
		// Not pointed to: an orphan if it is a whole, parseable collection
		// that does not overlap the next live one.
		adv, err := orphanAt(p)
		if err != nil {
			return rep, err
		}
		if adv > 0 {
			p += adv
			continue
		}
		p += minBlock
	}
	for ; next < len(live); next++ {
		if _, err := emitLive(live[next]); err != nil {
			return rep, err
		}
	}
	if progress != nil {
		progress(d.size)
	}
	if len(orphans) > 0 {
		if err := d.resolveOrphans(orphans, live, rep, fn); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

type orphanColl struct {
	offset int64
	objs   [][]byte
}

func copyAll(objs [][]byte) [][]byte {
	out := make([][]byte, len(objs))
	for i, o := range objs {
		out[i] = append([]byte(nil), o...)
	}
	return out
}

// liveCollections walks the segment-array parts and segments (every
// allocated one: Next and M may be stale) and returns the slots' collections
// sorted by position.
func (d *File) liveCollections(rep *Report) ([]collection, error) {
	// Sized once from the header's key count (stale after a crash, but
	// close), so that growing the list never holds two copies of it.
	out := make([]collection, 0, min(int64(d.Header.NoKeys)+1024, d.size/minBlock, 1<<24))
	buf := make([]byte, 2048)
	read := func(pos uint32) bool {
		if int64(pos) < base || int64(pos)+2048 > d.size {
			return false
		}
		_, err := d.f.ReadAt(buf, int64(pos))
		return err == nil
	}
	seenSeg := map[uint32]bool{}
	for pi, part := range d.Header.parts {
		if part == 0 {
			continue
		}
		if !read(part) {
			rep.Damage = append(rep.Damage, Damage{int64(headEnd + 4*pi), fmt.Sprintf("segment-array part pointer %d is outside the file", part)})
			continue
		}
		segs := make([]uint32, partSlots)
		for i := range segs {
			segs[i] = binary.BigEndian.Uint32(buf[4*i:])
		}
		for si, seg := range segs {
			if seg == 0 || seenSeg[seg] {
				continue
			}
			seenSeg[seg] = true
			if !read(seg) {
				rep.Damage = append(rep.Damage, Damage{int64(part) + int64(4*si), fmt.Sprintf("segment pointer %d is outside the file", seg)})
				continue
			}
			for i := 0; i < segSlots; i++ {
				size := binary.BigEndian.Uint32(buf[8*i:])
				pos := binary.BigEndian.Uint32(buf[8*i+4:])
				if pos == 0 {
					continue
				}
				if int64(pos) < base || int64(pos)+int64(size) > d.size || size < 8 {
					rep.Damage = append(rep.Damage, Damage{int64(seg) + int64(8*i), fmt.Sprintf("slot points outside the file (%d bytes at %d)", size, pos)})
					continue
				}
				out = append(out, collection{pos: pos, size: size})
			}
		}
	}
	slices.SortFunc(out, func(a, b collection) int { return cmp.Compare(a.pos, b.pos) })
	// Two slots naming one block (a freed segment): keep it once.
	uniq := out[:0]
	for i, c := range out {
		if i == 0 || c.pos != out[i-1].pos {
			uniq = append(uniq, c)
		}
	}
	return uniq, nil
}

// parseCollection splits a collection block ([Size][Status][payload]) into
// its objects. live: the slot vouches for the block, so a bad header is damage.
func (d *File) parseCollection(blk []byte, live bool) ([][]byte, error) {
	if len(blk) < 8 {
		return nil, errors.New("short collection")
	}
	size := binary.BigEndian.Uint32(blk)
	if int(size) != len(blk) {
		return nil, fmt.Errorf("collection says %d bytes, its slot %d", size, len(blk))
	}
	if st := binary.BigEndian.Uint32(blk[4:]); st != statusActive {
		if st == statusFree {
			return nil, errors.New("collection is marked free")
		}
		return nil, fmt.Errorf("collection status %08x", st)
	}
	payload := blk[8:]
	var objs [][]byte
	objects := func(b []byte) error {
		for len(b) > 0 {
			if len(b) < 4 {
				return errors.New("object size cut short")
			}
			osz := int(binary.BigEndian.Uint32(b))
			if osz < 6 || osz > len(b) {
				return fmt.Errorf("object of %d bytes in %d", osz, len(b))
			}
			obj := b[4:osz]
			if n, err := term.Len(obj); err != nil || n != len(obj) {
				return fmt.Errorf("object is not one whole term")
			}
			objs = append(objs, obj)
			b = b[osz:]
		}
		return nil
	}
	var err error
	typ := d.Header.Type
	if typ == 0 { // unknown (damaged header): whichever layout parses
		if err = objects(payload); err == nil {
			return objs, nil
		}
		objs, err, typ = nil, nil, Bag
	}
	if typ == Set {
		err = objects(payload)
	} else {
		for b := payload; len(b) > 0 && err == nil; {
			if len(b) < 4 {
				err = errors.New("key group size cut short")
				break
			}
			gsz := int(binary.BigEndian.Uint32(b))
			if gsz < 4 || gsz > len(b) {
				err = fmt.Errorf("key group of %d bytes in %d", gsz, len(b))
				break
			}
			err = objects(b[4:gsz])
			b = b[gsz:]
		}
	}
	if err != nil && !live {
		return nil, err
	}
	return objs, err
}

// resolveOrphans decides which orphans are older versions of live objects
// and returns the others after the live ones (for a set, the last orphan in
// file order wins a key, as in Erlang's repair).
func (d *File) resolveOrphans(orphans []orphanColl, live []collection, rep *Report, fn func([]byte) error) error {
	keyOf := func(obj []byte) string {
		if d.Header.Type != Set {
			return string(obj) // bags: only an identical object supersedes
		}
		k, err := term.Element(obj, d.Header.KeyPos)
		if err != nil {
			return "\x00bad:" + string(obj)
		}
		if c, err := term.CanonicalBody(k); err == nil {
			return c
		}
		return string(k)
	}
	wanted := map[string]bool{}
	for _, o := range orphans {
		for _, obj := range o.objs {
			wanted[keyOf(obj)] = false
		}
	}
	w := &window{f: d.f, size: d.size}
	defer w.close()
	for _, c := range live {
		blk, err := w.at(int64(c.pos), int64(c.size))
		if err != nil {
			return err
		}
		objs, _ := d.parseCollection(blk, true)
		for _, obj := range objs {
			if _, ok := wanted[keyOf(obj)]; ok {
				wanted[keyOf(obj)] = true // a live object has it
			}
		}
	}
	// For a set, only the last orphan with a given key is returned.
	last := map[string]int{}
	for i, o := range orphans {
		for _, obj := range o.objs {
			last[keyOf(obj)] = i
		}
	}
	for i, o := range orphans {
		or := Orphan{Offset: o.offset, Objects: len(o.objs), Key: describeKey(o.objs[0], d.Header.KeyPos)}
		for _, obj := range o.objs {
			k := keyOf(obj)
			if wanted[k] || (d.Header.Type == Set && last[k] != i) {
				continue
			}
			or.Recovered = true
			rep.RecoveredObjects++
			if err := fn(obj); err != nil {
				return err
			}
			if d.Header.Type != Set {
				wanted[k] = true // a bag object is returned once
			}
		}
		rep.Orphans = append(rep.Orphans, or)
	}
	return nil
}

func describeKey(obj []byte, keyPos int) string {
	k, err := term.Element(obj, keyPos)
	if err != nil {
		return "?"
	}
	t, err := term.Decode(append([]byte{131}, k...))
	if err != nil {
		return "?"
	}
	s := term.Format(t)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// blockSize is the buddy block a collection of size bytes occupies.
func blockSize(size uint32) int64 {
	if size <= minBlock {
		return minBlock
	}
	return 1 << bits.Len32(size-1)
}

// window reads a file through a sliding buffer, sequential reads being the
// common case: while the caller works on one chunk, the next is read ahead
// by a goroutine, so that reading and parsing overlap. A slice it returns
// is valid until the next call.
type window struct {
	f    io.ReaderAt
	size int64
	buf  []byte // the current chunk: file bytes [off, off+len(buf))
	off  int64
	mem  []byte // the allocation buf lies in

	ahead    chan readAhead // the read-ahead in flight, or nil
	aheadOff int64
	spare    []byte
}

type readAhead struct {
	mem []byte // aheadPad bytes of room, then the chunk
	n   int
	err error
}

const (
	windowSize = 4 << 20
	// aheadPad is room before a read-ahead chunk for the tail of the
	// current one, so that a block across the boundary needs no re-read.
	aheadPad = 256 << 10
)

func (w *window) at(off, n int64) ([]byte, error) {
	if off >= w.off && off+n <= w.off+int64(len(w.buf)) {
		return w.buf[off-w.off : off-w.off+n], nil
	}
	if w.ahead != nil {
		r := <-w.ahead
		w.ahead = nil
		tail := w.aheadOff - off // bytes of the wanted range before the chunk
		if r.err == nil && tail >= 0 && tail <= aheadPad && off+n <= w.aheadOff+int64(r.n) &&
			off >= w.off && w.aheadOff == w.off+int64(len(w.buf)) {
			start := aheadPad - int(tail)
			copy(r.mem[start:aheadPad], w.buf[int64(len(w.buf))-tail:])
			w.spare = w.mem
			w.mem, w.buf, w.off = r.mem, r.mem[start:aheadPad+r.n], off
			w.readAhead()
			return w.buf[:n], nil
		}
		w.spare = r.mem
	}
	want := n
	if want < windowSize {
		want = windowSize
	}
	if off+want > w.size {
		want = w.size - off
	}
	if want < n {
		return nil, io.ErrUnexpectedEOF
	}
	if int64(cap(w.mem)) < want {
		w.mem = make([]byte, max(want, aheadPad+windowSize))
	}
	w.buf = w.mem[:want]
	if _, err := w.f.ReadAt(w.buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	w.off = off
	w.readAhead()
	return w.buf[:n], nil
}

// readAhead starts reading the chunk after the current one.
func (w *window) readAhead() {
	next := w.off + int64(len(w.buf))
	if next >= w.size {
		return
	}
	n := int64(windowSize)
	if next+n > w.size {
		n = w.size - next
	}
	mem := w.spare
	w.spare = nil
	if cap(mem) < aheadPad+windowSize {
		mem = make([]byte, aheadPad+windowSize)
	}
	mem = mem[:aheadPad+windowSize]
	ch := make(chan readAhead, 1)
	w.ahead, w.aheadOff = ch, next
	go func() {
		got, err := w.f.ReadAt(mem[aheadPad:aheadPad+n], next)
		if errors.Is(err, io.EOF) && int64(got) == n {
			err = nil
		}
		ch <- readAhead{mem: mem, n: got, err: err}
	}()
}

// close waits for a read-ahead in flight, so that nothing reads the file
// after the caller is done with it.
func (w *window) close() {
	if w.ahead != nil {
		<-w.ahead
		w.ahead = nil
	}
}
