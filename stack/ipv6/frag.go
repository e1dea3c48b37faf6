package ipv6

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"ustack/stack/header"
)

// identBuckets is the number of fragment ID counters (Linux's ip_idents,
// shared with IPv4 there, has at least 2048).
const identBuckets = 2048

// idents chooses fragment identifications and flow labels. RFC 8200 §4.5:
// an ID must differ from that of any other fragmented packet sent
// recently with the same source and destination; RFC 7739 §5 wants it
// unpredictable. As Linux's ipv6_select_ident: a keyed hash of (destination,
// source) picks one of 2048 counters, and a counter left idle moves on by
// a random amount below its idle time in milliseconds, so that one peer
// learns little about the traffic to others.
type idents struct {
	seed   maphash.Seed
	key    uint64 // of the flow labels' hash
	ids    [identBuckets]atomic.Uint32
	stamps [identBuckets]atomic.Int64 // last use, Unix milliseconds
}

func (g *idents) init() { g.seed, g.key = maphash.MakeSeed(), rand.Uint64() }

func (g *idents) next(now time.Time, src, dst [16]byte) uint32 {
	var k [32]byte
	copy(k[0:16], dst[:])
	copy(k[16:32], src[:])
	b := maphash.Bytes(g.seed, k[:]) % identBuckets
	ms := now.UnixMilli()
	var delta uint32
	if old := g.stamps[b].Load(); old != ms && g.stamps[b].CompareAndSwap(old, ms) && ms > old {
		delta = rand.Uint32N(uint32(min(ms-old, 1<<31)))
	}
	return g.ids[b].Add(1+delta) - 1
}

// flowLabel is RFC 6437 §3's label for a flow: a keyed hash of its
// addresses, protocol and ports, 20 bits, never 0 (Linux's
// ip6_make_flowlabel with net.ipv6.auto_flowlabels on, its default, which
// hashes the flow with jhash and a random key). Every segment sent over
// IPv6 carries one, so the hash is a cheap one: the flow's 296 bits
// folded into two words (the destination's halves rotated, so that the
// two directions of a flow differ), each mixed into the secret key by a
// 64-bit mixer (splitmix64's finaliser).
func (g *idents) flowLabel(src, dst [16]byte, proto uint8, sport, dport uint16) uint32 {
	ports := uint64(proto)<<32 | uint64(sport)<<16 | uint64(dport)
	h := mix64(g.key ^ binary.BigEndian.Uint64(src[:8]) ^ bits.RotateLeft64(binary.BigEndian.Uint64(dst[:8]), 29))
	h = mix64(h ^ binary.BigEndian.Uint64(src[8:]) ^ bits.RotateLeft64(binary.BigEndian.Uint64(dst[8:]), 29) ^ ports)
	if v := uint32(h^h>>32) & 0xfffff; v != 0 {
		return v
	}
	return 1
}

// mix64 scrambles x: each bit of the result depends on every bit of x.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// FlowLabel is the flow label of the flow (src, dst, proto, ports) for
// PutHeader: the same for every packet of the flow (RFC 6437 §3).
func (l *Layer) FlowLabel(src, dst [16]byte, proto uint8, sport, dport uint16) uint32 {
	return l.ids.flowLabel(src, dst, proto, sport, dport)
}

// MaxFragmentPayload is the data one fragment carries on a path of the
// given MTU (never below 1280, RFC 8200 §5): what is left after the
// 40-byte header and the 8-byte fragment header, a multiple of 8 (§4.5).
func MaxFragmentPayload(mtu int) int {
	return (max(mtu, header.IPv6MinMTU) - header.IPv6HeaderLen - header.IPv6FragHdrLen) &^ 7
}

// NeedsFragments reports whether datagram pkt exceeds the path MTU mtu.
// RFC 8200 §5: only the source fragments, and only to the path MTU; a
// path MTU below 1280 is taken as 1280.
func NeedsFragments(pkt []byte, mtu int) bool { return len(pkt) > max(mtu, header.IPv6MinMTU) }

// FragmentID returns the identification for the fragments of one datagram
// from src to dst (the same for each of its fragments).
func (l *Layer) FragmentID(now time.Time, src, dst [16]byte) uint32 {
	return l.ids.next(now, src, dst)
}

// PutFragment writes into b the fragment of datagram pkt whose data start
// at offset off of pkt's payload, for a path of the given MTU, with
// identification id (FragmentID), and returns its length and the offset of
// the next fragment (0 after the last). pkt is a datagram this layer built:
// a 40-byte header with no extension header, so its whole payload is the
// fragmentable part (RFC 8200 §4.5). b holds at least max(mtu, 1280) bytes.
//
// Each fragment is the header, with its payload length and Next Header 44,
// then a fragment header carrying pkt's Next Header, the offset, M and id,
// then the data: a multiple of 8 bytes except in the last fragment.
func (l *Layer) PutFragment(b []byte, pkt header.IPv6, mtu, off int, id uint32) (n, next int) {
	const hl = header.IPv6HeaderLen
	const fl = header.IPv6FragHdrLen
	data := pkt[hl:]
	size := min(MaxFragmentPayload(mtu), len(data)-off)
	next = off + size
	more := next < len(data)
	if !more {
		next = 0
	}
	copy(b[:hl], pkt[:hl])
	h := header.IPv6(b[:hl])
	h.SetPayloadLen(fl + size)
	b[6] = header.ProtoFragment
	header.PutIPv6Frag(b[hl:], pkt.NextHeader(), off, more, id)
	copy(b[hl+fl:], data[off:off+size])
	if off == 0 {
		l.Stats.c.Inc(Fragmented)
	}
	l.Stats.c.Inc(FragmentsSent)
	return hl + fl + size, next
}
