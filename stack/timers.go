package stack

import (
	"container/heap"
	"sync"
	"time"

	"ustack/stack/clock"
)

// timerHeap is the stack's one timer facility (docs/design.md "Timers"): a heap
// of connections keyed by their TCB's NextDeadline, with one clock timer
// armed for the earliest. A connection has at most one entry.
type timerHeap struct {
	s       *Stack
	mu      sync.Mutex // guards what follows and each Conn's tdl, tidx; lock order: see Stack
	h       connHeap
	t       clock.Timer
	armedAt time.Time // deadline the clock timer is set for; zero if idle
	stopped bool
}

func (th *timerHeap) init(s *Stack) { th.s = s }

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
			heap.Remove(&th.h, c.tidx)
		}
		return
	case c.tidx >= 0:
		if c.tdl.Equal(d) {
			return
		}
		c.tdl = d
		heap.Fix(&th.h, c.tidx)
	default:
		c.tdl = d
		heap.Push(&th.h, c)
	}
	th.armLocked()
}

// armLocked makes the clock timer fire at the earliest deadline.
func (th *timerHeap) armLocked() {
	if len(th.h) == 0 {
		return
	}
	first := th.h[0].tdl
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
	for len(th.h) > 0 && !th.h[0].tdl.After(now) {
		due = append(due, heap.Pop(&th.h).(*Conn))
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

type connHeap []*Conn

func (h connHeap) Len() int           { return len(h) }
func (h connHeap) Less(i, j int) bool { return h[i].tdl.Before(h[j].tdl) }
func (h connHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].tidx, h[j].tidx = i, j
}
func (h *connHeap) Push(x any) {
	c := x.(*Conn)
	c.tidx = len(*h)
	*h = append(*h, c)
}
func (h *connHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.tidx = -1
	return c
}
