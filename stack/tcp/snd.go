package tcp

import (
	"time"

	"ustack/stack/seqnum"
	"ustack/stack/tcp/cc"
)

// sender is the send side of a connection: the send sequence space
// (RFC 9293 §3.3.1), the send buffer, the retransmission timer with its
// RTT estimator (RFC 6298), the persist timer (RFC 9293 §3.8.6.1) and the
// congestion controller. Loss recovery (recovery.go) decides what to
// resend; the sender decides how much may leave.
type sender struct {
	iss    seqnum.Value
	una    seqnum.Value // SND.UNA
	nxt    seqnum.Value // SND.NXT
	max    seqnum.Value // highest sequence number sent + 1
	wnd    uint32       // SND.WND: the peer's window (scaled)
	maxWnd uint32       // the largest window the peer has offered
	wl1    seqnum.Value // SND.WL1
	wl2    seqnum.Value // SND.WL2
	mss    int32        // largest payload we send: min(peer MSS, our MSS)
	finSeq seqnum.Value // the sequence number the FIN occupies (valid when finQueued)

	buf buffer // unacknowledged and unsent data, starting at bufSeq()

	cc   cc.Controller
	rate *rateState // with a model-based cc only (rate.go): idle connections of other controllers do not pay for it
	rtt  rttState

	rtxAt       stamp // retransmission of SYN, data or FIN (RFC 6298)
	persistAt   stamp // zero-window probe (RFC 9293 §3.8.6.1)
	probesSince stamp // when the first zero-window probe without an answer went out
	unaSince    stamp // the first timeout retransmission since SND.UNA last moved (Linux's retrans_stamp)

	smallEnd       seqnum.Value // end of the last segment shorter than the MSS sent (Nagle)
	rtxCount       int32        // consecutive RTO expiries for data or FIN
	synRtx         int32        // SYN / SYN-ACK retransmissions
	persistBackoff int32
	probesOut      int32 // zero-window probes since the last acceptable ACK
	ccObs          bool  // cc is a cc.AppLimitedObserver: it watches how the window is used
	finQueued      bool  // the application closed: a FIN follows the last byte of buf

	stats struct {
		bytesOut, retransmits      uint64
		timeouts, zeroWindowProbes uint32
	}
}

func (s *sender) addStats(st *Stats) {
	st.BytesOut, st.Retransmits = s.stats.bytesOut, s.stats.retransmits
	st.Timeouts, st.ZeroWindowProbes = uint64(s.stats.timeouts), uint64(s.stats.zeroWindowProbes)
}

// stopTimers disarms the sender's timers.
func (s *sender) stopTimers() { s.rtxAt, s.persistAt = 0, 0 }

// bufSeq is the sequence number of the first byte in buf: data starts one
// after the ISS, which the SYN occupies.
func (s *sender) bufSeq() seqnum.Value {
	if s.una == s.iss {
		return s.iss.Add(1)
	}
	return s.una
}

// start sets the send sequence space for an ISS: SND.UNA = ISS, and the
// SYN takes one sequence number.
func (s *sender) start(iss seqnum.Value) {
	s.iss = iss
	s.una, s.nxt, s.max = iss, iss.Add(1), iss.Add(1)
}

// queueFIN fixes the FIN's place: right after the last byte written.
func (s *sender) queueFIN() {
	s.finQueued = true
	s.finSeq = s.bufSeq().Add(seqnum.Size(s.buf.Len()))
}

// finAcked reports whether the peer has acknowledged our FIN.
func (s *sender) finAcked() bool { return s.finQueued && s.una.GreaterThan(s.finSeq) }

// flight is the sequence space sent and not acknowledged.
func (s *sender) flight() int { return int(s.una.Size(s.max)) }

// setWnd takes the peer's window field, scaled by shift (RFC 7323 §2.2:
// never for a SYN, whose caller passes 0).
func (s *sender) setWnd(wnd uint16, shift uint8) {
	s.wnd = uint32(wnd) << shift
	s.maxWnd = max(s.maxWnd, s.wnd)
}

