package tcp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// The family-dependent branches of the TCB, scripted on testID6: the
// default peer MSS, the IPv6 header in the MSS arithmetic and the path-MTU
// floor, and SYN cookies and ISNs keyed on an IPv6 4-tuple. The stack
// announces MTU - 60 over IPv6: 1440 on a 1500-byte link.

// synMSS is the options template of a SYN that announces mss (out
// compares the MSS when it is set).
func synMSS(mss uint16) header.TCPOptions { return header.TCPOptions{MSS: mss} }

// TestNoMSSOptionMeans1220OnIPv6: a SYN or SYN-ACK without an MSS option
// over IPv6 lets us send segments of 1220 bytes, the IPv6 minimum MTU less
// 60 (RFC 9293 §3.7.1; Linux's mss_clamp for an IPv6 request), not the
// 536 of IPv4. An IPv4-mapped 4-tuple is IPv4's 536.
func TestNoMSSOptionMeans1220OnIPv6(t *testing.T) {
	// Active open: the SYN-ACK has no MSS option.
	s := newScriptOn(t, testID6, Config{MSS: 1440, NoDelay: true})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS, Opts: synMSS(1440)})
	s.in(seg(SYN|ACK, rISS, lISS+1))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	if got := s.c.Info().SndMSS; got != DefaultPeerMSSv6 {
		t.Fatalf("active open: send MSS %d, want 1220", got)
	}
	s.write(bytesN(3000))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesAt(0, 1220)})
	s.out(Segment{Flags: ACK, Seq: lISS + 1221, Ack: rISS + 1, Payload: bytesAt(1220, 1220)})
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 2441, Ack: rISS + 1, Payload: bytesAt(2440, 560)})
	s.none()

	// Passive open: the SYN has no MSS option.
	s = newScriptOn(t, testID6, Config{MSS: 1440, NoDelay: true})
	s.c.SetISS(lISS)
	s.c.Listen(s.now)
	s.in(seg(SYN, rISS, 0))
	s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1, Opts: synMSS(1440)})
	s.in(seg(ACK, rISS+1, lISS+1))
	s.state(Established)
	if got := s.c.Info().SndMSS; got != DefaultPeerMSSv6 {
		t.Fatalf("passive open: send MSS %d, want 1220", got)
	}
	s.write(bytesN(1300))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesAt(0, 1220)})
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 1221, Ack: rISS + 1, Payload: bytesAt(1220, 80)})
	s.none()

	// An IPv4-mapped IPv6 4-tuple is an IPv4 connection.
	mapped := ID{
		Local:  netip.AddrPortFrom(netip.AddrFrom16(testID.Local.Addr().As16()), testID.Local.Port()),
		Remote: netip.AddrPortFrom(netip.AddrFrom16(testID.Remote.Addr().As16()), testID.Remote.Port()),
	}
	s = newScriptOn(t, mapped, Config{MSS: 1460})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS})
	s.in(seg(SYN|ACK, rISS, lISS+1))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	if got := s.c.Info().SndMSS; got != DefaultPeerMSS {
		t.Fatalf("IPv4-mapped: send MSS %d, want 536", got)
	}
}

// TestPathMTUOverIPv6: a Packet Too Big lowers the MSS to the path MTU
// less 60, the IPv6 and TCP headers (RFC 8200 §8.3), and the segments in
// flight go again in the new size at once (Linux's
// tcp_simple_retransmit); one reporting less than 1280 lowers it only to
// 1220: RFC 8201 §4, a node "MUST NOT reduce its estimate of the Path MTU
// below the IPv6 minimum link MTU". One below that changes nothing more.
func TestPathMTUOverIPv6(t *testing.T) {
	s := newScriptOn(t, testID6, Config{MSS: 1440, NoDelay: true})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS, Opts: synMSS(1440)})
	synack := seg(SYN|ACK, rISS, lISS+1)
	synack.Opts.MSS = 1440
	s.in(synack)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	s.write(bytesN(3000))
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1, Payload: bytesAt(0, 1440)})
	s.out(Segment{Flags: ACK, Seq: lISS + 1441, Ack: rISS + 1, Payload: bytesAt(1440, 1440)})
	s.out(Segment{Flags: ACK | PSH, Seq: lISS + 2881, Ack: rISS + 1, Payload: bytesAt(2880, 120)})
	s.advance(time.Millisecond)

	// 1400 - 60: 1340, where IPv4's 20-byte header would leave 1360.
	resentAt(t, s, 1400, 1340)
	s.advance(time.Millisecond)
	// 1000 is below the floor: 1280 - 60.
	resentAt(t, s, 1000, 1220)
	s.advance(time.Millisecond)
	s.pathMTU(lISS+1, 600)
	s.none()
	if got := s.c.Info().SndMSS; got != 1220 {
		t.Fatalf("send MSS %d after a Packet Too Big of 600, want 1220", got)
	}

	// One that comes in SYN-SENT holds once the SYN-ACK offers 1440, at
	// the floor too.
	s = newScriptOn(t, testID6, Config{MSS: 1440, NoDelay: true})
	s.c.Connect(s.now, lISS)
	s.out(Segment{Flags: SYN, Seq: lISS, Opts: synMSS(1440)})
	s.pathMTU(lISS, 1000)
	s.in(synack)
	s.out(Segment{Flags: ACK, Seq: lISS + 1, Ack: rISS + 1})
	if got := s.c.Info().SndMSS; got != 1220 {
		t.Fatalf("send MSS %d after a Packet Too Big of 1000 in SYN-SENT, want 1220", got)
	}
}

