package tcp

import (
	"sort"
	"time"

	"ustack/stack/seqnum"
)

// RACK-TLP (RFC 8985), used when the peer SACKs: a segment is lost when a
// segment sent sufficiently after it has been delivered (time-based, so a
// lost retransmission is found too), and a tail loss probe resends the last
// segment when ACKs stop, so that losses at the end of a flight are found
// without waiting for the retransmission timer.

// sentRec is one transmitted segment, kept until cumulatively acknowledged.
type sentRec struct {
	start, end seqnum.Value
	at         time.Time // last (re)transmission
	rtx        bool      // retransmitted at least once
	lost       bool      // marked lost and not yet retransmitted since
	sacked     bool
}

type rackState struct {
	recs      []sentRec // outstanding segments in sequence order: recs[head:]
	head      int
	xmitTS    time.Time     // RACK.xmit_ts: send time of the latest delivered segment
	endSeq    seqnum.Value  // RACK.end_seq
	rtt       time.Duration // RACK.rtt
	minRTT    time.Duration
	lostBytes int  // marked lost, not retransmitted since
	tlpOut    bool // a probe is outstanding
}

func (r *rackState) live() []sentRec { return r.recs[r.head:] }

func (r *rackState) reset() {
	r.recs, r.head, r.lostBytes, r.tlpOut = r.recs[:0], 0, 0, false
}

// rackSent records a transmission of [seq, end).
func (c *Conn) rackSent(now time.Time, seq, end seqnum.Value) {
	if !c.opt.sack || !seq.LessThan(end) {
		return
	}
	r := &c.rack
	if seq.LessThan(c.sndMax) {
		// A retransmission: refresh every record it overlaps.
		live := r.live()
		i := sort.Search(len(live), func(i int) bool { return seq.LessThan(live[i].end) })
		for ; i < len(live) && live[i].start.LessThan(end); i++ {
			rec := &live[i]
			rec.at, rec.rtx = now, true
			if rec.lost {
				rec.lost = false
				r.lostBytes -= int(rec.start.Size(rec.end))
			}
		}
		if end.LessThanEq(c.sndMax) {
			return
		}
		seq = c.sndMax
	}
	if r.head > 0 && r.head >= len(r.recs)/2 {
		n := copy(r.recs, r.recs[r.head:])
		r.recs, r.head = r.recs[:n], 0
	}
	r.recs = append(r.recs, sentRec{start: seq, end: end, at: now})
}

// rackDelivered notes that rec reached the peer (RFC 8985 §6.2 step 2).
func (c *Conn) rackDelivered(now time.Time, rec *sentRec) {
	r := &c.rack
	rtt := now.Sub(rec.at)
	if rec.rtx && rtt < r.minRTT {
		return // may be the ACK of the original: no information
	}
	if !rec.rtx && (r.minRTT == 0 || rtt < r.minRTT) {
		r.minRTT = max(rtt, time.Microsecond)
	}
	if rec.at.After(r.xmitTS) || rec.at.Equal(r.xmitTS) && rec.end.GreaterThan(r.endSeq) {
		r.xmitTS, r.endSeq, r.rtt = rec.at, rec.end, rtt
	}
}

// rackAcked drops the records below SND.UNA, taking them as delivered.
func (c *Conn) rackAcked(now time.Time) {
	r := &c.rack
	for r.head < len(r.recs) {
		rec := &r.recs[r.head]
		if c.sndUna.LessThan(rec.end) {
			if rec.start.LessThan(c.sndUna) {
				if rec.lost {
					r.lostBytes -= int(rec.start.Size(c.sndUna))
				}
				rec.start = c.sndUna
			}
			break
		}
		if !rec.sacked {
			c.rackDelivered(now, rec)
		}
		if rec.lost {
			r.lostBytes -= int(rec.start.Size(rec.end))
		}
		r.recs[r.head] = sentRec{}
		r.head++
	}
	if r.head == len(r.recs) {
		r.recs, r.head = r.recs[:0], 0
	}
}

