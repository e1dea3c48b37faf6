package ipv6

import "ustack/stack/header"

// Extension header limits (RFC 8504 §5.3 lets a host choose them; see the
// package comment).
const (
	// MaxOptions is the most options other than Pad1 and PadN one
	// hop-by-hop or destination options header may hold (Linux's
	// net.ipv6.max_hbh_opts_number and max_dst_opts_number).
	MaxOptions = 8
	// MaxExtHeaders is the most extension headers one datagram may carry.
	// RFC 8200 §4.1's recommended order has at most six (hop-by-hop,
	// destination options, routing, fragment, AH, destination options);
	// Linux sets no limit.
	MaxExtHeaders = 8
	// MaxExtChainBytes bounds the bytes of all of them: one options header
	// of the largest size (2048) fits.
	MaxExtChainBytes = 2048
	// maxPadding is the longest run of padding in an options header
	// (Linux's ip6_parse_tlv: PadN exists to align to 8 bytes, so 7 is
	// the most that has a purpose; RFC 4942 §2.1.9.5).
	maxPadding = 7

	optPad1        = 0
	optPadN        = 1
	optRouterAlert = 5 // RFC 2711, hop-by-hop only
)

// walkResult is where a header chain walk stopped.
type walkResult struct {
	proto uint8 // upper-layer protocol, or ProtoFragment at a fragment to reassemble
	off   int   // offset of the upper-layer header, or of the fragment header
	nhOff int   // offset of the Next Header byte that named proto
	// why is nonzero when the packet is dropped; icmp then says whether a
	// parameter problem with code and ptr is due (RFC 8200 §4).
	why  Reason
	icmp bool
	code uint8
	ptr  uint32
}

func dropped(why Reason) walkResult { return walkResult{why: why} }

func problem(why Reason, code uint8, ptr int) walkResult {
	return walkResult{why: why, icmp: true, code: code, ptr: uint32(ptr)}
}

// walk processes the extension headers of datagram h in order (RFC 8200
// §4: "strictly in the order they appear"), as a host: it stops at the
// upper-layer header, at a fragment header that needs reassembly, or at
// the first header that drops the packet. mcast says the destination is a
// multicast group (RFC 8200 §4.2: option action 11). reassembled says h was
// put together from fragments: a fragment header in it is a second one.
//
// Divergence: a datagram carries at most one fragment header. RFC 8200
// §4.1 asks a node to process repeated headers; Linux reassembles again
// what it reassembled. We refuse nested fragmentation, which no sender
// needs.
func (l *Layer) walk(h header.IPv6, mcast, reassembled bool) walkResult {
	nh, nhOff, off := h.NextHeader(), 6, header.IPv6HeaderLen
	seenFrag := reassembled
	for n := 0; ; n++ {
		switch nh {
		case header.ProtoTCP, header.ProtoUDP, header.ProtoICMPv6:
			return walkResult{proto: nh, off: off, nhOff: nhOff}
		case header.ProtoNoNext:
			// RFC 8200 §4.7: nothing follows; any bytes left are
			// ignored. Linux's handler discards the packet.
			return dropped(NoNextHeader)
		case header.ProtoHopByHop:
			// RFC 8200 §4.1: only right after the IPv6 header; Linux
			// answers one elsewhere as an unknown next header.
			if off != header.IPv6HeaderLen {
				return problem(HopByHopNotFirst, header.ICMPv6UnknownNextHdr, nhOff)
			}
		case header.ProtoDestOpts, header.ProtoRouting, header.ProtoFragment:
		default:
			// RFC 8200 §4: an unrecognised Next Header value (ESP, AH,
			// mobility and the rest included: we process none) is
			// answered with code 1, pointing at it.
			return problem(UnknownNextHeader, header.ICMPv6UnknownNextHdr, nhOff)
		}
		if n >= MaxExtHeaders {
			return dropped(TooManyExtHeaders)
		}
		hl := header.ExtHeaderLen(h[off:], nh)
		if hl < 0 || hl > len(h)-off {
			return dropped(Truncated)
		}
		if off+hl-header.IPv6HeaderLen > MaxExtChainBytes {
			return dropped(ExtChainTooLong)
		}
		switch nh {
		case header.ProtoHopByHop, header.ProtoDestOpts:
			if r := options(h, off, hl, nh == header.ProtoHopByHop, mcast); r.why != 0 {
				return r
			}
		case header.ProtoRouting:
			if r := routing(h, off, mcast); r.why != 0 {
				return r
			}
		case header.ProtoFragment:
			if seenFrag {
				return dropped(FragNested)
			}
			seenFrag = true
			f := header.IPv6Frag(h[off:])
			if f.Offset() != 0 || f.More() {
				return walkResult{proto: header.ProtoFragment, off: off, nhOff: nhOff}
			}
			// RFC 6946 §4: an atomic fragment is a whole datagram,
			// processed without touching the reassembly queues.
			l.Stats.c.Inc(AtomicFragments)
		}
		nh, nhOff, off = h[off], off, off+hl
	}
}

