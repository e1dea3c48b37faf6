package cc

import (
	"math/rand/v2"
	"time"
)

// BBR (version 1, draft-cardwell-iccrg-bbr-congestion-control-00) as
// Linux's tcp_bbr.c runs it: a model of the path, the bottleneck bandwidth
// (BtlBw, the windowed maximum of delivery-rate samples over ten round
// trips) and the round-trip propagation time (RTprop, the minimum RTT over
// ten seconds), sets the congestion window to a multiple of their product.
// Loss is not a congestion signal: a random loss costs one round of packet
// conservation, not a multiplicative cut. That is why BBR holds its rate on
// a lossy link where CUBIC collapses, and why it is the default of the
// kernel ustack is measured against here.
//
// ustack does not pace (there is no per-connection pacing timer): the
// model sets the window only, and the pacing gains of ProbeBW act through
// the window's headroom (cwnd_gain = 2). Linux's BBR paces with the same
// model; on a link whose bottleneck is the peer's CPU, as over a TUN, the
// difference is in burstiness, not in rate.

// RateSample is one delivery-rate sample (draft-cheng-iccrg-delivery-rate-
// estimation §3.3), built by the TCB for each ACK that delivers data.
type RateSample struct {
	// Delivered bytes over Interval: the delivery rate is their quotient.
	Delivered int64
	Interval  time.Duration
	// RTT of the most recently sent segment this ACK delivered (0 if it
	// was a retransmission: Karn).
	RTT time.Duration
	// PriorDelivered is the total delivered when that segment was sent;
	// TotalDelivered the total now. A round trip ends when PriorDelivered
	// reaches the total at the round's start.
	PriorDelivered, TotalDelivered int64
	// AppLimited: the sender ran out of data while that segment was in
	// flight, so the rate understates the path.
	AppLimited bool
	Acked      int  // bytes this ACK newly delivered (cumulatively or SACKed)
	Lost       int  // bytes this ACK newly marked lost
	InFlight   int  // bytes in flight after the ACK
	InRecovery bool // loss recovery (fast recovery or after a timeout) is under way
}

// ModelBased is a Controller that sets the window from delivery-rate
// samples and owns it during loss recovery: the TCB feeds it every sample
// and does not apply PRR (Linux calls such a module's cong_control instead
// of tcp_cwnd_reduction).
type ModelBased interface {
	Controller
	OnRateSample(now time.Time, rs RateSample)
}

type bbrMode uint8

const (
	bbrStartup bbrMode = iota
	bbrDrain
	bbrProbeBW
	bbrProbeRTT
)

var bbrModeNames = [...]string{"startup", "drain", "probe_bw", "probe_rtt"}

func (m bbrMode) String() string { return bbrModeNames[m] }

// The constants of tcp_bbr.c.
const (
	bbrHighGain       = 2.885 // 2/ln(2): doubles the delivery rate each round in Startup
	bbrCwndGain       = 2.0
	bbrBwRounds       = 10 // BtlBw's window, in round trips
	bbrMinRTTWindow   = 10 * time.Second
	bbrProbeRTTTime   = 200 * time.Millisecond
	bbrFullBwThresh   = 1.25 // growth that counts as "still growing"
	bbrFullBwCount    = 3    // rounds without it: the pipe is full
	bbrMinCwndSegs    = 4
	bbrCycleLen       = 8
	bbrQuantaSegments = 3 // Linux adds 3 TSO units of headroom to the target
	// bbrPacingShift: a TSO unit holds about 1/1024 s of the pacing rate
	// (sk_pacing_shift 10), within GSO's 64 KiB less TCP's header room.
	bbrPacingShift  = 10
	bbrMaxTSOBytes  = 0xffff - 1 - 320 // GSO_LEGACY_MAX_SIZE - 1 - MAX_TCP_HEADER
	bbrMaxTSOSegs   = 0x7f
	bbrPacingMargin = 0.99 // Linux paces 1% below the estimate
	// ACK aggregation: the excess is kept over two windows of 5 rounds,
	// at most BtlBw times 100 ms of it is added, and an epoch that has
	// counted 2^30 bytes starts again (Linux: bbr_extra_acked_win_rtts,
	// bbr_extra_acked_max_us, bbr_ack_epoch_acked_reset_thresh).
	bbrExtraAckedWinRounds = 5
	bbrExtraAckedMax       = 100 * time.Millisecond
	bbrAckEpochReset       = 1 << 30
)

