package tcp

import (
	"testing"
	"time"

	"ustack/stack/seqnum"
)

// sackCompOpen opens a SACK connection whose handshake took rtt, then
// takes in-order data, one segment per batch, until quick-ACK mode is
// over. It returns the next expected sequence number.
func sackCompOpen(t *testing.T, rtt time.Duration) (*script, seqnum.Value) {
	s := newScript(t, Config{MSS: 1000})
	s.c.SetISS(lISS)
	s.c.Listen(s.now)
	s.in(synWith(SYN, 0, 0, -1, false, true))
	s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
	s.advance(rtt)
	s.in(seg(ACK, rISS+1, lISS+1))
	next := rISS + 1
	for i := 0; i < maxQuickACKs+2; i++ {
		s.in(seg(ACK, next, lISS+1, bytesN(1000)...))
		next = next.Add(1000)
		s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: next})
		s.read()
	}
	if s.c.rcv.quick != 0 {
		t.Fatalf("still in quick-ACK mode (%d)", s.c.rcv.quick)
	}
	return s, next
}

// sackedTo asserts an ACK of ack whose first SACK block ends at end.
func sackedTo(s *script, ack, end seqnum.Value) {
	s.t.Helper()
	g := s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: ack})
	if g.Opts.NumSACK == 0 || g.Opts.SACK[0].End != uint32(end) {
		s.t.Fatalf("ACK %v carries SACK %v, want a first block ending at %d", &g, g.Opts.SACK[:g.Opts.NumSACK], end)
	}
}

// TestSACKCompression: after a hole, the first three out-of-order segments
// get an immediate duplicate ACK each (RFC 5681 §4.2: what fast retransmit
// needs); the next ones are held, as Linux's SACK compression does, for
// 5% of the RTT at most 1 ms, and one ACK then carries the newest SACK
// block; 44 held send one at once; filling the hole is acknowledged at
// once.
func TestSACKCompression(t *testing.T) {
	s, next := sackCompOpen(t, 40*time.Millisecond) // 5%: 2 ms, so the 1 ms cap
	hole := next
	at := func(i int) seqnum.Value { return hole.Add(seqnum.Size(1000 * i)) }
	for i := 1; i <= 3; i++ {
		s.in(seg(ACK, at(i), lISS+1, bytesN(1000)...))
		sackedTo(s, hole, at(i+1))
	}
	for i := 4; i <= 10; i++ {
		s.in(seg(ACK, at(i), lISS+1, bytesN(1000)...))
		s.none()
	}
	s.advance(time.Millisecond - time.Microsecond)
	s.none()
	s.advance(time.Microsecond)
	sackedTo(s, hole, at(11))
	s.none()
	// Held ones go 45 at a time at most, even within one batch.
	batch := make([]Segment, 50)
	for i := range batch {
		batch[i] = seg(ACK, at(11+i), lISS+1, bytesN(1000)...)
	}
	s.inBatch(batch...)
	sackedTo(s, hole, at(11+compSACKMax+1))
	s.none()
	if got := s.c.Stats().ACKsCompressed; got != 6+compSACKMax-1 {
		t.Fatalf("ACKsCompressed = %d, want %d", got, 6+compSACKMax-1)
	}
	s.in(seg(ACK, hole, lISS+1, bytesN(1000)...))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: at(61)})
	s.none()
}

// TestSACKCompressionShortRTT: with a short RTT, the hold (5% of it) ends
// within the timer's slack of the batch, so the held ACK goes with the
// batch instead of another wake-up.
func TestSACKCompressionShortRTT(t *testing.T) {
	s, hole := sackCompOpen(t, time.Millisecond) // 5%: 50 µs
	batch := make([]Segment, 6)
	for i := range batch {
		batch[i] = seg(ACK, hole.Add(seqnum.Size(1000*(i+1))), lISS+1, bytesN(1000)...)
	}
	s.inBatch(batch...)
	for i := 1; i <= 3; i++ {
		sackedTo(s, hole, hole.Add(seqnum.Size(1000*(i+1))))
	}
	sackedTo(s, hole, hole.Add(7000)) // the three held ones, at the end of the batch
	s.none()
}

// TestNoSACKNoCompression: without SACK the sender counts duplicate ACKs,
// so every out-of-order segment gets one at once.
func TestNoSACKNoCompression(t *testing.T) {
	s := newScript(t, Config{MSS: 1000})
	s.c.SetISS(lISS)
	s.c.Listen(s.now)
	s.in(synWith(SYN, 0, 0, -1, false, false))
	s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
	s.in(seg(ACK, rISS+1, lISS+1))
	for i := 1; i <= 10; i++ {
		s.in(seg(ACK, rISS+1+seqnum.Value(1000*i), lISS+1, bytesN(1000)...))
		g := s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
		if g.Opts.NumSACK != 0 {
			t.Fatalf("SACK blocks without SACK-permitted: %v", g.Opts.SACK[:g.Opts.NumSACK])
		}
	}
}
