package ipv4

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"ustack/stack/counter"
	"ustack/stack/header"
)

var (
	ourAddr  = [4]byte{198, 18, 0, 2}
	peerAddr = [4]byte{198, 18, 0, 1}
)

var t0 = time.Unix(1_000_000_000, 0)

func newLayer() *Layer { return New(netip.AddrFrom4(ourAddr)) }

// ipPacket builds a valid datagram from peer to us with the given protocol
// and payload.
func ipPacket(proto uint8, payload []byte) []byte {
	b := make([]byte, header.IPv4MinHeaderLen+len(payload))
	header.PutIPv4(b, header.IPv4Fields{
		TotalLen: uint16(len(b)),
		ID:       0x1234,
		Flags:    header.IPv4FlagDF,
		TTL:      64,
		Protocol: proto,
		Src:      peerAddr,
		Dst:      ourAddr,
	})
	copy(b[header.IPv4MinHeaderLen:], payload)
	return b
}

// tcpPacket is a SYN from peer:40000 to us:80 with a valid TCP checksum.
func tcpPacket() []byte {
	seg := make([]byte, header.TCPMinHeaderLen+4)
	o := header.TCPOptions{MSS: 1460}
	n := header.PutTCPOptions(seg[header.TCPMinHeaderLen:], &o)
	header.PutTCP(seg, header.TCPFields{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: header.FlagSYN, Window: 65535, OptLen: n})
	header.SetTCPChecksum(seg, peerAddr, ourAddr)
	return ipPacket(header.ProtoTCP, seg)
}

// icmpPacket is an ICMP message of the given type with ident 0x4242, seq 7
// and data.
func icmpPacket(typ uint8, data []byte) []byte {
	m := make(header.ICMPv4, header.ICMPv4MinLen+len(data))
	m.SetType(typ)
	binary.BigEndian.PutUint16(m[4:], 0x4242)
	binary.BigEndian.PutUint16(m[6:], 7)
	copy(m[8:], data)
	m.UpdateChecksum()
	return ipPacket(header.ProtoICMP, m)
}

func echoPacket() []byte { return icmpPacket(header.ICMPEcho, []byte("ping payload 0123456789")) }

// fixIPChecksum recomputes the header checksum after a test edits the header.
func fixIPChecksum(b []byte) []byte {
	hl := int(b[0]&0xf) * 4
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], ^header.Checksum(b[:hl], 0))
	return b
}

func TestNewRejectsIPv6(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New(IPv6 address) did not panic")
		}
	}()
	New(netip.MustParseAddr("2001:db8::1"))
}

func TestNewAcceptsMappedIPv4(t *testing.T) {
	l := New(netip.MustParseAddr("::ffff:198.18.0.2"))
	if !l.IsLocal(ourAddr) || len(l.Addrs()) != 1 {
		t.Fatalf("Addrs = %v, want %v", l.Addrs(), ourAddr)
	}
}