// rackSACKed marks the records the scoreboard now covers as delivered.
func (c *Conn) rackSACKed(now time.Time) {
	r := &c.rack
	high := c.sb.highest(c.sndUna)
	live := r.live()
	for i := range live {
		rec := &live[i]
		if !rec.start.LessThan(high) {
			break
		}
		if rec.sacked || c.sb.sackedBetween(rec.start, rec.end) != int(rec.start.Size(rec.end)) {
			continue
		}
		rec.sacked = true
		if rec.lost {
			rec.lost = false
			r.lostBytes -= int(rec.start.Size(rec.end))
		}
		c.rackDelivered(now, rec)
	}
}

// rackDetect marks lost every segment sent before the latest delivered
// one by more than the reordering window (RFC 8985 §6.2 step 5), and arms
// the reordering timer for those not yet due. It reports whether any
// segment is marked lost.
func (c *Conn) rackDetect(now time.Time) bool {
	r := &c.rack
	c.tm.reo = time.Time{}
	if r.xmitTS.IsZero() {
		return r.lostBytes > 0
	}
	reoWnd := r.minRTT / 4
	live := r.live()
	for i := range live {
		rec := &live[i]
		if rec.sacked || rec.lost || !rec.at.Before(r.xmitTS) && !(rec.at.Equal(r.xmitTS) && rec.end.LessThan(r.endSeq)) {
			continue
		}
		due := rec.at.Add(r.rtt + reoWnd)
		if !now.Before(due) {
			rec.lost = true
			r.lostBytes += int(rec.start.Size(rec.end))
		} else if c.tm.reo.IsZero() || due.Before(c.tm.reo) {
			c.tm.reo = due
		}
	}
	return r.lostBytes > 0
}

// firstLost returns the first segment marked lost.
func (c *Conn) firstLost() (seqnum.Value, bool) {
	if c.rack.lostBytes <= 0 {
		return 0, false
	}
	for _, rec := range c.rack.live() {
		if rec.lost {
			return rec.start, true
		}
	}
	return 0, false
}

// armTLP schedules a tail loss probe (RFC 8985 §7.2): PTO = 2*SRTT (at least
// 10 ms), plus a delayed-ACK allowance when a single segment is in flight;
// not if the retransmission timer would fire first.
func (c *Conn) armTLP(now time.Time) {
	c.tm.tlp = time.Time{}
	if !c.opt.sack || c.inRecover || c.rack.tlpOut || !c.rtt.measured || c.sndUna == c.sndMax {
		return
	}
	pto := max(2*c.rtt.srtt, 10*time.Millisecond)
	if int(c.sndUna.Size(c.sndMax)) <= c.sndMSS {
		pto += DefaultMinRTO
	}
	at := now.Add(pto)
	if !c.tm.rtx.IsZero() && !at.Before(c.tm.rtx) {
		return
	}
	c.tm.tlp = at
}

// onTLP sends the probe: the last segment again (RFC 8985 §7.3), and
// restarts the retransmission timer.
func (c *Conn) onTLP(now time.Time) {
	if c.inRecover || c.sndUna == c.sndMax || c.rack.tlpOut {
		return
	}
	live := c.rack.live()
	if len(live) == 0 {
		return
	}
	last := live[len(live)-1]
	c.Stats.TLPProbes++
	c.rack.tlpOut = true
	off := int(c.bufSeq().Size(last.start))
	n := min(int(last.start.Size(last.end)), c.sndBuf.Len()-off)
	fin := c.finQueued && last.end == c.finSeq.Add(1)
	if fin {
		n = int(last.start.Size(c.finSeq))
	}
	if n < 0 || (n == 0 && !fin) {
		return
	}
	c.sendRange(now, last.start, n, fin)
	c.tm.rtx = now.Add(c.rtt.rto)
}

// rackCheck runs RACK's detection after an ACK with news and starts or
// feeds recovery when it finds losses.
func (c *Conn) rackCheck(now time.Time) {
	if !c.opt.sack || c.sb.bytes == 0 && c.rack.lostBytes == 0 {
		return
	}
	before := c.rack.lostBytes
	if !c.rackDetect(now) {
		return
	}
	if c.rack.lostBytes > before {
		c.Stats.RACKLost++
	}
	if !c.inRecover {
		c.enterRecovery(now)
		return
	}
	c.recoverySend(now)
}
