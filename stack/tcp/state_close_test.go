package tcp

import (
	"bytes"
	"testing"
	"time"
)

// TestActiveCloseThroughTimeWait: FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT, which
// lasts exactly 2*MSL, then CLOSED. The FIN consumes one sequence number.
// RFC 9293 §3.6, §3.10.7.4.
func TestActiveCloseThroughTimeWait(t *testing.T) {
	const msl = 5 * time.Second
	s := newScript(t, Config{MSL: msl})
	s.activeOpen()
	s.c.Close(s.now)
	s.state(FinWait1)
	s.out(Segment{Flags: FIN | ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(ACK, rISS+1, lISS+2)) // the FIN's sequence number is acknowledged
	s.state(FinWait2)
	s.none()
	s.at(time.Second)
	s.in(seg(FIN|ACK, rISS+1, lISS+2))
	s.state(TimeWait)
	s.out(Segment{Flags: ACK, Seq: lISS + 2, Ack: rISS + 2})
	s.at(time.Second + 2*msl - time.Nanosecond)
	s.state(TimeWait)
	s.at(time.Second + 2*msl)
	s.state(Closed)
	s.none()
	want := "CLOSED>SYN-SENT SYN-SENT>ESTABLISHED ESTABLISHED>FIN-WAIT-1 FIN-WAIT-1>FIN-WAIT-2 FIN-WAIT-2>TIME-WAIT TIME-WAIT>CLOSED "
	if got := s.transitions(); got != want {
		t.Fatalf("transitions %q", got)
	}
	if last := s.trace[len(s.trace)-1]; last.Cause != "timer 2*MSL" || !last.Time.Equal(t0.Add(time.Second+2*msl)) {
		t.Fatalf("TIME-WAIT ended at %v by %q", last.Time.Sub(t0), last.Cause)
	}
}

// TestTimeWaitRetransmittedFINRestarts2MSL: the last ACK was lost; the
// peer's FIN comes again; TIME-WAIT acknowledges it again and restarts the
// 2*MSL timer (RFC 9293 §3.10.7.4 eighth).
func TestTimeWaitRetransmittedFINRestarts2MSL(t *testing.T) {
	const msl = 10 * time.Second
	s := timeWaitScript(t, msl)
	s.at(15 * time.Second)
	s.in(seg(FIN|ACK, rISS+1, lISS+2)) // retransmitted FIN
	s.out(Segment{Flags: ACK, Seq: lISS + 2, Ack: rISS + 2})
	s.state(TimeWait)
	s.at(15*time.Second + 2*msl - time.Nanosecond)
	s.state(TimeWait) // would have ended at 20 s without the restart
	s.at(15*time.Second + 2*msl)
	s.state(Closed)
}

// TestPassiveCloseThroughCloseWaitAndLastAck: the peer closes first: ACK its
// FIN, CLOSE-WAIT (reads see EOF), our close sends FIN, LAST-ACK, CLOSED on
// its ACK. The passive side never enters TIME-WAIT. RFC 9293 §3.6.
func TestPassiveCloseThroughCloseWaitAndLastAck(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.in(seg(FIN|ACK, rISS+1, lISS+1))
	s.state(CloseWait)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 2})
	if !s.c.EOF() {
		t.Fatal("no EOF after the peer's FIN")
	}
	s.write([]byte("bye")) // a half-closed peer still receives
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 2, Payload: []byte("bye")})
	s.in(seg(ACK, rISS+2, lISS+4))
	s.c.Close(s.now)
	s.state(LastAck)
	s.out(Segment{Flags: FIN | ACK, Seq: lISS + 4, Ack: rISS + 2})
	s.in(seg(ACK, rISS+2, lISS+5))
	s.state(Closed)
	s.none()
}

