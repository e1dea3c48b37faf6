// Package ipv6 is the stack's IPv6 network layer, the counterpart of
// package ipv4: it validates inbound datagrams, walks their extension
// headers, reassembles fragments, answers ICMPv6 echo requests, reads
// ICMPv6 errors for the transports, writes the header of outbound
// datagrams and fragments the layer's own. Every packet it refuses is
// counted under a named reason. Where the RFCs leave a choice it does what
// Linux 6.x does, and says so where it happens.
//
// The rules come from:
//
//   - RFC 8200 §3 (header), §4 (extension headers: order, options §4.2,
//     hop-by-hop §4.3, routing §4.4, fragment §4.5 with reassembly,
//     destination options §4.6, no next header §4.7), §5 (minimum MTU
//     1280), §8.1 (pseudo-header);
//   - RFC 4291 §2.5.2-§2.5.3, §2.7 and §2.8 (which source and destination
//     addresses a host accepts; the multicast groups it must recognise);
//   - RFC 5095 (type 0 routing header), RFC 5722 (overlapping fragments),
//     RFC 6946 (atomic fragments), RFC 7112 (the first fragment holds the
//     whole header chain), RFC 7739 and RFC 6437 (fragment IDs, flow
//     labels), RFC 8504 §5.3 (limits on extension headers);
//   - RFC 4443 (ICMPv6: checksum §2.3, which errors are sent §2.4, rate
//     limit §2.4(f), echo §4);
//   - RFC 8201 (path MTU discovery).
//
// Limits chosen (RFC 8504 §5.3 lets a host set them):
//
//   - at most MaxOptions options other than padding in one hop-by-hop or
//     destination options header (Linux's net.ipv6.max_hbh_opts_number and
//     max_dst_opts_number, 8); no limit on their length beyond the format's
//     2048 bytes (Linux's max_*_opts_length is INT_MAX); at most 7 bytes of
//     consecutive padding, and PadN holds zeros (Linux, after RFC 4942
//     §2.1.9.5);
//   - at most MaxExtHeaders extension headers and MaxExtChainBytes bytes of
//     them in one datagram (ours: Linux has no such limit);
//   - reassembly: ReassemblyTimeout 60 s (RFC 8200 §4.5, Linux's
//     ip6frag_time), ReassemblyMemCap 4 MiB (Linux's ip6frag_high_thresh)
//     and ReassemblyMaxQueues 4096, as package ipv4;
//   - ICMPv6 errors: Linux's rate limits (ratelimit.go), quotes up to the
//     1280-byte minimum MTU (RFC 4443 §2.4(c));
//   - path MTU: never below 1280, learned values expire after 10 minutes.
//
// A TUN device has no link layer, so neighbour discovery and router
// messages (RFC 4861, ICMPv6 types 133-137) mean nothing here: they are
// counted and dropped, and so are MLD messages.
package ipv6

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"ustack/stack/counter"
	"ustack/stack/header"
)

// DefaultHopLimit is the hop limit of every datagram the layer sends
// (Linux's net.ipv6.conf.*.hop_limit, 64).
const DefaultHopLimit = 64

// Verdict is what the caller does with a packet after Input.
type Verdict uint8

const (
	// Drop: nothing for the caller to do. The packet was refused and
	// counted under its reason, or taken by the layer (a Packet Too Big
	// about one of our echo replies, counted as ICMPErrorsTaken).
	Drop Verdict = iota
	// Deliver: Packet.Payload is a TCP or UDP packet (Packet.Proto) to one
	// of our addresses; the transport checks its checksum.
	Deliver
	// Reply: the packet was rewritten in place into an echo reply,
	// Packet.IP, which the caller sends as it is, or with PutFragment when
	// it exceeds the path MTU.
	Reply
	// Held: a fragment kept for reassembly; the caller arms a timer for
	// NextFragmentExpiry and sends an ICMPv6 time exceeded for each of
	// TakeExpired.
	Held
	// DeliverICMPError: Packet.ICMP is an ICMPv6 error about a TCP or UDP
	// packet of ours.
	DeliverICMPError
	// SendError: the packet was dropped and counted; the caller answers
	// with PutICMPError(now, b, Packet.IP, Packet.ErrType, Packet.ErrCode,
	// Packet.ErrParam), which applies RFC 4443 §2.4's rules and the rate
	// limit.
	SendError
)

