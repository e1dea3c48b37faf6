package tcp

import (
	"testing"
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// sackOf is the SACK blocks of g as (start, end) pairs.
func sackOf(g Segment) []header.SACKBlock {
	return append([]header.SACKBlock(nil), g.Opts.SACK[:g.Opts.NumSACK]...)
}

func dblk(start, end seqnum.Value) header.SACKBlock {
	return header.SACKBlock{Start: uint32(start), End: uint32(end)}
}

func wantBlocks(t *testing.T, g Segment, want ...header.SACKBlock) {
	t.Helper()
	got := sackOf(g)
	if len(got) != len(want) {
		t.Fatalf("ACK %v: SACK %v, want %v", &g, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("ACK %v: SACK %v, want %v", &g, got, want)
		}
	}
}

// TestDSACKForDataWeHave: a retransmission of data already acknowledged
// is answered at once by an ACK whose first (and only) SACK block reports
// the duplicate (RFC 2883 §4.1, as Linux's tcp_send_dupack and
// tcp_data_queue); the block goes once; a partial duplicate reports only
// its old part.
func TestDSACKForDataWeHave(t *testing.T) {
	s, next := sackCompOpen(t, 40*time.Millisecond)
	old := next.Sub(1000)
	s.in(seg(ACK, old, lISS+1, bytesN(1000)...))
	wantBlocks(t, s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: next}), dblk(old, next))
	s.none()
	// Half old, half new: D-SACK for the old half only.
	s.in(seg(ACK, next.Sub(500), lISS+1, bytesN(1000)...))
	wantBlocks(t, s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: next.Add(500)}), dblk(next.Sub(500), next))
	s.read()
	// New data after that: the next ACK carries no SACK option.
	s.in(seg(ACK, next.Add(500), lISS+1, bytesN(1000)...))
	s.advance(200 * time.Millisecond)
	wantBlocks(t, s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: next.Add(1500)}))
	if got := s.c.Stats().DSACKsSent; got != 2 {
		t.Fatalf("DSACKsSent = %d, want 2", got)
	}
}

// TestDSACKAboveTheHole: a segment that arrives again above RCV.NXT is
// reported by a D-SACK block, followed by the (larger) block holding it
// (RFC 2883 §4, example 4.2).
func TestDSACKAboveTheHole(t *testing.T) {
	s, next := sackCompOpen(t, 40*time.Millisecond)
	at := func(i int) seqnum.Value { return next.Add(seqnum.Size(1000 * i)) }
	s.in(seg(ACK, at(1), lISS+1, bytesN(1000)...))
	wantBlocks(t, s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: next}), dblk(at(1), at(2)))
	s.in(seg(ACK, at(2), lISS+1, bytesN(1000)...))
	wantBlocks(t, s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: next}), dblk(at(1), at(3)))
	s.in(seg(ACK, at(1), lISS+1, bytesN(1000)...))
	wantBlocks(t, s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: next}), dblk(at(1), at(2)), dblk(at(1), at(3)))
}

// TestSACKNamesEveryBlockABatchTouched: when one ACK answers several
// out-of-order arrivals (a batch, here held by SACK compression), it names
// the blocks they touched, newest first (RFC 2018 §4; Linux keeps its
// selective_acks in arrival order, segment by segment). Naming only the
// newest arrival's block and the blocks of the last ACK, as a receiver
// that orders its blocks by what it sent does, hides data we hold: the
// sender's RACK then takes it for lost and sends it again.
func TestSACKNamesEveryBlockABatchTouched(t *testing.T) {
	s, next := sackCompOpen(t, 40*time.Millisecond)
	at := func(i int) seqnum.Value { return next.Add(seqnum.Size(1000 * i)) }
	// Five blocks with holes between them: 2, 5, 8, 11, 14.
	for _, i := range []int{2, 5, 8, 11, 14} {
		s.in(seg(ACK, at(i), lISS+1, bytesN(1000)...))
	}
	s.advance(time.Millisecond)
	s.sent = s.sent[:0]
	// One batch extends blocks 5, 2 and 8, in that order.
	s.inBatch(
		seg(ACK, at(6), lISS+1, bytesN(1000)...),
		seg(ACK, at(3), lISS+1, bytesN(1000)...),
		seg(ACK, at(9), lISS+1, bytesN(1000)...),
	)
	s.advance(time.Millisecond)
	wantBlocks(t, s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: next}),
		dblk(at(8), at(10)), dblk(at(2), at(4)), dblk(at(5), at(7)), dblk(at(14), at(15)))
}