// TestSimultaneousCloseThroughClosing: both FINs cross: FIN-WAIT-1 →
// CLOSING → TIME-WAIT (RFC 9293 Figure 13).
func TestSimultaneousCloseThroughClosing(t *testing.T) {
	s := newScript(t, Config{MSL: time.Second})
	s.activeOpen()
	s.c.Close(s.now)
	s.out(Segment{Flags: FIN | ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(FIN|ACK, rISS+1, lISS+1)) // the peer's FIN, not acking ours
	s.state(Closing)
	s.out(Segment{Flags: ACK, Seq: lISS + 2, Ack: rISS + 2})
	s.in(seg(ACK, rISS+2, lISS+2))
	s.state(TimeWait)
	s.at(2 * time.Second)
	s.state(Closed)
	want := "ESTABLISHED>FIN-WAIT-1 FIN-WAIT-1>CLOSING CLOSING>TIME-WAIT TIME-WAIT>CLOSED "
	if got := s.transitions(); got[len(got)-len(want):] != want {
		t.Fatalf("transitions %q", got)
	}
}

// TestFINWithACKOfOurFINGoesStraightToTimeWait: FIN-WAIT-1 receiving a
// FIN that also acknowledges our FIN enters TIME-WAIT (§3.10.7.4 eighth).
func TestFINWithACKOfOurFINGoesStraightToTimeWait(t *testing.T) {
	s := newScript(t, Config{})
	s.activeOpen()
	s.c.Close(s.now)
	s.out(Segment{Flags: FIN | ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(FIN|ACK, rISS+1, lISS+2))
	s.state(TimeWait)
	s.out(Segment{Flags: ACK, Seq: lISS + 2, Ack: rISS + 2})
}

// TestHalfCloseKeepsReceiving: after CloseWrite, data from the peer is still
// delivered in FIN-WAIT-2 (RFC 9293 §3.10.4).
func TestHalfCloseKeepsReceiving(t *testing.T) {
	s := newScript(t, Config{})
	s.activeOpen()
	s.c.CloseWrite(s.now)
	s.out(Segment{Flags: FIN | ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(ACK, rISS+1, lISS+2))
	s.state(FinWait2)
	s.in(seg(ACK|PSH, rISS+1, lISS+2, []byte("still here")...))
	s.out(Segment{Flags: ACK, Seq: lISS + 2, Ack: rISS + 11})
	if got := s.read(); !bytes.Equal(got, []byte("still here")) {
		t.Fatalf("read %q after half-close", got)
	}
	if _, err := s.c.Write(s.now, []byte("x")); err == nil {
		t.Fatal("Write after CloseWrite succeeded")
	}
}

// TestFINWaitsForQueuedData: the FIN follows all queued data and rides on
// the last segment.
func TestFINWaitsForQueuedData(t *testing.T) {
	s := newScript(t, Config{})
	s.activeOpen()
	s.write(bytesN(100))
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesN(100)})
	s.c.Close(s.now)
	s.out(Segment{Flags: FIN | ACK, Seq: lISS + 101, Ack: rISS + 1})
	s.in(seg(ACK, rISS+1, lISS+102))
	s.state(FinWait2)
}

// TestCloseWithUnreadDataResets: closing with unread received data aborts
// with RST (RFC 2525 §2.17, as Linux).
func TestCloseWithUnreadDataResets(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.in(seg(ACK|PSH, rISS+1, lISS+1, 1, 2, 3))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 4})
	s.c.Close(s.now)
	s.out(Segment{Flags: RST | ACK, Seq: lISS + 1, Ack: rISS + 4})
	s.state(Closed)
}

// TestOrphanFinWait2TimesOut: a fully closed connection does not wait in
// FIN-WAIT-2 forever for a peer that never closes.
func TestOrphanFinWait2TimesOut(t *testing.T) {
	s := newScript(t, Config{FinWait2Timeout: 30 * time.Second})
	s.activeOpen()
	s.c.Close(s.now)
	s.out(Segment{Flags: FIN | ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(ACK, rISS+1, lISS+2))
	s.state(FinWait2)
	s.at(30*time.Second - time.Nanosecond)
	s.state(FinWait2)
	s.at(30 * time.Second)
	s.state(Closed)
}

// TestNoWindowUpdateAfterPeerFIN: reading data that arrived before the
// peer's FIN sends no window update: the peer will send nothing more.
func TestNoWindowUpdateAfterPeerFIN(t *testing.T) {
	s := newScript(t, Config{RcvBuf: 4000, MSS: 1000, MSL: time.Second})
	s.activeOpen()
	s.c.CloseWrite(s.now)
	s.out(Segment{Flags: FIN | ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.inBatch(seg(ACK, rISS+1, lISS+2, bytesN(1000)...), seg(ACK, rISS+1001, lISS+2, bytesN(1000)...),
		seg(ACK, rISS+2001, lISS+2, bytesN(1000)...), seg(FIN|ACK, rISS+3001, lISS+2))
	s.state(TimeWait)
	s.sent = s.sent[:0]
	s.read()
	s.none()
}

// TestTimeWaitNewSYNReopens: a SYN beyond the old connection's sequence
// space ends TIME-WAIT so that a new connection can start (RFC 6191); an
// old one is answered with a challenge ACK and TIME-WAIT stays.
func TestTimeWaitNewSYNReopens(t *testing.T) {
	s := newScript(t, Config{})
	s.activeOpen()
	s.c.Close(s.now)
	s.out(Segment{Flags: FIN | ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(FIN|ACK, rISS+1, lISS+2))
	s.out(Segment{Flags: ACK, Seq: lISS + 2, Ack: rISS + 2})
	old := seg(SYN, rISS, 0)
	if s.c.ReopenFromTimeWait(s.now, &old) {
		t.Fatal("an old SYN reopened TIME-WAIT")
	}
	s.state(TimeWait)
	fresh := seg(SYN, rISS+100000, 0)
	if !s.c.ReopenFromTimeWait(s.now, &fresh) {
		t.Fatal("a new SYN did not end TIME-WAIT")
	}
	s.state(Closed)
}

// timeWaitScript is a connection we closed first, now in TIME-WAIT: our FIN
// acknowledged with the peer's FIN, and our last ACK sent.
func timeWaitScript(t *testing.T, msl time.Duration) *script {
	t.Helper()
	s := newScript(t, Config{MSL: msl})
	s.activeOpen()
	s.c.Close(s.now)
	s.out(Segment{Flags: FIN | ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.in(seg(FIN|ACK, rISS+1, lISS+2))
	s.state(TimeWait)
	s.out(Segment{Flags: ACK, Seq: lISS + 2, Ack: rISS + 2})
	return s
}
