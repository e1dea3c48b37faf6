package header

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func ipv4Seed(proto uint8, payload []byte) []byte {
	b := make([]byte, IPv4MinHeaderLen+len(payload))
	PutIPv4(b, IPv4Fields{TotalLen: uint16(len(b)), ID: 77, Flags: IPv4FlagDF, TTL: 64, Protocol: proto,
		Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{198, 18, 0, 2}})
	copy(b[IPv4MinHeaderLen:], payload)
	return b
}

// refParseIPv4 restates ParseIPv4's contract (RFC 791 §3.1, RFC 1122
// §3.2.1.1-2) independently: which error, and how long the result is.
func refParseIPv4(b []byte) (int, error) {
	if len(b) < 20 {
		return 0, ErrTooShort
	}
	if b[0]>>4 != 4 {
		return 0, ErrBadVersion
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || ihl > len(b) {
		return 0, ErrBadIHL
	}
	total := int(b[2])<<8 | int(b[3])
	if total < ihl || total > len(b) {
		return 0, ErrBadTotalLength
	}
	if refChecksum(b[:ihl]) != 0 {
		return 0, ErrBadChecksum
	}
	return total, nil
}

// FuzzParseIPv4: ParseIPv4 never panics, agrees with the reference, and a
// parsed header re-encodes to the same bytes through PutIPv4.
func FuzzParseIPv4(f *testing.F) {
	tcp := tcpSeg(FlagSYN, linuxSYNOpts, nil)
	withOpts := func() []byte {
		b := ipv4Seed(ProtoTCP, append([]byte{1, 1, 1, 0}, tcp...))
		b[0] = 0x46
		b[10], b[11] = 0, 0
		binary.BigEndian.PutUint16(b[10:], ^Checksum(b[:24], 0))
		return b
	}
	edit := func(b []byte, f func([]byte)) []byte { f(b); return b }
	for _, s := range [][]byte{
		ipv4Seed(ProtoTCP, tcp),
		ipv4Seed(ProtoICMP, []byte{8, 0, 0xf7, 0xff, 0, 0, 0, 0}),
		withOpts(),
		append(ipv4Seed(ProtoTCP, tcp), 0, 0, 0, 0), // trailing bytes
		ipv4Seed(ProtoTCP, tcp)[:19],
		edit(ipv4Seed(ProtoTCP, tcp), func(b []byte) { b[0] = 0x65 }),
		edit(ipv4Seed(ProtoTCP, tcp), func(b []byte) { b[0] = 0x44 }),
		edit(ipv4Seed(ProtoTCP, nil), func(b []byte) { b[0] = 0x4f }),
		edit(ipv4Seed(ProtoTCP, tcp), func(b []byte) { b[2], b[3] = 0xff, 0xff }),
		edit(ipv4Seed(ProtoTCP, tcp), func(b []byte) { b[2], b[3] = 0, 19 }),
		edit(ipv4Seed(ProtoTCP, tcp), func(b []byte) { b[10] ^= 0xff }),
		{},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		h, err := ParseIPv4(b)
		wantLen, wantErr := refParseIPv4(b)
		if err != wantErr {
			t.Fatalf("ParseIPv4 error %v, reference %v", err, wantErr)
		}
		if !bytes.Equal(b, orig) {
			t.Fatal("ParseIPv4 modified its input")
		}
		if err != nil {
			if h != nil {
				t.Fatal("error with a non-nil view")
			}
			return
		}
		if len(h) != wantLen || h.TotalLen() != len(h) || h.HeaderLen() > len(h) || len(h.Payload()) != len(h)-h.HeaderLen() {
			t.Fatalf("view %d bytes, total %d, IHL %d", len(h), h.TotalLen(), h.HeaderLen())
		}
		_, _, _, _, _, _ = h.ID(), h.TTL(), h.Protocol(), h.Src(), h.Dst(), h.IsFragment()
		if h.HeaderLen() != IPv4MinHeaderLen || h[1] != 0 {
			return // PutIPv4 writes no options and TOS 0
		}
		var re [IPv4MinHeaderLen]byte
		PutIPv4(re[:], IPv4Fields{TotalLen: uint16(h.TotalLen()), ID: h.ID(), Flags: binary.BigEndian.Uint16(h[6:]),
			TTL: h.TTL(), Protocol: h.Protocol(), Src: h.SrcBytes(), Dst: h.DstBytes()})
		if _, err := ParseIPv4(append(re[:], h.Payload()...)); err != nil {
			t.Fatalf("re-encoded header does not parse: %v", err)
		}
		// The checksum may differ only as 0x0000 vs 0xffff (both are
		// one's-complement zero).
		got, want := bytes.Clone(re[:]), bytes.Clone(h[:IPv4MinHeaderLen])
		got[10], got[11], want[10], want[11] = 0, 0, 0, 0
		if !bytes.Equal(got, want) {
			t.Fatalf("PutIPv4 of parsed fields\n got %x\nwant %x", re, h[:IPv4MinHeaderLen])
		}
	})
}
