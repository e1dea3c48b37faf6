package cc

import (
	"math"
	"testing"
	"time"
)

// segs is cwnd in (fractional) segments.
func segs(c Controller) float64 { return float64(c.Cwnd()) / mss }

// wCubicRef is RFC 9438 §4.2 eq. 1 with K from eq. 2, written out
// independently of the implementation.
func wCubicRef(t, wMax, cwndEpoch float64) float64 {
	k := math.Cbrt((wMax - cwndEpoch) / 0.4)
	return 0.4*math.Pow(t-k, 3) + wMax
}

// within reports whether got is within frac (relative) of want.
func within(got, want, frac float64) bool { return math.Abs(got-want) <= frac*want }

// TestCubicSlowStartDoublesPerRTT: below ssthresh CUBIC uses RFC 5681 slow
// start (RFC 9438 §4.10).
func TestCubicSlowStartDoublesPerRTT(t *testing.T) {
	c := NewCubic(mss)
	if got, want := c.Cwnd(), InitialWindow(mss); got != want {
		t.Fatalf("initial cwnd = %d, want %d", got, want)
	}
	now := t0
	for want := 20 * mss; want <= 160*mss; want *= 2 {
		now = round(c, now, 50*time.Millisecond)
		if c.Cwnd() != want {
			t.Fatalf("after a round: cwnd = %d, want %d", c.Cwnd(), want)
		}
	}
}

// TestCubicSlowStartByteCountingLimit: the same RFC 3465 L = 2 limit as
// Reno.
func TestCubicSlowStartByteCountingLimit(t *testing.T) {
	c := NewCubic(mss)
	c.OnAck(t0, 5*mss, 0)
	if got, want := c.Cwnd(), InitialWindow(mss)+2*mss; got != want {
		t.Errorf("cwnd = %d, want %d", got, want)
	}
}

// TestCubicLossMultipliesByBeta: RFC 9438 §4.6, ssthresh = flight_size *
// 0.7, cwnd = max(ssthresh, 2 MSS).
func TestCubicLossMultipliesByBeta(t *testing.T) {
	c := NewCubic(mss)
	growTo(t, c, 100)
	c.OnLoss(t0, c.Cwnd())
	want := 70 * mss
	if c.Cwnd() != want || c.Ssthresh() != want {
		t.Errorf("after loss: cwnd, ssthresh = %d, %d; want %d, %d", c.Cwnd(), c.Ssthresh(), want, want)
	}
	// A flight that is not a whole number of segments (ssthresh =
	// floor(12345*0.7) = 8641 bytes): the next ACK is
	// congestion avoidance (less than an MSS), not slow start.
	c.OnLoss(t0, 12345)
	if want := 8641; c.Cwnd() != want || c.Ssthresh() != want {
		t.Errorf("after loss with flight 12345: cwnd, ssthresh = %d, %d; want %d each", c.Cwnd(), c.Ssthresh(), want)
	}
	before := c.Cwnd()
	c.OnAck(t0, mss, 0)
	if grew := c.Cwnd() - before; grew >= mss {
		t.Errorf("first ACK after loss grew cwnd by %d bytes: slow start, want congestion avoidance", grew)
	}
	c.OnLoss(t0, mss)
	if c.Cwnd() != 2*mss || c.Ssthresh() != 2*mss {
		t.Errorf("loss with one segment in flight: cwnd, ssthresh = %d, %d; want 2 MSS each", c.Cwnd(), c.Ssthresh())
	}
}

