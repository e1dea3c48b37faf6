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

// send stamps the receive side (ACK, window) on seg and hands it out.
func (c *Conn) send(now time.Time, seg *Segment) {
	if seg.Flags&flagRST == 0 {
		seg.Wnd = c.advertise(seg.Flags&flagSYN != 0)
	}
	if seg.Flags&flagACK != 0 {
		seg.Ack = c.rcvNxt
		c.ackNow, c.ackPending = false, 0
		c.tm.delack = time.Time{}
	}
	if seg.Opts.WS == 0 && seg.Flags&flagSYN == 0 {
		seg.Opts.WS = -1
	}
	c.Stats.SegsOut++
	c.out.Send(c, seg)
}

// Flush sends an ACK for in-order data received since the last one. The
// stack calls it once per input batch, so one ACK covers a burst.
func (c *Conn) Flush(now time.Time) {
	if c.ackPending > 0 {
		c.ackNow = true
	}
	c.output(now)
}

func (c *Conn) sendSYN(now time.Time) {
	seg := Segment{Seq: c.iss, Flags: flagSYN, Opts: header.TCPOptions{MSS: uint16(c.cfg.MSS), WS: -1}}
	if c.state == SynReceived {
		seg.Flags |= flagACK
	}
	if c.synRtx == 0 {
		c.rtt.start(now, c.iss.Add(1))
	}
	c.send(now, &seg)
	if c.tm.rtx.IsZero() {
		c.tm.rtx = now.Add(c.rtt.rto)
	}
}

func (c *Conn) sendRST(now time.Time, seq seqnum.Value) {
	c.send(now, &Segment{Seq: seq, Flags: flagRST, Opts: header.TCPOptions{WS: -1}})
}

// sendACK sends <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
func (c *Conn) sendACK(now time.Time) {
	c.send(now, &Segment{Seq: c.sndNxt, Flags: flagACK, Opts: header.TCPOptions{WS: -1}})
}

// sendChallengeACK answers a suspicious RST or SYN (RFC 5961 §3.2, §4.2).
func (c *Conn) sendChallengeACK(now time.Time) {
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
	if c.ackPending >= 2 {
		c.ackNow = true // RFC 9293 §3.8.6.3: at least every second full segment
	}
	if c.ackNow && c.state != SynReceived {
		c.sendACK(now)
	}
}

// sendData segments the send buffer (RFC 9293 §3.8.6.2.1 sender SWS
// avoidance, §3.7.4 Nagle), bounded by the peer's MSS, the send window and
// the congestion window.
func (c *Conn) sendData(now time.Time) {
	if c.sndUna == c.iss {
		return // our SYN is not acknowledged yet
	}
	base := c.bufSeq()
	buffered := c.sndBuf.Len()
	mss := c.sndMSS
	for {
		if c.finQueued && c.sndNxt.GreaterThan(c.finSeq) {
			return // the FIN has been sent
		}
		off := int(base.Size(c.sndNxt))
		avail := buffered - off
		if avail == 0 {
			if c.finQueued {
				c.sendSegment(now, off, 0, true)
			}
			return
		}
		wnd := c.sndWnd
		if c.cc != nil {
			wnd = min(wnd, uint32(c.cc.Cwnd()))
		}
		edge := c.sndUna.Add(seqnum.Size(wnd))
		room := 0
		if c.sndNxt.LessThan(edge) {
			room = int(c.sndNxt.Size(edge))
		}
		n := min(avail, mss, room)
		if n == 0 {
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
		c.sendSegment(now, off, n, fin)
		if fin {
			return
		}
	}
}

// sendSegment sends n bytes from offset off of the send buffer at SND.NXT,
// with FIN if fin.
func (c *Conn) sendSegment(now time.Time, off, n int, fin bool) {
	seg := Segment{Seq: c.sndNxt, Flags: flagACK, Opts: header.TCPOptions{WS: -1}}
	if n > 0 {
		seg.Payload = c.sndBuf.Bytes()[off : off+n]
		if off+n == c.sndBuf.Len() {
			seg.Flags |= flagPSH
		}
	}
	if fin {
		seg.Flags |= flagFIN
	}
	end := c.sndNxt.Add(seg.Len())
	if c.sndNxt.LessThan(c.sndMax) {
		c.Stats.Retransmits++
		c.rtt.cancel()
	} else {
		c.Stats.BytesOut += uint64(n)
	}
	c.send(now, &seg)
	c.sndNxt = end
	if end.GreaterThan(c.sndMax) {
		c.sndMax = end
		c.rtt.start(now, end)
	}
	c.onDataSent(now)
}

// advertise returns the window to put in an outgoing segment and records
// its right edge. The window never shrinks (RFC 9293 §3.8.6.2.2) and opens
// only in steps of min(RcvBuf/2, MSS) (receiver SWS avoidance).
func (c *Conn) advertise(syn bool) uint16 {
	free := min(c.cfg.RcvBuf-c.rcvBuf.Len(), maxWindow)
	cur := int(c.rcvWindow())
	w := cur
	if free > cur && (syn || free-cur >= min(c.cfg.RcvBuf/2, c.cfg.MSS)) {
		w = free
	}
	c.rcvAdv = c.rcvNxt.Add(seqnum.Size(w))
	return uint16(w)
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
	free := min(c.cfg.RcvBuf-c.rcvBuf.Len(), maxWindow)
	cur := int(c.rcvWindow())
	return free-cur >= min(c.cfg.RcvBuf/2, c.cfg.MSS) && free >= 2*cur
}
