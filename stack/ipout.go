package stack

import (
	"sync"
	"time"

	"ustack/stack/clock"
	"ustack/stack/header"
	"ustack/stack/ipv4"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// The network layer's side of the stack: DF and fragments on the way out,
// the reassembly timer and the ICMP errors it sends.

// putIPHeader writes the IPv4 header of a datagram to dst with n bytes of
// proto into p and returns the path MTU to dst. DF follows the path MTU
// discovery mode. With no path MTU learned and DF wanted (the usual case),
// it costs two atomic loads.
func (s *Stack) putIPHeader(p []byte, dst [4]byte, proto uint8, n int, mode ipv4.PMTUDisc) int {
	if mode != ipv4.PMTUDiscDont && s.ip.PMTU.Empty() {
		s.ip.PutHeader(p, dst, proto, n)
		return s.mtu
	}
	now := s.clk.Now()
	mtu, locked := s.pathMTU(now, dst)
	if mode.DF(locked) {
		s.ip.PutHeader(p, dst, proto, n)
	} else {
		s.ip.PutHeaderNoDF(now, p, dst, proto, n)
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
func (s *Stack) queueDatagram(pkt header.IPv4, mtu int) {
	if len(pkt) <= mtu {
		s.queueCopy(pkt)
		return
	}
	if !ipv4.NeedsFragments(pkt, mtu) || pkt.HeaderLen() != header.IPv4MinHeaderLen {
		if len(pkt) > s.mtu {
			s.icmpCnt.Inc(icmpTooBig)
			return
		}
		s.queueCopy(pkt)
		return
	}
	for off := 0; ; {
		bp := s.pool.Get().(*[]byte)
		n, next := s.ip.PutFragment((*bp)[link.Headroom:], pkt, mtu, off)
		s.queue(bp, link.Headroom+n)
		if next == 0 {
			return
		}
		off = next
	}
}

// reply queues an echo reply (DF clear, as Linux's), in fragments if it
// exceeds the path MTU.
func (s *Stack) reply(now time.Time, h header.IPv4) {
	mtu, _ := s.pathMTU(now, h.DstBytes())
	s.queueDatagram(h, mtu)
}

// sendICMPError queues an ICMP error about orig, if the rules and the rate
// limit let one go (ipv4.Layer.PutICMPError). Its size is at most 576 and
// the path MTU, as Linux's icmp_send.
func (s *Stack) sendICMPError(now time.Time, orig header.IPv4, typ, code uint8) {
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
	s.queue(bp, link.Headroom+n)
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
func (s *Stack) fragmentsHeld(now time.Time) {
	s.sendTimeExceeded(now)
	s.armFragTimer(now)
}

// sendTimeExceeded sends ICMP time exceeded, code 1, for each datagram
// whose reassembly timed out with its first fragment in (RFC 792; Linux's
// ip_expire).
func (s *Stack) sendTimeExceeded(now time.Time) {
	for _, q := range s.ip.TakeExpired() {
		s.sendICMPError(now, q, header.ICMPTimeExceeded, header.ICMPFragTimeExceeded)
	}
}

func (s *Stack) armFragTimer(now time.Time) {
	next := s.ip.NextFragmentExpiry()
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
	s.sendTimeExceeded(now)
	s.flush()
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

// startMSS lowers a new connection's MSS to what a path MTU learned for
// its peer allows, as Linux's tcp_connect_init and the MSS it advertises do
// (the route's MTU includes the learned one).
func (s *Stack) startMSS(cfg *tcp.Config, dst [4]byte) {
	if mtu, _ := s.ip.PMTU.Lookup(s.clk.Now(), dst); mtu > 0 && cfg.MSS > mtu-40 {
		cfg.MSS = mtu - 40
	}
}