// bbrPacingGains is ProbeBW's cycle: probe up, drain, cruise six times.
var bbrPacingGains = [bbrCycleLen]float64{1.25, 0.75, 1, 1, 1, 1, 1, 1}

// BBR is the controller. It is not safe for concurrent use (the TCB's lock
// covers it). Every connection running BBR holds one: its times are Unix
// nanoseconds and its small counts small integers, and its gains follow
// from the mode (pacingGain, cwndGain), so that it fits 256 bytes.
type BBR struct {
	mss, cwnd int
	priorCwnd int
	rng       rand.PCG
	bw        [bbrBwRounds]float32 // BtlBw: per-round maxima of the last rounds (bytes/s; 24 bits of precision are plenty)
	bwRoundOf [bbrBwRounds]int32   // the round of each
	minRTT    time.Duration
	minRTTAt  int64 // 0: no sample yet

	nextRound    int64 // TotalDelivered at which the current round ends
	delivered    int64 // TotalDelivered of the last sample
	lossUntil    int64 // TotalDelivered that ends the recovery from a timeout
	cycleAt      int64
	probeRTTDone int64 // 0: ProbeRTT has not reached its low window yet
	// appLimitedUntil: samples of data sent before TotalDelivered reached
	// it are app-limited (ProbeRTT's flights, see updateMinRTT).
	appLimitedUntil int64
	fullBw          float64
	// ACK aggregation (updateAckAggregation): the epoch's start (Unix
	// nanoseconds) and bytes delivered in it, and the largest excess over
	// the estimated rate in each of two windows of rounds.
	ackEpochAt    int64
	ackEpochAcked int32
	extraAcked    [2]int32
	round         int32 // round trips counted
	bwRound       int32 // the round of the latest sample in bw
	cycle         int8
	fullBwCnt     int8
	mode          bbrMode
	roundStart    bool
	filledPipe    bool
	probeRTTRound bool
	conservation  bool // packet conservation: the first round of a recovery
	inRecovery    bool
	extraWin      uint8 // rounds into the current window of extraAcked, and (bit 7) its index
}

// NewBBR returns BBR for an MSS, in Startup with the initial window.
func NewBBR(mss int) *BBR {
	b := &BBR{mss: mss, cwnd: InitialWindow(mss)}
	b.rng.Seed(uint64(mss), 0x62627231)
	b.enterStartup()
	return b
}

// initialCwnd is the window BBR starts with.
func (b *BBR) initialCwnd() int { return InitialWindow(b.mss) }

// pacingGain is the gain of the mode (and ProbeBW's phase) on the pacing
// rate; cwndGain that on the window.
func (b *BBR) pacingGain() float64 {
	switch b.mode {
	case bbrStartup:
		return bbrHighGain
	case bbrDrain:
		return 1 / bbrHighGain
	case bbrProbeBW:
		return bbrPacingGains[b.cycle]
	}
	return 1
}

func (b *BBR) cwndGain() float64 {
	switch b.mode {
	case bbrStartup, bbrDrain:
		return bbrHighGain
	case bbrProbeBW:
		return bbrCwndGain
	}
	return 1
}

func (b *BBR) Name() string  { return "bbr" }
func (b *BBR) Cwnd() int     { return b.cwnd }
func (b *BBR) Mode() string  { return b.mode.String() }
func (b *BBR) Ssthresh() int { return 0 } // BBR keeps no threshold (Linux reports TCP's, unset)

// BtlBw is the bottleneck bandwidth estimate in bytes per second; RTprop
// the propagation delay estimate (0 before the first sample).
func (b *BBR) BtlBw() float64        { return b.maxBw() }
func (b *BBR) RTprop() time.Duration { return b.minRTT }

// OnAck, OnLoss and OnRTO are the loss-based hooks: BBR takes its window
// from OnRateSample. A loss starts packet conservation for one round (Linux's
// bbr_set_cwnd_to_recover_or_restore); a timeout leaves one segment, then
// the window regrows by what is delivered.
func (b *BBR) OnAck(time.Time, int, time.Duration) {}

func (b *BBR) OnLoss(now time.Time, flight int) {
	b.saveCwnd()
	b.inRecovery, b.conservation = true, true
	b.nextRound = b.delivered // a new round starts now
	b.cwnd = max(flight, b.mss)
}

