package clock

import (
	"testing"
	"time"
)

func TestVirtualFiresInDeadlineOrder(t *testing.T) {
	v := NewVirtual()
	var got []int
	var at []time.Duration
	add := func(d time.Duration, id int) Timer {
		return v.AfterFunc(d, func() { got = append(got, id); at = append(at, v.Now().Sub(Epoch)) })
	}
	add(30*time.Millisecond, 3)
	add(10*time.Millisecond, 1)
	stopped := add(20*time.Millisecond, 9)
	add(10*time.Millisecond, 2)
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	v.Advance(25 * time.Millisecond)
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("after 25ms fired %v, want [1 2]", got)
	}
	if at[0] != 10*time.Millisecond {
		t.Fatalf("timer ran with Now at %v, want 10ms", at[0])
	}
	if v.Now().Sub(Epoch) != 25*time.Millisecond {
		t.Fatalf("Now = %v after Advance(25ms)", v.Now().Sub(Epoch))
	}
	v.Advance(time.Hour)
	if len(got) != 3 || got[2] != 3 {
		t.Fatalf("fired %v, want [1 2 3]", got)
	}
}

func TestVirtualTimerResetAndRearmFromCallback(t *testing.T) {
	v := NewVirtual()
	n := 0
	var tm Timer
	tm = v.AfterFunc(time.Second, func() {
		n++
		if n < 3 {
			tm.Reset(time.Second)
		}
	})
	v.Advance(10 * time.Second)
	if n != 3 {
		t.Fatalf("periodic timer fired %d times, want 3", n)
	}
	if v.Pending() != 0 {
		t.Fatalf("%d timers pending, want 0", v.Pending())
	}
}

// TestRealDoesNotStep: Real's wall reading moves with its monotonic one, to
// the nanosecond, so that a stepped system clock cannot move the stack's
// deadlines (kept as Unix nanoseconds) or a capture's timestamps. With
// time.Now the two readings come from two clocks read one after the other
// and differ by the time between the reads, and by any step.
func TestRealDoesNotStep(t *testing.T) {
	prev := Real{}.Now()
	for i := range 1000 {
		now := Real{}.Now()
		wall := time.Duration(now.UnixNano() - prev.UnixNano())
		if mono := now.Sub(prev); wall != mono {
			t.Fatalf("reading %d: the wall reading moved %v, the monotonic %v", i, wall, mono)
		}
		if wall < 0 {
			t.Fatalf("reading %d went back %v", i, -wall)
		}
		prev = now
	}
}
