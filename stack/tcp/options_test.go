package tcp

import (
	"testing"
	"time"

	"ustack/stack/header"
)

// synWith is a peer SYN(-ACK) with the given options.
func synWith(flags uint8, ack, seq uint32, ws int8, ts, sack bool) Segment {
	var w header.WindowScale
	if ws >= 0 {
		w = header.WS(uint8(ws))
	}
	g := seg(flags, rISS, lISS+1)
	if flags&ACK == 0 {
		g.Ack = 0
	}
	g.Opts = header.TCPOptions{MSS: 1460, WS: w, TS: ts, TSVal: seq, TSEcr: ack, SACKPermit: sack}
	return g
}

// TestWindowScaleUsedOnlyWhenBothOffer: a SYN-ACK answers WS only if the
// SYN had it; windows are scaled only then (RFC 7323 §2.2).
func TestWindowScaleUsedOnlyWhenBothOffer(t *testing.T) {
	for _, peerWS := range []int8{-1, 7} {
		s := newScript(t, Config{RcvBuf: 1 << 20})
		s.c.SetISS(lISS)
		s.c.Listen(s.now)
		s.in(synWith(SYN, 0, 0, peerWS, false, false))
		sa := s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
		if sa.Wnd != 65535 {
			t.Fatalf("SYN-ACK window %d: the window in a SYN is never scaled", sa.Wnd)
		}
		a := seg(ACK, rISS+1, lISS+1)
		a.Wnd = 100
		s.in(a)
		i := s.c.Info()
		if peerWS < 0 {
			if sa.Opts.WS.Present || i.WindowScale[0].Present || i.WindowScale[1].Present || i.SndWnd != 100 {
				t.Fatalf("peer without WS: SYN-ACK WS %v, info %v, snd wnd %d", sa.Opts.WS, i.WindowScale, i.SndWnd)
			}
			s.write(bytesN(10))
			got := s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesN(10)})
			if got.Wnd != 65535 {
				t.Fatalf("unscaled window %d, want 65535 (a 1 MiB buffer capped)", got.Wnd)
			}
			continue
		}
		if sa.Opts.WS != header.WS(5) { // 1 MiB >> 5 = 32 KiB fits the 16-bit field
			t.Fatalf("SYN-ACK WS %v, want 5 for a buffer that may grow to 1 MiB", sa.Opts.WS)
		}
		if i.SndWnd != 100<<7 {
			t.Fatalf("send window %d, want 100<<7", i.SndWnd)
		}
		s.write(bytesN(10))
		got := s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesN(10)})
		// The window is the buffer a connection starts with, scaled.
		if got.Wnd != DefaultRcvBufInit>>5 {
			t.Fatalf("scaled window field %d, want %d", got.Wnd, DefaultRcvBufInit>>5)
		}
	}
}

// TestActiveOpenOffersOptions: our SYN offers MSS, WS, SACK-permitted and a
// timestamp; a SYN-ACK without them turns them off.
func TestActiveOpenOffersOptions(t *testing.T) {
	s := newScript(t, Config{})
	s.c.Connect(s.now, lISS)
	syn := s.out(Segment{Flags: SYN, Seq: lISS})
	if !syn.Opts.WS.Present || !syn.Opts.TS || !syn.Opts.SACKPermit || syn.Opts.MSS == 0 {
		t.Fatalf("SYN options %+v", syn.Opts)
	}
	s.in(seg(SYN|ACK, rISS, lISS+1))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	if i := s.c.Info(); i.Timestamps || i.SACK || i.WindowScale[0].Present {
		t.Fatalf("options in use after a bare SYN-ACK: %+v", i)
	}
}

// tsOpen opens a connection with timestamps (and SACK) in use.
func tsOpen(t *testing.T, cfg Config) *script {
	s := newScript(t, cfg)
	s.c.SetISS(lISS)
	s.c.Listen(s.now)
	s.in(synWith(SYN, 0, 100, -1, true, true))
	sa := s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
	if !sa.Opts.TS || sa.Opts.TSEcr != 100 || !sa.Opts.SACKPermit {
		t.Fatalf("SYN-ACK options %+v", sa.Opts)
	}
	a := seg(ACK, rISS+1, lISS+1)
	a.Opts.TS, a.Opts.TSVal, a.Opts.TSEcr = true, 101, sa.Opts.TSVal
	s.in(a)
	s.state(Established)
	return s
}

