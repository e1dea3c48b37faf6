package tcp

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
	"time"
	"ustack/stack/seqnum"
)

// TestOutOfOrderReassembly: segments 3, 2 arrive before 1; each gap gets
// an immediate duplicate ACK; filling the hole delivers everything in order
// with one cumulative ACK (RFC 9293 §3.10.7.4 seventh, RFC 5681 §4.2).
func TestOutOfOrderReassembly(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	a, b, c := []byte("aaaa"), []byte("bbbb"), []byte("cccc")
	s.in(seg(ACK, rISS+9, lISS+1, c...))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(ACK, rISS+5, lISS+1, b...))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	if s.c.Readable() != 0 {
		t.Fatal("out-of-order data became readable")
	}
	s.in(seg(ACK, rISS+1, lISS+1, a...))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 13})
	s.none()
	if got := s.read(); string(got) != "aaaabbbbcccc" {
		t.Fatalf("read %q", got)
	}
}

// TestOutOfOrderOverlapAndFIN: overlapping out-of-order pieces and a FIN
// that arrives before the data it follows.
func TestOutOfOrderOverlapAndFIN(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.in(seg(FIN|ACK, rISS+11, lISS+1)) // FIN after 10 bytes not yet here
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.state(Established)
	s.in(seg(ACK, rISS+4, lISS+1, []byte("3456789")...)) // bytes 3..9
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(ACK, rISS+3, lISS+1, []byte("234")...)) // overlaps
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(ACK, rISS+1, lISS+1, []byte("01")...))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 12}) // 10 bytes + FIN
	s.state(CloseWait)
	if got := s.read(); string(got) != "0123456789" {
		t.Fatalf("read %q", got)
	}
	if !s.c.EOF() {
		t.Fatal("no EOF")
	}
}

// TestMSSHonoured: no segment exceeds the peer's MSS (RFC 9293 §3.7.1).
func TestMSSHonoured(t *testing.T) {
	s := newScript(t, Config{NoDelay: true})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	synack := seg(SYN|ACK, rISS, lISS+1)
	synack.Opts.MSS = 536
	s.in(synack)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.write(bytesN(2000))
	total := 0
	for len(s.sent) > 0 {
		g := s.sent[0]
		s.sent = s.sent[1:]
		if len(g.Payload) > 536 {
			t.Fatalf("segment of %d bytes exceeds the peer's MSS 536", len(g.Payload))
		}
		total += len(g.Payload)
	}
	if total != 2000 {
		t.Fatalf("sent %d bytes, want 2000", total)
	}
}

// TestNoMSSOptionMeans536: without an MSS option the default 536 applies
// (RFC 9293 §3.7.1).
func TestNoMSSOptionMeans536(t *testing.T) {
	s := newScript(t, Config{})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	s.in(seg(SYN|ACK, rISS, lISS+1))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	if s.c.Info().SndMSS != 536 {
		t.Fatalf("send MSS %d", s.c.Info().SndMSS)
	}
}

// TestSendWindowLimitsData: never more in flight than the peer's window
// (RFC 9293 §3.8.6).
func TestSendWindowLimitsData(t *testing.T) {
	s := newScript(t, Config{NoDelay: true})
	s.activeOpen()
	w := seg(ACK, rISS+1, lISS+1)
	w.Wnd = 3000
	s.in(w)
	s.write(bytesN(10000))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesAt(0, 1460)})
	s.out(Segment{Flags: ACK, Seq: lISS + 1461, Ack: rISS + 1, Payload: bytesAt(1460, 1460)})
	// 80 bytes left in the window: sender SWS avoidance holds them back.
	s.none()
	a := seg(ACK, rISS+1, lISS+1+2920)
	a.Wnd = 3000
	s.in(a)
	s.out(Segment{Flags: ACK, Seq: lISS + 2921, Ack: rISS + 1, Payload: bytesAt(2920, 1460)})
	s.out(Segment{Flags: ACK, Seq: lISS + 4381, Ack: rISS + 1, Payload: bytesAt(4380, 1460)})
	s.none()
}