// startCC makes the congestion controller once the handshake is done. A
// model-based one needs the per-segment records of SACK-based recovery
// for its rate samples: without SACK the connection runs CUBIC.
func (s *sender) startCC(name string, sack bool) {
	if s.cc != nil {
		return
	}
	s.cc = cc.New(name, int(s.mss))
	if _, ok := s.cc.(cc.ModelBased); ok {
		if !sack {
			s.cc = cc.New("cubic", int(s.mss))
		} else {
			s.rate = new(rateState)
		}
	}
	_, s.ccObs = s.cc.(cc.AppLimitedObserver)
}

// sendData segments the send buffer (RFC 9293 §3.8.6.2.1 sender SWS
// avoidance, §3.7.4 Nagle), bounded by the peer's MSS, the send window and
// what the congestion window leaves beside the data in flight.
func (c *Conn) sendData(now time.Time) {
	if c.snd.una == c.snd.iss {
		return // our SYN is not acknowledged yet
	}
	for {
		if c.snd.finQueued && c.snd.nxt.GreaterThan(c.snd.finSeq) {
			return // the FIN has been sent
		}
		limit := c.snd.max
		if c.snd.nxt.LessThan(c.snd.max) {
			// Resending after a timeout: skip what the peer has SACKed,
			// and stop at the next SACKed range.
			if end, ok := c.rec.sackedAt(c.snd.nxt); ok {
				c.snd.nxt = seqnum.Min(end, c.snd.max)
				continue
			}
			if s, ok := c.rec.nextSACKed(c.snd.nxt); ok {
				limit = s
			}
		}
		base := c.snd.bufSeq()
		buffered := c.snd.buf.Len()
		off := int(base.Size(c.snd.nxt))
		avail := buffered - off
		if avail <= 0 {
			if c.snd.rate != nil && c.sendRoom() > 0 {
				c.snd.rate.markAppLimited(c.rec.pipe())
			}
			if c.snd.finQueued && c.snd.nxt == c.snd.finSeq {
				c.sendSegment(now, 0, true, false)
			}
			return
		}
		mss := c.effMSS()
		room := c.sendRoom()
		unit := mss
		if c.cfg.TSOMax >= 2*mss && c.snd.nxt == c.snd.max {
			unit = c.cfg.TSOMax / mss * mss // new data: one TSO unit
		}
		n := min(avail, unit, room)
		if c.snd.nxt.LessThan(limit) && limit != c.snd.max {
			n = min(n, int(c.snd.nxt.Size(limit)))
		}
		if n > mss && n < avail {
			n = n / mss * mss // no short segment inside a unit
		}
		if n <= 0 {
			if c.snd.wnd == 0 && c.snd.una == c.snd.max && c.snd.persistAt.IsZero() {
				c.armPersist(now)
			}
			return
		}
		inFlight := c.snd.nxt != c.snd.una
		if n < mss && n < avail && inFlight && n < int(c.snd.maxWnd/2) {
			return // sender SWS avoidance: wait for a usable window
		}
		fin := c.snd.finQueued && n == avail
		if n < mss && n == avail && !fin && (!c.noDelay && c.smallInFlight() || c.cork) {
			return // Nagle (Minshall's): one small segment in flight at a time; or corked
		}
		// A segment the peer's window cuts short is pushed, as Linux marks
		// it (checked against the kernel by the differential harness).
		c.sendSegment(now, n, fin, n < mss && n < avail && n == c.sendWindowRoom())
		if fin {
			return
		}
	}
}

// smallInFlight is Nagle's test in the form Linux uses (Minshall's
// variant, tcp_minshall_check): a small segment waits only while an earlier
// small segment is unacknowledged, not while any data is. RFC 9293 §3.7.4
// and RFC 1122 §4.2.3.4 describe the stricter rule ("no unacknowledged
// data"); Minshall's keeps its purpose (one tinygram in flight) without
// holding the tail of a bulk write for an ACK.
func (c *Conn) smallInFlight() bool {
	if c.snd.nxt.LessThan(c.snd.max) {
		return false // a retransmission: Nagle holds only new data
	}
	return c.snd.smallEnd.GreaterThan(c.snd.una) && c.snd.smallEnd.LessThanEq(c.snd.max)
}

// effMSS is the payload that fits in one segment with the options it
// carries (RFC 9293 §3.7.1: the MSS counts no TCP options).
func (c *Conn) effMSS() int { return max(int(c.snd.mss)-c.optionBytes(), 1) }

