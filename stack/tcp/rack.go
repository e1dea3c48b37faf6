package tcp

import (
	"sort"
	"sync"
	"time"

	"ustack/stack/seqnum"
	"ustack/stack/tcp/cc"
)

// RACK-TLP (RFC 8985), used when the peer SACKs: a segment is lost when a
// segment sent sufficiently after it has been delivered (time-based, so a
// lost retransmission is found too), and a tail loss probe resends the last
// segment when ACKs stop, so that losses at the end of a flight are found
// without waiting for the retransmission timer.

// wcDelAckT is RFC 8985 §7.2's WCDelAckT, the worst-case delayed-ACK
// timer that the probe timeout allows for when one segment is in flight:
// 200 ms.
const wcDelAckT = 200 * time.Millisecond

// tlpMin is what Linux adds to 2*SRTT for a probe with more than one
// segment in flight: TCP_TIMEOUT_MIN, two jiffies at HZ=1000.
const tlpMin = 2 * time.Millisecond

// sentRec is one transmitted segment, kept until cumulatively acknowledged.
type sentRec struct {
	start, end               seqnum.Value
	at                       stamp // last (re)transmission
	rtx                      bool  // retransmitted at least once
	lost                     bool  // marked lost and not yet retransmitted since
	sacked                   bool
	appLimited               bool // delivery-rate state when sent (rate.go)
	delivered                int64
	deliveredAt, firstSentAt stamp
}

type rackState struct {
	// The outstanding segments in sequence order: recs[head:]. The array
	// comes from recPool when data goes out and returns to it once all is
	// acknowledged (recsH is its pool handle), so that an idle connection
	// holds none.
	recs      []sentRec
	recsH     *[]sentRec
	head      int32
	endSeq    seqnum.Value  // RACK.end_seq
	xmitTS    stamp         // RACK.xmit_ts: send time of the latest delivered segment
	rtt       time.Duration // RACK.rtt
	minRTT    time.Duration
	lostBytes int  // marked lost, not retransmitted since
	tlpOut    bool // a probe is outstanding
	// The reordering window's adaptation to D-SACKs (RFC 8985 §6.2 step
	// 4): reoMult counts the steps of minRTT/4 (0 stands for 1), reoPersist
	// the recoveries it lasts without a D-SACK, dsackRound the SND.NXT
	// that ends the round in which a D-SACK already widened it. (Here,
	// they fill what would be padding after tlpOut.)
	reoMult      uint8
	reoPersist   uint8
	dsackRoundOn bool
	dsackRound   seqnum.Value
	// The RTT of the newest never-retransmitted segment delivered by the
	// ACK being processed, and its send time (rttSample takes it).
	lastRTT time.Duration
	lastAt  stamp
}

// rackReoPersist is RFC 8985 §6.2's 16 recoveries (Linux's
// TCP_RACK_RECOVERY_THRESH).
const rackReoPersist = 16

// onDSACK widens the reordering window by one step of minRTT/4, at most
// once a round trip (RFC 8985 §6.2 step 4, Linux's tcp_rack_update_reo_wnd):
// a D-SACK says a retransmission was spurious, so the window was too short
// for this path's reordering.
func (k *sackRecovery) onDSACK() {
	r := &k.rack
	s := &k.c.snd
	k.sstat.dsackRecv++
	if r.dsackRoundOn && s.una.GreaterThanEq(r.dsackRound) {
		r.dsackRoundOn = false
	}
	if r.dsackRoundOn {
		return
	}
	r.dsackRoundOn, r.dsackRound = true, s.nxt
	if r.reoMult == 0 {
		r.reoMult = 1
	}
	if r.reoMult < 255 {
		r.reoMult++
	}
	r.reoPersist = rackReoPersist
}

// recoveryEnded lets a widened reordering window shrink back after
// rackReoPersist recoveries without a D-SACK (RFC 8985 §6.2 step 4).
func (r *rackState) recoveryEnded() {
	if r.reoPersist == 0 {
		return
	}
	if r.reoPersist--; r.reoPersist == 0 {
		r.reoMult = 1
	}
}

