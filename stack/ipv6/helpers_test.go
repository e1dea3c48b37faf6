package ipv6

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"ustack/stack/header"
)

var (
	ourAddr   = netip.MustParseAddr("2001:2::2").As16()
	ourAddr2  = netip.MustParseAddr("2001:2:0:1::2").As16()
	peerAddr  = netip.MustParseAddr("2001:2::1").As16()
	otherAddr = netip.MustParseAddr("2001:2::3").As16()
	linkLocal = netip.MustParseAddr("fe80::2").As16()
	peerLL    = netip.MustParseAddr("fe80::1").As16()
	// solicitedOurs is the solicited-node group of ourAddr (RFC 4291 §2.7.1).
	solicitedOurs = netip.MustParseAddr("ff02::1:ff00:2").As16()
)

var t0 = time.Unix(1_000_000_000, 0)

func newLayer() *Layer { return New(netip.AddrFrom16(ourAddr)) }

// ext is one extension header for build: its bytes, whose first byte
// build sets to the type of what follows.
type ext struct {
	nh uint8
	b  []byte
}

// build is a datagram from src to dst with the extension headers exts,
// then proto and payload. An ICMPv6 payload gets its checksum.
func build(src, dst [16]byte, exts []ext, proto uint8, payload []byte) []byte {
	first := proto
	if len(exts) > 0 {
		first = exts[0].nh
	}
	var body []byte
	for i, e := range exts {
		b := bytes.Clone(e.b)
		b[0] = proto
		if i+1 < len(exts) {
			b[0] = exts[i+1].nh
		}
		body = append(body, b...)
	}
	off := header.IPv6HeaderLen + len(body)
	body = append(body, payload...)
	pkt := make([]byte, header.IPv6HeaderLen+len(body))
	header.PutIPv6(pkt, header.IPv6Fields{PayloadLen: uint16(len(body)), NextHeader: first, HopLimit: 64, Src: src, Dst: dst})
	copy(pkt[header.IPv6HeaderLen:], body)
	if proto == header.ProtoICMPv6 && len(payload) >= header.ICMPv6MinLen {
		header.ICMPv6(pkt[off:]).UpdateChecksum(src, dst)
	}
	return pkt
}

// fromPeer is build from peer to us.
func fromPeer(exts []ext, proto uint8, payload []byte) []byte {
	return build(peerAddr, ourAddr, exts, proto, payload)
}

// opts is an options header (hop-by-hop or destination options) holding
// the given options, padded to a multiple of 8 with PadN or Pad1.
func opts(options ...[]byte) []byte {
	b := []byte{0, 0}
	for _, o := range options {
		b = append(b, o...)
	}
	switch pad := (8 - len(b)%8) % 8; pad {
	case 0:
	case 1:
		b = append(b, 0)
	default:
		b = append(b, 1, byte(pad-2))
		b = append(b, make([]byte, pad-2)...)
	}
	b[1] = byte(len(b)/8 - 1)
	return b
}

func hbh(options ...[]byte) ext  { return ext{header.ProtoHopByHop, opts(options...)} }
func dest(options ...[]byte) ext { return ext{header.ProtoDestOpts, opts(options...)} }

// rh is a routing header of the given type and segments left, with one
// address.
func rh(typ, segsLeft uint8) ext {
	b := make([]byte, 24)
	b[1], b[2], b[3] = 2, typ, segsLeft
	copy(b[8:], otherAddr[:])
	return ext{header.ProtoRouting, b}
}

// fh is a fragment header.
func fh(off int, more bool, id uint32) ext {
	b := make([]byte, 8)
	header.PutIPv6Frag(b, 0, off, more, id)
	return ext{header.ProtoFragment, b}
}

// tcpSeg is a TCP header from 40000 to 80 with sequence seq.
func tcpSeg(seq uint32) []byte {
	seg := make([]byte, 20)
	header.PutTCP(seg, header.TCPFields{SrcPort: 40000, DstPort: 80, Seq: seq, Flags: header.FlagSYN, Window: 100})
	return seg
}

// udpDgram is a UDP header from 5353 to 53 and data.
func udpDgram(data []byte) []byte {
	b := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(b[0:], 5353)
	binary.BigEndian.PutUint16(b[2:], 53)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], data)
	return b
}

// icmpMsg is an ICMPv6 message (checksum left to build).
func icmpMsg(typ, code uint8, param uint32, data []byte) []byte {
	m := make([]byte, 8+len(data))
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint32(m[4:], param)
	copy(m[8:], data)
	return m
}

// echoData is the data of the echo requests of the tests.
var echoData = []byte("ping6 payload 0123456789")

// echoReq is an echo request from peer to dst, ident 0x4242, seq 7.
func echoReq(dst [16]byte, exts []ext, data []byte) []byte {
	return build(peerAddr, dst, exts, header.ProtoICMPv6, icmpMsg(header.ICMPv6EchoRequest, 0, 0x42420007, data))
}

