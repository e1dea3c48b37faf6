package stack

import (
	"sync"
	"time"

	"ustack/stack/clock"
	"ustack/stack/heapq"
)

// timerHeap is the stack's one timer facility (docs/design.md "Timers"): a heap
// of connections keyed by their TCB's NextDeadline, with one clock timer
// armed for the earliest. A connection has at most one entry.
type timerHeap struct {
	s       *Stack
	mu      sync.Mutex        // guards what follows and each Conn's tdl, tidx; lock order: see Stack
	h       heapq.Heap[*Conn] // by tdl
	t       clock.Timer
	armedAt int64 // deadline the clock timer is set for (Unix nanoseconds); zero if idle
	stopped bool
}

func (th *timerHeap) init(s *Stack) {
	th.s = s
	th.h = heapq.New(func(a, b *Conn) bool { return a.tdl < b.tdl }, func(c *Conn, i int) { c.tidx = int32(i) })
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
	d := time.Duration(first - th.s.clk.Now().UnixNano())
	if th.t == nil {
		th.t = th.s.clk.AfterFunc(d, th.fire)
	} else {
		th.t.Reset(d)
	}
}

// fire runs the timers of every connection that is due.
func (th *timerHeap) fire() {
	now := th.s.clk.Now()
	var due []*Conn
	th.mu.Lock()
	th.armedAt = 0
	for th.h.Len() > 0 && th.h.Min().tdl <= now.UnixNano() {
		due = append(due, th.h.Pop())
	}
	th.mu.Unlock()
	for _, c := range due {
		c.mu.Lock()
		c.tcb.Tick(now)
		c.afterLocked()
		c.mu.Unlock()
	}
	th.s.flush()
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
