package tcp

import (
	"testing"
	"time"
)

type nullSender struct{ n int }

func (s *nullSender) Send(_ *Conn, seg *Segment) { s.n++ }

// established returns a connection in ESTABLISHED fed directly (no script
// bookkeeping), for benchmarks.
func established(tb testing.TB, out Sender) *Conn {
	c := NewConn(testID, Config{DelayedAck: -1}, out, nil)
	c.SetISS(lISS)
	c.Listen(t0)
	syn := seg(SYN, rISS, 0)
	syn.Opts.MSS = 1460
	c.SegmentArrives(t0, &syn)
	a := seg(ACK, rISS+1, lISS+1)
	c.SegmentArrives(t0, &a)
	if c.State() != Established {
		tb.Fatal("not established")
	}
	return c
}

// BenchmarkEstablishedInput: in-order data segments arriving, read by the
// application, acknowledged once per two segments: the receive hot path.
func BenchmarkEstablishedInput(b *testing.B) {
	out := &nullSender{}
	c := established(b, out)
	payload := bytesN(1460)
	buf := make([]byte, 4096)
	seq := rISS + 1
	now := t0
	b.SetBytes(1460)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g := seg(ACK, seq, lISS+1, payload...)
		c.SegmentArrives(now, &g)
		c.Flush(now)
		c.Read(now, buf)
		seq = seq.Add(1460)
	}
}

// BenchmarkSendAndAck: application writes, segments leave, ACKs come back:
// the send hot path.
func BenchmarkSendAndAck(b *testing.B) {
	out := &nullSender{}
	c := established(b, out)
	c.noDelay = true
	payload := bytesN(1460)
	now := t0
	b.SetBytes(1460)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Write(now, payload)
		a := seg(ACK, rISS+1, c.snd.nxt)
		c.SegmentArrives(now, &a)
		now = now.Add(time.Microsecond)
	}
}

// TestSteadyStateAllocatesNothing: segment processing in steady state
// allocates nothing (docs/design.md "Memory").
func TestSteadyStateAllocatesNothing(t *testing.T) {
	out := &nullSender{}
	c := established(t, out)
	payload := bytesN(1460)
	buf := make([]byte, 4096)
	seq := rISS + 1
	step := func() {
		g := seg(ACK, seq, lISS+1, payload...)
		c.SegmentArrives(t0, &g)
		c.Flush(t0)
		c.Read(t0, buf)
		seq = seq.Add(1460)
	}
	for i := 0; i < 100; i++ {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("receive path: %v allocations per segment", n)
	}
	c.noDelay = true
	send := func() {
		c.Write(t0, payload)
		a := seg(ACK, rISS+1, c.snd.nxt)
		a.Seq = c.rcv.nxt
		c.SegmentArrives(t0, &a)
	}
	for i := 0; i < 100; i++ {
		send()
	}
	if n := testing.AllocsPerRun(1000, send); n != 0 {
		t.Fatalf("send path: %v allocations per segment", n)
	}
}

// TestHolesAllocateNothing: a segment held out of order and the one that
// fills the hole allocate nothing once the pools are warm: the held copy
// comes from the buffer pools and the queue's state is reused.
func TestHolesAllocateNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	c := established(t, &nullSender{})
	payload := bytesN(1460)
	buf := make([]byte, 8192)
	seq := rISS + 1
	step := func() {
		late := seg(ACK, seq.Add(1460), lISS+1, payload...)
		c.SegmentArrives(t0, &late) // held: a hole before it
		if c.rcv.ooo.len() != 1 {
			t.Fatalf("%d segments held, want 1", c.rcv.ooo.len())
		}
		fill := seg(ACK, seq, lISS+1, payload...)
		c.SegmentArrives(t0, &fill)
		c.Flush(t0)
		if n, _ := c.Read(t0, buf); n != 2920 || c.rcv.ooo.len() != 0 {
			t.Fatalf("read %d bytes with %d held, want 2920 and none", n, c.rcv.ooo.len())
		}
		seq = seq.Add(2920)
	}
	for i := 0; i < 100; i++ {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("%v allocations per hole", n)
	}
}
