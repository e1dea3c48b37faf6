package tcp

import (
	"math/bits"
	"time"

	"ustack/stack/seqnum"
)

// Receive-buffer auto-tuning, as Linux's dynamic right-sizing
// (tcp_rcv_space_adjust, "DRS"). A connection starts with a receive buffer
// of Config.RcvBufInit (Linux's tcp_rmem[1]: a window of about 64 KiB) and,
// once per round trip, measures what the application took out of it; when
// that exceeds the best round so far, the buffer grows to twice that plus
// a cushion, more while the rate is still rising (slow start), up to
// Config.RcvBuf (tcp_rmem[2]). So an idle or slow connection is offered,
// and may buffer, little, and a fast one is never held back by its window.
// SO_RCVBUF (SetBuffers) fixes the size and ends the tuning (Linux's
// SOCK_RCVBUF_LOCK). The buffer never shrinks by itself, and the window
// offered never moves left (RFC 9293 §3.8.6.2.2, RFC 7323 §2.4); the window
// scale is chosen at SYN time from the cap (options.go), so that the grown
// buffer can be offered whole.
type rcvTune struct {
	// The round being measured: when it started, and where the
	// application's reading stood then; the most taken in one round yet
	// (Linux's rcvq_space).
	at    stamp
	seq   seqnum.Value
	space int32

	// The receiver's round-trip estimate (Linux's rcv_rtt_est), from the
	// timestamps the peer echoes and from how long a window takes to
	// arrive; zero until the first sample. It does not start from the
	// handshake's RTT, which a loaded path exceeds: too small an estimate
	// would size the buffer for less than a round trip's data.
	rtt     time.Duration
	winAt   stamp        // when the window's timing began (zero: not timing)
	winSeq  seqnum.Value // the window's right edge then
	lastEcr uint32       // the TSecr last sampled

	size   int32 // the receive buffer's size now: its bound and the window's
	locked bool  // SO_RCVBUF set: no tuning
}

// initialRcvSpace is how many segments the first round must beat before
// the buffer grows: Linux's TCP_INIT_CWND (tcp_init_buffer_space).
const initialRcvSpace = 10

// rcvTuneStart begins the measurements when the connection is established
// (Linux's tcp_init_buffer_space): the first round starts now.
func (c *Conn) rcvTuneStart(now time.Time) {
	t := &c.rcv.tune
	t.space = min(t.size, int32(initialRcvSpace*c.ourMSS()))
	t.seq, t.at = c.rcv.read(), stampOf(now)
}

// read is the sequence number up to which the application has read.
func (r *receiver) read() seqnum.Value { return r.nxt.Sub(seqnum.Size(r.buf.Len())) }

// rcvRTTUpdate takes one sample of the receiver's RTT: a smaller one at
// once, a larger one with a gain of 1/8, or, from a window's timing (which
// overestimates when the sender did not fill the window), not at all
// (Linux's tcp_rcv_rtt_update).
func (t *rcvTune) rcvRTTUpdate(sample time.Duration, fromWindow bool) {
	sample = max(sample, time.Microsecond)
	switch {
	case t.rtt == 0 || sample < t.rtt:
		t.rtt = sample
	case !fromWindow:
		t.rtt += (sample - t.rtt) / 8
	}
}

// rcvRTTMeasure samples the receiver's RTT as in-order data arrives: the
// time since we sent the timestamp a full-sized segment echoes (Linux's
// tcp_rcv_rtt_measure_ts; our clock ticks in milliseconds, so a round
// trip under one gives no sample here), and the time a whole window took
// to arrive (tcp_rcv_rtt_measure).
func (c *Conn) rcvRTTMeasure(now time.Time, seg *Segment) {
	t := &c.rcv.tune
	// A full-sized segment: the peer's, less its timestamp option (Linux
	// compares with rcv_mss, the largest it has seen). A smaller one may
	// have waited for the application, and its echo be older than a
	// round trip.
	full := int(c.snd.mss) - 12
	if c.opt.ts && seg.Opts.TS && seg.Opts.TSEcr != t.lastEcr && len(seg.Payload) >= full {
		t.lastEcr = seg.Opts.TSEcr
		if d := int32(c.tsNow(now) - seg.Opts.TSEcr); d > 0 {
			t.rcvRTTUpdate(time.Duration(d)*time.Millisecond, false)
		}
	}
	if !t.winAt.IsZero() {
		if c.rcv.nxt.LessThan(t.winSeq) {
			return
		}
		t.rcvRTTUpdate(stampOf(now).Sub(t.winAt), true)
	}
	t.winSeq, t.winAt = c.rcv.nxt.Add(seqnum.Size(c.rcv.window())), stampOf(now)
}

// rcvSpaceAdjust runs after the application read: once a round trip has
// passed since the round began, what it read per round trip is measured,
// and if that beats the best round, the buffer grows (Linux's
// tcp_rcv_space_adjust): to twice the bytes of the round (room for a round
// lost and resent) plus 16 segments, plus twice that again for each
// multiple by which the round beat the best one (the sender's rate may
// double per round in slow start, and what we offer now serves the next
// round). Linux counts what was read since the round began however long
// ago; this counts it per round trip (bytes × RTT / elapsed), so that a
// reader that pauses, then takes a full buffer at once, is not taken for a
// fast one.
func (c *Conn) rcvSpaceAdjust(now time.Time) {
	t := &c.rcv.tune
	if t.rtt == 0 || t.at.IsZero() {
		return
	}
	elapsed := stampOf(now).Sub(t.at)
	if elapsed < t.rtt {
		return
	}
	read := c.rcv.read()
	// bytes × rtt / elapsed in 128 bits (rtt ≤ elapsed: the quotient fits).
	hi, lo := bits.Mul64(uint64(t.seq.Size(read)), uint64(t.rtt))
	q, _ := bits.Div64(hi, lo, uint64(elapsed))
	copied := int(min(q, maxRcvBuf))
	t.seq, t.at = read, stampOf(now)
	if copied <= int(t.space) {
		return
	}
	if !t.locked {
		win := int64(2*copied + 16*c.ourMSS())
		win += 2 * win * int64(copied-int(t.space)) / int64(max(t.space, 1))
		if size := int32(min(win, int64(c.cfg.RcvBuf), maxRcvBuf)); size > t.size {
			t.size = size
		}
	}
	t.space = int32(copied)
}

// RcvBuf is the receive buffer's size now: auto-tuned, or as SO_RCVBUF
// set it.
func (c *Conn) RcvBuf() int { return int(c.rcv.tune.size) }

// maxRcvBuf bounds the receive buffer: the largest window RFC 7323 §2.3
// can express is 2^30 bytes.
const maxRcvBuf = 1 << 30
