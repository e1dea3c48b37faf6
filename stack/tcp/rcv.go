package tcp

import (
	"math/bits"
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// receiver is the receive side of a connection: the receive sequence space
// (RFC 9293 §3.3.1), the receive buffer and the reassembly queue, the
// window it offers (with receiver SWS avoidance) and when it acknowledges
// (delayed ACK, RFC 9293 §3.8.6.3).
type receiver struct {
	irs seqnum.Value
	nxt seqnum.Value // RCV.NXT
	adv seqnum.Value // right edge of the window last advertised
	// recent holds a sequence number inside each of the out-of-order
	// blocks that changed last, the newest first (noteSACK).
	recent [header.MaxSACKBlocks]seqnum.Value
	dsack  header.SACKBlock // the duplicate a D-SACK block reports (RFC 2883), if dsackOn

	ackPending int32 // in-order segments received and not yet acknowledged
	buf        buffer
	ooo        oooQueue
	delackAt   stamp // delayed ACK (RFC 9293 §3.8.6.3), or a compressed SACK's
	lastData   stamp // when in-order data last arrived

	tune rcvTune // the buffer's size and its auto-tuning (rcvtune.go)

	stats struct {
		bytesIn                                           uint64
		outOfOrder, oooDropped, acksCompressed, dsackSent uint32
	}

	// SACK compression (oooACK): the RCV.NXT the immediate duplicate ACKs
	// were counted for, how many went, and how many ACKs are held back.
	compNxt    seqnum.Value
	dupSent    uint8
	compressed uint8

	nRecent uint8
	fresh   uint8 // bit i: recent[i]'s block changed since the last ACK went out
	dsackOn bool  // a D-SACK block is to be reported
	finRcvd bool  // the peer's FIN was processed: EOF after buf
	discard bool  // CloseRead: in-order data is acknowledged and dropped
	ackNow  bool  // an ACK must go out at the next output
	// Quick-ACK mode, as Linux has it: the first ACKs of a connection (and
	// after an idle gap) go out at once, unless the connection is
	// interactive (pingpong: we answer data within the delayed-ACK time).
	quick    uint8
	pingpong bool
}

func (r *receiver) addStats(st *Stats) {
	st.BytesIn, st.OutOfOrder, st.OOODropped = r.stats.bytesIn, uint64(r.stats.outOfOrder), uint64(r.stats.oooDropped)
	st.ACKsCompressed, st.DSACKsSent = uint64(r.stats.acksCompressed), uint64(r.stats.dsackSent)
}

// start sets the receive sequence space from the peer's SYN.
func (r *receiver) start(irs seqnum.Value) {
	r.irs = irs
	r.nxt = irs.Add(1)
	r.adv = r.nxt
}

// window is RCV.WND: what remains of the last advertised window.
func (r *receiver) window() uint32 {
	if r.adv.LessThanEq(r.nxt) {
		return 0
	}
	return uint32(r.nxt.Size(r.adv))
}

// acked notes that an ACK of RCV.NXT went out: nothing is owed any more.
func (r *receiver) acked() {
	r.ackNow, r.ackPending = false, 0
	r.fresh = 0
	r.delackAt = 0
	if r.compressed > 0 {
		// The ACK going out carries what the held ones would have.
		r.stats.acksCompressed += uint32(r.compressed) - 1
		r.compressed = 0
	}
	if r.quick > 0 {
		r.quick--
	}
}

// maxQuickACKs is Linux's TCP_MAX_QUICKACKS.
const maxQuickACKs = 16

// dataArrived notes in-order data at now: the first data of a connection,
// or data after a gap longer than rto, starts quick-ACK mode for as many
// ACKs as half the window holds segments, between 2 and maxQuickACKs
// (Linux's tcp_event_data_recv and tcp_incr_quickack). RFC 9293 §3.8.6.3
// lets a receiver delay ACKs; Linux does not delay the first ones, so that
// a sender in slow start is not held back.
func (r *receiver) dataArrived(now time.Time, first bool, rto time.Duration, mss int) {
	if first || stampOf(now).Sub(r.lastData) > rto {
		q := min(max(int(r.window())/(2*mss), 2), maxQuickACKs)
		r.quick = max(r.quick, uint8(q))
	}
	r.lastData = stampOf(now)
}

// dataSent notes that we sent data at now: an answer within the delayed-ACK
// time makes the connection interactive (Linux's pingpong mode), where ACKs
// wait to ride on the answer.
func (r *receiver) dataSent(now time.Time, ato time.Duration) {
	if !r.lastData.IsZero() && stampOf(now).Sub(r.lastData) < ato {
		r.pingpong = true
	}
}

// endBatch applies the delayed-ACK policy at the end of an input batch: a
// lone unacknowledged segment starts the delayed-ACK timer (RFC 9293
// §3.8.6.3); with delayed ACKs off (delay < 0), or two segments owed, the
// ACK goes out now, so that one ACK covers the whole batch.
func (r *receiver) endBatch(now time.Time, delay time.Duration) {
	if r.compressed > 0 && !r.delackAt.After(stampOf(now.Add(compSACKSlack))) {
		// The held SACK is due within the timer's slack: it goes with
		// the batch rather than after another wake-up.
		r.ackNow = true
	}
	if r.ackPending == 0 {
		return
	}
	if delay < 0 || r.ackPending >= 2 || r.quick > 0 && !r.pingpong {
		r.ackNow = true
	} else if r.delackAt.IsZero() {
		r.delackAt = stampOf(now.Add(delay))
	}
}

// onDelayedAck runs when the delayed-ACK timer expires (or the SACK
// compression's, which shares it).
func (r *receiver) onDelayedAck() {
	r.delackAt = 0
	if r.ackPending > 0 {
		r.ackNow = true
		r.pingpong = false // the answer did not come: leave pingpong (Linux)
	}
	if r.compressed > 0 {
		r.ackNow = true
	}
}

// SACK compression, as Linux does it (tcp_comp_sack_*, since 4.18). RFC
// 5681 §4.2 says a receiver SHOULD send an immediate duplicate ACK for
// each out-of-order segment; RFC 6675 §2 and RFC 8985 let a SACK sender
// count SACKed bytes rather than ACKs, so after the duplicate ACKs fast
// retransmit needs, one ACK carrying the newest SACK blocks says as much
// as many. Linux sends the first three duplicate ACKs for each RCV.NXT at
// once, then holds the ACK for 5% of the RTT, at most 1 ms (with 100 µs
// of timer slack) or until 44 are held. On a lossy path this halves the
// ACKs a sender must process, and keeps the ACK clock from lagging behind
// the data when every ACK is one write to the link.
const (
	compSACKDupAcks = 3                      // TCP_FASTRETRANS_THRESH
	compSACKMax     = 44                     // net.ipv4.tcp_comp_sack_nr
	compSACKDelay   = time.Millisecond       // net.ipv4.tcp_comp_sack_delay_ns
	compSACKSlack   = 100 * time.Microsecond // net.ipv4.tcp_comp_sack_slack_ns
)

// oooACK asks for the ACK an out-of-order segment is owed, on a
// connection with SACK (without it the sender counts duplicate ACKs, and
// each goes at once): at once in
// quick-ACK mode, for the first compSACKDupAcks of each RCV.NXT, or once
// compSACKMax are held; otherwise held until min(compSACKDelay, srtt/20)
// from now (srtt 0: unknown, the full delay).
func (r *receiver) oooACK(now time.Time, srtt time.Duration) {
	if r.quick > 0 && !r.pingpong || r.compressed >= compSACKMax {
		r.ackNow = true
		return
	}
	if r.compNxt != r.nxt {
		r.compNxt, r.dupSent = r.nxt, 0
	}
	if r.dupSent < compSACKDupAcks {
		r.dupSent++
		r.ackNow = true
		return
	}
	r.compressed++
	delay := compSACKDelay
	if srtt > 0 {
		delay = min(delay, srtt/20)
	}
	if at := stampOf(now.Add(delay)); r.delackAt.IsZero() || at.Before(r.delackAt) {
		r.delackAt = at
	}
}

// ackDue reports whether an ACK must go out now: one was asked for, or
// ackEvery segments are pending.
func (r *receiver) ackDue() bool {
	if r.ackPending >= ackEvery {
		r.ackNow = true // RFC 9293 §3.8.6.3: at least every second full segment
	}
	return r.ackNow
}

// The receiver's side of RFC 2018: SACK blocks for every hole, the block
// holding the most recent arrival first, then the blocks that changed most
// recently (§4), then the highest; and RFC 2883's D-SACK before them all.

// noteSACK records an out-of-order arrival at v (already queued): its block
// goes first in the recent list, ahead of the blocks that changed before.
// Linux keeps its selective_acks in this order (tcp_sack_new_ofo_skb),
// segment by segment: an ACK that answers several arrivals at once (a
// batch, a super-packet, a compressed SACK) still names every block they
// touched, so the sender's RACK never takes data we hold for lost.
func (r *receiver) noteSACK(v seqnum.Value) {
	b, ok := r.ooo.blockAt(v)
	if !ok {
		return
	}
	var out [header.MaxSACKBlocks]seqnum.Value
	var starts [header.MaxSACKBlocks]uint32
	out[0], starts[0] = v, b.Start
	n, fresh := 1, uint8(1)
next:
	for j, w := range r.recent[:r.nRecent] {
		if n == len(out) {
			break
		}
		wb, ok := r.ooo.blockAt(w)
		if !ok {
			continue // delivered in order since
		}
		for _, st := range starts[:n] {
			if st == wb.Start {
				continue next // merged into a block already listed
			}
		}
		out[n], starts[n] = w, wb.Start
		fresh |= (r.fresh >> j & 1) << n
		n++
	}
	r.recent, r.nRecent, r.fresh = out, uint8(n), fresh
}

// sackWouldDrop reports whether an arrival of [seq, end), out of order,
// would leave a block that changed since the last ACK out of every ACK:
// it touches none of the changed blocks, and they already fill the slots
// an ACK has for them (slots: 3 with timestamps, one fewer with a D-SACK
// pending). The held ACK must go first. Linux sends its compressed ACK
// before a new block pushes the oldest of its four out of the list
// (tcp_sack_new_ofo_skb, tcp_sack_compress_send_ack); the stack holds
// ACKs for a whole input batch as well, and an ACK carries three blocks,
// not four, so it goes by the blocks an ACK carries. RFC 2018 §4 wants
// every block held reported: a sender's RACK (RFC 8985 §6.2) takes a
// segment never SACKed, below one that was, for lost, and sends it again
// (the bench's upload at 1% loss: half of the kernel sender's
// retransmissions were of data we held, answered with D-SACKs).
func (r *receiver) sackWouldDrop(seq, end seqnum.Value, slots int) bool {
	if bits.OnesCount8(r.fresh) < slots {
		return false // room for one more: no block lookups (the common case)
	}
	n := 0
	for j, w := range r.recent[:r.nRecent] {
		if r.fresh>>j&1 == 0 {
			continue
		}
		wb, ok := r.ooo.blockAt(w)
		if !ok {
			continue
		}
		if seq.LessThanEq(seqnum.Value(wb.End)) && seqnum.Value(wb.Start).LessThanEq(end) {
			return false // it extends or joins a changed block
		}
		n++
	}
	return n >= slots
}

// noteDSACK reports [start, end), data that arrived again, in the next ACK
// (RFC 2883 §4: a D-SACK block first, then the ordinary SACK blocks). Linux
// sends D-SACKs by default (net.ipv4.tcp_dsack = 1): a sender learns from
// them that a retransmission was spurious and widens its reordering window
// (RFC 8985 §6.2). The newest duplicate wins, as in Linux's tcp_dsack_set.
func (r *receiver) noteDSACK(start, end seqnum.Value) {
	if !start.LessThan(end) {
		return
	}
	r.dsack, r.dsackOn = header.SACKBlock{Start: uint32(start), End: uint32(end)}, true
	r.stats.dsackSent++
}

// sackPending says whether an ACK now carries a SACK option.
func (r *receiver) sackPending() bool { return r.ooo.len() > 0 || r.dsackOn }

// fillSACK writes up to max blocks: the D-SACK block if one is pending,
// then the out-of-order queue's blocks. The queue may hold many more blocks
// than an ACK can carry (one per hole); each is found where it is needed,
// so that the newest arrival's block is reported however many holes lie
// below it.
func (r *receiver) fillSACK(o *header.TCPOptions, max int) {
	max = min(max, header.MaxSACKBlocks)
	n := 0
	if max > 0 && r.dsackOn {
		o.SACK[0] = r.dsack
		n = 1
		r.dsackOn = false // sent once, as Linux does
	}
	first := n
	pick := func(b header.SACKBlock, ok bool) {
		if !ok || n >= max || b.Start == b.End {
			return
		}
		for _, p := range o.SACK[first:n] {
			if p.Start == b.Start {
				return
			}
		}
		o.SACK[n] = b
		n++
	}
	if r.ooo.len() > 0 {
		for _, v := range r.recent[:r.nRecent] {
			pick(r.ooo.blockAt(v))
		}
		// Then the highest blocks, from the top down.
		for j := r.ooo.nblocks() - 1; j >= 0 && n < max; j-- {
			pick(r.ooo.block(j), true)
		}
	}
	o.NumSACK = n
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
// and opens only in steps of min(buffer/2, MSS) (receiver SWS avoidance).
func (c *Conn) advertise(syn bool) uint16 {
	size := int(c.rcv.tune.size)
	free := min(size-c.rcv.buf.Len(), c.rcvLimit(syn))
	cur := int(c.rcv.window())
	w := cur
	if free > cur && (syn || free-cur >= min(size/2, c.ourMSS())) {
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
	c.rcv.adv = c.rcv.nxt.Add(seqnum.Size(field << shift))
	return uint16(field)
}

// windowUpdateDue reports whether the window has opened enough since the
// last advertisement to be worth a segment of its own: at least one MSS and
// at least double what the peer sees now.
func (c *Conn) windowUpdateDue() bool {
	size := int(c.rcv.tune.size)
	free := min(size-c.rcv.buf.Len(), c.rcvLimit(false))
	cur := int(c.rcv.window())
	return free-cur >= min(size/2, c.ourMSS()) && free >= 2*cur
}

// ackEvery is how many in-order segments may wait, within one input batch,
// before an ACK goes out. RFC 9293 §3.8.6.3 asks for an ACK at least every
// second full segment; like Linux with GRO, which acknowledges each
// aggregated super-packet, the stack treats a batch as one arrival and
// acknowledges at its end (Flush), sending an ACK mid-batch only when this
// many segments are pending, so that a long batch still clocks the sender.
const ackEvery = 8

// processText is the seventh step of §3.10.7.4: in-order data goes to the
// receive buffer, out-of-order data to the reassembly queue.
func (c *Conn) processText(now time.Time, seg *Segment) bool {
	if len(seg.Payload) == 0 {
		if seg.Has(flagFIN) && seg.Seq != c.rcv.nxt && c.state.Synchronized() && c.state != TimeWait {
			if seg.Seq.GreaterThanEq(c.rcv.nxt.Add(seqnum.Size(c.rcv.window()))) {
				// At the right edge: nothing of it fits the window.
				// Linux drops it and acknowledges (tcp_data_queue).
				seg.Flags &^= flagFIN
				c.rcv.ackNow = true
				return true
			}
			c.rcv.ooo.insert(seg.Seq, nil, true) // a FIN ahead of missing data
			seg.Flags &^= flagFIN
			c.rcv.ackNow = true
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
	if seg.Seq != c.rcv.nxt {
		if c.rcv.ooo.len() >= c.oooLimit() {
			c.rcv.ackNow = true      // RFC 5681 §4.2: a duplicate ACK at once
			c.rcv.stats.oooDropped++ // bounded: hostile input cannot grow it
			seg.Flags &^= flagFIN
			return true
		}
		c.rcv.stats.outOfOrder++
		if c.opt.sack {
			slots := header.MaxSACKBlocks - boolInt(c.opt.ts) - boolInt(c.rcv.dsackOn)
			if c.rcv.sackWouldDrop(seg.Seq, seg.Seq.Add(seqnum.Size(len(seg.Payload))), slots) {
				c.sendACK(now)
			}
			if b, ok := c.rcv.ooo.blockAt(seg.Seq); ok {
				// Some or all of it is queued already (RFC 2883 §4).
				end := seg.Seq.Add(seqnum.Size(len(seg.Payload)))
				if be := seqnum.Value(b.End); be.LessThan(end) {
					end = be
				}
				c.rcv.noteDSACK(seg.Seq, end)
			}
		}
		c.rcv.ooo.insert(seg.Seq, seg.Payload, seg.Has(flagFIN))
		c.rcv.noteSACK(seg.Seq)
		seg.Flags &^= flagFIN
		if c.opt.sack {
			c.rcv.oooACK(now, c.snd.rtt.srtt) // RFC 5681 §4.2, compressed as Linux does
		} else {
			c.rcv.ackNow = true // RFC 5681 §4.2: the sender counts duplicate ACKs
		}
		return true
	}
	if c.rcv.discard {
		// CloseRead: acknowledge and drop (controls.go).
		c.rcv.nxt = c.rcv.nxt.Add(seqnum.Size(len(seg.Payload)))
		c.rcv.stats.bytesIn += uint64(len(seg.Payload))
		c.rcv.ackPending++
		return true
	}
	c.rcv.dataArrived(now, c.rcv.stats.bytesIn == 0, c.snd.rtt.rto, c.ourMSS())
	var n int
	if c.canAdopt(seg) {
		c.rcv.buf.adopt(seg.arr, seg.Payload)
		n = len(seg.Payload)
	} else {
		n = c.rcv.buf.Append(seg.Payload, c.rcvBufLimit())
	}
	c.rcv.nxt = c.rcv.nxt.Add(seqnum.Size(n))
	c.rcv.stats.bytesIn += uint64(n)
	c.rcvRTTMeasure(now, seg)
	// Count full-sized segments: a coalesced super-packet (the kernel's
	// TSO reaches us whole through the TUN) owes the ACKs its segments
	// would (RFC 9293 §3.8.6.3), and gets one at the end of the batch.
	c.rcv.ackPending += int32(max(1, (n+c.ourMSS()-1)/c.ourMSS()))
	c.events |= EvReadable
	if c.rcv.ooo.len() > 0 {
		c.rcv.ackNow = true // filling a hole: ACK at once
		if c.drainOOO(now) {
			seg.Flags |= flagFIN
			seg.Payload = seg.Payload[:n]
			seg.Seq = c.rcv.nxt.Sub(seqnum.Size(n))
		}
	}
	return true
}

// canAdopt reports whether the in-order seg goes to the receive buffer by
// adoption (PacketBuf): the payload is large and lies in a reader's
// PacketBuf, and all of it fits. An empty buffer takes the array; one that
// holds data chains it after its own (buffer.adopt), so that a reader that
// lags a super-packet behind costs no copy either. The array is held
// whole for the payload: at the least size of 16 KiB, a 64 KiB array
// holds at most four times its bytes while the application has not read
// them (Linux charges a socket its skbs' truesize likewise).
func (c *Conn) canAdopt(seg *Segment) bool {
	least := c.cfg.AdoptMin
	if least == 0 {
		least = adoptMin
	}
	return seg.arr != nil && seg.arr.rx && least > 0 && len(seg.Payload) >= least &&
		c.rcv.buf.Len()+len(seg.Payload) <= c.rcvBufLimit()
}

// rcvBufLimit is the receive buffer's bound: its size, or more if the window
// we advertised promised more (advertise rounds a kept window up to the
// window-scale unit rather than shrink it). Every byte inside the offered
// window is taken, so the window closes exactly at its edge.
func (c *Conn) rcvBufLimit() int {
	return max(int(c.rcv.tune.size), c.rcv.buf.Len()+int(c.rcv.window()))
}

// oooLimit bounds the out-of-order queue's segments: MaxOOOSegments if
// set, else 1024 or two per MSS of the receive buffer, if that is more. Whatever it holds lies
// inside the window we offered, so its bytes are bounded by the buffer; the
// count bounds what tiny segments cost beyond their bytes. A fixed count
// alone starves a grown window (Linux bounds the queue by memory,
// tcp_prune_ofo_queue): at 6 MiB, 5% loss leaves well over 1024
// full-sized segments above the holes, and each one dropped is sent again.
func (c *Conn) oooLimit() int {
	if c.cfg.MaxOOOSegments > 0 {
		return c.cfg.MaxOOOSegments // set by the user: a fixed bound
	}
	return max(defaultOOOSegments, 2*int(c.rcv.tune.size)/max(c.ourMSS(), 1))
}

// defaultOOOSegments is the out-of-order queue's least bound.
const defaultOOOSegments = 1024

// drainOOO moves queued segments that became in-order into the receive
// buffer. It reports whether a queued FIN became in-order.
func (c *Conn) drainOOO(now time.Time) (fin bool) {
	for {
		e, ok := c.rcv.ooo.first()
		if !ok || e.seq.GreaterThan(c.rcv.nxt) {
			return false
		}
		end := e.seq.Add(seqnum.Size(len(e.data)))
		if end.GreaterThan(c.rcv.nxt) {
			part := e.data[e.seq.Size(c.rcv.nxt):]
			n := c.rcv.buf.Append(part, c.rcvBufLimit())
			c.rcv.nxt = c.rcv.nxt.Add(seqnum.Size(n))
			c.rcv.stats.bytesIn += uint64(n)
			if n < len(part) {
				return false // the buffer is full: the rest stays queued
			}
		}
		c.rcv.ooo.pop()
		if e.fin && end == c.rcv.nxt {
			c.rcv.ooo.clear()
			return true
		}
	}
}
