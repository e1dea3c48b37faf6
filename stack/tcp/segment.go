package tcp

import (
	"fmt"
	"net/netip"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// ID is a connection's 4-tuple as seen from this stack.
type ID struct {
	Local, Remote netip.AddrPort
}

func (id ID) String() string { return id.Local.String() + "<->" + id.Remote.String() }

// Segment is a parsed TCP segment: the Go form of smoltcp's TcpRepr. The
// state machine works on these, never on raw bytes.
type Segment struct {
	Seq, Ack seqnum.Value
	Flags    uint8
	Wnd      uint16 // the raw window field; scaling applies in the TCB
	Opts     header.TCPOptions
	Payload  []byte
	// SegSize, when the payload is longer, is the payload of each segment
	// the link cuts it into (TSO: Config.TSOMax); otherwise zero.
	SegSize int

	arr *array // the send buffer's array Payload lies in (Pin), or the PacketBuf's it was read into (InPacketBuf); else nil
}

// InPacketBuf tells the receiving TCB that the payload lies in p, which it
// may adopt instead of copying (see PacketBuf). A payload elsewhere (a
// reassembled datagram) is left as it is.
func (s *Segment) InPacketBuf(p PacketBuf) {
	if p.a != nil {
		if _, ok := within(p.a.b, s.Payload); ok {
			s.arr = p.a
		}
	}
}

// Pin lets a Sender keep the segment's payload after Send returns, without
// copying it: the send buffer then leaves those bytes as they are until
// Unpin, even once they are acknowledged. ok is false when the payload is
// not the send buffer's (a copy must be made). Pin is called within
// Sender.Send only.
func (s *Segment) Pin() (p Pinned, ok bool) {
	if s.arr == nil || s.arr.rx || len(s.Payload) == 0 {
		return Pinned{}, false
	}
	s.arr.pins.Add(1)
	return Pinned{s.arr}, true
}

// Has reports whether every flag in f is set.
func (s *Segment) Has(f uint8) bool { return s.Flags&f == f }

// Len is SEG.LEN: the payload plus one for SYN and one for FIN (RFC 9293 §3.4).
func (s *Segment) Len() seqnum.Size {
	n := seqnum.Size(len(s.Payload))
	if s.Flags&header.FlagSYN != 0 {
		n++
	}
	if s.Flags&header.FlagFIN != 0 {
		n++
	}
	return n
}

func (s *Segment) String() string {
	str := fmt.Sprintf("%s seq=%d ack=%d win=%d len=%d", header.FlagString(s.Flags), uint32(s.Seq), uint32(s.Ack), s.Wnd, len(s.Payload))
	if s.Opts.MSS != 0 {
		str += fmt.Sprintf(" mss=%d", s.Opts.MSS)
	}
	if s.Opts.WS.Present {
		str += fmt.Sprintf(" ws=%d", s.Opts.WS.Shift)
	}
	if s.Opts.SACKPermit {
		str += " sackOK"
	}
	if s.Opts.TS {
		str += fmt.Sprintf(" ts=%d/%d", s.Opts.TSVal, s.Opts.TSEcr)
	}
	for i := 0; i < s.Opts.NumSACK; i++ {
		str += fmt.Sprintf(" sack=%d-%d", s.Opts.SACK[i].Start, s.Opts.SACK[i].End)
	}
	return str
}

// FromHeader fills s from a parsed TCP header. It returns an error for
// malformed options.
func (s *Segment) FromHeader(t header.TCP) error {
	s.Seq = seqnum.Value(t.Seq())
	s.Ack = seqnum.Value(t.Ack())
	s.Flags = t.Flags()
	s.Wnd = t.Window()
	s.Payload = t.Payload()
	return header.ParseTCPOptions(t.Options(), &s.Opts)
}

// ResetFor returns the reset to send in answer to seg when no connection
// exists for it (RFC 9293 §3.10.7.1): an RST is never answered; if the
// segment has ACK, the reset takes its sequence number from SEG.ACK;
// otherwise it is <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
func ResetFor(seg *Segment) (Segment, bool) {
	if seg.Flags&header.FlagRST != 0 {
		return Segment{}, false
	}
	r := Segment{Opts: header.TCPOptions{}}
	if seg.Flags&header.FlagACK != 0 {
		r.Seq = seg.Ack
		r.Flags = header.FlagRST
	} else {
		r.Ack = seg.Seq.Add(seg.Len())
		r.Flags = header.FlagRST | header.FlagACK
	}
	return r, true
}
