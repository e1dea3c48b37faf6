package cc

import (
	"testing"
	"time"
)

// TestRenoSlowStartDoublesPerRTT: RFC 5681 §3.1, one SMSS per full-sized
// ACK, so a window's worth of ACKs doubles cwnd.
func TestRenoSlowStartDoublesPerRTT(t *testing.T) {
	r := NewReno(mss)
	if got, want := r.Cwnd(), InitialWindow(mss); got != want {
		t.Fatalf("initial cwnd = %d, want %d", got, want)
	}
	now := t0
	for want := 20 * mss; want <= 160*mss; want *= 2 {
		now = round(r, now, 50*time.Millisecond)
		if r.Cwnd() != want {
			t.Fatalf("after a round: cwnd = %d, want %d", r.Cwnd(), want)
		}
	}
}

// TestRenoSlowStartByteCountingLimit: RFC 3465 L = 2: one stretch ACK adds
// at most 2 SMSS.
func TestRenoSlowStartByteCountingLimit(t *testing.T) {
	r := NewReno(mss)
	r.OnAck(t0, 5*mss, 0)
	if got, want := r.Cwnd(), InitialWindow(mss)+2*mss; got != want {
		t.Errorf("cwnd = %d, want %d", got, want)
	}
}

// TestRenoCongestionAvoidanceOneMSSPerRTT: RFC 5681 §3.1 eq. 3.
func TestRenoCongestionAvoidanceOneMSSPerRTT(t *testing.T) {
	r := NewReno(mss)
	r.OnLoss(t0, 40*mss) // now in congestion avoidance at 20 segments
	now := t0
	for want := 21; want <= 30; want++ {
		now = round(r, now, 50*time.Millisecond)
		if r.Cwnd() != want*mss {
			t.Fatalf("cwnd = %d segments, want %d", r.Cwnd()/mss, want)
		}
	}
}

// TestRenoLossHalves: RFC 5681 §3.2 step 2, ssthresh = max(FlightSize/2,
// 2*SMSS), and cwnd = ssthresh once recovery ends.
func TestRenoLossHalves(t *testing.T) {
	r := NewReno(mss)
	growTo(t, r, 64)
	r.OnLoss(t0, 64*mss)
	if r.Cwnd() != 32*mss || r.Ssthresh() != 32*mss {
		t.Errorf("after loss: cwnd, ssthresh = %d, %d; want %d, %d", r.Cwnd(), r.Ssthresh(), 32*mss, 32*mss)
	}
	r.OnLoss(t0, mss)
	if r.Cwnd() != 2*mss || r.Ssthresh() != 2*mss {
		t.Errorf("loss with one segment in flight: cwnd, ssthresh = %d, %d; want 2 MSS each", r.Cwnd(), r.Ssthresh())
	}
}

// TestRenoRTOCollapsesToOneSegment: RFC 5681 §3.1 eq. 4 and LW = 1 SMSS.
func TestRenoRTOCollapsesToOneSegment(t *testing.T) {
	r := NewReno(mss)
	growTo(t, r, 64)
	r.OnRTO(t0, 64*mss)
	if r.Cwnd() != mss || r.Ssthresh() != 32*mss {
		t.Errorf("after RTO: cwnd, ssthresh = %d, %d; want %d, %d", r.Cwnd(), r.Ssthresh(), mss, 32*mss)
	}
	round(r, t0, 50*time.Millisecond)
	if r.Cwnd() != 2*mss {
		t.Errorf("slow start after RTO: cwnd = %d, want %d", r.Cwnd(), 2*mss)
	}
}
