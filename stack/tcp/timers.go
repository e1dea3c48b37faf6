package tcp

import "time"

// timers are every timer of a connection, as deadlines (docs/design.md "The hot path"). A
// zero deadline is disarmed. The stack keeps one entry per connection keyed
// by NextDeadline and calls Tick when it passes.
type timers struct {
	rtx       time.Time // retransmission of SYN, data or FIN (RFC 6298)
	persist   time.Time // zero-window probe (RFC 9293 §3.8.6.1)
	delack    time.Time // delayed ACK (RFC 9293 §3.8.6.3)
	keepalive time.Time // RFC 1122 §4.2.3.6
	tlp       time.Time // tail loss probe (RFC 8985 §7)
	reo       time.Time // RACK reordering window (RFC 8985 §6.2)
	finWait2  time.Time // orphaned FIN-WAIT-2
	timeWait  time.Time // 2*MSL (RFC 9293 §3.10.7.4)
}

// NextDeadline is the earliest armed timer, or the zero time.
func (c *Conn) NextDeadline() time.Time {
	var d time.Time
	for _, t := range [...]time.Time{c.tm.rtx, c.tm.tlp, c.tm.reo, c.tm.persist, c.tm.delack, c.tm.keepalive, c.tm.finWait2, c.tm.timeWait} {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

func due(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) }

// Tick runs every timer that is due at now.
func (c *Conn) Tick(now time.Time) {
	if due(c.tm.timeWait, now) {
		c.tm.timeWait = time.Time{}
		c.setState(now, Closed, "timer 2*MSL")
		return
	}
	if due(c.tm.finWait2, now) {
		c.tm.finWait2 = time.Time{}
		if c.state == FinWait2 {
			c.setState(now, Closed, "timer FIN-WAIT-2")
			return
		}
	}
	if due(c.tm.rtx, now) {
		c.tm.rtx = time.Time{}
		c.onRetransmitTimeout(now)
		if c.state == Closed {
			return
		}
	}
	if due(c.tm.tlp, now) {
		c.tm.tlp = time.Time{}
		c.onTLP(now)
	}
	if due(c.tm.reo, now) {
		c.tm.reo = time.Time{}
		if c.rackDetect(now) && !c.inRecover {
			c.enterRecovery(now)
		} else if c.inRecover {
			c.recoverySend(now)
		}
	}
	if due(c.tm.persist, now) {
		c.tm.persist = time.Time{}
		c.onPersist(now)
	}
	if due(c.tm.delack, now) {
		c.tm.delack = time.Time{}
		if c.ackPending > 0 {
			c.ackNow = true
		}
	}
	if due(c.tm.keepalive, now) {
		c.tm.keepalive = time.Time{}
		c.onKeepalive(now)
		if c.state == Closed {
			return
		}
	}
	c.output(now)
}

// onDataSent arms the retransmission timer if it is not running
// (RFC 6298 §5.1).
func (c *Conn) onDataSent(now time.Time) {
	if c.tm.rtx.IsZero() {
		c.tm.rtx = now.Add(c.rtt.rto)
	}
	c.tm.persist = time.Time{}
	if c.tm.tlp.IsZero() {
		c.armTLP(now)
	}
}

// onAckAdvanced restarts or stops the retransmission timer (RFC 6298 §5.2,
// §5.3) and notes activity for keepalive.
func (c *Conn) onAckAdvanced(now time.Time) {
	c.rtx = 0
	c.rack.tlpOut = false
	if c.sndUna == c.sndMax {
		c.tm.rtx, c.tm.tlp = time.Time{}, time.Time{}
	} else {
		c.tm.rtx = now.Add(c.rtt.rto)
		c.armTLP(now)
	}
}

// onSegmentReceived notes activity from the peer: it resets the keepalive
// count and restarts the idle time (RFC 1122 §4.2.3.6).
func (c *Conn) onSegmentReceived(now time.Time) {
	c.keepProbes = 0
	c.armKeepalive(now)
}

func (c *Conn) armKeepalive(now time.Time) {
	if c.cfg.KeepAlive && c.state.Synchronized() && c.state != TimeWait {
		c.tm.keepalive = now.Add(c.cfg.KeepIdle)
	} else {
		c.tm.keepalive = time.Time{}
	}
}

// SetKeepAlive turns keepalive on or off with the given parameters (zero
// values keep the current ones).
func (c *Conn) SetKeepAlive(now time.Time, on bool, idle, interval time.Duration, count int) {
	c.cfg.KeepAlive = on
	if idle > 0 {
		c.cfg.KeepIdle = idle
	}
	if interval > 0 {
		c.cfg.KeepInterval = interval
	}
	if count > 0 {
		c.cfg.KeepCount = count
	}
	c.keepProbes = 0
	c.armKeepalive(now)
}

// SetNoDelay turns Nagle's algorithm off (true) or on.
func (c *Conn) SetNoDelay(now time.Time, on bool) {
	c.cfg.NoDelay = on
	if on {
		c.output(now)
	}
}

// onKeepalive sends a probe <SEQ=SND.NXT-1><ACK=RCV.NXT> (RFC 1122
// §4.2.3.6, RFC 9293 §3.8.4), or aborts after KeepCount unanswered probes.
func (c *Conn) onKeepalive(now time.Time) {
	if !c.cfg.KeepAlive || !c.state.Synchronized() || c.state == TimeWait {
		return
	}
	if c.sndUna != c.sndMax || c.sndBuf.Len() > 0 && c.state != FinWait2 {
		// Data in flight or waiting: the retransmission and persist timers
		// watch the peer; look again after an interval.
		c.tm.keepalive = now.Add(c.cfg.KeepInterval)
		return
	}
	if c.keepProbes >= c.cfg.KeepCount {
		c.sendRST(now, c.sndMax)
		c.fail(now, ErrTimedOut, "timer keepalive: no answer to "+itoa(c.keepProbes)+" probes")
		return
	}
	c.keepProbes++
	c.Stats.KeepaliveProbes++
	c.send(now, Segment{Seq: c.sndNxt.Sub(1), Flags: flagACK})
	c.tm.keepalive = now.Add(c.cfg.KeepInterval)
}

// onPersist sends a zero-window probe: one octet of new data beyond the
// window (RFC 9293 §3.8.6.1), and backs the timer off exponentially.
func (c *Conn) onPersist(now time.Time) {
	if c.sndWnd != 0 || !c.state.Synchronized() {
		return
	}
	off := int(c.bufSeq().Size(c.sndNxt))
	if off >= c.sndBuf.Len() {
		return
	}
	c.Stats.ZeroWindowProbes++
	end := c.sndNxt.Add(1)
	if end.GreaterThan(c.sndMax) {
		c.sndMax = end
	}
	c.send(now, Segment{Seq: c.sndNxt, Flags: flagACK, Payload: c.sndBuf.Bytes()[off : off+1]})
	c.persistBackoff++
	c.armPersist(now)
}

func (c *Conn) armPersist(now time.Time) {
	d := c.rtt.rto << min(c.persistBackoff, 16)
	d = min(max(d, c.cfg.MinRTO), c.cfg.MaxPersist)
	c.tm.persist = now.Add(d)
}

// onRetransmitTimeout handles an RTO expiry (RFC 6298 §5.4–5.6).
func (c *Conn) onRetransmitTimeout(now time.Time) {
	c.Stats.Timeouts++
	c.rtt.cancel()
	switch c.state {
	case SynSent, SynReceived:
		if c.synRtx >= c.cfg.MaxSynRetries {
			if c.state == SynReceived {
				c.sendRST(now, c.sndMax)
			}
			c.fail(now, ErrTimedOut, "timer SYN retries exhausted")
			return
		}
		c.synRtx++
		c.rtt.backoff()
		c.Stats.Retransmits++
		c.sendSYN(now)
		return
	}
	if c.sndUna == c.sndMax {
		return
	}
	if c.rtx >= c.cfg.MaxRetries {
		c.sendRST(now, c.sndMax)
		c.fail(now, ErrTimedOut, "timer retransmission limit")
		return
	}
	c.rtx++
	if c.cc != nil {
		c.cc.OnRTO(now, int(c.sndUna.Size(c.sndMax)))
	}
	// RFC 6582 §4 / RFC 6675 §5.1: leave recovery; a later loss in this
	// window does not reduce again. SACKed data is not resent.
	c.inRecover = false
	c.dupAcks = 0
	c.recover = c.sndMax
	c.highRxt = c.sndUna
	// RFC 2018 §8: after a timeout, SACK information is not trusted (the
	// receiver may have reneged): resend everything from SND.UNA.
	c.sb.reset()
	for i := range c.rack.live() {
		rec := &c.rack.live()[i]
		rec.lost, rec.sacked = false, false
	}
	c.rack.lostBytes, c.rack.tlpOut = 0, false
	c.tm.tlp, c.tm.reo = time.Time{}, time.Time{}
	c.rtt.backoff()
	// Go back to SND.UNA and resend from there as the window allows.
	c.sndNxt = c.sndUna
	c.output(now)
	c.tm.rtx = now.Add(c.rtt.rto)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