// fragmentsOf cuts datagram dg (a 40-byte header, no extension header)
// into fragments of at most size data bytes (a multiple of 8), as a
// sender would.
func fragmentsOf(dg []byte, size int, id uint32) [][]byte {
	data := dg[header.IPv6HeaderLen:]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := make([]byte, header.IPv6HeaderLen+8+end-off)
		copy(f, dg[:header.IPv6HeaderLen])
		header.IPv6(f).SetPayloadLen(len(f) - header.IPv6HeaderLen)
		f[6] = header.ProtoFragment
		header.PutIPv6Frag(f[header.IPv6HeaderLen:], dg[6], off, end < len(data), id)
		copy(f[header.IPv6HeaderLen+8:], data[off:end])
		out = append(out, f)
	}
	return out
}

// bigEcho is an echo request from peer to us with n bytes of patterned
// data.
func bigEcho(n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return echoReq(ourAddr, nil, data)
}

// feed gives each packet to l, checking the invariants, and returns the
// last verdict and packet.
func feed(t *testing.T, l *Layer, now time.Time, pkts [][]byte) (Verdict, Packet) {
	t.Helper()
	var v Verdict
	var p Packet
	for _, b := range pkts {
		c := bytes.Clone(b)
		v, p = l.Input(now, c)
		checkInvariants(t, l, c, v, p)
	}
	return v, p
}

// accounted is what Received must equal once Input returned.
func accounted(l *Layer) uint64 {
	s := &l.Stats
	return s.Load(Delivered) + s.Load(ICMPEchoReplied) + s.Load(ICMPErrorsDelivered) + s.Load(ICMPErrorsTaken) +
		s.Load(FragHeld) + s.Dropped()
}

// checkInvariants holds for any input.
func checkInvariants(t testing.TB, l *Layer, pkt []byte, v Verdict, p Packet) {
	t.Helper()
	switch v {
	case Drop, Held:
		if p.IP != nil {
			t.Fatalf("%v with a %d-byte datagram", v, len(p.IP))
		}
	case Deliver:
		if p.Proto != header.ProtoTCP && p.Proto != header.ProtoUDP || !l.IsMine(p.Dst) || p.Multicast {
			t.Fatalf("delivered proto %d to %v", p.Proto, p.DstAddr())
		}
		checkDatagram(t, p)
	case Reply:
		checkDatagram(t, p)
		m, err := header.ParseICMPv6(p.Payload(), p.Src, p.Dst)
		if err != nil || m.Type() != header.ICMPv6EchoReply || !l.IsMine(p.Src) || p.Off != 40 || p.IP.HopLimit() != 64 {
			t.Fatalf("reply: %v, from %v", err, p.SrcAddr())
		}
	case DeliverICMPError:
		checkDatagram(t, p)
		if p.ICMP.Proto != header.ProtoTCP && p.ICMP.Proto != header.ProtoUDP || !l.IsMine(p.ICMP.Src) {
			t.Fatalf("ICMP error about %d from %v", p.ICMP.Proto, netip.AddrFrom16(p.ICMP.Src))
		}
	case SendError:
		if p.ErrType != header.ICMPv6ParamProblem || len(p.IP) < 40 || int(p.ErrParam) >= len(p.IP) {
			t.Fatalf("send error %d/%d pointer %d in %d bytes", p.ErrType, p.ErrCode, p.ErrParam, len(p.IP))
		}
	default:
		t.Fatalf("verdict %v", v)
	}
	if l.Stats.ReassemblyBytes() > ReassemblyMemCap || l.Stats.ReassemblyQueues() > ReassemblyMaxQueues {
		t.Fatalf("reassembly over its caps: %v", l.Stats.Snapshot())
	}
	if got, want := l.Stats.Load(Received), accounted(l); got != want {
		t.Fatalf("received %d, accounted %d: %v", got, want, l.Stats.Snapshot())
	}
}

// checkDatagram: p.IP parses whole, and p's fields agree with it.
func checkDatagram(t testing.TB, p Packet) {
	t.Helper()
	h, err := header.ParseIPv6(p.IP)
	if err != nil || len(h) != len(p.IP) || p.Off < 40 || p.Off > len(p.IP) {
		t.Fatalf("datagram: %v, %d bytes, offset %d", err, len(p.IP), p.Off)
	}
	if h.SrcBytes() != p.Src || h.DstBytes() != p.Dst {
		t.Fatalf("addresses %v -> %v, datagram %v -> %v", p.SrcAddr(), p.DstAddr(), h.Src(), h.Dst())
	}
	if proto, at, ok := skipChain(p.IP, h.NextHeader(), 40); !ok || proto != p.Proto || at != p.Off {
		t.Fatalf("chain ends at %d (%d, %v), packet says %d at %d", at, proto, ok, p.Proto, p.Off)
	}
}