var verdictNames = [...]string{Drop: "drop", Deliver: "deliver", Reply: "reply", Held: "held",
	DeliverICMPError: "deliver-icmp-error", SendError: "send-error"}

func (v Verdict) String() string { return counter.Name(verdictNames[:], v, "verdict") }

// Packet is what Input returns about a packet.
type Packet struct {
	// IP is the datagram, trimmed to its payload length: the packet
	// passed to Input, the reassembled datagram (a new buffer) once a
	// fragment completes one, or the reply for Reply.
	IP header.IPv6
	// Proto is the upper-layer protocol: the Next Header value that ends
	// the extension header chain.
	Proto uint8
	// Off is the offset of the upper-layer header in IP.
	Off int
	// Src and Dst are IP's addresses.
	Src, Dst [16]byte
	// Multicast: Dst is a multicast group of ours (ff02::1, or the
	// solicited-node group of one of our addresses).
	Multicast bool
	// ErrType, ErrCode and ErrParam are the ICMPv6 error to send about IP
	// for SendError (ErrParam is the pointer of a parameter problem, RFC
	// 4443 §3.4).
	ErrType, ErrCode uint8
	ErrParam         uint32
	// ICMP is the error read for DeliverICMPError.
	ICMP ICMPError
}

// Payload is the upper-layer packet: IP from Off.
func (p *Packet) Payload() []byte { return p.IP[p.Off:] }

// SrcAddr and DstAddr are Src and Dst as netip addresses.
func (p *Packet) SrcAddr() netip.Addr { return netip.AddrFrom16(p.Src) }

// DstAddr is Dst as a netip address.
func (p *Packet) DstAddr() netip.Addr { return netip.AddrFrom16(p.Dst) }

// Event is something the layer counts that is not a drop.
type Event uint8

const (
	Received            Event = iota // packets passed to Input
	Delivered                        // handed to TCP or UDP
	Sent                             // headers written by PutHeader, echo replies, ICMPv6 errors
	ICMPEchoReplied                  // echo requests turned into replies
	FragHeld                         // fragments kept for reassembly
	Reassembled                      // datagrams reassembled (counted once more as what they became)
	AtomicFragments                  // fragment headers with offset 0 and M clear, processed whole (RFC 6946)
	ReasmTimeouts                    // reassembly queues that timed out
	Fragmented                       // datagrams sent in fragments
	FragmentsSent                    // fragments written by PutFragment
	ICMPErrorsDelivered              // ICMPv6 errors about our TCP or UDP handed to the stack
	ICMPErrorsTaken                  // Packet Too Big about our own ICMPv6 messages, taken by the layer
	PMTULowered                      // path MTUs lowered by those
	ICMPErrorsSent                   // ICMPv6 errors sent
	ICMPRateLimited                  // ICMPv6 errors not sent: rate limit
	numEvents
)

var eventNames = [numEvents]string{
	Received: "received", Delivered: "delivered", Sent: "sent", ICMPEchoReplied: "icmp_echo_replied",
	FragHeld: "frag_held", Reassembled: "reassembled", AtomicFragments: "atomic_fragments",
	ReasmTimeouts: "reasm_timeouts", Fragmented: "fragmented", FragmentsSent: "fragments_sent",
	ICMPErrorsDelivered: "icmp_errors_delivered", ICMPErrorsTaken: "icmp_errors_taken",
	PMTULowered: "pmtu_lowered", ICMPErrorsSent: "icmp_errors_sent", ICMPRateLimited: "icmp_rate_limited",
}

func (e Event) String() string { return counter.Name(eventNames[:], e, "event") }

