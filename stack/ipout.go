package stack

import (
	"net/netip"
	"sync"
	"time"

	"ustack/stack/clock"
	"ustack/stack/header"
	"ustack/stack/ipv4"
	"ustack/stack/link"
)

// The network layer's side of the stack: DF and fragments on the way out,
// the reassembly timer and the ICMP errors it sends.

// ipHeaderLen is the length of the IP header the stack writes towards dst:
// 20 for IPv4, which it sends without options.
func ipHeaderLen(dst netip.Addr) int {
	if dst.Is4() {
		return header.IPv4MinHeaderLen
	}
	return ipv6HeaderLen
}

// ipv6HeaderLen is the fixed IPv6 header (RFC 8200 §3), the only one the
// stack writes (no extension header but a fragment's, ip6.go).
const ipv6HeaderLen = header.IPv6HeaderLen

// putIPHeader writes the IP header of a datagram from src to dst carrying
// n bytes of proto into p[:ipHeaderLen(dst)] and returns the path MTU to
// dst, or 0 when the datagram cannot be sent: src is no longer one of our
// addresses (RFC 1122 §3.3.4.2: a host's datagrams carry one of its own
// addresses as source; see addrSet for what a removed address means), or
// its family has no layer. DF follows the path MTU discovery mode; with
// mayFrag, a datagram over the path MTU in mode "want" goes with DF clear,
// to be fragmented, as Linux's __ip_make_skb sets DF on a UDP datagram only
// when it fits. With no path MTU learned and DF wanted (the usual case),
// it costs three atomic loads and a scan of the stack's few addresses.
func (s *Stack) putIPHeader(p []byte, src, dst netip.Addr, proto uint8, n int, mode ipv4.PMTUDisc, mayFrag bool) int {
	if !dst.Is4() || !src.Is4() {
		return 0
	}
	s4, d4 := src.As4(), dst.As4()
	if !s.ip.IsLocal(s4) {
		return 0
	}
	size := header.IPv4MinHeaderLen + n
	if mode != ipv4.PMTUDiscDont && s.ip.PMTU.Empty() && (!mayFrag || size <= s.mtu) {
		s.ip.PutHeader(p, s4, d4, proto, n)
		return s.mtu
	}
	now := s.clk.Now()
	mtu, locked := s.pathMTU(now, d4)
	if mode.DF(locked) && !(mayFrag && mode == ipv4.PMTUDiscWant && size > mtu) {
		s.ip.PutHeader(p, s4, d4, proto, n)
	} else {
		s.ip.PutHeaderNoDF(now, p, s4, d4, proto, n)
	}
	return mtu
}

// pathMTU is the MTU towards dst: the link's, or less if learned (RFC
// 1191), and whether it is locked below ipv4.MinPMTU.
func (s *Stack) pathMTU(now time.Time, dst [4]byte) (int, bool) {
	mtu, locked := s.ip.PMTU.Lookup(now, dst)
	if mtu == 0 || mtu > s.mtu {
		return s.mtu, false
	}
	return mtu, locked
}

// queueDatagram queues the datagram pkt, built in a buffer of the caller's,
// cut into fragments when it exceeds mtu and its DF is clear (RFC 791
// §3.2); one over the link MTU with DF set is dropped and counted.
func (s *Stack) queueDatagram(ln *lane, pkt header.IPv4, mtu int) {
	if len(pkt) <= mtu {
		s.queueCopy(ln, pkt)
		return
	}
	if !ipv4.NeedsFragments(pkt, mtu) || pkt.HeaderLen() != header.IPv4MinHeaderLen {
		if len(pkt) > s.mtu {
			s.icmpCnt.Inc(icmpTooBig)
			return
		}
		s.queueCopy(ln, pkt)
		return
	}
	for off := 0; ; {
		bp := s.pool.Get().(*[]byte)
		n, next := s.ip.PutFragment((*bp)[link.Headroom:], pkt, mtu, off)
		ln.queue(bp, link.Headroom+n, 0)
		if next == 0 {
			return
		}
		off = next
	}
}

// reply queues an echo reply (DF clear, as Linux's), in fragments if it
// exceeds the path MTU.
func (s *Stack) reply(ln *lane, now time.Time, h header.IPv4) {
	mtu, _ := s.pathMTU(now, h.DstBytes())
	s.queueDatagram(ln, h, mtu)
}

// sendICMPError queues an ICMP error about orig, if the rules and the rate
// limit let one go (ipv4.Layer.PutICMPError). Its size is at most 576 and
// the path MTU, as Linux's icmp_send.
func (s *Stack) sendICMPError(ln *lane, now time.Time, orig header.IPv4, typ, code uint8) {
	if len(orig) < header.IPv4MinHeaderLen {
		return
	}
	mtu, _ := s.pathMTU(now, orig.SrcBytes())
	bp := s.pool.Get().(*[]byte)
	b := (*bp)[link.Headroom:]
	n := s.ip.PutICMPError(now, b[:min(len(b), mtu)], orig, typ, code)
	if n == 0 {
		s.pool.Put(bp)
		return
	}
	ln.queue(bp, link.Headroom+n, 0)
}

