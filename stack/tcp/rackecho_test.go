package tcp

import (
	"testing"
	"time"

	"ustack/stack/header"
)

// TestRACKIgnoresTheOriginalsLateACK: segment A is marked lost and sent
// again, then a cumulative ACK covers it. When that ACK echoes the
// timestamp of A's first transmission, the original arrived: the ACK says
// nothing of when the retransmission did, and RACK does not advance on it
// (Linux's tcp_skb_spurious_retrans in tcp_clean_rtx_queue), so segment
// F, sent between A's two transmissions and not yet acknowledged, is not
// marked lost. When the ACK echoes the retransmission's timestamp, the
// retransmission arrived after F was sent, and F is marked lost once the
// reordering window has passed (RFC 8985 §6.2).
func TestRACKIgnoresTheOriginalsLateACK(t *testing.T) {
	const m = 1000
	const em = m - 12 // a segment's payload beside the timestamp option
	for _, echoRetransmission := range []bool{false, true} {
		s := tsOpen(t, Config{NoDelay: true, MSS: m})
		peerTS := uint32(200)
		ack := func(a int, ecr uint32, blocks ...header.SACKBlock) Segment {
			g := sackAck(uint32(a), blocks...)
			peerTS++
			g.Opts.TS, g.Opts.TSVal, g.Opts.TSEcr = true, peerTS, ecr
			return g
		}
		// Round trips of 10 ms: SRTT and RACK's minimum RTT.
		next := 1
		for i := 0; i < 4; i++ {
			s.write(bytesN(em))
			g := s.out(Segment{Flags: ACK | PSH, Seq: lISS + seqnumSize(next), Ack: rISS + 1, Payload: bytesN(em)})
			s.none()
			next += em
			s.advance(10 * time.Millisecond)
			s.in(ack(next, g.Opts.TSVal))
		}
		// A..E at T, F at T+8ms.
		s.write(bytesN(5 * em))
		tsA := s.out(Segment{Flags: ACK, Seq: lISS + seqnumSize(next), Ack: rISS + 1, Payload: bytesAt(0, em)}).Opts.TSVal
		s.sent = s.sent[4:]
		s.none()
		s.advance(8 * time.Millisecond)
		s.write(bytesN(em))
		s.out(Segment{Flags: ACK | PSH, Seq: lISS + seqnumSize(next+5*em), Ack: rISS + 1, Payload: bytesN(em)})
		s.none()
		// T+10ms: B and D..E SACKed; A and C are holes, sent again.
		s.advance(2 * time.Millisecond)
		s.in(ack(next, tsA, blk(next+em, next+2*em), blk(next+3*em, next+5*em)))
		tsR := s.out(Segment{Flags: ACK, Seq: lISS + seqnumSize(next), Ack: rISS + 1, Payload: bytesAt(0, em)}).Opts.TSVal
		s.out(Segment{Flags: ACK, Seq: lISS + seqnumSize(next+2*em), Ack: rISS + 1, Payload: bytesAt(2*em, em)})
		s.none()
		if tsR == tsA {
			t.Fatalf("the retransmission carries the original's TSval %d", tsA)
		}
		// T+25ms: A and B acknowledged, 15 ms after A went again (more
		// than the minimum RTT, so RFC 8985's min_RTT guard lets it
		// count); D..E still SACKed above the hole at C.
		s.advance(15 * time.Millisecond)
		ecr := tsA
		if echoRetransmission {
			ecr = tsR
		}
		s.in(ack(next+2*em, ecr, blk(next+3*em, next+5*em)))
		s.none()
		// F would be due at T+8ms + 15ms + the reordering window (minRTT/4):
		// the reordering timer finds it lost and sends it again.
		s.advance(3 * time.Millisecond)
		if echoRetransmission {
			s.out(Segment{Flags: ACK | PSH, Seq: lISS + seqnumSize(next+5*em), Ack: rISS + 1, Payload: bytesN(em)})
		}
		s.none() // nothing else is due: no probe in recovery, the RTO is 200 ms away
	}
}
