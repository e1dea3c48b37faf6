package ipv6

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"ustack/stack/header"
)

// withFrag is a copy of fragment f (its fragment header at 40) with
// offset and M rewritten and the payload length fixed.
func withFrag(f []byte, off int, more bool) []byte {
	g := bytes.Clone(f)
	fr := header.IPv6Frag(g[40:])
	header.PutIPv6Frag(g[40:], fr.NextHeader(), off, more, fr.ID())
	header.IPv6(g).SetPayloadLen(len(g) - 40)
	return g
}

// queueWith is a layer holding fragment i of the four of a 4000-byte echo
// request with ID id, and the four.
func queueWith(t *testing.T, id uint32, i int) (*Layer, [][]byte) {
	l := newLayer()
	frags := fragmentsOf(bigEcho(3992), 1000, id)
	if v, _ := feed(t, l, t0, frags[i:i+1]); v != Held {
		t.Fatalf("fragment %d: %v", i, v)
	}
	return l, frags
}

func mustDrop(t *testing.T, l *Layer, pkt []byte, why Reason, n uint64) {
	t.Helper()
	v, p := l.Input(t0, bytes.Clone(pkt))
	checkInvariants(t, l, pkt, v, p)
	if v != Drop || l.Stats.Drops(why) != n {
		t.Fatalf("%v, %v = %d; want drop, %d", v, why, l.Stats.Drops(why), n)
	}
}

func TestReassemblyInOrder(t *testing.T) {
	l := newLayer()
	req := bigEcho(4000)
	frags := fragmentsOf(req, 1448, 1)
	if v, _ := feed(t, l, t0, frags[:len(frags)-1]); v != Held {
		t.Fatalf("%v", v)
	}
	v, p := feed(t, l, t0, frags[len(frags)-1:])
	if v != Reply {
		t.Fatalf("last fragment: %v (stats %v)", v, l.Stats.Snapshot())
	}
	checkEchoReply(t, l, p, ourAddr, req[48:])
	if l.Stats.Load(Reassembled) != 1 || l.Stats.Load(FragHeld) != 2 || l.Stats.ReassemblyBytes() != 0 || l.Stats.ReassemblyQueues() != 0 {
		t.Fatal(l.Stats.Snapshot())
	}
}

// TestReassemblyAnyOrderTCP: the reassembled datagram is the original,
// per-fragment headers included (RFC 8200 §4.5), whatever the order.
func TestReassemblyAnyOrderTCP(t *testing.T) {
	seg := make([]byte, 3000)
	copy(seg, tcpSeg(1))
	for i := 20; i < len(seg); i++ {
		seg[i] = byte(i)
	}
	// A hop-by-hop header, per-fragment, before the fragment header; a
	// destination options header after it, in the fragmentable part.
	whole := fromPeer([]ext{hbh(opt(5, 2)), dest(opt(0x1e, 4))}, header.ProtoTCP, seg)
	unfrag := whole[:48]
	rest := whole[48:]
	var frags [][]byte
	for off := 0; off < len(rest); off += 800 {
		end := min(off+800, len(rest))
		f := append(bytes.Clone(unfrag), make([]byte, 8)...)
		f[40] = header.ProtoFragment
		header.PutIPv6Frag(f[48:], header.ProtoDestOpts, off, end < len(rest), 0xabcdef)
		f = append(f, rest[off:end]...)
		header.IPv6(f).SetPayloadLen(len(f) - 40)
		frags = append(frags, f)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		l := newLayer()
		order := rng.Perm(len(frags))
		var v Verdict
		var p Packet
		for _, i := range order {
			v, p = feed(t, l, t0, frags[i:i+1])
		}
		if v != Deliver || !bytes.Equal(p.IP, whole) || p.Off != 40+8+8 || !bytes.Equal(p.Payload(), seg) {
			t.Fatalf("order %v: %v, %d bytes", order, v, len(p.IP))
		}
	}
}

