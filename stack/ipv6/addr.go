package ipv6

import (
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
)

// addrSet is the layer's addresses, replaced whole on each change so that
// Input reads it with one atomic load.
type addrSet struct {
	addrs [][16]byte
}

// allNodes is ff02::1, the link-local all-nodes group (RFC 4291 §2.7.1).
var allNodes = [16]byte{0xff, 0x02, 15: 1}

// AddAddr gives the layer one more address. RFC 4291: it must be a unicast
// IPv6 address, neither unspecified (§2.5.2), loopback (§2.5.3),
// IPv4-mapped (§2.5.5.2) nor multicast (§2.7). A zone is ignored.
func (l *Layer) AddAddr(a netip.Addr) error {
	if !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
		return fmt.Errorf("ipv6: %v is not a unicast IPv6 address", a)
	}
	b := a.As16()
	l.addrMu.Lock()
	defer l.addrMu.Unlock()
	old := l.addrs.Load()
	if slices.Contains(old.addrs, b) {
		return nil
	}
	l.addrs.Store(&addrSet{addrs: append(slices.Clip(old.addrs), b)})
	return nil
}

// RemoveAddr takes an address away; it reports whether the layer had it.
// Reassembly queues and path MTUs are left to expire.
func (l *Layer) RemoveAddr(a netip.Addr) bool {
	b := a.As16()
	l.addrMu.Lock()
	defer l.addrMu.Unlock()
	old := l.addrs.Load()
	i := slices.Index(old.addrs, b)
	if i < 0 {
		return false
	}
	l.addrs.Store(&addrSet{addrs: slices.Delete(slices.Clone(old.addrs), i, i+1)})
	return true
}

// Addrs lists the layer's addresses, in the order they were added.
func (l *Layer) Addrs() []netip.Addr {
	set := l.addrs.Load()
	out := make([]netip.Addr, len(set.addrs))
	for i, a := range set.addrs {
		out[i] = netip.AddrFrom16(a)
	}
	return out
}

// IsMine reports whether a is one of the layer's addresses.
func (l *Layer) IsMine(a [16]byte) bool {
	return slices.Contains(l.addrs.Load().addrs, a)
}

// isGroup reports the multicast groups a host joins for its addresses
// (RFC 4291 §2.8): all-nodes ff02::1 and the solicited-node group
// ff02::1:ffXX:XXXX of each address.
func (l *Layer) isGroup(a [16]byte) bool {
	if a == allNodes {
		return true
	}
	if [13]byte(a[:13]) != [13]byte{0xff, 0x02, 11: 1, 12: 0xff} {
		return false
	}
	for _, m := range l.addrs.Load().addrs {
		if [3]byte(m[13:]) == [3]byte(a[13:]) {
			return true
		}
	}
	return false
}

// SourceFor picks the source address of a datagram to dst: of our
// addresses, the one sharing the longest prefix with dst (RFC 6724 §5 rule
// 8, which also gives rule 2's scope match for link-local destinations
// against fe80::/10), the first added on a tie. ok is false when the layer
// has no address.
func (l *Layer) SourceFor(dst [16]byte) (src [16]byte, ok bool) {
	best := -1
	for _, a := range l.addrs.Load().addrs {
		if n := commonPrefix(a, dst); n > best {
			src, best = a, n
		}
	}
	return src, best >= 0
}

func commonPrefix(a, b [16]byte) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return 128
}

// checkDst classifies a destination: one of ours, one of our groups
// (mcast), or a reason to drop. RFC 4291 §2.5.3 (loopback is never
// received from a link) and §2.7 (scope 0 reserved, scope 1
// interface-local) are taken care of by joining neither: the reasons are
// Linux's ip6_rcv_core's, which counts them as address errors.
func (l *Layer) checkDst(a [16]byte) (mcast bool, why Reason) {
	if a[0] == 0xff {
		if l.isGroup(a) {
			return true, 0
		}
		return false, MulticastDropped
	}
	if !l.IsMine(a) {
		return false, NotForUs
	}
	return false, 0
}

// unicastSource reports whether a may be the source of a packet received
// from the wire, as Linux's ip6_rcv_core and RFC 4291 have it: not
// multicast (§2.7), not loopback (§2.5.3), not unspecified (§2.5.2: the
// unspecified source is for DAD and MLD, which we ignore anyway), and not
// IPv4-mapped (§2.5.5.2; Linux's IP layer lets those through to its
// transports, whose tcp_v6_conn_request drops them: we drop them here, so
// that no IPv6 peer passes for an IPv4 one).
func unicastSource(a [16]byte) bool {
	switch {
	case a[0] == 0xff:
		return false
	case a == [16]byte{15: 1}, a == [16]byte{}:
		return false
	case [12]byte(a[:12]) == [12]byte{10: 0xff, 11: 0xff}:
		return false
	}
	return true
}
