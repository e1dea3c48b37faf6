// Package record keeps what a lab saw on the link: the TCP segments (parsed
// from raw IPv4 or IPv6 packets) and the state transitions of each side, and answers
// the questions a lab's claims ask about them.
package record

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// Pkt is one TCP segment seen on the link.
type Pkt struct {
	T        time.Time
	ToServer bool // sent by the client (or injected towards the server)
	Flags    uint8
	Seq, Ack uint32
	Src, Dst netip.Addr
	SrcPort  uint16
	DstPort  uint16
	Payload  []byte
	Window   uint16 // the window field as sent (unscaled)
	Dropped  bool   // lost on purpose by an Impair rule
	Injected bool   // written into the link by the lab (an old duplicate)
}

// Is reports whether the segment's flags, PSH aside, are exactly flags.
func (p Pkt) Is(flags uint8) bool { return p.Flags&^header.FlagPSH == flags }

// Has reports whether every flag in flags is set.
func (p Pkt) Has(flags uint8) bool { return p.Flags&flags == flags }

// Parse reads an IPv4/TCP packet, or an IPv6 one whose next header is
// TCP (extension headers are not followed); ok is false for anything
// else. The payload is copied.
func Parse(pkt []byte) (Pkt, bool) {
	var src, dst netip.Addr
	var seg []byte
	if len(pkt) > 0 && pkt[0]>>4 == 6 {
		h, err := header.ParseIPv6(pkt)
		if err != nil || h.NextHeader() != header.ProtoTCP {
			return Pkt{}, false
		}
		src, dst, seg = h.Src(), h.Dst(), h[header.IPv6HeaderLen:]
	} else {
		h, err := header.ParseIPv4(pkt)
		if err != nil || h.Protocol() != header.ProtoTCP {
			return Pkt{}, false
		}
		src, dst, seg = h.Src(), h.Dst(), h.Payload()
	}
	t, err := header.ParseTCP(seg)
	if err != nil {
		return Pkt{}, false
	}
	return Pkt{
		Flags: t.Flags(), Seq: t.Seq(), Ack: t.Ack(), Src: src, Dst: dst, SrcPort: t.SrcPort(), DstPort: t.DstPort(), Window: t.Window(),
		Payload: append([]byte(nil), t.Payload()...),
	}, true
}

// Build makes a TCP packet from src to dst, IPv4 or IPv6 as the
// addresses are, with link.Headroom in front and correct checksums; a SYN
// carries the MSS option of a host on a 1500-byte link: 1460 over IPv4,
// 1440 over IPv6 (RFC 8200's 40-byte header, RFC 9293 §3.7.1).
func Build(src, dst netip.AddrPort, seq, ack uint32, flags uint8, payload []byte) []byte {
	v6 := !src.Addr().Unmap().Is4()
	ipLen, mss := header.IPv4MinHeaderLen, uint16(1460)
	if v6 {
		ipLen, mss = header.IPv6HeaderLen, 1440
	}
	b := make([]byte, link.Headroom+ipLen+20+4+len(payload))
	p := b[link.Headroom:]
	t := p[ipLen:]
	optLen := 0
	if flags&header.FlagSYN != 0 {
		o := header.TCPOptions{MSS: mss}
		optLen = header.PutTCPOptions(t[20:], &o)
	}
	copy(t[20+optLen:], payload)
	segLen := 20 + optLen + len(payload)
	header.PutTCP(t, header.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(), Seq: seq, Ack: ack, Flags: flags, Window: 65535, OptLen: optLen})
	if v6 {
		header.SetTransportChecksum(t[:segLen], 16, header.PseudoSum(header.ProtoTCP, src.Addr(), dst.Addr(), segLen))
		header.PutIPv6(p, header.IPv6Fields{PayloadLen: uint16(segLen), NextHeader: header.ProtoTCP, HopLimit: 64, Src: src.Addr().As16(), Dst: dst.Addr().As16()})
	} else {
		header.SetTCPChecksum(t[:segLen], src.Addr().Unmap().As4(), dst.Addr().Unmap().As4())
		header.PutIPv4(p, header.IPv4Fields{TotalLen: uint16(ipLen + segLen), TTL: 64, Protocol: header.ProtoTCP, Src: src.Addr().Unmap().As4(), Dst: dst.Addr().Unmap().As4()})
	}
	return b[:link.Headroom+ipLen+segLen]
}

// State is one state transition of a side.
type State struct {
	T        time.Time
	Server   bool
	ID       tcp.ID
	From, To tcp.State
	Cause    string
}

// Recorder keeps what a lab saw, for its claims. It is safe for concurrent
// use.
type Recorder struct {
	mu     sync.Mutex
	pkts   []Pkt
	states []State
}

// AddPkt records a segment and returns its index.
func (rec *Recorder) AddPkt(p Pkt) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.pkts = append(rec.pkts, p)
	return len(rec.pkts) - 1
}

// Packets returns a copy of the segments recorded so far.
func (rec *Recorder) Packets() []Pkt {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.pkts)
}

// WaitPkts waits, up to d, until cond holds for the packets recorded so far
// and returns them (as they are at the deadline if it never holds): a
// real-time lab waits for the segment its story needs, not for a guess.
func (rec *Recorder) WaitPkts(d time.Duration, cond func([]Pkt) bool) []Pkt {
	var pk []Pkt
	waitfor.Within(d, func() bool { pk = rec.Packets(); return cond(pk) })
	return pk
}

// AddState records a state transition.
func (rec *Recorder) AddState(s State) {
	rec.mu.Lock()
	rec.states = append(rec.states, s)
	rec.mu.Unlock()
}

// StateLog returns a copy of the transitions recorded so far.
func (rec *Recorder) StateLog() []State {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.states)
}

// onPort reports whether a transition is on a connection with port at
// either end (any connection if port is zero).
func (s State) onPort(port uint16) bool {
	return port == 0 || s.ID.Local.Port() == port || s.ID.Remote.Port() == port
}

// States lists the states one side went through (its first "from" and
// every "to"), optionally only on the connection with the given port.
func (rec *Recorder) States(server bool, port uint16) []string {
	var out []string
	for _, s := range rec.StateLog() {
		if s.Server != server || !s.onPort(port) {
			continue
		}
		if len(out) == 0 {
			out = append(out, s.From.String())
		}
		out = append(out, s.To.String())
	}
	return out
}

// StateAt is when a side entered a state (on the connection with port, if
// not zero); ok is false if it never did.
func (rec *Recorder) StateAt(server bool, port uint16, st tcp.State) (time.Time, State, bool) {
	for _, s := range rec.StateLog() {
		if s.Server == server && s.To == st && s.onPort(port) {
			return s.T, s, true
		}
	}
	return time.Time{}, State{}, false
}
