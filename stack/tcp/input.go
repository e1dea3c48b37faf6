package tcp

import (
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
	"ustack/stack/tcp/cc"
)

// SegmentArrives processes one segment for this connection (RFC 9293
// §3.10.7), in the order the RFC gives, and sends what it calls for.
func (c *Conn) SegmentArrives(now time.Time, seg *Segment) {
	c.Stats.SegsIn++
	switch c.state {
	case Closed:
		// §3.10.7.1: the stack answers for connections it has no TCB for;
		// a CLOSED TCB is about to be removed and drops what arrives.
		return
	case Listen:
		c.inListen(now, seg)
		return
	case SynSent:
		c.inSynSent(now, seg)
		return
	}
	// §3.10.7.4: SYN-RECEIVED and the synchronized states.
	if c.state == SynReceived && seg.Flags&(flagSYN|flagACK|flagRST) == flagSYN && seg.Seq == c.irs {
		// The peer did not get our SYN-ACK and sent its SYN again.
		c.Stats.Retransmits++
		c.sendSYN(now)
		return
	}
	if c.state == SynReceived && seg.Has(flagSYN|flagACK) && seg.Seq == c.irs {
		// Simultaneous open (RFC 9293 Figure 8, line 6): the peer's SYN,ACK
		// repeats the SYN we hold; what matters is its ACK.
		seg.Flags &^= flagSYN
		seg.Seq = seg.Seq.Add(1)
	}
	if !c.checkSeq(now, seg) {
		return
	}
	if !c.checkRST(now, seg) {
		return
	}
	if !c.checkSYN(now, seg) {
		return
	}
	if !c.checkACK(now, seg) {
		return
	}
	c.onSegmentReceived(now)
	if !c.processText(now, seg) {
		return
	}
	c.checkFIN(now, seg)
	c.output(now)
}

// inListen is RFC 9293 §3.10.7.2. The stack made this TCB for a SYN, but the
// RFC's checks stay here so that a LISTEN TCB behaves as specified whatever
// arrives.
func (c *Conn) inListen(now time.Time, seg *Segment) {
	switch {
	case seg.Has(flagRST):
		return // first: an RST is ignored
	case seg.Has(flagACK):
		// second: an ACK to a listener is bad: <SEQ=SEG.ACK><CTL=RST>
		c.sendRST(now, seg.Ack)
		return
	case !seg.Has(flagSYN):
		return // fourth: other text or control, drop
	}
	// third: SYN.
	c.irs = seg.Seq
	c.rcvNxt = seg.Seq.Add(1)
	c.rcvAdv = c.rcvNxt
	c.takeSynOptions(now, seg)
	c.setSndWnd(seg, false)
	c.sndWl1, c.sndWl2 = seg.Seq, c.iss
	c.sndUna, c.sndNxt, c.sndMax = c.iss, c.iss.Add(1), c.iss.Add(1)
	c.recover = c.iss
	c.setState(now, SynReceived, "rcv "+header.FlagString(seg.Flags))
	c.sendSYN(now)
	if c.cfg.LabTwoWayHandshake {
		// Lab only: trust the SYN alone.
		c.sndUna = c.iss.Add(1)
		c.tm.rtx = time.Time{}
		c.startCC()
		c.setState(now, Established, "lab: two-way handshake")
	}
}

// SetISS sets the initial send sequence number; the stack calls it before a
// passive open's SYN arrives.
func (c *Conn) SetISS(iss seqnum.Value) { c.iss = iss }

