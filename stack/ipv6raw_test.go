package stack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack/header"
	"ustack/stack/ipv6"
	"ustack/stack/link"
)

// newRawPeer6 is newRawPeer for a stack at addrB6 (and addrB), the test
// speaking for addrA6.
func newRawPeer6(t *testing.T, opts Options) (*Stack, *rawPeer) {
	t.Helper()
	opts.Addrs = []netip.Addr{addrB6}
	return newRawPeer(t, opts)
}

// recv6 returns the next IPv6 packet the stack sent that match accepts.
func (p *rawPeer) recv6(t *testing.T, timeout time.Duration, match func(header.IPv6) bool) header.IPv6 {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case b, ok := <-p.in:
			if !ok {
				t.Fatal("link closed")
			}
			if h, err := header.ParseIPv6(b); err == nil && (match == nil || match(h)) {
				return h
			}
		case <-deadline:
			t.Fatalf("nothing within %v", timeout)
		}
	}
}

// datagram6 is an IPv6 datagram from src to dst: the extension headers
// chain (each with its Next Header byte set here), then proto and payload.
// An ICMPv6 payload gets its checksum.
func datagram6(src, dst netip.Addr, chain [][]byte, nhs []uint8, proto uint8, payload []byte) []byte {
	s, d := src.As16(), dst.As16()
	var body []byte
	first := proto
	if len(chain) > 0 {
		first = nhs[0]
	}
	for i, e := range chain {
		e = bytes.Clone(e)
		e[0] = proto
		if i+1 < len(chain) {
			e[0] = nhs[i+1]
		}
		body = append(body, e...)
	}
	off := 40 + len(body)
	body = append(body, payload...)
	pkt := make([]byte, 40+len(body))
	header.PutIPv6(pkt, header.IPv6Fields{PayloadLen: uint16(len(body)), NextHeader: first, HopLimit: 64, Src: s, Dst: d})
	copy(pkt[40:], body)
	if proto == header.ProtoICMPv6 {
		header.ICMPv6(pkt[off:]).UpdateChecksum(s, d)
	}
	return pkt
}

// echoRequest6 is an ICMPv6 echo request message with id, seq and data.
func echoRequest6(id, seq uint16, data []byte) []byte {
	m := make([]byte, 8+len(data))
	m[0] = header.ICMPv6EchoRequest
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], data)
	return m
}

// TestICMPv6Echo: an echo request is answered (RFC 4443 §4.2); a 4000-byte
// one, sent in fragments, is reassembled and answered in fragments no
// larger than the link MTU (RFC 8200 §4.5).
func TestICMPv6Echo(t *testing.T) {
	s, p := newRawPeer6(t, Options{})
	p.send(t, datagram6(addrA6, addrB6, nil, nil, header.ProtoICMPv6, echoRequest6(7, 1, []byte("ping"))))
	r := p.recv6(t, 5*time.Second, nil)
	m := header.ICMPv6(r[40:])
	if r.NextHeader() != header.ProtoICMPv6 || m.Type() != header.ICMPv6EchoReply || m.Ident() != 7 || m.Seq() != 1 ||
		string(m[8:]) != "ping" || r.Src() != addrB6 || r.Dst() != addrA6 {
		t.Fatalf("reply % x", r)
	}
	// The big one, fragmented by a layer of the peer's.
	data := make([]byte, 4000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	whole := header.IPv6(datagram6(addrA6, addrB6, nil, nil, header.ProtoICMPv6, echoRequest6(8, 2, data)))
	peer := ipv6.New(addrA6)
	id := peer.FragmentID(time.Now(), addrA6.As16(), addrB6.As16())
	for off := 0; ; {
		b := make([]byte, 1500)
		n, next := peer.PutFragment(b, whole, 1500, off, id)
		p.send(t, b[:n])
		if next == 0 {
			break
		}
		off = next
	}
	// Reassemble the reply's fragments by hand.
	type frag struct {
		off  int
		more bool
		data []byte
	}
	var frags []frag
	complete := func() bool {
		if len(frags) == 0 || frags[len(frags)-1].more {
			return false
		}
		n := 0
		for _, f := range frags {
			n += len(f.data)
		}
		last := frags[len(frags)-1]
		return n == last.off+len(last.data)
	}
	var rid uint32
	got := 0
	for !complete() {
		f := p.recv6(t, 5*time.Second, func(h header.IPv6) bool { return h.NextHeader() == header.ProtoFragment })
		if len(f) > 1500 {
			t.Fatalf("a %d-byte fragment on a 1500-byte link", len(f))
		}
		fh := header.IPv6Frag(f[40:])
		if got > 0 && fh.ID() != rid {
			t.Fatalf("fragment IDs %d and %d", rid, fh.ID())
		}
		rid = fh.ID()
		frags = append(frags, frag{fh.Offset(), fh.More(), bytes.Clone(f[48:])})
		slices.SortFunc(frags, func(a, b frag) int { return a.off - b.off })
		got++
		if got > 10 {
			t.Fatal("too many fragments")
		}
	}
	var reply []byte
	for _, f := range frags {
		if f.off != len(reply) {
			t.Fatalf("fragment at %d after %d bytes", f.off, len(reply))
		}
		reply = append(reply, f.data...)
	}
	rm := header.ICMPv6(reply)
	if got != 3 || rm.Type() != header.ICMPv6EchoReply || rm.Ident() != 8 || !bytes.Equal(rm[8:], data) {
		t.Fatalf("%d fragments, reply type %d id %d, %d bytes of data", got, rm.Type(), rm.Ident(), len(rm)-8)
	}
	if m := statsOf(s); m["ip6.reassembled"] != 1 || m["ip6.icmp_echo_replied"] != 2 || m["ip6.fragmented"] != 1 || m["ip6.fragments_sent"] != 3 {
		t.Fatalf("counters %v", m)
	}
}

// udp6 is a UDP header and payload from src to dst, with its checksum.
func udp6(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8+len(payload))
	copy(u[8:], payload)
	header.PutUDP(u, sport, dport, len(payload), src, dst)
	return u
}

