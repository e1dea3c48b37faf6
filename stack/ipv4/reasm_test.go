package ipv4

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"ustack/stack/header"
)

// bigEcho is an echo request from peer to us with n bytes of patterned data.
func bigEcho(n int, id uint16) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b := icmpPacket(header.ICMPEcho, data)
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], 0) // DF clear
	return fixIPChecksum(b)
}

// fragmentsOf cuts datagram pkt (20-byte header) into fragments of at most
// size data bytes (a multiple of 8), as a sender would.
func fragmentsOf(pkt []byte, size int) [][]byte {
	data := pkt[20:]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := make([]byte, 20+end-off)
		copy(f, pkt[:20])
		copy(f[20:], data[off:end])
		flags := uint16(header.IPv4FlagMF)
		if end == len(data) {
			flags = 0
		}
		header.IPv4(f).SetFragment(len(f), flags, off)
		out = append(out, f)
	}
	return out
}

// feed gives each fragment to l and returns the last verdict and view.
func feed(t *testing.T, l *Layer, now time.Time, frags [][]byte) (Verdict, header.IPv4) {
	t.Helper()
	var v Verdict
	var h header.IPv4
	for _, f := range frags {
		v, h = l.Input(now, bytes.Clone(f))
		checkInvariants(t, l, f, v, h)
	}
	return v, h
}

// moved is a copy of fragment f cut to n bytes, with flags and offset set.
func moved(f []byte, n int, flags uint16, off int) []byte {
	m := bytes.Clone(f[:n])
	header.IPv4(m).SetFragment(n, flags, off)
	return m
}

// queueWith is a layer holding fragment i of the four of a 3008-byte echo
// request with ID id, and the four.
func queueWith(id uint16, i int) (*Layer, [][]byte) {
	l := newLayer()
	frags := fragmentsOf(bigEcho(3000, id), 1000)
	l.Input(t0, bytes.Clone(frags[i]))
	return l, frags
}

// mustDrop feeds pkt to l and checks that it was dropped for why, the n-th
// so far.
func mustDrop(t *testing.T, l *Layer, pkt []byte, why Reason, n uint64) {
	t.Helper()
	if v, _ := l.Input(t0, pkt); v != Drop || l.Stats.Drops(why) != n {
		t.Fatalf("%v, %s = %d; want drop, %d", v, why, l.Stats.Drops(why), n)
	}
}

func TestReassemblyInOrder(t *testing.T) {
	l := newLayer()
	req := bigEcho(4000, 1)
	frags := fragmentsOf(req, 1480)
	for i, f := range frags[:len(frags)-1] {
		if v, _ := l.Input(t0, bytes.Clone(f)); v != Held {
			t.Fatalf("fragment %d: %v, want held", i, v)
		}
	}
	v, reply := l.Input(t0, bytes.Clone(frags[len(frags)-1]))
	if v != Reply {
		t.Fatalf("last fragment: %v (stats %v)", v, l.Stats.Snapshot())
	}
	checkEchoReply(t, reply, req[28:])
	if reply.DF() || len(reply) != len(req) {
		t.Errorf("reply DF %v, %d bytes; want DF clear (as Linux), %d bytes", reply.DF(), len(reply), len(req))
	}
	if l.Stats.Load(Reassembled) != 1 || l.Stats.Load(FragHeld) != 2 || l.Stats.ReassemblyBytes() != 0 || l.Stats.ReassemblyQueues() != 0 {
		t.Errorf("stats %v", l.Stats.Snapshot())
	}
	if l.Stats.Load(Received) != accounted(l) {
		t.Errorf("received %d, accounted %d", l.Stats.Load(Received), accounted(l))
	}
}