// resentAt checks that a Packet Too Big of mtu about the 3000 bytes in
// flight is taken, and that they go again at once in segments of mss.
func resentAt(t *testing.T, s *script, mtu, mss int) {
	t.Helper()
	if !s.pathMTU(lISS+1, mtu) {
		t.Fatalf("a Packet Too Big of %d about outstanding data was not taken", mtu)
	}
	for off := 0; off < 3000; off += mss {
		n, flags := min(mss, 3000-off), uint8(ACK)
		if off+n == 3000 {
			flags |= PSH
		}
		s.out(Segment{Flags: flags, Seq: lISS + 1 + seqnum.Value(off), Ack: rISS + 1, Payload: bytesAt(off, n)})
	}
	s.none()
	if got := s.c.Info().SndMSS; got != mss {
		t.Fatalf("send MSS %d after a Packet Too Big of %d, want %d", got, mtu, mss)
	}
}

// TestSYNCookieOverIPv6: a cookie for an IPv6 SYN without an MSS option
// carries 1220 rounded down to the table, 1200 (IPv4's would carry 536);
// its hash covers the whole 16-byte addresses; the connection it makes
// sends segments of 1200 (RFC 4987 §3.6).
func TestSYNCookieOverIPv6(t *testing.T) {
	j, _ := NewCookieJar(bytes.NewReader(make([]byte, 16)))
	irs := seqnum.Value(777)
	iss := j.Make(testID6, irs, 0, t0)
	ack := seg(ACK, irs+1, iss+1)
	mss, ok := j.Check(testID6, &ack, t0.Add(time.Second))
	if !ok || mss != 1200 {
		t.Fatalf("check: mss %d ok %v, want 1200 (1220 rounded down)", mss, ok)
	}
	iss4 := j.Make(testID, irs, 0, t0)
	ack4 := seg(ACK, irs+1, iss4+1)
	if mss4, ok := j.Check(testID, &ack4, t0); !ok || mss4 != 536 {
		t.Fatalf("IPv4 check: mss %d ok %v, want 536", mss4, ok)
	}
	for _, other := range []ID{
		{Local: testID6.Local, Remote: netip.MustParseAddrPort("[2001:2:0:1::1]:40000")},
		{Local: netip.MustParseAddrPort("[2001:2::1:2]:80"), Remote: testID6.Remote},
	} {
		if _, ok := j.Check(other, &ack, t0); ok {
			t.Fatalf("a cookie for %v passed for %v", testID6, other)
		}
	}

	s := newScriptOn(t, testID6, Config{MSS: 1440, NoDelay: true})
	s.c.AcceptCookie(s.now, &ack, mss)
	s.in(ack)
	s.state(Established)
	s.write(bytesN(2500))
	s.out(Segment{Flags: ACK, Seq: iss + 1, Ack: irs + 1, Payload: bytesAt(0, 1200)})
	s.out(Segment{Flags: ACK, Seq: iss + 1201, Ack: irs + 1, Payload: bytesAt(1200, 1200)})
	s.out(Segment{Flags: ACK | PSH, Seq: iss + 2401, Ack: irs + 1, Payload: bytesAt(2400, 100)})
	s.none()
}

// TestISNKeyedOnIPv6Tuple: the ISN's keyed hash (RFC 6528 §3) takes every
// byte of both IPv6 addresses; an IPv4-mapped 4-tuple hashes as IPv4.
func TestISNKeyedOnIPv6Tuple(t *testing.T) {
	g, _ := NewISNGenerator(bytes.NewReader(make([]byte, 16)), t0)
	base := g.ISN(testID6, t0)
	// Bytes 6..15: the addresses stay in 2001:2::/48.
	for i := 6; i < 16; i++ {
		for _, local := range []bool{true, false} {
			id := testID6
			ap := &id.Remote
			if local {
				ap = &id.Local
			}
			a := ap.Addr().As16()
			a[i] ^= 0x40
			*ap = netip.AddrPortFrom(netip.AddrFrom16(a), ap.Port())
			if g.ISN(id, t0) == base {
				t.Fatalf("byte %d of an address changed (local %v), the ISN did not", i, local)
			}
		}
	}
	mapped := ID{
		Local:  netip.AddrPortFrom(netip.AddrFrom16(testID.Local.Addr().As16()), testID.Local.Port()),
		Remote: netip.AddrPortFrom(netip.AddrFrom16(testID.Remote.Addr().As16()), testID.Remote.Port()),
	}
	if g.ISN(mapped, t0) != g.ISN(testID, t0) {
		t.Fatal("an IPv4-mapped 4-tuple does not hash as its IPv4 form")
	}
}
