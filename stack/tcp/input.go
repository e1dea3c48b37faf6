package tcp

import (
	"syscall"
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// SegmentArrives processes one segment for this connection (RFC 9293
// §3.10.7), in the order the RFC gives, and sends what it calls for.
func (c *Conn) SegmentArrives(now time.Time, seg *Segment) {
	c.stats.segsIn++
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
	case TimeWait:
		c.inTimeWait(now, seg)
		return
	}
	// §3.10.7.4: SYN-RECEIVED and the synchronized states.
	if c.state == SynReceived && seg.Flags&(flagSYN|flagACK|flagRST) == flagSYN && seg.Seq == c.rcv.irs {
		// The peer did not get our SYN-ACK and sent its SYN again.
		c.snd.stats.retransmits++
		c.sendSYN(now)
		return
	}
	if c.state == SynReceived && seg.Has(flagSYN|flagACK) && seg.Seq == c.rcv.irs {
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
	c.rcv.start(seg.Seq)
	c.takeSynOptions(now, seg)
	c.snd.setWnd(seg.Wnd, 0)
	c.snd.wl1, c.snd.wl2 = seg.Seq, c.snd.iss
	c.snd.start(c.snd.iss)
	c.rec.start(c.snd.iss)
	c.setState(now, SynReceived, "rcv "+header.FlagString(seg.Flags))
	c.sendSYN(now)
}

// inTimeWait is §3.10.7.4 for TIME-WAIT, where "the only thing that can
// arrive ... is a retransmission of the remote FIN": acknowledge it and
// restart the 2*MSL timeout. Linux (tcp_timewait_state_process) is broader,
// and we follow it: a bare ACK or an RST exactly at RCV.NXT restarts the
// timer or ends the TIME-WAIT (RFC 1337's hazard, which Linux accepts by
// default); any other segment carrying an ACK (the retransmitted FIN among
// them) or failing PAWS restarts the timer and is acknowledged, at most
// once per oowInterval. A new SYN is the stack's to take (ReopenFromTimeWait).
func (c *Conn) inTimeWait(now time.Time, seg *Segment) {
	pawsOK := c.paws(now, seg)
	if pawsOK && seg.Seq == c.rcv.nxt && (seg.Len() == 0 || seg.Has(flagRST)) {
		if seg.Has(flagRST) {
			c.setState(now, Closed, "rcv "+header.FlagString(seg.Flags))
			return
		}
		c.tm.closeAt = stampOf(now.Add(2 * c.cfg.MSL))
		return
	}
	if seg.Has(flagRST) {
		return
	}
	if !pawsOK || seg.Has(flagACK) {
		c.tm.closeAt = stampOf(now.Add(2 * c.cfg.MSL))
	}
	c.dupACK(now, false) // rate-limited like Linux's time-wait ACKs
}

// SetISS sets the initial send sequence number; the stack calls it before a
// passive open's SYN arrives.
func (c *Conn) SetISS(iss seqnum.Value) { c.snd.iss = iss }

// inSynSent is RFC 9293 §3.10.7.3.
func (c *Conn) inSynSent(now time.Time, seg *Segment) {
	ackOK := false
	if seg.Has(flagACK) {
		// first: SEG.ACK =< ISS or SEG.ACK > SND.NXT is unacceptable.
		if seg.Ack.LessThanEq(c.snd.iss) || seg.Ack.GreaterThan(c.snd.nxt) {
			if !seg.Has(flagRST) {
				c.sendRST(now, seg.Ack)
			}
			return
		}
		ackOK = c.snd.una.LessThanEq(seg.Ack) && seg.Ack.LessThanEq(c.snd.nxt)
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
	c.rcv.start(seg.Seq)
	c.takeSynOptions(now, seg)
	if ackOK {
		c.snd.una = seg.Ack
		c.snd.rtt.acked(now, seg.Ack, c.cfg)
	}
	if c.snd.una.GreaterThan(c.snd.iss) {
		// Our SYN is acknowledged: ESTABLISHED, and <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
		c.snd.setWnd(seg.Wnd, 0)
		c.snd.wl1, c.snd.wl2 = seg.Seq, seg.Ack
		c.snd.rtxAt = 0
		c.snd.synRtx = 0
		c.snd.startCC(c.cfg.CC, c.opt.sack)
		c.setState(now, Established, "rcv "+header.FlagString(seg.Flags))
		c.armKeepalive(now)
		c.rcv.ackNow = true
		c.output(now)
		return
	}
	// Simultaneous open (RFC 9293 Figure 8): SYN-RECEIVED, send SYN,ACK.
	c.snd.setWnd(seg.Wnd, 0)
	c.snd.wl1 = seg.Seq
	c.setState(now, SynReceived, "rcv "+header.FlagString(seg.Flags))
	c.sendSYN(now)
}

// checkSeq is the first check of §3.10.7.4: the acceptability test of the
// table in RFC 9293 §3.4, then trimming to the window. An unacceptable
// segment gets an ACK unless it is an RST.
func (c *Conn) checkSeq(now time.Time, seg *Segment) bool {
	if !c.paws(now, seg) {
		// RFC 7323 §5.3 R1: an old duplicate: acknowledge and drop (the
		// ACK rate-limited as Linux does, see dupACK).
		c.stats.pawsDropped++
		c.dsackOld(seg)
		c.dupACK(now, len(seg.Payload) > 0)
		return false
	}
	wnd := c.rcv.window()
	if !c.acceptable(seg) {
		c.stats.droppedUnacceptable++
		switch {
		case seg.Has(flagRST):
			if c.resetAfterFIN(seg) {
				return true // checkRST takes it
			}
			return false
		case seg.Has(flagSYN):
			// Linux answers a SYN out of the window with a challenge
			// ACK (RFC 5961 §4.2), as it does one in the window.
			c.sendChallengeACK(now)
			return false
		}
		c.dsackOld(seg)
		c.dupACK(now, len(seg.Payload) > 0)
		return false
	}
	if l := seg.Len(); l > 0 && !seg.Seq.Add(l).GreaterThan(c.rcv.nxt) {
		// Acceptable by Linux's test but wholly old: a retransmission of
		// what we have. Acknowledge at once (Linux's tcp_data_queue).
		c.rcv.ackNow = true
	}
	c.updateTSRecent(now, seg)
	// Trim what lies before RCV.NXT (already received) and after the window.
	if seg.Seq.LessThan(c.rcv.nxt) {
		c.dsackOld(seg)
		d := int(seg.Seq.Size(c.rcv.nxt))
		if seg.Has(flagSYN) {
			seg.Flags &^= flagSYN
			d--
		}
		d = min(d, len(seg.Payload))
		seg.Payload = seg.Payload[d:]
		seg.Seq = c.rcv.nxt
	}
	// The window ends at RCV.NXT+RCV.WND; the segment starts at or after
	// RCV.NXT, so what fits is the window less the segment's offset.
	room := int(wnd) - int(c.rcv.nxt.Size(seg.Seq))
	if room < 0 {
		room = 0
	}
	if len(seg.Payload) > room {
		seg.Payload = seg.Payload[:room]
		seg.Flags &^= flagFIN // the FIN lies beyond the window
		c.rcv.ackNow = true   // say what was taken, and the window (a zero-window probe's answer)
	}
	return true
}

// dsackOld reports the part of seg's text below RCV.NXT, data we hold
// already, as a D-SACK (RFC 2883 §4.1), as Linux's tcp_send_dupack and
// tcp_data_queue do for a retransmission, whole or partial.
func (c *Conn) dsackOld(seg *Segment) {
	if !c.opt.sack || len(seg.Payload) == 0 || !seg.Seq.LessThan(c.rcv.nxt) {
		return
	}
	start := seg.Seq
	if seg.Has(flagSYN) {
		start = start.Add(1)
	}
	end := start.Add(seqnum.Size(len(seg.Payload)))
	if c.rcv.nxt.LessThan(end) {
		end = c.rcv.nxt
	}
	c.rcv.noteDSACK(start, end)
}

// acceptable is the sequence test of §3.10.7.4 first, in Linux's form
// (tcp_sequence): the segment must end at or after RCV.NXT as of our last
// ACK (Linux's rcv_wup) and start at or before the right edge of the window
// we offered, that edge included. RFC 9293 §3.4's table is strict at the
// right edge (a zero-length segment at RCV.NXT+RCV.WND fails it and is
// answered with an ACK); RFC 9293 §3.10.7.4 allows "special allowance"
// for ACKs and, like every deployed stack, Linux takes a pure ACK or a FIN
// at the edge silently. With a zero window a segment at RCV.NXT passes,
// its text then trimmed away (the RFC's allowance for ACKs and RSTs).
func (c *Conn) acceptable(seg *Segment) bool {
	wup := c.opt.lastAckSent
	if wup.GreaterThan(c.rcv.nxt) {
		wup = c.rcv.nxt
	}
	edge := c.rcv.nxt.Add(seqnum.Size(c.rcv.window()))
	return !seg.Seq.Add(seg.Len()).LessThan(wup) && !seg.Seq.GreaterThan(edge)
}

// resetAfterFIN is Linux's exception (tcp_reset_check) to RFC 5961: after
// the peer's FIN, an RST numbered like the FIN (RCV.NXT-1) resets the
// connection in CLOSE-WAIT, CLOSING and LAST-ACK, since some stacks send
// one right behind their FIN.
func (c *Conn) resetAfterFIN(seg *Segment) bool {
	if seg.Seq != c.rcv.nxt.Sub(1) {
		return false
	}
	switch c.state {
	case CloseWait, Closing, LastAck:
		seg.Seq = c.rcv.nxt
		return true
	}
	return false
}

// checkRST is the second check of §3.10.7.4 with RFC 5961 §3.2: an RST whose
// sequence number is exactly RCV.NXT resets the connection; one merely in
// the window gets a challenge ACK.
func (c *Conn) checkRST(now time.Time, seg *Segment) bool {
	if !seg.Has(flagRST) {
		return true
	}
	if seg.Seq != c.rcv.nxt {
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
	case CloseWait:
		// The peer's FIN came first: Linux's tcp_reset reports EPIPE here
		// (the application may still write; there is no one to read it).
		c.fail(now, syscall.EPIPE, cause)
	case Established, FinWait1, FinWait2:
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
		return c.ackInSynReceived(now, seg)
	}
	// RFC 5961 §5.2: acceptable if SND.UNA - MAX.SND.WND =< SEG.ACK =< SND.MAX.
	if seg.Ack.GreaterThan(c.snd.max) {
		// An ACK of data never sent: send an ACK and drop the segment
		// (RFC 9293 §3.10.7.4 fifth, RFC 5961 §5.2), at most once per
		// oowInterval without data, as Linux 6.x does (checked against the
		// kernel by the differential harness).
		c.stats.badAcks++
		c.dupACK(now, len(seg.Payload) > 0)
		return false
	}
	if seg.Ack.LessThan(c.snd.una.Sub(seqnum.Size(c.snd.maxWnd))) {
		c.stats.badAcks++
		c.sendChallengeACK(now)
		return false
	}
	if c.state == TimeWait {
		return true // only a retransmitted FIN matters: see checkFIN
	}
	// An acceptable ACK: the peer is there. As Linux's tcp_ack does, forget
	// unanswered zero-window probes and any ICMP soft error.
	c.snd.probesOut = 0
	c.softErr = 0
	newSACK := c.rec.takeSACK(now, seg.Ack, seg.Opts.SACK, seg.Opts.NumSACK)
	if c.snd.una.LessThan(seg.Ack) {
		c.ackAdvanced(now, seg)
		c.rec.check(now)
	} else if seg.Ack == c.snd.una && len(seg.Payload) == 0 && !seg.Has(flagFIN) && c.snd.una != c.snd.max &&
		(newSACK || uint32(seg.Wnd)<<c.opt.sndShift == c.snd.wnd && c.snd.wnd != 0) {
		// A duplicate ACK as RFC 5681 §2 defines it, or one that SACKs new
		// data (RFC 6675 §2). A zero window is a persist-probe answer, not
		// a loss signal.
		c.rec.onDupAck(now)
		c.rec.check(now)
	}
	c.windowUpdate(seg)
	return c.ackOfFIN(now, seg)
}

// ackInSynReceived is the fifth check in SYN-RECEIVED: an ACK of our SYN
// completes the handshake; any other ACK gets <SEQ=SEG.ACK><CTL=RST>.
func (c *Conn) ackInSynReceived(now time.Time, seg *Segment) bool {
	if !(c.snd.una.LessThan(seg.Ack) && seg.Ack.LessThanEq(c.snd.nxt)) {
		c.sendRST(now, seg.Ack)
		return false
	}
	c.snd.una = seg.Ack
	c.snd.rtt.acked(now, seg.Ack, c.cfg)
	c.snd.rtxAt = 0
	c.snd.synRtx = 0
	c.snd.setWnd(seg.Wnd, c.opt.sndShift)
	c.snd.wl1, c.snd.wl2 = seg.Seq, seg.Ack
	c.snd.startCC(c.cfg.CC, c.opt.sack)
	c.setState(now, Established, "rcv "+header.FlagString(seg.Flags))
	c.armKeepalive(now)
	if c.snd.finQueued {
		c.setState(now, FinWait1, "app close")
	}
	return true
}

// windowUpdate takes the segment's window if it is newer than the one held
// (RFC 9293 §3.10.7.4 fifth, the SND.WL1/SND.WL2 rule); a window that opens
// from zero stops the persist timer.
func (c *Conn) windowUpdate(seg *Segment) {
	if !(c.snd.wl1.LessThan(seg.Seq) || (c.snd.wl1 == seg.Seq && c.snd.wl2.LessThanEq(seg.Ack))) {
		return
	}
	old := c.snd.wnd
	c.snd.setWnd(seg.Wnd, c.opt.sndShift)
	c.snd.wl1, c.snd.wl2 = seg.Seq, seg.Ack
	if old == 0 && c.snd.wnd > 0 {
		c.snd.persistAt = 0
		c.snd.persistBackoff = 0
	}
}

// ackOfFIN moves the closing states on once our FIN is acknowledged
// (RFC 9293 §3.10.7.4 fifth: FIN-WAIT-1, CLOSING, LAST-ACK). It reports
// whether processing of the segment goes on.
func (c *Conn) ackOfFIN(now time.Time, seg *Segment) bool {
	finAcked := c.snd.finAcked()
	switch c.state {
	case FinWait1:
		if finAcked {
			c.setState(now, FinWait2, "rcv "+header.FlagString(seg.Flags))
			if c.rdShut {
				c.tm.closeAt = stampOf(now.Add(c.cfg.FinWait2Timeout))
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

// checkFIN is the eighth step of §3.10.7.4. The FIN counts only once every
// byte before it has arrived; it consumes one sequence number.
func (c *Conn) checkFIN(now time.Time, seg *Segment) {
	if !seg.Has(flagFIN) {
		return
	}
	if seg.Seq.Add(seqnum.Size(len(seg.Payload))) != c.rcv.nxt {
		return // data before the FIN is missing; it waits in the queue
	}
	cause := "rcv " + header.FlagString(seg.Flags)
	switch c.state {
	case Closing, CloseWait, LastAck, TimeWait:
		return // the FIN was consumed already; see checkSeq for its retransmission
	}
	c.rcv.nxt = c.rcv.nxt.Add(1)
	c.rcv.finRcvd = true
	c.rcv.ackNow = true
	c.events |= EvReadable
	switch c.state {
	case SynReceived, Established:
		c.setState(now, CloseWait, cause)
	case FinWait1:
		if c.snd.finAcked() {
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
	c.stopTimers()
	c.tm.closeAt = stampOf(now.Add(2 * c.cfg.MSL))
	c.setState(now, TimeWait, cause)
}
