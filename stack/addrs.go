package stack

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"ustack/stack/header"
)

// The stack's addresses. Each is held as a prefix: the address and the
// length of its subnet (a /32 or /128 when given alone), which only the
// directed broadcast address of an IPv4 subnet and source address
// selection's longest match (RFC 6724 §5 rule 8) use.
//
// Removing an address, as Linux's `ip addr del` does, kills nothing:
// connections and sockets bound to it stay, receive nothing more (their
// packets are no longer for us), and cannot send (Linux's route lookup for
// a source that is not local fails; a TCP connection's retransmissions
// then run out and it ends with ETIMEDOUT, a UDP send fails with
// EADDRNOTAVAIL). Adding the address back revives them.
type addrSet struct {
	mu  sync.Mutex                     // serialises changes
	cur atomic.Pointer[[]netip.Prefix] // the snapshot readers load
}

func (a *addrSet) load() []netip.Prefix {
	if p := a.cur.Load(); p != nil {
		return *p
	}
	return nil
}

// normPrefix checks one address (with its subnet length) the stack may
// take and returns it in canonical form: IPv4-mapped addresses as IPv4,
// IPv6 ones without a zone (the stack has one interface).
func normPrefix(p netip.Prefix) (netip.Prefix, error) {
	a := p.Addr()
	if !a.IsValid() {
		return p, errors.New("no address")
	}
	bits := p.Bits()
	if a.Is4In6() {
		a = a.Unmap()
		bits = max(bits-96, -1)
	}
	if bits < 0 {
		bits = a.BitLen()
	}
	if a.Is6() {
		// RFC 4291: unicast, neither unspecified (§2.5.2), loopback
		// (§2.5.3) nor multicast (§2.7).
		a = a.WithZone("")
		if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			return p, fmt.Errorf("%v is not a unicast IPv6 address a host may have (RFC 4291)", a)
		}
		return netip.PrefixFrom(a, bits), nil
	}
	if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return p, fmt.Errorf("%v is not a unicast address a host may have (RFC 1122 §3.2.1.3)", a)
	}
	return netip.PrefixFrom(a, bits), nil
}

// setAddrs installs list as the stack's addresses: the IPv4 and IPv6
// layers' first (so that input accepts them before anything may use them
// as a source), then the stack's. An IPv6 address needs a link MTU of at
// least 1280 (RFC 8200 §5). a.mu is held.
func (s *Stack) setAddrsLocked(list []netip.Prefix) error {
	var v4 []netip.Prefix
	var v6 []netip.Addr
	for _, p := range list {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p.Addr())
		}
	}
	if len(v6) > 0 && s.mtu < header.IPv6MinMTU {
		return fmt.Errorf("%v: the link MTU %d is below IPv6's minimum of %d (RFC 8200 §5)", v6[0], s.mtu, header.IPv6MinMTU)
	}
	if err := s.ip.SetAddrs(v4); err != nil {
		return err
	}
	for _, a := range v6 {
		if err := s.ip6.AddAddr(a); err != nil {
			return err
		}
	}
	for _, a := range s.ip6.Addrs() {
		if !slices.Contains(v6, a) {
			s.ip6.RemoveAddr(a)
		}
	}
	s.addrs.cur.Store(&list)
	return nil
}

// Addrs returns the stack's addresses, in the order they were added.
func (s *Stack) Addrs() []netip.Addr {
	ps := s.addrs.load()
	out := make([]netip.Addr, len(ps))
	for i, p := range ps {
		out[i] = p.Addr()
	}
	return out
}

// Addr is the stack's first address (the invalid Addr if it has none left).
func (s *Stack) Addr() netip.Addr {
	if ps := s.addrs.load(); len(ps) > 0 {
		return ps[0].Addr()
	}
	return netip.Addr{}
}

// AddAddr gives the stack one more address, at once: input accepts
// packets to it, listeners on all addresses take connections to it, and
// source address selection may choose it. Adding an address the stack has
// is an error (EEXIST, as `ip addr add` says).
func (s *Stack) AddAddr(a netip.Addr) error {
	return s.AddPrefix(netip.PrefixFrom(a, -1))
}

