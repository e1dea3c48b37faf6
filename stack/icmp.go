package stack

import (
	"net/netip"
	"time"

	"ustack/stack/counter"
	"ustack/stack/header"
	"ustack/stack/ipv4"
	"ustack/stack/seqnum"
	"ustack/stack/tcp"
)

// icmpEvent counts what became of the ICMP and ICMPv6 errors the IPv4 and
// IPv6 layers handed up (DeliverICMPError), and datagrams the stack could
// not send.
type icmpEvent uint8

const (
	icmpToConn      icmpEvent = iota // taken by a connection
	icmpNoConn                       // quoting no connection of ours (Linux: ICMP_MIB_INERRORS)
	icmpOutOfWindow                  // quoted sequence number not outstanding (RFC 5927 §4.1)
	icmpReqIgnored                   // about a passive connection in SYN-RECEIVED, not fatal to it (Linux's tcp_req_err)
	icmpPMTUUpdates                  // "fragmentation needed" or Packet Too Big that lowered a path MTU
	icmpTooBig                       // datagrams over the link MTU with DF set, not sent
	icmpUDPIgnored                   // about UDP: soft, or for an unconnected socket (Linux without IP_RECVERR)
	numICMPEvents
)

var icmpEventNames = [numICMPEvents]string{
	icmpToConn: "errors_to_conn", icmpNoConn: "errors_no_conn", icmpOutOfWindow: "errors_out_of_window",
	icmpReqIgnored: "errors_req_ignored", icmpPMTUUpdates: "pmtu_updates", icmpTooBig: "too_big_not_sent",
	icmpUDPIgnored: "errors_udp_ignored",
}

func (e icmpEvent) String() string { return counter.Name(icmpEventNames[:], e, "icmp") }

// icmpError hands an ICMP error about one of our TCP segments (RFC 1122
// §4.2.3.9) to the connection it quotes: local = the quoted source address
// and port, remote = the quoted destination address and port. It returns
// the connection, or nil. An error about a UDP datagram goes to
// udpICMPError.
func (s *Stack) icmpError(ln *lane, now time.Time, h header.IPv4) *Conn {
	e, why := s.ip.ParseICMPError(h)
	if why != 0 {
		return nil // Input checked it already
	}
	if e.Proto == header.ProtoUDP {
		s.udpICMPError(now, &e)
		return nil
	}
	id := tcp.ID{
		Local:  netip.AddrPortFrom(netip.AddrFrom4(e.Src), e.SrcPort),
		Remote: netip.AddrPortFrom(netip.AddrFrom4(e.Dst), e.DstPort),
	}
	c := s.lockConnForICMP(ln, id)
	if c == nil {
		return nil
	}
	defer c.mu.Unlock()
	seq := seqnum.Value(e.Seq)
	// Linux's tcp_v4_err on a request socket (a passive open in
	// SYN-RECEIVED) calls tcp_req_err, which drops the request only for
	// net or host unreachable, time exceeded and parameter problem, and
	// ignores the rest, "fragmentation needed" included. RFC 1122
	// §4.2.3.9 lets TCP choose: soft errors "SHOULD NOT" abort.
	if c.listener != nil && c.tcb.State() == tcp.SynReceived && !abortsRequest(&e) {
		s.icmpCnt.Inc(icmpReqIgnored)
		return nil
	}
	var ok bool
	if e.FragNeeded() {
		ok = s.fragNeeded(now, c, seq, &e)
	} else {
		ok = c.tcb.ICMPError(now, seq, e.Errno)
	}
	s.countICMPTaken(ok)
	c.afterLocked()
	return c
}

// lockConnForICMP finds the connection id an ICMP or ICMPv6 error quotes
// and returns it locked, or nil (counted) when there is none. What it
// sends from now on goes out on ln, the lane the error came in on.
func (s *Stack) lockConnForICMP(ln *lane, id tcp.ID) *Conn {
	s.mu.RLock()
	c := s.conns[keyOf(id)]
	s.mu.RUnlock()
	if c == nil {
		s.icmpCnt.Inc(icmpNoConn)
		return nil
	}
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		s.icmpCnt.Inc(icmpNoConn)
		return nil
	}
	c.lnIdx = uint8(ln.idx)
	return c
}

// countICMPTaken counts an error a connection took, or refused for its
// quoted sequence number (RFC 5927 §4.1).
func (s *Stack) countICMPTaken(ok bool) {
	if ok {
		s.icmpCnt.Inc(icmpToConn)
	} else {
		s.icmpCnt.Inc(icmpOutOfWindow)
	}
}

// abortsRequest is tcp_v4_err's test for a request socket.
func abortsRequest(e *ipv4.ICMPError) bool {
	switch e.Type {
	case header.ICMPParamProblem, header.ICMPTimeExceeded:
		return true
	case header.ICMPDestUnreach:
		return e.Code == 0 || e.Code == 1
	}
	return false
}

// fragNeeded takes a "fragmentation needed" (RFC 1191 §6.2) for connection
// c, locked: the connection checks the quoted sequence number, then the
// path MTU cache learns the new MTU (Linux's tcp_v4_mtu_reduced and
// __ip_rt_update_pmtu), which new connections to that peer start with. In
// mode "dont" the cache learns it (the datagrams are then cut to it) but
// the connection keeps its segment size, as Linux does; divergence: the
// sequence number is then not checked.
func (s *Stack) fragNeeded(now time.Time, c *Conn, seq seqnum.Value, e *ipv4.ICMPError) bool {
	dst := e.Dst
	if s.modeFor(c.tcb.ID) == ipv4.PMTUDiscDont {
		if _, changed := s.ip.PMTU.Update(now, dst, e.MTU, s.mtu); changed {
			s.icmpCnt.Inc(icmpPMTUUpdates)
		}
		return true
	}
	// What the cache would hold, for the connection to check first.
	want := max(e.MTU, ipv4.MinPMTU)
	if cur, _ := s.pathMTU(now, dst); want > cur {
		want = cur
	}
	if !c.tcb.PathMTU(now, seq, want) {
		return false
	}
	if _, changed := s.ip.PMTU.Update(now, dst, e.MTU, s.mtu); changed {
		s.icmpCnt.Inc(icmpPMTUUpdates)
	}
	return true
}