// TestZeroWindowPersistProbes: when the peer's window is zero, a probe goes
// out at the RTO and then at doubling intervals: a zero-length ACK at
// SND.UNA-1, as Linux sends it; when the window opens the data flows (RFC
// 9293 §3.8.6.1).
func TestZeroWindowPersistProbes(t *testing.T) {
	s := newScript(t, Config{NoDelay: true})
	s.activeOpen()
	z := seg(ACK, rISS+1, lISS+1)
	z.Wnd = 0
	s.in(z)
	s.write([]byte("payload"))
	s.none()
	rto := s.c.Info().RTO
	at := time.Duration(0)
	for i := 0; i < 4; i++ {
		gap := rto << (i + 0)
		s.at(at + gap - time.Millisecond)
		s.none()
		s.at(at + gap)
		s.out(Segment{Flags: ACK, Seq: lISS, Ack: rISS + 1, Payload: []byte{}})
		s.in(z) // still zero
		s.none()
		at += gap
	}
	if s.c.snd.stats.zeroWindowProbes != 4 {
		t.Fatalf("%d probes", s.c.snd.stats.zeroWindowProbes)
	}
	open := seg(ACK, rISS+1, lISS+1)
	open.Wnd = 1000
	s.in(open)
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: []byte("payload")})
	s.state(Established)
}

// TestZeroWindowAdvertisedAndReopened: our receive buffer fills, we
// advertise zero; reading reopens it with a window update.
func TestZeroWindowAdvertisedAndReopened(t *testing.T) {
	s := newScript(t, Config{RcvBuf: 4000, MSS: 1000})
	s.passiveOpen()
	var batch []Segment
	for i := 0; i < 4; i++ {
		batch = append(batch, seg(ACK, rISS+1+seqnumSize(i*1000), lISS+1, bytesN(1000)...))
	}
	s.inBatch(batch...)
	// One ACK for the whole batch (see ackEvery).
	got := s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 4001})
	if got.Wnd != 0 {
		t.Fatalf("window %d with a full buffer, want 0", got.Wnd)
	}
	// A probe into the zero window is not accepted, but acknowledged.
	s.in(seg(ACK, rISS+4001, lISS+1, 'x'))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 4001, Wnd: 0})
	if d := s.read(); !bytes.Equal(d[:1000], bytesN(1000)) || len(d) != 4000 {
		t.Fatalf("read %d bytes", len(d))
	}
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 4001, Wnd: 4000})
}

// TestNagleHoldsSmallSegments: with Nagle on, a second small write waits
// until the first is acknowledged (RFC 9293 §3.7.4).
func TestNagleHoldsSmallSegments(t *testing.T) {
	s := newScript(t, Config{})
	s.activeOpen()
	s.write([]byte("a"))
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: []byte("a")})
	s.write([]byte("b"))
	s.write([]byte("c"))
	s.none()
	s.in(seg(ACK, rISS+1, lISS+2))
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 2, Ack: rISS + 1, Payload: []byte("bc")})
}

// TestLongBatchStillClocksTheSender: within one long input batch an ACK
// goes out every ackEvery segments, and one more at the batch's end.
func TestLongBatchStillClocksTheSender(t *testing.T) {
	s := newScript(t, Config{MSS: 1000})
	s.passiveOpen()
	var batch []Segment
	for i := 0; i < 2*ackEvery+3; i++ {
		batch = append(batch, seg(ACK, rISS+1+seqnumSize(i*1000), lISS+1, bytesN(1000)...))
	}
	s.inBatch(batch...)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1 + seqnumSize(ackEvery*1000)})
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1 + seqnumSize(2*ackEvery*1000)})
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1 + seqnumSize((2*ackEvery+3)*1000)})
	s.none()
}

// TestScaledWindowNeverShrinks: with window scaling, keeping the window
// must not move its right edge left through rounding (RFC 9293
// §3.8.6.2.2; found against the kernel by the integration tests).
func TestScaledWindowNeverShrinks(t *testing.T) {
	s := newScript(t, Config{RcvBuf: 1 << 20, RcvBufInit: 1 << 20, MSS: 1000})
	s.c.SetISS(lISS)
	s.c.Listen(s.now)
	s.in(synWith(SYN, 0, 0, 7, false, false))
	s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
	s.in(seg(ACK, rISS+1, lISS+1))
	edge := s.c.rcv.adv
	seq := rISS + 1
	for i := 0; i < 200; i++ {
		n := 1 + (i*37)%999 // odd sizes, never read by the application
		s.in(seg(ACK, seq, lISS+1, bytesN(n)...))
		seq = seq.Add(seqnum.Size(n))
		if s.c.rcv.adv.LessThan(edge) {
			t.Fatalf("segment %d: right edge moved left from %d to %d", i, edge, s.c.rcv.adv)
		}
		edge = s.c.rcv.adv
		s.sent = s.sent[:0]
	}
}

