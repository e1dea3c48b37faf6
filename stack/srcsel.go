package stack

import "net/netip"

// SelectSource chooses the source address for a packet to dst among
// candidates (the stack's addresses, each with its subnet length), by the
// rules of RFC 6724 §5 that apply to a host with one interface and no
// address lifetimes:
//
//   - only addresses of dst's family are candidates (RFC 6724 §4 treats
//     IPv4 as IPv4-mapped: an IPv4 source never wins for an IPv6
//     destination under rule 6, and we cannot send across families);
//   - rule 1: prefer the same address as dst;
//   - rule 2: prefer the appropriate scope (RFC 6724 §3.1);
//   - rule 6: prefer a label matching dst's (the default policy table of
//     §2.1);
//   - rule 8: prefer the longest prefix in common with dst, compared up to
//     the length of the candidate's subnet (an IPv6 address given alone
//     counts as a /64, its usual subnet);
//   - otherwise the first candidate, in the order the addresses were added.
//
// Rules 3 (deprecated addresses), 4 (home addresses), 5 (outgoing
// interface) and 7 (temporary addresses) have nothing to compare here.
// ok is false when no candidate is of dst's family.
func SelectSource(dst netip.Addr, candidates []netip.Prefix) (src netip.Addr, ok bool) {
	dst = dst.Unmap()
	var best netip.Prefix
	for _, c := range candidates {
		if c.Addr().Unmap().Is4() != dst.Is4() {
			continue
		}
		if !ok || preferSource(c, best, dst) {
			best, ok = c, true
		}
	}
	return best.Addr().Unmap(), ok
}

// preferSource reports whether candidate a is preferred over b as the
// source towards dst (RFC 6724 §5); false on a tie, so the first stays.
func preferSource(a, b netip.Prefix, dst netip.Addr) bool {
	sa, sb := a.Addr().Unmap(), b.Addr().Unmap()
	// Rule 1: prefer same address.
	if sa == dst || sb == dst {
		return sa == dst && sb != dst
	}
	// Rule 2: "If Scope(SA) < Scope(SB): If Scope(SA) < Scope(D), then
	// prefer SB and otherwise prefer SA", and symmetrically.
	ca, cb, cd := addrScope(sa), addrScope(sb), addrScope(dst)
	if ca < cb {
		return ca >= cd
	}
	if cb < ca {
		return cb < cd
	}
	// Rule 6: prefer matching label.
	la, lb, ld := policyLabel(sa), policyLabel(sb), policyLabel(dst)
	if (la == ld) != (lb == ld) {
		return la == ld
	}
	// Rule 8: use longest matching prefix.
	return commonPrefixLen(a, dst) > commonPrefixLen(b, dst)
}

// Scope values (RFC 4007 §4, RFC 6724 §3.1).
const (
	scopeLinkLocal = 0x2
	scopeSiteLocal = 0x5
	scopeGlobal    = 0xe
)

// addrScope is an address's scope as RFC 6724 §3.1 and §3.2 assign it:
// a multicast address's own scope field; link-local for fe80::/10, the
// loopback address, 169.254/16 and 127/8; site-local for the deprecated
// fec0::/10; global for the rest (unique local addresses included).
func addrScope(a netip.Addr) int {
	if a.Is4() {
		b := a.As4()
		if b[0] == 127 || b[0] == 169 && b[1] == 254 {
			return scopeLinkLocal
		}
		return scopeGlobal
	}
	b := a.As16()
	switch {
	case b[0] == 0xff:
		return int(b[1] & 0x0f)
	case a.IsLinkLocalUnicast() || a.IsLoopback():
		return scopeLinkLocal
	case b[0] == 0xfe && b[1]&0xc0 == 0xc0:
		return scopeSiteLocal
	}
	return scopeGlobal
}

// policyTable is RFC 6724 §2.1's default policy table: prefix and label
// (precedence is for destination selection, which a host with one
// destination per connection does not do).
var policyTable = []struct {
	p     netip.Prefix
	label int
}{
	{netip.MustParsePrefix("::1/128"), 0},
	{netip.MustParsePrefix("::ffff:0:0/96"), 4},
	{netip.MustParsePrefix("2001::/32"), 5},
	{netip.MustParsePrefix("2002::/16"), 2},
	{netip.MustParsePrefix("3ffe::/16"), 12},
	{netip.MustParsePrefix("fec0::/10"), 11},
	{netip.MustParsePrefix("fc00::/7"), 13},
	{netip.MustParsePrefix("::/96"), 3},
	{netip.MustParsePrefix("::/0"), 1},
}

// policyLabel is the label of the longest matching prefix of the policy
// table (the table is in decreasing prefix length); IPv4 addresses match
// as IPv4-mapped (RFC 6724 §2.1).
func policyLabel(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	for _, e := range policyTable {
		if e.p.Contains(a) {
			return e.label
		}
	}
	return 1
}

// commonPrefixLen is RFC 6724 §2.2's CommonPrefixLen(S, D): the leading
// bits S and D share, up to the length of S's subnet (64 for an IPv6
// address given alone).
func commonPrefixLen(s netip.Prefix, d netip.Addr) int {
	limit := s.Bits()
	sa := s.Addr().Unmap()
	if sa.Is6() && (limit < 0 || limit == 128) {
		limit = 64
	}
	if limit < 0 {
		limit = sa.BitLen()
	}
	if sa.Is4() != d.Is4() {
		return 0
	}
	x, y := sa.As16(), d.Unmap().As16()
	n := 0
	for i := range x {
		if v := x[i] ^ y[i]; v != 0 {
			for v&0x80 == 0 {
				n++
				v <<= 1
			}
			break
		}
		n += 8
	}
	if sa.Is4() {
		n -= 96 // both IPv4: their mapped forms share the 96-bit prefix
	}
	return min(n, limit)
}
