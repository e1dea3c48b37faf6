package header

import "encoding/binary"

// ICMPv4 types the stack handles.
const (
	ICMPEchoReply    = 0
	ICMPDestUnreach  = 3
	ICMPSourceQuench = 4
	ICMPRedirect     = 5
	ICMPEcho         = 8
	ICMPTimeExceeded = 11
	ICMPParamProblem = 12

	// Destination-unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).
	ICMPNetUnreach   = 0
	ICMPHostUnreach  = 1
	ICMPProtoUnreach = 2
	ICMPPortUnreach  = 3
	ICMPFragNeeded   = 4
	// Time-exceeded code: fragment reassembly time exceeded (RFC 792).
	ICMPFragTimeExceeded = 1

	ICMPv4MinLen = 8
)

// ICMPv4 is a view of an ICMPv4 message.
type ICMPv4 []byte

// ParseICMPv4 checks the length and checksum of an ICMPv4 message.
func ParseICMPv4(b []byte) (ICMPv4, error) {
	if len(b) < ICMPv4MinLen {
		return nil, ErrTooShort
	}
	if Checksum(b, 0) != 0xffff {
		return nil, ErrBadChecksum
	}
	return ICMPv4(b), nil
}

// Type is the message type.
func (m ICMPv4) Type() uint8 { return m[0] }

// Code is the message code.
func (m ICMPv4) Code() uint8 { return m[1] }

// SetType sets the type.
func (m ICMPv4) SetType(t uint8) { m[0] = t }

// SetCode sets the code.
func (m ICMPv4) SetCode(c uint8) { m[1] = c }

// Ident is the echo identifier.
func (m ICMPv4) Ident() uint16 { return binary.BigEndian.Uint16(m[4:]) }

// Seq is the echo sequence number.
func (m ICMPv4) Seq() uint16 { return binary.BigEndian.Uint16(m[6:]) }

// NextHopMTU is the MTU field of a "fragmentation needed" message (RFC
// 1191 §4: the low 16 bits of the second word).
func (m ICMPv4) NextHopMTU() int { return int(binary.BigEndian.Uint16(m[6:])) }

// IsICMPError reports whether type t is an ICMP error message (RFC 1122
// §3.2.2: destination unreachable, source quench, redirect, time exceeded,
// parameter problem), about which no ICMP error may be sent.
func IsICMPError(t uint8) bool {
	switch t {
	case ICMPDestUnreach, ICMPSourceQuench, ICMPRedirect, ICMPTimeExceeded, ICMPParamProblem:
		return true
	}
	return false
}

// UpdateChecksum recomputes the message checksum.
func (m ICMPv4) UpdateChecksum() {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], ^Checksum(m, 0))
}
