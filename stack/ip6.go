package stack

import (
	"net/netip"
	"time"

	"ustack/stack/header"
	"ustack/stack/ipv4"
	"ustack/stack/ipv6"
	"ustack/stack/link"
	"ustack/stack/seqnum"
	"ustack/stack/tcp"
	"ustack/stack/udp"
)

// The stack's side of IPv6 (RFC 8200, RFC 4443, RFC 8201): what the IPv6
// layer's verdicts lead to, the header and fragments on the way out, and
// the ICMPv6 errors about our TCP and UDP. A TUN link has no link layer:
// there is no neighbour discovery (RFC 4861) to do, and the layer drops
// its messages.

// input6 handles one inbound IPv6 packet and returns the connection it
// touched.
func (s *Stack) input6(ln *lane, now time.Time, pkt []byte, csumOK bool) *Conn {
	v, p := s.ip6.Input(now, pkt)
	switch v {
	case ipv6.Deliver:
		switch p.Proto {
		case header.ProtoTCP:
			return s.tcpInput(ln, now, p.Payload(), p.SrcAddr(), p.DstAddr(), csumOK)
		case header.ProtoUDP:
			s.udpInput6(ln, now, &p, csumOK)
		}
	case ipv6.Reply:
		s.reply6(ln, now, p.IP)
	case ipv6.Held:
		s.fragmentsHeld(ln, now)
	case ipv6.DeliverICMPError:
		return s.icmp6Error(ln, now, &p.ICMP)
	case ipv6.SendError:
		s.sendICMP6Error(ln, now, p.IP, p.ErrType, p.ErrCode, p.ErrParam)
	}
	return nil
}

// pathMTU6 is the MTU towards dst: the link's, or less if learned from a
// Packet Too Big (RFC 8201), never below 1280.
func (s *Stack) pathMTU6(dst [16]byte) int {
	if s.ip6.PMTU.Empty() {
		return s.mtu
	}
	if mtu := s.ip6.PMTU.Lookup(s.clk.Now(), dst); mtu > 0 && mtu < s.mtu {
		return mtu
	}
	return s.mtu
}

// putIP6Header writes the IPv6 header of a datagram from src to dst
// carrying n bytes of proto between ports sport and dport into p[:40],
// with the flow's label (RFC 6437 §3, Linux's auto_flowlabels), and
// returns the path MTU to dst, or 0 when src is no longer one of our
// addresses (see putIPHeader).
func (s *Stack) putIP6Header(p []byte, src, dst netip.Addr, proto uint8, n int, sport, dport uint16) int {
	s16, d16 := src.As16(), dst.As16()
	if !src.Is6() || !s.ip6.IsMine(s16) {
		return 0
	}
	s.ip6.PutHeader(p, s16, d16, proto, n, s.ip6.FlowLabel(s16, d16, proto, sport, dport))
	return s.pathMTU6(d16)
}

// queueDatagram6 queues the datagram pkt (a 40-byte header and its
// payload, built by the stack) in a buffer of the caller's, cut into
// fragments when it exceeds mtu: RFC 8200 §4.5, the source fragments, to
// the path MTU (§5).
func (s *Stack) queueDatagram6(ln *lane, pkt header.IPv6, mtu int) {
	if !ipv6.NeedsFragments(pkt, mtu) {
		s.queueCopy(ln, pkt)
		return
	}
	id := s.ip6.FragmentID(s.clk.Now(), pkt.SrcBytes(), pkt.DstBytes())
	for off := 0; ; {
		bp := s.pool.Get().(*[]byte)
		n, next := s.ip6.PutFragment((*bp)[link.Headroom:], pkt, mtu, off, id)
		ln.queue(bp, link.Headroom+n, 0)
		if next == 0 {
			return
		}
		off = next
	}
}

// reply6 queues an echo reply (RFC 4443 §4.2), in fragments if it
// exceeds the path MTU.
func (s *Stack) reply6(ln *lane, now time.Time, h header.IPv6) {
	s.queueDatagram6(ln, h, s.pathMTU6(h.DstBytes()))
}

// sendICMP6Error queues an ICMPv6 error about orig, if RFC 4443 §2.4's
// rules and the rate limit let one go (ipv6.Layer.PutICMPError): at most
// 1280 bytes and the path MTU.
func (s *Stack) sendICMP6Error(ln *lane, now time.Time, orig []byte, typ, code uint8, param uint32) {
	if len(orig) < header.IPv6HeaderLen {
		return
	}
	mtu := s.pathMTU6(header.IPv6(orig).SrcBytes())
	bp := s.pool.Get().(*[]byte)
	b := (*bp)[link.Headroom:]
	n := s.ip6.PutICMPError(now, b[:min(len(b), mtu)], orig, typ, code, param)
	if n == 0 {
		s.pool.Put(bp)
		return
	}
	ln.queue(bp, link.Headroom+n, 0)
}

