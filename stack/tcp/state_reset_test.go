package tcp

import (
	"errors"
	"syscall"
	"testing"
)

// TestExactRSTResetsConnection: an RST with SEQ = RCV.NXT closes with
// ECONNRESET (RFC 9293 §3.10.7.4 second, RFC 5961 §3.2).
func TestExactRSTResetsConnection(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.in(seg(RST, rISS+1, 0))
	s.state(Closed)
	s.none()
	if !errors.Is(s.c.Err(), syscall.ECONNRESET) {
		t.Fatalf("err %v, want ECONNRESET", s.c.Err())
	}
}

// TestInWindowRSTGetsChallengeACK: an RST in the window but not at RCV.NXT
// is answered by a challenge ACK and changes nothing (RFC 5961 §3.2).
func TestInWindowRSTGetsChallengeACK(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.in(seg(RST, rISS+1000, 0))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.state(Established)
	if s.c.stats.challengeAcks != 1 {
		t.Fatalf("challenge ACKs %d", s.c.stats.challengeAcks)
	}
}

// TestOutOfWindowRSTIsDropped: an RST outside the window is silently
// dropped (RFC 9293 §3.10.7.4 first, RFC 5961 §3.2).
func TestOutOfWindowRSTIsDropped(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.in(seg(RST, rISS+1+200000, 0))
	s.none()
	s.state(Established)
}

// TestSYNOnEstablishedGetsChallengeACK: a SYN on a synchronized connection
// gets a challenge ACK, whatever its sequence number (RFC 5961 §4.2).
func TestSYNOnEstablishedGetsChallengeACK(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.in(seg(SYN, rISS+100, 0))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.state(Established)
}

// TestUnacceptableSegmentGetsACK: an old duplicate data segment is answered
// with <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (§3.10.7.4 first).
func TestUnacceptableSegmentGetsACK(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.in(seg(ACK, rISS+1, lISS+1, 1, 2, 3))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 4})
	s.in(seg(ACK, rISS+1, lISS+1, 1, 2, 3)) // again
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 4})
	if got := s.read(); len(got) != 3 {
		t.Fatalf("read %d bytes, want 3 (the duplicate must not be delivered twice)", len(got))
	}
}

// TestACKOfUnsentDataIsAnswered: SEG.ACK > SND.NXT gets an ACK and the
// segment is dropped (RFC 9293 §3.10.7.4, RFC 5961 §5.2, and Linux 6.x);
// without data, a second one within 500 ms is not answered.
func TestACKOfUnsentDataIsAnswered(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.in(seg(ACK, rISS+1, lISS+5000, 9, 9))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(ACK, rISS+1, lISS+5000))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(ACK, rISS+1, lISS+5000))
	s.none()
	if s.c.Readable() != 0 {
		t.Fatal("data of a segment with an invalid ACK was delivered")
	}
}

// TestAbortSendsRSTACK: a user abort sends <SEQ=SND.NXT><ACK=RCV.NXT>
// <CTL=RST,ACK> with the window, as Linux's tcp_send_active_reset does
// (RFC 9293 §3.10.5 asks for a reset; Linux adds the ACK).
func TestAbortSendsRSTACK(t *testing.T) {
	s := newScript(t, Config{})
	s.activeOpen()
	s.c.Abort(s.now, "test")
	s.out(Segment{Flags: RST | ACK, Seq: lISS + 1, Ack: rISS + 1, Wnd: 65535})
	s.state(Closed)
}