// TestCubicFollowsCubicCurve: after a loss at W_max = 1000 segments with a
// 100 ms RTT (a large BDP, where the Reno-friendly estimate stays far
// below), cwnd tracks W_cubic(t) = C*(t-K)^3 + W_max (RFC 9438 §4.2): it
// starts at beta*W_max, rises concavely to a plateau at W_max around t = K,
// then grows convexly (§4.4, §4.5).
func TestCubicFollowsCubicCurve(t *testing.T) {
	const wMax, rtt = 1000.0, 100 * time.Millisecond
	c := NewCubic(mss)
	growTo(t, c, wMax)
	c.OnLoss(t0, c.Cwnd())
	k := math.Cbrt(wMax * (1 - 0.7) / 0.4)

	// at[t] is cwnd at the start of the round beginning t seconds after the
	// loss (the epoch starts with the first ACK, at t0).
	at := map[float64]float64{}
	now := t0
	for now.Sub(t0).Seconds() < 2*k+2 {
		at[math.Round(now.Sub(t0).Seconds()*10)/10] = segs(c)
		prev := c.Cwnd()
		now = round(c, now, rtt)
		if c.Cwnd() < prev {
			t.Fatalf("cwnd shrank on ACKs: %d -> %d", prev, c.Cwnd())
		}
	}
	cwndAt := func(sec float64) float64 { return at[math.Round(sec*10)/10] }

	for _, p := range []struct {
		name string
		t    float64
		tol  float64
	}{
		{name: "t=0", t: 0, tol: 0.001},
		{name: "t=K/2", t: k / 2, tol: 0.01},
		{name: "t=K", t: k, tol: 0.01},
		{name: "t=3K/2", t: 1.5 * k, tol: 0.01},
		{name: "t=2K", t: 2 * k, tol: 0.02},
	} {
		ts := math.Round(p.t*10) / 10 // the round boundary nearest p.t
		got, want := cwndAt(ts), wCubicRef(ts, wMax, 0.7*wMax)
		t.Logf("%s (%.1fs): cwnd %.1f segments, W_cubic %.1f", p.name, ts, got, want)
		if !within(got, want, p.tol) {
			t.Errorf("%s (%.1fs): cwnd = %.1f segments, want W_cubic = %.1f ±%.0f%%", p.name, ts, got, want, p.tol*100)
		}
	}

	// Shape: fast growth right after the loss, a plateau around K, fast
	// growth again beyond 2K. (The curve gives ~158, ~0.8 and ~199
	// segments over these 2 s spans.)
	early := cwndAt(2) - cwndAt(0)
	plateau := cwndAt(k+1) - cwndAt(k-1)
	late := cwndAt(2*k+1) - cwndAt(2*k-1)
	t.Logf("growth over 2 s: early %.1f, plateau %.1f, late %.1f", early, plateau, late)
	if plateau > 3 || early < 100 || late < 100 {
		t.Errorf("growth over 2 s: early %.1f, around K %.1f, around 2K %.1f segments; want a plateau (<3) between fast phases (>100)", early, plateau, late)
	}
	// Concave before K (increments shrink), convex after (increments grow).
	if d1, d2 := cwndAt(2)-cwndAt(1), cwndAt(k-1)-cwndAt(k-2); d2 >= d1 {
		t.Errorf("not concave before K: growth %.1f then %.1f", d1, d2)
	}
	if d1, d2 := cwndAt(k+2)-cwndAt(k+1), cwndAt(2*k)-cwndAt(2*k-1); d2 <= d1 {
		t.Errorf("not convex after K: growth %.1f then %.1f", d1, d2)
	}
}

// TestCubicTargetClampedPerRTT: RFC 9438 §4.2 bounds target by 1.5*cwnd,
// so even far out on the convex curve cwnd grows by at most half per RTT.
func TestCubicTargetClampedPerRTT(t *testing.T) {
	const rtt = 100 * time.Millisecond
	c := NewCubic(mss)
	growTo(t, c, 100)
	c.OnLoss(t0, c.Cwnd())
	c.OnAck(t0, mss, rtt) // starts the epoch
	// A minute later W_cubic(t) is ~70,000 segments.
	now := t0.Add(time.Minute)
	for range 5 {
		before := segs(c)
		now = round(c, now, rtt)
		if got := segs(c); got > 1.5*before+0.01 || got < 1.45*before {
			t.Errorf("one RTT of ACKs: cwnd %.1f -> %.1f segments, want ×1.5", before, got)
		}
	}
}

