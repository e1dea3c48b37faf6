package lab

import (
	"time"

	"ustack/internal/record"
	"ustack/stack/clock"
	"ustack/stack/tcp"
)

// ssRun is how long each sender of the slow-start lab runs: long enough
// for CUBIC's window to pass the point of its last loss.
const ssRun = 8 * time.Second

// labSlowStart: a bulk transfer from an idle start over a path with a
// 100 ms RTT and a 12 Mbit/s bottleneck, once with NewReno and once with
// CUBIC. Slow start sends 10, 20, 40, 80 segments in successive round
// trips until the bottleneck's queue overflows; the loss sets ssthresh
// (β·flight) and congestion avoidance follows: one MSS per RTT for
// NewReno, the cubic curve for CUBIC.
func labSlowStart(r *labRun) error {
	r.say("the path: %v each way (RTT %v), a bottleneck of %d Mbit/s (a 1500-byte packet every 1 ms) with a queue of %d packets: %d packets fill the pipe", ccDelay, ccRTT, ccRate/1_000_000, ccQueue, ccRTT/time.Millisecond)
	var runs [2]*ccRunResult
	for i, name := range []string{"newreno", "cubic"} {
		if i == 0 {
			r.section("NewReno (RFC 5681): slow start, then one MSS per round trip")
		} else {
			r.section("CUBIC (RFC 9438): slow start, then the cubic curve")
		}
		draw := time.Duration(0)
		if i == 0 {
			draw = ccRTT + 4*time.Millisecond
			r.say("the server starts sending a large file at once (drawn for the first round trip; then the ladder goes quiet and the rounds are summed up)")
		}
		x := &ssWatch{r: r, mss: r.fam.mss1500()}
		res, err := r.ccRun(ccRunConfig{series: name, srv: tcp.Config{CC: name}, seed: 20, dur: ssRun, draw: draw,
			watch: x.see, onStep: func(t *labTransfer) {
				if x.s == nil {
					x.s, x.start = t.s, clock.Epoch // the ladder's time
				}
				x.step()
			}})
		if err != nil {
			return err
		}
		runs[i] = res
		r.ssSum(res)
	}
	r.ssClaims(runs)
	return nil
}

// ssWatch narrates a run as it goes: each round of slow start when the
// next begins (the server's segments, seen as they leave), the first
// retransmission, and the window the loss leaves.
type ssWatch struct {
	r       *labRun
	s       *ccSampler
	start   time.Time
	mss     int
	maxEnd  uint32
	have    bool
	first   time.Time // the current round's first and last new segment
	last    time.Time
	n       int
	round   int
	rtx     bool
	reduced bool
}

// ssRounds is how many rounds the lab narrates.
const ssRounds = 5

func (x *ssWatch) see(p record.Pkt) {
	if len(p.Payload) == 0 || x.rtx {
		return
	}
	end := p.Seq + uint32(len(p.Payload))
	if x.have && int32(p.Seq-x.maxEnd) < 0 {
		x.rtx = true
		x.sayRound()
		x.r.say("a segment goes out again: the bottleneck's queue overflowed and segments were lost; the duplicate ACKs (with SACK) show it")
		return
	}
	x.maxEnd, x.have = end, true
	if x.n > 0 && p.T.Sub(x.last) >= 10*time.Millisecond {
		x.sayRound()
	}
	if x.n == 0 {
		x.first = p.T
	}
	x.n++
	x.last = p.T
}

func (x *ssWatch) sayRound() {
	if x.n == 0 {
		return
	}
	x.round++
	if x.round <= ssRounds {
		x.r.say("round %d: %d new segments, sent from %v to %v (cwnd %d MSS)", x.round, x.n,
			x.first.Sub(x.start).Round(time.Millisecond), x.last.Sub(x.start).Round(time.Millisecond), x.s.before(x.first.Sub(x.s.start)+time.Microsecond).cwnd/x.mss)
	}
	x.n = 0
}

// step runs after every instant: it tells the window the first loss left.
func (x *ssWatch) step() {
	if x.reduced || x.s == nil {
		return
	}
	if p := x.s.last(); p.ssthresh != 0 {
		x.reduced = true
		x.r.say("the sender enters recovery: ssthresh = %d bytes (%d MSS), cwnd %d MSS; slow start is over", p.ssthresh, p.ssthresh/x.mss, p.cwnd/x.mss)
	}
}

