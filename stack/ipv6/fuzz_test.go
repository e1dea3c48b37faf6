package ipv6

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"ustack/stack/header"
)

// framed joins packets with 2-byte length prefixes, the input format of
// FuzzIPv6Input.
func framed(pkts ...[]byte) []byte {
	var b []byte
	for _, p := range pkts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b
}

// seedPackets are valid and nearly valid packets of every kind.
func seedPackets() [][]byte {
	frags := fragmentsOf(bigEcho(3000), 1000, 7)
	return [][]byte{
		tcpPkt(),
		echoReq(ourAddr, nil, echoData),
		echoReq(allNodes, []ext{hbh(opt(5, 2))}, echoData),
		fromPeer([]ext{hbh(opt(5, 2)), dest(opt(0x1e, 3)), rh(0, 0), fh(0, false, 1)}, header.ProtoUDP, udpDgram(nil)),
		fromPeer([]ext{dest(opt(0xc2, 4))}, header.ProtoTCP, tcpSeg(1)),
		fromPeer([]ext{rh(0, 1)}, header.ProtoTCP, tcpSeg(1)),
		fromPeer(nil, 132, nil),
		icmpErrorPkt(2, 0, 1300, ourPacket(header.ProtoTCP, tcpSeg(5))),
		icmpErrorPkt(2, 0, 1300, ourPacket(header.ProtoICMPv6, icmpMsg(header.ICMPv6EchoReply, 0, 1, nil))),
		frags[0], frags[1], frags[2], frags[3],
	}
}

// FuzzIPv6Input: Input on arbitrary packets (a sequence of them, so that
// reassembly state builds up) never panics, keeps its invariants and
// accounts for every packet; reassembly memory stays under its cap and
// all comes back once the queues time out; a dropped or delivered packet
// is not modified.
func FuzzIPv6Input(f *testing.F) {
	seeds := seedPackets()
	for _, s := range seeds {
		f.Add(framed(s))
	}
	f.Add(framed(seeds[9:]...))
	f.Add(framed(seeds[12], seeds[10], seeds[9], seeds[11]))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := newLayer()
		now := t0
		for len(data) >= 2 {
			n := min(int(binary.BigEndian.Uint16(data)), len(data)-2)
			pkt := data[2 : 2+n]
			data = data[2+n:]
			b := bytes.Clone(pkt)
			v, p := l.Input(now, b)
			checkInvariants(t, l, b, v, p)
			if (v == Drop || v == Deliver || v == Held || v == SendError) && !bytes.Equal(b, pkt) {
				t.Fatalf("%v: packet modified", v)
			}
			if v == SendError {
				out := make([]byte, 1280)
				if n := l.PutICMPError(now, out, p.IP, p.ErrType, p.ErrCode, p.ErrParam); n > 0 {
					if h, err := header.ParseIPv6(out[:n]); err != nil || len(h) != n {
						t.Fatalf("error sent does not parse: %v", err)
					}
				}
			}
			now = now.Add(time.Second)
		}
		l.ExpireFragments(now.Add(ReassemblyTimeout))
		if l.Stats.ReassemblyBytes() != 0 || l.Stats.ReassemblyQueues() != 0 {
			t.Fatal(l.Stats.Snapshot())
		}
	})
}

