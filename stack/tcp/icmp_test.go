package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestICMPUnreachableFailsConnect: an ICMP port unreachable quoting our SYN
// ends the connect at once with ECONNREFUSED and no RST (RFC 1122
// §4.2.3.9; Linux's tcp_v4_err in SYN-SENT).
func TestICMPUnreachableFailsConnect(t *testing.T) {
	s := newScript(t, Config{})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	s.advance(10 * time.Millisecond)
	if !s.c.ICMPError(s.now, lISS, syscall.ECONNREFUSED) {
		t.Fatal("an ICMP error quoting our SYN was not taken")
	}
	s.state(Closed)
	s.none()
	if !errors.Is(s.c.Err(), syscall.ECONNREFUSED) {
		t.Fatalf("error %v, want ECONNREFUSED", s.c.Err())
	}
}

// TestICMPOutOfWindowIgnored: an ICMP error quoting a sequence number we
// have not sent is ignored and counted (RFC 5927 §4.1).
func TestICMPOutOfWindowIgnored(t *testing.T) {
	s := newScript(t, Config{})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	if s.c.ICMPError(s.now, lISS+100, syscall.EHOSTUNREACH) {
		t.Fatal("an ICMP error quoting an unsent sequence number was taken")
	}
	s.state(SynSent)
	if s.c.Stats().ICMPOutOfWindow != 1 {
		t.Fatalf("ICMPOutOfWindow %d, want 1", s.c.Stats().ICMPOutOfWindow)
	}
}

// TestICMPSoftErrorReportedOnTimeout: in ESTABLISHED an ICMP error does not
// abort; if the connection then times out, it reports that error instead of
// ETIMEDOUT (Linux's sk_err_soft).
func TestICMPSoftErrorReportedOnTimeout(t *testing.T) {
	s := newScript(t, Config{NoDelay: true, MaxRetries: 2})
	s.activeOpen()
	s.write(bytesN(100))
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesN(100)})
	if !s.c.ICMPError(s.now, lISS+1, syscall.EHOSTUNREACH) {
		t.Fatal("ICMP error for outstanding data not taken")
	}
	s.state(Established)
	s.advance(time.Minute)
	s.state(Closed)
	if !errors.Is(s.c.Err(), syscall.EHOSTUNREACH) {
		t.Fatalf("error %v, want the soft error EHOSTUNREACH", s.c.Err())
	}
}

// TestPathMTULowersSegmentSize: "fragmentation needed" with a next-hop MTU
// of 1000 makes the segments in flight go again at 960 bytes, at once
// (RFC 1191 §6.2; Linux's tcp_simple_retransmit).
func TestPathMTULowersSegmentSize(t *testing.T) {
	s := newScript(t, Config{NoDelay: true})
	s.activeOpen()
	s.write(bytesN(2000))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesAt(0, 1460)})
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1461, Ack: rISS + 1, Payload: bytesAt(1460, 540)})
	if !s.c.PathMTU(s.now, lISS+1, 1000) {
		t.Fatal("fragmentation needed for outstanding data not taken")
	}
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesAt(0, 960)})
	s.out(Segment{Flags: ACK, Seq: lISS + 961, Ack: rISS + 1, Payload: bytesAt(960, 960)})
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1921, Ack: rISS + 1, Payload: bytesAt(1920, 80)})
	s.none()
	if got := s.c.Info().SndMSS; got != 960 {
		t.Fatalf("send MSS %d, want 960", got)
	}
}

// TestPathMTUDuringHandshakeHolds: a "fragmentation needed" that arrives in
// SYN-SENT still bounds the segments once the SYN-ACK brings the peer's MSS.
func TestPathMTUDuringHandshakeHolds(t *testing.T) {
	s := newScript(t, Config{NoDelay: true})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	s.c.PathMTU(s.now, lISS, 1000)
	synack := seg(SYN|ACK, rISS, lISS+1)
	synack.Opts.MSS = 1460
	s.in(synack)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	if got := s.c.Info().SndMSS; got != 960 {
		t.Fatalf("send MSS %d after the handshake, want 960 from the path MTU", got)
	}
}
