package tcp

import (
	"math/bits"
	"sync"
)

// buffer is a byte queue used for both the send and the receive buffer. Data
// is b[r:]; consumed bytes are reclaimed by compaction, and an empty buffer
// returns its memory to a size-class pool, so that an idle connection holds
// no data buffer (docs/design.md "Memory"). The pool handle h travels with the
// memory, so that taking and returning it allocates nothing.
type buffer struct {
	b []byte
	r int
	h *[]byte
}

const minBufClass = 12 // 4 KiB

var bufPools [32]sync.Pool

func getBuf(n int) *[]byte {
	class := bits.Len(uint(n - 1))
	if class < minBufClass {
		class = minBufClass
	}
	if p, ok := bufPools[class].Get().(*[]byte); ok {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, 1<<class)
	return &b
}

func putBuf(h *[]byte, b []byte) {
	c := cap(b)
	if h == nil || c == 0 || c&(c-1) != 0 {
		return
	}
	*h = b[:0]
	bufPools[bits.Len(uint(c-1))].Put(h)
}

// Len is the number of buffered bytes.
func (x *buffer) Len() int { return len(x.b) - x.r }

// Bytes returns the buffered bytes (valid until the next mutation).
func (x *buffer) Bytes() []byte { return x.b[x.r:] }

// Append adds as much of p as fits under limit buffered bytes and returns
// how many bytes it took.
func (x *buffer) Append(p []byte, limit int) int {
	room := limit - x.Len()
	if room <= 0 || len(p) == 0 {
		return 0
	}
	if len(p) > room {
		p = p[:room]
	}
	need := x.Len() + len(p)
	if x.h == nil {
		x.h = getBuf(need)
		x.b, x.r = *x.h, 0
	} else if len(x.b)+len(p) > cap(x.b) {
		if x.r >= x.Len() && need <= cap(x.b) {
			// Compact in place: the live bytes moved are no more than the
			// consumed ones, so each byte is moved O(1) times overall.
			n := copy(x.b, x.b[x.r:])
			x.b, x.r = x.b[:n], 0
		} else {
			nh := getBuf(max(need, 2*cap(x.b)))
			nb := append(*nh, x.b[x.r:]...)
			putBuf(x.h, x.b)
			x.h, x.b, x.r = nh, nb, 0
		}
	}
	x.b = append(x.b, p...)
	return len(p)
}

// Discard drops n bytes from the front.
func (x *buffer) Discard(n int) {
	x.r += n
	if x.r >= len(x.b) {
		x.release()
	}
}

// Read moves up to len(p) bytes from the front into p.
func (x *buffer) Read(p []byte) int {
	n := copy(p, x.b[x.r:])
	x.Discard(n)
	return n
}

func (x *buffer) release() {
	if x.h != nil {
		putBuf(x.h, x.b)
	}
	x.b, x.r, x.h = nil, 0, nil
}

// Cap is the capacity currently held (for memory accounting).
func (x *buffer) Cap() int { return cap(x.b) }