// AddPrefix is AddAddr for an address with its subnet, as `ip addr add
// 198.18.0.2/30`: the subnet's directed broadcast address (IPv4, /30 and
// wider) is then refused as a destination and dropped on input, and
// source address selection prefers the address for destinations in it.
func (s *Stack) AddPrefix(p netip.Prefix) error {
	if p.Bits() < 0 && p.Addr().IsValid() {
		p = netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
	}
	p, err := normPrefix(p)
	if err != nil {
		return fmt.Errorf("stack: add address: %w", err)
	}
	s.addrs.mu.Lock()
	defer s.addrs.mu.Unlock()
	cur := s.addrs.load()
	if slices.ContainsFunc(cur, func(q netip.Prefix) bool { return q.Addr() == p.Addr() }) {
		return fmt.Errorf("stack: add address %v: %w", p.Addr(), syscall.EEXIST)
	}
	return s.setAddrsLocked(append(slices.Clip(cur), p))
}

// RemoveAddr takes an address from the stack. What is bound to it stays
// (see addrSet): connections fail to send and time out, sockets receive
// nothing, listeners on it accept nothing, until it is added back. Removing
// an address the stack does not have is an error (EADDRNOTAVAIL).
func (s *Stack) RemoveAddr(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	s.addrs.mu.Lock()
	defer s.addrs.mu.Unlock()
	cur := s.addrs.load()
	i := slices.IndexFunc(cur, func(q netip.Prefix) bool { return q.Addr() == a })
	if i < 0 {
		return fmt.Errorf("stack: remove address %v: %w", a, syscall.EADDRNOTAVAIL)
	}
	return s.setAddrsLocked(slices.Delete(slices.Clone(cur), i, i+1))
}

// hasAddr reports whether a is one of the stack's addresses: one atomic
// load and a scan of a few entries.
func (s *Stack) hasAddr(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range s.addrs.load() {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// checkLocal checks an address to bind to: the stack's, or unspecified
// (all addresses, returned as the invalid Addr). Linux's bind answers
// EADDRNOTAVAIL for an address that is not local.
func (s *Stack) checkLocal(a netip.Addr) (netip.Addr, error) {
	if !a.IsValid() || a.IsUnspecified() {
		return netip.Addr{}, nil
	}
	a = a.Unmap().WithZone("")
	if !s.hasAddr(a) {
		return a, fmt.Errorf("%v is not an address of this stack: %w", a, syscall.EADDRNOTAVAIL)
	}
	return a, nil
}

// sourceFor chooses the source address for a connection or datagram to
// dst among the stack's addresses (RFC 6724 §5); EADDRNOTAVAIL if none
// fits (no address of dst's family).
func (s *Stack) sourceFor(dst netip.Addr) (netip.Addr, error) {
	a, ok := SelectSource(dst.Unmap(), s.addrs.load())
	if !ok {
		return a, fmt.Errorf("no address of this stack can reach %v: %w", dst, syscall.EADDRNOTAVAIL)
	}
	return a, nil
}

// initialAddrs gathers the addresses of opts, Addr first, each once, and
// sets Addr to the primary one.
func initialAddrs(opts *Options) ([]netip.Prefix, error) {
	var in []netip.Prefix
	if opts.Addr.IsValid() {
		in = append(in, netip.PrefixFrom(opts.Addr, opts.Addr.BitLen()))
	}
	for _, a := range opts.Addrs {
		in = append(in, netip.PrefixFrom(a, a.BitLen()))
	}
	in = append(in, opts.Prefixes...)
	var out []netip.Prefix
	for _, p := range in {
		p, err := normPrefix(p)
		if err != nil {
			return nil, fmt.Errorf("stack: address: %w", err)
		}
		if i := slices.IndexFunc(out, func(q netip.Prefix) bool { return q.Addr() == p.Addr() }); i >= 0 {
			if p.Bits() < out[i].Bits() { // the one with its subnet wins
				out[i] = p
			}
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("stack: no address: set Options.Addr, Addrs or Prefixes")
	}
	opts.Addr = out[0].Addr()
	return out, nil
}

// udpSeed derives the UDP table's ephemeral-port key from the stack's
// seed, so that New reads no more randomness than it did.
func udpSeed(seed [16]byte) [32]byte {
	var k [32]byte
	copy(k[:], seed[:])
	copy(k[16:], seed[:])
	k[31] ^= 0x5a
	return k
}