// reoWnd is RACK.reo_wnd: minRTT/4 per step, never more than SRTT (RFC
// 8985 §6.2 step 4).
func (k *sackRecovery) reoWnd() time.Duration {
	r := &k.rack
	w := r.minRTT / 4 * time.Duration(max(r.reoMult, 1))
	if srtt := k.c.snd.rtt.srtt; srtt > 0 && r.reoMult > 1 {
		w = min(w, srtt)
	}
	return w
}

func (k *sackRecovery) rttSample() time.Duration {
	r := k.rack.lastRTT
	k.rack.lastRTT, k.rack.lastAt = 0, 0
	return r
}

func (r *rackState) live() []sentRec { return r.recs[r.head:] }

var recPool = sync.Pool{New: func() any { return new([]sentRec) }}

// release returns the records' array to the pool: nothing is outstanding.
func (r *rackState) release() {
	if r.recsH != nil {
		*r.recsH = r.recs[:0]
		recPool.Put(r.recsH)
	}
	r.recs, r.recsH, r.head = nil, nil, 0
}

// onSent records a transmission of [seq, end).
func (k *sackRecovery) onSent(now time.Time, seq, end seqnum.Value) {
	if !seq.LessThan(end) {
		return
	}
	k.prrSent(seq, end)
	r := &k.rack
	s := &k.c.snd
	idle := s.una == s.max
	if seq.LessThan(k.c.snd.max) {
		// A retransmission: refresh every record it overlaps.
		live := r.live()
		i := sort.Search(len(live), func(i int) bool { return seq.LessThan(live[i].end) })
		for ; i < len(live) && live[i].start.LessThan(end); i++ {
			rec := &live[i]
			rec.at, rec.rtx = stampOf(now), true
			if s.rate != nil {
				s.rate.onSent(now, rec, idle)
			}
			if rec.lost {
				rec.lost = false
				r.lostBytes -= int(rec.start.Size(rec.end))
			}
		}
		if end.LessThanEq(k.c.snd.max) {
			return
		}
		seq = k.c.snd.max
	}
	if r.recsH == nil {
		r.recsH = recPool.Get().(*[]sentRec)
		r.recs, r.head = (*r.recsH)[:0], 0
	}
	if r.head > 0 && int(r.head) >= len(r.recs)/2 {
		n := copy(r.recs, r.recs[r.head:])
		r.recs, r.head = r.recs[:n], 0
	}
	// One record per segment on the wire, also when a TSO unit carried
	// several: SACK and RACK then judge each one as the peer saw it.
	mss := seqnum.Size(k.c.effMSS())
	for seq != end {
		next := end
		if seq.Size(end) > mss {
			next = seq.Add(mss)
		}
		r.recs = append(r.recs, sentRec{start: seq, end: next, at: stampOf(now)})
		if s.rate != nil {
			s.rate.onSent(now, &r.recs[len(r.recs)-1], idle)
		}
		seq = next
	}
}

// rackDelivered notes that rec reached the peer (RFC 8985 §6.2 step 2).
// original is true when the ACK shows that an earlier transmission than
// rec's last was delivered (rackAcked): the delivery still counts for the
// rate, but says nothing of when the retransmission arrived.
func (k *sackRecovery) rackDelivered(now time.Time, rec *sentRec, original bool) {
	r := &k.rack
	if k.c.snd.rate != nil {
		k.c.snd.rate.onDelivered(now, rec)
	}
	if original {
		return
	}
	rtt := stampOf(now).Sub(rec.at)
	if !rec.rtx && (r.lastAt.IsZero() || !rec.at.Before(r.lastAt)) {
		r.lastRTT, r.lastAt = max(rtt, time.Microsecond), rec.at
	}
	if rec.rtx && rtt < r.minRTT {
		return // may be the ACK of the original: no information
	}
	if !rec.rtx && (r.minRTT == 0 || rtt < r.minRTT) {
		r.minRTT = max(rtt, time.Microsecond)
	}
	if rec.at.After(r.xmitTS) || rec.at == r.xmitTS && rec.end.GreaterThan(r.endSeq) {
		r.xmitTS, r.endSeq, r.rtt = rec.at, rec.end, rtt
	}
}

