package ipv6

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"ustack/stack/counter"
	"ustack/stack/header"
)

func edit(b []byte, f func([]byte)) []byte { f(b); return b }

// withSrc and withDst rewrite a packet's addresses.
func withSrc(b []byte, a string) []byte { return edit(b, func(b []byte) { copy(b[8:24], addr(a)) }) }
func withDst(b []byte, a string) []byte { return edit(b, func(b []byte) { copy(b[24:40], addr(a)) }) }

func addr(s string) []byte { a := netip.MustParseAddr(s).As16(); return a[:] }

func tcpPkt() []byte { return fromPeer(nil, header.ProtoTCP, tcpSeg(1000)) }

// repeat is n copies of ext e.
func repeat(e ext, n int) []ext {
	out := make([]ext, n)
	for i := range out {
		out[i] = e
	}
	return out
}

// opt is an option of type t with n data bytes.
func opt(t uint8, n int) []byte { return append([]byte{t, byte(n)}, make([]byte, n)...) }

// dropCases are one packet per reason a packet is dropped silently.
var dropCases = []struct {
	name   string
	reason Reason
	pkt    func() []byte
}{
	{"empty", TooShort, func() []byte { return nil }},
	{"39 bytes", TooShort, func() []byte { return tcpPkt()[:39] }},
	{"version 4", BadVersion, func() []byte { return edit(tcpPkt(), func(b []byte) { b[0] = 0x45 }) }},
	{"payload beyond packet", BadPayloadLength, func() []byte { b := tcpPkt(); return b[:len(b)-1] }},
	{"other unicast destination", NotForUs, func() []byte { return withDst(tcpPkt(), "2001:2::3") }},
	{"loopback destination", NotForUs, func() []byte { return withDst(tcpPkt(), "::1") }},
	{"unspecified destination", NotForUs, func() []byte { return withDst(tcpPkt(), "::") }},
	{"group not joined", MulticastDropped, func() []byte { return withDst(echoReq(ourAddr, nil, echoData), "ff02::2") }},
	{"interface-local all nodes", MulticastDropped, func() []byte { return withDst(echoReq(ourAddr, nil, echoData), "ff01::1") }},
	{"scope 0 multicast", MulticastDropped, func() []byte { return withDst(echoReq(ourAddr, nil, echoData), "ff00::1") }},
	{"TCP to all nodes", MulticastDropped, func() []byte { return withDst(tcpPkt(), "ff02::1") }},
	{"other solicited-node group", MulticastDropped, func() []byte { return withDst(echoReq(ourAddr, nil, echoData), "ff02::1:ff00:9") }},
	{"multicast source", BadSource, func() []byte { return withSrc(tcpPkt(), "ff02::1") }},
	{"unspecified source", BadSource, func() []byte { return withSrc(tcpPkt(), "::") }},
	{"loopback source", BadSource, func() []byte { return withSrc(tcpPkt(), "::1") }},
	{"IPv4-mapped source", BadSource, func() []byte { return withSrc(tcpPkt(), "::ffff:198.18.0.1") }},
	{"hop-by-hop cut", Truncated, func() []byte {
		return edit(fromPeer([]ext{hbh()}, header.ProtoTCP, nil)[:44], func(b []byte) { header.IPv6(b).SetPayloadLen(4) })
	}},
	{"dest opts beyond payload", Truncated, func() []byte {
		b := fromPeer([]ext{dest()}, header.ProtoTCP, nil)
		b[41] = 1 // 16 bytes, 8 present
		return b
	}},
	{"payload length 0, hop-by-hop", Truncated, func() []byte {
		return edit(fromPeer([]ext{hbh()}, header.ProtoTCP, nil), func(b []byte) { b[4], b[5] = 0, 0 })
	}},
	{"9 extension headers", TooManyExtHeaders, func() []byte { return fromPeer(repeat(dest(), 9), header.ProtoTCP, tcpSeg(1)) }},
	{"chain over 2048 bytes", ExtChainTooLong, func() []byte {
		return fromPeer([]ext{dest(opt(0x1e, 253), opt(0x1e, 253), opt(0x1e, 253), opt(0x1e, 253), opt(0x1e, 253),
			opt(0x1e, 253), opt(0x1e, 253), opt(0x1e, 253)), dest()}, header.ProtoTCP, tcpSeg(1))
	}},
	{"padding over 7 bytes", BadOptions, func() []byte {
		return fromPeer([]ext{dest([]byte{0, 0, 0, 0}, opt(1, 2))}, header.ProtoTCP, tcpSeg(1))
	}},
	{"PadN not zero", BadOptions, func() []byte { return fromPeer([]ext{dest([]byte{1, 2, 0, 9})}, header.ProtoTCP, tcpSeg(1)) }},
	{"option beyond header", BadOptions, func() []byte {
		return fromPeer([]ext{{header.ProtoDestOpts, []byte{0, 0, 0x1e, 5, 0, 0, 0, 0}}}, header.ProtoTCP, tcpSeg(1))
	}},
	{"router alert length 3", BadOptions, func() []byte { return fromPeer([]ext{hbh(opt(5, 3))}, header.ProtoTCP, tcpSeg(1)) }},
	{"9 options", TooManyOptions, func() []byte {
		o := opt(0x1e, 0)
		return fromPeer([]ext{dest(o, o, o, o, o, o, o, o, o)}, header.ProtoTCP, tcpSeg(1))
	}},
	{"option 01", UnknownOption, func() []byte { return fromPeer([]ext{dest(opt(0x42, 2))}, header.ProtoTCP, tcpSeg(1)) }},
	{"option 11 to a group", UnknownOption, func() []byte {
		return echoReq(allNodes, []ext{dest(opt(0xc2, 4))}, echoData)
	}},
	{"routing header to a group", RoutingHeader, func() []byte { return echoReq(allNodes, []ext{rh(0, 0)}, echoData) }},
	{"no next header", NoNextHeader, func() []byte { return fromPeer(nil, header.ProtoNoNext, []byte("ignored")) }},
	{"no next header after dest opts", NoNextHeader, func() []byte { return fromPeer([]ext{dest()}, header.ProtoNoNext, nil) }},
	{"second fragment header", FragNested, func() []byte {
		return fromPeer([]ext{fh(0, false, 1), fh(0, true, 2)}, header.ProtoTCP, tcpSeg(1))
	}},
	{"ICMPv6 too short", ICMPBad, func() []byte { return fromPeer(nil, header.ProtoICMPv6, make([]byte, 7)) }},
	{"ICMPv6 checksum", ICMPBad, func() []byte { b := echoReq(ourAddr, nil, echoData); b[len(b)-1] ^= 1; return b }},
	{"ICMPv6 checksum without pseudo-header", ICMPBad, func() []byte {
		b := echoReq(ourAddr, nil, echoData)
		header.ICMPv6(b[40:]).UpdateChecksum([16]byte{}, [16]byte{})
		return b
	}},
	{"router advertisement", ICMPNDIgnored, func() []byte {
		return build(peerLL, allNodes, nil, header.ProtoICMPv6, icmpMsg(header.ICMPv6RouterAdvert, 0, 0, make([]byte, 8)))
	}},
	{"neighbour solicitation", ICMPNDIgnored, func() []byte {
		return build(peerAddr, solicitedOurs, nil, header.ProtoICMPv6, icmpMsg(header.ICMPv6NeighSolicit, 0, 0, ourAddr[:]))
	}},
	{"redirect", ICMPNDIgnored, func() []byte {
		return fromPeer(nil, header.ProtoICMPv6, icmpMsg(header.ICMPv6Redirect, 0, 0, make([]byte, 32)))
	}},
	{"echo reply", ICMPOtherDropped, func() []byte {
		return fromPeer(nil, header.ProtoICMPv6, icmpMsg(header.ICMPv6EchoReply, 0, 0, echoData))
	}},
	{"MLD query to all nodes", ICMPOtherDropped, func() []byte {
		return build(peerLL, allNodes, []ext{hbh(opt(5, 2))}, header.ProtoICMPv6, icmpMsg(130, 0, 0, make([]byte, 20)))
	}},
	{"error to a group", ICMPOtherDropped, func() []byte {
		return build(peerAddr, allNodes, nil, header.ProtoICMPv6, icmpMsg(1, 4, 0, ourPacket(header.ProtoUDP, udpDgram(nil))))
	}},
	{"error quoting garbage", ICMPErrorBadQuote, func() []byte {
		return fromPeer(nil, header.ProtoICMPv6, icmpMsg(1, 4, 0, make([]byte, 48)))
	}},
	{"error quoting another source", ICMPErrorBadQuote, func() []byte {
		q := build(otherAddr, peerAddr, nil, header.ProtoUDP, udpDgram(nil))
		return fromPeer(nil, header.ProtoICMPv6, icmpMsg(1, 4, 0, q))
	}},
	{"error quoting 4 bytes of UDP", ICMPErrorBadQuote, func() []byte {
		return fromPeer(nil, header.ProtoICMPv6, icmpMsg(1, 4, 0, ourPacket(header.ProtoUDP, udpDgram(nil))[:44]))
	}},
	{"error about SCTP", ICMPErrorOtherProto, func() []byte {
		return fromPeer(nil, header.ProtoICMPv6, icmpMsg(1, 4, 0, ourPacket(132, make([]byte, 12))))
	}},
	{"unreachable about an echo reply", ICMPErrorOtherProto, func() []byte {
		q := ourPacket(header.ProtoICMPv6, icmpMsg(header.ICMPv6EchoReply, 0, 1, nil))
		return fromPeer(nil, header.ProtoICMPv6, icmpMsg(1, 4, 0, q))
	}},
	{"error about a non-first fragment", ICMPErrorOtherProto, func() []byte {
		q := build(ourAddr, peerAddr, []ext{fh(1448, true, 9)}, header.ProtoUDP, udpDgram(nil))
		return fromPeer(nil, header.ProtoICMPv6, icmpMsg(1, 4, 0, q))
	}},
	{"empty fragment", FragBad, func() []byte { return fromPeer([]ext{fh(8, true, 3)}, header.ProtoTCP, nil) }},
}