func (b *BBR) OnRTO(now time.Time, flight int) {
	b.saveCwnd()
	b.inRecovery, b.conservation = true, true
	// The timeout's recovery lasts until what was in flight is delivered
	// (Linux's TCP_CA_Loss until high_seq is acknowledged).
	b.lossUntil = b.delivered + int64(flight)
	b.fullBw, b.fullBwCnt = 0, 0
	b.roundStart = true // a timeout ends the round (Linux: TCP_CA_Loss)
	b.cwnd = b.mss
}

// saveCwnd remembers the window to restore after recovery (bbr_save_cwnd).
func (b *BBR) saveCwnd() {
	if !b.inRecovery && b.mode != bbrProbeRTT {
		b.priorCwnd = b.cwnd
	} else {
		b.priorCwnd = max(b.priorCwnd, b.cwnd)
	}
}

// OnRateSample is BBR's per-ACK update (bbr_main): the model, then the
// state machine, then the window.
func (b *BBR) OnRateSample(now time.Time, rs RateSample) {
	b.delivered = rs.TotalDelivered
	b.updateBw(rs)
	b.updateAckAggregation(now, rs)
	b.updateCycle(now, rs)
	b.checkFullBw(rs)
	b.checkDrain(now, rs)
	b.updateMinRTT(now, rs)
	b.setCwnd(rs)
}

// updateAckAggregation estimates how much more than BtlBw allows the ACKs
// have delivered in bursts (Linux's bbr_update_ack_aggregation, in its BBR
// since 2018): an epoch starts when the ACKs fall behind the estimated rate, and
// the bytes delivered in it beyond what the rate would have delivered since
// its start are the excess. Where ACKs come in aggregates (GRO on the
// receiver, ACKs thinned or batched on the way, a sender that takes them in
// batches) a window of BDP times the gain leaves the sender idle between
// them; ackAggregationCwnd adds the largest recent excess to it.
func (b *BBR) updateAckAggregation(now time.Time, rs RateSample) {
	if rs.Acked <= 0 || rs.Delivered < 0 || rs.Interval <= 0 {
		return
	}
	idx := b.extraWin >> 7
	if b.roundStart {
		rounds := b.extraWin&0x7f + 1
		if rounds >= bbrExtraAckedWinRounds {
			rounds, idx = 0, idx^1
			b.extraAcked[idx] = 0
		}
		b.extraWin = idx<<7 | rounds
	}
	t := now.UnixNano()
	if b.ackEpochAt == 0 {
		b.ackEpochAt = t
	}
	expected := int64(b.maxBw() * time.Duration(t-b.ackEpochAt).Seconds())
	acked := int64(b.ackEpochAcked)
	if acked <= expected || acked+int64(rs.Acked) >= bbrAckEpochReset {
		acked, expected, b.ackEpochAt = 0, 0, t
	}
	acked += int64(rs.Acked)
	b.ackEpochAcked = int32(acked)
	if extra := min(acked-expected, int64(b.cwnd)); extra > int64(b.extraAcked[idx]) {
		b.extraAcked[idx] = int32(extra)
	}
}

// ackAggregationCwnd is what setCwnd adds to the target for ACK
// aggregation once the pipe is full (Linux's bbr_ack_aggregation_cwnd, at
// its gain of 1): the larger excess of the two windows, at most BtlBw
// times 100 ms.
func (b *BBR) ackAggregationCwnd() int {
	if !b.filledPipe {
		return 0
	}
	return int(min(float64(max(b.extraAcked[0], b.extraAcked[1])), b.maxBw()*bbrExtraAckedMax.Seconds()))
}

// updateBw counts round trips and feeds the BtlBw filter: an app-limited
// sample only if it raises the estimate (§4.1.1.5).
func (b *BBR) updateBw(rs RateSample) {
	b.roundStart = false
	if rs.Acked > 0 && rs.PriorDelivered >= b.nextRound {
		b.nextRound = rs.TotalDelivered
		b.round++
		b.roundStart = true
		b.conservation = false
	}
	if rs.Delivered <= 0 || rs.Interval <= 0 {
		return
	}
	bw := float64(rs.Delivered) / rs.Interval.Seconds()
	// ProbeRTT's samples are app-limited by design, and so are those of
	// what it sent that come after it ends (Linux marks the connection
	// app-limited up to what is delivered and in flight at each ACK while
	// it probes).
	limited := rs.AppLimited || b.mode == bbrProbeRTT || rs.PriorDelivered < b.appLimitedUntil
	if limited && bw < b.maxBw() {
		return
	}
	b.bwRound = b.round
	i := b.round % bbrBwRounds
	if b.bwRoundOf[i] != b.round {
		b.bwRoundOf[i], b.bw[i] = b.round, float32(bw)
	} else if float32(bw) > b.bw[i] {
		b.bw[i] = float32(bw)
	}
}