// sendRoom is how many more bytes may leave at SND.NXT: the least of the
// send window's room and the congestion window minus the pipe (in
// recovery, what Proportional Rate Reduction allows: prr.go).
func (c *Conn) sendRoom() int {
	rwnd := c.sendWindowRoom()
	if c.snd.cc == nil {
		return rwnd
	}
	return min(rwnd, c.rec.room(max(c.snd.cc.Cwnd()-c.rec.pipe(), 0)))
}

// sendWindowRoom is how much of the peer's window is left at SND.NXT.
func (c *Conn) sendWindowRoom() int {
	if edge := c.snd.una.Add(seqnum.Size(c.snd.wnd)); c.snd.nxt.LessThan(edge) {
		return int(c.snd.nxt.Size(edge))
	}
	return 0
}

// sendSegment sends n bytes at SND.NXT (with FIN if fin) and advances it.
func (c *Conn) sendSegment(now time.Time, n int, fin, push bool) {
	end := c.sendRange(now, c.snd.nxt, n, fin, push)
	if end.GreaterThan(c.snd.nxt) {
		c.snd.nxt = end
	}
}

// sendRange sends n bytes of the send buffer starting at seq, with FIN if
// fin, and returns the sequence number after it. SND.NXT is the caller's.
func (c *Conn) sendRange(now time.Time, seq seqnum.Value, n int, fin, push bool) seqnum.Value {
	if mss := c.effMSS(); n > mss && c.cfg.TSOMax == 0 {
		// More than one segment fits, without a link that cuts units
		// (TSO): what every caller asks for is at most one segment as it
		// was sized then; options added since (SACK blocks) take room.
		// Send what fits now (Linux's tcp_retransmit_skb fragments to the
		// current MSS); the caller goes on from the returned end.
		n, fin = mss, false
	}
	off := int(c.snd.bufSeq().Size(seq))
	seg := Segment{Seq: seq, Flags: flagACK}
	if n > 0 {
		seg.Payload, seg.arr = c.snd.buf.Bytes()[off:off+n], c.snd.buf.h
		if push || off+n == c.snd.buf.Len() {
			seg.Flags |= flagPSH
		}
		if mss := c.effMSS(); c.cfg.TSOMax > 0 && n > mss {
			seg.SegSize = mss // the link cuts it (TSO)
		}
	}
	if fin {
		seg.Flags |= flagFIN
	}
	end := seq.Add(seg.Len())
	before := c.snd.flight()
	if seq.LessThan(c.snd.max) {
		c.snd.stats.retransmits++
		c.snd.rtt.cancel() // Karn: no sample across a retransmission
	} else {
		c.snd.stats.bytesOut += uint64(n)
		if n > 0 {
			c.rcv.dataSent(now, max(c.cfg.DelayedAck, 0))
		}
	}
	if n > 0 && n < c.effMSS() {
		c.snd.smallEnd = end
	}
	c.send(now, seg)
	c.rec.onSent(now, seq, end)
	if end.GreaterThan(c.snd.max) {
		c.snd.max = end
		c.snd.rtt.start(now, end)
	}
	if c.snd.ccObs {
		c.snd.cc.(cc.AppLimitedObserver).OnSend(now, before, c.snd.flight())
	}
	c.onDataSent(now)
	return end
}

// onDataSent arms the retransmission timer if it is not running
// (RFC 6298 §5.1).
func (c *Conn) onDataSent(now time.Time) {
	if c.snd.rtxAt.IsZero() {
		c.armRTX(now)
	}
	c.snd.persistAt = 0
	c.rec.onDataSent(now)
}

// onAckAdvanced restarts or stops the retransmission timer (RFC 6298 §5.2,
// §5.3) and notes activity for keepalive.
func (c *Conn) onAckAdvanced(now time.Time) {
	c.snd.rtxCount = 0
	if c.snd.una == c.snd.max {
		c.snd.rtxAt = 0
	} else {
		c.armRTX(now)
	}
	c.rec.onAckAdvanced(now)
}