// rawSYN6 is a SYN with MSS 1440 from src to dst over IPv6.
func rawSYN6(src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	t := make([]byte, 24)
	o := header.TCPOptions{MSS: 1440}
	n := header.PutTCPOptions(t[20:], &o)
	header.PutTCP(t, header.TCPFields{SrcPort: sport, DstPort: dport, Seq: seq, Flags: header.FlagSYN, Window: 65535, OptLen: n})
	header.SetTransportChecksum(t[:20+n], tcpChecksumAt, header.PseudoSum(header.ProtoTCP, src, dst, 20+n))
	return datagram6(src, dst, nil, nil, header.ProtoTCP, t[:20+n])
}

func withHeadroom(pkt []byte) []byte { return append(make([]byte, link.Headroom), pkt...) }

// padOpts is an 8-byte options header (hop-by-hop or destination
// options) of one PadN (RFC 8200 §4.2).
var padOpts = []byte{0, 0, 1, 4, 0, 0, 0, 0}

// TestMalformedIPv6DroppedAndCounted: every malformed IPv6 packet is
// dropped under its reason, and an unknown Next Header is answered with
// a parameter problem (RFC 8200 §4, RFC 4443 §3.4 code 1).
func TestMalformedIPv6DroppedAndCounted(t *testing.T) {
	s, p := newRawPeer6(t, Options{})
	listenUDP(t, s, netip.AddrPortFrom(addrB6, 53))
	udpTo := func(dst netip.Addr) []byte {
		return datagram6(addrA6, dst, nil, nil, header.ProtoUDP, udp6(addrA6, dst, 1000, 53, []byte("q")))
	}
	edit := func(b []byte, f func([]byte)) []byte { f(b); return b }
	syn := rawSYN6(addrA6, addrB6, 1000, 80, 1)
	var nine [][]byte
	var nineNH []uint8
	for range 9 {
		nine, nineNH = append(nine, padOpts), append(nineNH, header.ProtoDestOpts)
	}
	for _, tc := range []struct {
		name, counter string
		pkt           []byte
	}{
		{"short", "ip6.drop_too_short", udpTo(addrB6)[:30]},
		{"payload length", "ip6.drop_bad_payload_length", edit(udpTo(addrB6), func(b []byte) { binary.BigEndian.PutUint16(b[4:], 1000) })},
		{"not ours", "ip6.drop_not_for_us", udpTo(netip.MustParseAddr("2001:2::77"))},
		{"multicast source", "ip6.drop_bad_source", datagram6(netip.MustParseAddr("ff02::1"), addrB6, nil, nil, header.ProtoUDP, udp6(addrA6, addrB6, 1, 53, nil))},
		{"zero UDP checksum", "udp.drop_bad_checksum", edit(udpTo(addrB6), func(b []byte) { b[46], b[47] = 0, 0 })},
		{"TCP checksum", "tcp.drop_bad_checksum", edit(slices.Clone(syn), func(b []byte) { b[len(b)-1] ^= 1 })},
		{"TCP header", "tcp.drop_bad_header", datagram6(addrA6, addrB6, nil, nil, header.ProtoTCP, make([]byte, 10))},
		{"too many extension headers", "ip6.drop_too_many_ext_headers", datagram6(addrA6, addrB6, nine, nineNH, header.ProtoUDP, udp6(addrA6, addrB6, 1, 53, nil))},
		{"unknown next header", "ip6.drop_unknown_next_header", datagram6(addrA6, addrB6, nil, nil, 253, make([]byte, 8))},
	} {
		before := statsOf(s)[tc.counter]
		p.send(t, tc.pkt)
		waitCounter(t, s, tc.counter, before+1)
	}
	pp := p.recv6(t, 5*time.Second, func(h header.IPv6) bool {
		return h.NextHeader() == header.ProtoICMPv6 && h[40] == header.ICMPv6ParamProblem && h[41] == header.ICMPv6UnknownNextHdr
	})
	if ptr := binary.BigEndian.Uint32(pp[44:]); ptr != 6 {
		t.Fatalf("parameter problem points at %d, want 6 (the Next Header field)", ptr)
	}
	if m := statsOf(s); m["udp.in_datagrams"] != 0 || m["tcp.segs_in"] != 0 {
		t.Fatalf("a malformed packet got through: %v", m)
	}
}