// inSynSent is RFC 9293 §3.10.7.3.
func (c *Conn) inSynSent(now time.Time, seg *Segment) {
	ackOK := false
	if seg.Has(flagACK) {
		// first: SEG.ACK =< ISS or SEG.ACK > SND.NXT is unacceptable.
		if seg.Ack.LessThanEq(c.iss) || seg.Ack.GreaterThan(c.sndNxt) {
			if !seg.Has(flagRST) {
				c.sendRST(now, seg.Ack)
			}
			return
		}
		ackOK = c.sndUna.LessThanEq(seg.Ack) && seg.Ack.LessThanEq(c.sndNxt)
	}
	if seg.Has(flagRST) {
		// second: an RST is accepted only with an acceptable ACK (RFC 5961 §3.2
		// keeps this as the only check in SYN-SENT).
		if ackOK {
			c.fail(now, ErrRefused, "rcv "+header.FlagString(seg.Flags))
		}
		return
	}
	if !seg.Has(flagSYN) {
		return // fifth: neither SYN nor RST
	}
	// fourth: SYN.
	c.irs = seg.Seq
	c.rcvNxt = seg.Seq.Add(1)
	c.rcvAdv = c.rcvNxt
	c.takeSynOptions(now, seg)
	if ackOK {
		c.sndUna = seg.Ack
		c.rtt.acked(now, seg.Ack)
	}
	if c.sndUna.GreaterThan(c.iss) {
		// Our SYN is acknowledged: ESTABLISHED, and <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
		c.setSndWnd(seg, false)
		c.sndWl1, c.sndWl2 = seg.Seq, seg.Ack
		c.tm.rtx = time.Time{}
		c.synRtx = 0
		c.startCC()
		c.setState(now, Established, "rcv "+header.FlagString(seg.Flags))
		c.armKeepalive(now)
		c.ackNow = true
		c.output(now)
		return
	}
	// Simultaneous open (RFC 9293 Figure 8): SYN-RECEIVED, send SYN,ACK.
	c.setSndWnd(seg, false)
	c.sndWl1 = seg.Seq
	c.setState(now, SynReceived, "rcv "+header.FlagString(seg.Flags))
	c.sendSYN(now)
}

func (c *Conn) startCC() {
	if c.cc == nil {
		c.cc = cc.New(c.cfg.CC, c.sndMSS)
	}
}

// setSndWnd takes the peer's window, scaled unless it came in a SYN
// (RFC 7323 §2.2).
func (c *Conn) setSndWnd(seg *Segment, scaled bool) {
	c.sndWnd = uint32(seg.Wnd)
	if scaled {
		c.sndWnd <<= c.opt.sndShift
	}
	c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
}

// checkSeq is the first check of §3.10.7.4: the acceptability test of the
// table in RFC 9293 §3.4, then trimming to the window. An unacceptable
// segment gets an ACK unless it is an RST.
func (c *Conn) checkSeq(now time.Time, seg *Segment) bool {
	if !c.paws(now, seg) {
		// RFC 7323 §5.3 R1: an old duplicate: acknowledge and drop.
		c.Stats.PAWSDropped++
		c.sendACK(now)
		return false
	}
	l := seg.Len()
	wnd := c.rcvWindow()
	var ok bool
	switch {
	case wnd == 0:
		// RFC 9293 §3.10.7.4: with a zero window no data is acceptable,
		// but "special allowance should be made to accept valid ACKs, URGs,
		// and RSTs": a segment at RCV.NXT is processed for its control
		// bits, its text trimmed away below.
		ok = seg.Seq == c.rcvNxt
	case l == 0:
		ok = seg.Seq.InWindow(c.rcvNxt, seqnum.Size(wnd))
	default:
		last := seg.Seq.Add(l - 1)
		ok = seg.Seq.InWindow(c.rcvNxt, seqnum.Size(wnd)) || last.InWindow(c.rcvNxt, seqnum.Size(wnd))
	}
	if !ok {
		c.Stats.DroppedUnacceptable++
		if seg.Has(flagRST) {
			return false
		}
		if c.state == TimeWait && seg.Has(flagFIN) && seg.Seq.Add(seqnum.Size(len(seg.Payload))+1) == c.rcvNxt {
			// The peer did not get our last ACK and sent its FIN again:
			// acknowledge it again and restart 2*MSL (§3.10.7.4 eighth).
			c.tm.timeWait = now.Add(2 * c.cfg.MSL)
		}
		c.sendACK(now)
		return false
	}
	c.updateTSRecent(now, seg)
	// Trim what lies before RCV.NXT (already received) and after the window.
	if seg.Seq.LessThan(c.rcvNxt) {
		d := int(seg.Seq.Size(c.rcvNxt))
		if seg.Has(flagSYN) {
			seg.Flags &^= flagSYN
			d--
		}
		d = min(d, len(seg.Payload))
		seg.Payload = seg.Payload[d:]
		seg.Seq = c.rcvNxt
	}
	// The window ends at RCV.NXT+RCV.WND; the segment starts at or after
	// RCV.NXT, so what fits is the window less the segment's offset.
	room := int(wnd) - int(c.rcvNxt.Size(seg.Seq))
	if room < 0 {
		room = 0
	}
	if len(seg.Payload) > room {
		seg.Payload = seg.Payload[:room]
		seg.Flags &^= flagFIN // the FIN lies beyond the window
		c.ackNow = true       // say what was taken, and the window (a zero-window probe's answer)
	}
	return true
}

