package tcp

import (
	"syscall"
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

const (
	flagFIN = header.FlagFIN
	flagSYN = header.FlagSYN
	flagRST = header.FlagRST
	flagPSH = header.FlagPSH
	flagACK = header.FlagACK
)

// Errors reported to the application; errors.Is matches them.
var (
	ErrReset    = syscall.ECONNRESET
	ErrRefused  = syscall.ECONNREFUSED
	ErrTimedOut = syscall.ETIMEDOUT
)

// bufSeq is the sequence number of the first byte in sndBuf: data starts
// one after the ISS, which the SYN occupies.
func (c *Conn) bufSeq() seqnum.Value {
	if c.sndUna == c.iss {
		return c.iss.Add(1)
	}
	return c.sndUna
}

// send stamps the receive side (ACK, window) and the options on seg and
// hands it out. SYN options are the caller's.
func (c *Conn) send(now time.Time, s Segment) {
	// The segment goes out through the connection's scratch copy, so that
	// handing it to the Sender interface allocates nothing.
	c.tx = s
	seg := &c.tx
	syn := seg.Flags&flagSYN != 0
	if !syn {
		c.optionsFor(now, seg)
	}
	if seg.Flags&flagRST == 0 {
		seg.Wnd = c.advertise(syn)
	}
	if seg.Flags&flagACK != 0 {
		seg.Ack = c.rcvNxt
		c.opt.lastAckSent = c.rcvNxt
		c.ackNow, c.ackPending = false, 0
		c.tm.delack = time.Time{}
	}
	c.Stats.SegsOut++
	c.out.Send(c, seg)
}

// Flush ends an input batch: a lone unacknowledged segment starts the
// delayed-ACK timer (RFC 9293 §3.8.6.3); with delayed ACKs off it is
// acknowledged now, so that one ACK covers the whole batch.
func (c *Conn) Flush(now time.Time) {
	if c.ackPending > 0 {
		if c.cfg.DelayedAck < 0 || c.ackPending >= 2 {
			c.ackNow = true
		} else if c.tm.delack.IsZero() {
			c.tm.delack = now.Add(c.cfg.DelayedAck)
		}
	}
	c.output(now)
}

func (c *Conn) sendSYN(now time.Time) {
	seg := Segment{Seq: c.iss, Flags: flagSYN, Opts: c.synOptions(now, c.state == SynReceived)}
	if c.state == SynReceived {
		seg.Flags |= flagACK
	}
	if c.synRtx == 0 {
		c.rtt.start(now, c.iss.Add(1))
	}
	c.send(now, seg)
	if c.tm.rtx.IsZero() {
		c.tm.rtx = now.Add(c.rtt.rto)
	}
}

func (c *Conn) sendRST(now time.Time, seq seqnum.Value) {
	c.send(now, Segment{Seq: seq, Flags: flagRST})
}

// sendACK sends <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>. SND.NXT here is the
// highest sequence number sent (SND.MAX): after a timeout rewinds SND.NXT
// for retransmission, an ACK numbered below what the peer already holds
// would fail its acceptability test and be lost (found by the simulator).
func (c *Conn) sendACK(now time.Time) {
	c.send(now, Segment{Seq: c.sndMax, Flags: flagACK})
}

// sendChallengeACK answers a suspicious RST or SYN (RFC 5961 §3.2, §4.2).
func (c *Conn) sendChallengeACK(now time.Time) {
	if c.cfg.ChallengeACK != nil && !c.cfg.ChallengeACK(now) {
		c.Stats.ChallengeACKsLimited++ // RFC 5961 §7
		return
	}
	c.Stats.ChallengeAcks++
	c.sendACK(now)
}

// output sends whatever is due: new or retransmitted data and FIN as the
// windows allow, then a pure ACK if one is owed and nothing carried it.
func (c *Conn) output(now time.Time) {
	switch c.state {
	case Established, CloseWait, FinWait1, Closing, LastAck:
		c.sendData(now)
	case SynReceived:
		// Data and FIN wait for the handshake.
	case Closed, Listen, SynSent:
		return
	}
	if c.ackPending >= ackEvery {
		c.ackNow = true // RFC 9293 §3.8.6.3: at least every second full segment
	}
	if c.ackNow && c.state != SynReceived {
		c.sendACK(now)
	}
}

// sendData segments the send buffer (RFC 9293 §3.8.6.2.1 sender SWS
// avoidance, §3.7.4 Nagle), bounded by the peer's MSS, the send window and
// what the congestion window leaves beside the data in flight.
func (c *Conn) sendData(now time.Time) {
	if c.sndUna == c.iss {
		return // our SYN is not acknowledged yet
	}
	for {
		if c.finQueued && c.sndNxt.GreaterThan(c.finSeq) {
			return // the FIN has been sent
		}
		limit := c.sndMax
		if c.sndNxt.LessThan(c.sndMax) {
			// Resending after a timeout: skip what the peer has SACKed,
			// and stop at the next SACKed range.
			if end, ok := c.sb.sackedAt(c.sndNxt); ok {
				c.sndNxt = seqnum.Min(end, c.sndMax)
				continue
			}
			if s, _, ok := c.sb.nextSACKed(c.sndNxt); ok {
				limit = s
			}
		}
		base := c.bufSeq()
		buffered := c.sndBuf.Len()
		off := int(base.Size(c.sndNxt))
		avail := buffered - off
		if avail <= 0 {
			if c.finQueued && c.sndNxt == c.finSeq {
				c.sendSegment(now, 0, true)
			}
			return
		}
		mss := c.effMSS()
		room := c.sendRoom()
		n := min(avail, mss, room)
		if c.sndNxt.LessThan(limit) && limit != c.sndMax {
			n = min(n, int(c.sndNxt.Size(limit)))
		}
		if n <= 0 {
			if c.sndWnd == 0 && c.sndUna == c.sndMax && c.tm.persist.IsZero() {
				c.armPersist(now)
			}
			return
		}
		inFlight := c.sndNxt != c.sndUna
		if n < mss && n < avail && inFlight && n < int(c.maxSndWnd/2) {
			return // sender SWS avoidance: wait for a usable window
		}
		fin := c.finQueued && n == avail
		if n < mss && n == avail && !fin && !c.cfg.NoDelay && inFlight {
			return // Nagle: one small segment in flight at a time
		}
		c.sendSegment(now, n, fin)
		if fin {
			return
		}
	}
}

// effMSS is the payload that fits in one segment with the options it
// carries (RFC 9293 §3.7.1: the MSS counts no TCP options).
func (c *Conn) effMSS() int { return max(c.sndMSS-c.optionBytes(), 1) }

// sendRoom is how many more bytes may leave at SND.NXT: the least of the
// send window's room and the congestion window minus the pipe.
func (c *Conn) sendRoom() int {
	rwnd := 0
	if edge := c.sndUna.Add(seqnum.Size(c.sndWnd)); c.sndNxt.LessThan(edge) {
		rwnd = int(c.sndNxt.Size(edge))
	}
	if c.cc == nil {
		return rwnd
	}
	return min(rwnd, max(c.cc.Cwnd()-c.pipe(), 0))
}

// sendSegment sends n bytes at SND.NXT (with FIN if fin) and advances it.
func (c *Conn) sendSegment(now time.Time, n int, fin bool) {
	end := c.sendRange(now, c.sndNxt, n, fin)
	if end.GreaterThan(c.sndNxt) {
		c.sndNxt = end
	}
}

// sendRange sends n bytes of the send buffer starting at seq, with FIN if
// fin, and returns the sequence number after it. SND.NXT is the caller's.
func (c *Conn) sendRange(now time.Time, seq seqnum.Value, n int, fin bool) seqnum.Value {
	off := int(c.bufSeq().Size(seq))
	seg := Segment{Seq: seq, Flags: flagACK}
	if n > 0 {
		seg.Payload = c.sndBuf.Bytes()[off : off+n]
		if off+n == c.sndBuf.Len() {
			seg.Flags |= flagPSH
		}
	}
	if fin {
		seg.Flags |= flagFIN
	}
	end := seq.Add(seg.Len())
	if seq.LessThan(c.sndMax) {
		c.Stats.Retransmits++
		c.rtt.cancel() // Karn: no sample across a retransmission
	} else {
		c.Stats.BytesOut += uint64(n)
	}
	c.send(now, seg)
	c.rackSent(now, seq, end)
	if end.GreaterThan(c.sndMax) {
		c.sndMax = end
		c.rtt.start(now, end)
	}
	c.onDataSent(now)
	return end
}

// rcvLimit is the largest window the window field can express.
func (c *Conn) rcvLimit(syn bool) int {
	if syn {
		return maxWindow // RFC 7323 §2.2: the window in a SYN is never scaled
	}
	return maxWindow << c.opt.rcvShift
}

// advertise returns the window field for an outgoing segment and records
// the right edge it offers. The window never shrinks (RFC 9293 §3.8.6.2.2)
// and opens only in steps of min(RcvBuf/2, MSS) (receiver SWS avoidance).
func (c *Conn) advertise(syn bool) uint16 {
	free := min(c.cfg.RcvBuf-c.rcvBuf.Len(), c.rcvLimit(syn))
	cur := int(c.rcvWindow())
	w := cur
	if free > cur && (syn || free-cur >= min(c.cfg.RcvBuf/2, c.cfg.MSS)) {
		w = free
	}
	shift := c.opt.rcvShift
	if syn {
		shift = 0
	}
	field := w >> shift
	if w == cur && field<<shift < w {
		// Keeping the window: round up, or the right edge would creep left
		// by up to 2^shift-1 bytes on every segment and shrink the window
		// under data the peer may already have sent (RFC 9293 §3.8.6.2.2;
		// Linux aligns the same way). The receive buffer takes that slack.
		field++
	}
	field = min(field, maxWindow)
	c.rcvAdv = c.rcvNxt.Add(seqnum.Size(field << shift))
	return uint16(field)
}

// rcvWindow is RCV.WND: what remains of the last advertised window.
func (c *Conn) rcvWindow() uint32 {
	if c.rcvAdv.LessThanEq(c.rcvNxt) {
		return 0
	}
	return uint32(c.rcvNxt.Size(c.rcvAdv))
}

// windowUpdateDue reports whether the window has opened enough since the
// last advertisement to be worth a segment of its own: at least one MSS and
// at least double what the peer sees now.
func (c *Conn) windowUpdateDue() bool {
	free := min(c.cfg.RcvBuf-c.rcvBuf.Len(), c.rcvLimit(false))
	cur := int(c.rcvWindow())
	return free-cur >= min(c.cfg.RcvBuf/2, c.cfg.MSS) && free >= 2*cur
}

// ackEvery is how many in-order segments may wait, within one input batch,
// before an ACK goes out. RFC 9293 §3.8.6.3 asks for an ACK at least every
// second full segment; like Linux with GRO, which acknowledges each
// aggregated super-packet, the stack treats a batch as one arrival and
// acknowledges at its end (Flush), sending an ACK mid-batch only when this
// many segments are pending, so that a long batch still clocks the sender.
const ackEvery = 8