// rackAcked drops the records below SND.UNA, taking them as delivered.
//
// A retransmitted segment acknowledged by an ACK that echoes a timestamp
// older than its retransmission (TSecr < the TSval it last went out with)
// was acknowledged for an earlier transmission, which was not lost. RFC
// 8985 §6.2 step 2 skips a delivery that may be the original's; Linux
// tells it by the echoed timestamp here (tcp_skb_spurious_retrans in
// tcp_clean_rtx_queue: no tcp_rack_advance for it), which a cumulative ACK
// carries exactly, since the segment that advances the left edge sets
// TS.Recent (RFC 7323 §4.3). Without this, the late ACK of an original
// moves RACK.xmit_ts to the retransmission's time and marks lost what
// was sent before it and is still in flight. SACKs do not tell: an ACK
// for data above a hole echoes the segment that last advanced the left
// edge, older data (RFC 7323 §4.3), so there Linux too keeps only the
// min_RTT guard.
func (k *sackRecovery) rackAcked(now time.Time, ecr uint32) {
	r := &k.rack
	for int(r.head) < len(r.recs) {
		rec := &r.recs[r.head]
		if k.c.snd.una.LessThan(rec.end) {
			if rec.start.LessThan(k.c.snd.una) {
				if rec.lost {
					r.lostBytes -= int(rec.start.Size(k.c.snd.una))
				}
				rec.start = k.c.snd.una
			}
			break
		}
		if !rec.sacked {
			k.rackDelivered(now, rec, rec.rtx && k.c.echoedBefore(ecr, rec.at))
		}
		if rec.lost {
			r.lostBytes -= int(rec.start.Size(rec.end))
		}
		r.recs[r.head] = sentRec{}
		r.head++
	}
	if int(r.head) == len(r.recs) {
		r.release()
	}
}

// rackSACKed marks the records the scoreboard now covers as delivered.
func (k *sackRecovery) rackSACKed(now time.Time) {
	r := &k.rack
	high := k.sb.highest(k.c.snd.una)
	live := r.live()
	for i := range live {
		rec := &live[i]
		if !rec.start.LessThan(high) {
			break
		}
		if rec.sacked || k.sb.sackedBetween(rec.start, rec.end) != int(rec.start.Size(rec.end)) {
			continue
		}
		rec.sacked = true
		if rec.lost {
			rec.lost = false
			r.lostBytes -= int(rec.start.Size(rec.end))
		}
		k.rackDelivered(now, rec, false)
	}
}

// rackDetect marks lost every segment sent before the latest delivered
// one by more than the reordering window (RFC 8985 §6.2 step 5), and arms
// the reordering timer for those not yet due. It reports whether any
// segment is marked lost.
func (k *sackRecovery) rackDetect(now time.Time) bool {
	r := &k.rack
	k.reoAt = 0
	if r.xmitTS.IsZero() {
		return r.lostBytes > 0
	}
	reoWnd := k.reoWnd()
	live := r.live()
	for i := range live {
		rec := &live[i]
		if rec.sacked || rec.lost || !rec.at.Before(r.xmitTS) && !(rec.at == r.xmitTS && rec.end.LessThan(r.endSeq)) {
			continue
		}
		due := rec.at.Add(r.rtt + reoWnd)
		if !stampOf(now).Before(due) {
			rec.lost = true
			r.lostBytes += int(rec.start.Size(rec.end))
			k.c.snd.noteLost(int(rec.start.Size(rec.end)))
		} else if k.reoAt.IsZero() || due.Before(k.reoAt) {
			k.reoAt = due
		}
	}
	return r.lostBytes > 0
}

// firstLost returns the first segment marked lost.
func (k *sackRecovery) firstLost() (seqnum.Value, bool) {
	if k.rack.lostBytes <= 0 {
		return 0, false
	}
	for _, rec := range k.rack.live() {
		if rec.lost {
			return rec.start, true
		}
	}
	return 0, false
}

