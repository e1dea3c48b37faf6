package tcp

import (
	"testing"
	"time"
)

// Segments a connection finds invalid, and how it answers: as Linux does
// where RFC 9293 leaves room (each test says which rule).

// rightEdge is RCV.NXT+RCV.WND after passiveOpen with the default buffer.
func rightEdge(s *script) Segment {
	return seg(ACK, rISS+1+seqnumSize(int(s.c.rcv.window())), lISS+1)
}

// TestPureACKAtRightEdgeIsSilent: a pure ACK numbered exactly RCV.NXT+RCV.WND
// is acceptable, as in Linux's tcp_sequence (inclusive at the right edge);
// RFC 9293 §3.4's strict table would answer it with an ACK.
func TestPureACKAtRightEdgeIsSilent(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.in(rightEdge(s))
	s.none()
	if s.c.stats.droppedUnacceptable != 0 {
		t.Fatal("the ACK at the right edge was counted unacceptable")
	}
}

// TestFINAtRightEdgeAcknowledged: a FIN at the right edge is acceptable but
// nothing of it fits: Linux's tcp_data_queue drops it with an immediate ACK,
// and it is not kept for later.
func TestFINAtRightEdgeAcknowledged(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	f := rightEdge(s)
	f.Flags |= FIN
	s.in(f)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.state(Established)
	if s.c.rcv.ooo.len() != 0 {
		t.Fatal("a FIN beyond the window was queued")
	}
}

// TestOutOfWindowACKsRateLimited: a burst of ten pure ACKs beyond the window
// gets one ACK; the next one 500 ms later gets another (Linux's
// tcp_invalid_ratelimit; RFC 5961 §10 asks for such limits).
func TestOutOfWindowACKsRateLimited(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	beyond := rightEdge(s)
	beyond.Seq += 1
	for i := 0; i < 10; i++ {
		s.in(beyond)
		s.advance(10 * time.Millisecond)
	}
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.none()
	s.at(oowInterval)
	s.in(beyond)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	if got := s.c.Stats().OOWACKsLimited; got != 9 {
		t.Fatalf("OOWACKsLimited %d, want 9", got)
	}
}

// TestOutOfWindowDataAlwaysAnswered: segments with data beyond the window
// are each answered: they cannot be part of an ACK loop (Linux's
// tcp_oow_rate_limited exempts them).
func TestOutOfWindowDataAlwaysAnswered(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	beyond := rightEdge(s)
	beyond.Seq += 1
	beyond.Payload = []byte{1, 2, 3}
	for i := 0; i < 3; i++ {
		s.in(beyond)
		s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	}
	s.none()
}

// TestRSTNumberedLikeFINResets: after the peer's FIN, an RST numbered like
// the FIN (RCV.NXT-1) resets the connection in CLOSE-WAIT (Linux's
// tcp_reset_check), where RFC 5961 §3.2 would send a challenge ACK.
func TestRSTNumberedLikeFINResets(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.in(seg(FIN|ACK, rISS+1, lISS+1))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 2})
	s.state(CloseWait)
	s.in(seg(RST, rISS+1, 0))
	s.none()
	s.state(Closed)
}

// TestTimeWaitBareACKRestarts2MSL: in TIME-WAIT a bare ACK at RCV.NXT
// restarts the 2*MSL timer silently, as Linux's tcp_timewait_state_process
// does.
func TestTimeWaitBareACKRestarts2MSL(t *testing.T) {
	const msl = 10 * time.Second
	s := timeWaitScript(t, msl)
	s.at(15 * time.Second)
	s.in(seg(ACK, rISS+2, lISS+2))
	s.none()
	s.at(15*time.Second + 2*msl - time.Nanosecond)
	s.state(TimeWait)
	s.at(15*time.Second + 2*msl)
	s.state(Closed)
}
