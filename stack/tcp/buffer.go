package tcp

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"
)

// buffer is a byte queue used for both the send and the receive buffer. Data
// is h.b[r:w] in a power-of-two array from a size-class pool; consumed bytes
// are reclaimed by compaction, and an empty buffer returns its array to the
// pool, so that an idle connection holds no data buffer (docs/design.md
// "Memory"). The pool handle h travels with the array, so that taking and
// returning it allocates nothing; the buffer itself is 16 bytes.
//
// A segment's payload may leave for the link without a copy (Segment.Pin):
// while packets point into the array, it is pinned, and the buffer neither
// moves bytes in it nor gives it back to the pool; it takes a new array
// instead and leaves the old one to the last Unpin.
type buffer struct {
	h    *array // nil: no array
	r, w int32
}

// array is a buffer's storage, with the count of packets on their way to
// the link that point into it (pins) and, in the same word, whether its
// buffer has let it go (abandoned): the one that brings the word to exactly
// abandoned returns it to the pool.
type array struct {
	b    []byte
	pins atomic.Int32
	rx   bool // a reader's packet buffer (PacketBuf), pooled apart

	// A receive buffer that adopts a payload while it holds data chains
	// the arrays (adopt): next is the one after this; in the first, tail
	// is the last and more the bytes held after the first's; an array
	// after the first holds b[lo:hi], the last b[lo:w] (the buffer's w),
	// and the first b[r:hi] while there is a next. The buffer clears
	// them before it lets an array go.
	next, tail *array
	more       int32
	lo, hi     int32
}

// The pins word: the count of pins in the low bits, then whether a
// receive buffer adopted the array from a reader (adopted), then whether
// its buffer let it go (abandoned).
const (
	abandoned = 1 << 30
	adopted   = 1 << 29
	pinCount  = adopted - 1
)

const minBufClass = 12 // 4 KiB

// maxBufLen bounds what a buffer holds (its indices are 32 bits): the
// largest window RFC 7323 can offer is 2^30 bytes.
const maxBufLen = 1 << 30

var bufPools [32]sync.Pool

func getBuf(n int) *array { return getBufMin(n, minBufClass) }

// getBufMin is a pooled array of at least n bytes, and of at least 1<<minClass.
func getBufMin(n, minClass int) *array {
	class := max(bits.Len(uint(n-1)), minClass)
	if p, ok := bufPools[class].Get().(*array); ok {
		return p
	}
	return &array{b: make([]byte, 1<<class)}
}

func putBuf(h *array) {
	if h.rx {
		h.pins.Store(0)
		rxPool.Put(h)
		return
	}
	c := len(h.b)
	if c == 0 || c&(c-1) != 0 {
		return
	}
	h.pins.Store(0)
	bufPools[bits.Len(uint(c-1))].Put(h)
}

// letGo gives h up: to the pool now if no packet points into it, else to
// the last Unpin.
func letGo(h *array) {
	if h.pins.Load()&pinCount == 0 || h.pins.Add(abandoned)&^adopted == abandoned {
		putBuf(h)
	}
}

// unpin drops one pin, and returns h to its pool if it was the last one
// on an array its buffer let go.
func (h *array) unpin() {
	if h.pins.Add(-1)&^adopted == abandoned {
		putBuf(h)
	}
}

// pinned reports whether packets point into h (or a reader still holds
// it). Pins are only added under the connection's lock, as the buffer is
// changed, or by a reader before it lends the array, so a false answer
// stays true until the caller next pins.
func (h *array) pinned() bool { return h.pins.Load()&pinCount != 0 }

// Pinned is a segment's hold on the buffer array its payload lies in; see
// Segment.Pin. The zero value holds nothing.
type Pinned struct{ a *array }

// Unpin lets the buffer move or reuse the bytes again; it may be called
// from any goroutine, once per Pin.
func (p Pinned) Unpin() {
	if p.a != nil {
		p.a.unpin()
	}
}

// PacketBuf is a buffer a reader reads packets into. A receive buffer that
// is empty when a large in-order payload arrives in one adopts the whole
// array instead of copying the payload out (the application then reads it
// from where the device wrote it); the reader learns it from Renew at the
// end of its batch and reads into a new one. The reader holds a pin on
// its PacketBuf, so the array goes back to the pool only once both the
// reader and the receive buffer are done with it.
type PacketBuf struct{ a *array }

var rxPool sync.Pool

// NewPacketBuf returns a PacketBuf of size bytes, held by the caller.
func NewPacketBuf(size int) PacketBuf {
	a, ok := rxPool.Get().(*array)
	if !ok || len(a.b) != size {
		a = &array{b: make([]byte, size), rx: true}
	}
	a.pins.Store(1)
	return PacketBuf{a}
}

// Bytes is the buffer to read into.
func (p PacketBuf) Bytes() []byte { return p.a.b }

// Renew, at the end of a reader's batch, replaces p with a new PacketBuf
// if a receive buffer adopted its array during the batch, and lets the old
// one go; it reports whether it did.
func (p *PacketBuf) Renew() bool {
	if p.a.pins.Load()&adopted == 0 {
		return false
	}
	old := p.a
	*p = NewPacketBuf(len(old.b))
	old.unpin()
	return true
}

// adoptMin is the smallest in-order payload a receive buffer adopts
// rather than copies; Config.AdoptMin overrides it.
const adoptMin = 16 << 10