// Reason is why Input dropped a packet. Stats lists each as "drop_" and
// its name.
type Reason uint8

const (
	TooShort            Reason = iota // shorter than 40 bytes
	BadVersion                        // version != 6
	BadPayloadLength                  // payload length beyond the packet
	NotForUs                          // unicast destination not ours (or loopback)
	MulticastDropped                  // multicast destination not one of our groups, or not ICMPv6
	BadSource                         // source multicast, unspecified, loopback or IPv4-mapped
	Truncated                         // an extension header runs past the payload
	TooManyExtHeaders                 // more than MaxExtHeaders
	ExtChainTooLong                   // more than MaxExtChainBytes of extension headers
	HopByHopNotFirst                  // hop-by-hop header after another (RFC 8200 §4.1)
	BadOptions                        // malformed options, padding over 7 bytes, PadN not zero
	TooManyOptions                    // more than MaxOptions options in one header
	UnknownOption                     // unrecognised option whose type says discard (RFC 8200 §4.2)
	RoutingHeader                     // routing header we cannot process (RFC 8200 §4.4, RFC 5095)
	UnknownNextHeader                 // unrecognised Next Header (RFC 8200 §4)
	NoNextHeader                      // Next Header 59 (RFC 8200 §4.7)
	ICMPBad                           // ICMPv6 message too short or bad checksum
	ICMPNDIgnored                     // neighbour discovery and router messages (types 133-137)
	ICMPOtherDropped                  // informational types we do not consume (echo reply, MLD, ...)
	ICMPErrorBadQuote                 // ICMPv6 error whose quote is short, not IPv6 or not from us
	ICMPErrorOtherProto               // ICMPv6 error about something other than our TCP, UDP or echo reply's path MTU
	FragNested                        // a second fragment header in one datagram
	FragBadLength                     // non-last fragment not a multiple of 8 bytes (RFC 8200 §4.5)
	FragIncompleteChain               // first fragment without the whole header chain (RFC 7112)
	FragOverlap                       // fragment overlapping one held: its datagram dropped (RFC 5722)
	FragDuplicate                     // fragment within data held
	FragBad                           // empty fragment, or a last one contradicting the queue (queue dropped)
	FragOversize                      // fragment ending beyond 65535 bytes
	FragNoMemory                      // reassembly memory or queue cap reached
	numReasons
)

var reasonNames = [numReasons]string{
	TooShort: "too_short", BadVersion: "bad_version", BadPayloadLength: "bad_payload_length",
	NotForUs: "not_for_us", MulticastDropped: "multicast", BadSource: "bad_source",
	Truncated: "truncated", TooManyExtHeaders: "too_many_ext_headers", ExtChainTooLong: "ext_chain_too_long",
	HopByHopNotFirst: "hop_by_hop_not_first", BadOptions: "bad_options", TooManyOptions: "too_many_options",
	UnknownOption: "unknown_option", RoutingHeader: "routing_header", UnknownNextHeader: "unknown_next_header",
	NoNextHeader: "no_next_header", ICMPBad: "icmp_bad", ICMPNDIgnored: "icmp_nd_ignored",
	ICMPOtherDropped: "icmp_other", ICMPErrorBadQuote: "icmp_error_bad_quote",
	ICMPErrorOtherProto: "icmp_error_other_proto", FragNested: "frag_nested", FragBadLength: "frag_bad_length",
	FragIncompleteChain: "frag_incomplete_chain", FragOverlap: "frag_overlap", FragDuplicate: "frag_duplicate",
	FragBad: "frag_bad", FragOversize: "frag_oversize", FragNoMemory: "frag_no_memory",
}

func (r Reason) String() string { return counter.Name(reasonNames[:], r, "reason") }

// Stats counts what Input saw. Every packet passed to Input counts as
// Received and then as exactly one of Delivered, ICMPEchoReplied,
// ICMPErrorsDelivered, ICMPErrorsTaken, FragHeld or a drop reason (the
// fragment that completes a datagram counts as what the datagram became).
type Stats struct {
	c counter.Layer[Event, Reason]

	reasmBytes, reasmQueues atomic.Int64 // gauges, set by the reassembler
}

