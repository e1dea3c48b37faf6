package header

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	gvheader "gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	v6src = netip.MustParseAddr("2001:2::1").As16()
	v6dst = netip.MustParseAddr("2001:2::2").As16()
)

func ipv6Seed(nh uint8, payload []byte) []byte {
	b := make([]byte, IPv6HeaderLen+len(payload))
	PutIPv6(b, IPv6Fields{TrafficClass: 0xb8, FlowLabel: 0xabcde, PayloadLen: uint16(len(payload)),
		NextHeader: nh, HopLimit: 64, Src: v6src, Dst: v6dst})
	copy(b[IPv6HeaderLen:], payload)
	return b
}

func TestPutParseIPv6(t *testing.T) {
	b := append(ipv6Seed(ProtoTCP, []byte("0123456789")), 0xee, 0xee) // trailing bytes
	h, err := ParseIPv6(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 50 || h.PayloadLen() != 10 || h.NextHeader() != ProtoTCP || h.HopLimit() != 64 ||
		h.TrafficClass() != 0xb8 || h.FlowLabel() != 0xabcde || h.SrcBytes() != v6src || h.DstBytes() != v6dst ||
		h.Src() != netip.AddrFrom16(v6src) || h.Dst() != netip.AddrFrom16(v6dst) {
		t.Fatalf("fields of %x", []byte(h))
	}
	// gVisor's view agrees on the layout.
	g := gvheader.IPv6(h)
	tc, fl := g.TOS()
	if !g.IsValid(len(h)) || tc != 0xb8 || fl != 0xabcde || g.PayloadLength() != 10 {
		t.Fatalf("gVisor reads %x differently", []byte(h))
	}
}

func TestParseIPv6Errors(t *testing.T) {
	good := ipv6Seed(ProtoUDP, make([]byte, 8))
	for _, tc := range []struct {
		b   []byte
		err error
	}{
		{nil, ErrTooShort},
		{good[:39], ErrTooShort},
		{append([]byte{0x45}, good[1:]...), ErrBadIPv6Version},
		{good[:47], ErrBadPayloadLength},
	} {
		if _, err := ParseIPv6(tc.b); !errors.Is(err, tc.err) {
			t.Errorf("%x: %v, want %v", tc.b, err, tc.err)
		}
	}
}

// TestICMPv6ChecksumMatchesGVisor: RFC 4443 §2.3, checked against an
// independent implementation, odd lengths included.
func TestICMPv6ChecksumMatchesGVisor(t *testing.T) {
	for n := ICMPv6MinLen; n < 40; n++ {
		m := ICMPv6(bytes.Repeat([]byte{0x5a}, n))
		m.SetType(ICMPv6EchoRequest)
		m.SetCode(0)
		m.UpdateChecksum(v6src, v6dst)
		want := gvheader.ICMPv6Checksum(gvheader.ICMPv6ChecksumParams{Header: gvheader.ICMPv6(m),
			Src: tcpip.AddrFrom16(v6src), Dst: tcpip.AddrFrom16(v6dst)})
		if got := uint16(m[2])<<8 | uint16(m[3]); got != want {
			t.Fatalf("len %d: checksum %#04x, gVisor %#04x", n, got, want)
		}
		if _, err := ParseICMPv6(m, v6src, v6dst); err != nil {
			t.Fatalf("len %d: %v", n, err)
		}
		m[n-1] ^= 1
		if _, err := ParseICMPv6(m, v6src, v6dst); err != ErrBadChecksum {
			t.Fatalf("len %d: corrupted message accepted", n)
		}
	}
	if _, err := ParseICMPv6(make([]byte, 7), v6src, v6dst); err != ErrTooShort {
		t.Fatal("7 bytes accepted")
	}
}

func TestFragmentHeader(t *testing.T) {
	b := make([]byte, 8)
	PutIPv6Frag(b, ProtoUDP, 1448, true, 0xdeadbeef)
	f := IPv6Frag(b)
	if f.NextHeader() != ProtoUDP || f.Offset() != 1448 || !f.More() || f.ID() != 0xdeadbeef {
		t.Fatalf("%x", b)
	}
	g := gvheader.IPv6Fragment(b)
	if g.FragmentOffset() != 1448/8 || !g.More() || g.ID() != 0xdeadbeef {
		t.Fatalf("gVisor reads %x differently", b)
	}
	PutIPv6Frag(b, ProtoTCP, 0, false, 1)
	if f.Offset() != 0 || f.More() {
		t.Fatalf("%x", b)
	}
}

func TestExtHeaderLen(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		nh   uint8
		want int
	}{
		{[]byte{6, 0}, ProtoHopByHop, 8},
		{[]byte{6, 255}, ProtoDestOpts, 2048},
		{[]byte{6, 1}, ProtoRouting, 16},
		{nil, ProtoFragment, 8},
		{[]byte{6, 4}, ProtoAH, 24},
		{[]byte{6}, ProtoDestOpts, -1},
		{nil, ProtoAH, -1},
	} {
		if got := ExtHeaderLen(tc.b, tc.nh); got != tc.want {
			t.Errorf("ExtHeaderLen(%x, %d) = %d, want %d", tc.b, tc.nh, got, tc.want)
		}
	}
}
