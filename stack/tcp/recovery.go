package tcp

import (
	"time"

	"ustack/stack/seqnum"
)

// Loss recovery: fast retransmit and fast recovery (RFC 5681 §3.2) with
// NewReno's partial ACKs (RFC 6582) when the peer does not SACK, and the
// conservative SACK-based recovery of RFC 6675 when it does.

// dupThresh is RFC 5681's and RFC 6675's DupThresh.
const dupThresh = 3

// pipe estimates the bytes in the network (RFC 6675 §4 SetPipe). Outside
// recovery it is the data sent and neither ACKed nor SACKed. In SACK
// recovery every hole below the highest SACKed byte counts as lost (RFC
// 6675 IsLost, simplified), so the pipe is what lies beyond the highest
// SACK plus what was retransmitted and not yet SACKed. In NewReno recovery,
// each duplicate ACK stands for one segment that left the network (the
// window inflation of RFC 5681 step 4).
func (c *Conn) pipe() int {
	if !c.inRecover {
		return int(c.sndUna.Size(c.sndNxt)) - c.sb.sackedBetween(c.sndUna, c.sndNxt)
	}
	if c.opt.sack {
		// Outstanding, less what was SACKed and what is marked lost and
		// not yet sent again (RFC 6675 SetPipe with RACK's IsLost).
		return max(int(c.sndUna.Size(c.sndMax))-c.sb.bytes-c.rack.lostBytes, 0)
	}
	return max(int(c.sndUna.Size(c.sndMax))-c.dupAcks*c.sndMSS, 0)
}

// takeSACK records the SACK blocks of an ACK in the scoreboard and
// reports whether they SACKed anything new.
func (c *Conn) takeSACK(seg *Segment) bool {
	if !c.opt.sack || seg.Opts.NumSACK == 0 {
		return false
	}
	before := c.sb.bytes
	for i := 0; i < seg.Opts.NumSACK; i++ {
		b := seg.Opts.SACK[i]
		s, e := seqnum.Value(b.Start), seqnum.Value(b.End)
		// RFC 2018 §4 / RFC 6675 §5: ignore blocks that are empty, below
		// SND.UNA (D-SACK) or beyond what was sent.
		if !s.LessThan(e) || e.LessThanEq(c.sndUna) || e.GreaterThan(c.sndMax) {
			continue
		}
		c.sb.add(seqnum.Max(s, c.sndUna), e)
	}
	return c.sb.bytes != before
}

// onDupAck counts a duplicate ACK (RFC 5681 §2, or RFC 6675's ACK that
// SACKs new data) and starts recovery at DupThresh or when more than
// (DupThresh-1)*SMSS bytes are SACKed above SND.UNA.
func (c *Conn) onDupAck(now time.Time) {
	c.Stats.DupAcks++
	c.dupAcks++
	if c.inRecover {
		if c.opt.sack {
			c.recoverySend(now)
		}
		return // NewReno: the inflated pipe lets output send new data
	}
	lost := c.dupAcks >= dupThresh || (c.opt.sack && c.sb.bytes > (dupThresh-1)*c.sndMSS)
	// RFC 6582 §3.2 step 1: one reduction per window of data; the guard
	// keeps duplicate ACKs caused by a timeout's go-back-N from starting a
	// false fast retransmit. With SACK a duplicate ACK that SACKs new data
	// is real news, so a loss found that way after a timeout (a lost
	// retransmission, say) is repaired at once instead of by another,
	// backed-off timeout.
	if lost && (c.sndUna.GreaterThan(c.recover) || c.recover == c.iss || c.opt.sack && c.sb.bytes > (dupThresh-1)*c.sndMSS) {
		c.enterRecovery(now)
	}
}

// enterRecovery is fast retransmit: remember the recovery point, let the
// congestion control reduce the window, resend the first lost segment.
func (c *Conn) enterRecovery(now time.Time) {
	c.Stats.FastRetransmits++
	c.inRecover = true
	c.recover = c.sndMax
	c.highRxt = c.sndUna
	if c.cc != nil {
		c.cc.OnLoss(now, int(c.sndUna.Size(c.sndMax)))
	}
	c.tm.tlp = time.Time{}
	if c.opt.sack {
		c.markHolesLost()
		if s, ok := c.firstLost(); ok {
			c.retransmitAt(now, s)
		}
		c.recoverySend(now)
		return
	}
	c.retransmitAt(now, c.sndUna)
}

// markHolesLost is RFC 6675's IsLost for a recovery started by duplicate
// ACKs: every unSACKed segment below the highest SACKed one (and the one at
// SND.UNA) counts as lost, unless already sent again.
func (c *Conn) markHolesLost() {
	high := c.sb.highest(c.sndUna)
	live := c.rack.live()
	for i := range live {
		rec := &live[i]
		if i > 0 && !rec.start.LessThan(high) {
			break
		}
		if rec.sacked || rec.lost || rec.rtx && i > 0 {
			continue
		}
		rec.lost = true
		c.rack.lostBytes += int(rec.start.Size(rec.end))
	}
}

// retransmitAt resends one segment starting at seq, up to the next SACKed
// range.
func (c *Conn) retransmitAt(now time.Time, seq seqnum.Value) {
	base := c.bufSeq()
	off := int(base.Size(seq))
	n := min(c.sndBuf.Len()-off, c.effMSS())
	if s, _, ok := c.sb.nextSACKed(seq); ok {
		n = min(n, int(seq.Size(s)))
	}
	fin := c.finQueued && off+max(n, 0) == c.sndBuf.Len() && seq.Add(seqnum.Size(max(n, 0))) == c.finSeq
	if n <= 0 && !fin {
		return
	}
	end := c.sendRange(now, seq, max(n, 0), fin)
	if end.GreaterThan(c.highRxt) {
		c.highRxt = end
	}
}

// recoverySend retransmits holes while the congestion window has room
// (RFC 6675 §5 steps 4.x, NextSeg rule 1). New data (rule 2) follows in
// sendData, under the same pipe.
func (c *Conn) recoverySend(now time.Time) {
	if c.cc == nil {
		return
	}
	for i := 0; i < 64; i++ {
		if c.cc.Cwnd()-c.pipe() < c.effMSS() {
			return
		}
		s, ok := c.firstLost()
		if !ok {
			return
		}
		before := c.rack.lostBytes
		c.retransmitAt(now, s)
		if c.rack.lostBytes == before {
			return // nothing could be sent
		}
	}
}

// ackInRecovery handles an ACK that advanced SND.UNA during recovery:
// a full ACK ends it (RFC 6582 §3.2 step 3); a partial ACK resends the next
// hole (NewReno) or goes on with the scoreboard (SACK).
func (c *Conn) ackInRecovery(now time.Time) {
	if c.sndUna.GreaterThanEq(c.recover) {
		c.inRecover = false
		c.dupAcks = 0
		return
	}
	if c.highRxt.LessThan(c.sndUna) {
		c.highRxt = c.sndUna
	}
	if c.opt.sack {
		c.recoverySend(now)
		return
	}
	c.dupAcks = 0
	c.retransmitAt(now, c.sndUna)
}
