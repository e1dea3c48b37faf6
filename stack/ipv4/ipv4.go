// Package ipv4 is the stack's network layer: it validates inbound IPv4
// datagrams, answers ICMP echo requests in place, hands TCP segments up, and
// writes the IPv4 header of outbound packets. Every packet it refuses is
// counted under a named reason.
//
// Heads up! The rules come from:
//
//   - RFC 791 §3.1 (header format, TTL, fragmentation fields),
//   - RFC 1122 §3.2.1 (what a host must check on receipt: version §3.2.1.1,
//     checksum §3.2.1.2, addressing §3.2.1.3, TTL §3.2.1.7, options §3.2.1.8),
//   - RFC 1122 §3.2.2.6 and RFC 792 (echo request and reply),
//   - RFC 6864 §4.1 (the ID field of atomic datagrams).
//
// Divergences, each noted where it happens: fragments are dropped (no
// reassembly yet, RFC 1122 §3.3.2 says a host MUST reassemble); no ICMP
// protocol-unreachable is sent for unknown protocols (RFC 1122 §3.2.2.1
// SHOULD); IP options of an echo request are not echoed (RFC 1122 §3.2.2.6
// SHOULD for record-route and timestamp).
package ipv4

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"ustack/stack/counter"
	"ustack/stack/header"
)

// DefaultTTL is the TTL of every datagram the layer sends (RFC 1122 §3.2.1.7:
// a fixed default, configurable; Linux uses 64 too).
const DefaultTTL = 64

// Verdict is what the caller does with a packet after Input.
type Verdict uint8

const (
	// Drop: the packet was refused and counted; the caller forgets it.
	Drop Verdict = iota
	// DeliverTCP: the returned view holds a TCP segment addressed to us.
	DeliverTCP
	// Reply: the packet was rewritten in place into the returned view, which
	// the caller sends back as it is.
	Reply
)

var verdictNames = [...]string{Drop: "drop", DeliverTCP: "deliver-tcp", Reply: "reply"}

func (v Verdict) String() string { return counter.Name(verdictNames[:], v, "verdict") }

// Event is something the layer counts that is not a drop.
type Event uint8

const (
	Received        Event = iota // packets passed to Input
	Delivered                    // handed to TCP
	Sent                         // headers written by PutHeader, and echo replies
	ICMPEchoReplied              // echo requests turned into replies
	numEvents
)

var eventNames = [numEvents]string{
	Received: "received", Delivered: "delivered", Sent: "sent", ICMPEchoReplied: "icmp_echo_replied",
}

func (e Event) String() string { return counter.Name(eventNames[:], e, "event") }

// Reason is why Input dropped a packet. Stats lists each as "drop_" and
// its name.
type Reason uint8

const (
	TooShort         Reason = iota // shorter than 20 bytes
	BadVersion                     // version != 4 (RFC 1122 §3.2.1.1)
	BadIHL                         // IHL < 5 or header beyond the packet
	BadTotalLength                 // total length < IHL or > packet length
	BadChecksum                    // header checksum (RFC 1122 §3.2.1.2)
	TTLZero                        // TTL 0 (RFC 791 §3.2 "Time to Live")
	Fragment                       // MF or offset set: no reassembly yet
	NotForUs                       // destination is not Addr
	BadSource                      // source 0.0.0.0, broadcast, multicast or loopback (RFC 1122 §3.2.1.3)
	UnknownProtocol                // neither TCP nor ICMP
	ICMPBad                        // ICMP message too short or bad checksum
	ICMPOtherDropped               // ICMP types other than echo request
	numReasons
)

var reasonNames = [numReasons]string{
	TooShort: "too_short", BadVersion: "bad_version", BadIHL: "bad_ihl",
	BadTotalLength: "bad_total_length", BadChecksum: "bad_checksum", TTLZero: "ttl_zero",
	Fragment: "fragment", NotForUs: "not_for_us", BadSource: "bad_source",
	UnknownProtocol: "unknown_protocol", ICMPBad: "icmp_bad", ICMPOtherDropped: "icmp_other",
}

func (r Reason) String() string { return counter.Name(reasonNames[:], r, "reason") }

// Stats counts what Input saw. Every packet passed to Input counts as
// Received and then as exactly one of Delivered, ICMPEchoReplied or a drop
// reason, so Received == Delivered + ICMPEchoReplied + Dropped() once the
// callers are quiet.
type Stats struct{ c counter.Layer[Event, Reason] }