// TestPAWSDropsOldTimestamp: a segment whose timestamp is older than
// TS.Recent is dropped and acknowledged (RFC 7323 §5.3 R1), even if its
// sequence number is fine.
func TestPAWSDropsOldTimestamp(t *testing.T) {
	s := tsOpen(t, Config{})
	d := seg(ACK, rISS+1, lISS+1, 'a')
	d.Opts.TS, d.Opts.TSVal = true, 200
	s.in(d)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 2})
	old := seg(ACK, rISS+2, lISS+1, 'b')
	old.Opts.TS, old.Opts.TSVal = true, 150 // older than TS.Recent = 200
	s.in(old)
	got := s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 2})
	if got.Opts.TSEcr != 200 {
		t.Fatalf("ACK echoes %d, want TS.Recent 200", got.Opts.TSEcr)
	}
	if s.c.stats.pawsDropped != 1 || s.c.Readable() != 1 {
		t.Fatalf("PAWS dropped %d, readable %d", s.c.stats.pawsDropped, s.c.Readable())
	}
}

// TestRTTFromTimestamps: an ACK echoing our timestamp gives an RTT sample
// even for a retransmitted segment, where Karn's rule forbids timing
// (RFC 7323 §4).
func TestRTTFromTimestamps(t *testing.T) {
	s := tsOpen(t, Config{})
	srtt0 := s.c.Info().SRTT
	s.write([]byte("x"))
	first := s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: []byte("x")})
	rto := s.c.Info().RTO
	s.advance(rto)
	rtx := s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: []byte("x")})
	if rtx.Opts.TSVal == first.Opts.TSVal {
		t.Fatal("the retransmission carries the first transmission's timestamp")
	}
	s.advance(30 * time.Millisecond)
	a := seg(ACK, rISS+1, lISS+2)
	a.Opts.TS, a.Opts.TSVal, a.Opts.TSEcr = true, 300, rtx.Opts.TSVal
	s.in(a)
	// SRTT' = 7/8 SRTT + 1/8 R (RFC 6298 §2.3): recover R.
	if r := 8*s.c.Info().SRTT - 7*srtt0; r != 30*time.Millisecond {
		t.Fatalf("RTT sample %v after a 30 ms timestamp echo, want 30ms", r)
	}
}

// TestSACKBlocksForTwoHoles: with two holes, the ACK carries one SACK block
// per out-of-order range, the most recent arrival's block first (RFC 2018
// §4).
func TestSACKBlocksForTwoHoles(t *testing.T) {
	s := tsOpen(t, Config{})
	// Expected next: rISS+1. Bytes [11,21) and [31,41) arrive; two holes.
	d1 := seg(ACK, rISS+11, lISS+1, bytesN(10)...)
	d1.Opts.TS, d1.Opts.TSVal = true, 102
	s.in(d1)
	g := s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	if g.Opts.NumSACK != 1 || g.Opts.SACK[0] != (header.SACKBlock{Start: uint32(rISS + 11), End: uint32(rISS + 21)}) {
		t.Fatalf("first SACK %+v", g.Opts)
	}
	d2 := seg(ACK, rISS+31, lISS+1, bytesN(10)...)
	d2.Opts.TS, d2.Opts.TSVal = true, 103
	s.in(d2)
	g = s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	want := [2]header.SACKBlock{{Start: uint32(rISS + 31), End: uint32(rISS + 41)}, {Start: uint32(rISS + 11), End: uint32(rISS + 21)}}
	if g.Opts.NumSACK != 2 || g.Opts.SACK[0] != want[0] || g.Opts.SACK[1] != want[1] {
		t.Fatalf("SACK blocks %+v, want %+v", g.Opts.SACK[:g.Opts.NumSACK], want)
	}
}

// sackOpen opens a connection with SACK (no timestamps), NoDelay, and a
// large peer window.
func sackOpen(t *testing.T, cfg Config) *script {
	s := newScript(t, cfg)
	s.c.SetISS(lISS)
	s.c.Listen(s.now)
	s.in(synWith(SYN, 0, 0, -1, false, true))
	s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
	s.in(seg(ACK, rISS+1, lISS+1))
	return s
}

func sackAck(ack uint32, blocks ...header.SACKBlock) Segment {
	g := seg(ACK, rISS+1, lISS+1)
	g.Ack = lISS + seqnumSize(int(ack))
	g.Opts.NumSACK = copy(g.Opts.SACK[:], blocks)
	return g
}

func blk(a, b int) header.SACKBlock {
	return header.SACKBlock{Start: uint32(lISS) + uint32(a), End: uint32(lISS) + uint32(b)}
}