// TestZeroWindowStillTakesACKs: with our window at zero, a segment at
// RCV.NXT still delivers its ACK and window update (RFC 9293 §3.10.7.4:
// "special allowance should be made to accept valid ACKs"); its data is
// not taken, and the answer says so.
func TestZeroWindowStillTakesACKs(t *testing.T) {
	s := newScript(t, Config{RcvBuf: 2000, MSS: 1000, NoDelay: true})
	s.passiveOpen()
	s.inBatch(seg(ACK, rISS+1, lISS+1, bytesN(1000)...), seg(ACK, rISS+1001, lISS+1, bytesN(1000)...))
	if g := s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 2001}); g.Wnd != 0 {
		t.Fatalf("window %d, want 0", g.Wnd)
	}
	s.write([]byte("reply"))
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 2001, Payload: []byte("reply")})
	// The peer acknowledges our reply with a segment that also carries
	// data, at RCV.NXT, into our zero window.
	s.in(seg(ACK, rISS+2001, lISS+6, 'z'))
	if s.c.snd.una != lISS+6 {
		t.Fatalf("SND.UNA %d: the ACK in a zero-window segment was ignored", s.c.snd.una)
	}
	s.out(Segment{Flags: ACK, Seq: lISS + 6, Ack: rISS + 2001, Wnd: 0})
}

// TestZeroWindowProbesUnansweredAbort: probes nobody answers end the
// connection after MaxRetries of them, with ETIMEDOUT and no RST (Linux's
// tcp_probe_timer with tcp_retries2); an answer resets the count.
func TestZeroWindowProbesUnansweredAbort(t *testing.T) {
	s := newScript(t, Config{NoDelay: true, MaxRetries: 3})
	s.activeOpen()
	z := seg(ACK, rISS+1, lISS+1)
	z.Wnd = 0
	s.in(z)
	s.write([]byte("payload"))
	for i := 0; i < 3; i++ {
		s.advance(s.c.NextDeadline().Sub(s.now))
		s.out(Segment{Flags: ACK, Seq: lISS, Ack: rISS + 1, Payload: []byte{}})
	}
	s.in(z) // one answer: the count starts again
	for i := 0; i < 3; i++ {
		s.advance(s.c.NextDeadline().Sub(s.now))
		s.out(Segment{Flags: ACK, Seq: lISS, Ack: rISS + 1, Payload: []byte{}})
	}
	s.state(Established)
	s.advance(s.c.NextDeadline().Sub(s.now))
	s.none()
	s.state(Closed)
	if !errors.Is(s.c.Err(), syscall.ETIMEDOUT) {
		t.Fatalf("error %v, want ETIMEDOUT", s.c.Err())
	}
}

// TestWriterWokenWhenRoomIsWorthIt: a writer blocked on a full send buffer
// is told the buffer is writable only once the free room is at least half
// of what is still queued (Linux's sk_stream_write_space), not on every
// ACK that frees a little.
func TestWriterWokenWhenRoomIsWorthIt(t *testing.T) {
	const mss = 1460
	c := NewConn(testID, Config{DelayedAck: -1, SndBuf: 10 * mss}, &nullSender{}, nil)
	c.SetISS(lISS)
	c.Listen(t0)
	syn := seg(SYN, rISS, 0)
	syn.Opts.MSS = mss
	c.SegmentArrives(t0, &syn)
	a := seg(ACK, rISS+1, lISS+1)
	c.SegmentArrives(t0, &a)
	if n, err := c.Write(t0, bytesN(20*mss)); n != 10*mss || err != nil || c.SendSpace() != 0 {
		t.Fatalf("wrote %d (%v), room %d: want a full buffer of %d", n, err, c.SendSpace(), 10*mss)
	}
	c.Flush(t0)
	c.TakeEvents()
	for _, step := range []struct {
		acked    int // segments acknowledged so far
		writable bool
	}{
		{1, false}, // 1460 free, 13140 queued
		{3, false}, // 4380 free, 10220 queued
		{4, true},  // 5840 free, 8760 queued: at least half
		{5, true},
	} {
		ack := seg(ACK, rISS+1, lISS+1+seqnum.Value(step.acked*mss))
		c.SegmentArrives(t0, &ack)
		if got := c.TakeEvents()&EvWritable != 0; got != step.writable {
			t.Errorf("%d of 10 segments acknowledged (room %d): writable %v, want %v", step.acked, c.SendSpace(), got, step.writable)
		}
	}
}