// armTLP schedules a tail loss probe (RFC 8985 §7.2): PTO = 2*SRTT plus 2 ms
// (Linux's floor), or plus a delayed-ACK allowance when a single segment is in flight;
// never later than the retransmission timer.
func (k *sackRecovery) armTLP(now time.Time) {
	k.tlpAt = 0
	if k.inRecover || k.rack.tlpOut || !k.c.snd.rtt.measured || k.c.snd.una == k.c.snd.max {
		return
	}
	if k.c.snd.rtxCount > 0 {
		return // after a timeout, until SND.UNA moves: Linux probes only in the Open state
	}
	// RFC 8985 §7.2: PTO = 2*SRTT, plus WCDelAckT with one segment in
	// flight. Linux (tcp_schedule_loss_probe) adds TCP_TIMEOUT_MIN (2 ms)
	// otherwise, so that a sub-millisecond SRTT does not probe at once;
	// the RFC's earlier 10 ms floor cost a 10 ms stall on every tail loss
	// of a fast path.
	pto := 2*k.c.snd.rtt.srtt + tlpMin
	if int(k.c.snd.una.Size(k.c.snd.max)) <= int(k.c.snd.mss) {
		pto = 2*k.c.snd.rtt.srtt + wcDelAckT
	}
	at := stampOf(now).Add(pto)
	if rto := k.c.snd.rtxAt; !rto.IsZero() && at.After(rto) {
		// RFC 8985 §7.2: the PTO never fires after the RTO would; as in
		// Linux (tcp_schedule_loss_probe), it is clamped to it, and the
		// probe goes first (Tick), re-arming the RTO behind it.
		at = rto
	}
	k.tlpAt = at
}

// onTLP sends the probe: the last segment again (RFC 8985 §7.3), and
// restarts the retransmission timer.
func (k *sackRecovery) onTLP(now time.Time) {
	if k.inRecover || k.c.snd.una == k.c.snd.max || k.rack.tlpOut {
		return
	}
	live := k.rack.live()
	if len(live) == 0 {
		return
	}
	last := live[len(live)-1]
	k.sstat.tlpProbes++
	k.rack.tlpOut = true
	off := int(k.c.snd.bufSeq().Size(last.start))
	n := min(int(last.start.Size(last.end)), k.c.snd.buf.Len()-off)
	fin := k.c.snd.finQueued && last.end == k.c.snd.finSeq.Add(1)
	if fin {
		n = int(last.start.Size(k.c.snd.finSeq))
	}
	if n < 0 || (n == 0 && !fin) {
		return
	}
	start := last.start
	if mss := k.c.effMSS(); n > mss && k.c.cfg.TSOMax == 0 {
		// Options the segment did not carry when it left (SACK blocks
		// owed since) leave less room: probe with its last effective
		// MSS, as Linux cuts the skb (tcp_send_loss_probe, tcp_fragment).
		start, n = start.Add(seqnum.Size(n-mss)), mss
	}
	k.c.sendRange(now, start, n, fin, false)
	k.c.armRTX(now)
}

// check runs RACK's detection after an ACK with news and starts or
// feeds recovery when it finds losses.
//
// In recovery, every ACK then counts its delivery for PRR (RFC 6937 §3.1),
// after the losses it reveals are marked, and lets out what PRR allows.
func (k *sackRecovery) check(now time.Time) {
	if k.sb.bytes != 0 || k.rack.lostBytes != 0 {
		before := k.rack.lostBytes
		if k.rackDetect(now) {
			if k.rack.lostBytes > before {
				k.sstat.rackLost++
			}
			if !k.inRecover {
				k.enterRecovery(now)
				return
			}
		}
	}
	if k.c.snd.rate != nil {
		m := k.c.snd.cc.(cc.ModelBased)
		if rs, ok := k.c.snd.rate.sample(k.rack.minRTT, k.pipe(), k.inRecover); ok {
			m.OnRateSample(now, rs)
		}
	}
	if k.inRecover && k.prr.fresh {
		k.prrACK(k.pipe(), k.sb.bytes)
		k.recoverySend(now)
	}
}