// TestSACKRetransmitsOnlyHoles: segments 1 and 3 of 6 are lost; the SACKs
// lead to retransmission of exactly those two, never of SACKed data
// (RFC 6675).
func TestSACKRetransmitsOnlyHoles(t *testing.T) {
	const m = 1000
	s := sackOpen(t, Config{NoDelay: true, MSS: m})
	s.write(bytesN(6 * m))
	for i := 0; i < 6; i++ {
		s.sent = s.sent[1:] // segments at 1, 1001, ..., 5001
	}
	s.none()
	// Segment 1 (seq 1) and 3 (seq 2001) lost: the peer SACKs 2, 4, 5, 6.
	s.in(sackAck(1, blk(1001, 2001)))
	s.in(sackAck(1, blk(3001, 4001), blk(1001, 2001)))
	s.none() // two duplicate ACKs and 2000 bytes SACKed: not yet
	s.in(sackAck(1, blk(3001, 6001), blk(1001, 2001)))
	// Fast retransmit: the first hole, then the second, nothing SACKed.
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesAt(0, m)})
	s.out(Segment{Flags: ACK, Seq: lISS + 2001, Ack: rISS + 1, Payload: bytesAt(2000, m)})
	s.none()
	if s.c.snd.stats.retransmits != 2 || s.c.Stats().FastRetransmits != 1 {
		t.Fatalf("retransmits %d, fast %d", s.c.snd.stats.retransmits, s.c.Stats().FastRetransmits)
	}
	s.in(sackAck(6001))
	if s.c.rec.inRecovery() || s.c.snd.una != s.c.snd.max {
		t.Fatal("recovery did not end on the full ACK")
	}
}

// TestNewRenoPartialACK: without SACK, a partial ACK during fast recovery
// retransmits the next unacknowledged segment at once (RFC 6582 §3.2).
func TestNewRenoPartialACK(t *testing.T) {
	const m = 1000
	s := newScript(t, Config{NoDelay: true, MSS: m})
	s.passiveOpen()
	s.write(bytesN(6 * m))
	s.sent = s.sent[:0]
	for i := 0; i < 3; i++ {
		s.in(seg(ACK, rISS+1, lISS+1))
	}
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesAt(0, m)}) // fast retransmit
	s.none()
	s.in(seg(ACK, rISS+1, lISS+2001)) // partial: the segment at 2001 was lost too
	s.out(Segment{Flags: ACK, Seq: lISS + 2001, Ack: rISS + 1, Payload: bytesAt(2000, m)})
	if !s.c.rec.inRecovery() {
		t.Fatal("a partial ACK ended recovery")
	}
	s.in(seg(ACK, rISS+1, lISS+6001))
	if s.c.rec.inRecovery() {
		t.Fatal("the full ACK did not end recovery")
	}
}

// TestDelayedACKTiming: a lone segment is acknowledged when the delayed-ACK
// timer fires; a second full segment is acknowledged at once; out-of-order
// data at once (RFC 9293 §3.8.6.3, RFC 5681 §4.2).
func TestDelayedACKTiming(t *testing.T) {
	s := newScript(t, Config{DelayedAck: 40 * time.Millisecond, MSS: 1000})
	s.passiveOpen()
	// Quick-ACK mode first (TestQuickACKAtStart): 16 ACKs at once.
	base := rISS + 1
	for i := 0; i < maxQuickACKs; i++ {
		s.in(seg(ACK, base, lISS+1, bytesN(1000)...))
		base += 1000
		s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: base})
	}
	s.in(seg(ACK, base, lISS+1, bytesN(1000)...))
	s.advance(40*time.Millisecond - time.Microsecond)
	s.none()
	s.advance(time.Microsecond)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: base + 1000})
	s.in(seg(ACK, base+1000, lISS+1, bytesN(1000)...))
	s.none()
	s.in(seg(ACK, base+2000, lISS+1, bytesN(1000)...))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: base + 3000})
	s.in(seg(ACK, base+4000, lISS+1, bytesN(1000)...)) // a hole
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: base + 3000})
	s.in(seg(ACK, base+3000, lISS+1, bytesN(1000)...))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: base + 5000}) // fills the hole: at once
}

// TestQuickACKAtStart: the first lone data segments of a connection are
// acknowledged at once, as Linux's quick-ACK mode does (RFC 9293 §3.8.6.3
// allows delaying them; Linux does not, so that slow start is not held
// back); once we answer data within the delayed-ACK time (an interactive
// exchange), ACKs wait to ride on the answers.
func TestQuickACKAtStart(t *testing.T) {
	s := newScript(t, Config{DelayedAck: 40 * time.Millisecond, MSS: 1000, NoDelay: true})
	s.passiveOpen()
	s.in(seg(ACK|PSH, rISS+1, lISS+1, bytesN(100)...))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 101})
	s.write([]byte("answer"))
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 101, Payload: []byte("answer")})
	s.in(seg(ACK|PSH, rISS+101, lISS+7, bytesN(100)...))
	s.none() // interactive now: the ACK waits for the answer
	s.write([]byte("again"))
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 7, Ack: rISS + 201, Payload: []byte("again")})
}

