package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestDataRetransmissionDoublesRTOAndAborts: unacknowledged data is resent
// at RTO, 2*RTO, 4*RTO ... (RFC 6298 §5.5) up to MaxRetries, then the
// connection is aborted with ETIMEDOUT (RFC 9293 §3.8.3).
func TestDataRetransmissionDoublesRTOAndAborts(t *testing.T) {
	s := newScript(t, Config{MaxRetries: 4, InitialRTO: time.Second, MaxRTO: 60 * time.Second})
	s.activeOpen()
	s.write([]byte("hello"))
	data := Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: []byte("hello")}
	s.out(data)
	// The handshake measured an RTT of 0 in virtual time: RTO = MinRTO... but
	// the first sample sets RTO = SRTT + 4*RTTVAR clamped to 200 ms.
	rto := s.c.Info().RTO
	if rto != DefaultMinRTO {
		t.Fatalf("RTO after a zero-RTT handshake = %v, want the %v floor", rto, DefaultMinRTO)
	}
	at := time.Duration(0)
	for i := 0; i < 4; i++ {
		s.at(at + rto - time.Millisecond)
		s.none()
		s.at(at + rto)
		s.out(data)
		at += rto
		rto *= 2
	}
	s.at(at + rto - time.Millisecond)
	s.state(Established)
	s.at(at + rto)
	s.none() // no RST to a peer that is gone (Linux's tcp_write_err)
	s.state(Closed)
	if !errors.Is(s.c.Err(), syscall.ETIMEDOUT) {
		t.Fatalf("err %v, want ETIMEDOUT", s.c.Err())
	}
	if s.c.snd.stats.retransmits != 4 {
		t.Fatalf("retransmits %d, want 4", s.c.snd.stats.retransmits)
	}
}

// TestRTOEstimateFromSamples: SRTT/RTTVAR follow RFC 6298 §2.2–2.3 and the
// RTO is SRTT + 4*RTTVAR.
func TestRTOEstimateFromSamples(t *testing.T) {
	s := newScript(t, Config{})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	s.at(100 * time.Millisecond)
	s.in(seg(SYN|ACK, rISS, lISS+1))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	i := s.c.Info()
	if i.SRTT != 100*time.Millisecond || i.RTTVar != 50*time.Millisecond || i.RTO != 300*time.Millisecond {
		t.Fatalf("after R=100ms: srtt %v rttvar %v rto %v", i.SRTT, i.RTTVar, i.RTO)
	}
	s.write([]byte("x"))
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: []byte("x")})
	s.advance(200 * time.Millisecond)
	s.in(seg(ACK, rISS+1, lISS+2))
	i = s.c.Info()
	// R'=200ms: RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5ms; SRTT = 7/8*100 + 1/8*200 = 112.5ms.
	if i.SRTT != 112500*time.Microsecond || i.RTTVar != 62500*time.Microsecond || i.RTO != 362500*time.Microsecond {
		t.Fatalf("after R=200ms: srtt %v rttvar %v rto %v", i.SRTT, i.RTTVar, i.RTO)
	}
}

// TestKarnNoSampleFromRetransmission: an ACK for a retransmitted segment
// gives no RTT sample (Karn's rule, RFC 6298 §3), and the backed-off RTO
// stays until a fresh sample.
func TestKarnNoSampleFromRetransmission(t *testing.T) {
	s := newScript(t, Config{})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	s.at(time.Second)
	s.out(Segment{Flags: SYN, Seq: lISS}) // retransmitted
	s.at(time.Second + 10*time.Millisecond)
	s.in(seg(SYN|ACK, rISS, lISS+1))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	if i := s.c.Info(); i.SRTT != 0 || i.RTO != 2*time.Second {
		t.Fatalf("srtt %v rto %v: want no sample and the backed-off 2s", i.SRTT, i.RTO)
	}
}

// TestFastRetransmitAfterThreeDupACKs: the third duplicate ACK resends the
// first unacknowledged segment at once (RFC 5681 §3.2).
func TestFastRetransmitAfterThreeDupACKs(t *testing.T) {
	s := newScript(t, Config{NoDelay: true})
	s.activeOpen()
	s.write(bytesN(5 * 1460))
	for i := 0; i < 5; i++ {
		s.out(Segment{Flags: ACK | map[bool]uint8{true: PSH}[i == 4], Seq: lISS + 1 + seqnumSize(i*1460), Ack: rISS + 1, Payload: bytesAt(i*1460, 1460)})
	}
	for i := 0; i < 2; i++ {
		s.in(seg(ACK, rISS+1, lISS+1))
		s.none()
	}
	s.in(seg(ACK, rISS+1, lISS+1))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesN(1460)})
	if s.c.snd.stats.retransmits != 1 {
		t.Fatalf("retransmits %d", s.c.snd.stats.retransmits)
	}
}