// checkRST is the second check of §3.10.7.4 with RFC 5961 §3.2: an RST whose
// sequence number is exactly RCV.NXT resets the connection; one merely in
// the window gets a challenge ACK.
func (c *Conn) checkRST(now time.Time, seg *Segment) bool {
	if !seg.Has(flagRST) {
		return true
	}
	if seg.Seq != c.rcvNxt {
		c.sendChallengeACK(now)
		return false
	}
	cause := "rcv " + header.FlagString(seg.Flags)
	switch c.state {
	case SynReceived:
		if c.passive {
			// Back to LISTEN: the old-duplicate-SYN case of RFC 9293
			// Figure 9. The stack removes this TCB; the listener goes on.
			c.setState(now, Listen, cause)
			c.events |= EvClosed
			return false
		}
		c.fail(now, ErrRefused, cause)
	case Established, FinWait1, FinWait2, CloseWait:
		c.fail(now, ErrReset, cause)
	default: // CLOSING, LAST-ACK, TIME-WAIT
		c.setState(now, Closed, cause)
	}
	return false
}

// checkSYN is the fourth check of §3.10.7.4 with RFC 5961 §4.2: a SYN in a
// synchronized state gets a challenge ACK and is dropped.
func (c *Conn) checkSYN(now time.Time, seg *Segment) bool {
	if !seg.Has(flagSYN) {
		return true
	}
	c.sendChallengeACK(now)
	return false
}

// checkACK is the fifth check of §3.10.7.4.
func (c *Conn) checkACK(now time.Time, seg *Segment) bool {
	if !seg.Has(flagACK) {
		return false
	}
	if c.state == SynReceived {
		if !(c.sndUna.LessThan(seg.Ack) && seg.Ack.LessThanEq(c.sndNxt)) {
			c.sendRST(now, seg.Ack) // <SEQ=SEG.ACK><CTL=RST>
			return false
		}
		c.sndUna = seg.Ack
		c.rtt.acked(now, seg.Ack)
		c.tm.rtx = time.Time{}
		c.synRtx = 0
		c.setSndWnd(seg, true)
		c.sndWl1, c.sndWl2 = seg.Seq, seg.Ack
		c.startCC()
		c.setState(now, Established, "rcv "+header.FlagString(seg.Flags))
		c.armKeepalive(now)
		if c.finQueued {
			c.setState(now, FinWait1, "app close")
		}
		return true
	}
	// RFC 5961 §5.2: acceptable if SND.UNA - MAX.SND.WND =< SEG.ACK =< SND.MAX.
	if seg.Ack.GreaterThan(c.sndMax) {
		c.Stats.BadAcks++
		c.sendACK(now)
		return false
	}
	if seg.Ack.LessThan(c.sndUna.Sub(seqnum.Size(c.maxSndWnd))) {
		c.Stats.BadAcks++
		c.sendChallengeACK(now)
		return false
	}
	if c.state == TimeWait {
		return true // only a retransmitted FIN matters: see checkFIN
	}
	newSACK := c.takeSACK(seg)
	if newSACK {
		c.rackSACKed(now)
	}
	if c.sndUna.LessThan(seg.Ack) {
		c.ackAdvanced(now, seg)
		c.rackCheck(now)
	} else if seg.Ack == c.sndUna && len(seg.Payload) == 0 && !seg.Has(flagFIN) && c.sndUna != c.sndMax &&
		(newSACK || uint32(seg.Wnd)<<c.opt.sndShift == c.sndWnd && c.sndWnd != 0) {
		// A duplicate ACK as RFC 5681 §2 defines it, or one that SACKs new
		// data (RFC 6675 §2). A zero window is a persist-probe answer, not
		// a loss signal.
		c.onDupAck(now)
		c.rackCheck(now)
	}
	// Window update (RFC 9293 §3.10.7.4 fifth, SND.WL1/SND.WL2 rule).
	if c.sndWl1.LessThan(seg.Seq) || (c.sndWl1 == seg.Seq && c.sndWl2.LessThanEq(seg.Ack)) {
		old := c.sndWnd
		c.setSndWnd(seg, true)
		c.sndWl1, c.sndWl2 = seg.Seq, seg.Ack
		if old == 0 && c.sndWnd > 0 {
			c.tm.persist = time.Time{}
			c.persistBackoff = 0
		}
	}
	finAcked := c.finAcked()
	switch c.state {
	case FinWait1:
		if finAcked {
			c.setState(now, FinWait2, "rcv "+header.FlagString(seg.Flags))
			if c.rdShut {
				c.tm.finWait2 = now.Add(c.cfg.FinWait2Timeout)
			}
		}
	case Closing:
		if finAcked {
			c.enterTimeWait(now, "rcv "+header.FlagString(seg.Flags))
		}
		return false
	case LastAck:
		if finAcked {
			c.setState(now, Closed, "rcv "+header.FlagString(seg.Flags))
		}
		return false
	}
	return true
}

