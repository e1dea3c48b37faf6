package cc

// CUBIC congestion control.
//
// Reading list:
//   - RFC 9438 (CUBIC for Fast and Long-Distance Networks): §4.2 window
//     increase function, §4.3 Reno-friendly region, §4.4/§4.5 concave and
//     convex regions, §4.6 multiplicative decrease, §4.7 fast convergence,
//     §4.8 timeout, §4.10 slow start.
//   - RFC 5681 §3.1: slow start, with RFC 3465 appropriate byte counting
//     (L = 2 SMSS), the same as Reno.
//   - RFC 9406 (HyStart++) for the initial slow start: see hystart.go.
//   - RFC 9438 §5.8: no growth while the sender is application-limited, and
//     no credit for idle time in t, via AppLimitedObserver (Linux's
//     tcp_is_cwnd_limited check and its CA_EVENT_TX_START epoch shift).
//
// Windows are kept in segments (float64) internally, as the RFC writes its
// equations; Cwnd and Ssthresh report bytes.
//
// Not implemented: spurious-loss undo (§4.9, the TCB has no detector), ECN
// (§4.6's 1-MSS floor). As in Linux, t still runs while the sender is
// application-limited but not idle (growth is held, and the 1.5*cwnd-per-RTT
// clamp bounds the catch-up).

import (
	"math"
	"time"
)

const (
	// cubicC is RFC 9438 §4.1.1's C, in segments/second^3 (§5.1: SHOULD
	// be 0.4).
	cubicC = 0.4
	// cubicBeta is RFC 9438 §4.6's beta_cubic, the multiplicative decrease.
	cubicBeta = 0.7
	// cubicAlpha is RFC 9438 §4.3's alpha_cubic: the additive increase (in
	// segments per RTT) that makes AIMD(alpha, beta_cubic) match Reno's
	// AIMD(1, 0.5) on average.
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta)
	// maxWindow caps cwnd and stands for "no ssthresh yet": the largest
	// window RFC 7323 §2.3 can express. Without a cap the cubic curve
	// would overflow int on a long loss-free, receive-window-limited run.
	maxWindow = 1 << 30
)

// Cubic is RFC 9438 CUBIC. The zero value is not usable; call NewCubic.
type Cubic struct {
	mss      float64 // bytes per segment
	cwnd     float64 // segments
	ssthresh int     // bytes

	// RFC 9438 §4.1.2 state, in segments and seconds.
	wMax      float64 // window at the last congestion event (after fast convergence)
	cwndPrior float64 // cwnd just before the last reduction (§4.6)
	k         float64 // time from epoch start to reach wMax (§4.2, eq. 2)
	wEst      float64 // Reno-friendly estimate (§4.3, eq. 4)
	epoch     int64   // when the epoch started, Unix nanoseconds (valid if inEpoch)

	// srtt is the smoothed RTT used in W_cubic(t + RTT) (§4.2: "RTT is the
	// smoothed round-trip time"), kept with RFC 6298's alpha = 1/8 from the
	// samples OnAck receives.
	srtt time.Duration

	hs                hystart
	roundAcked        int   // bytes acknowledged in the current round
	roundLen          int   // bytes that complete it: cwnd at its start
	curUsed, prevUsed int   // the largest flight sent in this round and the last
	lastSend          int64 // the last OnSend (Linux's lsndtime), Unix nanoseconds; 0: none

	inEpoch   bool // epoch is set: congestion avoidance has started since the last event
	tracksUse bool
}

// NewCubic returns a CUBIC controller for the given MSS (bytes), starting
// with the RFC 6928 initial window and no slow-start threshold.
func NewCubic(mss int) *Cubic {
	m := float64(mss)
	return &Cubic{
		mss:      m,
		cwnd:     float64(InitialWindow(mss)) / m,
		ssthresh: maxWindow,
		hs:       newHystart(),
		roundLen: InitialWindow(mss),
	}
}

// Name implements Controller.
func (c *Cubic) Name() string { return "cubic" }

// Cwnd implements Controller.
func (c *Cubic) Cwnd() int { return int(math.Round(min(c.cwnd*c.mss, maxWindow))) }

// Ssthresh implements Controller.
func (c *Cubic) Ssthresh() int { return c.ssthresh }

// OnAck implements Controller: slow start below ssthresh (RFC 9438 §4.10,
// RFC 5681 §3.1) with HyStart++ (RFC 9406), otherwise the RFC 9438
// §4.2–§4.5 window increase; neither grows a window the sender is not
// using (§5.8). It does not allocate.
func (c *Cubic) OnAck(now time.Time, acked int, rtt time.Duration) {
	if rtt > 0 {
		if c.srtt == 0 {
			c.srtt = rtt
		} else {
			c.srtt += (rtt - c.srtt) / 8 // RFC 6298 §2.3, alpha = 1/8
		}
	}
	if acked <= 0 {
		return
	}
	if c.cwnd < float64(c.ssthresh)/c.mss { // exact after OnLoss sets cwnd to this quotient
		c.slowStart(acked, rtt)
		return
	}
	c.countRound(acked)
	if !c.cwndLimited(false) {
		return
	}
	segs := float64(acked) / c.mss
	if !c.inEpoch {
		c.startEpoch(now)
	}
	t := time.Duration(now.UnixNano() - c.epoch).Seconds()

	// §4.3 eq. 4; alpha becomes 1 once W_est has reached cwnd_prior.
	alpha := cubicAlpha
	if c.wEst >= c.cwndPrior {
		alpha = 1
	}
	c.wEst += alpha * segs / c.cwnd

	if c.wCubic(t) < c.wEst {
		// §4.3: Reno-friendly region; cwnd SHOULD be set to W_est. An ACK
		// never shrinks cwnd, so take the larger (§4.2 "chooses the larger
		// of the two values").
		c.cwnd = max(c.cwnd, c.wEst)
		c.clamp()
		return
	}

	// §4.2: target = W_cubic(t + RTT), bounded to [cwnd, 1.5*cwnd]; §4.4
	// (concave, cwnd < W_max) and §4.5 (convex) both add
	// (target - cwnd)/cwnd per segment acknowledged.
	target := c.wCubic(t + c.srtt.Seconds())
	target = max(c.cwnd, min(target, 1.5*c.cwnd))
	c.cwnd = min(c.cwnd+(target-c.cwnd)/c.cwnd*segs, target)
	c.clamp()
}

