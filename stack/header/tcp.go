package header

import (
	"encoding/binary"
	"strconv"
)

// TCP header constants (RFC 9293 §3.1).
const (
	TCPMinHeaderLen = 20
	TCPMaxHeaderLen = 60

	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
	FlagURG = 0x20
	FlagECE = 0x40
	FlagCWR = 0x80

	OptEnd       = 0
	OptNOP       = 1
	OptMSS       = 2
	OptWS        = 3
	OptSACKPerm  = 4
	OptSACK      = 5
	OptTimestamp = 8

	// MaxSACKBlocks is how many SACK blocks fit in the option space.
	MaxSACKBlocks = 4
)

// TCP is a view of a TCP header followed by its payload.
type TCP []byte

// ParseTCP checks that b holds a TCP header whose data offset is sane. It does
// not check the checksum (that needs the pseudo-header: see TCPChecksumOK).
func ParseTCP(b []byte) (TCP, error) {
	if len(b) < TCPMinHeaderLen {
		return nil, ErrTooShort
	}
	off := int(b[12]>>4) * 4
	if off < TCPMinHeaderLen || off > len(b) {
		return nil, ErrBadDataOffset
	}
	return TCP(b), nil
}

// TCPChecksumOK verifies a segment's checksum with its IPv4 pseudo-header.
func TCPChecksumOK(seg []byte, src, dst [4]byte) bool {
	ph := PseudoHeaderChecksum(ProtoTCP, src, dst, uint16(len(seg)))
	return Checksum(seg, ph) == 0xffff
}

// SrcPort is the source port.
func (t TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(t[0:]) }

// DstPort is the destination port.
func (t TCP) DstPort() uint16 { return binary.BigEndian.Uint16(t[2:]) }

// Seq is the sequence number.
func (t TCP) Seq() uint32 { return binary.BigEndian.Uint32(t[4:]) }

// Ack is the acknowledgment number.
func (t TCP) Ack() uint32 { return binary.BigEndian.Uint32(t[8:]) }

// DataOffset is the header length in bytes.
func (t TCP) DataOffset() int { return int(t[12]>>4) * 4 }

// Flags are the control bits.
func (t TCP) Flags() uint8 { return t[13] }

// Window is the window field (unscaled).
func (t TCP) Window() uint16 { return binary.BigEndian.Uint16(t[14:]) }

// Urgent is the urgent pointer.
func (t TCP) Urgent() uint16 { return binary.BigEndian.Uint16(t[18:]) }

// Options returns the option bytes.
func (t TCP) Options() []byte { return t[TCPMinHeaderLen:t.DataOffset()] }

// Payload returns the data after the header.
func (t TCP) Payload() []byte { return t[t.DataOffset():] }

// SACKBlock is one SACK block [Start, End) (RFC 2018).
type SACKBlock struct{ Start, End uint32 }

// WindowScale is the window scale option (RFC 7323 §2.2): whether the
// segment carries it, and its shift count. The zero value is absent.
type WindowScale struct {
	Shift   uint8
	Present bool
}

func (w WindowScale) String() string {
	if !w.Present {
		return "off"
	}
	return strconv.Itoa(int(w.Shift))
}

// WS is a present window scale option with the given shift.
func WS(shift uint8) WindowScale { return WindowScale{Shift: shift, Present: true} }

// TCPOptions are the options the stack understands. The zero value carries
// none.
type TCPOptions struct {
	MSS          uint16 // 0: absent
	WS           WindowScale
	SACKPermit   bool
	TS           bool
	TSVal, TSEcr uint32
	NumSACK      int
	SACK         [MaxSACKBlocks]SACKBlock
}

// ParseTCPOptions parses option bytes (RFC 9293 §3.2). Unknown options are
// skipped by their length; a malformed length is an error.
func ParseTCPOptions(b []byte, o *TCPOptions) error {
	*o = TCPOptions{}
	for i := 0; i < len(b); {
		kind := b[i]
		switch kind {
		case OptEnd:
			return nil
		case OptNOP:
			i++
			continue
		}
		if i+1 >= len(b) {
			return ErrBadOption
		}
		l := int(b[i+1])
		if l < 2 || i+l > len(b) {
			return ErrBadOption
		}
		v := b[i+2 : i+l]
		switch kind {
		case OptMSS:
			if l != 4 {
				return ErrBadOption
			}
			o.MSS = binary.BigEndian.Uint16(v)
		case OptWS:
			if l != 3 {
				return ErrBadOption
			}
			ws := v[0]
			if ws > 14 { // RFC 7323 §2.3: treat as 14
				ws = 14
			}
			o.WS = WS(ws)
		case OptSACKPerm:
			if l != 2 {
				return ErrBadOption
			}
			o.SACKPermit = true
		case OptTimestamp:
			if l != 10 {
				return ErrBadOption
			}
			o.TS = true
			o.TSVal = binary.BigEndian.Uint32(v)
			o.TSEcr = binary.BigEndian.Uint32(v[4:])
		case OptSACK:
			if (l-2)%8 != 0 || l == 2 {
				return ErrBadOption
			}
			for j := 0; j+8 <= len(v) && o.NumSACK < MaxSACKBlocks; j += 8 {
				o.SACK[o.NumSACK] = SACKBlock{binary.BigEndian.Uint32(v[j:]), binary.BigEndian.Uint32(v[j+4:])}
				o.NumSACK++
			}
		}
		i += l
	}
	return nil
}

