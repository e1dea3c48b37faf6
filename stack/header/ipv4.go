// Package header provides byte-slice views and builders for the wire formats
// the stack speaks: IPv4, ICMPv4 and TCP with its options, plus the Internet
// checksum. Parse functions check lengths once, so that no accessor of a
// value they return can panic.
package header

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// IPv4 header constants.
const (
	IPv4MinHeaderLen = 20
	IPv4MaxHeaderLen = 60
	IPv4Version      = 4

	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17

	// IPv4 flags (in the flags/fragment-offset field).
	IPv4FlagDF  = 0x4000
	IPv4FlagMF  = 0x2000
	ipv4OffMask = 0x1fff
)

// IPv4 is a view of an IPv4 header followed by its payload.
type IPv4 []byte

// Parse errors, each a drop reason the ipv4 layer counts.
var (
	ErrTooShort       = errors.New("packet shorter than its header")
	ErrBadVersion     = errors.New("IP version is not 4")
	ErrBadIHL         = errors.New("IPv4 header length below 20 or beyond the packet")
	ErrBadTotalLength = errors.New("IPv4 total length inconsistent with the packet")
	ErrBadChecksum    = errors.New("bad checksum")
	ErrBadDataOffset  = errors.New("TCP data offset below 20 or beyond the segment")
	ErrBadOption      = errors.New("malformed TCP option")
)

// ParseIPv4 validates the fixed parts of an IPv4 header (version, IHL, total
// length, header checksum) and returns the view trimmed to the total length.
// TTL and fragments are policy, left to the caller.
func ParseIPv4(b []byte) (IPv4, error) {
	if len(b) < IPv4MinHeaderLen {
		return nil, ErrTooShort
	}
	if b[0]>>4 != IPv4Version {
		return nil, ErrBadVersion
	}
	ihl := int(b[0]&0xf) * 4
	if ihl < IPv4MinHeaderLen || ihl > len(b) {
		return nil, ErrBadIHL
	}
	total := int(binary.BigEndian.Uint16(b[2:]))
	if total < ihl || total > len(b) {
		return nil, ErrBadTotalLength
	}
	if checksum.Checksum(b[:ihl], 0) != 0xffff {
		return nil, ErrBadChecksum
	}
	return IPv4(b[:total]), nil
}

// HeaderLen is the IHL in bytes.
func (h IPv4) HeaderLen() int { return int(h[0]&0xf) * 4 }

// TotalLen is the total-length field.
func (h IPv4) TotalLen() int { return int(binary.BigEndian.Uint16(h[2:])) }

// ID is the identification field.
func (h IPv4) ID() uint16 { return binary.BigEndian.Uint16(h[4:]) }

// TTL is the time-to-live field.
func (h IPv4) TTL() uint8 { return h[8] }

// Protocol is the protocol field.
func (h IPv4) Protocol() uint8 { return h[9] }

// Src is the source address.
func (h IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(h[12:16])) }

// Dst is the destination address.
func (h IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(h[16:20])) }

// SrcBytes and DstBytes return the raw addresses.
func (h IPv4) SrcBytes() [4]byte { return [4]byte(h[12:16]) }

// DstBytes returns the raw destination address.
func (h IPv4) DstBytes() [4]byte { return [4]byte(h[16:20]) }

// IsFragment reports whether the packet is a fragment (MF set or offset > 0).
func (h IPv4) IsFragment() bool {
	f := binary.BigEndian.Uint16(h[6:])
	return f&IPv4FlagMF != 0 || f&ipv4OffMask != 0
}

// TOS is the type-of-service (DSCP and ECN) byte.
func (h IPv4) TOS() uint8 { return h[1] }

// DF reports the don't-fragment flag.
func (h IPv4) DF() bool { return binary.BigEndian.Uint16(h[6:])&IPv4FlagDF != 0 }

// MoreFragments reports the MF flag.
func (h IPv4) MoreFragments() bool { return binary.BigEndian.Uint16(h[6:])&IPv4FlagMF != 0 }

// FragmentOffset is the fragment offset in bytes (the field times 8).
func (h IPv4) FragmentOffset() int { return int(binary.BigEndian.Uint16(h[6:])&ipv4OffMask) * 8 }

// SetFragment sets the total length, flags and fragment offset (in bytes, a
// multiple of 8) and recomputes the header checksum.
func (h IPv4) SetFragment(totalLen int, flags uint16, offset int) {
	binary.BigEndian.PutUint16(h[2:], uint16(totalLen))
	binary.BigEndian.PutUint16(h[6:], flags|uint16(offset/8)&ipv4OffMask)
	h.UpdateChecksum()
}

// UpdateChecksum recomputes the header checksum.
func (h IPv4) UpdateChecksum() {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], ^checksum.Checksum(h[:h.HeaderLen()], 0))
}

// Payload is the data after the header.
func (h IPv4) Payload() []byte { return h[h.HeaderLen():] }

// IPv4Fields are the values PutIPv4 writes.
type IPv4Fields struct {
	TotalLen uint16
	ID       uint16
	Flags    uint16 // IPv4FlagDF etc.
	TOS      uint8
	TTL      uint8
	Protocol uint8
	Src, Dst [4]byte
}

// PutIPv4 writes a 20-byte IPv4 header with its checksum into b.
func PutIPv4(b []byte, f IPv4Fields) {
	_ = b[19]
	b[0] = 0x45
	b[1] = f.TOS
	binary.BigEndian.PutUint16(b[2:], f.TotalLen)
	binary.BigEndian.PutUint16(b[4:], f.ID)
	binary.BigEndian.PutUint16(b[6:], f.Flags)
	b[8] = f.TTL
	b[9] = f.Protocol
	b[10], b[11] = 0, 0
	copy(b[12:16], f.Src[:])
	copy(b[16:20], f.Dst[:])
	binary.BigEndian.PutUint16(b[10:], ^checksum.Checksum(b[:20], 0))
}

// PseudoHeaderChecksum is the partial checksum of the IPv4 pseudo-header
// (RFC 9293 §3.1) for a transport segment of the given length: source,
// destination, zero, protocol, length, summed as words (foldSum).
func PseudoHeaderChecksum(proto uint8, src, dst [4]byte, length uint16) uint16 {
	return foldSum(uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:])) +
		uint64(proto) + uint64(length))
}

// foldSum folds a sum of big-endian 16- and 32-bit words into their 16-bit
// one's-complement sum, as the Internet checksum adds them (RFC 1071 §2:
// the sum may be taken in wider words and folded, the carries added back
// in; 2^16 is 1 modulo 2^16-1). Like checksum.Checksum, it returns 0 only
// for a zero sum.
func foldSum(s uint64) uint16 {
	s = s>>32 + s&0xffffffff
	s = s>>32 + s&0xffffffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}

// Checksum returns the Internet checksum (one's-complement sum) of b added to
// initial, not inverted.
func Checksum(b []byte, initial uint16) uint16 { return checksum.Checksum(b, initial) }
