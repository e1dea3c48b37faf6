package cc

import (
	"testing"
	"time"
)

// hsRound delivers MSS-sized ACKs, each with sample rtt, spread over rtt
// from now, until the controller's round ends; it returns now+rtt.
func hsRound(c *Cubic, now time.Time, rtt time.Duration) time.Time {
	n := (c.roundLen - c.roundAcked + mss - 1) / mss
	for i := range n {
		c.OnAck(now.Add(rtt*time.Duration(i)/time.Duration(n)), mss, rtt)
	}
	return now.Add(rtt)
}

// intoCSS runs two rounds at 50 ms and one at 57 ms: the threshold is
// max(4 ms, min(50/8 ms, 16 ms)) = 6.25 ms, so 57 ms crosses it (RFC 9406
// §4.2).
func intoCSS(t *testing.T) (*Cubic, time.Time) {
	t.Helper()
	c := NewCubic(mss)
	now := hsRound(c, t0, 50*time.Millisecond)
	now = hsRound(c, now, 50*time.Millisecond)
	if c.hs.inCSS {
		t.Fatal("in CSS after flat rounds")
	}
	now = hsRound(c, now, 57*time.Millisecond)
	if !c.hs.inCSS || c.Ssthresh() != maxWindow {
		t.Fatalf("after an RTT rise of 7 ms: inCSS = %t, ssthresh = %d; want CSS, no ssthresh", c.hs.inCSS, c.Ssthresh())
	}
	return c, now
}

// TestHystartEntersCSSOnRTTIncrease: the rise must reach the threshold; a
// rise of 6 ms (below 6.25 ms) keeps slow start.
func TestHystartEntersCSSOnRTTIncrease(t *testing.T) {
	intoCSS(t)
	c := NewCubic(mss)
	now := hsRound(c, t0, 50*time.Millisecond)
	now = hsRound(c, now, 50*time.Millisecond)
	hsRound(c, now, 56*time.Millisecond)
	if c.hs.inCSS {
		t.Error("entered CSS on a 6 ms rise, below the 6.25 ms threshold")
	}
}

// TestHystartCSSGrowthIsAQuarter: CSS grows cwnd by min(N, L*SMSS) /
// CSS_GROWTH_DIVISOR per ACK (RFC 9406 §4.2).
func TestHystartCSSGrowthIsAQuarter(t *testing.T) {
	c, now := intoCSS(t)
	before := c.cwnd
	c.OnAck(now, mss, 57*time.Millisecond)
	if got := c.cwnd - before; got != 0.25 {
		t.Errorf("CSS growth per MSS acked = %v segments, want 0.25", got)
	}
}

// TestHystartExitsAfterCSSRounds: after CSS_ROUNDS rounds (the partial
// first one counted) ssthresh = cwnd and congestion avoidance begins.
func TestHystartExitsAfterCSSRounds(t *testing.T) {
	c, now := intoCSS(t) // the round that entered CSS is the first
	for r := 2; r < hsCSSRounds; r++ {
		now = hsRound(c, now, 57*time.Millisecond)
		if c.Ssthresh() != maxWindow {
			t.Fatalf("slow start ended after %d CSS rounds, want %d", r, hsCSSRounds)
		}
	}
	now = hsRound(c, now, 57*time.Millisecond)
	if c.Ssthresh() == maxWindow || c.hs.inCSS || !c.hs.done {
		t.Fatalf("after %d CSS rounds: ssthresh = %d, inCSS = %t; want ssthresh = cwnd", hsCSSRounds, c.Ssthresh(), c.hs.inCSS)
	}
	if c.Ssthresh() != c.Cwnd() {
		t.Errorf("ssthresh = %d, want cwnd %d", c.Ssthresh(), c.Cwnd())
	}
	before := c.Cwnd()
	c.OnAck(now, mss, 57*time.Millisecond)
	if c.Cwnd()-before >= mss/4 {
		t.Errorf("first ACK after CSS grew cwnd by %d bytes: not congestion avoidance", c.Cwnd()-before)
	}
}

// TestHystartSpuriousExitResumesSlowStart: an RTT below the CSS baseline
// returns to slow start with full growth (RFC 9406 §4.2).
func TestHystartSpuriousExitResumesSlowStart(t *testing.T) {
	c, now := intoCSS(t)
	now = hsRound(c, now, 50*time.Millisecond)
	if c.hs.inCSS || c.hs.done || c.cssBaselineIsSet() {
		t.Fatalf("after an RTT below the baseline: inCSS = %t, done = %t", c.hs.inCSS, c.hs.done)
	}
	before := c.Cwnd()
	c.OnAck(now, mss, 50*time.Millisecond)
	if got := c.Cwnd() - before; got != mss {
		t.Errorf("slow-start growth per MSS acked = %d, want %d", got, mss)
	}
}

func (c *Cubic) cssBaselineIsSet() bool { return c.hs.cssBaseline != rttInfinity }

// TestHystartFlatRTTKeepsSlowStart: with flat (or sub-threshold jitter) RTT,
// and without enough samples, cwnd doubles every round.
func TestHystartFlatRTTKeepsSlowStart(t *testing.T) {
	for _, rtts := range [][]time.Duration{
		{50 * time.Millisecond},
		{50 * time.Millisecond, 54 * time.Millisecond},
		{10 * time.Millisecond, 13 * time.Millisecond}, // 3 ms < MIN_RTT_THRESH
	} {
		c := NewCubic(mss)
		now := t0
		for r := range 10 {
			want := c.Cwnd() * 2
			now = hsRound(c, now, rtts[r%len(rtts)])
			if c.Cwnd() != want || c.hs.inCSS {
				t.Fatalf("RTTs %v, round %d: cwnd = %d (inCSS %t), want %d", rtts, r, c.Cwnd(), c.hs.inCSS, want)
			}
		}
	}
	// Fewer than N_RTT_SAMPLE samples per round: no check.
	c := NewCubic(mss)
	now := hsRound(c, t0, 50*time.Millisecond)
	for range hsNRTTSample - 1 {
		c.OnAck(now, mss, 100*time.Millisecond)
	}
	for c.roundAcked != 0 {
		c.OnAck(now, mss, 0)
	}
	if c.hs.inCSS {
		t.Error("entered CSS on fewer than N_RTT_SAMPLE samples")
	}
}

// TestHystartOnlyInInitialSlowStart: after a loss, slow start (below the
// new ssthresh, after an RTO) runs without HyStart++ (RFC 9406 §4.2).
func TestHystartOnlyInInitialSlowStart(t *testing.T) {
	c, now := intoCSS(t)
	c.OnRTO(now, c.Cwnd())
	if c.hs.inCSS || !c.hs.done {
		t.Fatalf("after RTO: inCSS = %t, done = %t", c.hs.inCSS, c.hs.done)
	}
	now = hsRound(c, now, 50*time.Millisecond)
	now = hsRound(c, now, 50*time.Millisecond)
	hsRound(c, now, 80*time.Millisecond)
	if c.hs.inCSS {
		t.Error("HyStart++ ran in slow start after an RTO")
	}
}