// ackAdvanced handles SND.UNA < SEG.ACK =< SND.MAX: drop acknowledged data,
// take an RTT sample, restart the retransmission timer.
func (c *Conn) ackAdvanced(now time.Time, seg *Segment) {
	acked := int(c.sndUna.Size(seg.Ack))
	data := acked
	if c.finQueued && seg.Ack.GreaterThan(c.finSeq) {
		data-- // the FIN's sequence number is not data
	}
	data = min(data, c.sndBuf.Len())
	c.sndBuf.Discard(data)
	c.sndUna = seg.Ack
	if c.sndNxt.LessThan(c.sndUna) {
		c.sndNxt = c.sndUna
	}
	c.sb.ackedTo(c.sndUna)
	c.rackAcked(now)
	rtt := c.rtt.acked(now, seg.Ack)
	if rtt == 0 && c.opt.ts && seg.Opts.TS && seg.Opts.TSEcr != 0 {
		// RFC 7323 §4: the echoed timestamp measures the RTT, even across
		// retransmissions, where Karn's rule forbids the timed segment.
		if ms := int32(c.tsNow(now) - seg.Opts.TSEcr); ms >= 0 {
			rtt = max(time.Duration(ms)*time.Millisecond, time.Microsecond)
			c.rtt.sample(rtt)
		}
	}
	c.onAckAdvanced(now)
	if c.inRecover {
		c.ackInRecovery(now)
	} else {
		c.dupAcks = 0
		if c.cc != nil {
			c.cc.OnAck(now, acked, rtt)
		}
	}
	c.events |= EvWritable
}