// TestChallengeACKRateLimited: challenge ACKs go through the stack-wide
// limiter (RFC 5961 §7), after the per-connection one.
func TestChallengeACKRateLimited(t *testing.T) {
	allowed := 2
	s := newScript(t, Config{ChallengeACK: func(time.Time) bool { allowed--; return allowed >= 0 }})
	s.passiveOpen()
	for i := 0; i < 5; i++ {
		s.advance(oowInterval)
		s.in(seg(RST, rISS+100, 0))
	}
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.none()
	if s.c.stats.challengeACKsLimited != 3 {
		t.Fatalf("limited %d, want 3", s.c.stats.challengeACKsLimited)
	}
}

// TestOOOQueueBounded: hostile out-of-order segments cannot grow the queue
// beyond its bound.
func TestOOOQueueBounded(t *testing.T) {
	s := newScript(t, Config{MaxOOOSegments: 8})
	s.passiveOpen()
	for i := 0; i < 20; i++ {
		s.in(seg(ACK, rISS+1+seqnumSize(2+3*i), lISS+1, 'x'))
	}
	if s.c.rcv.ooo.len() != 8 || s.c.rcv.stats.oooDropped != 12 {
		t.Fatalf("queue %d segments, dropped %d", s.c.rcv.ooo.len(), s.c.rcv.stats.oooDropped)
	}
}

// TestTailLossProbe: when the ACKs of a flight's tail never come, the last
// segment is sent again after the probe timeout (2*SRTT, at least 10 ms),
// long before the retransmission timer (RFC 8985 §7).
func TestTailLossProbe(t *testing.T) {
	const m = 1000
	s := sackOpen(t, Config{NoDelay: true, MSS: m})
	s.write(bytesN(3 * m))
	for i := 0; i < 3; i++ {
		s.out(Segment{Flags: ACK | map[bool]uint8{true: PSH}[i == 2], Seq: lISS + 1 + seqnumSize(i*m), Ack: rISS + 1, Payload: bytesAt(i*m, m)})
	}
	// PTO = 2*SRTT + 2 ms with more than one segment in flight (Linux's
	// tcp_schedule_loss_probe).
	pto := 2*s.c.Info().SRTT + 2*time.Millisecond
	s.advance(pto - time.Microsecond)
	s.none()
	s.advance(time.Microsecond)
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1 + 2*m, Ack: rISS + 1, Payload: bytesAt(2*m, m)})
	if s.c.Stats().TLPProbes != 1 {
		t.Fatalf("probes %d", s.c.Stats().TLPProbes)
	}
	// The probe's ACK SACKs the last segment: the two before it are lost
	// (RACK: sent before a delivered segment, more than an RTT ago) and are
	// resent at once.
	s.advance(time.Millisecond)
	s.in(sackAck(1, blk(2001, 3001)))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesAt(0, m)})
	s.out(Segment{Flags: ACK, Seq: lISS + 1001, Ack: rISS + 1, Payload: bytesAt(1000, m)})
	s.none()
}

// TestTailLossProbeFitsTheOptions: a SACK block the connection now owes
// its peer (data came out of order) takes option space the probed
// segment did not need when it first left. The probe is the last segment's
// final effective-MSS bytes, so that with its options it still fits the
// MSS (Linux's tcp_send_loss_probe cuts the skb with tcp_fragment); sent
// whole, it would exceed the path MTU.
func TestTailLossProbeFitsTheOptions(t *testing.T) {
	const m = 1000
	s := sackOpen(t, Config{NoDelay: true, MSS: m})
	s.write(bytesN(3 * m))
	for i := 0; i < 3; i++ {
		s.out(Segment{Flags: ACK | map[bool]uint8{true: PSH}[i == 2], Seq: lISS + 1 + seqnumSize(i*m), Ack: rISS + 1, Payload: bytesAt(i*m, m)})
	}
	// Out-of-order data from the peer: the next ACKs carry a SACK block.
	s.in(seg(ACK, rISS+1+100, lISS+1, 'x'))
	ack := s.out(Segment{Flags: ACK, Seq: lISS + 1 + 3*m, Ack: rISS + 1})
	if ack.Opts.NumSACK != 1 {
		t.Fatalf("the duplicate ACK carries %d SACK blocks, want 1", ack.Opts.NumSACK)
	}
	eff := m - (4 + 8) // the SACK option: kind, length, padding, one block
	s.advance(2*s.c.Info().SRTT + 2*time.Millisecond)
	probe := s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1 + seqnumSize(3*m-eff), Ack: rISS + 1, Payload: bytesAt(3*m-eff, eff)})
	if probe.Opts.NumSACK != 1 {
		t.Fatalf("the probe carries %d SACK blocks, want 1", probe.Opts.NumSACK)
	}
	if s.c.Stats().TLPProbes != 1 {
		t.Fatalf("probes %d", s.c.Stats().TLPProbes)
	}
}
