package ipv4

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"ustack/stack/header"
)

// TestFragmentationRoundTrip: a datagram cut by PutFragment for several
// MTUs is put together again by the peer's reassembler.
func TestFragmentationRoundTrip(t *testing.T) {
	for _, mtu := range []int{68, 576, 1000, 1500} {
		a := newLayer()
		b := New(netip.AddrFrom4(peerAddr))
		data := make([]byte, 8000)
		for i := range data {
			data[i] = byte(i)
		}
		m := header.ICMPv4(make([]byte, 8+len(data)))
		m.SetType(header.ICMPEcho)
		copy(m[8:], data)
		m.UpdateChecksum()
		pkt := make([]byte, 20+len(m))
		a.PutHeaderNoDF(t0, pkt, ourAddr, peerAddr, header.ProtoICMP, len(m))
		copy(pkt[20:], m)
		if !NeedsFragments(pkt, mtu) {
			t.Fatalf("mtu %d: no fragments needed", mtu)
		}
		buf := make([]byte, mtu)
		var v Verdict
		var h header.IPv4
		frags := 0
		for off := 0; ; {
			n, next := a.PutFragment(buf, pkt, mtu, off)
			if n > mtu {
				t.Fatalf("mtu %d: a %d-byte fragment", mtu, n)
			}
			v, h = b.Input(t0, bytes.Clone(buf[:n]))
			frags++
			if next == 0 {
				break
			}
			off = next
		}
		if v != Reply || a.Stats.Load(FragmentsSent) != uint64(frags) || a.Stats.Load(Fragmented) != 1 {
			t.Fatalf("mtu %d: %v after %d fragments", mtu, v, frags)
		}
		if !bytes.Equal(h.Payload()[8:], data) {
			t.Fatalf("mtu %d: data differ", mtu)
		}
	}
}

// TestIDsUnique: RFC 6864 §4.2, the IDs of non-atomic datagrams to one
// destination do not repeat within 60000 datagrams, with time passing (each idle
// step skips a few).
func TestIDsUnique(t *testing.T) {
	l := newLayer()
	b := make([]byte, 20)
	seen := make(map[uint16]bool)
	now := t0
	for i := range 60000 {
		l.PutHeaderNoDF(now, b, ourAddr, peerAddr, header.ProtoICMP, 0)
		id := header.IPv4(b).ID()
		if seen[id] {
			t.Fatalf("ID %d repeated after %d datagrams", id, i)
		}
		seen[id] = true
		if header.IPv4(b).DF() {
			t.Fatal("DF set")
		}
		if i%10000 == 0 {
			now = now.Add(3 * time.Millisecond) // the random step stays below the idle time
		}
	}
}
