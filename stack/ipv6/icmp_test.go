package ipv6

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"ustack/stack/header"
)

// checkEchoReply: p is the reply, from src to peer, to a request with data.
func checkEchoReply(t *testing.T, l *Layer, p Packet, src [16]byte, data []byte) {
	t.Helper()
	checkInvariants(t, l, p.IP, Reply, p)
	h := p.IP
	if h.SrcBytes() != src || h.DstBytes() != peerAddr || h.NextHeader() != header.ProtoICMPv6 || h.PayloadLen() != 8+len(data) {
		t.Fatalf("reply %v -> %v next %d len %d", h.Src(), h.Dst(), h.NextHeader(), h.PayloadLen())
	}
	m, err := header.ParseICMPv6(h[40:], src, peerAddr)
	if err != nil || m.Type() != header.ICMPv6EchoReply || m.Code() != 0 || m.Ident() != 0x4242 || m.Seq() != 7 {
		t.Fatalf("reply ICMPv6: %v type %d code %d ident %#x seq %d", err, m.Type(), m.Code(), m.Ident(), m.Seq())
	}
	if !bytes.Equal(m[8:], data) {
		t.Fatal("reply data differ")
	}
	if h.FlowLabel() == 0 {
		t.Fatal("reply unlabelled")
	}
}

// TestEchoReply: RFC 4443 §4.2, in place; the request's extension headers
// are not carried over, its traffic class is.
func TestEchoReply(t *testing.T) {
	for name, chain := range map[string][]ext{"plain": nil, "with headers": {hbh(opt(5, 2)), dest(opt(0x1e, 30))}} {
		t.Run(name, func(t *testing.T) {
			l := newLayer()
			pkt := echoReq(ourAddr, chain, echoData)
			pkt[0], pkt[1] = 0x6b, 0x80 // traffic class 0xb8
			v, p := l.Input(t0, pkt)
			if v != Reply || &p.IP[0] != &pkt[0] {
				t.Fatalf("%v (stats %v)", v, l.Stats.Snapshot())
			}
			checkEchoReply(t, l, p, ourAddr, echoData)
			if p.IP.TrafficClass() != 0xb8 {
				t.Fatalf("traffic class %#x", p.IP.TrafficClass())
			}
			if l.Stats.Load(ICMPEchoReplied) != 1 || l.Stats.Load(Sent) != 1 {
				t.Fatal(l.Stats.Snapshot())
			}
		})
	}
}

// TestEchoReplyToGroups: Linux answers echo requests to ff02::1 (and so
// to the solicited-node group of an address, which a host joins, RFC 4291
// §2.8) from a unicast address of its own (RFC 4443 §4.2).
func TestEchoReplyToGroups(t *testing.T) {
	for _, group := range [][16]byte{allNodes, solicitedOurs} {
		l := newLayer()
		l.AddAddr(netipFrom(linkLocal))
		v, p := l.Input(t0, echoReq(group, nil, echoData))
		if v != Reply {
			t.Fatalf("%v (stats %v)", v, l.Stats.Snapshot())
		}
		checkEchoReply(t, l, p, ourAddr, echoData)
		// From a link-local peer, the link-local address answers.
		req := build(peerLL, group, nil, header.ProtoICMPv6, icmpMsg(header.ICMPv6EchoRequest, 0, 0x42420007, nil))
		if v, p := l.Input(t0, req); v != Reply || p.Src != linkLocal || p.Dst != peerLL {
			t.Fatalf("%v from %v", v, p.SrcAddr())
		}
	}
}