// udpInput6 hands the UDP datagram of p to its endpoint, or answers with
// ICMPv6 destination unreachable, port unreachable (RFC 4443 §3.1: "if
// the transport protocol has no listener"), rate-limited. The checksum is
// mandatory over IPv6 (RFC 8200 §8.1): udp.Table drops a zero one as bad.
func (s *Stack) udpInput6(ln *lane, now time.Time, p *ipv6.Packet, csumOK bool) {
	if s.udp.Input(p.SrcAddr(), p.DstAddr(), p.Payload(), csumOK) == udp.Unreachable {
		s.sendICMP6Error(ln, now, p.IP, header.ICMPv6DestUnreach, header.ICMPv6PortUnreach, 0)
	}
}

// icmp6Error hands an ICMPv6 error about one of our TCP segments to the
// connection it quotes, as icmpError does for ICMP (RFC 4443 §2.4(b): the
// error goes to the upper-layer process), and returns it; one about a UDP
// datagram goes to udpICMP6Error.
func (s *Stack) icmp6Error(ln *lane, now time.Time, e *ipv6.ICMPError) *Conn {
	if e.Proto == header.ProtoUDP {
		s.udpICMP6Error(now, e)
		return nil
	}
	id := tcp.ID{
		Local:  netip.AddrPortFrom(netip.AddrFrom16(e.Src), e.SrcPort),
		Remote: netip.AddrPortFrom(netip.AddrFrom16(e.Dst), e.DstPort),
	}
	c := s.lockConnForICMP(ln, id)
	if c == nil {
		return nil
	}
	defer c.mu.Unlock()
	seq := seqnum.Value(e.Seq)
	// Linux's tcp_v6_err on a request socket calls tcp_req_err, which
	// drops the request only for the errors icmpv6_err_convert calls
	// fatal (Packet Too Big is not).
	if c.listener != nil && c.tcb.State() == tcp.SynReceived && !e.Fatal {
		s.icmpCnt.Inc(icmpReqIgnored)
		return nil
	}
	var ok bool
	if e.PacketTooBig() {
		ok = s.packetTooBig(now, c, seq, e)
	} else {
		ok = c.tcb.ICMPError(now, seq, e.Errno)
	}
	s.countICMPTaken(ok)
	c.afterLocked()
	return c
}

// packetTooBig takes a Packet Too Big (RFC 8201 §4) for connection c,
// locked: the connection checks the quoted sequence number and lowers its
// MSS to the new path MTU less 60 (never below 1220), then the path MTU
// cache learns it, for new connections to that peer (Linux's
// tcp_v6_mtu_reduced). IPv6 has no DF to clear: the path MTU discovery
// mode does not apply.
func (s *Stack) packetTooBig(now time.Time, c *Conn, seq seqnum.Value, e *ipv6.ICMPError) bool {
	want := min(max(e.MTU, ipv6.MinPMTU), s.pathMTU6(e.Dst))
	if !c.tcb.PathMTU(now, seq, want) {
		return false
	}
	s.learnPMTU6(now, e)
	return true
}

func (s *Stack) learnPMTU6(now time.Time, e *ipv6.ICMPError) {
	if _, changed := s.ip6.PMTU.Update(now, e.Dst, e.MTU, s.mtu); changed {
		s.icmpCnt.Inc(icmpPMTUUpdates)
	}
}

// udpICMP6Error takes an ICMPv6 error quoting a UDP datagram we sent, as
// Linux's __udp6_lib_err does without IPV6_RECVERR: a Packet Too Big
// lowers the path MTU whoever sent the datagram and is a hard error
// (EMSGSIZE) unless the mode is "dont"; the errors icmpv6_err_convert
// calls fatal (port unreachable: ECONNREFUSED, ...) become the pending
// error of the connected socket that sent the datagram; the rest, and
// errors about an unconnected socket, are ignored.
func (s *Stack) udpICMP6Error(now time.Time, e *ipv6.ICMPError) {
	hard := e.Fatal
	if e.PacketTooBig() {
		s.learnPMTU6(now, e)
		hard = s.opts.PMTUDiscovery != ipv4.PMTUDiscDont
	}
	local := netip.AddrPortFrom(netip.AddrFrom16(e.Src), e.SrcPort)
	remote := netip.AddrPortFrom(netip.AddrFrom16(e.Dst), e.DstPort)
	ep := s.udp.Connected(local, remote)
	if ep == nil || !hard {
		s.icmpCnt.Inc(icmpUDPIgnored)
		return
	}
	ep.SetError(e.Errno)
	s.icmpCnt.Inc(icmpToConn)
}
