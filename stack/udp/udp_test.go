package udp

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"ustack/stack/header"
)

var (
	us   = netip.MustParseAddr("198.18.0.2")
	us2  = netip.MustParseAddr("198.18.0.3")
	peer = netip.MustParseAddr("198.18.0.1")
)

func datagram(src, dst netip.AddrPort, payload string) []byte {
	b := make([]byte, 8+len(payload))
	copy(b[8:], payload)
	header.PutUDP(b, src.Port(), dst.Port(), len(payload), src.Addr(), dst.Addr())
	return b
}

func bind(t *testing.T, tb *Table, local, remote netip.AddrPort) *Endpoint {
	t.Helper()
	e := NewEndpoint(local, remote)
	if err := tb.Bind(e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestLookupOrder: connected before bound to the address before bound to
// all, as Linux's compute_score ranks them.
func TestLookupOrder(t *testing.T) {
	tb := NewTable([32]byte{})
	from := netip.AddrPortFrom(peer, 4000)
	wild := bind(t, tb, netip.AddrPortFrom(netip.Addr{}, 53), netip.AddrPort{})
	one := bind(t, tb, netip.AddrPortFrom(us2, 53), netip.AddrPort{})
	conn := bind(t, tb, netip.AddrPortFrom(us, 53), from)
	for _, tc := range []struct {
		local, remote netip.AddrPort
		want          *Endpoint
	}{
		{netip.AddrPortFrom(us, 53), from, conn},
		{netip.AddrPortFrom(us, 53), netip.AddrPortFrom(peer, 4001), wild},
		{netip.AddrPortFrom(us2, 53), from, one},
		{netip.AddrPortFrom(us, 54), from, nil},
	} {
		if got := tb.Lookup(tc.local, tc.remote); got != tc.want {
			t.Errorf("Lookup(%v, %v) = %p, want %p", tc.local, tc.remote, got, tc.want)
		}
	}
	if err := tb.Bind(NewEndpoint(netip.AddrPortFrom(us2, 53), netip.AddrPort{})); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("duplicate binding: %v", err)
	}
	tb.Unbind(one)
	if got := tb.Lookup(netip.AddrPortFrom(us2, 53), from); got != wild || tb.Len() != 2 {
		t.Fatalf("after Unbind: %p, %d endpoints", got, tb.Len())
	}
	if _, _, err := one.Read(nil, true, nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on an unbound endpoint: %v", err)
	}
}

// TestEphemeralPorts: port 0 takes a free port of the ephemeral range.
func TestEphemeralPorts(t *testing.T) {
	tb := NewTable([32]byte{1})
	seen := map[uint16]bool{}
	for range 100 {
		e := bind(t, tb, netip.AddrPortFrom(us, 0), netip.AddrPort{})
		p := e.Local.Port()
		if p < EphemeralLo || p > EphemeralHi || seen[p] {
			t.Fatalf("port %d", p)
		}
		seen[p] = true
	}
}

// TestInput: the checks and counters of Input, the queue limit, a read
// cut to the buffer, and an error reported once, before queued data.
func TestInput(t *testing.T) {
	tb := NewTable([32]byte{})
	local := netip.AddrPortFrom(us, 7)
	from := netip.AddrPortFrom(peer, 9999)
	e := bind(t, tb, local, netip.AddrPort{})
	e.SetReceiveLimit(Overhead + 10)
	bad := datagram(from, local, "bad")
	bad[8] ^= 1
	short := datagram(from, local, "x")[:7]
	long := datagram(from, local, "x")
	long[5] = 10
	for _, tc := range []struct {
		pkt  []byte
		want Verdict
	}{
		{datagram(from, local, "hello"), Delivered},
		{datagram(from, local, "world"), Delivered}, // 261 charged before it: at most the limit
		{datagram(from, local, "full"), Dropped},
		{bad, Dropped},
		{short, Dropped},
		{long, Dropped},
		{datagram(from, netip.AddrPortFrom(us, 8), "closed"), Unreachable},
	} {
		if got := tb.Input(peer, us, tc.pkt, false); got != tc.want {
			t.Errorf("Input(%x) = %v, want %v", tc.pkt, got, tc.want)
		}
	}
	s := tb.Stats
	if s.Load(InDatagrams) != 2 || s.Drops(QueueFull) != 1 || s.Drops(BadChecksum) != 1 || s.Drops(BadHeader) != 2 ||
		s.Drops(NoPort) != 1 || e.Drops() != 1 {
		t.Fatalf("counters %v", counterMap(s))
	}
	if n, b := e.Queued(); n != 2 || b != 10 {
		t.Fatalf("queued %d datagrams, %d bytes", n, b)
	}
	e.SetError(syscall.ECONNREFUSED)
	buf := make([]byte, 3)
	if _, _, err := e.Read(buf, false, nil); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("first read: %v, want the pending error", err)
	}
	if n, got, err := e.Read(buf, false, nil); err != nil || string(buf[:n]) != "hel" || got != from {
		t.Fatalf("read %q from %v: %v", buf[:n], got, err)
	}
	if n, _, err := e.Read(buf, false, nil); err != nil || string(buf[:n]) != "wor" {
		t.Fatalf("read %q: %v", buf[:n], err)
	}
	if _, _, err := e.Read(buf, false, nil); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("empty queue: %v", err)
	}
	if n, b := e.Queued(); n != 0 || b != 0 {
		t.Fatalf("queued %d, %d bytes after reading all", n, b)
	}
}

func counterMap(s Stats) map[string]uint64 {
	m := map[string]uint64{}
	s.Each(func(n string, v uint64) { m[n] = v })
	return m
}

// TestZeroChecksumIPv6: IPv6 forbids a zero checksum (RFC 8200 §8.1).
func TestZeroChecksumIPv6(t *testing.T) {
	a, b := netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::2")
	d := datagram(netip.AddrPortFrom(a, 1), netip.AddrPortFrom(b, 2), "v6")
	if !header.UDPChecksumOK(d, a, b) {
		t.Fatal("a computed IPv6 checksum does not verify")
	}
	d[6], d[7] = 0, 0
	if header.UDPChecksumOK(d, a, b) {
		t.Fatal("zero checksum accepted on IPv6")
	}
	if !header.UDPChecksumOK(d, us, peer) {
		t.Fatal("zero checksum refused on IPv4")
	}
}