// TestBigEchoReplyFragmented: `ping -6 -s 4000` over a 1500-byte path:
// the request comes in fragments, the reply is one datagram which the
// caller sends with PutFragment, and the peer's layer puts together again.
func TestBigEchoReplyFragmented(t *testing.T) {
	for _, mtu := range []int{1000, 1280, 1500, 2000} {
		l := newLayer()
		req := bigEcho(4000)
		v, p := feed(t, l, t0, fragmentsOf(req, 1448, 0x77))
		if v != Reply || len(p.IP) != len(req) {
			t.Fatalf("%v, %d bytes (stats %v)", v, len(p.IP), l.Stats.Snapshot())
		}
		if !NeedsFragments(p.IP, mtu) {
			t.Fatal("no fragments needed")
		}
		peer := New(netipFrom(peerAddr))
		id := l.FragmentID(t0, p.Src, p.Dst)
		buf := make([]byte, max(mtu, 1280))
		var pv Verdict
		var pp Packet
		frags := 0
		for off := 0; ; {
			n, next := l.PutFragment(buf, p.IP, mtu, off, id)
			if n > max(mtu, 1280) || (next != 0 && (n-48)%8 != 0) {
				t.Fatalf("mtu %d: a %d-byte fragment", mtu, n)
			}
			pv, pp = peer.Input(t0, bytes.Clone(buf[:n]))
			frags++
			if next == 0 {
				break
			}
			off = next
		}
		if pv != Drop { // the peer gets an echo reply, which it drops as icmp_other
			t.Fatalf("peer: %v", pv)
		}
		if peer.Stats.Load(Reassembled) != 1 || peer.Stats.Drops(ICMPOtherDropped) != 1 || pp.IP != nil {
			t.Fatalf("mtu %d: peer stats %v", mtu, peer.Stats.Snapshot())
		}
		if l.Stats.Load(FragmentsSent) != uint64(frags) || l.Stats.Load(Fragmented) != 1 {
			t.Fatalf("mtu %d: %v", mtu, l.Stats.Snapshot())
		}
	}
}

// TestFragmentsReassembleToTheDatagram: the peer's reassembly of
// PutFragment's output is byte for byte the datagram.
func TestFragmentsReassembleToTheDatagram(t *testing.T) {
	l := newLayer()
	peer := New(netipFrom(peerAddr))
	dg := make([]byte, 40+3001)
	for i := range dg {
		dg[i] = byte(i)
	}
	l.PutHeader(dg, ourAddr, peerAddr, header.ProtoUDP, 3001, 9)
	binary.BigEndian.PutUint16(dg[44:], 3001) // UDP length
	buf := make([]byte, 1280)
	var v Verdict
	var p Packet
	for off := 0; ; {
		n, next := l.PutFragment(buf, dg, 1280, off, 5)
		v, p = peer.Input(t0, bytes.Clone(buf[:n]))
		if next == 0 {
			break
		}
		off = next
	}
	if v != Deliver || !bytes.Equal(p.IP, dg) {
		t.Fatalf("%v, %d bytes", v, len(p.IP))
	}
}

func netipFrom(a [16]byte) netip.Addr { return netip.AddrFrom16(a) }

// TestErrnoTable: Linux's icmpv6_err_convert.
func TestErrnoTable(t *testing.T) {
	type res struct {
		errno syscall.Errno
		fatal bool
	}
	want := map[[2]uint8]res{
		{1, 0}: {syscall.ENETUNREACH, false}, {1, 1}: {syscall.EACCES, true}, {1, 2}: {syscall.EHOSTUNREACH, false},
		{1, 3}: {syscall.EHOSTUNREACH, false}, {1, 4}: {syscall.ECONNREFUSED, true}, {1, 5}: {syscall.EACCES, true},
		{1, 6}: {syscall.EACCES, true}, {1, 7}: {syscall.EPROTO, true}, {2, 0}: {syscall.EMSGSIZE, false},
		{3, 0}: {syscall.EHOSTUNREACH, false}, {3, 1}: {syscall.EHOSTUNREACH, false}, {4, 0}: {syscall.EPROTO, true},
		{4, 2}: {syscall.EPROTO, true}, {100, 0}: {syscall.EPROTO, false},
	}
	for tc, w := range want {
		errno, fatal, ok := Errno(tc[0], tc[1])
		if !ok || errno != w.errno || fatal != w.fatal {
			t.Errorf("Errno(%d, %d) = %v, %v, %v; want %v, %v", tc[0], tc[1], errno, fatal, ok, w.errno, w.fatal)
		}
	}
	for _, typ := range []uint8{128, 129, 133, 255} {
		if _, _, ok := Errno(typ, 0); ok {
			t.Errorf("Errno(%d) taken", typ)
		}
	}
}