// maxBw is BtlBw: the largest per-round maximum of the bbrBwRounds rounds
// up to the latest sample taken. As Linux's windowed filter, old maxima
// expire only when newer samples come in: app-limited rounds that add
// nothing do not age the estimate.
func (b *BBR) maxBw() float64 {
	m := 0.0
	for i, bw := range b.bw {
		if b.bwRoundOf[i] > b.bwRound-bbrBwRounds && float64(bw) > m {
			m = float64(bw)
		}
	}
	return m
}

// bdp is the estimated bandwidth-delay product times gain, in bytes; the
// initial window while the model is empty.
func (b *BBR) bdp(gain float64) int {
	bw := b.maxBw()
	if bw == 0 || b.minRTT == 0 {
		return b.initialCwnd()
	}
	return int(gain * bw * b.minRTT.Seconds())
}

// quantizationBudget is Linux's bbr_quantization_budget: room for three
// TSO units over the target, so that end hosts that send and acknowledge
// in units (TSO, GRO, delayed and compressed ACKs) keep the pipe busy,
// rounded up to an even number of segments (fewer delayed ACKs), and two
// more segments in ProbeBW's probing phase so that it gets above the BDP
// even when the BDP is small.
func (b *BBR) quantizationBudget(cwnd int) int {
	cwnd += bbrQuantaSegments * b.tsoSegsGoal() * b.mss
	segs := (cwnd + b.mss - 1) / b.mss
	cwnd = (segs + segs&1) * b.mss
	if b.mode == bbrProbeBW && b.cycle == 0 {
		cwnd += 2 * b.mss
	}
	return cwnd
}

// tsoSegsGoal is Linux's bbr_tso_segs_goal: the segments of one TSO unit
// at the pacing rate (1/1024 s of it), at least 2 and at most 127. Linux
// sizes it this way whether the device takes TSO or not, and so do we:
// it is the controller's allowance for bursty ACKs, not the link's.
func (b *BBR) tsoSegsGoal() int {
	bytes := min(int(b.pacingRate())>>bbrPacingShift, bbrMaxTSOBytes)
	return min(max(bytes/b.mss, 2), bbrMaxTSOSegs)
}

// pacingRate is the rate Linux would pace at, in bytes per second: the
// pacing gain times BtlBw, 1% below it; before the first estimate, the
// initial window over the RTT (1 ms if unknown) at the high gain
// (bbr_init_pacing_rate_from_rtt).
func (b *BBR) pacingRate() float64 {
	bw := b.maxBw()
	if bw == 0 {
		rtt := b.minRTT
		if rtt <= 0 {
			rtt = time.Millisecond
		}
		return bbrHighGain * float64(b.initialCwnd()) / rtt.Seconds()
	}
	return b.pacingGain() * bw * bbrPacingMargin
}

func (b *BBR) enterStartup() { b.mode = bbrStartup }

func (b *BBR) enterProbeBW(now time.Time) {
	b.mode = bbrProbeBW
	// Start at a random phase other than the drain one (bbr_reset_probe_bw_mode).
	b.cycle = int8(bbrCycleLen - 1 - int(b.rng.Uint64()%(bbrCycleLen-1)))
	b.advanceCycle(now)
}

func (b *BBR) advanceCycle(now time.Time) {
	b.cycle = (b.cycle + 1) % bbrCycleLen
	b.cycleAt = now.UnixNano()
}

// updateCycle moves through ProbeBW's gains once per RTprop; the probing
// phase lasts until the pipe holds gain*BDP (or losses say it cannot), the
// draining phase ends early once in flight is down to the BDP.
func (b *BBR) updateCycle(now time.Time, rs RateSample) {
	if b.mode != bbrProbeBW {
		return
	}
	full := time.Duration(now.UnixNano()-b.cycleAt) > b.minRTT
	switch gain := b.pacingGain(); {
	case gain > 1:
		full = full && (rs.Lost > 0 || rs.InFlight >= b.bdp(gain))
	case gain < 1:
		full = full || rs.InFlight <= b.bdp(1)
	}
	if full {
		b.advanceCycle(now)
	}
}

