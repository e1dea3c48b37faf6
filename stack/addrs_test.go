package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"ustack/stack/clock"
)

var addrB2 = netip.MustParseAddr("198.18.0.3")

// TestSelectSource: RFC 6724 §5's rules on the examples of its §10.1 that
// a host without address lifetimes or mobility can have, and IPv4.
func TestSelectSource(t *testing.T) {
	p := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			if pr, err := netip.ParsePrefix(x); err == nil {
				out = append(out, pr)
			} else {
				a := netip.MustParseAddr(x)
				out = append(out, netip.PrefixFrom(a, a.BitLen()))
			}
		}
		return out
	}
	for _, tc := range []struct {
		name, dst string
		cands     []netip.Prefix
		want      string // "" for none
	}{
		{"rule 2: global scope for a global destination", "2001:db8:1::1", p("fe80::1", "2001:db8:3::1"), "2001:db8:3::1"},
		{"rule 2: multicast site-local scope", "ff05::1", p("fe80::1", "2001:db8:3::1"), "2001:db8:3::1"},
		{"rule 1: the same address", "2001:db8:1::1", p("2001:db8:2::1", "2001:db8:1::1"), "2001:db8:1::1"},
		{"rule 2: link-local for a link-local destination", "fe80::1", p("2001:db8:1::1", "fe80::2"), "fe80::2"},
		{"rule 8: longest matching prefix", "2001:db8:1::1", p("2001:db8:3::2", "2001:db8:1::2"), "2001:db8:1::2"},
		{"rule 6: matching label (6to4)", "2002:c633:6401::1", p("2001:db8:1::2", "2002:c633:6401::d5e3:7953:13eb:22e8"), "2002:c633:6401::d5e3:7953:13eb:22e8"},
		{"rule 6: matching label (ULA)", "fd00:1::1", p("2001:2::2", "fd00:2::2"), "fd00:2::2"},
		{"family: IPv6 destination", "2001:db8:1::d5e3:0:0:1", p("10.1.2.3", "2001:db8:1::2"), "2001:db8:1::2"},
		{"family: IPv4 destination", "10.1.2.4", p("2001:db8:1::2", "10.1.2.3"), "10.1.2.3"},
		{"family: none", "2001:db8::1", p("10.1.2.3"), ""},
		{"IPv4 rule 8 within the subnet", "198.18.1.9", p("198.18.0.2/24", "198.18.1.2/24"), "198.18.1.2"},
		{"IPv4 rule 2: link-local", "169.254.7.7", p("198.18.0.2", "169.254.1.1"), "169.254.1.1"},
		{"IPv4 tie: the first", "203.0.113.9", p("198.18.0.2", "198.18.0.3"), "198.18.0.2"},
		{"IPv4-mapped destination", "::ffff:198.18.0.1", p("2001:2::2", "198.18.0.2"), "198.18.0.2"},
		{"prefix length caps rule 8", "2001:db8:1:0:ffff::1", p("2001:db8:1::2/48", "2001:db8:1:0:ffff::2/48"), "2001:db8:1::2"},
	} {
		got, ok := SelectSource(netip.MustParseAddr(tc.dst), tc.cands)
		if tc.want == "" {
			if ok {
				t.Errorf("%s: chose %v, want none", tc.name, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tc.want) {
			t.Errorf("%s: chose %v (%v), want %s", tc.name, got, ok, tc.want)
		}
	}
}

// TestListenerAddressBinding: a listener on one address gets only that
// address's connections, one on all gets every address's, and one on an
// address takes precedence over one on all for the same port.
func TestListenerAddressBinding(t *testing.T) {
	a, b := pair(t, Options{}, Options{Addrs: []netip.Addr{addrB2}})
	if got := b.Addrs(); !slices.Equal(got, []netip.Addr{addrB, addrB2}) || b.Addr() != addrB {
		t.Fatalf("Addrs %v, Addr %v", got, b.Addr())
	}
	one, err := ListenConfig{Addr: addrB}.Listen(b, 80)
	if err != nil {
		t.Fatal(err)
	}
	go echoServer(one)
	if one.Addr().String() != "198.18.0.2:80" {
		t.Fatalf("listener address %v", one.Addr())
	}
	dial := func(to netip.Addr, port uint16) (*Conn, error) {
		return a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(to, port))
	}
	if c, err := dial(addrB, 80); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	if _, err := dial(addrB2, 80); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("to the other address: %v, want ECONNREFUSED", err)
	}
	all, err := b.ListenTCP(81)
	if err != nil {
		t.Fatal(err)
	}
	if all.Addr().String() != "0.0.0.0:81" {
		t.Fatalf("wildcard listener address %v", all.Addr())
	}
	for _, to := range []netip.Addr{addrB, addrB2} {
		c, err := dial(to, 81)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := all.AcceptTCP()
		if err != nil || sc.LocalAddr().(*net.TCPAddr).AddrPort() != netip.AddrPortFrom(to, 81) {
			t.Fatalf("accepted %v, %v; want a connection to %v", sc.LocalAddr(), err, to)
		}
		c.Close()
		sc.Close()
	}
	// Both on port 82: the specific one wins for its address.
	spec, err := ListenConfig{Addr: addrB2}.Listen(b, 82)
	if err != nil {
		t.Fatal(err)
	}
	wild, err := b.ListenTCP(82)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (ListenConfig{Addr: addrB2}).Listen(b, 82); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("a second listener on %v:82: %v", addrB2, err)
	}
	if _, err := (ListenConfig{Addr: netip.MustParseAddr("198.18.7.7")}).Listen(b, 83); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("a listener on an address not ours: %v", err)
	}
	for to, l := range map[netip.Addr]*Listener{addrB2: spec, addrB: wild} {
		c, err := dial(to, 82)
		if err != nil {
			t.Fatal(err)
		}
		if sc := waitAccept(t, l); sc.LocalAddr().(*net.TCPAddr).AddrPort().Addr() != to {
			t.Fatalf("connection to %v accepted as %v", to, sc.LocalAddr())
		}
		c.Close()
	}
}