// options processes the options of the hop-by-hop or destination options
// header h[off:off+hl] (RFC 8200 §4.2), as Linux's ip6_parse_tlv: Pad1
// and PadN skipped (at most 7 bytes in a row, PadN all zeros), at most
// MaxOptions others, each of which must fit. Router Alert (RFC 2711) is
// known in hop-by-hop and ignored by a host; every other option is
// unrecognised and handled by the two high-order bits of its type: 00
// skip, 01 discard, 10 discard and send a parameter problem code 2
// pointing at it, 11 the same unless the destination is multicast.
// Divergence: Linux also knows Jumbo Payload (RFC 2675), CALIPSO and IOAM;
// a jumbogram cannot come over a TUN device, and we answer the others as
// unrecognised.
func options(h header.IPv6, off, hl int, hbh, mcast bool) walkResult {
	end := off + hl
	pad, count := 0, 0
	for i := off + 2; i < end; {
		t := h[i]
		if t == optPad1 {
			if pad++; pad > maxPadding {
				return dropped(BadOptions)
			}
			i++
			continue
		}
		if end-i < 2 || int(h[i+1])+2 > end-i {
			return dropped(BadOptions)
		}
		ol := int(h[i+1]) + 2
		if t == optPadN {
			if pad += ol; pad > maxPadding {
				return dropped(BadOptions)
			}
			for _, b := range h[i+2 : i+ol] {
				if b != 0 {
					return dropped(BadOptions)
				}
			}
			i += ol
			continue
		}
		if count++; count > MaxOptions {
			return dropped(TooManyOptions)
		}
		pad = 0
		if hbh && t == optRouterAlert {
			if ol != 4 { // Linux's ipv6_hop_ra: the value is 2 bytes
				return dropped(BadOptions)
			}
		} else if r := unknownOption(t, i, mcast); r.why != 0 {
			return r
		}
		i += ol
	}
	return walkResult{}
}

// unknownOption is RFC 8200 §4.2's action for unrecognised option type t
// at offset i.
func unknownOption(t uint8, i int, mcast bool) walkResult {
	switch t >> 6 {
	case 0:
		return walkResult{}
	case 1:
		return dropped(UnknownOption)
	case 3:
		if mcast {
			return dropped(UnknownOption)
		}
	}
	return problem(UnknownOption, header.ICMPv6UnknownOption, i)
}

// routing processes a routing header at off (RFC 8200 §4.4). With
// Segments Left 0 it is ignored, whatever its type: RFC 5095 §3 says so of
// type 0 too. With segments left, a host that processes no routing type
// (we do not forward) answers with a parameter problem code 0 pointing at
// the type (RFC 5095 §3 for type 0; Linux sends the same for the types it
// does not know, and drops types 3 and 4 silently while RPL and segment
// routing are disabled, its default). Linux's ipv6_rthdr_rcv first drops
// routing headers in packets to a multicast address; so do we.
func routing(h header.IPv6, off int, mcast bool) walkResult {
	if mcast {
		return dropped(RoutingHeader)
	}
	if h[off+3] == 0 {
		return walkResult{}
	}
	return problem(RoutingHeader, header.ICMPv6ErroneousField, off+2)
}

// skipChain follows the extension headers of b from offset off, where a
// header of type nh starts, without processing them: for reading quotes in
// ICMPv6 errors and checking first fragments. It returns the upper-layer
// protocol and its offset, or ProtoFragment and the fragment header's
// offset at a non-first fragment (nothing after it is in this packet). ok
// is false when a header runs past b or the chain is longer than
// MaxExtHeaders.
func skipChain(b []byte, nh uint8, off int) (proto uint8, at int, ok bool) {
	for range MaxExtHeaders + 1 {
		if !header.IsExtHeader(nh) {
			return nh, off, true
		}
		if off > len(b) {
			return 0, 0, false
		}
		hl := header.ExtHeaderLen(b[off:], nh)
		if hl < 0 || hl > len(b)-off {
			return 0, 0, false
		}
		if nh == header.ProtoFragment && header.IPv6Frag(b[off:]).Offset() != 0 {
			return nh, off, true
		}
		nh, off = b[off], off+hl
	}
	return 0, 0, false
}

// minUpperHeader is how much of an upper-layer header a first fragment
// must hold (Linux's ipv6frag_thdr_truncated: the TCP, UDP or ICMPv6
// header; nothing for the others).
func minUpperHeader(proto uint8) int {
	switch proto {
	case header.ProtoTCP:
		return header.TCPMinHeaderLen
	case header.ProtoUDP, header.ProtoICMPv6:
		return 8
	}
	return 0
}