// ssSum sums up the end of a run.
func (r *labRun) ssSum(res *ccRunResult) {
	end := res.s.last()
	mss := res.info.SndMSS
	r.say("after %v: cwnd %d MSS, ssthresh %d MSS; %d loss recoveries, %d segments retransmitted, %d timeouts", end.t.Round(time.Millisecond), end.cwnd/mss, end.ssthresh/mss, res.info.Stats.FastRetransmits, res.info.Stats.Retransmits, res.info.Stats.Timeouts)
}

// firstReduced is the first point with an ssthresh: the window just after
// the first loss.
func (s *ccSampler) firstReduced() ccPoint {
	for _, p := range s.pts {
		if p.ssthresh != 0 {
			return p
		}
	}
	return ccPoint{}
}

// caSpan is the longest stretch of congestion avoidance after the first
// loss: points in the Open state, between the end of one recovery and the
// start of the next (or the end).
func (s *ccSampler) caSpan() []ccPoint {
	var best []ccPoint
	seen := false
	for i := 0; i < len(s.pts); i++ {
		if s.pts[i].ca != tcp.CAOpen {
			seen = true
			continue
		}
		j := i
		for j < len(s.pts) && s.pts[j].ca == tcp.CAOpen {
			j++
		}
		if seen && s.pts[j-1].t-s.pts[i].t > dur(best) {
			best = s.pts[i:j]
		}
		i = j - 1
	}
	return best
}

func dur(span []ccPoint) time.Duration {
	if len(span) == 0 {
		return -1
	}
	return span[len(span)-1].t - span[0].t
}

func (r *labRun) ssClaims(runs [2]*ccRunResult) {
	for i, name := range []string{"newreno", "cubic"} {
		res := runs[i]
		mss := res.info.SndMSS
		rounds := ccRounds(newData(res.pk), 10*time.Millisecond)
		var n [4]int
		for j := range min(len(rounds), 4) {
			n[j] = len(rounds[j])
		}
		r.check(res.s.pts[0].cwnd == 10*mss && n[0] == 10, "%s: the first round is the initial window, 10 segments (cwnd %d = 10 MSS)", name, res.s.pts[0].cwnd)
		r.check(n[1] == 20 && n[2] == 40 && n[3] == 80, "%s: in slow start each round trip sends twice as many: 10, 20, 40, 80 (%d, %d, %d, %d)", name, n[0], n[1], n[2], n[3])
		idx, flight, ok := firstRetransmit(res.pk)
		red := res.s.firstReduced()
		want := ssthreshAfterLoss(name, flight, mss)
		beta := "0.5"
		if name == "cubic" {
			beta = "0.7"
		}
		r.check(ok && idx > 0 && red.ssthresh == want && red.t >= res.pk[idx].T.Sub(res.start)-time.Microsecond,
			"%s: slow start ends at the first loss: ssthresh = %s × flight = %s × %d = %d bytes (%d)", name, beta, beta, flight, want, red.ssthresh)
	}
	r.renoCAClaim(runs[0])
	r.cubicCAClaim(runs[1])
}

// renoCAClaim: after the last recovery NewReno's cwnd grows by exactly one
// MSS at a time, at most once per round trip.
func (r *labRun) renoCAClaim(res *ccRunResult) {
	span := res.s.caSpan()
	mss := res.info.SndMSS
	steps, good := 0, len(span) > 0
	prev := ccPoint{}
	if good {
		prev = span[0]
	}
	for _, p := range span {
		if p.cwnd == prev.cwnd {
			continue
		}
		steps++
		good = good && p.cwnd-prev.cwnd == mss && p.t-prev.t >= ccRTT
		prev = p
	}
	r.check(good && steps >= 10, "newreno: in congestion avoidance cwnd grows by one MSS (%d bytes) per round trip, never faster (%d steps)", mss, steps)
}

// cubicCAClaim: after the last recovery CUBIC's window follows the cubic
// curve: growth per second first slows (concave, towards W_max), then
// speeds up again (convex, probing beyond it).
func (r *labRun) cubicCAClaim(res *ccRunResult) {
	span := res.s.caSpan()
	var inc []int
	if len(span) > 0 {
		t0 := span[0].t
		prev := span[0].cwnd
		for t := t0 + time.Second; t <= span[len(span)-1].t; t += time.Second {
			c := res.s.before(t).cwnd
			inc = append(inc, (c-prev)/res.info.SndMSS)
			prev = c
		}
	}
	lo := 0
	for i := range inc {
		if inc[i] < inc[lo] {
			lo = i
		}
	}
	r.check(len(inc) >= 3 && lo > 0 && lo < len(inc)-1 && inc[lo] < inc[0] && inc[lo] < inc[len(inc)-1],
		"cubic: in congestion avoidance the growth per second first slows, then speeds up again: concave, then convex (MSS per second: %v)", inc)
}