// onPersist sends a zero-window probe: one octet of new data beyond the
// window (RFC 9293 §3.8.6.1), and backs the timer off exponentially.
func (c *Conn) onPersist(now time.Time) {
	if c.snd.wnd != 0 || !c.state.Synchronized() {
		return
	}
	off := int(c.snd.bufSeq().Size(c.snd.nxt))
	if off >= c.snd.buf.Len() {
		return
	}
	if int(c.snd.probesOut) >= c.cfg.MaxRetries {
		// Unanswered probes: the peer is gone (Linux's tcp_probe_timer
		// gives up after tcp_retries2 probes, silently).
		c.fail(now, c.timeoutErr(), "timer persist: no answer to "+itoa(int(c.snd.probesOut))+" probes")
		return
	}
	if c.userTimedOut(now, c.snd.probesSince) {
		c.fail(now, c.timeoutErr(), "timer persist: user timeout")
		return
	}
	if c.snd.probesOut == 0 {
		c.snd.probesSince = stampOf(now)
	}
	c.snd.stats.zeroWindowProbes++
	c.snd.probesOut++
	// RFC 9293 §3.8.6.1 lets the probe carry one octet of new data or none.
	// Like Linux (tcp_xmit_probe_skb) it carries none and is numbered
	// SND.UNA-1, an old sequence number that the peer must answer with an
	// ACK showing its window, and that consumes nothing.
	c.send(now, Segment{Seq: c.snd.una.Sub(1), Flags: flagACK})
	c.snd.persistBackoff++
	c.armPersist(now)
}

func (c *Conn) armPersist(now time.Time) {
	d := c.snd.rtt.rto << min(c.snd.persistBackoff, 16)
	d = min(max(d, c.cfg.MinRTO), c.cfg.MaxPersist)
	c.snd.persistAt = c.clampToUserTimeout(stampOf(now).Add(d), c.snd.probesSince)
}

// ackAdvanced handles SND.UNA < SEG.ACK =< SND.MAX: drop acknowledged data,
// take an RTT sample, restart the retransmission timer.
func (c *Conn) ackAdvanced(now time.Time, seg *Segment) {
	acked := int(c.snd.una.Size(seg.Ack))
	data := acked
	if c.snd.finQueued && seg.Ack.GreaterThan(c.snd.finSeq) {
		data-- // the FIN's sequence number is not data
	}
	data = min(data, c.snd.buf.Len())
	c.snd.buf.Discard(data)
	c.snd.una = seg.Ack
	c.snd.unaSince = 0
	if c.snd.nxt.LessThan(c.snd.una) {
		c.snd.nxt = c.snd.una
	}
	var ecr uint32
	if c.opt.ts && seg.Opts.TS {
		ecr = seg.Opts.TSEcr
	}
	c.rec.acked(now, ecr)
	rtt := c.snd.rtt.acked(now, seg.Ack, c.cfg)
	if rtt == 0 {
		rtt = c.rec.rttSample()
		if rtt > 0 {
			// The send time of the newest segment this ACK delivered,
			// never retransmitted (Karn), to the microsecond: Linux's
			// sample from the skb's timestamp (tcp_clean_rtx_queue).
			c.snd.rtt.sample(rtt, c.cfg)
		}
	}
	if rtt == 0 && c.opt.ts && seg.Opts.TS && seg.Opts.TSEcr != 0 {
		// RFC 7323 §4: the echoed timestamp measures the RTT, even across
		// retransmissions, where Karn's rule forbids the timed segment.
		// Its clock ticks in milliseconds: a difference of zero means
		// under one tick and counts as one, as Linux's tcp_rtt_tsopt_us
		// counts it (a sub-millisecond path must not read as 1 µs).
		if ms := int32(c.tsNow(now) - seg.Opts.TSEcr); ms >= 0 {
			rtt = time.Duration(max(ms, 1)) * time.Millisecond
			c.snd.rtt.sample(rtt, c.cfg)
		}
	}
	c.onAckAdvanced(now)
	if !c.rec.ackAdvanced(now) && c.snd.cc != nil {
		c.snd.cc.OnAck(now, acked, rtt)
	}
	// A writer waiting for room is woken once the free space is at least
	// half of what is still queued (a third of the buffer when it was
	// full), as Linux's sk_stream_write_space wakes it only when
	// sk_stream_wspace >= sk_stream_min_wspace: waking it on every ACK
	// cost a thread wake-up per ACK and sent the freed room in small
	// pieces, a segment at a time. RFC 9293 §3.10.2 leaves when SEND
	// returns to the user's choice.
	if free := c.SendSpace(); free > 0 && free >= c.snd.buf.Len()/2 {
		c.events |= EvWritable
	}
}