// TestSYNCookiesIPv6: spoofed IPv6 SYNs fill the half-open queue; the
// SYN-ACKs carry cookies over the IPv6 4-tuple; a real client connects
// through one and keeps its MSS and options (RFC 4987 §3.6).
func TestSYNCookiesIPv6(t *testing.T) {
	ea, eb := link.Pipe(1500)
	srv, err := New(eb, strict(Options{Addr: addrB6, Backlog: 8}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := New(ea, strict(Options{Addr: addrA6}))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	l, _ := srv.ListenTCP(80)
	spoof := netip.MustParseAddr("2001:2:0:7::7")
	var flood [][]byte
	for i := range 200 {
		flood = append(flood, withHeadroom(rawSYN6(spoof, addrB6, uint16(10000+i), 80, uint32(i*7919))))
	}
	ea.WriteBatch(flood, link.Headroom)
	waitfor.Cond(t, 5*time.Second, "the flood to be answered", func() bool {
		st := srv.Stats()
		return st.TCPPassiveOpens == 9 && st.TCPSynCookiesSent == 191
	})
	c, err := cli.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB6, 80))
	if err != nil {
		t.Fatalf("a real client could not connect during the flood: %v", err)
	}
	defer c.Close()
	sc, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.TCPSynCookiesOK != 1 {
		t.Fatalf("cookie connections %d, want 1", st.TCPSynCookiesOK)
	}
	if i := sc.Info(); i.SndMSS != 1440 || !i.Timestamps || !i.SACK || !i.WindowScale[0].Present {
		t.Fatalf("cookie connection: MSS %d TS %v SACK %v WS %v", i.SndMSS, i.Timestamps, i.SACK, i.WindowScale)
	}
	if i := c.Info(); i.SndMSS != 1440 {
		t.Fatalf("client's MSS %d: the cookie SYN-ACK announced more than MTU - 60", i.SndMSS)
	}
	if _, err := c.Write([]byte("through the flood")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 17)
	if _, err := sc.Read(buf); err != nil || string(buf) != "through the flood" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// floodPacket6 is packet i of the flood: four in five a first fragment
// (never followed by the rest) behind a chain of seven extension headers,
// each from its own source and ID; the fifth a chain of nine headers, one
// too many (ipv6.MaxExtHeaders).
func floodPacket6(i int, dst netip.Addr) []byte {
	src := netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, 0, 0, 9, 14: byte(i >> 8), 15: byte(i)})
	if i%5 == 4 {
		var chain [][]byte
		var nhs []uint8
		for range 9 {
			chain, nhs = append(chain, padOpts), append(nhs, header.ProtoDestOpts)
		}
		return datagram6(src, dst, chain, nhs, header.ProtoUDP, udp6(src, dst, 1, 53, nil))
	}
	chain := [][]byte{padOpts}
	nhs := []uint8{header.ProtoHopByHop}
	for range 5 {
		chain, nhs = append(chain, padOpts), append(nhs, header.ProtoDestOpts)
	}
	frag := make([]byte, 8)
	header.PutIPv6Frag(frag, 0, 0, true, uint32(i))
	chain, nhs = append(chain, frag), append(nhs, header.ProtoFragment)
	return datagram6(src, dst, chain, nhs, header.ProtoUDP, udp6(src, dst, 1, 53, make([]byte, 1016)))
}

