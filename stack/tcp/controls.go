package tcp

import (
	"syscall"
	"time"
)

// The socket controls of a connection, each named after the Linux socket
// option it stands for.

// armRTX starts the retransmission timer at one RTO from now, or earlier
// when the user timeout ends sooner (Linux's tcp_clamp_rto_to_user_timeout).
func (c *Conn) armRTX(now time.Time) {
	c.snd.rtxAt = c.clampToUserTimeout(stampOf(now).Add(c.snd.rtt.rto), c.snd.unaSince)
}

// clampToUserTimeout moves a timer deadline up to the end of the user
// timeout counted from since, if that comes first.
func (c *Conn) clampToUserTimeout(at, since stamp) stamp {
	if c.cfg.UserTimeout <= 0 || since.IsZero() {
		return at
	}
	if end := since.Add(c.cfg.UserTimeout); end.Before(at) {
		return end
	}
	return at
}

// userTimedOut reports whether the user timeout (RFC 5482) has passed
// since since.
func (c *Conn) userTimedOut(now time.Time, since stamp) bool {
	return c.cfg.UserTimeout > 0 && !since.IsZero() && stampOf(now).Sub(since) >= c.cfg.UserTimeout
}

// SetUserTimeout is TCP_USER_TIMEOUT (RFC 5482 §3): see Config.UserTimeout.
// Zero turns it off.
func (c *Conn) SetUserTimeout(d time.Duration) {
	if d = max(d, 0); d != c.cfg.UserTimeout {
		c.ownConfig().UserTimeout = d
	}
}

// SetFinWait2Timeout is TCP_LINGER2: how long an orphaned connection (the
// application closed it) waits in FIN-WAIT-2 for the peer's FIN.
func (c *Conn) SetFinWait2Timeout(d time.Duration) {
	if d > 0 && d != c.cfg.FinWait2Timeout {
		c.ownConfig().FinWait2Timeout = d
	}
}

// SetCork is TCP_CORK: while corked, only full-sized segments leave (and
// the FIN); uncorking sends what is held. Unlike Linux there is no 200 ms
// ceiling on holding data: the application uncorks.
func (c *Conn) SetCork(now time.Time, on bool) {
	c.cork = on
	if !on {
		c.output(now)
	}
}

// SetBuffers sets the receive and send buffer sizes (SO_RCVBUF, SO_SNDBUF);
// zero keeps one. A receive buffer set so is fixed: auto-tuning stops
// (rcvtune.go; Linux's SOCK_RCVBUF_LOCK). The receive window grows at once
// if the buffer did, within what the window scale agreed in the handshake
// can express; a smaller buffer does not take back the window offered.
func (c *Conn) SetBuffers(now time.Time, rcv, snd int) {
	if snd > 0 {
		if snd = max(snd, c.ourMSS()); snd != c.cfg.SndBuf {
			c.ownConfig().SndBuf = snd
		}
		c.events |= EvWritable
	}
	if rcv > 0 {
		c.rcv.tune.size, c.rcv.tune.locked = int32(min(max(rcv, c.ourMSS()), maxRcvBuf)), true
		if c.state.Synchronized() && !c.rcv.finRcvd && c.windowUpdateDue() {
			c.rcv.ackNow = true
			c.output(now)
		}
	}
}

// CloseRead shuts down the receiving side (shutdown(SHUT_RD)): reads return
// EOF, and data that arrives after it is acknowledged and dropped (so the
// window never closes on data nobody will read). Sending goes on. RFC 9293
// has no half-close of the receiving side; Linux queues such data unread,
// BSD drops it as we do.
func (c *Conn) CloseRead(now time.Time) {
	c.rcv.discard = true
	c.rcv.buf.Discard(c.rcv.buf.Len())
}

// ReadClosed reports whether CloseRead was called.
func (c *Conn) ReadClosed() bool { return c.rcv.discard }

// TakeError is SO_ERROR: the connection's error if it has one that was not
// taken yet, else the last ICMP soft error, which it clears.
func (c *Conn) TakeError() error {
	if c.errno != 0 && !c.errTaken {
		c.errTaken = true
		return syscall.Errno(c.errno)
	}
	if c.softErr != 0 {
		err := syscall.Errno(c.softErr)
		c.softErr = 0
		return err
	}
	return nil
}

// CAState is the congestion-control state, as Linux's TCP_INFO reports it.
type CAState uint8

// The states of Linux's tcp_ca_state that ustack has.
const (
	CAOpen     CAState = iota // no loss seen
	CADisorder                // duplicate ACKs or SACKs, not yet a loss
	CARecovery                // fast recovery (RFC 5681, RFC 6675)
	CALoss                    // after a retransmission timeout
)

func (s CAState) String() string {
	return [...]string{"open", "disorder", "recovery", "loss"}[s]
}

// caState is the congestion-control state now.
func (c *Conn) caState() CAState {
	switch {
	case c.snd.rtxCount > 0:
		return CALoss
	case c.rec.inRecovery():
		return CARecovery
	case c.rec.disorder():
		return CADisorder
	}
	return CAOpen
}