// icmpErrorPkt is an ICMPv6 error from a router to us quoting q.
func icmpErrorPkt(typ, code uint8, param uint32, q []byte) []byte {
	return build(otherAddr, ourAddr, nil, header.ProtoICMPv6, icmpMsg(typ, code, param, q))
}

func TestICMPErrorsDelivered(t *testing.T) {
	seg := ourPacket(header.ProtoTCP, tcpSeg(0x01020304))
	withExt := build(ourAddr, peerAddr, []ext{dest(), fh(0, true, 3)}, header.ProtoTCP, tcpSeg(0x0a0b0c0d))
	udp := ourPacket(header.ProtoUDP, udpDgram([]byte("query")))
	tests := []struct {
		name string
		pkt  []byte
		want ICMPError
	}{
		{"packet too big about TCP", icmpErrorPkt(2, 0, 1400, seg), ICMPError{Type: 2, Errno: syscall.EMSGSIZE, MTU: 1400,
			Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 80, Seq: 0x01020304}},
		{"port unreachable about UDP", icmpErrorPkt(1, 4, 0, udp), ICMPError{Type: 1, Code: 4, Errno: syscall.ECONNREFUSED,
			Fatal: true, Proto: header.ProtoUDP, SrcPort: 5353, DstPort: 53}},
		{"time exceeded about a first fragment", icmpErrorPkt(3, 0, 0, withExt[:40+8+8+8]), ICMPError{Type: 3,
			Errno: syscall.EHOSTUNREACH, Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 80, Seq: 0x0a0b0c0d}},
		{"parameter problem", icmpErrorPkt(4, 0, 6, seg), ICMPError{Type: 4, Errno: syscall.EPROTO, Fatal: true, Pointer: 6,
			Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 80, Seq: 0x01020304}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLayer()
			v, p := l.Input(t0, tc.pkt)
			checkInvariants(t, l, tc.pkt, v, p)
			tc.want.Src, tc.want.Dst = ourAddr, peerAddr
			if v != DeliverICMPError || p.ICMP != tc.want || l.Stats.Load(ICMPErrorsDelivered) != 1 {
				t.Fatalf("%v %+v\nwant %+v", v, p.ICMP, tc.want)
			}
			if !p.ICMP.PacketTooBig() != (tc.want.Type != 2) {
				t.Fatal("PacketTooBig")
			}
		})
	}
}

// TestPacketTooBigAboutEchoReply: the layer lowers the path MTU itself,
// never below 1280 (RFC 8201 §4), and never raises it.
func TestPacketTooBigAboutEchoReply(t *testing.T) {
	l := newLayer()
	l.SetLinkMTU(9000)
	reply := ourPacket(header.ProtoICMPv6, icmpMsg(header.ICMPv6EchoReply, 0, 0x42420007, make([]byte, 4000)))[:1232]
	for _, tc := range []struct{ mtu, want int }{{4000, 4000}, {5000, 4000}, {1500, 1500}, {600, 1280}, {0, 1280}} {
		v, _ := l.Input(t0, icmpErrorPkt(2, 0, uint32(tc.mtu), reply))
		if v != Drop || l.PMTU.Lookup(t0, peerAddr) != tc.want {
			t.Fatalf("PTB %d: %v, path MTU %d, want %d", tc.mtu, v, l.PMTU.Lookup(t0, peerAddr), tc.want)
		}
	}
	if l.Stats.Load(ICMPErrorsTaken) != 5 || l.Stats.Load(PMTULowered) != 3 || l.Stats.Dropped() != 0 {
		t.Fatal(l.Stats.Snapshot())
	}
	// RFC 8201 §4: the estimate returns after 10 minutes.
	if l.PMTU.Lookup(t0.Add(PMTUExpires), peerAddr) != 0 {
		t.Fatal("path MTU did not expire")
	}
}

