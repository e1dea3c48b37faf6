package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestUserTimeoutAbortsUnacknowledgedData: with TCP_USER_TIMEOUT 3 s, data
// unacknowledged ends the connection 3 s after its first timeout
// retransmission (Linux counts from retrans_stamp), before the retry count
// would (RFC 5482 §3); the last retransmission timer is clamped to that
// deadline (Linux's tcp_clamp_rto_to_user_timeout), and no RST is sent.
func TestUserTimeoutAbortsUnacknowledgedData(t *testing.T) {
	s := newScript(t, Config{NoDelay: true, UserTimeout: 3 * time.Second})
	s.activeOpen()
	s.write(bytesN(10))
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesN(10)})
	first := s.c.NextDeadline().Sub(t0) // the first timeout retransmission
	s.at(first)
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesN(10)})
	s.at(first + 3*time.Second - time.Millisecond)
	s.state(Established)
	s.sent = s.sent[:0]
	s.at(first + 3*time.Second)
	s.none()
	s.state(Closed)
	if !errors.Is(s.c.Err(), syscall.ETIMEDOUT) {
		t.Fatalf("error %v, want ETIMEDOUT", s.c.Err())
	}
}

// TestUserTimeoutCountsFromOldestUnacknowledged: an ACK that moves SND.UNA
// restarts the user timeout.
func TestUserTimeoutCountsFromOldestUnacknowledged(t *testing.T) {
	s := newScript(t, Config{NoDelay: true, UserTimeout: 3 * time.Second, MSS: 1000})
	s.activeOpen()
	s.write(bytesN(2000))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesAt(0, 1000)})
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1001, Ack: rISS + 1, Payload: bytesAt(1000, 1000)})
	s.at(2 * time.Second) // retransmissions since 0.2 s
	s.in(seg(ACK, rISS+1, lISS+1001))
	s.at(3*time.Second + 500*time.Millisecond)
	s.state(Established) // 3.2 s would have ended it without the ACK
	s.at(10 * time.Second)
	s.state(Closed)
	if !errors.Is(s.c.Err(), syscall.ETIMEDOUT) {
		t.Fatalf("error %v, want ETIMEDOUT", s.c.Err())
	}
}

// TestUserTimeoutEndsZeroWindowProbing: the user timeout also bounds
// zero-window probing (Linux's tcp_probe_timer).
func TestUserTimeoutEndsZeroWindowProbing(t *testing.T) {
	s := newScript(t, Config{NoDelay: true, UserTimeout: 10 * time.Second})
	s.activeOpen()
	z := seg(ACK, rISS+1, lISS+1)
	z.Wnd = 0
	s.in(z)
	s.write([]byte("x"))
	s.advance(9 * time.Second)
	s.state(Established)
	s.advance(30 * time.Second)
	s.state(Closed)
	if !errors.Is(s.c.Err(), syscall.ETIMEDOUT) {
		t.Fatalf("error %v, want ETIMEDOUT", s.c.Err())
	}
}

// TestCorkHoldsPartialSegments: while corked a partial segment waits, even
// with nothing in flight; full segments go; uncorking sends the rest
// (TCP_CORK).
func TestCorkHoldsPartialSegments(t *testing.T) {
	s := newScript(t, Config{NoDelay: true, MSS: 1000})
	s.activeOpen()
	s.c.SetCork(s.now, true)
	s.write(bytesN(1500))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesAt(0, 1000)})
	s.none()
	s.in(seg(ACK, rISS+1, lISS+1001))
	s.none()
	s.c.SetCork(s.now, false)
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1001, Ack: rISS + 1, Payload: bytesAt(1000, 500)})
}

// TestSetBuffersOpensWindow: a larger receive buffer after the handshake
// opens the window with an update at once (SO_RCVBUF).
func TestSetBuffersOpensWindow(t *testing.T) {
	s := newScript(t, Config{RcvBuf: 4000, MSS: 1000, NoWindowScale: true})
	s.passiveOpen()
	s.c.SetBuffers(s.now, 20000, 0)
	got := s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	if got.Wnd != 20000 {
		t.Fatalf("window %d after SetBuffers(20000), want 20000", got.Wnd)
	}
}

// TestCloseReadDropsData: after CloseRead, reads see EOF and arriving data
// is acknowledged and dropped: the window stays open.
func TestCloseReadDropsData(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.c.CloseRead(s.now)
	s.in(seg(ACK|PSH, rISS+1, lISS+1, bytesN(100)...))
	s.in(seg(ACK|PSH, rISS+101, lISS+1, bytesN(100)...))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 101})
	got := s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 201})
	if edge := rISS + 201 + seqnumSize(int(got.Wnd)); edge != rISS+1+65535 {
		t.Fatalf("right edge %d, want it where it was (nothing is buffered)", edge)
	}
	if s.c.Readable() != 0 || !s.c.ReadClosed() {
		t.Fatal("data kept after CloseRead")
	}
}

// TestTakeErrorOnce: SO_ERROR returns the connection's error once, then the
// soft error if any, then nil.
func TestTakeErrorOnce(t *testing.T) {
	s := newScript(t, Config{})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	s.in(seg(RST|ACK, 0, lISS+1))
	if err := s.c.TakeError(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("first TakeError %v, want ECONNREFUSED", err)
	}
	if err := s.c.TakeError(); err != nil {
		t.Fatalf("second TakeError %v, want nil", err)
	}
}

// TestInfoCAState: TCP_INFO's congestion state follows loss recovery: open,
// disorder on a duplicate ACK, recovery on the third, loss after a timeout.
func TestInfoCAState(t *testing.T) {
	s := newScript(t, Config{NoDelay: true, MSS: 1000})
	s.activeOpen()
	s.write(bytesN(5000))
	if st := s.c.Info().CAState; st != CAOpen {
		t.Fatalf("state %v, want open", st)
	}
	dup := seg(ACK, rISS+1, lISS+1)
	s.in(dup)
	if st := s.c.Info().CAState; st != CADisorder {
		t.Fatalf("after one duplicate ACK: %v, want disorder", st)
	}
	s.in(dup)
	s.in(dup)
	if st := s.c.Info().CAState; st != CARecovery {
		t.Fatalf("after three duplicate ACKs: %v, want recovery", st)
	}
	s.advance(s.c.NextDeadline().Sub(s.now))
	if st := s.c.Info().CAState; st != CALoss {
		t.Fatalf("after a timeout: %v, want loss", st)
	}
}

// TestUserTimeoutBoundsKeepalive: with TCP_USER_TIMEOUT, keepalive gives up
// once the peer has been silent that long and a probe went unanswered,
// however many probes the count allows (Linux's tcp_keepalive_timer).
func TestUserTimeoutBoundsKeepalive(t *testing.T) {
	s := newScript(t, Config{UserTimeout: 100 * time.Second})
	s.activeOpen()
	s.c.SetKeepAlive(s.now, true, 60*time.Second, 30*time.Second, 9)
	s.at(60 * time.Second)
	s.out(Segment{Flags: ACK, Seq: lISS, Ack: rISS + 1}) // probe 1 (60 s silent)
	s.at(90 * time.Second)
	s.out(Segment{Flags: ACK, Seq: lISS, Ack: rISS + 1}) // probe 2 (90 s)
	s.at(120 * time.Second)                              // 120 s silent >= 100 s: give up
	s.out(Segment{Flags: RST | ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.state(Closed)
	if !errors.Is(s.c.Err(), syscall.ETIMEDOUT) {
		t.Fatalf("error %v, want ETIMEDOUT", s.c.Err())
	}
}
