package tcp

import (
	"testing"
)

// takeSent drops what the script saw sent and returns the sequence
// offsets (from the ISS) of the data segments among it.
func takeSent(s *script) []int {
	var offs []int
	for _, g := range s.sent {
		if len(g.Payload) > 0 {
			offs = append(offs, int(lISS.Size(g.Seq)))
		}
	}
	s.sent = s.sent[:0]
	return offs
}

// TestPRRSpreadsReduction: one loss in a flight of 20 segments or so, with
// NewReno halving the window. Proportional Rate Reduction (RFC 6937 §3.1)
// lets about one segment out per two the peer reports delivered, from the
// fast retransmit on, instead of silence until the pipe falls below the
// new window; recovery ends with cwnd = ssthresh (RFC 6937 §3).
func TestPRRSpreadsReduction(t *testing.T) {
	const m = 1000
	s := sackOpen(t, Config{NoDelay: true, MSS: m, CC: "newreno"})
	s.write(bytesN(60 * m))
	takeSent(s)
	for i := 1; i <= 10; i++ { // slow start to a 20-segment window
		s.in(sackAck(uint32(i*m + 1)))
	}
	if got := len(takeSent(s)); got != 20 {
		t.Fatalf("slow start sent %d segments, want 20", got)
	}
	// The segment at 10001 is lost; each later one is SACKed.
	var perAck []int
	var sent []int
	for k := 1; k <= 19; k++ {
		s.in(sackAck(10*m+1, blk(11*m+1, (11+k)*m+1)))
		offs := takeSent(s)
		perAck = append(perAck, len(offs))
		sent = append(sent, offs...)
	}
	if !s.c.rec.inRecovery() {
		t.Fatal("not in recovery")
	}
	// The first two SACKs send new data (RFC 6675 §5: limited transmit),
	// so recovery starts with 22 segments out and ssthresh 11: at the
	// third comes the fast retransmit, then about one segment per two
	// delivered, never a burst and never a long silence.
	if perAck[0] != 1 || perAck[1] != 1 || sent[2] != 10*m+1 {
		t.Fatalf("sent %v per ACK %v, want two new segments then the fast retransmit of 10001", sent, perAck)
	}
	total, quiet := 0, 0
	for i, n := range perAck[2:] {
		if n > 1 {
			t.Fatalf("ACK %d let %d segments out at once: %v", i+3, n, perAck)
		}
		if quiet = quiet + 1 - n; n > 0 {
			quiet = 0
		}
		if quiet > 2 {
			t.Fatalf("no segment for three ACKs in a row: %v", perAck)
		}
		total += n
	}
	// 17 segments delivered in recovery, ssthresh/RecoverFS = 1/2.
	if total != 9 {
		t.Fatalf("sent %d segments in recovery (%v), want 9", total, perAck)
	}
	// The cumulative ACK of the whole flight ends recovery.
	s.in(sackAck(32*m + 1))
	if s.c.rec.inRecovery() {
		t.Fatal("still in recovery")
	}
	cc := s.c.snd.cc
	if cc.Cwnd() != cc.Ssthresh() || cc.Ssthresh() != 11*m {
		t.Fatalf("after recovery cwnd %d ssthresh %d, want both %d", cc.Cwnd(), cc.Ssthresh(), 11*m)
	}
}

// TestPRRSlowStartBound: seven of ten segments are lost, so the pipe is
// far below ssthresh when recovery starts. PRR-SSRB (RFC 6937 §3.1) sends
// at most what was delivered plus one segment per ACK, like slow start,
// instead of the whole gap between pipe and ssthresh at once.
func TestPRRSlowStartBound(t *testing.T) {
	const m = 1000
	s := sackOpen(t, Config{NoDelay: true, MSS: m, CC: "newreno"})
	s.write(bytesN(10 * m))
	if got := len(takeSent(s)); got != 10 {
		t.Fatalf("sent %d segments, want 10", got)
	}
	var offs []int
	for k := 1; k <= 3; k++ { // segments 8, 9 and 10 arrive
		s.in(sackAck(1, blk(7*m+1, (7+k)*m+1)))
		offs = append(offs, takeSent(s)...)
	}
	// ssthresh is 5000 and the pipe 0: the old rule sent five segments.
	if len(offs) != 2 || offs[0] != 1 || offs[1] != m+1 {
		t.Fatalf("at recovery start sent %v, want 1 and 1001", offs)
	}
	// Each ACK delivering one segment lets two out.
	for i := 1; i <= 2; i++ {
		s.in(sackAck(uint32(i*m+1), blk(7*m+1, 10*m+1)))
		got := takeSent(s)
		want := []int{(2*i)*m + 1, (2*i+1)*m + 1}
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("ACK of %d sent %v, want %v", i*m+1, got, want)
		}
	}
}