// TestPutICMPErrorRules: RFC 4443 §2.4(e).
func TestPutICMPErrorRules(t *testing.T) {
	udp := fromPeer(nil, header.ProtoUDP, udpDgram(nil))
	big := fromPeer(nil, header.ProtoUDP, udpDgram(make([]byte, 3000)))
	opt10 := echoReq(allNodes, []ext{dest(opt(0x82, 2))}, echoData)
	opt11 := echoReq(allNodes, []ext{dest(opt(0xc2, 2))}, echoData)
	tests := []struct {
		name       string
		orig       []byte
		typ, code  uint8
		param      uint32
		sent       bool
		wantSource [16]byte
	}{
		{"port unreachable", udp, 1, 4, 0, true, ourAddr},
		{"to our second address", build(peerAddr, ourAddr2, nil, header.ProtoUDP, udpDgram(nil)), 1, 4, 0, true, ourAddr2},
		{"quote cut to 1280", big, 1, 4, 0, true, ourAddr},
		{"about an error", fromPeer(nil, header.ProtoICMPv6, icmpMsg(1, 4, 0, make([]byte, 48))), 4, 0, 0, false, ourAddr},
		{"about a redirect", fromPeer(nil, header.ProtoICMPv6, icmpMsg(137, 0, 0, make([]byte, 32))), 4, 0, 0, false, ourAddr},
		{"about a cut ICMPv6", fromPeer(nil, header.ProtoICMPv6, nil), 4, 1, 6, false, ourAddr},
		{"about an echo request", echoReq(ourAddr, nil, echoData), 4, 0, 0, true, ourAddr},
		{"about a non-first fragment of ICMPv6", fromPeer([]ext{fh(8, true, 1)}, header.ProtoICMPv6, nil), 4, 0, 4, true, ourAddr},
		{"to a group", withDst(fromPeer(nil, header.ProtoUDP, udpDgram(nil)), "ff02::1"), 1, 4, 0, false, ourAddr},
		{"to a group, option 10", opt10, 4, 2, 42, true, ourAddr},
		{"to a group, option 11", opt11, 4, 2, 42, false, ourAddr},
		{"to a group, code 2 pointing elsewhere", opt10, 4, 2, 6, false, ourAddr},
		{"to a group, packet too big", withDst(fromPeer(nil, header.ProtoUDP, udpDgram(nil)), "ff02::1"), 2, 0, 1280, true, ourAddr},
		{"not to us", withDst(fromPeer(nil, header.ProtoUDP, udpDgram(nil)), "2001:2::3"), 1, 4, 0, false, ourAddr},
		{"from a group", withSrc(fromPeer(nil, header.ProtoUDP, udpDgram(nil)), "ff02::2"), 1, 4, 0, false, ourAddr},
		{"from ::", withSrc(fromPeer(nil, header.ProtoUDP, udpDgram(nil)), "::"), 1, 4, 0, false, ourAddr},
		{"not IPv6", edit(fromPeer(nil, header.ProtoUDP, udpDgram(nil)), func(b []byte) { b[0] = 0x45 }), 1, 4, 0, false, ourAddr},
		{"short", udp[:39], 1, 4, 0, false, ourAddr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLayer()
			l.AddAddr(netipFrom(ourAddr2))
			b := make([]byte, 1500)
			n := l.PutICMPError(t0, b, tc.orig, tc.typ, tc.code, tc.param)
			if (n != 0) != tc.sent {
				t.Fatalf("sent %d bytes, want sent %v", n, tc.sent)
			}
			if n == 0 {
				return
			}
			checkError(t, b[:n], peerAddr, tc.typ, tc.code, tc.param, tc.orig)
			if src := header.IPv6(b).SrcBytes(); src != tc.wantSource {
				t.Fatalf("from %v", netipFrom(src))
			}
			if l.Stats.Load(ICMPErrorsSent) != 1 || l.Stats.Load(Sent) != 1 {
				t.Fatal(l.Stats.Snapshot())
			}
		})
	}
}

