package cc

// HyStart++ (RFC 9406) for CUBIC's initial slow start, and the round
// counting that CUBIC's application-limited check shares with it.
//
// RFC 9406 is the standard implemented here. Linux's CUBIC uses the older
// HyStart (ACK-train and delay detection, exiting slow start at once);
// HyStart++ instead drops to Conservative Slow Start (CSS) on a delay
// increase and returns to slow start if the increase proves spurious.
//
// Rounds: RFC 9406 §4.2 ends a round when an ACK covers windowEnd, the
// SND.NXT of the round's start. The Controller sees only acknowledged byte
// counts, so a round here ends once the bytes acknowledged since it began
// reach the congestion window at its start: the same point for a sender
// that keeps its window full.
//
// RTT samples: the TCB passes one per ACK with timestamps (RFC 7323), and
// one per round trip without; with fewer than N_RTT_SAMPLE samples a round
// never triggers an exit, and slow start runs as RFC 5681 §3.1 has it.
//
// Not implemented: RFC 9406 §4.2's L = infinity for a paced sender (the
// TCB does not pace; slow start keeps RFC 3465's L = 2).

import (
	"math"
	"time"
)

// RFC 9406 §4.3 constants.
const (
	hsMinRTTThresh  = 4 * time.Millisecond
	hsMaxRTTThresh  = 16 * time.Millisecond
	hsMinRTTDivisor = 8
	hsNRTTSample    = 8
	hsCSSGrowthDiv  = 4
	hsCSSRounds     = 5
	rttInfinity     = time.Duration(math.MaxInt64)
)

// hystart is RFC 9406 §4.2's state.
type hystart struct {
	lastRoundMin time.Duration // lastRoundMinRTT (rttInfinity: none)
	curRoundMin  time.Duration // currentRoundMinRTT
	cssBaseline  time.Duration // cssBaselineMinRtt
	samples      int32         // rttSampleCount
	cssRounds    int16         // CSS rounds begun, the partial first one included
	done         bool          // HyStart++ no longer runs (after the first loss, RTO, or CSS exit)
	inCSS        bool          // in Conservative Slow Start
}

func newHystart() hystart {
	return hystart{lastRoundMin: rttInfinity, curRoundMin: rttInfinity, cssBaseline: rttInfinity}
}

// sample records an ACK's RTT sample in slow start or CSS and applies
// RFC 9406 §4.2's delay-increase check (slow start to CSS) or its spurious
// exit check (CSS back to slow start).
func (h *hystart) sample(rtt time.Duration) {
	if h.done || rtt <= 0 {
		return
	}
	h.curRoundMin = min(h.curRoundMin, rtt)
	h.samples++
	if h.samples < hsNRTTSample {
		return
	}
	if !h.inCSS {
		if h.curRoundMin == rttInfinity || h.lastRoundMin == rttInfinity {
			return
		}
		thresh := max(hsMinRTTThresh, min(h.lastRoundMin/hsMinRTTDivisor, hsMaxRTTThresh))
		if h.curRoundMin >= h.lastRoundMin+thresh {
			// Delay increase: leave slow start for CSS.
			h.inCSS, h.cssBaseline, h.cssRounds = true, h.curRoundMin, 1
		}
		return
	}
	if h.curRoundMin < h.cssBaseline {
		// The exit was spurious: resume slow start, HyStart++ included.
		h.inCSS, h.cssBaseline, h.cssRounds = false, rttInfinity, 0
	}
}

// roundEnd starts a new round (RFC 9406 §4.2) and reports whether CSS has
// run its CSS_ROUNDS rounds, so slow start ends.
func (h *hystart) roundEnd() bool {
	h.lastRoundMin, h.curRoundMin, h.samples = h.curRoundMin, rttInfinity, 0
	if h.done || !h.inCSS {
		return false
	}
	if h.cssRounds >= hsCSSRounds {
		h.done, h.inCSS = true, false
		return true
	}
	h.cssRounds++
	return false
}

// countRound adds acked bytes to the current round and, when the round is
// complete, starts the next: HyStart++'s per-round state rolls over, and so
// does the record of how much of the window the sender used. It reports
// whether CSS is over.
func (c *Cubic) countRound(acked int) bool {
	c.roundAcked += acked
	if c.roundAcked < c.roundLen {
		return false
	}
	c.newRound()
	c.prevUsed, c.curUsed = c.curUsed, 0
	return c.hs.roundEnd()
}

// newRound begins a round one congestion window long.
func (c *Cubic) newRound() {
	c.roundAcked, c.roundLen = 0, max(c.Cwnd(), 1)
}
