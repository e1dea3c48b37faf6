package ipv4

import (
	"net/netip"
	"testing"

	"ustack/stack/header"
)

// TestSetAddrs: every address of the layer is accepted, the directed
// broadcast of a subnet is dropped as not unicast, an ICMP error goes out
// from the address the datagram came to, and a removed address is no
// longer ours.
func TestSetAddrs(t *testing.T) {
	l := newLayer()
	second := [4]byte{198, 18, 1, 2}
	if err := l.SetAddrs([]netip.Prefix{netip.MustParsePrefix("198.18.0.2/32"), netip.MustParsePrefix("198.18.1.2/24")}); err != nil {
		t.Fatal(err)
	}
	if !l.IsLocal(ourAddr) || !l.IsLocal(second) || len(l.Addrs()) != 2 {
		t.Fatalf("addresses %v", l.Addrs())
	}
	p := ipPacket(253, make([]byte, 8))
	copy(p[16:20], second[:])
	fixIPChecksum(p)
	v, h := l.Input(t0, p)
	if v != Unreachable {
		t.Fatalf("datagram to the second address: %v", v)
	}
	b := make([]byte, 576)
	n := l.PutICMPError(t0, b, h, header.ICMPDestUnreach, header.ICMPProtoUnreach)
	if r := header.IPv4(b[:n]); n == 0 || r.SrcBytes() != second || r.DstBytes() != peerAddr {
		t.Fatalf("ICMP error of %d bytes from %v", n, r.Src())
	}
	bc := ipPacket(header.ProtoUDP, make([]byte, 8))
	copy(bc[16:20], []byte{198, 18, 1, 255})
	fixIPChecksum(bc)
	if v, _ := l.Input(t0, bc); v != Drop || l.Stats.Drops(NotUnicast) != 1 || !l.NotUnicast([4]byte{198, 18, 1, 255}) {
		t.Fatalf("directed broadcast: %v", v)
	}
	if l.NotUnicast([4]byte{198, 18, 0, 255}) {
		t.Fatal("a /32 has no broadcast address")
	}
	if err := l.SetAddrs([]netip.Prefix{netip.MustParsePrefix("198.18.0.2/32")}); err != nil {
		t.Fatal(err)
	}
	if v, _ := l.Input(t0, p); v != Drop || l.Stats.Drops(NotForUs) != 1 {
		t.Fatalf("to a removed address: %v", v)
	}
	for _, bad := range []string{"2001:db8::1/128", "0.0.0.0/32", "224.0.0.1/32", "127.0.0.1/8"} {
		if err := l.SetAddrs([]netip.Prefix{netip.MustParsePrefix(bad)}); err == nil {
			t.Errorf("SetAddrs(%s) accepted", bad)
		}
	}
	if !l.IsLocal(ourAddr) {
		t.Fatal("a refused SetAddrs changed the addresses")
	}
}

// TestParseICMPErrorAboutUDP: an ICMP error quoting one of our UDP
// datagrams is delivered with its protocol, addresses and ports.
func TestParseICMPErrorAboutUDP(t *testing.T) {
	l := newLayer()
	u := make([]byte, 8)
	header.PutUDP(u, 5353, 53, 0, netip.AddrFrom4(ourAddr), netip.AddrFrom4(peerAddr))
	v, h := l.Input(t0, icmpError(header.ICMPDestUnreach, header.ICMPPortUnreach, 0, quoteOf(ourPacket(header.ProtoUDP, u))))
	e, why := l.ParseICMPError(h)
	if v != DeliverICMPError || why != 0 || e.Proto != header.ProtoUDP || e.Src != ourAddr || e.Dst != peerAddr ||
		e.SrcPort != 5353 || e.DstPort != 53 || e.Seq != 0 {
		t.Fatalf("%v %+v %v", v, e, why)
	}
}
