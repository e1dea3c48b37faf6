package ipv4

import (
	"encoding/binary"
	"hash/maphash"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"ustack/stack/header"
)

// identBuckets is the number of ID counters non-atomic datagrams share
// (Linux's ip_idents has at least 2048).
const identBuckets = 2048

// idents chooses the ID of non-atomic datagrams (DF clear, which may be
// fragmented here or on the path). RFC 6864 §4.2: such an ID "MUST NOT be
// repeated within the maximum datagram lifetime for a given source address/
// destination address/protocol tuple". As Linux's __ip_select_ident: a keyed
// hash of (destination, source, protocol) picks one of 2048 counters, and a
// counter left idle moves on by a random amount below its idle time in
// milliseconds (Linux: jiffies), so that the IDs one peer sees tell it little
// about the traffic to others (RFC 7739 §5.1).
type idents struct {
	seed   maphash.Seed
	ids    [identBuckets]atomic.Uint32
	stamps [identBuckets]atomic.Int64 // last use, Unix milliseconds
}

func (g *idents) init() { g.seed = maphash.MakeSeed() }

func (g *idents) next(now time.Time, src, dst [4]byte, proto uint8) uint16 {
	var k [9]byte
	copy(k[0:4], dst[:])
	copy(k[4:8], src[:])
	k[8] = proto
	b := maphash.Bytes(g.seed, k[:]) % identBuckets
	ms := now.UnixMilli()
	var delta uint32
	if old := g.stamps[b].Load(); old != ms && g.stamps[b].CompareAndSwap(old, ms) && ms > old {
		delta = rand.Uint32N(uint32(min(ms-old, 1<<31)))
	}
	return uint16(g.ids[b].Add(1+delta) - 1)
}

// MaxFragmentPayload is the data one fragment of a datagram with a 20-byte
// header carries on a link of the given MTU (RFC 791 §3.2: a multiple of 8
// octets, except in the last fragment).
func MaxFragmentPayload(mtu int) int { return (mtu - header.IPv4MinHeaderLen) &^ 7 }

// PutFragment writes into b the fragment of datagram pkt whose data start at
// offset off of pkt's payload, for a path of the given MTU, and returns its
// length and the offset of the next fragment (0 after the last). pkt is a
// datagram this layer built: a 20-byte header (so no option needs copying
// into later fragments, RFC 791 §3.2), DF clear, not itself a fragment. b
// holds at least mtu bytes.
//
// RFC 791 §3.2 "Fragmentation": each fragment carries the original header
// with the total length, MF and offset of its part; the ID stays the
// datagram's.
func (l *Layer) PutFragment(b []byte, pkt header.IPv4, mtu, off int) (n, next int) {
	hl := header.IPv4MinHeaderLen
	data := pkt[hl:]
	size := min(MaxFragmentPayload(mtu), len(data)-off)
	copy(b[:hl], pkt[:hl])
	copy(b[hl:], data[off:off+size])
	flags, next := uint16(header.IPv4FlagMF), off+size
	if next >= len(data) {
		flags, next = 0, 0
	}
	header.IPv4(b[:hl+size]).SetFragment(hl+size, flags, off)
	if off == 0 {
		l.Stats.c.Inc(Fragmented)
	}
	l.Stats.c.Inc(FragmentsSent)
	return hl + size, next
}

// NeedsFragments reports whether datagram pkt exceeds mtu and may be
// fragmented (DF clear).
func NeedsFragments(pkt header.IPv4, mtu int) bool {
	return len(pkt) > mtu && binary.BigEndian.Uint16(pkt[6:])&header.IPv4FlagDF == 0
}