func newStats() Stats { return Stats{c: counter.NewLayer(numEvents, "drop_", numReasons)} }

func (s *Stats) setReasm(bytes, queues int) {
	s.reasmBytes.Store(int64(bytes))
	s.reasmQueues.Store(int64(queues))
}

// ReassemblyBytes is the memory the reassembly queues are charged now (at
// most ReassemblyMemCap).
func (s *Stats) ReassemblyBytes() int { return int(s.reasmBytes.Load()) }

// ReassemblyQueues is the number of datagrams being reassembled.
func (s *Stats) ReassemblyQueues() int { return int(s.reasmQueues.Load()) }

// Load returns the count of event e.
func (s *Stats) Load(e Event) uint64 { return s.c.Load(e) }

// Drops returns the packets dropped for reason r.
func (s *Stats) Drops(r Reason) uint64 { return s.c.Drops(r) }

// Dropped is the sum of all drop counters.
func (s *Stats) Dropped() uint64 { return s.c.Dropped() }

// Each lists every counter by name, then "dropped", then the gauges
// "reasm_bytes" and "reasm_queues".
func (s *Stats) Each(f func(name string, v uint64)) {
	s.c.Each(f)
	f("dropped", s.Dropped())
	f("reasm_bytes", uint64(s.reasmBytes.Load()))
	f("reasm_queues", uint64(s.reasmQueues.Load()))
}

// Snapshot returns what Each lists, as a map.
func (s *Stats) Snapshot() map[string]uint64 { return counter.Snapshot(s) }

// Layer is the IPv6 layer of one stack, with any number of addresses. Its
// methods may be called from any number of goroutines.
type Layer struct {
	Stats Stats
	// PMTU holds the path MTUs learned from Packet Too Big (RFC 8201).
	PMTU PMTUCache

	addrs   atomic.Pointer[addrSet]
	addrMu  sync.Mutex // serialises AddAddr and RemoveAddr
	linkMTU atomic.Int32
	ids     idents
	reasm   reassembler
	limit   icmpLimiter
}

// New returns a layer owning addr (see AddAddr), for a link MTU of 1500
// until SetLinkMTU says otherwise. It panics if addr is not a unicast IPv6
// address. The invalid Addr gives a layer with no address yet (a stack
// whose addresses are all IPv4 for now).
func New(addr netip.Addr) *Layer {
	l := &Layer{Stats: newStats()}
	l.addrs.Store(&addrSet{})
	l.linkMTU.Store(1500)
	l.ids.init()
	l.reasm.init(&l.Stats)
	if !addr.IsValid() {
		return l
	}
	if err := l.AddAddr(addr); err != nil {
		panic(err)
	}
	return l
}

// SetLinkMTU tells the layer the link's MTU, against which Packet Too Big
// messages are read.
func (l *Layer) SetLinkMTU(mtu int) { l.linkMTU.Store(int32(max(mtu, header.IPv6MinMTU))) }

// LinkMTU is the MTU SetLinkMTU set.
func (l *Layer) LinkMTU() int { return int(l.linkMTU.Load()) }

func (l *Layer) drop(r Reason) (Verdict, Packet) {
	l.Stats.c.Drop(r)
	return Drop, Packet{}
}

