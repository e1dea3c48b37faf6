// Package ipv4 is the stack's network layer: it validates inbound IPv4
// datagrams, reassembles fragments, answers ICMP echo requests, reads ICMP
// errors for the stack, hands TCP segments up, and writes the IPv4 header
// of outbound packets, fragmenting those that may be. Every packet it
// refuses is counted under a named reason. Where the RFCs leave a choice, it
// does what Linux 6.x does, and says so where it happens.
//
// Heads up! The rules come from:
//
//   - RFC 791 §3.1 (header format, TTL, fragmentation fields) and §3.2
//     (fragmentation and reassembly; reasm.go, frag.go),
//   - RFC 1122 §3.2.1 (what a host must check on receipt: version §3.2.1.1,
//     checksum §3.2.1.2, addressing §3.2.1.3, TTL §3.2.1.7, options §3.2.1.8),
//     §3.3.2 (reassembly) and §3.2.2 (ICMP errors received and sent;
//     icmperr.go, ratelimit.go),
//   - RFC 1122 §3.2.2.6 and RFC 792 (echo request and reply),
//   - RFC 1191 (path MTU discovery; pmtu.go),
//   - RFC 6864 (the ID field: atomic datagrams §4.1, the others §4.2).
//
// Divergence, noted where it happens: IP options of an echo request are not
// echoed (RFC 1122 §3.2.2.6 SHOULD for record-route and timestamp).
package ipv4

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

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
	// the caller sends back as it is, in fragments if it exceeds the path
	// MTU (its DF is clear).
	Reply
	// Held: a fragment, kept for reassembly; the caller arms a timer for
	// NextFragmentExpiry and sends an ICMP time exceeded for each of
	// TakeExpired.
	Held
	// DeliverICMPError: the returned view holds an ICMP error about a TCP
	// segment or UDP datagram of ours; ParseICMPError reads it.
	DeliverICMPError
	// Unreachable: a datagram of a protocol we do not speak, dropped and
	// counted under UnknownProtocol; the caller answers with PutICMPError,
	// protocol unreachable (RFC 1122 §3.2.2.1: a host SHOULD).
	Unreachable
	// DeliverUDP: the returned view holds a UDP datagram addressed to us
	// (its header and checksum are the caller's to check).
	DeliverUDP
)

var verdictNames = [...]string{Drop: "drop", DeliverTCP: "deliver-tcp", Reply: "reply",
	Held: "held", DeliverICMPError: "deliver-icmp-error", Unreachable: "unreachable", DeliverUDP: "deliver-udp"}

func (v Verdict) String() string { return counter.Name(verdictNames[:], v, "verdict") }

// Event is something the layer counts that is not a drop.
type Event uint8

const (
	Received            Event = iota // packets passed to Input
	Delivered                        // handed to TCP or UDP
	Sent                             // headers written by PutHeader, echo replies, ICMP errors
	ICMPEchoReplied                  // echo requests turned into replies
	FragHeld                         // fragments kept for reassembly
	Reassembled                      // datagrams reassembled (counted once more as what they became)
	ReasmTimeouts                    // reassembly queues that timed out
	Fragmented                       // datagrams sent in fragments
	FragmentsSent                    // fragments written by PutFragment
	ICMPErrorsDelivered              // ICMP errors about our TCP segments or UDP datagrams handed to the stack
	ICMPErrorsSent                   // ICMP errors sent (protocol unreachable, time exceeded)
	ICMPRateLimited                  // ICMP errors not sent: rate limit
	numEvents
)

var eventNames = [numEvents]string{
	Received: "received", Delivered: "delivered", Sent: "sent", ICMPEchoReplied: "icmp_echo_replied",
	FragHeld: "frag_held", Reassembled: "reassembled", ReasmTimeouts: "reasm_timeouts",
	Fragmented: "fragmented", FragmentsSent: "fragments_sent", ICMPErrorsDelivered: "icmp_errors_delivered",
	ICMPErrorsSent: "icmp_errors_sent", ICMPRateLimited: "icmp_rate_limited",
}

func (e Event) String() string { return counter.Name(eventNames[:], e, "event") }

// Reason is why Input dropped a packet. Stats lists each as "drop_" and
// its name.
type Reason uint8