// dropCases are one bad packet per drop reason.
var dropCases = []struct {
	name    string
	counter string
	pkt     func() []byte
}{
	{name: "empty", counter: "drop_too_short", pkt: func() []byte { return nil }},
	{name: "19 bytes", counter: "drop_too_short", pkt: func() []byte { return tcpPacket()[:19] }},
	{name: "version 6", counter: "drop_bad_version", pkt: func() []byte {
		b := tcpPacket()
		b[0] = 0x65
		return fixIPChecksum(b)
	}},
	{name: "IHL 4", counter: "drop_bad_ihl", pkt: func() []byte {
		b := tcpPacket()
		b[0] = 0x44
		return b
	}},
	{name: "IHL beyond packet", counter: "drop_bad_ihl", pkt: func() []byte {
		b := tcpPacket()[:24]
		b[0] = 0x47
		return b
	}},
	{name: "total length beyond packet", counter: "drop_bad_total_length", pkt: func() []byte {
		b := tcpPacket()
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)+1))
		return fixIPChecksum(b)
	}},
	{name: "total length below IHL", counter: "drop_bad_total_length", pkt: func() []byte {
		b := tcpPacket()
		binary.BigEndian.PutUint16(b[2:], 19)
		return fixIPChecksum(b)
	}},
	{name: "header checksum", counter: "drop_bad_checksum", pkt: func() []byte {
		b := tcpPacket()
		b[10] ^= 0x01
		return b
	}},
	{name: "TTL zero", counter: "drop_ttl_zero", pkt: func() []byte {
		b := tcpPacket()
		b[8] = 0
		return fixIPChecksum(b)
	}},
	{name: "empty fragment", counter: "drop_frag_bad", pkt: func() []byte {
		b := ipPacket(header.ProtoTCP, nil)
		binary.BigEndian.PutUint16(b[6:], header.IPv4FlagMF)
		return fixIPChecksum(b)
	}},
	{name: "fragment beyond 65535", counter: "drop_frag_oversize", pkt: func() []byte {
		b := ipPacket(header.ProtoTCP, make([]byte, 16))
		binary.BigEndian.PutUint16(b[6:], 8190) // offset 65520
		return fixIPChecksum(b)
	}},
	{name: "other destination", counter: "drop_not_for_us", pkt: func() []byte {
		b := tcpPacket()
		b[19] = 3
		return fixIPChecksum(b)
	}},
	{name: "broadcast destination", counter: "drop_not_unicast", pkt: func() []byte {
		b := tcpPacket()
		copy(b[16:20], []byte{255, 255, 255, 255})
		return fixIPChecksum(b)
	}},
	{name: "source 0.0.0.0", counter: "drop_bad_source", pkt: func() []byte {
		b := echoPacket()
		copy(b[12:16], []byte{0, 0, 0, 0})
		return fixIPChecksum(b)
	}},
	{name: "source broadcast", counter: "drop_bad_source", pkt: func() []byte {
		b := echoPacket()
		copy(b[12:16], []byte{255, 255, 255, 255})
		return fixIPChecksum(b)
	}},
	{name: "source multicast", counter: "drop_bad_source", pkt: func() []byte {
		b := echoPacket()
		copy(b[12:16], []byte{224, 0, 0, 1})
		return fixIPChecksum(b)
	}},
	{name: "source loopback", counter: "drop_bad_source", pkt: func() []byte {
		b := echoPacket()
		copy(b[12:16], []byte{127, 0, 0, 1})
		return fixIPChecksum(b)
	}},
	{name: "ICMP error quoting garbage", counter: "drop_icmp_error_bad_quote", pkt: func() []byte { return icmpPacket(header.ICMPDestUnreach, make([]byte, 28)) }},
	{name: "ICMP error about ICMP", counter: "drop_icmp_error_other_proto", pkt: func() []byte {
		return icmpPacket(header.ICMPDestUnreach, quoteOf(ourPacket(header.ProtoICMP, make([]byte, 8))))
	}},
	{name: "multicast", counter: "drop_not_unicast", pkt: func() []byte {
		b := echoPacket()
		copy(b[16:20], []byte{224, 0, 0, 251})
		return fixIPChecksum(b)
	}},
	{name: "ICMP source quench", counter: "drop_icmp_other", pkt: func() []byte {
		return icmpPacket(header.ICMPSourceQuench, quoteOf(ourPacket(header.ProtoTCP, make([]byte, 20))))
	}},
	{name: "ICMP too short", counter: "drop_icmp_bad", pkt: func() []byte { return ipPacket(header.ProtoICMP, make([]byte, 7)) }},
	{name: "ICMP checksum", counter: "drop_icmp_bad", pkt: func() []byte {
		b := echoPacket()
		b[len(b)-1] ^= 0x80
		return b
	}},
	{name: "ICMP echo reply", counter: "drop_icmp_other", pkt: func() []byte { return icmpPacket(header.ICMPEchoReply, nil) }},
}