func newStats() Stats { return Stats{counter.NewLayer(numEvents, "drop_", numReasons)} }

// Load returns the count of event e.
func (s *Stats) Load(e Event) uint64 { return s.c.Load(e) }

// Drops returns the packets dropped for reason r.
func (s *Stats) Drops(r Reason) uint64 { return s.c.Drops(r) }

// Dropped is the sum of all drop counters.
func (s *Stats) Dropped() uint64 { return s.c.Dropped() }

// Each lists every counter by name ("received", ..., "drop_bad_checksum",
// ...), then "dropped", the sum of the drop counters.
func (s *Stats) Each(f func(name string, v uint64)) {
	s.c.Each(f)
	f("dropped", s.Dropped())
}

// Snapshot returns what Each lists, as a map.
func (s *Stats) Snapshot() map[string]uint64 { return counter.Snapshot(s) }

// Layer is the IPv4 layer of one stack with one address. Input and PutHeader
// may be called from any number of goroutines.
type Layer struct {
	Addr  [4]byte
	Stats Stats

	id atomic.Uint32 // next IPv4 ID (low 16 bits used)
}

// New returns a layer for addr, which must be an IPv4 (or IPv4-mapped IPv6)
// address; New panics otherwise.
func New(addr netip.Addr) *Layer {
	addr = addr.Unmap()
	if !addr.Is4() {
		panic(fmt.Sprintf("ipv4: New(%v): not an IPv4 address", addr))
	}
	return &Layer{Addr: addr.As4(), Stats: newStats()}
}

func (l *Layer) drop(r Reason) (Verdict, header.IPv4) {
	l.Stats.c.Drop(r)
	return Drop, nil
}

// Input validates the raw packet pkt, the way RFC 1122 §3.2.1 asks of a host,
// and decides its fate:
//
//   - DeliverTCP, with the header view trimmed to the total length, for a
//     TCP segment to Addr (the TCP checksum is left to the TCP layer, which
//     needs the pseudo-header anyway);
//   - Reply for an ICMP echo request to Addr: pkt has been rewritten in place
//     into the echo reply, which is the returned view (a prefix of pkt; bytes
//     beyond it are not part of the reply);
//   - Drop for everything else, counted in Stats under its reason.
//
// Input never panics, whatever pkt holds, and does not allocate.
func (l *Layer) Input(pkt []byte) (Verdict, header.IPv4) {
	l.Stats.c.Inc(Received)
	h, err := header.ParseIPv4(pkt)
	switch err {
	case nil:
	case header.ErrTooShort:
		return l.drop(TooShort)
	case header.ErrBadVersion:
		// RFC 1122 §3.2.1.1: a datagram whose version number is not 4
		// MUST be silently discarded.
		return l.drop(BadVersion)
	case header.ErrBadIHL:
		return l.drop(BadIHL)
	case header.ErrBadTotalLength:
		return l.drop(BadTotalLength)
	default: // header.ErrBadChecksum
		// RFC 1122 §3.2.1.2: a host MUST verify the header checksum and
		// silently discard a datagram that fails.
		return l.drop(BadChecksum)
	}
	// RFC 791 §3.1 "Time to Live": a datagram whose TTL is zero must be
	// destroyed. (A host does not decrement TTL, and RFC 1122 §3.2.1.7
	// forbids discarding for TTL 1.)
	if h.TTL() == 0 {
		return l.drop(TTLZero)
	}
	// RFC 1122 §3.2.1.3: we have one address and no broadcast or multicast
	// membership, so everything else is not ours (we do not forward).
	if h.DstBytes() != l.Addr {
		return l.drop(NotForUs)
	}
	// RFC 1122 §3.2.1.3: a host MUST silently discard a datagram whose
	// source address is invalid: 0.0.0.0, limited broadcast, class D, or
	// loopback (127/8 "MUST NOT appear outside a host").
	if badSource(h.SrcBytes()) {
		return l.drop(BadSource)
	}
	// RFC 791 §3.2 "Fragmentation and Reassembly": MF set or a nonzero
	// offset marks a fragment. Divergence: RFC 1122 §3.3.2 requires
	// reassembly; until it exists fragments are dropped and counted. Our
	// peers send with DF and honour our MSS, so this is rare.
	if h.IsFragment() {
		return l.drop(Fragment)
	}
	// RFC 1122 §3.2.1.8: options are passed up untouched; the transport
	// layer reads the payload after HeaderLen.
	switch h.Protocol() {
	case header.ProtoTCP:
		l.Stats.c.Inc(Delivered)
		return DeliverTCP, h
	case header.ProtoICMP:
		return l.icmp(h)
	}
	// Divergence: RFC 1122 §3.2.2.1 says a host SHOULD answer with ICMP
	// protocol unreachable; we only count.
	return l.drop(UnknownProtocol)
}

