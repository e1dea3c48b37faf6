package header

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// UDP header constants (RFC 768).
const (
	UDPHeaderLen = 8
	// UDPMaxIPv4Payload is the largest UDP payload an IPv4 datagram with a
	// 20-byte header carries: 65535 - 20 - 8 (Linux's sendto answers
	// EMSGSIZE beyond it).
	UDPMaxIPv4Payload = 0xffff - IPv4MinHeaderLen - UDPHeaderLen
)

// ErrBadUDPLength is the error of a UDP header whose length field is below
// 8 or beyond the datagram.
var ErrBadUDPLength = errors.New("UDP length below 8 or beyond the datagram")

// UDP is a view of a UDP header followed by its payload, trimmed to the
// header's length field.
type UDP []byte

// ParseUDP checks the length field of the UDP datagram in b (the IP
// payload) and returns the view trimmed to it. RFC 768: "Length is the
// length in octets of this user datagram including this header and the
// data"; a length beyond the IP payload is an error, a shorter one leaves
// trailing bytes that are not part of the datagram (Linux's __udp4_lib_rcv
// trims them too). The checksum is the caller's: it needs the
// pseudo-header (UDPChecksumOK).
func ParseUDP(b []byte) (UDP, error) {
	if len(b) < UDPHeaderLen {
		return nil, ErrTooShort
	}
	n := int(binary.BigEndian.Uint16(b[4:]))
	if n < UDPHeaderLen || n > len(b) {
		return nil, ErrBadUDPLength
	}
	return UDP(b[:n]), nil
}

// SrcPort is the source port (0: none, RFC 768 "Source Port" is optional).
func (u UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(u[0:]) }

// DstPort is the destination port.
func (u UDP) DstPort() uint16 { return binary.BigEndian.Uint16(u[2:]) }

// Length is the length field.
func (u UDP) Length() int { return int(binary.BigEndian.Uint16(u[4:])) }

// Checksum is the checksum field (0 on IPv4: none was computed).
func (u UDP) Checksum() uint16 { return binary.BigEndian.Uint16(u[6:]) }

// Payload is the data after the header.
func (u UDP) Payload() []byte { return u[UDPHeaderLen:] }

// UDPChecksumOK reports whether datagram u, from src to dst, has a valid
// checksum. RFC 768: an all-zero field means the sender computed none,
// which IPv4 allows (RFC 1122 §4.1.3.4: a host MUST accept it, unless the
// application asked otherwise); IPv6 forbids it (RFC 8200 §8.1), so a zero
// checksum is bad there.
func UDPChecksumOK(u UDP, src, dst netip.Addr) bool {
	if u.Checksum() == 0 {
		return src.Is4()
	}
	return Checksum(u, PseudoSum(ProtoUDP, src, dst, len(u))) == 0xffff
}

// PutUDP writes the UDP header for n bytes of payload already in
// b[8:8+n] and its checksum, which a sender always computes (RFC 1122
// §4.1.3.4: "MUST be enabled by default"). A computed checksum of zero is
// sent as all ones (RFC 768), zero meaning "none".
func PutUDP(b []byte, srcPort, dstPort uint16, n int, src, dst netip.Addr) {
	u := b[:UDPHeaderLen+n]
	binary.BigEndian.PutUint16(u[0:], srcPort)
	binary.BigEndian.PutUint16(u[2:], dstPort)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	u[6], u[7] = 0, 0
	c := ^Checksum(u, PseudoSum(ProtoUDP, src, dst, len(u)))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
}

// PseudoSum is the partial checksum of the pseudo-header of a transport
// segment of n bytes of protocol proto from src to dst, for either family:
// IPv4's (RFC 768, RFC 9293 §3.1: addresses, zero, protocol, 16-bit
// length) or IPv6's (RFC 8200 §8.1: addresses, 32-bit length, zeros, next
// header). IPv4-mapped addresses count as IPv4. It does not allocate.
func PseudoSum(proto uint8, src, dst netip.Addr, n int) uint16 {
	src, dst = src.Unmap(), dst.Unmap()
	if src.Is4() {
		return PseudoHeaderChecksum(proto, src.As4(), dst.As4(), uint16(n))
	}
	return PseudoHeaderChecksumIPv6(proto, src.As16(), dst.As16(), uint32(n))
}

// SetTransportChecksum writes the checksum of segment seg (a TCP or UDP
// header and its payload) at offset at, over the pseudo-header init
// (PseudoSum), as TCP computes it (RFC 9293 §3.1): the field is zeroed
// first.
func SetTransportChecksum(seg []byte, at int, init uint16) {
	seg[at], seg[at+1] = 0, 0
	binary.BigEndian.PutUint16(seg[at:], ^Checksum(seg, init))
}
