package tcp

import (
	"sync"
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

// send stamps the receive side (ACK, window) and the options on seg and
// hands it out. SYN options are the caller's.
func (c *Conn) send(now time.Time, s Segment) {
	// The segment goes out through a pooled copy, so that handing it to
	// the Sender interface allocates nothing (and no connection keeps a
	// scratch segment of its own while idle).
	seg := segPool.Get().(*Segment)
	*seg = s
	syn := seg.Flags&flagSYN != 0
	if !syn {
		c.optionsFor(now, seg)
	}
	if seg.Flags&(flagRST|flagACK) != flagRST {
		seg.Wnd = c.advertise(syn)
	}
	if seg.Flags&flagACK != 0 {
		seg.Ack = c.rcv.nxt
		c.opt.lastAckSent = c.rcv.nxt
		c.rcv.acked()
	}
	if seg.SegSize > 0 {
		c.stats.segsOut += uint64((len(seg.Payload) + seg.SegSize - 1) / seg.SegSize)
	} else {
		c.stats.segsOut++
	}
	c.out.Send(c, seg)
	*seg = Segment{} // no payload kept alive from the pool
	segPool.Put(seg)
}

var segPool = sync.Pool{New: func() any { return new(Segment) }}

// Flush ends an input batch: a lone unacknowledged segment starts the
// delayed-ACK timer (RFC 9293 §3.8.6.3); with delayed ACKs off it is
// acknowledged now, so that one ACK covers the whole batch.
func (c *Conn) Flush(now time.Time) {
	c.rcv.endBatch(now, c.cfg.DelayedAck)
	c.output(now)
}

func (c *Conn) sendSYN(now time.Time) {
	seg := Segment{Seq: c.snd.iss, Flags: flagSYN, Opts: c.synOptions(now, c.state == SynReceived)}
	if c.state == SynReceived {
		seg.Flags |= flagACK
	}
	if c.snd.synRtx == 0 {
		c.snd.rtt.start(now, c.snd.iss.Add(1))
	}
	c.send(now, seg)
	if c.snd.rtxAt.IsZero() {
		c.armRTX(now)
	}
}

// sendRST answers a segment with <SEQ=seq><CTL=RST> (RFC 9293 §3.10.7).
func (c *Conn) sendRST(now time.Time, seq seqnum.Value) {
	c.send(now, Segment{Seq: seq, Flags: flagRST})
}

// sendActiveRST resets the connection from our side (an abort):
// <SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>, with the connection's window and
// timestamp. RFC 9293 §3.10.5 asks only for "a reset segment"
// (<SEQ=SND.NXT><CTL=RST>); Linux's tcp_send_active_reset also carries the
// ACK (SEQ is SND.NXT, the highest sent, its tcp_acceptable_seq), and
// tests and middleboxes expect that form.
func (c *Conn) sendActiveRST(now time.Time) {
	c.send(now, Segment{Seq: c.snd.max, Flags: flagRST | flagACK})
}

// sendACK sends <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>. SND.NXT here is the
// highest sequence number sent (SND.MAX): after a timeout rewinds SND.NXT
// for retransmission, an ACK numbered below what the peer already holds
// would fail its acceptability test and be lost (found by the simulator).
func (c *Conn) sendACK(now time.Time) {
	c.send(now, Segment{Seq: c.snd.max, Flags: flagACK})
}

// sendChallengeACK answers a suspicious RST or SYN (RFC 5961 §3.2, §4.2),
// at most one per oowInterval per connection (Linux's per-socket limit in
// tcp_send_challenge_ack) and within the stack-wide limit of RFC 5961 §7.
func (c *Conn) sendChallengeACK(now time.Time) {
	if c.oowLimited(now) {
		c.stats.challengeACKsLimited++
		return
	}
	if c.cfg.ChallengeACK != nil && !c.cfg.ChallengeACK(now) {
		c.stats.challengeACKsLimited++ // RFC 5961 §7
		return
	}
	c.stats.challengeAcks++
	c.sendACK(now)
}

// oowInterval is how often a connection answers segments it finds invalid
// without data: Linux's tcp_invalid_ratelimit, 500 ms. RFC 9293 asks for
// an ACK to every unacceptable segment; RFC 5961 §7 and §10 ask for limits
// on such ACKs so that two ends out of step cannot ACK-storm.
const oowInterval = 500 * time.Millisecond

// oowLimited reports whether an answer to an invalid segment must be
// skipped: one went out less than oowInterval ago. Otherwise it records
// now as the time of this one (Linux's __tcp_oow_rate_limited).
func (c *Conn) oowLimited(now time.Time) bool {
	if n := stampOf(now); !c.lastOOW.IsZero() && n.Sub(c.lastOOW) < oowInterval && !n.Before(c.lastOOW) {
		return true
	}
	c.lastOOW = stampOf(now)
	return false
}

// dupACK answers an unacceptable segment with an ACK (RFC 9293
// §3.10.7.4). Segments with data are always answered (they cannot be part
// of an ACK loop); others at most once per oowInterval, as Linux does
// (tcp_oow_rate_limited).
func (c *Conn) dupACK(now time.Time, data bool) {
	if !data && c.oowLimited(now) {
		c.stats.oowACKsLimited++
		return
	}
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
	if c.rcv.ackDue() && c.state != SynReceived {
		c.sendACK(now)
	}
}