// badSource reports source addresses RFC 1122 §3.2.1.3 forbids.
func badSource(a [4]byte) bool {
	switch {
	case a == [4]byte{}: // {0, 0}: "this host", only while booting
		return true
	case a == [4]byte{255, 255, 255, 255}: // limited broadcast
		return true
	case a[0]&0xf0 == 224: // class D (multicast), RFC 1112 §4
		return true
	case a[0] == 127: // loopback
		return true
	}
	return false
}

// icmp handles an ICMP message in datagram h (already validated and to us).
func (l *Layer) icmp(h header.IPv4) (Verdict, header.IPv4) {
	// RFC 792: the checksum covers the whole ICMP message.
	m, err := header.ParseICMPv4(h.Payload())
	if err != nil {
		return l.drop(ICMPBad)
	}
	if m.Type() != header.ICMPEcho {
		// Echo replies (we send no requests), destination unreachable and
		// the rest: nobody consumes them yet.
		return l.drop(ICMPOtherDropped)
	}
	return l.echoReply(h), h[:header.IPv4MinHeaderLen+len(m)]
}

// echoReply turns the echo request in h into its reply, in place, and returns
// Reply. The reply is h[:20+len(ICMP message)].
//
// RFC 792 "Echo or Echo Reply Message": the addresses are reversed, the type
// becomes 0, the identifier, sequence number and data are returned unchanged,
// and the checksum is recomputed. RFC 1122 §3.2.2.6: a host MUST answer echo
// requests, with the same data. The reply is a new datagram: fresh ID, DF
// (RFC 6864 §4.1 atomic datagram), TTL 64, TOS 0. Divergence: IP options of
// the request are not carried over (RFC 1122 §3.2.2.6 SHOULD echo
// record-route and timestamp, MUST reverse a source route); the ICMP message
// moves up to follow a 20-byte header instead.
func (l *Layer) echoReply(h header.IPv4) Verdict {
	src, dst := h.SrcBytes(), h.DstBytes()
	hl := h.HeaderLen()
	n := len(h) - hl
	if hl != header.IPv4MinHeaderLen {
		copy(h[header.IPv4MinHeaderLen:], h[hl:])
	}
	m := header.ICMPv4(h[header.IPv4MinHeaderLen : header.IPv4MinHeaderLen+n])
	// Incremental update (RFC 1624 eqn. 3) would do; the full sum is simple
	// and the message is short.
	m.SetType(header.ICMPEchoReply)
	m.SetCode(0)
	m.UpdateChecksum()
	l.put(h, dst, src, header.ProtoICMP, n)
	l.Stats.c.Inc(ICMPEchoReplied)
	l.Stats.c.Inc(Sent)
	return Reply
}

// PutHeader writes a 20-byte IPv4 header into b[:20] for a packet from Addr
// to dst carrying payloadLen bytes of protocol proto: total length
// 20+payloadLen, the next ID of this layer, DF, TTL 64, and the checksum. It
// panics if b is shorter than 20 bytes or the packet would exceed 65535 bytes.
func (l *Layer) PutHeader(b []byte, dst [4]byte, proto uint8, payloadLen int) {
	if payloadLen < 0 || payloadLen > 0xffff-header.IPv4MinHeaderLen {
		panic(fmt.Sprintf("ipv4: PutHeader: payload length %d out of range", payloadLen))
	}
	l.put(b, l.Addr, dst, proto, payloadLen)
	l.Stats.c.Inc(Sent)
}

func (l *Layer) put(b []byte, src, dst [4]byte, proto uint8, payloadLen int) {
	// RFC 6864 §4.1: the ID of an atomic datagram (DF set, not fragmented)
	// carries no meaning; a per-layer counter is cheap and unique enough.
	id := uint16(l.id.Add(1) - 1)
	header.PutIPv4(b, header.IPv4Fields{
		TotalLen: uint16(header.IPv4MinHeaderLen + payloadLen),
		ID:       id,
		Flags:    header.IPv4FlagDF,
		TTL:      DefaultTTL,
		Protocol: proto,
		Src:      src,
		Dst:      dst,
	})
}