// TestRACKReorderingWindowWidensWithDSACK: each D-SACK (a retransmission
// that proved spurious) widens RACK's reordering window by minRTT/4, at
// most once a round trip and never beyond SRTT; 16 recoveries without one
// bring it back (RFC 8985 §6.2 step 4).
func TestRACKReorderingWindowWidensWithDSACK(t *testing.T) {
	const m = 1000
	s := sackOpen(t, Config{NoDelay: true, MSS: m})
	// Round trips of 20 ms: SRTT and the minimum RTT.
	for i := 0; i < 12; i++ {
		s.write(bytesN(m))
		s.sent = s.sent[:0]
		s.advance(20 * time.Millisecond)
		s.in(sackAck(uint32(1 + (i+1)*m)))
	}
	s.write(bytesN(4 * m))
	s.sent = s.sent[:0]
	s.in(sackAck(1 + 14*m))
	k, ok := s.c.rec.(*sackRecovery)
	if !ok {
		t.Fatalf("recovery is %T, want SACK recovery", s.c.rec)
	}
	base := k.reoWnd()
	// RFC 8985 §6.2: never beyond SRTT.
	want := func(steps int) time.Duration { return min(time.Duration(steps)*base, s.c.snd.rtt.srtt) }
	if base != k.rack.minRTT/4 || base == 0 {
		t.Fatalf("reordering window %v, want minRTT/4 = %v", base, k.rack.minRTT/4)
	}
	// A D-SACK: the first block lies below the cumulative ACK.
	s.in(sackAck(1+14*m, blk(1+12*m, 1+13*m)))
	if got := k.reoWnd(); got != want(2) || got <= base {
		t.Fatalf("after a D-SACK the window is %v, want %v", got, want(2))
	}
	// Another in the same round trip changes nothing.
	s.in(sackAck(1+14*m, blk(1+13*m, 1+14*m)))
	if got := k.reoWnd(); got != want(2) {
		t.Fatalf("after a second D-SACK in the round the window is %v, want %v", got, want(2))
	}
	// Once SND.UNA passes the round's end, the next D-SACK counts; one
	// inside the second block is a D-SACK too (RFC 2883 §4).
	s.in(sackAck(1 + 16*m))
	s.write(bytesN(4 * m))
	s.sent = s.sent[:0]
	s.in(sackAck(1+16*m, blk(1+17*m, 1+18*m), blk(1+17*m, 1+19*m)))
	if got := k.reoWnd(); got != want(3) || got <= want(2) {
		t.Fatalf("after a D-SACK in the next round the window is %v, want %v", got, want(3))
	}
	if got := s.c.Stats().DSACKsReceived; got != 3 {
		t.Fatalf("DSACKsReceived = %d, want 3", got)
	}
	for i := 0; i < rackReoPersist-1; i++ {
		k.rack.recoveryEnded()
	}
	if got := k.reoWnd(); got != want(3) {
		t.Fatalf("after %d recoveries the window is %v, want still %v", rackReoPersist-1, got, want(3))
	}
	k.rack.recoveryEnded()
	if got := k.reoWnd(); got != base {
		t.Fatalf("after %d recoveries without a D-SACK the window is %v, want %v again", rackReoPersist, got, base)
	}
}

// TestOOOLimitGrowsWithTheBuffer: the out-of-order queue holds at least
// MaxOOOSegments, and two segments per MSS of a grown receive buffer: a
// 6 MiB window at 5% loss leaves more than 1024 full-sized segments above
// its holes, and every one dropped would be sent again.
func TestOOOLimitGrowsWithTheBuffer(t *testing.T) {
	s, _ := sackCompOpen(t, 40*time.Millisecond)
	c := s.c
	if got := c.oooLimit(); got != defaultOOOSegments {
		t.Fatalf("with a %d-byte buffer the limit is %d, want %d", c.rcv.tune.size, got, defaultOOOSegments)
	}
	c.rcv.tune.size = 6 << 20
	if got, want := c.oooLimit(), 2*(6<<20)/c.ourMSS(); got != want || got <= defaultOOOSegments {
		t.Fatalf("with a 6 MiB buffer the limit is %d, want %d", got, want)
	}
}
