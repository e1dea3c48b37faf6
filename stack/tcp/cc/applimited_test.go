package cc

import (
	"testing"
	"time"
)

var _ AppLimitedObserver = (*Cubic)(nil)

// TestCubicAppLimitedSlowStartDoesNotGrow: in slow start cwnd grows only
// while more than half of it was in flight (RFC 9438 §5.8, as Linux's
// tcp_is_cwnd_limited).
func TestCubicAppLimitedSlowStartDoesNotGrow(t *testing.T) {
	c := NewCubic(mss)
	iw := c.Cwnd()
	c.OnSend(t0, 0, 2*mss)
	c.OnAck(t0.Add(50*time.Millisecond), 2*mss, 50*time.Millisecond)
	if c.Cwnd() != iw {
		t.Fatalf("cwnd = %d after acking 2 of %d segments sent, want %d", c.Cwnd(), iw/mss, iw)
	}
	c.OnSend(t0, 0, iw)
	c.OnAck(t0.Add(100*time.Millisecond), 2*mss, 50*time.Millisecond)
	if c.Cwnd() != iw+2*mss {
		t.Errorf("cwnd = %d with the window full, want %d", c.Cwnd(), iw+2*mss)
	}
}

// TestCubicAppLimitedAvoidanceDoesNotGrow: in congestion avoidance cwnd
// grows only while the flight reached it (less than an MSS short), and
// grows again once it does.
func TestCubicAppLimitedAvoidanceDoesNotGrow(t *testing.T) {
	c := NewCubic(mss)
	growTo(t, c, 100)
	c.OnLoss(t0, c.Cwnd())
	w := c.Cwnd() // 70 segments
	now := t0
	c.OnSend(now, 0, 40*mss)
	for range 200 {
		now = now.Add(10 * time.Millisecond)
		c.OnAck(now, mss, 50*time.Millisecond)
	}
	if c.Cwnd() != w {
		t.Fatalf("cwnd = %d after 2 s using 40 of %d segments, want unchanged", c.Cwnd(), w/mss)
	}
	c.OnSend(now, 40*mss, w)
	c.OnAck(now.Add(10*time.Millisecond), mss, 50*time.Millisecond)
	if c.Cwnd() <= w {
		t.Errorf("cwnd = %d with the window full, want growth past %d", c.Cwnd(), w)
	}
}

// TestCubicIdleShiftsEpoch: sending after an idle period moves the epoch
// start by the time since the last send, but never past now (Linux's
// CA_EVENT_TX_START handling).
func TestCubicIdleShiftsEpoch(t *testing.T) {
	c := NewCubic(mss)
	growTo(t, c, 100)
	c.OnLoss(t0, c.Cwnd())
	c.OnSend(t0, 0, c.Cwnd())
	c.OnAck(t0.Add(50*time.Millisecond), mss, 50*time.Millisecond) // starts the epoch
	epoch := c.epochAt()
	last := t0.Add(time.Second)
	c.OnSend(last, mss, c.Cwnd()) // busy: no shift
	if !c.epochAt().Equal(epoch) {
		t.Fatalf("epoch moved on a send with data in flight")
	}
	resume := last.Add(5 * time.Second)
	c.OnSend(resume, 0, mss)
	if want := epoch.Add(5 * time.Second); !c.epochAt().Equal(want) {
		t.Errorf("epoch = %v after 5 s idle, want %v", c.epochAt().Sub(t0), want.Sub(t0))
	}
}

// TestCubicIdleShiftNeverPassesNow: an epoch begun by an ACK after the last
// send moves to now at the most.
func TestCubicIdleShiftNeverPassesNow(t *testing.T) {
	c := NewCubic(mss)
	growTo(t, c, 100)
	c.OnLoss(t0, c.Cwnd())
	c.OnSend(t0, 0, c.Cwnd())
	c.OnAck(t0.Add(50*time.Millisecond), mss, 50*time.Millisecond) // epoch = t0+50ms
	now := t0.Add(time.Second)
	c.OnSend(now, 0, mss) // idle 1 s since the send at t0
	if !c.epochAt().Equal(now) {
		t.Errorf("epoch = %v, want now %v", c.epochAt().Sub(t0), now.Sub(t0))
	}
}

// epochAt is the epoch's start as a time.
func (c *Cubic) epochAt() time.Time { return time.Unix(0, c.epoch) }
