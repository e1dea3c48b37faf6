package header

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// The pseudo-headers written out as bytes (RFC 9293 §3.1, RFC 8200 §8.1)
// and checksummed: what the word sums must equal.
func pseudoBytes4(proto uint8, src, dst [4]byte, n uint16) uint16 {
	var p [12]byte
	copy(p[0:], src[:])
	copy(p[4:], dst[:])
	p[9] = proto
	binary.BigEndian.PutUint16(p[10:], n)
	return checksum.Checksum(p[:], 0)
}

func pseudoBytes6(proto uint8, src, dst [16]byte, n uint32) uint16 {
	var p [40]byte
	copy(p[0:], src[:])
	copy(p[16:], dst[:])
	binary.BigEndian.PutUint32(p[32:], n)
	p[39] = proto
	return checksum.Checksum(p[:], 0)
}

// TestPseudoSums: the word sums equal the checksum of the pseudo-header's
// bytes, value for value (0 and 0xffff included), for either family,
// through PseudoSum too.
func TestPseudoSums(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var ones4 [4]byte
	var ones16 [16]byte
	for i := range ones16 {
		ones16[i] = 0xff
	}
	copy(ones4[:], ones16[:])
	type c4 struct {
		proto    uint8
		src, dst [4]byte
		n        uint16
	}
	cases4 := []c4{{0, [4]byte{}, [4]byte{}, 0}, {0xff, ones4, ones4, 0xffff}, {6, [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1480}}
	type c6 struct {
		proto    uint8
		src, dst [16]byte
		n        uint32
	}
	cases6 := []c6{{0, [16]byte{}, [16]byte{}, 0}, {0xff, ones16, ones16, 0xffffffff}, {17, netip.MustParseAddr("2001:2::1").As16(), netip.MustParseAddr("2001:2::2").As16(), 1460}}
	for range 20000 {
		var a, b [16]byte
		for i := range a {
			a[i], b[i] = byte(r.Uint32()), byte(r.Uint32())
		}
		if r.IntN(4) == 0 { // many 0xff bytes: sums near the modulus
			for i := range a {
				a[i] |= 0xf0
				b[i] |= 0xfe
			}
		}
		cases6 = append(cases6, c6{uint8(r.Uint32()), a, b, r.Uint32()})
		cases4 = append(cases4, c4{uint8(r.Uint32()), [4]byte(a[:4]), [4]byte(b[:4]), uint16(r.Uint32())})
	}
	for _, c := range cases4 {
		want := pseudoBytes4(c.proto, c.src, c.dst, c.n)
		if got := PseudoHeaderChecksum(c.proto, c.src, c.dst, c.n); got != want {
			t.Fatalf("IPv4 %+v: %#04x, want %#04x", c, got, want)
		}
		if got := PseudoSum(c.proto, netip.AddrFrom4(c.src), netip.AddrFrom4(c.dst), int(c.n)); got != want {
			t.Fatalf("PseudoSum IPv4 %+v: %#04x, want %#04x", c, got, want)
		}
	}
	for _, c := range cases6 {
		want := pseudoBytes6(c.proto, c.src, c.dst, c.n)
		if got := PseudoHeaderChecksumIPv6(c.proto, c.src, c.dst, c.n); got != want {
			t.Fatalf("IPv6 %+v: %#04x, want %#04x", c, got, want)
		}
		src, dst := netip.AddrFrom16(c.src), netip.AddrFrom16(c.dst)
		if src.Is4In6() || dst.Is4In6() {
			continue // PseudoSum takes these for IPv4
		}
		if got := PseudoSum(c.proto, src, dst, int(c.n)); got != want {
			t.Fatalf("PseudoSum IPv6 %+v: %#04x, want %#04x", c, got, want)
		}
	}
}

// BenchmarkPseudoSum: the pseudo-header of every segment, per family.
func BenchmarkPseudoSum(b *testing.B) {
	for _, fam := range []struct{ name, src, dst string }{{"ipv4", "198.18.0.1", "198.18.0.2"}, {"ipv6", "2001:2::1", "2001:2::2"}} {
		src, dst := netip.MustParseAddr(fam.src), netip.MustParseAddr(fam.dst)
		b.Run(fam.name, func(b *testing.B) {
			var s uint16
			for i := 0; b.Loop(); i++ {
				s += PseudoSum(ProtoTCP, src, dst, 1460+i&7)
			}
			_ = s
		})
	}
}