// TestCubicRenoFriendlyAtSmallBDP: with a 1 ms RTT and a 20-segment
// bottleneck the cubic curve is nearly flat on the RTT scale (K ≈ 2.5 s is
// thousands of RTTs), so the Reno-friendly region of RFC 9438 §4.3 is in
// charge: cwnd never falls below W_est, grows by alpha_cubic ≈ 0.53 MSS per
// RTT until it reaches cwnd_prior and by 1 MSS per RTT after, and CUBIC
// delivers at least what Reno does over the same bottleneck.
func TestCubicRenoFriendlyAtSmallBDP(t *testing.T) {
	const capSegs, rtt, rounds = 20, time.Millisecond, 5000
	// run drives c against a bottleneck that loses a packet in any round
	// that sends more than capSegs segments, and returns the segments
	// delivered. check runs after every round.
	run := func(c Controller, check func(now time.Time)) (delivered float64) {
		now := t0
		for range rounds {
			if c.Cwnd() > capSegs*mss {
				c.OnLoss(now, c.Cwnd())
				delivered += capSegs
				now = now.Add(rtt) // the recovery round
				continue
			}
			delivered += segs(c)
			now = round(c, now, rtt)
			if check != nil {
				check(now)
			}
		}
		return delivered
	}

	cubic := NewCubic(mss)
	growTo(t, cubic, capSegs)
	cubic.OnLoss(t0, cubic.Cwnd()) // from here on, congestion avoidance
	inFriendly, total := 0, 0
	run(cubic, func(now time.Time) {
		if !cubic.inEpoch {
			return
		}
		total++
		if cubic.cwnd < cubic.wEst-1e-9 {
			t.Fatalf("cwnd %.3f below the Reno estimate W_est %.3f", cubic.cwnd, cubic.wEst)
		}
		if cubic.wCubic(now.Sub(cubic.epochAt()).Seconds()) < cubic.wEst {
			inFriendly++
		}
	})
	if inFriendly != total {
		t.Errorf("Reno-friendly region in %d of %d rounds, want all", inFriendly, total)
	}

	// Growth per RTT right after a loss: alpha_cubic, then 1 once W_est
	// reaches cwnd_prior.
	c := NewCubic(mss)
	growTo(t, c, capSegs)
	c.OnLoss(t0, c.Cwnd())
	now, prev := t0, segs(c)
	for i := 0; segs(c) < 2*capSegs; i++ {
		now = round(c, now, rtt)
		growth := segs(c) - prev
		prev = segs(c)
		want := 3 * (1 - 0.7) / (1 + 0.7)
		if prev > capSegs+1 {
			want = 1
		}
		if prev < capSegs-1 || prev > capSegs+1 { // away from the switch
			if math.Abs(growth-want) > 0.05 {
				t.Fatalf("round %d at %.1f segments: grew %.3f, want %.3f", i, prev, growth, want)
			}
		}
	}

	reno := NewReno(mss)
	growTo(t, reno, capSegs)
	reno.OnLoss(t0, reno.Cwnd())
	fresh := NewCubic(mss)
	growTo(t, fresh, capSegs)
	fresh.OnLoss(t0, fresh.Cwnd())
	dc, dr := run(fresh, nil), run(reno, nil)
	t.Logf("delivered over %d RTTs: cubic %.0f, reno %.0f segments (%.2fx)", rounds, dc, dr, dc/dr)
	if dc < dr {
		t.Errorf("CUBIC delivered %.0f segments, Reno %.0f: want at least Reno's", dc, dr)
	}
	if dc > 1.3*dr {
		t.Errorf("CUBIC delivered %.0f segments, Reno %.0f: more than 1.3x is not Reno-friendly", dc, dr)
	}
}

