package ipv4

import (
	"fmt"
	"net/netip"
)

// addrTable is one immutable snapshot of the layer's addresses, swapped
// whole by SetAddrs so that Input reads it with one atomic load and no
// lock.
type addrTable struct {
	local []([4]byte) // ours, in the order given (the first is the primary)
	bcast []([4]byte) // directed broadcast addresses of their subnets
}

// has reports whether a is in set. The sets are a host's few addresses: a
// linear scan beats a map until dozens.
func has(set [][4]byte, a [4]byte) bool {
	for _, x := range set {
		if x == a {
			return true
		}
	}
	return false
}

// SetAddrs replaces the layer's addresses with those of prefixes, each an
// address of ours and the length of its subnet, as `ip addr add
// 198.18.0.2/30` gives them (a /32 for an address alone). The last address
// of a subnet of /30 or wider is its directed broadcast address (RFC 919,
// RFC 922), which Input drops and counts as not unicast. It fails, changing
// nothing, on an address that is not IPv4 (or IPv4-mapped) or is not a
// unicast address a host may have (RFC 1122 §3.2.1.3: not 0.0.0.0,
// broadcast, multicast or loopback). An empty list leaves the layer no
// address: every datagram is then not for us. Safe to call while Input runs.
func (l *Layer) SetAddrs(prefixes []netip.Prefix) error {
	t := &addrTable{}
	for _, p := range prefixes {
		a := p.Addr().Unmap()
		if !a.Is4() {
			return fmt.Errorf("ipv4: %v is not an IPv4 address", p.Addr())
		}
		b := a.As4()
		if badSource(b) {
			return fmt.Errorf("ipv4: %v is not a unicast address a host may have", a)
		}
		if !has(t.local, b) {
			t.local = append(t.local, b)
		}
		bits := p.Bits()
		if bits > 32 { // a mapped prefix's length counts the 96 bits before
			bits -= 96
		}
		if bits >= 0 && bits <= 30 {
			bc := netip.PrefixFrom(a, bits).Masked().Addr().As4()
			for i := bits; i < 32; i++ {
				bc[i/8] |= 0x80 >> (i % 8)
			}
			if !has(t.bcast, bc) {
				t.bcast = append(t.bcast, bc)
			}
		}
	}
	l.addrs.Store(t)
	return nil
}

// IsLocal reports whether a is one of the layer's addresses: one atomic
// load, no lock.
func (l *Layer) IsLocal(a [4]byte) bool { return has(l.addrs.Load().local, a) }

// Addrs returns the layer's addresses, the primary first.
func (l *Layer) Addrs() []netip.Addr {
	t := l.addrs.Load()
	out := make([]netip.Addr, len(t.local))
	for i, a := range t.local {
		out[i] = netip.AddrFrom4(a)
	}
	return out
}

// notUnicast reports a destination no host address of ours is: limited
// broadcast, multicast (RFC 1112 §4: we join no group), or a directed
// broadcast of one of our subnets.
func (t *addrTable) notUnicast(dst [4]byte) bool {
	return dst == [4]byte{255, 255, 255, 255} || dst[0]&0xf0 == 224 || has(t.bcast, dst)
}

// NotUnicast reports whether dst is a broadcast (limited, or directed for
// one of the layer's subnets) or multicast address: the stack refuses to
// send to those (Linux: EACCES without SO_BROADCAST; we have no
// SO_BROADCAST and join no multicast group).
func (l *Layer) NotUnicast(dst [4]byte) bool { return l.addrs.Load().notUnicast(dst) }
