package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestActiveOpenThreeWayHandshake: SYN seq=x; SYN+ACK seq=y ack=x+1; ACK
// ack=y+1. RFC 9293 §3.5, §3.10.7.3.
func TestActiveOpenThreeWayHandshake(t *testing.T) {
	s := newScript(t, Config{MSS: 1460})
	s.c.Connect(s.now, lISS)
	s.state(SynSent)
	s.out(Segment{Flags: SYN, Seq: lISS, Wnd: 65535, Opts: s.sent[0].Opts})
	synack := seg(SYN|ACK, rISS, lISS+1)
	synack.Opts.MSS = 1400
	s.in(synack)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Wnd: 65535})
	s.state(Established)
	s.none()
	if got := s.transitions(); got != "CLOSED>SYN-SENT SYN-SENT>ESTABLISHED " {
		t.Fatalf("transitions %q", got)
	}
	if s.c.Info().SndMSS != 1400 {
		t.Fatalf("send MSS %d, want the peer's 1400", s.c.Info().SndMSS)
	}
}

// TestSYNCarriesMSSOption: our SYN announces the MSS we can receive
// (RFC 9293 §3.7.1).
func TestSYNCarriesMSSOption(t *testing.T) {
	s := newScript(t, Config{MSS: 1200})
	s.c.Connect(s.now, lISS)
	got := s.out(Segment{Flags: SYN, Seq: lISS})
	if got.Opts.MSS != 1200 {
		t.Fatalf("SYN MSS option %d, want 1200", got.Opts.MSS)
	}
}

// TestPassiveOpenThreeWayHandshake: LISTEN → SYN-RECEIVED → ESTABLISHED.
// RFC 9293 §3.10.7.2, §3.10.7.4 fifth.
func TestPassiveOpenThreeWayHandshake(t *testing.T) {
	s := newScript(t, Config{})
	s.c.SetISS(lISS)
	s.c.Listen(s.now)
	syn := seg(SYN, rISS, 0)
	syn.Opts.MSS = 1460
	s.in(syn)
	s.state(SynReceived)
	got := s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1, Wnd: 65535})
	if got.Opts.MSS != DefaultMSS {
		t.Fatalf("SYN-ACK MSS %d", got.Opts.MSS)
	}
	s.in(seg(ACK, rISS+1, lISS+1))
	s.state(Established)
	s.none()
	if got := s.transitions(); got != "LISTEN>SYN-RECEIVED SYN-RECEIVED>ESTABLISHED " {
		t.Fatalf("transitions %q", got)
	}
}

// TestListenAnswersACKWithReset: an ACK to a LISTEN TCB gets
// <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.2 second).
func TestListenAnswersACKWithReset(t *testing.T) {
	s := newScript(t, Config{})
	s.c.Listen(s.now)
	s.in(seg(ACK, rISS, 777))
	s.out(Segment{Flags: RST, Seq: 777})
	s.state(Listen)
}

// TestSYNToClosedPort: no connection: RST|ACK with ACK=SEG.SEQ+SEG.LEN for a
// segment without ACK; RST with SEQ=SEG.ACK for one with ACK; nothing for an
// RST (RFC 9293 §3.10.7.1).
func TestSYNToClosedPort(t *testing.T) {
	syn := seg(SYN, rISS, 0)
	r, ok := ResetFor(&syn)
	if !ok || r.Flags != RST|ACK || r.Seq != 0 || r.Ack != rISS+1 {
		t.Fatalf("reset for SYN: %v", &r)
	}
	data := seg(ACK|PSH, rISS, 4242, 1, 2, 3)
	r, ok = ResetFor(&data)
	if !ok || r.Flags != RST || r.Seq != 4242 {
		t.Fatalf("reset for ACK segment: %v", &r)
	}
	finNoAck := seg(FIN, rISS, 0, 1, 2)
	r, _ = ResetFor(&finNoAck)
	if r.Ack != rISS+3 {
		t.Fatalf("reset ACK for FIN with 2 bytes: %d, want SEG.SEQ+SEG.LEN=%d", r.Ack, rISS+3)
	}
	rst := seg(RST, rISS, 0)
	if _, ok := ResetFor(&rst); ok {
		t.Fatal("an RST must never be answered with an RST")
	}
}