// TestCubicFastConvergence: RFC 9438 §4.7. A loss before cwnd regains the
// previous W_max sets W_max = cwnd*(1+beta)/2, so the next plateau is lower
// than the window at that loss.
func TestCubicFastConvergence(t *testing.T) {
	const rtt = 100 * time.Millisecond
	c := NewCubic(mss)
	growTo(t, c, 1000)
	c.OnLoss(t0, c.Cwnd())
	now := t0
	for c.Cwnd() < 800*mss { // still concave, short of W_max = 1000
		now = round(c, now, rtt)
	}
	w := segs(c)
	c.OnLoss(now, c.Cwnd())
	wMax := w * (1 + 0.7) / 2
	if !within(c.wMax, wMax, 1e-4) { // w is cwnd rounded down to a byte
		t.Errorf("W_max after loss at %.1f = %.2f, want %.2f", w, c.wMax, wMax)
	}
	// The curve now plateaus at wMax (≈ 0.85w), reached at K.
	start := now
	k := math.Cbrt((wMax - 0.7*w) / 0.4)
	for now.Sub(start).Seconds() < k {
		now = round(c, now, rtt)
	}
	got := segs(c)
	t.Logf("loss at %.1f segments: W_max %.1f, cwnd at K=%.2fs: %.1f", w, wMax, k, got)
	if !within(got, wMax, 0.01) {
		t.Errorf("cwnd at K = %.1f segments, want the lowered W_max %.1f (not %.1f)", got, wMax, w)
	}
}

// TestCubicRTOCollapsesToOneSegment: RFC 9438 §4.8. ssthresh = 0.7*flight,
// cwnd = 1 MSS, slow start back to ssthresh, then a cubic epoch with K = 0
// and W_max = cwnd at its start (convex from there, not concave towards the
// old W_max).
func TestCubicRTOCollapsesToOneSegment(t *testing.T) {
	const rtt = 100 * time.Millisecond
	c := NewCubic(mss)
	growTo(t, c, 100)
	c.OnRTO(t0, c.Cwnd())
	if c.Cwnd() != mss || c.Ssthresh() != 70*mss {
		t.Fatalf("after RTO: cwnd, ssthresh = %d, %d; want %d, %d", c.Cwnd(), c.Ssthresh(), mss, 70*mss)
	}
	now := round(c, t0, rtt)
	if c.Cwnd() != 2*mss {
		t.Fatalf("slow start after RTO: cwnd = %d, want %d", c.Cwnd(), 2*mss)
	}
	for !c.inEpoch {
		now = round(c, now, rtt)
	}
	epoch, w0 := c.epochAt(), c.wMax
	if c.k != 0 || w0 < 70 || w0 > 71 {
		t.Fatalf("first epoch after RTO: K = %v, W_max = %.1f; want 0 and cwnd at its start (70)", c.k, w0)
	}
	for now.Sub(epoch) < 6*time.Second {
		now = round(c, now, rtt)
	}
	ts := now.Sub(epoch).Seconds()
	got, want := segs(c), 0.4*ts*ts*ts+w0
	t.Logf("%.1fs into the epoch: cwnd %.1f, C*t^3 + W_0 = %.1f", ts, got, want)
	if !within(got, want, 0.03) {
		t.Errorf("%.1fs into the epoch: cwnd = %.1f segments, want %.1f (K = 0)", ts, got, want)
	}
}

// TestCubicCwndCapped: a long loss-free run cannot overflow the window.
func TestCubicCwndCapped(t *testing.T) {
	c := NewCubic(mss)
	growTo(t, c, 100)
	c.OnLoss(t0, c.Cwnd())
	now := t0
	for range 200 {
		now = now.Add(time.Hour)
		c.OnAck(now, 1<<30, time.Second)
	}
	if c.Cwnd() != maxWindow {
		t.Errorf("cwnd = %d, want the cap %d", c.Cwnd(), maxWindow)
	}
}