// ourPacket is a datagram from us to peer.
func ourPacket(proto uint8, payload []byte) []byte {
	return build(ourAddr, peerAddr, nil, proto, payload)
}

// TestInputDropReasons feeds one bad packet per reason and checks that
// exactly that counter (and Received) moved.
func TestInputDropReasons(t *testing.T) {
	covered := map[Reason]bool{
		// Answered with a parameter problem: TestParamProblems.
		HopByHopNotFirst: true, UnknownNextHeader: true, FragBadLength: true, FragIncompleteChain: true, FragOversize: true,
		// Need a queue first: TestReassembly*.
		FragOverlap: true, FragDuplicate: true, FragNoMemory: true,
	}
	for _, tc := range dropCases {
		covered[tc.reason] = true
		t.Run(tc.name, func(t *testing.T) {
			l := newLayer()
			pkt := tc.pkt()
			orig := bytes.Clone(pkt)
			v, p := l.Input(t0, pkt)
			if v != Drop || p.IP != nil {
				t.Fatalf("Input = %v, want drop (stats %v)", v, l.Stats.Snapshot())
			}
			if !bytes.Equal(pkt, orig) {
				t.Error("Input modified a dropped packet")
			}
			for name, got := range l.Stats.Snapshot() {
				want := uint64(0)
				switch name {
				case "received", "drop_" + tc.reason.String(), "dropped":
					want = 1
				case "atomic_fragments":
					want = got
				}
				if got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
		})
	}
	for r := Reason(0); r < numReasons; r++ {
		if !covered[r] {
			t.Errorf("no test packet is dropped for %v", r)
		}
	}
}

// TestParamProblems: the drops RFC 8200 answers with an ICMPv6 parameter
// problem, with their code and pointer.
func TestParamProblems(t *testing.T) {
	tests := []struct {
		name   string
		pkt    []byte
		reason Reason
		code   uint8
		ptr    uint32
	}{
		{"unknown next header", fromPeer(nil, 132, make([]byte, 12)), UnknownNextHeader, 1, 6},
		{"unknown next header after dest opts", fromPeer([]ext{dest()}, 253, nil), UnknownNextHeader, 1, 40},
		{"ESP", fromPeer(nil, header.ProtoESP, make([]byte, 16)), UnknownNextHeader, 1, 6},
		{"hop-by-hop second", fromPeer([]ext{dest(), hbh()}, header.ProtoTCP, tcpSeg(1)), HopByHopNotFirst, 1, 40},
		{"option 10", fromPeer([]ext{dest(opt(0x1e, 0), opt(0x82, 2))}, header.ProtoTCP, tcpSeg(1)), UnknownOption, 2, 44},
		{"option 11", fromPeer([]ext{hbh(opt(0xc2, 4))}, header.ProtoTCP, tcpSeg(1)), UnknownOption, 2, 42},
		{"option 10 to a group", echoReq(allNodes, []ext{dest(opt(0x82, 2))}, echoData), UnknownOption, 2, 42},
		{"RH0 with segments left (RFC 5095)", fromPeer([]ext{rh(0, 1)}, header.ProtoTCP, tcpSeg(1)), RoutingHeader, 0, 42},
		{"segment routing header with segments left", fromPeer([]ext{dest(), rh(4, 1)}, header.ProtoTCP, tcpSeg(1)), RoutingHeader, 0, 50},
		{"fragment not a multiple of 8", fromPeer([]ext{fh(0, true, 1)}, header.ProtoTCP, make([]byte, 20+3)), FragBadLength, 0, 4},
		{"fragment beyond 65535", fromPeer([]ext{fh(65528, false, 1)}, header.ProtoTCP, make([]byte, 16)), FragOversize, 0, 42},
		{"first fragment without the upper header (RFC 7112)", fromPeer([]ext{fh(0, true, 1)}, header.ProtoTCP, make([]byte, 16)),
			FragIncompleteChain, 3, 0},
		{"first fragment with a cut chain", fromPeer([]ext{fh(0, true, 1), dest(opt(0x1e, 20))}, header.ProtoTCP, nil)[:56],
			FragIncompleteChain, 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLayer()
			if tc.name == "first fragment with a cut chain" {
				header.IPv6(tc.pkt).SetPayloadLen(16)
			}
			v, p := l.Input(t0, tc.pkt)
			checkInvariants(t, l, tc.pkt, v, p)
			if v != SendError || l.Stats.Drops(tc.reason) != 1 || p.ErrCode != tc.code || p.ErrParam != tc.ptr {
				t.Fatalf("%v code %d pointer %d (stats %v); want send-error code %d pointer %d, %v",
					v, p.ErrCode, p.ErrParam, l.Stats.Snapshot(), tc.code, tc.ptr, tc.reason)
			}
			if &p.IP[0] != &tc.pkt[0] {
				t.Fatal("the error is not about the packet received")
			}
			b := make([]byte, 1280)
			n := l.PutICMPError(t0, b, p.IP, p.ErrType, p.ErrCode, p.ErrParam)
			if n == 0 {
				t.Fatal("no error sent")
			}
			checkError(t, b[:n], p.Src, header.ICMPv6ParamProblem, tc.code, tc.ptr, tc.pkt)
		})
	}
}

