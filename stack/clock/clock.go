// Package clock provides the time source of the stack: Real, backed by the
// time package, and Virtual, which moves only when a test or simulation
// advances it and then fires due timers in deadline order.
package clock

import (
	"sync"
	"time"

	"ustack/stack/heapq"
)

// Clock is the stack's source of time and timers.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (Real) or inside Advance
	// (Virtual) once d has elapsed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call made by AfterFunc.
type Timer interface {
	// Stop prevents the call; it reports whether it was still pending.
	Stop() bool
	// Reset re-arms the timer to fire d from now; it reports whether it was
	// still pending.
	Reset(d time.Duration) bool
}

// Real is the system's clock, read so that it never steps: its wall
// reading is the wall time when the process started plus the monotonic time
// elapsed since. The stack keeps its deadlines as Unix nanoseconds
// (tcp.stamp), so a plain time.Now would let a stepped system clock (an NTP
// step, a virtual machine resumed after a pause) fire every timer at once,
// or, stepped back, hold retransmissions for as long as the step; and the
// intervals in a capture or a trace would be wrong by the step. Linux's TCP
// runs on a monotonic clock too (jiffies, tcp_clock_ns). Within one
// process, Real's readings drift from the system's wall clock by whatever
// it was stepped since the start.
type Real struct{}

// realBase is the reading Real counts from.
var realBase = time.Now()

// Now implements Clock: realBase plus the monotonic time since, so that
// both the wall and the monotonic reading of the result advance by exactly
// the elapsed time.
func (Real) Now() time.Time { return realBase.Add(time.Since(realBase)) }

// AfterFunc implements Clock.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Virtual is a clock that moves only through Advance. Timers fire inside
// Advance, synchronously and in deadline order (ties in creation order), with
// Now() equal to their deadline while they run.
type Virtual struct {
	mu  sync.Mutex
	now time.Time
	q   heapq.Heap[*vtimer]
	seq uint64
}

// Epoch is the start time of every new Virtual clock.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// NewVirtual returns a virtual clock at Epoch.
func NewVirtual() *Virtual {
	return &Virtual{now: Epoch, q: heapq.New(vtimerBefore, func(t *vtimer, i int) { t.idx = i })}
}

// Now implements Clock.
func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.now
}

// AfterFunc implements Clock.
func (v *Virtual) AfterFunc(d time.Duration, f func()) Timer {
	v.mu.Lock()
	defer v.mu.Unlock()
	t := &vtimer{v: v, f: f, idx: -1}
	v.schedule(t, d)
	return t
}

func (v *Virtual) schedule(t *vtimer, d time.Duration) {
	if d < 0 {
		d = 0
	}
	v.seq++
	t.when, t.seq = v.now.Add(d), v.seq
	v.q.Push(t)
}

// Advance moves the clock forward by d, firing every timer due on the way.
func (v *Virtual) Advance(d time.Duration) {
	v.mu.Lock()
	end := v.now.Add(d)
	v.mu.Unlock()
	v.AdvanceTo(end)
}

// AdvanceTo moves the clock to t (if later), firing due timers in order.
func (v *Virtual) AdvanceTo(t time.Time) {
	for {
		v.mu.Lock()
		if v.q.Len() == 0 || v.q.Min().when.After(t) {
			if t.After(v.now) {
				v.now = t
			}
			v.mu.Unlock()
			return
		}
		next := v.q.Pop()
		if next.when.After(v.now) {
			v.now = next.when
		}
		v.mu.Unlock()
		next.f()
	}
}

// Next reports the deadline of the earliest pending timer.
func (v *Virtual) Next() (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.q.Len() == 0 {
		return time.Time{}, false
	}
	return v.q.Min().when, true
}

// Pending reports the number of pending timers.
func (v *Virtual) Pending() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.q.Len()
}

type vtimer struct {
	v    *Virtual
	f    func()
	when time.Time
	seq  uint64
	idx  int
}

func (t *vtimer) Stop() bool {
	t.v.mu.Lock()
	defer t.v.mu.Unlock()
	if t.idx < 0 {
		return false
	}
	t.v.q.Remove(t.idx)
	return true
}

func (t *vtimer) Reset(d time.Duration) bool {
	t.v.mu.Lock()
	defer t.v.mu.Unlock()
	was := t.idx >= 0
	if was {
		t.v.q.Remove(t.idx)
	}
	t.v.schedule(t, d)
	return was
}

// vtimerBefore orders timers by deadline, then creation.
func vtimerBefore(a, b *vtimer) bool {
	if a.when.Equal(b.when) {
		return a.seq < b.seq
	}
	return a.when.Before(b.when)
}