// waitAccept waits (in real time) for a connection on l.
func waitAccept(t *testing.T, l *Listener) *Conn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c := l.TryAccept(); c != nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no connection accepted")
	return nil
}

// TestDialerLocalAddrIsOurs: Dialer.LocalAddr must be one of the stack's
// addresses; the connection then uses it as its source.
func TestDialerLocalAddrIsOurs(t *testing.T) {
	a, b := pair(t, Options{Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.5")}}, Options{})
	l, _ := b.ListenTCP(7)
	go echoServer(l)
	d := Dialer{LocalAddr: netip.MustParseAddrPort("198.18.0.5:0")}
	c, err := d.DialContext(ctxT(t, 5*time.Second), a, netip.AddrPortFrom(addrB, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ID().Local.Addr() != netip.MustParseAddr("198.18.0.5") {
		t.Fatalf("local %v", c.ID().Local)
	}
	c.Write([]byte("hi"))
	if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	d = Dialer{LocalAddr: netip.MustParseAddrPort("198.18.0.9:0")}
	if _, err := d.DialContext(ctxT(t, 5*time.Second), a, netip.AddrPortFrom(addrB, 7)); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("dial from an address not ours: %v", err)
	}
	if c, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB, 7)); err != nil || c.ID().Local.Addr() != addrA {
		t.Fatalf("default source: %v, %v", c, err)
	} else {
		c.Close()
	}
}

// TestAddRemoveAddr: an address added while the stack runs takes
// connections at once; removed, it takes none, and what was bound to it
// stays but cannot send (Linux's behaviour) until it is added back.
func TestAddRemoveAddr(t *testing.T) {
	vc := clock.NewVirtual()
	a, b := pair(t, Options{Clock: vc}, Options{Clock: vc})
	l, _ := b.ListenTCP(7)
	go echoServer(l)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := a.DialTCP(ctx, netip.AddrPortFrom(addrB2, 7)); err == nil {
		t.Fatal("connected to an address b does not have")
	}
	waitCounter(t, b, "ip.drop_not_for_us", 1)
	if err := b.AddAddr(addrB2); err != nil {
		t.Fatal(err)
	}
	c, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB2, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echo := func() error {
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 4))
		return err
	}
	if err := echo(); err != nil {
		t.Fatal(err)
	}
	// a's ACK of the echo may still be on its way: wait until b has
	// everything a sent, so that the next drop is the "lost" segment.
	waitQuiet(t, a, b)
	if err := b.RemoveAddr(addrB2); err != nil {
		t.Fatal(err)
	}
	dropped := statsOf(b)["ip.drop_not_for_us"]
	c.Write([]byte("lost"))
	waitCounter(t, b, "ip.drop_not_for_us", dropped+1)
	if b.Stats().TCPConns != 1 {
		t.Fatal("removing the address killed the connection")
	}
	// b's side of the connection cannot send from the removed address.
	var sc *Conn
	b.mu.RLock()
	for _, x := range b.conns {
		sc = x
	}
	b.mu.RUnlock()
	sc.Write([]byte("from a removed address"))
	waitCounter(t, b, "tcp.segs_addr_gone", 1)
	if err := b.AddAddr(addrB2); err != nil {
		t.Fatal(err)
	}
	vc.Advance(2 * time.Second) // the retransmissions go through now
	if _, err := io.ReadFull(c, make([]byte, len("from a removed address"))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{b.AddAddr(addrB2), syscall.EEXIST},
		{b.RemoveAddr(netip.MustParseAddr("198.18.7.7")), syscall.EADDRNOTAVAIL},
		{b.RemoveAddr(netip.MustParseAddr("2001:2::77")), syscall.EADDRNOTAVAIL},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("got %v, want %v", tc.err, tc.want)
		}
	}
	if err := b.AddAddr(netip.MustParseAddr("2001:2::2")); err != nil {
		t.Errorf("AddAddr(2001:2::2): %v", err)
	}
	for _, bad := range []string{"0.0.0.0", "224.0.0.1", "127.0.0.1", "255.255.255.255", "::", "::1", "ff02::1"} {
		if err := b.AddAddr(netip.MustParseAddr(bad)); err == nil {
			t.Errorf("AddAddr(%s) accepted", bad)
		}
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New without an address")
	}
}

// waitQuiet waits (in real time) until every segment a has sent has reached
// b: a's tcp.segs_out equals b's tcp.segs_in plus what b dropped as not
// for it, and stays so for a moment.
func waitQuiet(t *testing.T, a, b *Stack) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for stable := 0; stable < 10; {
		sb := statsOf(b)
		if statsOf(a)["tcp.segs_out"] == sb["tcp.segs_in"]+sb["ip.drop_not_for_us"] {
			stable++
		} else {
			stable = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("a sent %d segments, b received %d", statsOf(a)["tcp.segs_out"], statsOf(b)["tcp.segs_in"])
		}
		time.Sleep(time.Millisecond)
	}
}
