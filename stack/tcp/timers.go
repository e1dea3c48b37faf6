package tcp

import (
	"syscall"
	"time"
)

// The timers of a connection are deadlines, each kept by the part that
// owns it (docs/design.md "The hot path"); a zero deadline is disarmed:
//
//	sender:        retransmission (RFC 6298), persist (RFC 9293 §3.8.6.1)
//	receiver:      delayed ACK (RFC 9293 §3.8.6.3)
//	sack recovery: tail loss probe (RFC 8985 §7), reordering window (§6.2)
//	connection:    keepalive (RFC 1122 §4.2.3.6), orphaned FIN-WAIT-2,
//	               TIME-WAIT's 2*MSL (RFC 9293 §3.10.7.4)
//
// The stack keeps one entry per connection keyed by NextDeadline and calls
// Tick when it passes.

// NextDeadline is the earliest armed timer, or the zero time.
func (c *Conn) NextDeadline() time.Time {
	return earliest(c.snd.rtxAt, c.rec.deadline(), c.snd.persistAt, c.rcv.delackAt,
		c.tm.keepalive, c.tm.closeAt).Time()
}

// earliest is the earliest set stamp, or zero.
func earliest(ts ...stamp) stamp {
	var d stamp
	for _, t := range ts {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

// stopTimers disarms every timer.
func (c *Conn) stopTimers() {
	c.snd.stopTimers()
	c.rcv.delackAt = 0
	c.rec.stopTimers()
	c.tm = connTimers{}
}

func due(t stamp, now time.Time) bool { return !t.IsZero() && !stampOf(now).Before(t) }

// Tick runs every timer that is due at now, in a fixed order: the ends of
// TIME-WAIT and FIN-WAIT-2 first, then retransmission, loss recovery's
// timers, persist, delayed ACK and keepalive; then it sends what is due.
func (c *Conn) Tick(now time.Time) {
	if due(c.tm.closeAt, now) {
		c.tm.closeAt = 0
		switch c.state {
		case TimeWait:
			c.setState(now, Closed, "timer 2*MSL")
			return
		case FinWait2:
			c.setState(now, Closed, "timer FIN-WAIT-2")
			return
		}
	}
	if d := c.rec.deadline(); due(d, now) && !d.After(c.snd.rtxAt) {
		// A probe due no later than the RTO goes first: it re-arms the RTO
		// (Linux runs the two on one timer, the probe in place of the RTO).
		c.rec.tick(now)
	}
	if due(c.snd.rtxAt, now) {
		c.snd.rtxAt = 0
		c.onRetransmitTimeout(now)
		if c.state == Closed {
			return
		}
	}
	c.rec.tick(now)
	if due(c.snd.persistAt, now) {
		c.snd.persistAt = 0
		c.onPersist(now)
	}
	if due(c.rcv.delackAt, now) {
		c.rcv.onDelayedAck()
	}
	if due(c.tm.keepalive, now) {
		c.tm.keepalive = 0
		c.onKeepalive(now)
		if c.state == Closed {
			return
		}
	}
	c.output(now)
}

// onSegmentReceived notes activity from the peer: it resets the keepalive
// count and restarts the idle time (RFC 1122 §4.2.3.6).
func (c *Conn) onSegmentReceived(now time.Time) {
	c.keepProbes = 0
	c.lastRcvd = stampOf(now)
	c.armKeepalive(now)
}

func (c *Conn) armKeepalive(now time.Time) {
	if c.keepAlive && c.state.Synchronized() && c.state != TimeWait {
		c.tm.keepalive = stampOf(now.Add(c.cfg.KeepIdle))
	} else {
		c.tm.keepalive = 0
	}
}

// SetKeepAlive turns keepalive on or off with the given parameters (zero
// values keep the current ones).
func (c *Conn) SetKeepAlive(now time.Time, on bool, idle, interval time.Duration, count int) {
	c.keepAlive = on
	if idle > 0 && idle != c.cfg.KeepIdle {
		c.ownConfig().KeepIdle = idle
	}
	if interval > 0 && interval != c.cfg.KeepInterval {
		c.ownConfig().KeepInterval = interval
	}
	if count > 0 && count != c.cfg.KeepCount {
		c.ownConfig().KeepCount = count
	}
	c.keepProbes = 0
	c.armKeepalive(now)
}

// SetNoDelay turns Nagle's algorithm off (true) or on.
func (c *Conn) SetNoDelay(now time.Time, on bool) {
	c.noDelay = on
	if on {
		c.output(now)
	}
}

// onKeepalive sends a probe <SEQ=SND.NXT-1><ACK=RCV.NXT> (RFC 1122
// §4.2.3.6, RFC 9293 §3.8.4), or aborts after KeepCount unanswered probes.
func (c *Conn) onKeepalive(now time.Time) {
	if !c.keepAlive || !c.state.Synchronized() || c.state == TimeWait {
		return
	}
	if c.snd.una != c.snd.max || c.snd.buf.Len() > 0 && c.state != FinWait2 {
		// Data in flight or waiting: the retransmission and persist timers
		// watch the peer; look again after an interval.
		c.tm.keepalive = stampOf(now.Add(c.cfg.KeepInterval))
		return
	}
	// With TCP_USER_TIMEOUT, it decides instead of the probe count: the
	// peer has been silent that long and a probe went unanswered (Linux's
	// tcp_keepalive_timer).
	ut := c.cfg.UserTimeout
	if ut > 0 && c.keepProbes > 0 && !c.lastRcvd.IsZero() && stampOf(now).Sub(c.lastRcvd) >= ut ||
		ut <= 0 && int(c.keepProbes) >= c.cfg.KeepCount {
		c.sendActiveRST(now) // Linux: tcp_send_active_reset, then the error
		c.fail(now, ErrTimedOut, "timer keepalive: no answer to "+itoa(int(c.keepProbes))+" probes")
		return
	}
	c.keepProbes++
	c.stats.keepaliveProbes++
	c.send(now, Segment{Seq: c.snd.nxt.Sub(1), Flags: flagACK})
	c.tm.keepalive = stampOf(now.Add(c.cfg.KeepInterval))
}

// onRetransmitTimeout handles an RTO expiry (RFC 6298 §5.4–5.6).
func (c *Conn) onRetransmitTimeout(now time.Time) {
	c.snd.stats.timeouts++
	c.snd.rtt.cancel()
	switch c.state {
	case SynSent, SynReceived:
		if int(c.snd.synRtx) >= c.cfg.MaxSynRetries || c.userTimedOut(now, c.snd.unaSince) {
			// No RST: the peer did not answer; Linux drops a request that
			// ran out of SYN-ACK retries, and fails a connect, silently.
			c.fail(now, c.timeoutErr(), "timer SYN retries exhausted")
			return
		}
		if c.snd.synRtx == 0 {
			c.snd.unaSince = stampOf(now) // the user timeout counts from here
		}
		c.snd.synRtx++
		c.snd.rtt.backoff(c.cfg)
		c.snd.stats.retransmits++
		c.sendSYN(now)
		return
	}
	if c.snd.una == c.snd.max {
		return
	}
	if c.userTimedOut(now, c.snd.unaSince) {
		c.fail(now, c.timeoutErr(), "timer user timeout")
		return
	}
	if int(c.snd.rtxCount) >= c.cfg.MaxRetries {
		// RFC 9293 §3.8.3 (R2): close the connection. No RST: the path or
		// the peer is gone, and Linux's tcp_write_err sends none.
		c.fail(now, c.timeoutErr(), "timer retransmission limit")
		return
	}
	if c.snd.unaSince.IsZero() {
		// TCP_USER_TIMEOUT counts from the first timeout retransmission
		// since SND.UNA last moved, as Linux's retrans_stamp does.
		c.snd.unaSince = stampOf(now)
	}
	c.snd.rtxCount++
	if c.snd.cc != nil {
		c.snd.cc.OnRTO(now, int(c.snd.una.Size(c.snd.max)))
	}
	// Leave recovery (RFC 6582 §4, RFC 6675 §5.1); with SACK, forget the
	// scoreboard too (RFC 2018 §8), so that everything from SND.UNA is
	// resent.
	c.rec.onRTO()
	c.snd.rtt.backoff(c.cfg)
	// Go back to SND.UNA and resend from there as the window allows.
	c.snd.nxt = c.snd.una
	c.output(now)
	c.armRTX(now)
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

// timeoutErr is the error a connection that timed out reports: the last
// ICMP soft error if there was one, else ETIMEDOUT (Linux's tcp_write_err).
func (c *Conn) timeoutErr() syscall.Errno {
	if c.softErr != 0 {
		return syscall.Errno(c.softErr)
	}
	return ErrTimedOut
}