// TestReassemblyDuplicates: Linux's IPFRAG_DUP, the duplicate alone goes.
func TestReassemblyDuplicates(t *testing.T) {
	l, frags := queueWith(t, 2, 0)
	mustDrop(t, l, frags[0], FragDuplicate, 1)
	mustDrop(t, l, withFrag(frags[0][:48+96], 200, true), FragDuplicate, 2)
	if v, _ := feed(t, l, t0, frags[1:]); v != Reply {
		t.Fatalf("after duplicates: %v", v)
	}
}

// TestReassemblyOverlapDropsDatagram: RFC 5722 §4, silently.
func TestReassemblyOverlapDropsDatagram(t *testing.T) {
	l, frags := queueWith(t, 3, 0)
	mustDrop(t, l, withFrag(frags[1], 992, true), FragOverlap, 1)
	if l.Stats.ReassemblyQueues() != 0 || l.Stats.ReassemblyBytes() != 0 {
		t.Fatalf("queue left after an overlap: %v", l.Stats.Snapshot())
	}
	// The rest makes a new queue, which lacks the first fragment.
	if v, _ := feed(t, l, t0, frags[1:]); v != Held {
		t.Fatalf("after the overlap: %v, want held", v)
	}
	if l.Stats.Load(ICMPErrorsSent) != 0 {
		t.Fatal("an error was sent")
	}
}

func TestReassemblyBadLastFragment(t *testing.T) {
	l, frags := queueWith(t, 4, 3)
	mustDrop(t, l, withFrag(frags[3][:len(frags[3])-8], 3000, false), FragBad, 1)
	if l.Stats.ReassemblyQueues() != 0 {
		t.Fatal(l.Stats.Snapshot())
	}
	// Data beyond a last fragment.
	l, frags = queueWith(t, 4, 3)
	mustDrop(t, l, withFrag(frags[0], 4000, true), FragBad, 1)
}

// TestAtomicFragmentLeavesQueues: RFC 6946 §4, an atomic fragment with
// the ID of a datagram under reassembly is processed alone.
func TestAtomicFragmentLeavesQueues(t *testing.T) {
	l, frags := queueWith(t, 5, 0)
	v, p := l.Input(t0, fromPeer([]ext{fh(0, false, 5)}, header.ProtoTCP, tcpSeg(1)))
	if v != Deliver || p.Off != 48 || l.Stats.ReassemblyQueues() != 1 || l.Stats.Load(AtomicFragments) != 1 {
		t.Fatalf("%v (stats %v)", v, l.Stats.Snapshot())
	}
	if v, _ := feed(t, l, t0, frags[1:]); v != Reply {
		t.Fatalf("%v", v)
	}
}

// TestNestedFragmentDropped: a fragment header inside a reassembled
// datagram (our divergence: no nested reassembly).
func TestNestedFragmentDropped(t *testing.T) {
	inner := fromPeer([]ext{fh(0, true, 9)}, header.ProtoTCP, make([]byte, 2000))
	outer := fragmentsOf(inner, 1000, 10)
	l := newLayer()
	if v, _ := feed(t, l, t0, outer); v != Drop || l.Stats.Drops(FragNested) != 1 || l.Stats.Load(Reassembled) != 1 {
		t.Fatalf("%v (stats %v)", v, l.Stats.Snapshot())
	}
}

// TestReassemblyKey: RFC 8200 §4.5, source, destination and ID; the Next
// Header of non-first fragments does not matter.
func TestReassemblyKey(t *testing.T) {
	l := newLayer()
	a := fragmentsOf(bigEcho(2000), 1000, 1)
	b := fragmentsOf(bigEcho(2000), 1000, 2)
	c := fragmentsOf(withSrc(bigEcho(2000), "2001:2::9"), 1000, 1)
	last := bytes.Clone(a[2])
	last[40] = header.ProtoUDP
	feed(t, l, t0, [][]byte{a[0], b[1], c[1], a[1]})
	if l.Stats.ReassemblyQueues() != 3 {
		t.Fatal(l.Stats.Snapshot())
	}
	if v, _ := feed(t, l, t0, [][]byte{last}); v != Reply {
		t.Fatalf("%v", v)
	}
}