// checkError: b is an ICMPv6 error from one of ours to dst quoting orig.
func checkError(t *testing.T, b []byte, dst [16]byte, typ, code uint8, param uint32, orig []byte) {
	t.Helper()
	h, err := header.ParseIPv6(b)
	if err != nil || len(h) != len(b) || len(b) > 1280 || h.NextHeader() != header.ProtoICMPv6 || h.HopLimit() != 64 {
		t.Fatalf("error datagram: %v, %d bytes", err, len(b))
	}
	if h.DstBytes() != dst || (h.SrcBytes() != ourAddr && h.SrcBytes() != ourAddr2) {
		t.Fatalf("error %v -> %v", h.Src(), h.Dst())
	}
	m, err := header.ParseICMPv6(h[40:], h.SrcBytes(), h.DstBytes())
	if err != nil || m.Type() != typ || m.Code() != code || m.Param() != param {
		t.Fatalf("error %v: %d/%d param %d", err, m.Type(), m.Code(), m.Param())
	}
	n := min(len(orig), 1280-48)
	if !bytes.Equal(m[8:], orig[:n]) {
		t.Fatalf("quote is %d bytes, want the first %d of the packet", len(m)-8, n)
	}
}

// TestDeliverThroughExtHeaders: TCP and UDP after a chain of headers to
// skip (router alert, an option with action 00, a routing header with no
// segment left, type 0 included, an atomic fragment) are delivered, with
// the offset of the upper-layer header.
func TestDeliverThroughExtHeaders(t *testing.T) {
	chains := map[string][]ext{
		"none":                 nil,
		"hop-by-hop RA":        {hbh(opt(5, 2))},
		"dest opts, skip 00":   {dest(opt(0x1e, 3), opt(0x3f, 0))},
		"RH0, 0 left":          {rh(0, 0)},
		"RH4, 0 left":          {rh(4, 0)},
		"atomic fragment":      {fh(0, false, 77)},
		"8 headers":            append([]ext{hbh()}, repeat(dest(), 7)...),
		"every kind, in order": {hbh(opt(5, 2)), dest(), rh(2, 0), fh(0, false, 5), dest(opt(0x1e, 1))},
		"8 options and 7 pad":  {dest(opt(0x1e, 0), opt(0x1e, 0), opt(0x1e, 0), opt(0x1e, 0), opt(0x1e, 0), opt(0x1e, 0), opt(0x1e, 0), []byte{0, 0, 0, 0, 0, 0, 0}, opt(0x1e, 0))},
		"2048 bytes of chain":  {dest(opt(0x1e, 253), opt(0x1e, 253), opt(0x1e, 253), opt(0x1e, 253), opt(0x1e, 253), opt(0x1e, 253), opt(0x1e, 253), opt(0x1e, 253))},
	}
	for name, chain := range chains {
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			t.Run(fmt.Sprintf("%s/%d", name, proto), func(t *testing.T) {
				l := newLayer()
				payload := tcpSeg(42)
				if proto == header.ProtoUDP {
					payload = udpDgram([]byte("dns"))
				}
				pkt := fromPeer(chain, proto, payload)
				v, p := l.Input(t0, append(pkt, 0xde, 0xad)) // trailing bytes beyond the payload length
				checkInvariants(t, l, pkt, v, p)
				if v != Deliver || p.Proto != proto || !bytes.Equal(p.Payload(), payload) || len(p.IP) != len(pkt) {
					t.Fatalf("%v proto %d payload %x (stats %v)", v, p.Proto, p.Payload(), l.Stats.Snapshot())
				}
				if p.Src != peerAddr || p.Dst != ourAddr || p.Multicast {
					t.Fatalf("%v -> %v multicast %v", p.SrcAddr(), p.DstAddr(), p.Multicast)
				}
			})
		}
	}
}

