package stack

import (
	"sync"
	"time"

	"ustack/stack/clock"
	"ustack/stack/heapq"
)

// timerHeap is a lane's timer facility (docs/design.md "Timers"): a heap
// of connections keyed by their TCB's NextDeadline, with one clock timer
// armed for the earliest. A connection has at most one entry, in the heap
// of its lane (Conn.schedule moves it when its lane changes), so that
// readers of different lanes do not share a timer lock.
type timerHeap struct {
	s       *Stack
	ln      *lane
	mu      sync.Mutex        // guards what follows and the tdl, tidx of each Conn in h; lock order: see Stack
	h       heapq.Heap[*Conn] // by tdl
	t       clock.Timer
	armedAt int64 // deadline the clock timer is set for (Unix nanoseconds); zero if idle
	stopped bool
}

func (th *timerHeap) init(ln *lane) {
	th.s, th.ln = ln.s, ln
	th.h = heapq.New(func(a, b *Conn) bool { return a.tdl < b.tdl }, func(c *Conn, i int) { c.tidx = int32(i) })
}

// schedule sets c's timer entry to d (zero removes it), in the heap of c's
// lane, taking it out of another lane's heap first if it was there. c.mu
// is held; it guards c.thIdx, so no two goroutines move one connection at
// once, and a heap's lock is never held while another's is taken.
func (c *Conn) schedule(d time.Time) {
	th := &c.lane().tm
	if c.thIdx != 0 && c.thIdx-1 != c.lnIdx {
		c.s.lanes[c.thIdx-1].tm.schedule(c, time.Time{})
	}
	c.thIdx = c.lnIdx + 1
	th.schedule(c, d)
}

// schedule sets c's deadline (zero removes it).
func (th *timerHeap) schedule(c *Conn, d time.Time) {
	th.mu.Lock()
	defer th.mu.Unlock()
	if th.stopped {
		return
	}
	switch {
	case d.IsZero():
		if c.tidx >= 0 {
			th.h.Remove(int(c.tidx))
		}
		return
	case c.tidx >= 0:
		if c.tdl == d.UnixNano() {
			return
		}
		c.tdl = d.UnixNano()
		th.h.Fix(int(c.tidx))
	default:
		c.tdl = d.UnixNano()
		th.h.Push(c)
	}
	th.armLocked()
}

// armLocked makes the clock timer fire at the earliest deadline.
func (th *timerHeap) armLocked() {
	if th.h.Len() == 0 {
		return
	}
	first := th.h.Min().tdl
	if th.armedAt != 0 && first >= th.armedAt {
		return
	}
	th.armedAt = first
	clk := th.s.clk
	d := time.Duration(first - clk.Now().UnixNano())
	if th.t == nil {
		th.t = clk.AfterFunc(d, th.fire)
	} else {
		th.t.Reset(d)
	}
}

// fire runs the timers of every connection that is due, then writes out
// what they sent: on this lane, and on any other a connection moved to
// after it was taken off the heap.
func (th *timerHeap) fire() {
	s := th.s
	now := s.clk.Now()
	var due []*Conn
	th.mu.Lock()
	th.armedAt = 0
	for th.h.Len() > 0 && th.h.Min().tdl <= now.UnixNano() {
		due = append(due, th.h.Pop())
	}
	th.mu.Unlock()
	var others uint64 // lanes other than this one that were written to (link.MaxQueues <= 64)
	for _, c := range due {
		c.mu.Lock()
		// The time is read again under the connection's lock: a Tick that
		// waited for the lock must not re-arm its timers from a stale now
		// (a keepalive probe would be due again at once, and go out twice).
		if t := th.s.clk.Now(); t.After(now) {
			now = t
		}
		c.tcb.Tick(now)
		c.afterLocked()
		if int(c.lnIdx) != th.ln.idx {
			others |= 1 << c.lnIdx
		}
		c.mu.Unlock()
	}
	th.ln.flush()
	for i, ln := range s.lanes {
		if others&(1<<i) != 0 {
			ln.flush()
		}
	}
	th.mu.Lock()
	if !th.stopped {
		th.armLocked()
	}
	th.mu.Unlock()
}

func (th *timerHeap) stop() {
	th.mu.Lock()
	th.stopped = true
	if th.t != nil {
		th.t.Stop()
	}
	th.mu.Unlock()
}
