package stack

import (
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"ustack/stack/header"
	"ustack/stack/ipv4"
	"ustack/stack/link"
	"ustack/stack/tcp"
	"ustack/stack/udp"
)

// The stack's side of UDP: datagrams in (to the udp.Table, port
// unreachable back), out (built here, fragmented when over the path MTU),
// and the ICMP errors about them. The IPv6 side of input and of ICMPv6
// errors is in ip6.go.

// udpInput hands the UDP datagram in h to its endpoint, or answers with
// ICMP port unreachable (RFC 1122 §4.1.3.1), rate-limited and never for a
// broadcast (the IP layer dropped those). csumOK: the link vouches for the
// checksum (input's), which is then not verified again: a datagram the
// kernel built carries only the pseudo-header's sum (NEEDS_CSUM).
func (s *Stack) udpInput(ln *lane, now time.Time, h header.IPv4, csumOK bool) {
	src, dst := netip.AddrFrom4(h.SrcBytes()), netip.AddrFrom4(h.DstBytes())
	if s.udp.Input(src, dst, h.Payload(), csumOK) == udp.Unreachable {
		s.sendICMPError(ln, now, h, header.ICMPDestUnreach, header.ICMPPortUnreach)
	}
}

// udpBigPool holds buffers for UDP datagrams over the link MTU, built whole
// before they are cut into fragments: up to 65535 bytes over IPv4, the
// 40-byte header and 65535 of payload over IPv6.
var udpBigPool = sync.Pool{New: func() any { b := make([]byte, ipv6HeaderLen+0xffff); return &b }}

// sendUDP sends payload as one datagram from local (an invalid address:
// the one SelectSource chooses for dst) to dst, which checkUDPDest passed,
// and writes it out. RFC 8085 §3.2 leaves the size to the application;
// Linux's limits hold: EMSGSIZE beyond 65507 bytes (65527 over IPv6), or
// beyond the path MTU in mode "do"; otherwise a datagram over the path MTU
// goes in fragments (over IPv4 with DF clear; over IPv6 with a fragment
// header, RFC 8200 §4.5), and one that fits goes with DF as the mode says
// (Linux's default for UDP, IP_PMTUDISC_WANT: set).
func (s *Stack) sendUDP(local, dst netip.AddrPort, payload []byte) error {
	src, err := s.udpSource(local.Addr(), dst.Addr(), len(payload))
	if err != nil {
		return err
	}
	v4 := dst.Addr().Is4()
	ihl := ipHeaderLen(dst.Addr())
	n := header.UDPHeaderLen + len(payload)
	size := ihl + n
	mode := s.opts.PMTUDiscovery
	if mode == ipv4.PMTUDiscDo {
		var mtu int
		if v4 {
			mtu, _ = s.pathMTU(s.clk.Now(), dst.Addr().As4())
		} else {
			mtu = s.pathMTU6(dst.Addr().As16())
		}
		if size > mtu {
			return fmt.Errorf("%d bytes over the path MTU %d with DF: %w", size, mtu, syscall.EMSGSIZE)
		}
	}
	var bp *[]byte
	var p []byte
	if size <= s.mtu {
		bp = s.pool.Get().(*[]byte)
		p = (*bp)[link.Headroom : link.Headroom+size]
	} else {
		bp = udpBigPool.Get().(*[]byte)
		p = (*bp)[:size]
	}
	copy(p[ihl+header.UDPHeaderLen:], payload)
	header.PutUDP(p[ihl:], local.Port(), dst.Port(), len(payload), src, dst.Addr())
	var mtu int
	if v4 {
		mtu = s.putIPHeader(p, src, dst.Addr(), header.ProtoUDP, n, mode, true)
	} else {
		mtu = s.putIP6Header(p, src, dst.Addr(), header.ProtoUDP, n, local.Port(), dst.Port())
	}
	// The flow's lane, by the hash a connection's would have.
	ln := s.laneFor(tcp.ID{Local: netip.AddrPortFrom(src, local.Port()), Remote: dst})
	switch {
	case mtu == 0:
		s.putUDPBuf(bp, size)
		return fmt.Errorf("source %v: %w (the address was removed)", src, syscall.EADDRNOTAVAIL)
	case size > mtu && v4:
		s.queueDatagram(ln, p, mtu)
		s.putUDPBuf(bp, size)
	case size > mtu:
		// RFC 8200 §4.5 and §5: the source fragments to the path MTU.
		s.queueDatagram6(ln, p, mtu)
		s.putUDPBuf(bp, size)
	default:
		ln.queue(bp, link.Headroom+size, 0)
	}
	s.udp.Stats.Inc(udp.OutDatagrams)
	ln.flush()
	return nil
}