// TestIPv6FloodKeepsReassemblyBounded: thousands of IPv6 packets with long
// extension header chains and fragments never completed arrive while TCP
// connections over both families move data: reassembly memory never
// exceeds its cap (ipv6.ReassemblyMemCap), what does not fit is dropped
// and counted, and the transfers complete intact.
func TestIPv6FloodKeepsReassemblyBounded(t *testing.T) {
	n := 6000
	if testing.Short() {
		n = 5500
	}
	r, ea, eb := newRouter6(t, 1500, 1500)
	a, b := pairOn(t, ea, eb, Options{}, Options{}, []netip.Addr{addrA, addrA6}, []netip.Addr{addrB, addrB6})
	l, err := b.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	floodErr := make(chan error, 1)
	go func() {
		peak := 0
		for i := 0; i < n; i += 64 {
			var batch [][]byte
			for j := i; j < min(i+64, n); j++ {
				batch = append(batch, withHeadroom(floodPacket6(j, addrB6)))
			}
			if _, err := r.r2.WriteBatch(batch, link.Headroom); err != nil {
				floodErr <- err
				return
			}
			// Every flood packet ends held, dropped for memory or for its
			// headers; Received alone would count the transfers' too, and
			// end the wait before the last batch was processed.
			sent := uint64(min(i+64, n))
			took := func() uint64 {
				st := &b.ip6.Stats
				return st.Load(ipv6.FragHeld) + st.Drops(ipv6.FragNoMemory) + st.Drops(ipv6.TooManyExtHeaders)
			}
			if !waitfor.Within(10*time.Second, func() bool { return took() >= sent }) {
				floodErr <- fmt.Errorf("the stack took %d of %d packets in 10 s", took(), sent)
				return
			}
			peak = max(peak, b.ip6.Stats.ReassemblyBytes())
		}
		if peak > ipv6.ReassemblyMemCap {
			floodErr <- fmt.Errorf("reassembly held %d bytes, over the cap of %d", peak, ipv6.ReassemblyMemCap)
			return
		}
		floodErr <- nil
	}()
	for _, to := range []netip.Addr{addrB6, addrB, addrB6} {
		c, sc := exchange(t, a, l, netip.AddrPortFrom(to, 80), 1<<20)
		c.Close()
		sc.Close()
	}
	select {
	case err := <-floodErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the flood did not end")
	}
	m := statsOf(b)
	t.Logf("flood: %d held, %d dropped for memory, %d with too many headers, %d bytes in %d queues at the end",
		m["ip6.frag_held"], m["ip6.drop_frag_no_memory"], m["ip6.drop_too_many_ext_headers"], m["ip6.reasm_bytes"], m["ip6.reasm_queues"])
	if m["ip6.drop_frag_no_memory"] == 0 || m["ip6.drop_too_many_ext_headers"] != uint64(n/5) ||
		m["ip6.reasm_bytes"] > ipv6.ReassemblyMemCap || m["ip6.reasm_queues"] > ipv6.ReassemblyMaxQueues {
		t.Fatalf("counters after the flood: held %d, no memory %d, too many headers %d, reasm %d bytes in %d queues",
			m["ip6.frag_held"], m["ip6.drop_frag_no_memory"], m["ip6.drop_too_many_ext_headers"], m["ip6.reasm_bytes"], m["ip6.reasm_queues"])
	}
}

// icmp6About is an ICMPv6 error of typ and code from the peer (addrA6)
// quoting the stack's packet q, as much of it as fits in 1280 bytes (RFC
// 4443 §2.4(c)); param is the MTU of a Packet Too Big (§3.2).
func icmp6About(typ, code uint8, param uint32, q header.IPv6) []byte {
	m := make([]byte, 8+min(len(q), 1280-48))
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint32(m[4:], param)
	copy(m[8:], q)
	return datagram6(addrA6, addrB6, nil, nil, header.ProtoICMPv6, m)
}