const (
	TooShort            Reason = iota // shorter than 20 bytes
	BadVersion                        // version != 4 (RFC 1122 §3.2.1.1)
	BadIHL                            // IHL < 5 or header beyond the packet
	BadTotalLength                    // total length < IHL or > packet length
	BadChecksum                       // header checksum (RFC 1122 §3.2.1.2)
	TTLZero                           // TTL 0 (RFC 791 §3.2 "Time to Live")
	NotForUs                          // destination is none of our addresses
	BadSource                         // source 0.0.0.0, broadcast, multicast or loopback (RFC 1122 §3.2.1.3)
	UnknownProtocol                   // neither TCP, UDP nor ICMP (answered with protocol unreachable)
	ICMPBad                           // ICMP message too short or bad checksum
	ICMPOtherDropped                  // ICMP types we do not consume (echo reply, source quench, redirect, ...)
	ICMPErrorBadQuote                 // ICMP error whose quote is short, not IPv4 or not from us
	ICMPErrorOtherProto               // ICMP error about a datagram other than TCP or UDP
	FragOverlap                       // fragment overlapping one held: its whole queue dropped
	FragDuplicate                     // fragment within data held
	FragBad                           // empty fragment, or a last fragment contradicting the queue (queue dropped)
	FragOversize                      // fragments adding up to over 65535 bytes (queue dropped)
	FragNoMemory                      // reassembly memory or queue cap reached
	NotUnicast                        // destination is a broadcast or multicast address
	numReasons
)

var reasonNames = [numReasons]string{
	TooShort: "too_short", BadVersion: "bad_version", BadIHL: "bad_ihl",
	BadTotalLength: "bad_total_length", BadChecksum: "bad_checksum", TTLZero: "ttl_zero",
	NotForUs: "not_for_us", BadSource: "bad_source",
	UnknownProtocol: "unknown_protocol", ICMPBad: "icmp_bad", ICMPOtherDropped: "icmp_other",
	ICMPErrorBadQuote: "icmp_error_bad_quote", ICMPErrorOtherProto: "icmp_error_other_proto",
	FragOverlap: "frag_overlap", FragDuplicate: "frag_duplicate", FragBad: "frag_bad",
	FragOversize: "frag_oversize", FragNoMemory: "frag_no_memory", NotUnicast: "not_unicast",
}

func (r Reason) String() string { return counter.Name(reasonNames[:], r, "reason") }

// Stats counts what Input saw. Every packet passed to Input counts as
// Received and then as exactly one of Delivered, ICMPEchoReplied,
// ICMPErrorsDelivered, FragHeld or a drop reason (the fragment that
// completes a datagram counts as what the datagram became), so Received ==
// Delivered + ICMPEchoReplied + ICMPErrorsDelivered + FragHeld + Dropped()
// once the callers are quiet.
type Stats struct {
	c counter.Layer[Event, Reason]

	reasmBytes, reasmQueues atomic.Int64 // gauges, set by the reassembler
}

func (s *Stats) setReasm(bytes, queues int) {
	s.reasmBytes.Store(int64(bytes))
	s.reasmQueues.Store(int64(queues))
}

// ReassemblyBytes is the memory the reassembly queues are charged now (at
// most ReassemblyMemCap), and ReassemblyQueues their number.
func (s *Stats) ReassemblyBytes() int { return int(s.reasmBytes.Load()) }

// ReassemblyQueues is the number of datagrams being reassembled.
func (s *Stats) ReassemblyQueues() int { return int(s.reasmQueues.Load()) }

func newStats() Stats { return Stats{c: counter.NewLayer(numEvents, "drop_", numReasons)} }

// Load returns the count of event e.
func (s *Stats) Load(e Event) uint64 { return s.c.Load(e) }

// Drops returns the packets dropped for reason r.
func (s *Stats) Drops(r Reason) uint64 { return s.c.Drops(r) }

// Dropped is the sum of all drop counters.
func (s *Stats) Dropped() uint64 { return s.c.Dropped() }

// Each lists every counter by name ("received", ..., "drop_bad_checksum",
// ...), then "dropped", the sum of the drop counters, then the gauges
// "reasm_bytes" and "reasm_queues".
func (s *Stats) Each(f func(name string, v uint64)) {
	s.c.Each(f)
	f("dropped", s.Dropped())
	f("reasm_bytes", uint64(s.reasmBytes.Load()))
	f("reasm_queues", uint64(s.reasmQueues.Load()))
}

// Snapshot returns what Each lists, as a map.
func (s *Stats) Snapshot() map[string]uint64 { return counter.Snapshot(s) }