// adopt makes the receive buffer hold p where it lies in a, a PacketBuf's
// array its reader still holds: no copy. An empty buffer takes a as its
// array; one that holds data chains a after its last array.
func (x *buffer) adopt(a *array, p []byte) {
	a.pins.Or(adopted)
	off, _ := within(a.b, p)
	if x.Len() == 0 {
		x.release()
		x.h, x.r, x.w = a, int32(off), int32(off+len(p))
		return
	}
	last := x.h
	if x.h.next != nil {
		last = x.h.tail
	}
	last.hi, last.next = x.w, a
	a.lo = int32(off)
	x.h.tail = a
	x.h.more += int32(len(p))
	x.w = int32(off + len(p))
}

// headEnd is where the first array's data ends.
func (x *buffer) headEnd() int32 {
	if x.h != nil && x.h.next != nil {
		return x.h.hi
	}
	return x.w
}

// dropHead lets the first array of a chain go: the next becomes the first.
func (x *buffer) dropHead() {
	h, n := x.h, x.h.next
	nlen := n.hi - n.lo
	if n == h.tail {
		nlen = x.w - n.lo
		n.tail, n.more = nil, 0
	} else {
		n.tail, n.more = h.tail, h.more-nlen
	}
	x.h, x.r = n, n.lo
	unchain(h)
	letGo(h)
}

// unchain clears a's chain fields before it goes back.
func unchain(a *array) { a.next, a.tail, a.more, a.lo, a.hi = nil, nil, 0, 0, 0 }

// within reports where p, not empty, lies in b, if it does.
func within(b, p []byte) (off int, ok bool) {
	if len(p) == 0 || len(b) == 0 {
		return 0, false
	}
	d := uintptr(unsafe.Pointer(unsafe.SliceData(p))) - uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if d > uintptr(len(b)) || int(d)+len(p) > len(b) {
		return 0, false // also before b: d wraps around
	}
	return int(d), true
}

// Len is the number of buffered bytes.
func (x *buffer) Len() int {
	if x.h != nil && x.h.next != nil {
		return int(x.h.hi-x.r) + int(x.h.more)
	}
	return int(x.w - x.r)
}

// Bytes returns the buffered bytes (valid until the next mutation); of a
// chained receive buffer, those of its first array.
func (x *buffer) Bytes() []byte {
	if x.h == nil {
		return nil
	}
	return x.h.b[x.r:x.headEnd()]
}

// Append adds as much of p as fits under limit buffered bytes and returns
// how many bytes it took.
func (x *buffer) Append(p []byte, limit int) int {
	room := min(limit, maxBufLen) - x.Len()
	if room <= 0 || len(p) == 0 {
		return 0
	}
	if len(p) > room {
		p = p[:room]
	}
	need := x.Len() + len(p)
	if x.h != nil && x.h.next != nil {
		// Chained: after the last array's data, or in a new array
		// chained after it.
		last := x.h.tail
		if int(x.w)+len(p) > len(last.b) {
			a := getBuf(len(p)) // at least 1<<minBufClass
			last.hi, last.next = x.w, a
			x.h.tail, x.w = a, 0
			last = a
		}
		copy(last.b[x.w:], p)
		x.w += int32(len(p))
		x.h.more += int32(len(p))
		return len(p)
	}
	if x.h == nil {
		x.h, x.r, x.w = getBuf(need), 0, 0
	} else if c := len(x.h.b); int(x.w)+len(p) > c {
		switch {
		case int(x.r) >= x.Len() && need <= c && !x.h.pinned():
			// Compact in place: the live bytes moved are no more than the
			// consumed ones, so each byte is moved O(1) times overall.
			x.w = int32(copy(x.h.b, x.h.b[x.r:x.w]))
			x.r = 0
		default:
			// A new array: twice the size, or the same size when packets
			// on their way to the link pin this one and compaction would
			// have done.
			size := max(need, 2*c)
			if int(x.r) >= x.Len() && need <= c {
				size = c
			}
			nh := getBuf(size)
			n := copy(nh.b, x.Bytes())
			letGo(x.h)
			x.h, x.r, x.w = nh, 0, int32(n)
		}
	}
	copy(x.h.b[x.w:], p)
	x.w += int32(len(p))
	return len(p)
}

// Discard drops n bytes from the front.
func (x *buffer) Discard(n int) {
	for x.h != nil && x.h.next != nil {
		hl := int(x.h.hi - x.r)
		if n < hl {
			x.r += int32(n)
			return
		}
		n -= hl
		x.dropHead()
	}
	x.r += int32(n)
	if x.r >= x.w {
		x.release()
	}
}

// Read moves up to len(p) bytes from the front into p.
func (x *buffer) Read(p []byte) int {
	n := 0
	for n < len(p) && x.Len() > 0 {
		k := copy(p[n:], x.Bytes())
		x.Discard(k)
		n += k
	}
	return n
}

func (x *buffer) release() {
	for a := x.h; a != nil; {
		next := a.next
		unchain(a)
		letGo(a)
		a = next
	}
	x.h, x.r, x.w = nil, 0, 0
}

// Cap is the capacity currently held (for memory accounting).
func (x *buffer) Cap() int {
	n := 0
	for a := x.h; a != nil; a = a.next {
		n += len(a.b)
	}
	return n
}
