package lab

import (
	"fmt"
	"math"
	"time"

	"ustack/internal/record"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// The congestion lab: the same loss, three segments of one window, met
// by NewReno and CUBIC, each with SACK and without; then a timeout.
const (
	cgSize    = 2 << 20 // bytes each sender sends
	cgQueue   = 1000    // a queue that never overflows: the lab's drops are the only losses
	cgFirst   = 101     // the first lost segment: the 100th new one (round 4 of slow start)
	cgSpacing = 3       // then every third, three in all
	cgLost    = 3
)

// cgVariant is one sender.
type cgVariant struct {
	series string
	cc     string
	sack   bool
	rto    bool // the link goes dark instead: a whole window is lost
}

var cgVariants = []cgVariant{
	{"newreno", "newreno", false, false},
	{"newreno+sack", "newreno", true, false},
	{"cubic", "cubic", false, false},
	{"cubic+sack", "cubic", true, false},
	{"cubic+sack timeout", "cubic", true, true},
}

// cgWatch drops the story's segments and narrates the recovery as it
// happens.
type cgWatch struct {
	r        *labRun
	v        cgVariant
	s        *ccSampler
	newSegs  int
	maxEnd   uint32
	have     bool
	dropped  []uint32 // the lost segments' sequence numbers
	dark     bool     // the link is down (the timeout case)
	rtxAt    time.Time
	rtxSeq   uint32
	inRec    bool
	recFrom  time.Time
	recTimes []time.Duration // how long each recovery lasted
	told     bool
	lostAt   time.Time // when the first segment was dropped
}

// drawWindow draws the ladder around the first loss: the drop itself, the
// duplicate ACKs the client sends, and the fast retransmit.
func (x *cgWatch) drawWindow() bool {
	if x.lostAt.IsZero() {
		return false
	}
	d := x.r.now().Sub(x.lostAt)
	// The duplicate ACKs leave the client one way and a queue later
	// (about 64-69 ms after the drop here) and reach the server 50 ms
	// after that, when it retransmits.
	in := func(from, to time.Duration) bool { return d >= from && d < to }
	return in(0, 2*time.Millisecond) || in(ccDelay+12*time.Millisecond, ccDelay+19*time.Millisecond) || in(2*ccDelay+15*time.Millisecond, 2*ccDelay+19*time.Millisecond)
}

// decide drops the lost segments (or, in the timeout case, every segment
// from the first lost one until the retransmission timer resends it).
func (x *cgWatch) decide(p record.Pkt) link.Action {
	if len(p.Payload) == 0 {
		return link.Pass
	}
	end := p.Seq + uint32(len(p.Payload))
	isNew := !x.have || int32(p.Seq-x.maxEnd) >= 0
	if isNew {
		x.maxEnd, x.have = end, true
		x.newSegs++
	} else if x.rtxAt.IsZero() {
		x.rtxAt, x.rtxSeq = p.T, p.Seq
	}
	if x.v.rto {
		if isNew && x.newSegs == cgFirst {
			x.dark = true
			x.r.say("the link goes dark: every segment from new segment no. %d on is lost, until the sender resends the first of them", cgFirst)
		}
		if x.dark && !isNew && len(x.dropped) > 0 && p.Seq == x.dropped[0] {
			x.dark = false
			x.r.say("the retransmission timer expired: the sender resends seq=%d; the link is back", p.Seq)
			return link.Pass
		}
		if x.dark {
			x.dropped = append(x.dropped, p.Seq)
			return link.Drop
		}
		return link.Pass
	}
	if isNew && x.newSegs >= cgFirst && (x.newSegs-cgFirst)%cgSpacing == 0 && len(x.dropped) < cgLost {
		if x.lostAt.IsZero() {
			x.lostAt = p.T
		}
		x.dropped = append(x.dropped, p.Seq)
		return link.Drop
	}
	return link.Pass
}

// step narrates the sender's state changes.
func (x *cgWatch) step() {
	p := x.s.last()
	mss := x.r.fam.mss1500()
	switch {
	case !x.inRec && p.ca >= tcp.CARecovery:
		x.inRec, x.recFrom = true, x.r.now()
		how := x.r.T("3 duplicate ACKs: fast retransmit")
		if p.ca == tcp.CALoss {
			how = x.r.T("no ACK came back: a timeout")
		}
		x.r.say("%s; ssthresh = %d MSS, cwnd = %d MSS, %d MSS in flight", how, p.ssthresh/mss, p.cwnd/mss, p.inFlight/mss)
	case x.inRec && p.ca < tcp.CARecovery:
		x.inRec = false
		d := x.r.now().Sub(x.recFrom)
		x.recTimes = append(x.recTimes, d)
		if x.v.rto {
			x.r.say("the first ACK after the timeout, %v later: the sender is in slow start again from cwnd %d MSS", d.Round(time.Millisecond), p.cwnd/mss)
			break
		}
		x.r.say("recovery over after %v: cwnd %d MSS", d.Round(time.Millisecond), p.cwnd/mss)
	}
}

// labCongestion: three segments of one window are lost in the middle of a
// transfer; each sender finds them from duplicate ACKs, resends them, and
// cuts its window (RFC 5681 §3.2, RFC 6582, RFC 6675, RFC 6937 PRR);
// then a whole window is lost and the retransmission timer fires.
func labCongestion(r *labRun) error {
	r.say("the path: %v each way, %d Mbit/s; the bottleneck's queue is large, so the only losses are the lab's: new segments no. %d, %d and %d (round 4 of slow start)", ccDelay, ccRate/1_000_000, cgFirst, cgFirst+cgSpacing, cgFirst+2*cgSpacing)
	var runs []*ccRunResult
	var watches []*cgWatch
	for i, v := range cgVariants {
		switch {
		case v.rto:
			r.section("a whole window lost: the retransmission timeout (%s)", v.series)
		default:
			r.section("%s", r.cgTitle(v))
		}
		x := &cgWatch{r: r, v: v}
		cfg := tcp.Config{CC: v.cc, NoSACK: !v.sack}
		size := cgSize
		var when func() bool
		if i == 0 {
			when = x.drawWindow
		}
		res, err := r.ccRun(ccRunConfig{series: v.series, srv: cfg, seed: 30 + uint64(i), queue: cgQueue, size: size, dur: 60 * time.Second,
			drawWhen: when, decide: x.decide, onStep: func(t *labTransfer) {
				if x.s == nil {
					x.s = t.s
				}
				x.step()
			}})
		if err != nil {
			return err
		}
		if res.err != nil {
			return res.err
		}
		r.say("%d bytes delivered after %v; %d segments retransmitted", cgSize, res.s.last().t.Round(time.Millisecond), res.info.Stats.Retransmits)
		runs = append(runs, res)
		watches = append(watches, x)
	}
	for i := range cgVariants {
		r.cgClaims(runs[i], watches[i])
	}
	r.cgCompare(runs, watches)
	return nil
}

func (r *labRun) cgTitle(v cgVariant) string {
	name := "NewReno (β = 0.5)"
	if v.cc == "cubic" {
		name = "CUBIC (β = 0.7)"
	}
	if v.sack {
		return name + r.T(", with SACK")
	}
	return name + r.T(", without SACK")
}

// cgClaims checks one sender.
func (r *labRun) cgClaims(res *ccRunResult, x *cgWatch) {
	v := x.v
	idx, flight, ok := firstRetransmit(res.pk)
	red := res.s.firstReduced()
	want := ssthreshAfterLoss(v.cc, flight, res.info.SndMSS)
	beta := map[string]string{"newreno": "0.5", "cubic": "0.7"}[v.cc]
	if v.rto {
		st := res.info.Stats
		idx, flight, ok = retransmitOf(res.pk, func(p record.Pkt) bool { return len(x.dropped) > 0 && p.Seq == x.dropped[0] })
		want = ssthreshAfterLoss(v.cc, flight, res.info.SndMSS)
		r.check(ok && len(x.dropped) > 0 && res.pk[idx].Seq == x.dropped[0] && st.Timeouts == 1 && st.FastRetransmits == 0,
			"%s: with no ACK coming back, the retransmission timer fires (%d timeouts, %d fast retransmits)", v.series, st.Timeouts, st.FastRetransmits)
		r.check(red.cwnd == res.info.SndMSS && red.ssthresh == want && red.ca == tcp.CALoss,
			"%s: cwnd falls to 1 MSS, the loss window (%d bytes), and ssthresh = %s × flight = %d (%d)", v.series, red.cwnd, beta, want, red.ssthresh)
		r.cgSlowStartAgain(res, idx)
		return
	}
	r.check(ok && len(x.dropped) == cgLost && res.pk[idx].Seq == x.dropped[0] && red.dupAcks == 3 && red.t == res.pk[idx].T.Sub(res.start),
		"%s: the first lost segment is resent at the 3rd duplicate ACK (the sender counted %d), not by the timer", v.series, red.dupAcks)
	r.check(ok && red.ssthresh == want && res.info.Stats.Timeouts == 0,
		"%s: ssthresh = %s × flight = %s × %d = %d (%d)", v.series, beta, beta, flight, want, red.ssthresh)
	sent, acks := r.cgPRR(res, x)
	ratio := 0.0
	if acks > 0 {
		ratio = float64(sent) / float64(acks)
	}
	b := map[string]float64{"newreno": 0.5, "cubic": 0.7}[v.cc]
	r.check(acks > 20 && math.Abs(ratio-b) < 0.12,
		"%s: during recovery PRR sends about β segments per segment delivered: %d sent for %d ACKs (%.2f)", v.series, sent, acks, ratio)
}

// cgPRR counts, over the first recovery, the server's segments and the
// client's ACKs that reached it.
func (r *labRun) cgPRR(res *ccRunResult, x *cgWatch) (sent, acks int) {
	if len(x.recTimes) == 0 {
		return 0, 0
	}
	from := res.start.Add(res.s.firstReduced().t)
	to := x.recFrom
	for _, p := range res.s.pts {
		if p.t > res.s.firstReduced().t && p.ca < tcp.CARecovery {
			to = res.start.Add(p.t)
			break
		}
	}
	for _, p := range res.pk {
		switch {
		case !p.ToServer && len(p.Payload) > 0 && p.T.After(from) && p.T.Before(to):
			sent++
		case p.ToServer && p.T.Add(ccDelay).After(from) && p.T.Add(ccDelay).Before(to):
			acks++
		}
	}
	return sent, acks
}

// cgSlowStartAgain: after the timeout the sender is in slow start again:
// 1, 2, 4, 8 segments in successive round trips.
func (r *labRun) cgSlowStartAgain(res *ccRunResult, idx int) {
	after := ccRounds(dataSegs(res.pk[idx:]), 10*time.Millisecond)
	var n []int
	for i := range min(len(after), 4) {
		n = append(n, len(after[i]))
	}
	r.check(fmt.Sprint(n) == "[1 2 4 8]", "after the timeout it is slow start again: 1, 2, 4, 8 segments in successive round trips (%v)", n)
}

// cgCompare sets the senders side by side.
func (r *labRun) cgCompare(runs []*ccRunResult, ws []*cgWatch) {
	// Without SACK each partial ACK reveals one more hole: a round trip
	// per lost segment (RFC 6582); with SACK all are resent in the first.
	for i := 0; i+1 < 4; i += 2 {
		no, yes := ws[i], ws[i+1]
		if len(no.recTimes) == 0 || len(yes.recTimes) == 0 {
			r.check(false, "%s and %s both recovered", no.v.series, yes.v.series)
			continue
		}
		r.check(no.recTimes[0] >= cgLost*ccRTT && yes.recTimes[0] < 2*ccRTT,
			"%s: without SACK recovery takes a round trip per lost segment (%v), with SACK one round trip (%v)", no.v.cc, no.recTimes[0].Round(time.Millisecond), yes.recTimes[0].Round(time.Millisecond))
	}
	reno, cubic := runs[1].s.firstReduced(), runs[3].s.firstReduced()
	r.check(cubic.cwnd > reno.cwnd, "after the same loss CUBIC keeps more of its window than NewReno (%d against %d MSS)", cubic.cwnd/r.fam.mss1500(), reno.cwnd/r.fam.mss1500())
}