// TestReassemblyOutOfOrderTCP: fragments in any order make the segment,
// delivered as if it came whole.
func TestReassemblyOutOfOrderTCP(t *testing.T) {
	seg := make([]byte, 3000)
	header.PutTCP(seg, header.TCPFields{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: header.FlagACK, Window: 100})
	for i := 20; i < len(seg); i++ {
		seg[i] = byte(i)
	}
	header.SetTCPChecksum(seg, peerAddr, ourAddr)
	pkt := ipPacket(header.ProtoTCP, seg)
	binary.BigEndian.PutUint16(pkt[6:], 0)
	fixIPChecksum(pkt)
	frags := fragmentsOf(pkt, 800)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		l := newLayer()
		order := rng.Perm(len(frags))
		var v Verdict
		var h header.IPv4
		for _, i := range order {
			v, h = l.Input(t0, bytes.Clone(frags[i]))
		}
		if v != DeliverTCP || !bytes.Equal(h, pkt) {
			t.Fatalf("order %v: %v, want the whole segment delivered", order, v)
		}
	}
}

func TestReassemblyDuplicates(t *testing.T) {
	l, frags := queueWith(2, 0)
	mustDrop(t, l, bytes.Clone(frags[0]), FragDuplicate, 1)
	// Within the data held: a duplicate too (Linux: IPFRAG_DUP).
	mustDrop(t, l, moved(frags[0], 20+96, header.IPv4FlagMF, 200), FragDuplicate, 2)
	if v, _ := feed(t, l, t0, frags[1:]); v != Reply {
		t.Fatalf("after duplicates: %v", v)
	}
}

// TestReassemblyOverlapDropsQueue: Linux since 4.19 (RFC 5722 §4's rule).
func TestReassemblyOverlapDropsQueue(t *testing.T) {
	l, frags := queueWith(3, 0)
	mustDrop(t, l, moved(frags[1], len(frags[1]), header.IPv4FlagMF, 992), FragOverlap, 1)
	if l.Stats.ReassemblyQueues() != 0 || l.Stats.ReassemblyBytes() != 0 {
		t.Fatalf("queue left after an overlap: %v", l.Stats.Snapshot())
	}
	// The rest starts a new queue, which lacks the first fragment.
	if v, _ := feed(t, l, t0, frags[1:]); v != Held {
		t.Fatalf("after the overlap: %v, want held", v)
	}
}

func TestReassemblyBadLastFragment(t *testing.T) {
	l, frags := queueWith(4, 3)
	mustDrop(t, l, moved(frags[3], len(frags[3])-8, 0, 3000), FragBad, 1)
	if l.Stats.ReassemblyQueues() != 0 {
		t.Fatalf("queue left after a second last fragment with another end: %v", l.Stats.Snapshot())
	}
}

// TestReassemblyTimeout: after 30 s (Linux's ipfrag_time) the queue goes;
// with its first fragment in, an ICMP time exceeded code 1 quotes it.
func TestReassemblyTimeout(t *testing.T) {
	l := newLayer()
	frags := fragmentsOf(bigEcho(3000, 5), 1000)
	feed(t, l, t0, frags[:2])
	feed(t, l, t0.Add(time.Second), fragmentsOf(bigEcho(3000, 6), 1000)[1:2]) // no first fragment
	if got := l.NextFragmentExpiry(); !got.Equal(t0.Add(ReassemblyTimeout)) {
		t.Fatalf("next expiry %v, want %v", got, t0.Add(ReassemblyTimeout))
	}
	l.ExpireFragments(t0.Add(ReassemblyTimeout - time.Nanosecond))
	if q := l.TakeExpired(); len(q) != 0 || l.Stats.ReassemblyQueues() != 2 {
		t.Fatalf("expired early: %d", len(q))
	}
	l.ExpireFragments(t0.Add(ReassemblyTimeout + time.Second))
	quotes := l.TakeExpired()
	if len(quotes) != 1 || l.Stats.ReassemblyQueues() != 0 || l.Stats.Load(ReasmTimeouts) != 2 {
		t.Fatalf("%d quotes, stats %v", len(quotes), l.Stats.Snapshot())
	}
	b := make([]byte, 576)
	n := l.PutICMPError(t0.Add(31*time.Second), b, quotes[0], header.ICMPTimeExceeded, header.ICMPFragTimeExceeded)
	h, err := header.ParseIPv4(b[:n])
	if err != nil || n != 576 {
		t.Fatalf("time exceeded: %d bytes, %v", n, err)
	}
	m := header.ICMPv4(h.Payload())
	if m.Type() != 11 || m.Code() != 1 || h.DstBytes() != peerAddr || h.DF() || h.TOS() != 0xc0 {
		t.Fatalf("time exceeded %d/%d to %v DF %v TOS %#x", m.Type(), m.Code(), h.Dst(), h.DF(), h.TOS())
	}
	if !bytes.Equal(m[8:], frags[0][:576-28]) {
		t.Fatalf("quote is not the first fragment as received")
	}
}

