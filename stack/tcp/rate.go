package tcp

import (
	"time"

	"ustack/stack/tcp/cc"
)

// Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation-02,
// as Linux's tcp_rate.c): each transmitted segment remembers how much had
// been delivered when it left and when; each ACK that delivers segments
// makes one sample, delivered bytes over the longer of the send and the ACK
// intervals of its most recently sent segment. Only a model-based
// controller (BBR) asks for it, and it needs the per-segment records that
// SACK-based recovery keeps, so a connection without SACK runs CUBIC.

// rateState is the connection's side of the estimator (the draft's C.*).
type rateState struct {
	delivered   int64 // C.delivered: bytes cumulatively ACKed or SACKed
	deliveredAt stamp // C.delivered_time
	firstSentAt stamp // C.first_sent_time
	// appLimited is C.app_limited: until delivered passes it, samples are
	// app-limited (0: not app-limited).
	appLimited int64
	lostTotal  int64 // bytes ever marked lost, for the samples' Lost
	lostSeen   int64 // lostTotal at the last sample

	// The sample this ACK builds (the draft's rs.*).
	priorDelivered int64
	priorAt        stamp
	sendElapsed    time.Duration
	ackElapsed     time.Duration
	rtt            time.Duration
	acked          int32 // bytes this ACK delivered
	sampleApp      bool
	have           bool // a segment was delivered by this ACK
}

// rateOnSent stamps a transmitted (or retransmitted) segment with the
// delivery state (the draft's OnPacketSent). idle: nothing was in flight.
func (r *rateState) onSent(now time.Time, rec *sentRec, idle bool) {
	if idle {
		r.firstSentAt, r.deliveredAt = stampOf(now), stampOf(now)
	}
	rec.delivered, rec.deliveredAt, rec.firstSentAt = r.delivered, r.deliveredAt, r.firstSentAt
	rec.appLimited = r.appLimited != 0
}

// onDelivered counts one segment's delivery by this ACK (the draft's
// UpdateRateSample); the most recently sent delivered segment sets the
// sample's interval.
func (r *rateState) onDelivered(now time.Time, rec *sentRec) {
	n := int64(rec.start.Size(rec.end))
	r.delivered += n
	r.acked += int32(n)
	r.deliveredAt = stampOf(now)
	if r.have && rec.delivered < r.priorDelivered {
		return
	}
	r.have = true
	r.priorDelivered, r.priorAt = rec.delivered, rec.deliveredAt
	r.sampleApp = rec.appLimited
	r.sendElapsed = rec.at.Sub(rec.firstSentAt)
	r.ackElapsed = r.deliveredAt.Sub(rec.deliveredAt)
	r.firstSentAt = rec.at
	r.rtt = 0
	if !rec.rtx {
		r.rtt = stampOf(now).Sub(rec.at)
	}
}

// sample ends this ACK's sample (the draft's GenerateRateSample) and
// reports whether it is usable: something was delivered, over an interval
// no shorter than the minimum RTT (a shorter one comes from ACK
// compression and overstates the rate).
func (r *rateState) sample(minRTT time.Duration, inFlight int, inRecovery bool) (cc.RateSample, bool) {
	rs := cc.RateSample{
		TotalDelivered: r.delivered, PriorDelivered: r.priorDelivered,
		Acked: int(r.acked), Lost: int(r.lostTotal - r.lostSeen), InFlight: inFlight, InRecovery: inRecovery,
		RTT: r.rtt, AppLimited: r.sampleApp,
	}
	r.lostSeen = r.lostTotal
	ok := r.have
	r.have, r.acked = false, 0
	if r.appLimited != 0 && r.delivered > r.appLimited {
		r.appLimited = 0
	}
	if !ok {
		return rs, false
	}
	rs.Interval = max(r.sendElapsed, r.ackElapsed)
	rs.Delivered = r.delivered - r.priorDelivered
	if rs.Interval < minRTT {
		rs.Interval = 0 // the controller still counts the round and the window
	}
	return rs, true
}

// markAppLimited notes that the application left the window unused
// (the draft's CheckIfApplicationLimited).
func (r *rateState) markAppLimited(inFlight int) {
	r.appLimited = max(r.delivered+int64(inFlight), 1)
}

// noteLost counts bytes newly marked lost, for the rate samples' Lost.
func (s *sender) noteLost(n int) {
	if s.rate != nil {
		s.rate.lostTotal += int64(n)
	}
}