// fragTimer is the reassembly timeout's one clock timer, armed for the
// oldest queue. mu is a leaf lock.
type fragTimer struct {
	mu      sync.Mutex
	t       clock.Timer
	at      time.Time // when t fires; zero if idle
	stopped bool
}

// fragmentsHeld runs after Input kept a fragment: time-exceeded messages
// for queues that ran out meanwhile, and the timer for the oldest one.
func (s *Stack) fragmentsHeld(ln *lane, now time.Time) {
	s.sendTimeExceeded(ln, now)
	s.armFragTimer(now)
}

// sendTimeExceeded sends ICMP time exceeded, code 1, for each datagram
// whose reassembly timed out with its first fragment in (RFC 792; Linux's
// ip_expire), and its ICMPv6 counterpart, code 1 (RFC 8200 §4.5: "an ICMP
// Time Exceeded -- Fragment Reassembly Time Exceeded message").
func (s *Stack) sendTimeExceeded(ln *lane, now time.Time) {
	for _, q := range s.ip.TakeExpired() {
		s.sendICMPError(ln, now, q, header.ICMPTimeExceeded, header.ICMPFragTimeExceeded)
	}
	for _, q := range s.ip6.TakeExpired() {
		s.sendICMP6Error(ln, now, q, header.ICMPv6TimeExceeded, header.ICMPv6FragTimeExceeded, 0)
	}
}

// armFragTimer arms the one timer for the reassembly queue, of either
// family, that expires first.
func (s *Stack) armFragTimer(now time.Time) {
	next := s.ip.NextFragmentExpiry()
	if n6 := s.ip6.NextFragmentExpiry(); !n6.IsZero() && (next.IsZero() || n6.Before(next)) {
		next = n6
	}
	if next.IsZero() {
		return
	}
	ft := &s.frag
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if ft.stopped || (!ft.at.IsZero() && !next.Before(ft.at)) {
		return
	}
	ft.at = next
	d := max(next.Sub(now), 0)
	if ft.t == nil {
		ft.t = s.clk.AfterFunc(d, s.fragTimerFire)
	} else {
		ft.t.Reset(d)
	}
}

func (s *Stack) fragTimerFire() {
	s.frag.mu.Lock()
	s.frag.at = time.Time{}
	stopped := s.frag.stopped
	s.frag.mu.Unlock()
	if stopped {
		return
	}
	now := s.clk.Now()
	s.ip.ExpireFragments(now)
	s.ip6.ExpireFragments(now)
	// The reassembly timer is the stack's, not a lane's: its errors go
	// out on the first lane.
	s.sendTimeExceeded(s.lanes[0], now)
	s.lanes[0].flush()
	s.armFragTimer(now)
}

func (s *Stack) stopFragTimer() {
	s.frag.mu.Lock()
	defer s.frag.mu.Unlock()
	s.frag.stopped = true
	if s.frag.t != nil {
		s.frag.t.Stop()
	}
}

// startMSS lowers a new connection's MSS (from its configuration) to what a path MTU learned for
// its peer allows, as Linux's tcp_connect_init and the MSS it advertises do
// (the route's MTU includes the learned one). Over IPv6 the headers take
// 60 bytes of the MTU, not 40 (RFC 8200 §8.3), and a path MTU is never
// below 1280, so neither is the MSS below 1220.
func (s *Stack) startMSS(mss int, dst netip.Addr) int {
	if dst.Is4() {
		if mtu, _ := s.ip.PMTU.Lookup(s.clk.Now(), dst.As4()); mtu > 0 && mss > mtu-40 {
			return mtu - 40
		}
		return mss
	}
	mtu := s.pathMTU6(dst.As16())
	return min(mss, mtu-ipv6HeaderLen-header.TCPMinHeaderLen)
}

// queueCopy queues a copy of an already built packet.
func (s *Stack) queueCopy(ln *lane, pkt []byte) {
	bp := s.pool.Get().(*[]byte)
	copy((*bp)[link.Headroom:], pkt)
	ln.queue(bp, link.Headroom+len(pkt), 0)
}

// useOffload takes the link's offloads (TSO, whole super-packets on read,
// checksum offload) if it has them and the stack may: never in Manual
// mode, whose deterministic runs see one packet per segment.
func (s *Stack) useOffload(ep link.Endpoint) {
	o, ok := ep.(link.Offloader)
	if !ok || s.opts.NoOffload || s.opts.Manual || o.OffloadMaxSize() <= s.mtu {
		return
	}
	s.off = o
	size := min(o.OffloadMaxSize(), link.MaxPacket)
	// Room for the largest IP and TCP headers.
	s.tsoMax = size - 60 - header.TCPMaxHeaderLen
	s.bigPool.New = func() any { b := make([]byte, link.Headroom+size); return &b }
}
