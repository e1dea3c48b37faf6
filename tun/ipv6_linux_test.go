package tun

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Network safety: the IPv6 addresses of these tests are in 2001:2::/48
// (RFC 5180's benchmarking range), inside namespaces the tests created.

func TestConfigValidationIPv6(t *testing.T) {
	host := netip.MustParsePrefix("198.18.0.1/30")
	for _, tc := range []struct {
		h6   string
		want string
	}{
		{"198.18.0.5/30", "need an IPv6 address with prefix"},
		{"::ffff:198.18.0.5/126", "need an IPv6 address with prefix"},
		{"fe80::1/64", "need a global or unique-local unicast address"},
		{"ff02::1/64", "need a global or unique-local unicast address"},
		{"::/64", "need a global or unique-local unicast address"},
		{"2001:2::1/128", "a /128 leaves no address for the stack"},
		{"2001:2::1/64 mtu 1279", "MTU 1279 is below IPv6's minimum of 1280"},
	} {
		h6, mtu, _ := strings.Cut(tc.h6, " mtu ")
		cfg := Config{Name: "ustk0", HostAddr: host, HostAddr6: netip.MustParsePrefix(h6)}
		if mtu != "" {
			cfg.MTU, _ = strconv.Atoi(mtu)
		}
		_, err := Open(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open with HostAddr6 %s = %v; want an error containing %q", tc.h6, err, tc.want)
		}
	}
}

// TestOpenConfiguresIPv6: with HostAddr6 the kernel side holds that
// address at once (no duplicate address detection, so not tentative), no
// link-local address of its own, no router advertisements taken, and a
// route of the prefix into the device; the host address is local when
// Open returns (its route is in the local table: a packet to it is taken
// at once, not dropped as an address error); a datagram the kernel sends
// to the stack's IPv6 address right after Open arrives on the device from
// the host address.
func TestOpenConfiguresIPv6(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			ns := testNamespace(t, "open6")
			host, _ := hostPrefix()
			host6 := netip.MustParsePrefix("2001:2::1/64")
			stack6 := netip.MustParseAddr("2001:2::2")
			d := openDevice(t, ns, Config{Name: "ustk0", HostAddr: host, HostAddr6: host6, NoOffload: mode.noOffload})
			if d.HostAddr6() != host6 {
				t.Errorf("HostAddr6() = %v, want %v", d.HostAddr6(), host6)
			}
			inNS(t, ns, func() error {
				local := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Dst: &net.IPNet{IP: host6.Addr().AsSlice(), Mask: net.CIDRMask(128, 128)}}
				rs, err := netlink.RouteListFiltered(netlink.FAMILY_V6, local, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
				if err == nil && len(rs) != 1 {
					t.Errorf("local routes of %v when Open returned: %+v; want one (the address not yet local)", host6.Addr(), rs)
				}
				return err
			})
			r := startReader(t, d, d.BatchSize(), d.MTU())
			// At once: the datagram leaves from host6, which would still be
			// tentative, and unusable as a source, had DAD run.
			sendUDP6(t, ns, netip.AddrPortFrom(stack6, 9), "hello over IPv6")
			pkt := r.next(t, time.Now().Add(5*time.Second), "the kernel's UDP datagram to "+stack6.String(), func(p []byte) bool {
				return len(p) >= 48 && p[0]>>4 == 6 && p[6] == unix.IPPROTO_UDP && netip.AddrFrom16([16]byte(p[24:40])) == stack6
			})
			if src := netip.AddrFrom16([16]byte(pkt[8:24])); src != host6.Addr() {
				t.Errorf("datagram from %v, want %v", src, host6.Addr())
			}
			if got := string(pkt[48:]); got != "hello over IPv6" {
				t.Errorf("payload %q", got)
			}
			inNS(t, ns, func() error { return checkKernelIPv6(t, d, host6, stack6) })
		})
	}
}

// checkKernelIPv6 checks, inside the namespace, the device's IPv6
// addresses, sysctls and routes.
func checkKernelIPv6(t *testing.T, d *Device, host6 netip.Prefix, stack6 netip.Addr) error {
	t.Helper()
	l, err := netlink.LinkByIndex(d.Index())
	if err != nil {
		return err
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return err
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
		if a.IPNet.String() == host6.String() {
			if a.Flags&unix.IFA_F_NODAD == 0 || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
				t.Errorf("%v: flags %#x, want nodad and neither tentative nor dadfailed", host6, a.Flags)
			}
		}
	}
	if len(got) != 1 || got[0] != host6.String() {
		t.Errorf("IPv6 addresses on %s: %v; want only %v (no link-local)", d.Name(), got, host6)
	}
	for name, want := range map[string]string{"accept_ra": "0", "addr_gen_mode": "1", "router_solicitations": "0", "disable_ipv6": "0", "accept_dad": "0"} {
		b, err := os.ReadFile(d.ipv6Conf(name))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("net.ipv6.conf.%s.%s = %q, %v; want %s", d.Name(), name, b, err, want)
		}
	}
	routes, err := netlink.RouteGet(net.IP(stack6.AsSlice()))
	if err != nil {
		return err
	}
	if len(routes) != 1 || routes[0].LinkIndex != d.Index() {
		t.Errorf("route to %v: %+v; want through %s (index %d)", stack6, routes, d.Name(), d.Index())
	}
	pfx := host6.Masked()
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{LinkIndex: d.Index(),
		Dst: &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), 128)}}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_DST)
	if err != nil {
		return err
	}
	if len(rs) != 1 {
		t.Errorf("routes of %v on %s: %+v; want one", pfx, d.Name(), rs)
	}
	return nil
}

// sendUDP6 sends one datagram from the kernel inside ns.
func sendUDP6(t *testing.T, ns *Namespace, to netip.AddrPort, msg string) {
	t.Helper()
	inNS(t, ns, func() error {
		c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(to))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(msg))
		return err
	})
}

// TestOpenIPv6AddressClash: an IPv6 host address another interface holds
// is refused before anything is created.
func TestOpenIPv6AddressClash(t *testing.T) {
	ns := testNamespace(t, "clash6")
	host6 := netip.MustParsePrefix("2001:2::1/64")
	host, _ := hostPrefix()
	openDevice(t, ns, Config{Name: "ustk0", HostAddr: host, HostAddr6: host6})
	host2, _ := hostPrefix()
	_, err := ns.OpenTUN(Config{Name: "ustk1", HostAddr: host2, HostAddr6: netip.MustParsePrefix("2001:2::5/64")})
	if err == nil || !strings.Contains(err.Error(), "overlaps 2001:2::1/64") || !strings.Contains(err.Error(), "--host-addr6") {
		t.Errorf("second device in the same IPv6 prefix: %v; want an overlap error naming --host-addr6", err)
	}
	if names := linksIn(t, ns); strings.Contains(strings.Join(names, " "), "ustk1") {
		t.Errorf("ustk1 left behind: %v", names)
	}
}