// Layer is the IPv4 layer of one stack, with its addresses (SetAddrs).
// Input and PutHeader may be called from any number of goroutines.
type Layer struct {
	Stats Stats
	// PMTU holds the path MTUs learned from ICMP (RFC 1191).
	PMTU PMTUCache

	addrs atomic.Pointer[addrTable]
	id    atomic.Uint32 // next ID of atomic datagrams (low 16 bits used)
	ids   idents        // IDs of the others
	reasm reassembler
	limit icmpLimiter
}

// New returns a layer for addr, which must be an IPv4 (or IPv4-mapped IPv6)
// address; New panics otherwise. SetAddrs gives it more. The invalid Addr
// gives a layer with no address yet (a stack whose addresses are all IPv6
// for now).
func New(addr netip.Addr) *Layer {
	l := &Layer{Stats: newStats()}
	var list []netip.Prefix
	if addr.IsValid() {
		list = []netip.Prefix{netip.PrefixFrom(addr, addr.BitLen())}
	}
	if err := l.SetAddrs(list); err != nil {
		panic(fmt.Sprintf("ipv4: New(%v): %v", addr, err))
	}
	l.ids.init()
	l.reasm.init(&l.Stats)
	return l
}

func (l *Layer) drop(r Reason) (Verdict, header.IPv4) {
	l.Stats.c.Drop(r)
	return Drop, nil
}

