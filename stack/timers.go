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
	armedAt time.Time // deadline the clock timer is set for; zero if idle
	stopped bool
}

func (th *timerHeap) init(s *Stack) {
	th.s = s
	th.h = heapq.New(func(a, b *Conn) bool { return a.tdl.Before(b.tdl) }, func(c *Conn, i int) { c.tidx = i })
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
			th.h.Remove(c.tidx)
		}
		return
	case c.tidx >= 0:
		if c.tdl.Equal(d) {
			return
		}
		c.tdl = d
		th.h.Fix(c.tidx)
	default:
		c.tdl = d
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
	if !th.armedAt.IsZero() && !first.Before(th.armedAt) {
		return
	}
	th.armedAt = first
	d := first.Sub(th.s.clk.Now())
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
	th.armedAt = time.Time{}
	for th.h.Len() > 0 && !th.h.Min().tdl.After(now) {
		due = append(due, th.h.Pop())
	}
	th.mu.Unlock()
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