// udpMaxIPv6Payload is the most data one UDP datagram carries over IPv6
// without a jumbogram (RFC 2675, which we do not send): 65535 - 8.
const udpMaxIPv6Payload = 0xffff - header.UDPHeaderLen

// udpSource checks the size of a datagram of n bytes to dst and returns
// its source: src, which must be of dst's family (EAFNOSUPPORT otherwise,
// as a Linux socket bound to an IPv4 address answers an IPv6 destination),
// or, if invalid, the one SelectSource chooses.
func (s *Stack) udpSource(src, dst netip.Addr, n int) (netip.Addr, error) {
	if dst.Is4() && n > header.UDPMaxIPv4Payload {
		return src, fmt.Errorf("%d bytes: %w (at most %d in one IPv4 datagram)", n, syscall.EMSGSIZE, header.UDPMaxIPv4Payload)
	}
	if !dst.Is4() && n > udpMaxIPv6Payload {
		return src, fmt.Errorf("%d bytes: %w (at most %d in one IPv6 datagram)", n, syscall.EMSGSIZE, udpMaxIPv6Payload)
	}
	if !src.IsValid() {
		return s.sourceFor(dst)
	}
	if src.Is4() != dst.Is4() {
		return src, fmt.Errorf("source %v cannot send to %v: %w", src, dst, syscall.EAFNOSUPPORT)
	}
	return src, nil
}

func (s *Stack) putUDPBuf(bp *[]byte, size int) {
	if size <= s.mtu {
		s.pool.Put(bp)
	} else {
		udpBigPool.Put(bp)
	}
}

// udpICMPError takes an ICMP error quoting a UDP datagram we sent, as
// Linux's __udp4_lib_err does without IP_RECVERR: "fragmentation needed"
// lowers the path MTU (RFC 1191) whoever sent the datagram; a hard error
// (icmp_err_convert's fatal ones: port, protocol unreachable, ...;
// parameter problem; fragmentation needed unless the mode is "dont")
// becomes the pending error of the connected socket that sent it, which
// its next Read or Write reports once; soft errors and errors about an
// unconnected socket are ignored (RFC 1122 §4.1.3.3 asks UDP to pass them
// up; Linux does only with IP_RECVERR, which we do not have).
func (s *Stack) udpICMPError(now time.Time, e *ipv4.ICMPError) {
	if e.FragNeeded() {
		if _, changed := s.ip.PMTU.Update(now, e.Dst, e.MTU, s.mtu); changed {
			s.icmpCnt.Inc(icmpPMTUUpdates)
		}
	}
	local := netip.AddrPortFrom(netip.AddrFrom4(e.Src), e.SrcPort)
	remote := netip.AddrPortFrom(netip.AddrFrom4(e.Dst), e.DstPort)
	ep := s.udp.Connected(local, remote)
	errno, hard := udpErrno(e, s.opts.PMTUDiscovery)
	if ep == nil || !hard {
		s.icmpCnt.Inc(icmpUDPIgnored)
		return
	}
	ep.SetError(errno)
	s.icmpCnt.Inc(icmpToConn)
}

// udpFatal are the destination unreachable codes Linux's icmp_err_convert
// marks fatal (a hard error for UDP).
var udpFatal = [16]bool{2: true, 3: true, 6: true, 7: true, 8: true, 9: true, 10: true, 13: true, 14: true, 15: true}

// udpErrno is the errno an ICMP error means to a UDP socket and whether it
// is hard (reported without IP_RECVERR), as Linux's __udp4_lib_err.
func udpErrno(e *ipv4.ICMPError, mode ipv4.PMTUDisc) (syscall.Errno, bool) {
	switch e.Type {
	case header.ICMPDestUnreach:
		if e.FragNeeded() {
			return syscall.EMSGSIZE, mode != ipv4.PMTUDiscDont
		}
		return e.Errno, int(e.Code) < len(udpFatal) && udpFatal[e.Code]
	case header.ICMPParamProblem:
		return syscall.EPROTO, true
	}
	return e.Errno, false // time exceeded: EHOSTUNREACH, soft
}
