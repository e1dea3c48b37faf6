package header

import "encoding/binary"

// ICMPv4 types the stack handles.
const (
	ICMPEchoReply   = 0
	ICMPDestUnreach = 3
	ICMPEcho        = 8

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

// UpdateChecksum recomputes the message checksum.
func (m ICMPv4) UpdateChecksum() {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], ^Checksum(m, 0))
}
