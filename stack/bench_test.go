package stack

import (
	"net/netip"
	"testing"
	"time"

	"ustack/stack/clock"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// manualPair is two stacks in Manual mode on one virtual clock over a Pipe,
// with an established connection from a to b.
func manualPair(tb testing.TB) (a, b *Stack, ca, cb *Conn, v *clock.Virtual) {
	return manualPairOn(tb, addrA, addrB)
}

// manualPairOn is manualPair with the stacks at addresses aAddr and bAddr
// (IPv6: the connection is over IPv6).
func manualPairOn(tb testing.TB, aAddr, bAddr netip.Addr) (a, b *Stack, ca, cb *Conn, v *clock.Virtual) {
	v = clock.NewVirtual()
	ea, eb := link.Pipe(1500)
	var err error
	if a, err = New(ea, strict(Options{Addr: aAddr, Clock: v, Manual: true})); err != nil {
		tb.Fatal(err)
	}
	if b, err = New(eb, strict(Options{Addr: bAddr, Clock: v, Manual: true})); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close(); b.Close() })
	l, _ := b.ListenTCP(9)
	ca, err = a.DialTCPAsync(netip.AddrPortFrom(bAddr, 9), a.Options().TCP)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < 10 && cb == nil; i++ {
		b.Poll()
		a.Poll()
		cb = l.TryAccept()
	}
	if cb == nil || ca.State() != tcp.Established {
		tb.Fatal("no connection")
	}
	return
}

// pump moves one 64 KiB write from a to b and reads it: the whole packet
// path (build, checksum, link, parse, demux, TCB, ACK) both ways.
func pump(a, b *Stack, ca, cb *Conn, v *clock.Virtual, data, buf []byte) {
	ca.TryWrite(data)
	for got := 0; got < len(data); {
		b.Poll()
		n, _ := cb.TryRead(buf)
		got += n
		a.Poll()
		v.Advance(time.Microsecond)
	}
	a.Poll()
}

// BenchmarkStackPath64K: 64 KiB through two stacks over a Pipe per op.
func BenchmarkStackPath64K(b *testing.B) { benchStackPath(b, addrA, addrB) }

// BenchmarkStackPath64KIPv6: the same over IPv6, whose cost per byte is
// meant to be within 10% of IPv4's (the MSS is 20 bytes smaller, 1.4%
// more segments).
func BenchmarkStackPath64KIPv6(b *testing.B) { benchStackPath(b, addrA6, addrB6) }

func benchStackPath(b *testing.B, aAddr, bAddr netip.Addr) {
	sa, sb, ca, cb, v := manualPairOn(b, aAddr, bAddr)
	data := make([]byte, 64<<10)
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pump(sa, sb, ca, cb, v, data, buf)
	}
}

// TestStackPathAllocatesNothing: in steady state, the full packet path of
// both stacks allocates nothing per transfer, over IPv4 and over IPv6.
func TestStackPathAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items at random)")
	}
	for _, fam := range []struct {
		name   string
		aa, ba netip.Addr
	}{{"ipv4", addrA, addrB}, {"ipv6", addrA6, addrB6}} {
		t.Run(fam.name, func(t *testing.T) {
			sa, sb, ca, cb, v := manualPairOn(t, fam.aa, fam.ba)
			data := make([]byte, 64<<10)
			buf := make([]byte, 64<<10)
			for i := 0; i < 50; i++ {
				pump(sa, sb, ca, cb, v, data, buf)
			}
			// sync.Pool may refill after a GC: less than one allocation
			// per 64 KiB (45 segments and their ACKs) on average is the
			// steady state.
			if n := testing.AllocsPerRun(50, func() { pump(sa, sb, ca, cb, v, data, buf) }); n >= 1 {
				t.Fatalf("%v allocations per 64 KiB through both stacks", n)
			}
		})
	}
}

// BenchmarkTimerSchedule: rescheduling a connection's entry in the stack's
// timer heap, as every segment does.
func BenchmarkTimerSchedule(b *testing.B) {
	v := clock.NewVirtual()
	s := &Stack{clk: v}
	ln := &lane{s: s}
	ln.tm.init(ln)
	conns := make([]*Conn, 1024)
	for i := range conns {
		conns[i] = &Conn{tidx: -1}
		ln.tm.schedule(conns[i], v.Now().Add(time.Duration(i+1)*time.Millisecond))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := conns[i%len(conns)]
		ln.tm.schedule(c, v.Now().Add(time.Duration(i%5000+1)*time.Millisecond))
	}
}

// udpPair is two Manual stacks on one virtual clock with an echo socket
// on b and a socket on a connected to it.
func udpPair(tb testing.TB) (a, b *Stack, ca, sb *UDPConn) {
	v := clock.NewVirtual()
	ea, eb := link.Pipe(1500)
	var err error
	if a, err = New(ea, Options{Addr: addrA, Clock: v, Manual: true}); err != nil {
		tb.Fatal(err)
	}
	if b, err = New(eb, Options{Addr: addrB, Clock: v, Manual: true}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close(); b.Close() })
	if sb, err = b.ListenUDP(netip.AddrPortFrom(addrB, 7)); err != nil {
		tb.Fatal(err)
	}
	if ca, err = a.DialUDP(netip.AddrPortFrom(addrB, 7)); err != nil {
		tb.Fatal(err)
	}
	return
}

// udpEchoOnce sends msg from ca, echoes it on sb and reads it back: the
// whole UDP path (build, checksum, link, parse, demux, queue, read) both
// ways.
func udpEchoOnce(tb testing.TB, a, b *Stack, ca, sb *UDPConn, msg, buf []byte) {
	if _, err := ca.Write(msg); err != nil {
		tb.Fatal(err)
	}
	b.Poll()
	n, from, err := sb.TryReadFrom(buf)
	if err != nil {
		tb.Fatal(err)
	}
	sb.WriteToUDPAddrPort(buf[:n], from)
	a.Poll()
	if n, _, err := ca.TryReadFrom(buf); err != nil || n != len(msg) {
		tb.Fatalf("echo: %d bytes, %v", n, err)
	}
}

// BenchmarkUDPEcho: one 1024-byte datagram there and back per op.
func BenchmarkUDPEcho(b *testing.B) {
	sa, sb, ca, cb := udpPair(b)
	msg, buf := make([]byte, 1024), make([]byte, 2048)
	b.SetBytes(int64(2 * len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		udpEchoOnce(b, sa, sb, ca, cb, msg, buf)
	}
}

// TestUDPPathAllocatesNothing: in steady state, a datagram's trip through
// both stacks allocates nothing.
func TestUDPPathAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items at random)")
	}
	sa, sb, ca, cb := udpPair(t)
	msg, buf := make([]byte, 1024), make([]byte, 2048)
	for range 50 {
		udpEchoOnce(t, sa, sb, ca, cb, msg, buf)
	}
	if n := testing.AllocsPerRun(200, func() { udpEchoOnce(t, sa, sb, ca, cb, msg, buf) }); n >= 0.1 {
		t.Fatalf("%v allocations per UDP echo", n)
	}
}