// FuzzICMPv6: ParseICMPError on arbitrary messages never panics and
// returns only errors about our TCP, UDP or echo replies; PutICMPError
// on arbitrary packets never panics and sends only well-formed errors
// within 1280 bytes, from one of our addresses, quoting the packet.
func FuzzICMPv6(f *testing.F) {
	f.Add(icmpMsg(2, 0, 1280, ourPacket(header.ProtoTCP, tcpSeg(9))), uint8(1), uint8(4), uint32(0))
	f.Add(icmpMsg(1, 4, 0, ourPacket(header.ProtoUDP, udpDgram(nil))), uint8(4), uint8(2), uint32(42))
	f.Add(icmpMsg(4, 1, 6, build(ourAddr, peerAddr, []ext{dest(), fh(0, true, 1)}, header.ProtoTCP, tcpSeg(1))), uint8(3), uint8(1), uint32(0))
	f.Add(icmpMsg(128, 0, 0, nil), uint8(2), uint8(0), uint32(1280))
	f.Fuzz(func(t *testing.T, msg []byte, typ, code uint8, param uint32) {
		l := newLayer()
		if e, why := l.ParseICMPError(msg); why == 0 && (!l.IsMine(e.Src) || e.Proto != header.ProtoTCP && e.Proto != header.ProtoUDP && e.Proto != header.ProtoICMPv6) {
			t.Fatalf("%+v", e)
		}
		pkt := build(otherAddr, ourAddr, nil, header.ProtoICMPv6, msg)
		v, p := l.Input(t0, bytes.Clone(pkt))
		checkInvariants(t, l, pkt, v, p)
		// The message as a packet received, answered with an error.
		out := make([]byte, 1500)
		n := l.PutICMPError(t0, out, msg, typ, code, param)
		if n == 0 {
			return
		}
		h, err := header.ParseIPv6(out[:n])
		if err != nil || len(h) != n || n > 1280 || !l.IsMine(h.SrcBytes()) || !unicastSource(h.DstBytes()) {
			t.Fatalf("error sent: %v, %d bytes from %v", err, n, h.Src())
		}
		m, err := header.ParseICMPv6(h[40:], h.SrcBytes(), h.DstBytes())
		if err != nil || m.Type() != typ || !bytes.Equal(m[8:], msg[:n-48]) {
			t.Fatalf("error message: %v", err)
		}
	})
}

// FuzzExtHeaders: a fixed header followed by an arbitrary chain: walk
// never panics; a chain it accepts ends where skipChain says; a pointer
// it sends is within the packet; Input agrees with walk.
func FuzzExtHeaders(f *testing.F) {
	chain := func(exts []ext, proto uint8, payload []byte) ([]byte, uint8) {
		b := fromPeer(exts, proto, payload)
		return b[40:], b[6]
	}
	for _, c := range []struct {
		exts    []ext
		proto   uint8
		payload []byte
	}{
		{[]ext{hbh(opt(5, 2)), dest(opt(0x1e, 3)), rh(0, 0), fh(0, false, 1)}, header.ProtoUDP, udpDgram(nil)},
		{[]ext{dest(opt(0x82, 2))}, header.ProtoTCP, tcpSeg(1)},
		{[]ext{dest([]byte{0, 0, 0, 0, 0, 0, 0, 0})}, header.ProtoTCP, tcpSeg(1)},
		{[]ext{fh(0, true, 1), dest()}, header.ProtoTCP, tcpSeg(1)},
		{repeat(dest(), 9), header.ProtoTCP, nil},
	} {
		b, nh := chain(c.exts, c.proto, c.payload)
		f.Add(nh, b, false)
		f.Add(nh, b, true)
	}
	f.Fuzz(func(t *testing.T, nh uint8, rest []byte, mcast bool) {
		if len(rest) > 0xffff {
			return
		}
		dst := ourAddr
		if mcast {
			dst = allNodes
		}
		pkt := make([]byte, 40+len(rest))
		header.PutIPv6(pkt, header.IPv6Fields{PayloadLen: uint16(len(rest)), NextHeader: nh, HopLimit: 64, Src: peerAddr, Dst: dst})
		copy(pkt[40:], rest)
		l := newLayer()
		w := l.walk(pkt, mcast, false)
		switch {
		case w.icmp && int(w.ptr) >= len(pkt):
			t.Fatalf("pointer %d beyond %d bytes", w.ptr, len(pkt))
		case w.why == 0 && w.proto != header.ProtoFragment:
			proto, at, ok := skipChain(pkt, nh, 40)
			if !ok || proto != w.proto || at != w.off || at > len(pkt) || pkt[w.nhOff] != w.proto {
				t.Fatalf("walk: %d at %d; skipChain: %d at %d (%v)", w.proto, w.off, proto, at, ok)
			}
		case w.why == 0:
			if w.off+8 > len(pkt) || pkt[w.nhOff] != header.ProtoFragment {
				t.Fatalf("fragment header at %d of %d", w.off, len(pkt))
			}
		}
		v, p := l.Input(t0, bytes.Clone(pkt))
		checkInvariants(t, l, pkt, v, p)
		if w.why != 0 && l.Stats.Drops(w.why) != 1 {
			t.Fatalf("walk says %v, Input counted %v", w.why, l.Stats.Snapshot())
		}
	})
}