// TestSimultaneousOpen: both sides send SYN; each goes SYN-SENT →
// SYN-RECEIVED → ESTABLISHED (RFC 9293 Figure 8).
func TestSimultaneousOpen(t *testing.T) {
	s := newScript(t, Config{})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	s.in(seg(SYN, rISS, 0)) // the peer's SYN crosses ours
	s.state(SynReceived)
	s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
	s.in(seg(SYN|ACK, rISS, lISS+1)) // the peer's SYN-ACK
	s.state(Established)
	s.none()
	if got := s.transitions(); got != "CLOSED>SYN-SENT SYN-SENT>SYN-RECEIVED SYN-RECEIVED>ESTABLISHED " {
		t.Fatalf("transitions %q", got)
	}
}

// TestSynSentBadACKGetsReset: an ACK in SYN-SENT that does not acknowledge
// our SYN gets <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.3 first).
func TestSynSentBadACKGetsReset(t *testing.T) {
	s := newScript(t, Config{})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	s.in(seg(SYN|ACK, rISS, lISS+50))
	s.out(Segment{Flags: RST, Seq: lISS + 50})
	s.state(SynSent)
}

// TestConnectionRefused: an RST with an acceptable ACK in SYN-SENT closes
// with ECONNREFUSED (RFC 9293 §3.10.7.3 second).
func TestConnectionRefused(t *testing.T) {
	s := newScript(t, Config{})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	s.in(seg(RST|ACK, 0, lISS+1))
	s.state(Closed)
	if !errors.Is(s.c.Err(), syscall.ECONNREFUSED) {
		t.Fatalf("err %v, want ECONNREFUSED", s.c.Err())
	}
	s.none()
}

// TestSYNRetransmissionAndLimit: the SYN is resent with a doubling RTO
// (1s, 2s, 4s, ...) and after MaxSynRetries the connect fails with
// ETIMEDOUT (RFC 6298 §5.5, RFC 9293 §3.8.3).
func TestSYNRetransmissionAndLimit(t *testing.T) {
	s := newScript(t, Config{MaxSynRetries: 3})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	at := time.Duration(0)
	for i, gap := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		s.at(at + gap - time.Millisecond)
		s.none()
		s.at(at + gap)
		s.out(Segment{Flags: SYN, Seq: lISS})
		at += gap
		_ = i
	}
	s.at(at + 8*time.Second - time.Millisecond)
	s.state(SynSent)
	s.at(at + 8*time.Second)
	s.state(Closed)
	if !errors.Is(s.c.Err(), syscall.ETIMEDOUT) {
		t.Fatalf("err %v, want ETIMEDOUT", s.c.Err())
	}
}

// TestRSTInSynReceivedReturnsToListen: the old-duplicate-SYN case (RFC 9293
// Figure 9, §3.10.7.4 second): a passive SYN-RECEIVED TCB that gets an RST
// goes back to LISTEN and never becomes a connection.
func TestRSTInSynReceivedReturnsToListen(t *testing.T) {
	s := newScript(t, Config{})
	s.c.SetISS(lISS)
	s.c.Listen(s.now)
	s.in(seg(SYN, rISS, 0))
	s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
	s.in(seg(RST, rISS+1, 0))
	s.state(Listen)
	s.none()
	if ev := s.c.TakeEvents(); ev&EvEstablished != 0 {
		t.Fatal("a reset SYN-RECEIVED connection reported ESTABLISHED")
	}
	if got := s.transitions(); got != "LISTEN>SYN-RECEIVED SYN-RECEIVED>LISTEN " {
		t.Fatalf("transitions %q", got)
	}
}

// TestSynReceivedRetransmitsSynAckOnDuplicateSYN: the peer lost our SYN-ACK
// and resends its SYN.
func TestSynReceivedRetransmitsSynAckOnDuplicateSYN(t *testing.T) {
	s := newScript(t, Config{})
	s.c.SetISS(lISS)
	s.c.Listen(s.now)
	s.in(seg(SYN, rISS, 0))
	s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
	s.in(seg(SYN, rISS, 0))
	s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
	s.state(SynReceived)
}
