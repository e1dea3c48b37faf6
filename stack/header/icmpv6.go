package header

import "encoding/binary"

// ICMPv6 types and codes (RFC 4443 §2.1, §3, §4; RFC 4861 §4; RFC 7112).
const (
	ICMPv6DestUnreach   = 1
	ICMPv6PacketTooBig  = 2
	ICMPv6TimeExceeded  = 3
	ICMPv6ParamProblem  = 4
	ICMPv6EchoRequest   = 128
	ICMPv6EchoReply     = 129
	ICMPv6RouterSolicit = 133
	ICMPv6RouterAdvert  = 134
	ICMPv6NeighSolicit  = 135
	ICMPv6NeighAdvert   = 136
	ICMPv6Redirect      = 137

	// Destination unreachable codes (RFC 4443 §3.1).
	ICMPv6NoRoute       = 0
	ICMPv6AdminProhibit = 1
	ICMPv6BeyondScope   = 2
	ICMPv6AddrUnreach   = 3
	ICMPv6PortUnreach   = 4
	ICMPv6PolicyFail    = 5
	ICMPv6RejectRoute   = 6
	// Time exceeded codes (RFC 4443 §3.3).
	ICMPv6HopLimitExceeded = 0
	ICMPv6FragTimeExceeded = 1
	// Parameter problem codes (RFC 4443 §3.4, RFC 7112 §3 for code 3).
	ICMPv6ErroneousField  = 0
	ICMPv6UnknownNextHdr  = 1
	ICMPv6UnknownOption   = 2
	ICMPv6IncompleteChain = 3

	ICMPv6MinLen = 8
)

// ICMPv6 is a view of an ICMPv6 message.
type ICMPv6 []byte

// ParseICMPv6 checks the length and the checksum of an ICMPv6 message
// carried from src to dst. RFC 4443 §2.3: the checksum covers the
// pseudo-header (RFC 8200 §8.1) and is mandatory.
func ParseICMPv6(b []byte, src, dst [16]byte) (ICMPv6, error) {
	if len(b) < ICMPv6MinLen {
		return nil, ErrTooShort
	}
	ph := PseudoHeaderChecksumIPv6(ProtoICMPv6, src, dst, uint32(len(b)))
	if Checksum(b, ph) != 0xffff {
		return nil, ErrBadChecksum
	}
	return ICMPv6(b), nil
}

// Type is the message type.
func (m ICMPv6) Type() uint8 { return m[0] }

// Code is the message code.
func (m ICMPv6) Code() uint8 { return m[1] }

// SetType sets the type.
func (m ICMPv6) SetType(t uint8) { m[0] = t }

// SetCode sets the code.
func (m ICMPv6) SetCode(c uint8) { m[1] = c }

// Param is the second word: the MTU of a Packet Too Big (RFC 4443 §3.2),
// the pointer of a Parameter Problem (§3.4), unused otherwise.
func (m ICMPv6) Param() uint32 { return binary.BigEndian.Uint32(m[4:]) }

// SetParam sets the second word.
func (m ICMPv6) SetParam(v uint32) { binary.BigEndian.PutUint32(m[4:], v) }

// Ident is the echo identifier (RFC 4443 §4.1).
func (m ICMPv6) Ident() uint16 { return binary.BigEndian.Uint16(m[4:]) }

// Seq is the echo sequence number.
func (m ICMPv6) Seq() uint16 { return binary.BigEndian.Uint16(m[6:]) }

// UpdateChecksum recomputes the checksum for a message from src to dst.
func (m ICMPv6) UpdateChecksum(src, dst [16]byte) {
	m[2], m[3] = 0, 0
	ph := PseudoHeaderChecksumIPv6(ProtoICMPv6, src, dst, uint32(len(m)))
	binary.BigEndian.PutUint16(m[2:], ^Checksum(m, ph))
}

// IsICMPv6Error reports whether type t is an error message: RFC 4443 §2.1,
// types 0-127 (the high-order bit clear).
func IsICMPv6Error(t uint8) bool { return t < 128 }
