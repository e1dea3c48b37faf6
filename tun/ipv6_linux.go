package tun

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrIPv6Disabled is returned (wrapped) by Open when Config.HostAddr6 is
// set but the kernel has IPv6 turned off: no IPv6 at all (ipv6.disable=1
// on its command line, no /proc/sys/net/ipv6), or disabled on the device
// by net.ipv6.conf.all.disable_ipv6. Callers may retry without HostAddr6.
var ErrIPv6Disabled = errors.New("IPv6 is disabled in this kernel")

// MinMTU6 is IPv6's minimum link MTU (RFC 8200 §5).
const MinMTU6 = 1280

// checkHostAddr6 checks Config.HostAddr6, if set: an IPv6 unicast address
// with a prefix that leaves room for the stack's address.
func checkHostAddr6(cfg Config) error {
	h := cfg.HostAddr6
	switch {
	case h == netip.Prefix{}:
		return nil
	case !h.IsValid() || !h.Addr().Is6() || h.Addr().Is4In6():
		return fmt.Errorf("TUN device %q: IPv6 host address %v: need an IPv6 address with prefix, e.g. 2001:2::1/64", cfg.Name, h)
	case h.Addr().IsMulticast() || h.Addr().IsUnspecified() || h.Addr().IsLoopback() || h.Addr().IsLinkLocalUnicast():
		return fmt.Errorf("TUN device %q: IPv6 host address %v: need a global or unique-local unicast address, e.g. 2001:2::1/64", cfg.Name, h)
	case h.Bits() > 127:
		return fmt.Errorf("TUN device %q: IPv6 host address %v: a /128 leaves no address for the stack; use e.g. %v/64", cfg.Name, h, h.Addr())
	case cfg.MTU < MinMTU6:
		// Linux turns IPv6 off on such a device (addrconf_notify).
		return fmt.Errorf("TUN device %q: IPv6 host address %v: MTU %d is below IPv6's minimum of %d (RFC 8200 §5)", cfg.Name, h, cfg.MTU, MinMTU6)
	}
	return nil
}

// ipv6Conf is the device's directory of IPv6 sysctls. The thread is locked
// in Open, so /proc/sys/net is this namespace's.
func (d *Device) ipv6Conf(name string) string {
	return filepath.Join("/proc/sys/net/ipv6/conf", d.name, name)
}

// configureIPv6 runs before the link comes up. Without HostAddr6 it turns
// IPv6 off on the device (best effort: there is no IPv6 sysctl tree if
// IPv6 is disabled), which keeps router solicitations and MLD reports out
// of an IPv4 link.
//
// With HostAddr6 the device carries IPv6, but the kernel adds nothing of
// its own: no link-local address (addr_gen_mode 1, "none"), so no router
// solicitations (RFC 4861 §6.3.7 needs a source address; router_solicitations
// 0 besides) and no autoconfiguration from router advertisements
// (accept_ra 0). The host address skips duplicate address detection
// (IFA_F_NODAD, and accept_dad 0): on a point-to-point link to the stack
// there is nobody to collide with, and it is usable within a millisecond
// instead of after DAD's second or so (RFC 4862 §5.4; see waitLocal6).
// The kernel still sends MLD
// reports for the groups it joins (RFC 3810), which the stack ignores.
func (d *Device) configureIPv6(l netlink.Link) error {
	if !d.host6.IsValid() {
		_ = os.WriteFile(d.ipv6Conf("disable_ipv6"), []byte("1"), 0)
		return nil
	}
	if _, err := os.Stat(d.ipv6Conf("disable_ipv6")); err != nil {
		return fmt.Errorf("configuring TUN device %q: IPv6 host address %v: %w (no %s)", d.name, d.host6, ErrIPv6Disabled, d.ipv6Conf(""))
	}
	for _, s := range []struct{ name, value string }{
		{"addr_gen_mode", "1"},
		{"accept_ra", "0"},
		{"router_solicitations", "0"},
		{"accept_dad", "0"},
		{"disable_ipv6", "0"},
	} {
		if err := os.WriteFile(d.ipv6Conf(s.name), []byte(s.value), 0); err != nil {
			return d.step(fmt.Sprintf("setting net.ipv6.conf.%s.%s = %s", d.name, s.name, s.value), err)
		}
	}
	ipnet := &net.IPNet{IP: d.host6.Addr().AsSlice(), Mask: net.CIDRMask(d.host6.Bits(), 128)}
	err := d.nl.AddrAdd(l, &netlink.Addr{IPNet: ipnet, Flags: unix.IFA_F_NODAD})
	if errors.Is(err, unix.EACCES) {
		// addrconf refuses addresses on a device whose IPv6 is disabled,
		// which net.ipv6.conf.all.disable_ipv6 = 1 may force.
		return fmt.Errorf("configuring TUN device %q: adding address %v: %w (%v; net.ipv6.conf.all.disable_ipv6 is 1?)", d.name, d.host6, ErrIPv6Disabled, err)
	}
	return d.step(fmt.Sprintf("adding address %v", d.host6), err)
}

// checkRoute6 makes sure, once the link is up, that the kernel routes
// HostAddr6's prefix into the device. Adding the address adds that route
// (the prefix route, unless IFA_F_NOPREFIXROUTE); this adds it should
// anything have taken it away.
func (d *Device) checkRoute6() error {
	if !d.host6.IsValid() {
		return nil
	}
	dst := d.host6.Masked()
	filter := &netlink.Route{LinkIndex: d.index, Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 128)}}
	routes, err := d.nl.RouteListFiltered(netlink.FAMILY_V6, filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_DST)
	if err != nil {
		return d.step("listing IPv6 routes", err)
	}
	if len(routes) > 0 {
		return nil
	}
	return d.step(fmt.Sprintf("adding route %v", dst), d.nl.RouteAdd(filter))
}

// localWait6 bounds waitLocal6.
const localWait6 = 2 * time.Second

// waitLocal6 waits, once the link is up, until the kernel takes packets
// addressed to HostAddr6. Even without DAD the kernel completes a new
// address in its address-configuration work queue after the link comes
// up (addrconf_dad_work, then addrconf_dad_completed), and only then adds
// the address's route to the local table: until that moment the address
// is already a source for the kernel's packets, but a packet to it is
// dropped (Ip6InAddrErrors) — the SYN+ACK to a connect made at once, which
// then waits a second for the SYN's retransmission. An IPv4 address is
// local as soon as it is added.
func (d *Device) waitLocal6() error {
	if !d.host6.IsValid() {
		return nil
	}
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Dst: &net.IPNet{IP: d.host6.Addr().AsSlice(), Mask: net.CIDRMask(128, 128)}}
	deadline := time.Now().Add(localWait6)
	for {
		routes, err := d.nl.RouteListFiltered(netlink.FAMILY_V6, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
		if err != nil {
			return d.step("listing IPv6 local routes", err)
		}
		if len(routes) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("configuring TUN device %q: the kernel did not make %v local within %v (no route in its local table)", d.name, d.host6.Addr(), localWait6)
		}
		time.Sleep(time.Millisecond)
	}
}