// TestReassemblyMemoryBounded: a flood of fragments that never complete
// stays under the memory cap; the excess is counted.
func TestReassemblyMemoryBounded(t *testing.T) {
	l := newLayer()
	for id := range 6000 {
		f := fragmentsOf(bigEcho(3000, uint16(id)), 1480)[0]
		l.Input(t0, f)
		if b := l.Stats.ReassemblyBytes(); b > ReassemblyMemCap {
			t.Fatalf("after %d fragments: %d bytes held", id+1, b)
		}
	}
	if l.Stats.Drops(FragNoMemory) == 0 {
		t.Fatal("no fragment refused")
	}
	// Tiny fragments: the queue cap, then the memory.
	for id := range 2 * ReassemblyMaxQueues {
		f := fragmentsOf(bigEcho(64, uint16(id)), 8)[1]
		binary.BigEndian.PutUint16(f[12:], uint16(id)) // other sources
		fixIPChecksum(f)
		l.Input(t0, f)
	}
	if q := l.Stats.ReassemblyQueues(); q > ReassemblyMaxQueues {
		t.Fatalf("%d queues", q)
	}
	// Everything times out; the memory comes back.
	l.ExpireFragments(t0.Add(ReassemblyTimeout))
	if l.Stats.ReassemblyBytes() != 0 || l.Stats.ReassemblyQueues() != 0 {
		t.Fatalf("after the timeout: %v", l.Stats.Snapshot())
	}
	if l.Stats.Load(Received) != accounted(l) {
		t.Errorf("received %d, accounted %d", l.Stats.Load(Received), accounted(l))
	}
}

func TestReassemblyOversize(t *testing.T) {
	l := newLayer()
	f := ipPacket(header.ProtoICMP, make([]byte, 1480))
	header.IPv4(f).SetFragment(len(f), header.IPv4FlagMF, 64064) // ends at 65544
	if v, _ := l.Input(t0, f); v != Drop || l.Stats.Drops(FragOversize) != 1 {
		t.Fatalf("%v", v)
	}
}

// FuzzReassembly: fragments of a few datagrams, cut, duplicated, reordered
// and overlapping as the input says: Input never panics, memory stays under
// the cap and is all returned once the queues time out, and whatever is
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
			pkt := bigEcho(int(a)*24, uint16(b&3))
			frags := fragmentsOf(pkt, 8*(1+int(b>>2&7)))
			fr := bytes.Clone(frags[int(a)%len(frags)])
			if b&0x80 != 0 && len(fr) > 28 { // shift: overlaps
				off := header.IPv4(fr).FragmentOffset()
				header.IPv4(fr).SetFragment(len(fr), header.IPv4FlagMF, max(off-8, 0))
			}
			v, h := l.Input(now, fr)
			checkInvariants(t, l, fr, v, h)
			if v == Reply && len(h) != len(pkt) {
				t.Fatalf("reassembled %d bytes, want %d", len(h), len(pkt))
			}
			if l.Stats.ReassemblyBytes() > ReassemblyMemCap {
				t.Fatal("over the cap")
			}
			now = now.Add(time.Duration(a) * 100 * time.Millisecond)
		}
		l.ExpireFragments(now.Add(ReassemblyTimeout))
		if l.Stats.ReassemblyBytes() != 0 || l.Stats.Load(Received) != accounted(l) {
			t.Fatalf("end: %v", l.Stats.Snapshot())
		}
	})
}