func isTCP6(h header.IPv6) bool { return h.NextHeader() == header.ProtoTCP }

// TestICMPv6UnreachableFailsDial: an ICMPv6 destination unreachable about
// our SYN ends the connect at once with the errno Linux's
// icmpv6_err_convert gives its code (RFC 4443 §3.1, §2.4(b): the error
// goes to the upper layer; RFC 1122 §4.2.3.9 lets TCP report it). As
// Linux's tcp_v6_err, SYN-SENT gives up on any error, the soft ones (no
// route, address unreachable) as much as the hard ones.
func TestICMPv6UnreachableFailsDial(t *testing.T) {
	for _, tc := range []struct {
		code uint8
		want syscall.Errno
	}{
		{header.ICMPv6AdminProhibit, syscall.EACCES},
		{header.ICMPv6PortUnreach, syscall.ECONNREFUSED},
		{header.ICMPv6NoRoute, syscall.ENETUNREACH},
		{header.ICMPv6AddrUnreach, syscall.EHOSTUNREACH},
	} {
		s, p := newRawPeer6(t, Options{})
		done := make(chan error, 1)
		go func() {
			_, err := s.DialTCP(ctxT(t, 10*time.Second), netip.AddrPortFrom(addrA6, 9))
			done <- err
		}()
		syn := p.recv6(t, 5*time.Second, isTCP6)
		start := time.Now()
		p.send(t, icmp6About(header.ICMPv6DestUnreach, tc.code, 0, syn))
		err := <-done
		if !errors.Is(err, tc.want) || time.Since(start) > time.Second {
			t.Fatalf("code %d: DialTCP = %v after %v, want %v at once", tc.code, err, time.Since(start), tc.want)
		}
		if m := statsOf(s); m["ip6.icmp_errors_delivered"] != 1 || m["icmp.errors_to_conn"] != 1 {
			t.Fatalf("code %d: counters %v", tc.code, m)
		}
	}
}

// TestICMPv6ErrorChecks: an ICMPv6 error about a passive connection in
// SYN-RECEIVED ends it only if it is one icmpv6_err_convert calls fatal
// (Linux's tcp_req_err); one quoting a sequence number we do not have
// outstanding changes nothing (RFC 5927 §4.1); one quoting no connection
// is counted as such.
func TestICMPv6ErrorChecks(t *testing.T) {
	s, p := newRawPeer6(t, Options{})
	l, err := s.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p.send(t, rawSYN6(addrA6, addrB6, 5555, 80, 100))
	synack := p.recv6(t, 5*time.Second, isTCP6)
	// No route (code 0) and Packet Too Big are not fatal: the request
	// stays.
	p.send(t, icmp6About(header.ICMPv6DestUnreach, header.ICMPv6NoRoute, 0, synack))
	p.send(t, icmp6About(header.ICMPv6PacketTooBig, 0, 1280, synack))
	waitCounter(t, s, "icmp.errors_req_ignored", 2)
	if s.Stats().TCPConns != 1 {
		t.Fatalf("the request went on a non-fatal error: %d conns", s.Stats().TCPConns)
	}
	// Not our sequence number: ignored, even when fatal.
	bad := header.IPv6(bytes.Clone(synack))
	binary.BigEndian.PutUint32(bad[40+4:], 12345)
	p.send(t, icmp6About(header.ICMPv6DestUnreach, header.ICMPv6AdminProhibit, 0, bad))
	waitCounter(t, s, "icmp.errors_out_of_window", 1)
	if s.Stats().TCPConns != 1 {
		t.Fatalf("an error quoting a sequence number not ours ended the request: %d conns", s.Stats().TCPConns)
	}
	// Administratively prohibited is fatal: the request is dropped.
	p.send(t, icmp6About(header.ICMPv6DestUnreach, header.ICMPv6AdminProhibit, 0, synack))
	waitCounter(t, s, "icmp.errors_to_conn", 1)
	waitCounter(t, s, "tcp.conns", 0)
	// No such connection.
	other := header.IPv6(bytes.Clone(synack))
	binary.BigEndian.PutUint16(other[40:], 81)
	p.send(t, icmp6About(header.ICMPv6DestUnreach, header.ICMPv6PortUnreach, 0, other))
	waitCounter(t, s, "icmp.errors_no_conn", 1)
	if m := statsOf(s); m["ip6.icmp_errors_delivered"] != 5 {
		t.Fatalf("counters %v", m)
	}
}