// Input validates the raw packet pkt, received at now, and decides its
// fate (see Verdict). The fragment that completes a datagram returns what
// the datagram gets, in a new buffer. Input never panics, whatever pkt
// holds, allocates only to reassemble, and modifies pkt only to turn an
// echo request into its reply.
func (l *Layer) Input(now time.Time, pkt []byte) (Verdict, Packet) {
	l.Stats.c.Inc(Received)
	h, err := header.ParseIPv6(pkt)
	switch err {
	case nil:
	case header.ErrTooShort:
		return l.drop(TooShort)
	case header.ErrBadIPv6Version:
		return l.drop(BadVersion)
	default: // header.ErrBadPayloadLength
		return l.drop(BadPayloadLength)
	}
	// RFC 8200 §3 leaves the hop limit to forwarding nodes: a host takes
	// any value, 0 included, as Linux does.
	p := Packet{IP: h, Src: h.SrcBytes(), Dst: h.DstBytes()}
	mc, why := l.checkDst(p.Dst)
	if why != 0 {
		return l.drop(why)
	}
	if !unicastSource(p.Src) {
		return l.drop(BadSource)
	}
	p.Multicast = mc
	// The common case first: TCP or UDP right after the header, to a
	// unicast address (RFC 8200 §4: no extension headers), which the walk
	// and process below would deliver as they are.
	if nh := h.NextHeader(); !mc && (nh == header.ProtoTCP || nh == header.ProtoUDP) {
		p.Proto, p.Off = nh, header.IPv6HeaderLen
		l.Stats.c.Inc(Delivered)
		return Deliver, p
	}
	return l.process(now, p, false)
}

// process walks the header chain of p.IP and dispatches on what ends it.
func (l *Layer) process(now time.Time, p Packet, reassembled bool) (Verdict, Packet) {
	w := l.walk(p.IP, p.Multicast, reassembled)
	if w.why != 0 {
		l.Stats.c.Drop(w.why)
		if !w.icmp {
			return Drop, Packet{}
		}
		p.ErrType, p.ErrCode, p.ErrParam = header.ICMPv6ParamProblem, w.code, w.ptr
		return SendError, p
	}
	if w.proto == header.ProtoFragment {
		return l.fragment(now, p, w)
	}
	p.Proto, p.Off = w.proto, w.off
	if w.proto == header.ProtoICMPv6 {
		return l.icmp(now, p)
	}
	// Multicast is for ICMPv6 only: TCP is unicast (Linux's tcp_v6_rcv
	// drops what is not addressed to the host), and we offer UDP no
	// multicast reception (Linux would hand a datagram to ff02::1 to a
	// UDP socket bound to the wildcard address).
	if p.Multicast {
		return l.drop(MulticastDropped)
	}
	l.Stats.c.Inc(Delivered)
	return Deliver, p
}

// fragment hands the fragment in p to the reassembler, and processes the
// datagram it completes.
func (l *Layer) fragment(now time.Time, p Packet, w walkResult) (Verdict, Packet) {
	dg, res := l.reasm.add(now, p.IP, w)
	if res.why != 0 {
		l.Stats.c.Drop(res.why)
		if !res.icmp {
			return Drop, Packet{}
		}
		p.ErrType, p.ErrCode, p.ErrParam = header.ICMPv6ParamProblem, res.code, res.ptr
		return SendError, p
	}
	if dg == nil {
		l.Stats.c.Inc(FragHeld)
		return Held, Packet{}
	}
	l.Stats.c.Inc(Reassembled)
	p.IP = dg
	return l.process(now, p, true)
}

// PutHeader writes a 40-byte IPv6 header into b[:40] for a datagram from
// src (one of ours: the caller chooses, see SourceFor) to dst carrying
// payloadLen bytes of protocol proto, with hop limit 64 and the given
// flow label (see FlowLabel; 0 for an unlabelled packet, RFC 6437 §2). It
// panics if b is shorter than 40 bytes or the payload over 65535 bytes.
func (l *Layer) PutHeader(b []byte, src, dst [16]byte, proto uint8, payloadLen int, flow uint32) {
	if payloadLen < 0 || payloadLen > 0xffff {
		panic("ipv6: PutHeader: payload length out of range")
	}
	header.PutIPv6(b, header.IPv6Fields{
		FlowLabel:  flow,
		PayloadLen: uint16(payloadLen),
		NextHeader: proto,
		HopLimit:   DefaultHopLimit,
		Src:        src,
		Dst:        dst,
	})
	l.Stats.c.Inc(Sent)
}