// slowStart grows cwnd by at most 2 SMSS per ACK (RFC 3465 L = 2), as
// Reno, a quarter of that in HyStart++'s CSS (RFC 9406 §4.2), and ends slow
// start (ssthresh = cwnd) once CSS has run CSS_ROUNDS rounds. RFC 5681 §3.1
// lets cwnd == ssthresh go either way; like Reno (and Linux) we use
// congestion avoidance, so the window set by a loss starts a cubic epoch
// rather than slow start.
func (c *Cubic) slowStart(acked int, rtt time.Duration) {
	c.hs.sample(rtt)
	if c.cwndLimited(true) {
		inc := float64(min(acked, 2*int(c.mss))) / c.mss
		if c.hs.inCSS {
			inc /= hsCSSGrowthDiv
		}
		c.cwnd += inc
		c.clamp()
	}
	if c.countRound(acked) {
		c.ssthresh = int(c.cwnd * c.mss)
	}
}

// cwndLimited reports whether the sender has used its window enough to
// grow it (RFC 9438 §5.8), as Linux's tcp_is_cwnd_limited judges: in slow
// start, more than half of cwnd in flight; otherwise all but less than an
// MSS. The flight is the largest sent in this round or the last. Without
// OnSend reports the window counts as used.
func (c *Cubic) cwndLimited(slowStart bool) bool {
	if !c.tracksUse {
		return true
	}
	used, w := float64(max(c.curUsed, c.prevUsed)), c.cwnd*c.mss
	if slowStart {
		return 2*used > w
	}
	return used+c.mss > w
}

// OnSend implements AppLimitedObserver. Sending after a time with nothing
// in flight moves the epoch start later by the time since the last send, so
// t does not count the idle period (RFC 9438 §5.8; Linux's bictcp_cwnd_event
// on CA_EVENT_TX_START), never past now.
func (c *Cubic) OnSend(now time.Time, before, after int) {
	c.tracksUse = true
	if before == 0 && c.inEpoch && c.lastSend != 0 {
		if idle := now.UnixNano() - c.lastSend; idle > 0 {
			c.epoch = min(c.epoch+idle, now.UnixNano())
		}
	}
	c.lastSend = now.UnixNano()
	c.curUsed = max(c.curUsed, after)
}

// startEpoch begins a congestion-avoidance stage (RFC 9438 §4.2): t counts
// from now, K from eq. 2, and W_est starts at cwnd_epoch (§4.3). When
// cwnd_epoch is not below W_max (the first stage after a timeout, where
// OnRTO cleared W_max, §4.8) K is 0 and W_max is cwnd_epoch.
func (c *Cubic) startEpoch(now time.Time) {
	c.epoch, c.inEpoch = now.UnixNano(), true
	c.wEst = c.cwnd
	if c.cwnd < c.wMax {
		c.k = math.Cbrt((c.wMax - c.cwnd) / cubicC)
	} else {
		c.k, c.wMax = 0, c.cwnd
	}
}

// wCubic is RFC 9438 §4.2 eq. 1, in segments, for t seconds into the epoch.
func (c *Cubic) wCubic(t float64) float64 {
	d := t - c.k
	return cubicC*d*d*d + c.wMax
}

func (c *Cubic) clamp() { c.cwnd = min(c.cwnd, maxWindow/c.mss) }

// OnLoss implements Controller: RFC 9438 §4.7 fast convergence, then §4.6
// multiplicative decrease from flight_size (not cwnd, so an
// application-limited flow does not keep a stale large window).
func (c *Cubic) OnLoss(_ time.Time, flight int) {
	c.reduce(flight)
	c.cwnd = float64(c.ssthresh) / c.mss // max(ssthresh, 2): reduce floors ssthresh at 2 SMSS
	c.newRound()
}

// OnRTO implements Controller (RFC 9438 §4.8): ssthresh as in §4.6, cwnd to
// one segment (RFC 5681 §3.1 eq. 4). W_max is forgotten, so the first
// congestion-avoidance stage after slow start runs with K = 0 and W_max =
// cwnd_epoch.
func (c *Cubic) OnRTO(_ time.Time, flight int) {
	c.reduce(flight)
	c.wMax = 0
	c.cwnd = 1
	c.newRound()
}

// reduce applies RFC 9438 §4.7 and the ssthresh half of §4.6, and ends the
// current epoch.
func (c *Cubic) reduce(flight int) {
	// §4.7: a loss before regaining the previous W_max means the available
	// share shrank; release more by lowering W_max further.
	if c.cwnd < c.wMax {
		c.wMax = c.cwnd * (1 + cubicBeta) / 2
	} else {
		c.wMax = c.cwnd
	}
	c.cwndPrior = c.cwnd
	c.ssthresh = max(int(float64(flight)*cubicBeta), 2*int(c.mss))
	c.inEpoch = false
	// RFC 9406 §4.2: a loss in slow start or CSS ends them; HyStart++ runs
	// only in the initial slow start, later ones stop at the ssthresh found.
	c.hs.done, c.hs.inCSS = true, false
}