// TestHopLimitZeroDelivered: RFC 8200 §3 has forwarding nodes check the
// hop limit; a host (Linux) delivers whatever it holds.
func TestHopLimitZeroDelivered(t *testing.T) {
	l := newLayer()
	pkt := tcpPkt()
	pkt[7] = 0
	if v, _ := l.Input(t0, pkt); v != Deliver {
		t.Fatalf("%v", v)
	}
}

func TestAddresses(t *testing.T) {
	l := newLayer()
	for _, bad := range []string{"198.18.0.2", "::ffff:198.18.0.2", "::", "::1", "ff02::1"} {
		if err := l.AddAddr(netip.MustParseAddr(bad)); err == nil {
			t.Errorf("AddAddr(%s) accepted", bad)
		}
	}
	if err := l.AddAddr(netip.AddrFrom16(ourAddr2)); err != nil {
		t.Fatal(err)
	}
	if err := l.AddAddr(netip.MustParseAddr("fe80::2%tun0")); err != nil {
		t.Fatal(err)
	}
	if got := l.Addrs(); len(got) != 3 || got[0] != netip.AddrFrom16(ourAddr) || !l.IsMine(linkLocal) {
		t.Fatalf("Addrs = %v", got)
	}
	// Packets to the second address are ours too.
	v, p := l.Input(t0, build(peerAddr, ourAddr2, nil, header.ProtoTCP, tcpSeg(1)))
	if v != Deliver || p.Dst != ourAddr2 {
		t.Fatalf("%v to %v", v, p.DstAddr())
	}
	// SourceFor: the longest common prefix (RFC 6724 rule 8), link-local
	// to link-local.
	for dst, want := range map[[16]byte][16]byte{
		peerAddr: ourAddr, netip.MustParseAddr("2001:2:0:1::9").As16(): ourAddr2,
		peerLL: linkLocal, netip.MustParseAddr("2001:db8::1").As16(): ourAddr,
	} {
		if got, ok := l.SourceFor(dst); !ok || got != want {
			t.Errorf("SourceFor(%v) = %v", netip.AddrFrom16(dst), netip.AddrFrom16(got))
		}
	}
	if !l.RemoveAddr(netip.AddrFrom16(ourAddr2)) || l.RemoveAddr(netip.AddrFrom16(ourAddr2)) || l.IsMine(ourAddr2) {
		t.Fatal("RemoveAddr")
	}
	if v, _ := l.Input(t0, build(peerAddr, ourAddr2, nil, header.ProtoTCP, tcpSeg(1))); v != Drop || l.Stats.Drops(NotForUs) != 1 {
		t.Fatalf("%v after RemoveAddr", v)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("New(IPv4) did not panic")
		}
	}()
	New(netip.MustParseAddr("198.18.0.2"))
}

