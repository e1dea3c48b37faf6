package header

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"net/netip"
)

// IPv6 header constants (RFC 8200 §3, §4).
const (
	IPv6HeaderLen = 40
	IPv6Version   = 6
	// IPv6MinMTU is the minimum link MTU of IPv6 (RFC 8200 §5).
	IPv6MinMTU = 1280

	// Next Header values of the extension headers (RFC 8200 §4) and of the
	// upper layers this stack knows.
	ProtoHopByHop   = 0
	ProtoRouting    = 43
	ProtoFragment   = 44
	ProtoESP        = 50
	ProtoAH         = 51
	ProtoICMPv6     = 58
	ProtoNoNext     = 59
	ProtoDestOpts   = 60
	IPv6FragHdrLen  = 8
	ipv6FragOffMask = 0xfff8
	ipv6FragMF      = 0x0001
)

// IPv6 parse errors.
var (
	ErrBadIPv6Version    = errors.New("IP version is not 6")
	ErrBadPayloadLength  = errors.New("IPv6 payload length beyond the packet")
	ErrTruncatedExtChain = errors.New("IPv6 extension header beyond the packet")
)

// IPv6 is a view of an IPv6 header followed by its payload (extension
// headers and the upper-layer data).
type IPv6 []byte

// ParseIPv6 validates the fixed header (RFC 8200 §3): at least 40 bytes,
// version 6, a payload length within the packet. It returns the view
// trimmed to 40 + payload length. Jumbograms (RFC 2675: payload length 0
// and a Jumbo Payload option) are not supported: their payload length 0
// trims them to the bare header.
func ParseIPv6(b []byte) (IPv6, error) {
	if len(b) < IPv6HeaderLen {
		return nil, ErrTooShort
	}
	if b[0]>>4 != IPv6Version {
		return nil, ErrBadIPv6Version
	}
	n := IPv6HeaderLen + int(binary.BigEndian.Uint16(b[4:]))
	if n > len(b) {
		return nil, ErrBadPayloadLength
	}
	return IPv6(b[:n]), nil
}

// TrafficClass is the traffic class byte (DSCP and ECN).
func (h IPv6) TrafficClass() uint8 { return h[0]<<4 | h[1]>>4 }

// FlowLabel is the 20-bit flow label.
func (h IPv6) FlowLabel() uint32 { return binary.BigEndian.Uint32(h[0:]) & 0xfffff }

// PayloadLen is the payload length field.
func (h IPv6) PayloadLen() int { return int(binary.BigEndian.Uint16(h[4:])) }

// NextHeader is the next header field of the fixed header.
func (h IPv6) NextHeader() uint8 { return h[6] }

// HopLimit is the hop limit field.
func (h IPv6) HopLimit() uint8 { return h[7] }

// SrcBytes is the source address.
func (h IPv6) SrcBytes() [16]byte { return [16]byte(h[8:24]) }

// DstBytes is the destination address.
func (h IPv6) DstBytes() [16]byte { return [16]byte(h[24:40]) }

// Src is the source address.
func (h IPv6) Src() netip.Addr { return netip.AddrFrom16(h.SrcBytes()) }

// Dst is the destination address.
func (h IPv6) Dst() netip.Addr { return netip.AddrFrom16(h.DstBytes()) }

// SetPayloadLen sets the payload length field.
func (h IPv6) SetPayloadLen(n int) { binary.BigEndian.PutUint16(h[4:], uint16(n)) }

// IPv6Fields are the values PutIPv6 writes.
type IPv6Fields struct {
	TrafficClass uint8
	FlowLabel    uint32 // low 20 bits
	PayloadLen   uint16
	NextHeader   uint8
	HopLimit     uint8
	Src, Dst     [16]byte
}

// PutIPv6 writes a 40-byte IPv6 header into b.
func PutIPv6(b []byte, f IPv6Fields) {
	_ = b[IPv6HeaderLen-1]
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(b[4:], f.PayloadLen)
	b[6] = f.NextHeader
	b[7] = f.HopLimit
	copy(b[8:24], f.Src[:])
	copy(b[24:40], f.Dst[:])
}

// PseudoHeaderChecksumIPv6 is the partial checksum of the IPv6
// pseudo-header (RFC 8200 §8.1) for an upper-layer packet of the given
// length: source, destination, 32-bit length, three zero bytes, next header.
// Every TCP and UDP packet over IPv6 needs it, in and out: it adds the
// addresses as 32-bit words (foldSum) rather than checksumming a copy.
func PseudoHeaderChecksumIPv6(proto uint8, src, dst [16]byte, length uint32) uint16 {
	// The 64-bit words' one's-complement sum: each carry out of the top
	// comes back in at the bottom (2^64 is 1 modulo 2^16-1).
	s, c := bits.Add64(binary.BigEndian.Uint64(src[:8]), binary.BigEndian.Uint64(src[8:]), 0)
	s, c = bits.Add64(s, binary.BigEndian.Uint64(dst[:8]), c)
	s, c = bits.Add64(s, binary.BigEndian.Uint64(dst[8:]), c)
	s, c = bits.Add64(s, uint64(length)+uint64(proto), c)
	s, c = bits.Add64(s, 0, c)
	return foldSum(s + c)
}

// IPv6Frag is a view of a Fragment header (RFC 8200 §4.5), 8 bytes.
type IPv6Frag []byte

// NextHeader is the type of the fragmentable part's first header.
func (f IPv6Frag) NextHeader() uint8 { return f[0] }

// Offset is the fragment offset in bytes (the field times 8).
func (f IPv6Frag) Offset() int { return int(binary.BigEndian.Uint16(f[2:]) & ipv6FragOffMask) }

// More reports the M flag.
func (f IPv6Frag) More() bool { return binary.BigEndian.Uint16(f[2:])&ipv6FragMF != 0 }

// ID is the fragment identification.
func (f IPv6Frag) ID() uint32 { return binary.BigEndian.Uint32(f[4:]) }

// PutIPv6Frag writes a Fragment header into b[:8]; off is in bytes, a
// multiple of 8.
func PutIPv6Frag(b []byte, next uint8, off int, more bool, id uint32) {
	_ = b[IPv6FragHdrLen-1]
	b[0], b[1] = next, 0
	v := uint16(off) & ipv6FragOffMask
	if more {
		v |= ipv6FragMF
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], id)
}

// IsExtHeader reports the Next Header values this package can skip as
// extension headers: hop-by-hop, routing, fragment, destination options
// and AH (RFC 8200 §4; RFC 4302 §2 for AH's length). ESP hides what
// follows; the rest end the chain.
func IsExtHeader(nh uint8) bool {
	switch nh {
	case ProtoHopByHop, ProtoRouting, ProtoFragment, ProtoDestOpts, ProtoAH:
		return true
	}
	return false
}

// ExtHeaderLen is the length of the extension header of type nh at the
// start of b, or -1 when b is too short to say: (Hdr Ext Len + 1) * 8 for
// hop-by-hop, destination options and routing (RFC 8200 §4.3, §4.4, §4.6),
// 8 for a fragment header (§4.5), (Payload Len + 2) * 4 for AH (RFC 4302
// §2.2).
func ExtHeaderLen(b []byte, nh uint8) int {
	switch nh {
	case ProtoFragment:
		return IPv6FragHdrLen
	case ProtoAH:
		if len(b) < 2 {
			return -1
		}
		return (int(b[1]) + 2) * 4
	}
	if len(b) < 2 {
		return -1
	}
	return (int(b[1]) + 1) * 8
}