// TestInputDropReasons feeds one bad packet per reason and checks that
// exactly that counter (and Received) moved.
func TestInputDropReasons(t *testing.T) {
	tests := dropCases
	covered := map[string]bool{
		// Each needs a queue first: TestReassembly* cover them.
		"drop_frag_overlap": true, "drop_frag_duplicate": true, "drop_frag_no_memory": true,
		// Not a plain drop: TestUnknownProtocol.
		"drop_unknown_protocol": true,
	}
	for _, tt := range tests {
		covered[tt.counter] = true
		t.Run(tt.name, func(t *testing.T) {
			l := newLayer()
			pkt := tt.pkt()
			orig := bytes.Clone(pkt)
			v, h := l.Input(t0, pkt)
			if v != Drop || h != nil {
				t.Fatalf("Input = %v, %d bytes; want drop, nil", v, len(h))
			}
			if !bytes.Equal(pkt, orig) {
				t.Errorf("Input modified a dropped packet")
			}
			for name, got := range l.Stats.Snapshot() {
				want := uint64(0)
				switch name {
				case "received", tt.counter, "dropped":
					want = 1
				}
				if got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
		})
	}
	for r := Reason(0); r < numReasons; r++ {
		if !covered["drop_"+r.String()] {
			t.Errorf("no packet in this test is dropped for %v", r)
		}
	}
}

// TestEveryCounterIsNamed: no event or drop reason lacks a name, so none
// is counted unnamed.
func TestEveryCounterIsNamed(t *testing.T) {
	if err := counter.Validate(numEvents); err != nil {
		t.Error(err)
	}
	if err := counter.Validate(numReasons); err != nil {
		t.Error(err)
	}
	if got := Reason(numReasons).String(); got != fmt.Sprintf("reason(%d)", numReasons) {
		t.Errorf("String of an unknown reason = %q", got)
	}
}

func TestSnapshotHasEveryCounter(t *testing.T) {
	m := newLayer().Stats.Snapshot()
	names := []string{"received", "delivered", "sent", "icmp_echo_replied", "dropped",
		"frag_held", "reassembled", "reasm_timeouts", "fragmented", "fragments_sent",
		"icmp_errors_delivered", "icmp_errors_sent", "icmp_rate_limited", "reasm_bytes", "reasm_queues",
		"drop_too_short", "drop_bad_version", "drop_bad_ihl", "drop_bad_total_length", "drop_bad_checksum",
		"drop_ttl_zero", "drop_not_for_us", "drop_bad_source", "drop_unknown_protocol",
		"drop_icmp_bad", "drop_icmp_other", "drop_icmp_error_bad_quote", "drop_icmp_error_other_proto",
		"drop_frag_overlap", "drop_frag_duplicate", "drop_frag_bad", "drop_frag_oversize", "drop_frag_no_memory",
		"drop_not_unicast"}
	for _, name := range names {
		if _, ok := m[name]; !ok {
			t.Errorf("Snapshot lacks %q", name)
		}
	}
	if len(m) != len(names) {
		t.Errorf("Snapshot has %d entries, want %d: %v", len(m), len(names), m)
	}
}

func TestInputDeliversTCP(t *testing.T) {
	l := newLayer()
	pkt := tcpPacket()
	want := bytes.Clone(pkt)
	// Trailing bytes beyond the total length (Ethernet padding, say) are
	// not part of the datagram.
	pkt = append(pkt, 0xde, 0xad)
	v, h := l.Input(t0, pkt)
	if v != DeliverTCP {
		t.Fatalf("verdict %v, want deliver-tcp", v)
	}
	if !bytes.Equal(h, want) {
		t.Fatalf("view = %x\nwant   %x", []byte(h), want)
	}
	seg, err := header.ParseTCP(h.Payload())
	if err != nil || seg.DstPort() != 80 || !header.TCPChecksumOK(seg, h.SrcBytes(), h.DstBytes()) {
		t.Fatalf("delivered segment: err %v, port %d", err, seg.DstPort())
	}
	if l.Stats.Load(Delivered) != 1 || l.Stats.Load(Received) != 1 || l.Stats.Dropped() != 0 {
		t.Fatalf("stats %v", l.Stats.Snapshot())
	}
}

// TestInputDeliversTCPWithOptions: RFC 1122 §3.2.1.8, IP options are passed
// up and the view still covers them.
func TestInputDeliversTCPWithOptions(t *testing.T) {
	l := newLayer()
	p := tcpPacket()
	pkt := make([]byte, len(p)+4)
	copy(pkt, p[:20])
	copy(pkt[20:24], []byte{1, 1, 1, 0}) // NOP NOP NOP EOL
	copy(pkt[24:], p[20:])
	pkt[0] = 0x46
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	fixIPChecksum(pkt)
	v, h := l.Input(t0, pkt)
	if v != DeliverTCP || h.HeaderLen() != 24 || !bytes.Equal(h.Payload(), p[20:]) {
		t.Fatalf("verdict %v, header len %d", v, h.HeaderLen())
	}
}

func checkEchoReply(t *testing.T, reply header.IPv4, reqData []byte) {
	t.Helper()
	h, err := header.ParseIPv4(reply)
	if err != nil {
		t.Fatalf("reply does not parse as IPv4: %v", err)
	}
	if len(h) != len(reply) {
		t.Fatalf("reply view %d bytes, total length %d", len(reply), len(h))
	}
	if h.Src() != netip.AddrFrom4(ourAddr) || h.Dst() != netip.AddrFrom4(peerAddr) {
		t.Errorf("reply %v -> %v, want %v -> %v", h.Src(), h.Dst(), netip.AddrFrom4(ourAddr), netip.AddrFrom4(peerAddr))
	}
	if h.TTL() != 64 || h.Protocol() != header.ProtoICMP || h.HeaderLen() != 20 || h.IsFragment() {
		t.Errorf("reply TTL %d proto %d IHL %d fragment %v", h.TTL(), h.Protocol(), h.HeaderLen(), h.IsFragment())
	}
	m, err := header.ParseICMPv4(h.Payload())
	if err != nil {
		t.Fatalf("reply ICMP: %v", err)
	}
	if m.Type() != header.ICMPEchoReply || m.Code() != 0 || m.Ident() != 0x4242 || m.Seq() != 7 {
		t.Errorf("reply type %d code %d ident %#x seq %d", m.Type(), m.Code(), m.Ident(), m.Seq())
	}
	if !bytes.Equal(m[8:], reqData) {
		t.Errorf("reply data %q, want %q", m[8:], reqData)
	}
}

// TestInputEchoReply: RFC 792 and RFC 1122 §3.2.2.6.
func TestInputEchoReply(t *testing.T) {
	l := newLayer()
	data := []byte("ping payload 0123456789")
	pkt := icmpPacket(header.ICMPEcho, data)
	n := len(pkt)
	pkt = append(pkt, 0xff, 0xff, 0xff) // trailing junk beyond total length
	v, reply := l.Input(t0, pkt)
	if v != Reply {
		t.Fatalf("verdict %v, want reply (stats %v)", v, l.Stats.Snapshot())
	}
	if len(reply) != n || &reply[0] != &pkt[0] {
		t.Fatalf("reply is %d bytes (in place: %v), want %d in place", len(reply), &reply[0] == &pkt[0], n)
	}
	checkEchoReply(t, reply, data)
	if l.Stats.Load(ICMPEchoReplied) != 1 || l.Stats.Load(Sent) != 1 || l.Stats.Dropped() != 0 || l.Stats.Load(Delivered) != 0 {
		t.Fatalf("stats %v", l.Stats.Snapshot())
	}
}

// TestInputEchoReplyOddLengthAndCode: odd-length data exercises the checksum
// padding; a nonzero code in the request is answered with code 0.
func TestInputEchoReplyOddLengthAndCode(t *testing.T) {
	l := newLayer()
	data := []byte("odd")
	pkt := icmpPacket(header.ICMPEcho, data)
	pkt[21] = 5
	header.ICMPv4(pkt[20:]).UpdateChecksum()
	v, reply := l.Input(t0, pkt)
	if v != Reply {
		t.Fatalf("verdict %v", v)
	}
	checkEchoReply(t, reply, data)
}

// TestInputEchoReplyStripsOptions: the request's IP options are not echoed
// (a documented divergence from RFC 1122 §3.2.2.6); the reply is 20-byte
// header + the same ICMP message.
func TestInputEchoReplyStripsOptions(t *testing.T) {
	l := newLayer()
	data := []byte("with options")
	p := icmpPacket(header.ICMPEcho, data)
	pkt := make([]byte, len(p)+8)
	copy(pkt, p[:20])
	copy(pkt[20:28], []byte{7, 7, 4, 0, 0, 0, 0, 0}) // record route, room for one
	copy(pkt[28:], p[20:])
	pkt[0] = 0x47
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	fixIPChecksum(pkt)
	v, reply := l.Input(t0, pkt)
	if v != Reply {
		t.Fatalf("verdict %v (stats %v)", v, l.Stats.Snapshot())
	}
	if len(reply) != len(p) {
		t.Fatalf("reply %d bytes, want %d", len(reply), len(p))
	}
	checkEchoReply(t, reply, data)
}

func TestPutHeader(t *testing.T) {
	l := newLayer()
	b := make([]byte, 20+100)
	for i := range 3 {
		l.PutHeader(b, ourAddr, peerAddr, header.ProtoTCP, 100)
		h, err := header.ParseIPv4(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.TotalLen() != 120 || h.TTL() != 64 || h.Protocol() != header.ProtoTCP ||
			h.SrcBytes() != ourAddr || h.DstBytes() != peerAddr || h.ID() != uint16(i) || h.IsFragment() ||
			binary.BigEndian.Uint16(h[6:]) != header.IPv4FlagDF {
			t.Fatalf("header %x", b[:20])
		}
	}
	if l.Stats.Load(Sent) != 3 {
		t.Fatalf("Sent = %d", l.Stats.Load(Sent))
	}
}

func TestPutHeaderPanicsOnOversizedPayload(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	newLayer().PutHeader(make([]byte, 20), ourAddr, peerAddr, header.ProtoTCP, 65516)
}

// TestInputTruncationsNeverPanic feeds every prefix of valid packets.
func TestInputTruncationsNeverPanic(t *testing.T) {
	l := newLayer()
	for _, p := range [][]byte{tcpPacket(), echoPacket(), icmpPacket(header.ICMPEchoReply, nil)} {
		for n := 0; n <= len(p); n++ {
			b := bytes.Clone(p[:n])
			v, h := l.Input(t0, b)
			checkInvariants(t, l, b, v, h)
		}
	}
	if got, want := l.Stats.Load(Received), accounted(l); got != want {
		t.Fatalf("received %d != delivered+replied+dropped %d", got, want)
	}
}

func TestInputDoesNotAllocate(t *testing.T) {
	l := newLayer()
	pkt := tcpPacket()
	allocs := testing.AllocsPerRun(1000, func() {
		if v, _ := l.Input(t0, pkt); v != DeliverTCP {
			t.Fatal("not delivered")
		}
	})
	if allocs != 0 {
		t.Fatalf("Input allocates %v times per packet", allocs)
	}
	echo := echoPacket()
	work := make([]byte, len(echo))
	allocs = testing.AllocsPerRun(1000, func() {
		e := work
		copy(e, echo)
		if v, _ := l.Input(t0, e); v != Reply {
			t.Fatal("no reply")
		}
	})
	if allocs != 0 {
		t.Fatalf("Input of an echo request allocates %v times", allocs)
	}
}

func BenchmarkInputTCP(b *testing.B) {
	l := newLayer()
	pkt := tcpPacket()
	b.ReportAllocs()
	for b.Loop() {
		l.Input(t0, pkt)
	}
}

// checkInvariants holds for any input: a reply is a valid echo reply from
// us, a delivery is TCP to us, a drop returns no view.
func checkInvariants(t *testing.T, l *Layer, pkt []byte, v Verdict, h header.IPv4) {
	t.Helper()
	switch v {
	case Drop:
		if h != nil {
			t.Fatalf("drop with a %d-byte view", len(h))
		}
	case DeliverTCP, DeliverUDP:
		ph, err := header.ParseIPv4(h)
		if err != nil || len(ph) != len(h) {
			t.Fatalf("delivered view does not parse: %v", err)
		}
		want := map[Verdict]uint8{DeliverTCP: header.ProtoTCP, DeliverUDP: header.ProtoUDP}[v]
		if h.Protocol() != want || !l.IsLocal(h.DstBytes()) || h.TTL() == 0 || h.IsFragment() {
			t.Fatalf("delivered proto %d dst %v ttl %d", h.Protocol(), h.Dst(), h.TTL())
		}
		if (len(h) > len(pkt) || &h[0] != &pkt[0]) && l.Stats.Load(Reassembled) == 0 {
			t.Fatalf("delivered view is not a prefix of the packet")
		}
	case Reply:
		ph, err := header.ParseIPv4(h)
		if err != nil || len(ph) != len(h) {
			t.Fatalf("reply does not parse: %v", err)
		}
		if h.Protocol() != header.ProtoICMP || !l.IsLocal(h.SrcBytes()) || h.TTL() != 64 || h.IsFragment() || h.HeaderLen() != 20 {
			t.Fatalf("reply proto %d src %v ttl %d", h.Protocol(), h.Src(), h.TTL())
		}
		m, err := header.ParseICMPv4(h.Payload())
		if err != nil || m.Type() != header.ICMPEchoReply || m.Code() != 0 {
			t.Fatalf("reply ICMP: %v", err)
		}
		if (len(h) > len(pkt) || &h[0] != &pkt[0]) && l.Stats.Load(Reassembled) == 0 {
			t.Fatalf("reply is not in place")
		}
	case Held:
		if h != nil {
			t.Fatalf("held with a %d-byte view", len(h))
		}
	case DeliverICMPError:
		if _, why := l.ParseICMPError(h); why != 0 {
			t.Fatalf("delivered ICMP error does not parse: %v", why)
		}
	case Unreachable:
		if h.Protocol() == header.ProtoTCP || h.Protocol() == header.ProtoICMP {
			t.Fatalf("unreachable protocol %d", h.Protocol())
		}
	default:
		t.Fatalf("verdict %v", v)
	}
}

// accounted is what Received must equal once Input returned.
func accounted(l *Layer) uint64 {
	s := &l.Stats
	return s.Load(Delivered) + s.Load(ICMPEchoReplied) + s.Load(ICMPErrorsDelivered) + s.Load(FragHeld) + s.Dropped()
}
