package ipv4

import (
	"bytes"
	"encoding/binary"
	"syscall"
	"testing"
	"time"

	"ustack/stack/header"
)

// ourPacket is a datagram from us to peer.
func ourPacket(proto uint8, payload []byte) []byte {
	b := ipPacket(proto, payload)
	copy(b[12:16], ourAddr[:])
	copy(b[16:20], peerAddr[:])
	return fixIPChecksum(b)
}

// quoteOf is what an ICMP error carries of pkt: its header and 8 bytes.
func quoteOf(pkt []byte) []byte { return bytes.Clone(pkt[:min(len(pkt), 28)]) }

// ourSegment is a TCP segment from us:40000 to peer:80 with sequence seq.
func ourSegment(seq uint32) []byte {
	seg := make([]byte, 20)
	header.PutTCP(seg, header.TCPFields{SrcPort: 40000, DstPort: 80, Seq: seq, Flags: header.FlagSYN, Window: 100})
	return ourPacket(header.ProtoTCP, seg)
}

// icmpError is an ICMP error of type and code, with the second word rest,
// quoting q.
func icmpError(typ, code uint8, rest uint32, q []byte) []byte {
	b := icmpPacket(typ, q)
	m := header.ICMPv4(b[20:])
	m.SetCode(code)
	binary.BigEndian.PutUint32(m[4:], rest)
	m.UpdateChecksum()
	return b
}

// TestErrnoTable: Linux's icmp_err_convert and tcp_v4_err.
func TestErrnoTable(t *testing.T) {
	want := map[[2]uint8]syscall.Errno{
		{3, 0}: syscall.ENETUNREACH, {3, 1}: syscall.EHOSTUNREACH, {3, 2}: syscall.ENOPROTOOPT,
		{3, 3}: syscall.ECONNREFUSED, {3, 4}: 0, {3, 5}: syscall.EOPNOTSUPP, {3, 6}: syscall.ENETUNREACH,
		{3, 7}: syscall.EHOSTDOWN, {3, 8}: syscall.ENONET, {3, 9}: syscall.ENETUNREACH,
		{3, 10}: syscall.EHOSTUNREACH, {3, 11}: syscall.ENETUNREACH, {3, 12}: syscall.EHOSTUNREACH,
		{3, 13}: syscall.EHOSTUNREACH, {3, 14}: syscall.EHOSTUNREACH, {3, 15}: syscall.EHOSTUNREACH,
		{11, 0}: syscall.EHOSTUNREACH, {11, 1}: syscall.EHOSTUNREACH, {12, 0}: syscall.EPROTO,
	}
	for tc, e := range want {
		got, ok := Errno(tc[0], tc[1])
		if !ok || got != e {
			t.Errorf("Errno(%d, %d) = %v, %v; want %v", tc[0], tc[1], got, ok, e)
		}
	}
	for _, tc := range [][2]uint8{{3, 16}, {4, 0}, {5, 0}, {0, 0}, {8, 0}} {
		if _, ok := Errno(tc[0], tc[1]); ok {
			t.Errorf("Errno(%d, %d) taken; TCP ignores it", tc[0], tc[1])
		}
	}
}

func TestICMPErrorParsed(t *testing.T) {
	l := newLayer()
	pkt := icmpError(header.ICMPDestUnreach, header.ICMPFragNeeded, 1000, quoteOf(ourSegment(0x01020304)))
	v, h := l.Input(t0, pkt)
	if v != DeliverICMPError {
		t.Fatalf("%v (stats %v)", v, l.Stats.Snapshot())
	}
	e, why := l.ParseICMPError(h)
	if why != 0 || !e.FragNeeded() || e.MTU != 1000 || e.Dst != peerAddr || e.SrcPort != 40000 || e.DstPort != 80 || e.Seq != 0x01020304 {
		t.Fatalf("%+v %v", e, why)
	}
	v, h = l.Input(t0, icmpError(header.ICMPDestUnreach, header.ICMPPortUnreach, 0, quoteOf(ourSegment(7))))
	if e, _ := l.ParseICMPError(h); v != DeliverICMPError || e.Errno != syscall.ECONNREFUSED || e.MTU != 0 {
		t.Fatalf("port unreachable: %v %+v", v, e)
	}
	// Quotes that are not about our TCP.
	bad := map[string][]byte{
		"short":        quoteOf(ourSegment(1))[:27],
		"not ours":     quoteOf(ipPacket(header.ProtoTCP, make([]byte, 20))),
		"IHL too big":  append(quoteOf(ourSegment(1))[:0:0], 0x4f),
		"not IPv4":     append([]byte{0x60}, make([]byte, 39)...),
		"bad IHL low":  append([]byte{0x44}, make([]byte, 27)...),
		"ICMP of ours": quoteOf(ourPacket(header.ProtoICMP, make([]byte, 8))),
	}
	for name, q := range bad {
		if v, _ := l.Input(t0, icmpError(header.ICMPTimeExceeded, 0, 0, q)); v != Drop {
			t.Errorf("%s: %v", name, v)
		}
	}
	if l.Stats.Load(Received) != accounted(l) {
		t.Errorf("received %d, accounted %d", l.Stats.Load(Received), accounted(l))
	}
}