func TestPutHeader(t *testing.T) {
	l := newLayer()
	b := make([]byte, 40+20)
	flow := l.FlowLabel(ourAddr, peerAddr, header.ProtoTCP, 80, 40000)
	l.PutHeader(b, ourAddr, peerAddr, header.ProtoTCP, 20, flow)
	h, err := header.ParseIPv6(b)
	if err != nil || h.PayloadLen() != 20 || h.NextHeader() != header.ProtoTCP || h.HopLimit() != 64 ||
		h.SrcBytes() != ourAddr || h.DstBytes() != peerAddr || h.FlowLabel() != flow || flow == 0 || h.TrafficClass() != 0 {
		t.Fatalf("%v: %x", err, b[:40])
	}
	if l.FlowLabel(ourAddr, peerAddr, header.ProtoTCP, 80, 40000) != flow || l.FlowLabel(ourAddr, peerAddr, header.ProtoTCP, 80, 40001) == flow {
		t.Fatal("flow labels: not one per flow")
	}
	if l.Stats.Load(Sent) != 1 {
		t.Fatal("not counted")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	l.PutHeader(make([]byte, 40), ourAddr, peerAddr, header.ProtoTCP, 65536, 0)
}

func TestEveryCounterIsNamed(t *testing.T) {
	if err := counter.Validate(numEvents); err != nil {
		t.Error(err)
	}
	if err := counter.Validate(numReasons); err != nil {
		t.Error(err)
	}
	m := newLayer().Stats.Snapshot()
	if len(m) != int(numEvents)+int(numReasons)+3 {
		t.Errorf("Snapshot has %d entries", len(m))
	}
	for _, name := range []string{"received", "drop_frag_overlap", "dropped", "reasm_bytes", "reasm_queues", "atomic_fragments"} {
		if _, ok := m[name]; !ok {
			t.Errorf("Snapshot lacks %q", name)
		}
	}
}

func TestInputDoesNotAllocate(t *testing.T) {
	l := newLayer()
	pkt := fromPeer([]ext{hbh(opt(5, 2)), dest()}, header.ProtoTCP, tcpSeg(1))
	if a := testing.AllocsPerRun(1000, func() {
		if v, _ := l.Input(t0, pkt); v != Deliver {
			t.Fatal("not delivered")
		}
	}); a != 0 {
		t.Fatalf("Input of TCP allocates %v times", a)
	}
	echo := echoReq(ourAddr, nil, echoData)
	work := make([]byte, len(echo))
	if a := testing.AllocsPerRun(1000, func() {
		copy(work, echo)
		if v, _ := l.Input(t0, work); v != Reply {
			t.Fatal("no reply")
		}
	}); a != 0 {
		t.Fatalf("Input of an echo request allocates %v times", a)
	}
}

// TestTruncationsNeverPanic feeds every prefix of valid packets, with
// the payload length kept and fixed.
func TestTruncationsNeverPanic(t *testing.T) {
	l := newLayer()
	pkts := [][]byte{
		fromPeer([]ext{hbh(opt(5, 2)), dest(opt(0x1e, 9)), rh(0, 0), fh(0, false, 1)}, header.ProtoTCP, tcpSeg(1)),
		echoReq(ourAddr, []ext{dest()}, echoData),
		fromPeer([]ext{fh(0, true, 1)}, header.ProtoUDP, udpDgram(make([]byte, 16))),
	}
	for _, pkt := range pkts {
		for n := 0; n <= len(pkt); n++ {
			for _, fix := range []bool{false, true} {
				b := bytes.Clone(pkt[:n])
				if fix && n >= 40 {
					header.IPv6(b).SetPayloadLen(n - 40)
				}
				v, p := l.Input(t0, b)
				checkInvariants(t, l, b, v, p)
			}
		}
	}
}

func BenchmarkInputTCP(b *testing.B) {
	l := newLayer()
	pkt := tcpPkt()
	b.ReportAllocs()
	for b.Loop() {
		l.Input(t0, pkt)
	}
}

// TestConcurrentInput: Input, PutICMPError and the address changes may
// run at once (run with -race).
func TestConcurrentInput(t *testing.T) {
	l := newLayer()
	done := make(chan bool)
	for g := range 4 {
		go func() {
			defer func() { done <- true }()
			frags := fragmentsOf(bigEcho(3000), 1000, uint32(g))
			b := make([]byte, 1280)
			for i := range 200 {
				l.Input(t0, bytes.Clone(frags[i%len(frags)]))
				l.Input(t0, echoReq(ourAddr, nil, echoData))
				l.PutICMPError(t0, b, tcpPkt(), 1, 4, 0)
			}
		}()
	}
	for i := range 200 {
		a := netip.AddrFrom16(ourAddr2)
		if i%2 == 0 {
			l.AddAddr(a)
		} else {
			l.RemoveAddr(a)
		}
		l.IsMine(ourAddr2)
	}
	for range 4 {
		<-done
	}
	if l.Stats.Load(Received) != accounted(l) || l.Stats.Load(ICMPEchoReplied) != 800+200 { // 800 requests, 200 reassembled
		t.Fatal(l.Stats.Snapshot())
	}
}

// TestFlowLabelsSpread: the flows of one pair of addresses get labels
// spread over the 20 bits (RFC 6437 §3: "uniformly distributed"): 4096
// flows, about 8 collisions expected.
func TestFlowLabelsSpread(t *testing.T) {
	l := newLayer()
	seen := map[uint32]bool{}
	var bits uint32
	for port := range uint16(4096) {
		v := l.FlowLabel(ourAddr, peerAddr, header.ProtoTCP, 80, 32768+port)
		if v == 0 || v > 0xfffff {
			t.Fatalf("label %#x", v)
		}
		seen[v] = true
		bits |= v
	}
	if len(seen) < 4096-40 || bits != 0xfffff {
		t.Fatalf("%d distinct labels of 4096, bits used %#x", len(seen), bits)
	}
}