// PutTCPOptions writes o into b (padded with NOPs/End to a multiple of 4)
// and returns the number of bytes written, never more than 40: SACK blocks
// that do not fit are left out. b must hold 40 bytes.
func PutTCPOptions(b []byte, o *TCPOptions) int {
	n := 0
	if o.MSS != 0 {
		b[0], b[1] = OptMSS, 4
		binary.BigEndian.PutUint16(b[2:], o.MSS)
		n = 4
	}
	if o.SACKPermit && o.TS {
		b[n], b[n+1] = OptSACKPerm, 2
		n += 2
		n += putTS(b[n:], o)
	} else if o.TS {
		b[n], b[n+1] = OptNOP, OptNOP
		n += 2
		n += putTS(b[n:], o)
	} else if o.SACKPermit {
		b[n], b[n+1], b[n+2], b[n+3] = OptNOP, OptNOP, OptSACKPerm, 2
		n += 4
	}
	if o.WS.Present {
		b[n], b[n+1], b[n+2], b[n+3] = OptNOP, OptWS, 3, o.WS.Shift
		n += 4
	}
	// SACK blocks: as many as fit in the 40 bytes of option space (RFC 2018
	// §3: three when timestamps are in use, four otherwise).
	if k := min(o.NumSACK, (TCPMaxHeaderLen-TCPMinHeaderLen-n-4)/8); k > 0 {
		b[n], b[n+1] = OptNOP, OptNOP
		b[n+2], b[n+3] = OptSACK, byte(2+8*k)
		n += 4
		for i := 0; i < k; i++ {
			binary.BigEndian.PutUint32(b[n:], o.SACK[i].Start)
			binary.BigEndian.PutUint32(b[n+4:], o.SACK[i].End)
			n += 8
		}
	}
	for n%4 != 0 {
		b[n] = OptEnd
		n++
	}
	return n
}

func putTS(b []byte, o *TCPOptions) int {
	b[0], b[1] = OptTimestamp, 10
	binary.BigEndian.PutUint32(b[2:], o.TSVal)
	binary.BigEndian.PutUint32(b[6:], o.TSEcr)
	return 10
}

// TCPFields are the values PutTCP writes.
type TCPFields struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16
	OptLen           int // bytes of options already written after the fixed header
}

// PutTCP writes the fixed 20-byte TCP header into b (options, if any, must
// already sit at b[20:20+OptLen]). The checksum is left zero: see
// SetTCPChecksum.
func PutTCP(b []byte, f TCPFields) {
	_ = b[19]
	binary.BigEndian.PutUint16(b[0:], f.SrcPort)
	binary.BigEndian.PutUint16(b[2:], f.DstPort)
	binary.BigEndian.PutUint32(b[4:], f.Seq)
	binary.BigEndian.PutUint32(b[8:], f.Ack)
	b[12] = byte((TCPMinHeaderLen+f.OptLen)/4) << 4
	b[13] = f.Flags
	binary.BigEndian.PutUint16(b[14:], f.Window)
	b[16], b[17], b[18], b[19] = 0, 0, 0, 0
}

// SetTCPChecksum computes and stores the checksum of the whole segment seg.
func SetTCPChecksum(seg []byte, src, dst [4]byte) {
	seg[16], seg[17] = 0, 0
	ph := PseudoHeaderChecksum(ProtoTCP, src, dst, uint16(len(seg)))
	binary.BigEndian.PutUint16(seg[16:], ^Checksum(seg, ph))
}

// FlagString renders control bits as in tcpdump ("SYN|ACK").
func FlagString(f uint8) string {
	names := [...]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}
	s := ""
	for _, i := range []int{1, 2, 0, 3, 4, 5, 6, 7} {
		if f&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += names[i]
		}
	}
	if s == "" {
		return "none"
	}
	return s
}