// checkFullBw ends Startup once three rounds in a row raised BtlBw by less
// than 25% (§4.3.2.2).
func (b *BBR) checkFullBw(rs RateSample) {
	if b.filledPipe || !b.roundStart || rs.AppLimited {
		return
	}
	if bw := b.maxBw(); bw >= b.fullBw*bbrFullBwThresh {
		b.fullBw, b.fullBwCnt = bw, 0
		return
	}
	if b.fullBwCnt++; b.fullBwCnt >= bbrFullBwCount {
		b.filledPipe = true
	}
}

// checkDrain leaves Startup for Drain once the pipe is full, and Drain for
// ProbeBW once what Startup queued has drained (§4.3.3).
func (b *BBR) checkDrain(now time.Time, rs RateSample) {
	if b.mode == bbrStartup && b.filledPipe {
		b.mode = bbrDrain
	}
	if b.mode == bbrDrain && rs.InFlight <= b.bdp(1) {
		b.enterProbeBW(now)
	}
}

// updateMinRTT keeps RTprop, and every ten seconds without a new minimum
// enters ProbeRTT: four segments in flight for 200 ms and a round, so that
// the queue drains and the true propagation delay shows (§4.3.5).
func (b *BBR) updateMinRTT(now time.Time, rs RateSample) {
	expired := b.minRTTAt != 0 && time.Duration(now.UnixNano()-b.minRTTAt) > bbrMinRTTWindow
	if rs.RTT > 0 && (b.minRTT == 0 || rs.RTT <= b.minRTT || expired) {
		b.minRTT, b.minRTTAt = rs.RTT, now.UnixNano()
	}
	if expired && b.mode != bbrProbeRTT {
		b.saveCwnd()
		b.mode = bbrProbeRTT
		b.probeRTTDone = 0
	}
	if b.mode != bbrProbeRTT {
		return
	}
	b.appLimitedUntil = rs.TotalDelivered + int64(rs.InFlight)
	if b.probeRTTDone == 0 && rs.InFlight <= bbrMinCwndSegs*b.mss {
		b.probeRTTDone = now.Add(bbrProbeRTTTime).UnixNano()
		b.probeRTTRound = false
		b.nextRound = b.delivered
		return
	}
	if b.probeRTTDone == 0 {
		return
	}
	if b.roundStart {
		b.probeRTTRound = true
	}
	if b.probeRTTRound && now.UnixNano() >= b.probeRTTDone {
		b.minRTTAt = now.UnixNano()
		b.cwnd = max(b.cwnd, b.priorCwnd)
		if b.filledPipe {
			b.enterProbeBW(now)
		} else {
			b.enterStartup()
		}
	}
}

// setCwnd moves the window towards cwnd_gain*BDP (bbr_set_cwnd): in
// Startup it grows by what is delivered, like slow start; with the pipe
// full it grows up to the target and no further. Losses take what they
// took out of the window; the first round of a recovery conserves packets.
func (b *BBR) setCwnd(rs RateSample) {
	if rs.Lost > 0 {
		b.cwnd = max(b.cwnd-rs.Lost, b.mss)
	}
	if b.inRecovery && !rs.InRecovery && rs.TotalDelivered >= b.lossUntil {
		// Recovery is over: back to the window before it.
		b.inRecovery, b.conservation = false, false
		b.cwnd = max(b.cwnd, b.priorCwnd)
	}
	target := b.quantizationBudget(b.bdp(b.cwndGain()) + b.ackAggregationCwnd())
	switch {
	case b.conservation:
		b.cwnd = max(b.cwnd, rs.InFlight+rs.Acked)
	case b.filledPipe:
		b.cwnd = min(b.cwnd+rs.Acked, target)
	case b.cwnd < target || rs.TotalDelivered < int64(b.initialCwnd()):
		b.cwnd += rs.Acked
	}
	b.cwnd = max(b.cwnd, bbrMinCwndSegs*b.mss)
	if b.mode == bbrProbeRTT {
		b.cwnd = min(b.cwnd, bbrMinCwndSegs*b.mss)
	}
}
