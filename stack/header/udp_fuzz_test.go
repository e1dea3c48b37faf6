package header

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// FuzzUDP: ParseUDP never panics and never returns a view beyond its input
// or shorter than a header; what it accepts has a consistent length field;
// a datagram PutUDP builds from the payload parses back to it with a
// checksum that verifies, on either family, and not after a flipped bit.
func FuzzUDP(f *testing.F) {
	f.Add([]byte{0, 53, 0, 53, 0, 8, 0, 0}, true)
	f.Add([]byte{0x13, 0x88, 0, 7, 0, 12, 0xab, 0xcd, 'p', 'i', 'n', 'g'}, false)
	f.Add([]byte{0, 1, 0, 2, 0, 3, 0, 0}, true)
	f.Add([]byte{0, 1, 0, 2, 0xff, 0xff, 0, 0, 1}, true)
	f.Add([]byte{}, false)
	src4, dst4 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	src6, dst6 := netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::2")
	f.Fuzz(func(t *testing.T, b []byte, v4 bool) {
		in := bytes.Clone(b)
		u, err := ParseUDP(b)
		if !bytes.Equal(b, in) {
			t.Fatal("ParseUDP modified its input")
		}
		if err == nil {
			if len(u) < UDPHeaderLen || len(u) > len(b) || u.Length() != len(u) || len(u.Payload()) != len(u)-8 {
				t.Fatalf("view of %d bytes, length field %d, input %d", len(u), u.Length(), len(b))
			}
			_ = u.SrcPort() + u.DstPort() + u.Checksum()
		} else if len(b) >= 8 {
			if n := int(binary.BigEndian.Uint16(b[4:])); n >= 8 && n <= len(b) {
				t.Fatalf("refused a valid length %d of %d bytes: %v", n, len(b), err)
			}
		}
		src, dst := src6, dst6
		if v4 {
			src, dst = src4, dst4
		}
		payload := b[:min(len(b), 0xffff-UDPHeaderLen)]
		d := make([]byte, UDPHeaderLen+len(payload))
		copy(d[UDPHeaderLen:], payload)
		PutUDP(d, 1234, 53, len(payload), src, dst)
		p, err := ParseUDP(d)
		if err != nil || !bytes.Equal(p.Payload(), payload) || p.SrcPort() != 1234 || p.DstPort() != 53 || p.Checksum() == 0 {
			t.Fatalf("round trip: %v", err)
		}
		if !UDPChecksumOK(p, src, dst) {
			t.Fatal("our checksum does not verify")
		}
		if len(payload) > 0 {
			d[len(d)-1] ^= 0x01
			if UDPChecksumOK(p, src, dst) {
				t.Fatal("a flipped bit went unnoticed")
			}
		}
	})
}