// processText is the seventh step of §3.10.7.4: in-order data goes to the
// receive buffer, out-of-order data to the reassembly queue.
func (c *Conn) processText(now time.Time, seg *Segment) bool {
	if len(seg.Payload) == 0 {
		if seg.Has(flagFIN) && seg.Seq != c.rcvNxt && c.state.Synchronized() && c.state != TimeWait {
			c.ooo.insert(seg.Seq, nil, true) // a FIN ahead of missing data
			seg.Flags &^= flagFIN
			c.ackNow = true
		}
		return true
	}
	switch c.state {
	case Established, FinWait1, FinWait2:
	default:
		return true // the peer's FIN came before: ignore text
	}
	if c.rdShut {
		// The application closed and will never read this (RFC 2525 §2.17).
		c.Abort(now, "data after close")
		return false
	}
	if seg.Seq != c.rcvNxt {
		c.ackNow = true // RFC 5681 §4.2: a duplicate ACK at once for out-of-order data
		if c.ooo.len() >= c.cfg.MaxOOOSegments {
			c.Stats.OOODropped++ // bounded: hostile input cannot grow it
			seg.Flags &^= flagFIN
			return true
		}
		c.Stats.OutOfOrder++
		c.lastOOO = seg.Seq
		c.ooo.insert(seg.Seq, seg.Payload, seg.Has(flagFIN))
		seg.Flags &^= flagFIN
		c.ackNow = true // RFC 5681 §4.2: a duplicate ACK at once for out-of-order data
		return true
	}
	n := c.rcvBuf.Append(seg.Payload, c.rcvBufLimit())
	c.rcvNxt = c.rcvNxt.Add(seqnum.Size(n))
	c.Stats.BytesIn += uint64(n)
	c.ackPending++
	c.events |= EvReadable
	if c.ooo.len() > 0 {
		c.ackNow = true // filling a hole: ACK at once
		if c.drainOOO(now) {
			seg.Flags |= flagFIN
			seg.Payload = seg.Payload[:n]
			seg.Seq = c.rcvNxt.Sub(seqnum.Size(n))
		}
	}
	return true
}

// rcvBufLimit is the receive buffer's bound: RcvBuf, or more if the window
// we advertised promised more (advertise rounds a kept window up to the
// window-scale unit rather than shrink it). Every byte inside the offered
// window is taken, so the window closes exactly at its edge.
func (c *Conn) rcvBufLimit() int { return max(c.cfg.RcvBuf, c.rcvBuf.Len()+int(c.rcvWindow())) }

// drainOOO moves queued segments that became in-order into the receive
// buffer. It reports whether a queued FIN became in-order.
func (c *Conn) drainOOO(now time.Time) (fin bool) {
	for {
		e, ok := c.ooo.first()
		if !ok || e.seq.GreaterThan(c.rcvNxt) {
			return false
		}
		end := e.seq.Add(seqnum.Size(len(e.data)))
		if end.GreaterThan(c.rcvNxt) {
			part := e.data[e.seq.Size(c.rcvNxt):]
			n := c.rcvBuf.Append(part, c.rcvBufLimit())
			c.rcvNxt = c.rcvNxt.Add(seqnum.Size(n))
			c.Stats.BytesIn += uint64(n)
			if n < len(part) {
				return false // the buffer is full: the rest stays queued
			}
		}
		c.ooo.pop()
		if e.fin && end == c.rcvNxt {
			c.ooo.clear()
			return true
		}
	}
}

// checkFIN is the eighth step of §3.10.7.4. The FIN counts only once every
// byte before it has arrived; it consumes one sequence number.
func (c *Conn) checkFIN(now time.Time, seg *Segment) {
	if !seg.Has(flagFIN) {
		return
	}
	if seg.Seq.Add(seqnum.Size(len(seg.Payload))) != c.rcvNxt {
		return // data before the FIN is missing; it waits in the queue
	}
	cause := "rcv " + header.FlagString(seg.Flags)
	switch c.state {
	case Closing, CloseWait, LastAck, TimeWait:
		return // the FIN was consumed already; see checkSeq for its retransmission
	}
	c.rcvNxt = c.rcvNxt.Add(1)
	c.finRcvd = true
	c.ackNow = true
	c.events |= EvReadable
	switch c.state {
	case SynReceived, Established:
		c.setState(now, CloseWait, cause)
	case FinWait1:
		if c.finAcked() {
			c.enterTimeWait(now, cause)
		} else {
			c.setState(now, Closing, cause)
		}
	case FinWait2:
		c.enterTimeWait(now, cause)
	}
}

// enterTimeWait starts the 2*MSL timer and stops all others.
func (c *Conn) enterTimeWait(now time.Time, cause string) {
	c.tm = timers{timeWait: now.Add(2 * c.cfg.MSL)}
	c.setState(now, TimeWait, cause)
	if c.cfg.LabSkipTimeWait {
		if c.ackNow {
			c.sendACK(now) // the last ACK still goes out
		}
		c.tm = timers{}
		c.setState(now, Closed, "lab: TIME-WAIT skipped")
	}
}