// TestPutICMPErrorSmallBuffer: the quote shrinks to the buffer.
func TestPutICMPErrorSmallBuffer(t *testing.T) {
	l := newLayer()
	orig := fromPeer(nil, header.ProtoUDP, udpDgram(make([]byte, 100)))
	b := make([]byte, 100)
	if n := l.PutICMPError(t0, b, orig, 1, 4, 0); n != 100 {
		t.Fatalf("%d bytes", n)
	}
	if n := l.PutICMPError(t0.Add(time.Hour), make([]byte, 87), orig, 1, 4, 0); n != 0 {
		t.Fatalf("%d bytes in 87: less than a header quoted", n)
	}
}

// TestICMPRateLimit: RFC 4443 §2.4(f), Linux's per-peer bucket (a burst
// of 6, then one a second); Packet Too Big is exempt (ratemask 0-1,3-127).
func TestICMPRateLimit(t *testing.T) {
	l := newLayer()
	b := make([]byte, 1280)
	orig := fromPeer(nil, header.ProtoUDP, udpDgram(nil))
	other := withSrc(bytes.Clone(orig), "2001:2::9")
	sent := 0
	for range 10 {
		if l.PutICMPError(t0, b, orig, 1, 4, 0) != 0 {
			sent++
		}
	}
	if sent != peerBurstFactor || l.Stats.Load(ICMPRateLimited) != 10-peerBurstFactor {
		t.Fatalf("%d sent in a burst (stats %v)", sent, l.Stats.Snapshot())
	}
	if l.PutICMPError(t0, b, other, 1, 4, 0) == 0 {
		t.Fatal("another peer limited")
	}
	if l.PutICMPError(t0, b, orig, 2, 0, 1280) == 0 {
		t.Fatal("packet too big limited")
	}
	if l.PutICMPError(t0.Add(999*time.Millisecond), b, orig, 1, 4, 0) != 0 {
		t.Fatal("sent before a second passed")
	}
	if l.PutICMPError(t0.Add(time.Second), b, orig, 1, 4, 0) == 0 {
		t.Fatal("not sent after a second")
	}
}

func TestPMTUCache(t *testing.T) {
	var c PMTUCache
	if !c.Empty() || c.Lookup(t0, peerAddr) != 0 {
		t.Fatal("not empty")
	}
	if mtu, changed := c.Update(t0, peerAddr, 1500, 1500); changed || mtu != 1500 {
		t.Fatal("raised to the link MTU")
	}
	if mtu, changed := c.Update(t0, peerAddr, 1400, 1500); !changed || mtu != 1400 {
		t.Fatal("not lowered")
	}
	if mtu, changed := c.Update(t0, peerAddr, 1450, 1500); changed || mtu != 1400 {
		t.Fatal("raised")
	}
	if mtu, _ := c.Update(t0, peerAddr, 68, 1500); mtu != MinPMTU || c.Lookup(t0, peerAddr) != MinPMTU {
		t.Fatal("below 1280")
	}
	for i := range maxPMTUEntries + 10 {
		var d [16]byte
		binary.BigEndian.PutUint32(d[12:], uint32(i))
		c.Update(t0.Add(time.Duration(i)), d, 1300, 1500)
	}
	if n := c.n.Load(); n > maxPMTUEntries {
		t.Fatalf("%d entries", n)
	}
}