// TestReassemblyTimeout: after 60 s (RFC 8200 §4.5) the queues go; the one
// holding its first fragment gets a time exceeded, code 1, quoting it.
func TestReassemblyTimeout(t *testing.T) {
	l := newLayer()
	frags := fragmentsOf(bigEcho(3000), 1000, 5)
	feed(t, l, t0, frags[:2])
	feed(t, l, t0.Add(time.Second), fragmentsOf(bigEcho(3000), 1000, 6)[1:2]) // no first fragment
	if got := l.NextFragmentExpiry(); !got.Equal(t0.Add(ReassemblyTimeout)) {
		t.Fatalf("next expiry %v", got)
	}
	l.ExpireFragments(t0.Add(ReassemblyTimeout - time.Nanosecond))
	if q := l.TakeExpired(); len(q) != 0 || l.Stats.ReassemblyQueues() != 2 {
		t.Fatalf("expired early: %d", len(q))
	}
	l.ExpireFragments(t0.Add(ReassemblyTimeout + time.Second))
	quotes := l.TakeExpired()
	if len(quotes) != 1 || l.Stats.ReassemblyQueues() != 0 || l.Stats.ReassemblyBytes() != 0 || l.Stats.Load(ReasmTimeouts) != 2 {
		t.Fatalf("%d quotes, stats %v", len(quotes), l.Stats.Snapshot())
	}
	if !l.NextFragmentExpiry().IsZero() || l.TakeExpired() != nil {
		t.Fatal("left over")
	}
	b := make([]byte, 1500)
	n := l.PutICMPError(t0.Add(61*time.Second), b, quotes[0], header.ICMPv6TimeExceeded, header.ICMPv6FragTimeExceeded, 0)
	if n != 1096 { // 40 + 8 + the whole 1048-byte first fragment
		t.Fatalf("time exceeded: %d bytes", n)
	}
	checkError(t, b[:n], peerAddr, 3, 1, 0, frags[0])
}

// TestReassemblyMemoryBounded: a flood of fragments that never complete
// stays under the caps; the excess is counted; all comes back at the
// timeout.
func TestReassemblyMemoryBounded(t *testing.T) {
	l := newLayer()
	for id := range 6000 {
		f := fragmentsOf(bigEcho(3000), 1448, uint32(id))[0]
		l.Input(t0, f)
		if b := l.Stats.ReassemblyBytes(); b > ReassemblyMemCap {
			t.Fatalf("after %d fragments: %d bytes held", id+1, b)
		}
	}
	if l.Stats.Drops(FragNoMemory) == 0 {
		t.Fatal("no fragment refused")
	}
	l.ExpireFragments(t0.Add(ReassemblyTimeout))
	// Tiny fragments from many sources: the queue cap, then memory.
	for id := range 2 * ReassemblyMaxQueues {
		f := fragmentsOf(bigEcho(64), 8, uint32(id))[1]
		binary.BigEndian.PutUint32(f[20:], uint32(id))
		l.Input(t0.Add(ReassemblyTimeout), f)
	}
	if q := l.Stats.ReassemblyQueues(); q != ReassemblyMaxQueues {
		t.Fatalf("%d queues", q)
	}
	l.ExpireFragments(t0.Add(2 * ReassemblyTimeout))
	if l.Stats.ReassemblyBytes() != 0 || l.Stats.ReassemblyQueues() != 0 {
		t.Fatalf("after the timeout: %v", l.Stats.Snapshot())
	}
	if l.Stats.Load(Received) != accounted(l) {
		t.Errorf("received %d, accounted %d", l.Stats.Load(Received), accounted(l))
	}
}