// TestUnknownProtocol: RFC 1122 §3.2.2.1, protocol unreachable, quoting
// the datagram; never about an ICMP error, a non-initial fragment or a
// multicast source.
func TestUnknownProtocol(t *testing.T) {
	l := newLayer()
	udp := ipPacket(253, make([]byte, 600)) // RFC 3692: for experiments
	v, h := l.Input(t0, bytes.Clone(udp))
	if v != Unreachable || l.Stats.Drops(UnknownProtocol) != 1 {
		t.Fatalf("%v", v)
	}
	b := make([]byte, 576)
	n := l.PutICMPError(t0, b, h, header.ICMPDestUnreach, header.ICMPProtoUnreach)
	r, err := header.ParseIPv4(b[:n])
	if err != nil || n != 576 {
		t.Fatalf("%d bytes, %v", n, err)
	}
	m, err := header.ParseICMPv4(r.Payload())
	if err != nil || m.Type() != 3 || m.Code() != 2 || !bytes.Equal(m[8:], udp[:548]) {
		t.Fatalf("message %v", err)
	}
	errAbout := icmpError(header.ICMPDestUnreach, 3, 0, make([]byte, 28))
	frag := bytes.Clone(udp)
	header.IPv4(frag).SetFragment(len(frag), 0, 8)
	mcast := bytes.Clone(udp)
	copy(mcast[12:], []byte{224, 0, 0, 1})
	for name, p := range map[string][]byte{"ICMP error": errAbout, "fragment": frag, "multicast source": mcast} {
		if n := l.PutICMPError(t0.Add(time.Hour), b, p, header.ICMPDestUnreach, header.ICMPProtoUnreach); n != 0 {
			t.Errorf("an ICMP error about a %s", name)
		}
	}
}

// TestICMPRateLimit: Linux's icmp_ratelimit (1 s per peer, bursts of 6)
// and icmp_msgs_per_sec/icmp_msgs_burst (1000/s, 50) on a virtual clock.
func TestICMPRateLimit(t *testing.T) {
	l := newLayer()
	b := make([]byte, 576)
	send := func(now time.Time, src byte) bool {
		p := ipPacket(header.ProtoUDP, make([]byte, 8))
		p[15] = src
		fixIPChecksum(p)
		return l.PutICMPError(now, b, p, header.ICMPDestUnreach, header.ICMPProtoUnreach) > 0
	}
	sent := 0
	for range 10 {
		if send(t0, 1) {
			sent++
		}
	}
	if sent != 6 {
		t.Fatalf("one peer at once: %d sent, want 6", sent)
	}
	if send(t0.Add(999*time.Millisecond), 1) || !send(t0.Add(1000*time.Millisecond), 1) {
		t.Fatal("one peer: not one per second")
	}
	// The global bucket: 50 at once over many peers (44 left after the 6).
	sent = 0
	for p := range 100 {
		if send(t0.Add(time.Second), byte(10+p)) {
			sent++
		}
	}
	// The refill at 999 ms topped the bucket up to 50; the send at 1000 ms
	// took one.
	if sent != ICMPMsgsBurst-1 {
		t.Fatalf("global burst: %d sent, want %d", sent, ICMPMsgsBurst-1)
	}
	if send(t0.Add(time.Second+18*time.Millisecond), 200) {
		t.Fatal("global bucket refilled within 20 ms")
	}
	if !send(t0.Add(time.Second+19*time.Millisecond), 201) { // 20 ms after the last refill
		t.Fatal("global bucket not refilled after 20 ms")
	}
	if l.Stats.Load(ICMPRateLimited) == 0 {
		t.Fatal("nothing counted as rate-limited")
	}
}

func TestPMTUCache(t *testing.T) {
	var c PMTUCache
	dst := peerAddr
	if mtu, _ := c.Lookup(t0, dst); mtu != 0 {
		t.Fatal("empty cache knows a path MTU")
	}
	if mtu, changed := c.Update(t0, dst, 1400, 1500); mtu != 1400 || !changed {
		t.Fatalf("Update(1400) = %d, %v", mtu, changed)
	}
	if mtu, changed := c.Update(t0, dst, 1450, 1500); mtu != 1400 || changed {
		t.Fatalf("an increase taken: %d", mtu)
	}
	if mtu, changed := c.Update(t0, dst, 300, 1500); mtu != MinPMTU || !changed {
		t.Fatalf("Update(300) = %d", mtu)
	}
	if mtu, locked := c.Lookup(t0, dst); mtu != MinPMTU || !locked {
		t.Fatalf("Lookup = %d, locked %v; want 552, locked", mtu, locked)
	}
	if mtu, _ := c.Update(t0, dst, 200, 1500); mtu != MinPMTU {
		t.Fatalf("a locked entry changed: %d", mtu)
	}
	if mtu, _ := c.Lookup(t0.Add(PMTUExpires), dst); mtu != 0 {
		t.Fatalf("not expired after 10 min: %d", mtu)
	}
	if mtu, _ := c.Update(t0, [4]byte{1, 2, 3, 4}, 1600, 1500); mtu != 1500 {
		t.Fatalf("above the link MTU: %d", mtu)
	}
	if !PMTUDiscWant.DF(false) || PMTUDiscWant.DF(true) || PMTUDiscDont.DF(false) || !PMTUDiscDo.DF(true) {
		t.Fatal("DF by mode")
	}
}
