package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestKeepaliveDeadPeer: after the idle time a probe <SEQ=SND.NXT-1>
// <ACK=RCV.NXT> goes out, then one every interval; after count unanswered
// probes the connection is aborted with an RST and ETIMEDOUT (RFC 1122
// §4.2.3.6).
func TestKeepaliveDeadPeer(t *testing.T) {
	const idle, intvl, count = 2 * time.Hour, 75 * time.Second, 10
	s := newScript(t, Config{KeepAlive: true})
	s.passiveOpen()
	probe := Segment{Flags: ACK, Seq: lISS, Ack: rISS + 1} // SND.NXT-1
	s.at(idle - time.Millisecond)
	s.none()
	for i := 0; i < count; i++ {
		at := idle + time.Duration(i)*intvl
		s.at(at - time.Millisecond)
		s.none()
		s.at(at)
		s.out(probe)
	}
	abortAt := idle + count*intvl
	s.at(abortAt - time.Millisecond)
	s.state(Established)
	s.at(abortAt)
	// Linux's tcp_keepalive_timer: an active reset (RST|ACK), then ETIMEDOUT.
	s.out(Segment{Flags: RST | ACK, Seq: lISS + 1, Ack: rISS + 1, Wnd: 65535})
	s.state(Closed)
	if !errors.Is(s.c.Err(), syscall.ETIMEDOUT) {
		t.Fatalf("err %v, want ETIMEDOUT", s.c.Err())
	}
	if s.c.stats.keepaliveProbes != count {
		t.Fatalf("%d probes, want %d", s.c.stats.keepaliveProbes, count)
	}
}

// TestKeepaliveLivePeer: a peer that answers the probes keeps the
// connection: any segment from it resets the count and the idle time.
func TestKeepaliveLivePeer(t *testing.T) {
	s := newScript(t, Config{KeepAlive: true, KeepIdle: time.Minute, KeepInterval: 10 * time.Second, KeepCount: 3})
	s.passiveOpen()
	for round := 0; round < 5; round++ {
		base := time.Duration(round) * (time.Minute + 15*time.Second)
		s.at(base + time.Minute)
		s.out(Segment{Flags: ACK, Seq: lISS, Ack: rISS + 1})
		s.at(base + time.Minute + 10*time.Second)
		s.out(Segment{Flags: ACK, Seq: lISS, Ack: rISS + 1})
		s.at(base + time.Minute + 15*time.Second)
		s.in(seg(ACK, rISS+1, lISS+1)) // the answer to the probe
		s.none()
	}
	s.state(Established)
}

// TestKeepaliveOffByDefault: no probes without SetKeepAlive.
func TestKeepaliveOffByDefault(t *testing.T) {
	s := newScript(t, Config{})
	s.passiveOpen()
	s.at(10 * time.Hour)
	s.none()
	s.c.SetKeepAlive(s.now, true, time.Minute, time.Second, 2)
	s.at(10*time.Hour + time.Minute)
	s.out(Segment{Flags: ACK, Seq: lISS, Ack: rISS + 1})
}