// TestFloodLongChainsAndFragments: thousands of packets with long
// extension header chains, and first fragments with long chains that
// never complete: Input keeps up, memory stays under the cap, everything
// is accounted.
func TestFloodLongChainsAndFragments(t *testing.T) {
	l := newLayer()
	long := []ext{hbh(opt(5, 2), opt(0x1e, 200)), dest(opt(0x1e, 250)), rh(0, 0), dest(opt(0x1e, 250)),
		dest(opt(0x1e, 250)), dest(opt(0x1e, 250)), dest(opt(0x1e, 250))}
	rng := rand.New(rand.NewPCG(3, 4))
	now := t0
	for i := range 20000 {
		var pkt []byte
		id := rng.Uint32()
		switch i % 4 {
		case 0: // a whole datagram with the long chain
			pkt = fromPeer(long, header.ProtoUDP, udpDgram(nil))
		case 1: // a first fragment with the chain and 1 KB of data
			pkt = fromPeer(append(long[:3:3], fh(0, true, id)), header.ProtoUDP, udpDgram(make([]byte, 1016)))
		case 2: // a middle fragment
			pkt = fromPeer([]ext{fh(8*int(rng.IntN(1000)+1), true, id)}, header.ProtoUDP, make([]byte, 1024))
		case 3: // a chain one header too long
			pkt = fromPeer(append(long, dest(), dest()), header.ProtoUDP, udpDgram(nil))
		}
		binary.BigEndian.PutUint16(pkt[8+14:], uint16(i)) // many sources
		v, p := l.Input(now, pkt)
		checkInvariants(t, l, pkt, v, p)
		now = now.Add(time.Millisecond)
	}
	if l.Stats.Drops(FragNoMemory) == 0 || l.Stats.Drops(TooManyExtHeaders) != 5000 || l.Stats.Load(Delivered) != 5000 {
		t.Fatal(l.Stats.Snapshot())
	}
	l.ExpireFragments(now.Add(ReassemblyTimeout))
	if l.Stats.ReassemblyBytes() != 0 || l.Stats.ReassemblyQueues() != 0 {
		t.Fatal(l.Stats.Snapshot())
	}
	if len(l.TakeExpired()) > maxPending {
		t.Fatal("pending quotes unbounded")
	}
}

// FuzzReassembly: fragments of a few datagrams, cut, duplicated,
// reordered and overlapping as the input says: Input never panics, memory
// stays under the cap and is all returned at the timeout, and what is
// reassembled is a whole datagram.
func FuzzReassembly(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 2})
	f.Add([]byte{5, 1, 3, 0, 200, 7, 1, 1, 9, 9})
	f.Add([]byte{0xff, 0x80, 0x01, 0x7f, 0x00, 0x10, 0x22})
	f.Fuzz(func(t *testing.T, ops []byte) {
		l := newLayer()
		now := t0
		for i := 0; i+1 < len(ops); i += 2 {
			a, b := ops[i], ops[i+1]
			pkt := bigEcho(int(a) * 24)
			frags := fragmentsOf(pkt, 8*(1+int(b>>2&7)), uint32(b&3))
			fr := frags[int(a)%len(frags)]
			if b&0x80 != 0 && len(fr) > 56 { // shift: overlaps
				off := header.IPv6Frag(fr[40:]).Offset()
				fr = withFrag(fr, max(off-8, 0), true)
			}
			v, p := l.Input(now, bytes.Clone(fr))
			checkInvariants(t, l, fr, v, p)
			if v == Reply && len(p.IP) != len(pkt) {
				t.Fatalf("reassembled %d bytes, want %d", len(p.IP), len(pkt))
			}
			now = now.Add(time.Duration(a) * 200 * time.Millisecond)
		}
		l.ExpireFragments(now.Add(ReassemblyTimeout))
		if l.Stats.ReassemblyBytes() != 0 || l.Stats.Load(Received) != accounted(l) {
			t.Fatalf("end: %v", l.Stats.Snapshot())
		}
	})
}
