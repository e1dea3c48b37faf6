package tcp

import (
	"math/bits"
	"sync"
)

// buffer is a byte queue used for both the send and the receive buffer. Data
// is (*h)[r:w] in a power-of-two array from a size-class pool; consumed bytes
// are reclaimed by compaction, and an empty buffer returns its array to the
// pool, so that an idle connection holds no data buffer (docs/design.md
// "Memory"). The pool handle h travels with the array, so that taking and
// returning it allocates nothing; the buffer itself is 16 bytes.
type buffer struct {
	h    *[]byte // nil: no array
	r, w int32
}

const minBufClass = 12 // 4 KiB

// maxBufLen bounds what a buffer holds (its indices are 32 bits): the
// largest window RFC 7323 can offer is 2^30 bytes.
const maxBufLen = 1 << 30

var bufPools [32]sync.Pool

func getBuf(n int) *[]byte {
	class := bits.Len(uint(n - 1))
	if class < minBufClass {
		class = minBufClass
	}
	if p, ok := bufPools[class].Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 1<<class)
	return &b
}

func putBuf(h *[]byte) {
	c := cap(*h)
	if c == 0 || c&(c-1) != 0 {
		return
	}
	*h = (*h)[:c]
	bufPools[bits.Len(uint(c-1))].Put(h)
}

// Len is the number of buffered bytes.
func (x *buffer) Len() int { return int(x.w - x.r) }

// Bytes returns the buffered bytes (valid until the next mutation).
func (x *buffer) Bytes() []byte {
	if x.h == nil {
		return nil
	}
	return (*x.h)[x.r:x.w]
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
	if x.h == nil {
		x.h, x.r, x.w = getBuf(need), 0, 0
	} else if c := cap(*x.h); int(x.w)+len(p) > c {
		if int(x.r) >= x.Len() && need <= c {
			// Compact in place: the live bytes moved are no more than the
			// consumed ones, so each byte is moved O(1) times overall.
			b := (*x.h)[:c]
			x.w = int32(copy(b, b[x.r:x.w]))
			x.r = 0
		} else {
			nh := getBuf(max(need, 2*c))
			n := copy((*nh)[:cap(*nh)], x.Bytes())
			putBuf(x.h)
			x.h, x.r, x.w = nh, 0, int32(n)
		}
	}
	copy((*x.h)[x.w:cap(*x.h)], p)
	x.w += int32(len(p))
	return len(p)
}

// Discard drops n bytes from the front.
func (x *buffer) Discard(n int) {
	x.r += int32(n)
	if x.r >= x.w {
		x.release()
	}
}

// Read moves up to len(p) bytes from the front into p.
func (x *buffer) Read(p []byte) int {
	n := copy(p, x.Bytes())
	x.Discard(n)
	return n
}

func (x *buffer) release() {
	if x.h != nil {
		putBuf(x.h)
	}
	x.h, x.r, x.w = nil, 0, 0
}

// Cap is the capacity currently held (for memory accounting).
func (x *buffer) Cap() int {
	if x.h == nil {
		return 0
	}
	return cap(*x.h)
}