// Input validates the raw packet pkt, received at now, the way RFC 1122
// §3.2.1 asks of a host, and decides its fate:
//
//   - DeliverTCP, with the header view trimmed to the total length, for a
//     TCP segment to one of our addresses (the TCP checksum is left to the
//     TCP layer, which needs the pseudo-header anyway); DeliverUDP likewise
//     for a UDP datagram;
//   - Reply for an ICMP echo request to us: it has been rewritten in place
//     into the echo reply, which is the returned view (bytes beyond it are
//     not part of the reply);
//   - DeliverICMPError for an ICMP error about one of our TCP segments or
//     UDP datagrams;
//   - Held for a fragment kept for reassembly;
//   - Unreachable for a protocol we do not speak (dropped, and counted);
//   - Drop for everything else, counted in Stats under its reason.
//
// The fragment that completes a datagram returns what the datagram gets,
// with a view of a new buffer holding it whole. Input never panics,
// whatever pkt holds, and allocates only to reassemble.
func (l *Layer) Input(now time.Time, pkt []byte) (Verdict, header.IPv4) {
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
	// RFC 1122 §3.2.1.3: we have our addresses and no broadcast or
	// multicast membership, so everything else is not ours (we do not
	// forward). Broadcasts and multicasts get a reason of their own.
	if t := l.addrs.Load(); !has(t.local, h.DstBytes()) {
		if t.notUnicast(h.DstBytes()) {
			return l.drop(NotUnicast)
		}
		return l.drop(NotForUs)
	}
	// RFC 1122 §3.2.1.3: a host MUST silently discard a datagram whose
	// source address is invalid: 0.0.0.0, limited broadcast, class D, or
	// loopback (127/8 "MUST NOT appear outside a host").
	if badSource(h.SrcBytes()) {
		return l.drop(BadSource)
	}
	// RFC 791 §3.2: MF set or a nonzero offset marks a fragment; RFC 1122
	// §3.3.2: a host MUST reassemble.
	if h.IsFragment() {
		dg, why := l.reasm.add(now, h)
		if why != 0 {
			return l.drop(why)
		}
		if dg == nil {
			l.Stats.c.Inc(FragHeld)
			return Held, nil
		}
		l.Stats.c.Inc(Reassembled)
		h = dg
	}
	// RFC 1122 §3.2.1.8: options are passed up untouched; the transport
	// layer reads the payload after HeaderLen.
	switch h.Protocol() {
	case header.ProtoTCP:
		l.Stats.c.Inc(Delivered)
		return DeliverTCP, h
	case header.ProtoUDP:
		l.Stats.c.Inc(Delivered)
		return DeliverUDP, h
	case header.ProtoICMP:
		return l.icmp(now, h)
	}
	l.Stats.c.Drop(UnknownProtocol)
	return Unreachable, h
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
func (l *Layer) icmp(now time.Time, h header.IPv4) (Verdict, header.IPv4) {
	// RFC 792: the checksum covers the whole ICMP message.
	m, err := header.ParseICMPv4(h.Payload())
	if err != nil {
		return l.drop(ICMPBad)
	}
	switch m.Type() {
	case header.ICMPEcho:
		return l.echoReply(now, h), h[:header.IPv4MinHeaderLen+len(m)]
	case header.ICMPDestUnreach, header.ICMPTimeExceeded, header.ICMPParamProblem:
		// RFC 1122 §3.2.2.1, §3.2.2.4 and §3.2.2.5: passed to the
		// transport layer, which the quote names.
		if _, why := l.ParseICMPError(h); why != 0 {
			return l.drop(why)
		}
		l.Stats.c.Inc(ICMPErrorsDelivered)
		return DeliverICMPError, h
	}
	// Echo replies (we send no requests), source quench (RFC 6633: TCP
	// MUST ignore it), redirects (we have one route) and the rest.
	return l.drop(ICMPOtherDropped)
}

// echoReply turns the echo request in h into its reply, in place, and returns
// Reply. The reply is h[:20+len(ICMP message)].
//
// RFC 792 "Echo or Echo Reply Message": the addresses are reversed, the type
// becomes 0, the identifier, sequence number and data are returned unchanged,
// and the checksum is recomputed. RFC 1122 §3.2.2.6: a host MUST answer echo
// requests, with the same data. The reply is a new datagram, as Linux sends
// it (its ICMP socket is IP_PMTUDISC_DONT): DF clear, so that a reply over
// the path MTU goes in fragments, an ID from the per-destination counters
// (RFC 6864 §4.2), TTL 64, TOS 0. Divergence: IP options of the request are
// not carried over (RFC 1122 §3.2.2.6 SHOULD echo record-route and
// timestamp, MUST reverse a source route); the ICMP message moves up to
// follow a 20-byte header instead.
func (l *Layer) echoReply(now time.Time, h header.IPv4) Verdict {
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
	header.PutIPv4(h, header.IPv4Fields{
		TotalLen: uint16(header.IPv4MinHeaderLen + n),
		ID:       l.ids.next(now, dst, src, header.ProtoICMP),
		TTL:      DefaultTTL,
		Protocol: header.ProtoICMP,
		Src:      dst,
		Dst:      src,
	})
	l.Stats.c.Inc(ICMPEchoReplied)
	l.Stats.c.Inc(Sent)
	return Reply
}

// PutHeader writes a 20-byte IPv4 header into b[:20] for an atomic
// datagram (RFC 6864 §4.1: DF set, not fragmented) from src to dst
// carrying payloadLen bytes of protocol proto: total length 20+payloadLen,
// the next ID of this layer, DF, TTL 64, and the checksum. It panics if b is
// shorter than 20 bytes or the packet would exceed 65535 bytes.
//
// RFC 6864 §4.1: the ID of an atomic datagram "MAY be set to any value".
// Linux numbers the datagrams of each socket from a random start (inet_id);
// we number those of the whole layer, which is as unique and needs no
// per-connection state here.
func (l *Layer) PutHeader(b []byte, src, dst [4]byte, proto uint8, payloadLen int) {
	l.putHeader(b, src, dst, proto, payloadLen, header.IPv4FlagDF, uint16(l.id.Add(1)-1))
}

// PutHeaderNoDF is PutHeader for a datagram that may be fragmented (DF
// clear): its ID comes from the per-destination counters, unique per
// (source, destination, protocol) for longer than the reassembly timeout
// at any rate below 65536 datagrams in 30 s (RFC 6864 §4.2).
func (l *Layer) PutHeaderNoDF(now time.Time, b []byte, src, dst [4]byte, proto uint8, payloadLen int) {
	l.putHeader(b, src, dst, proto, payloadLen, 0, l.ids.next(now, src, dst, proto))
}

func (l *Layer) putHeader(b []byte, src, dst [4]byte, proto uint8, payloadLen int, flags, id uint16) {
	if payloadLen < 0 || payloadLen > 0xffff-header.IPv4MinHeaderLen {
		panic(fmt.Sprintf("ipv4: PutHeader: payload length %d out of range", payloadLen))
	}
	header.PutIPv4(b, header.IPv4Fields{
		TotalLen: uint16(header.IPv4MinHeaderLen + payloadLen),
		ID:       id,
		Flags:    flags,
		TTL:      DefaultTTL,
		Protocol: proto,
		Src:      src,
		Dst:      dst,
	})
	l.Stats.c.Inc(Sent)
}
