package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack/header"
	"ustack/stack/ipv4"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

var (
	addrA6 = netip.MustParseAddr("2001:2::1")
	addrB6 = netip.MustParseAddr("2001:2::2")
)

// pairAddrs returns two stacks with the given addresses joined by a Pipe.
func pairAddrs(t testing.TB, optsA, optsB Options, as, bs []netip.Addr) (*Stack, *Stack) {
	t.Helper()
	ea, eb := link.Pipe(1500)
	return pairOn(t, ea, eb, optsA, optsB, as, bs)
}

func pairOn(t testing.TB, ea, eb link.Endpoint, optsA, optsB Options, as, bs []netip.Addr) (*Stack, *Stack) {
	t.Helper()
	optsA.Addrs, optsB.Addrs = as, bs
	a, err := New(ea, strict(optsA))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(eb, strict(optsB))
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// pair6 is pair on IPv6 only.
func pair6(t testing.TB, optsA, optsB Options) (*Stack, *Stack) {
	return pairAddrs(t, optsA, optsB, []netip.Addr{addrA6}, []netip.Addr{addrB6})
}

// pairDual is pair with both families on both stacks.
func pairDual(t testing.TB, optsA, optsB Options) (*Stack, *Stack) {
	return pairAddrs(t, optsA, optsB, []netip.Addr{addrA, addrA6}, []netip.Addr{addrB, addrB6})
}

// exchange dials raddr from a, accepts on l, and sends size bytes each way
// at once, comparing SHA-256; it returns both ends, the dialer's first.
func exchange(t *testing.T, a *Stack, l *Listener, raddr netip.AddrPort, size int64) (*Conn, *Conn) {
	t.Helper()
	accepted := make(chan *Conn, 1)
	go func() {
		c, _ := l.AcceptTCP()
		accepted <- c
	}()
	c, err := a.DialTCP(ctxT(t, 10*time.Second), raddr)
	if err != nil {
		t.Fatal(err)
	}
	var sc *Conn
	select {
	case sc = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
	}
	if sc == nil {
		t.Fatal("accept failed")
	}
	errs := make(chan error, 4)
	send := func(c *Conn, seed byte) {
		_, err := io.Copy(c, newStream(seed, size))
		if err == nil {
			err = c.CloseWrite()
		}
		errs <- err
	}
	recv := func(c *Conn, seed byte) {
		got, n, err := sum(c)
		want, _, _ := sum(newStream(seed, size))
		if err == nil && (got != want || n != size) {
			err = fmt.Errorf("%v received %d bytes, SHA-256 %x, want %d bytes, %x", c.LocalAddr(), n, got[:4], size, want[:4])
		}
		errs <- err
	}
	go send(c, 1)
	go recv(sc, 1)
	go send(sc, 2)
	go recv(c, 2)
	for range 4 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("transfer did not complete")
		}
	}
	return c, sc
}

// TestIPv6TransferBothWays: two IPv6-only stacks move data both ways at
// once, SHA-256 equal, in segments of the IPv6 MSS (1500 - 60), and the
// IPv4 layer sees nothing.
func TestIPv6TransferBothWays(t *testing.T) {
	size := int64(16 << 20)
	if testing.Short() {
		size = 4 << 20
	}
	a, b := pair6(t, Options{}, Options{})
	l, err := b.ListenTCP(9000)
	if err != nil {
		t.Fatal(err)
	}
	c, sc := exchange(t, a, l, netip.AddrPortFrom(addrB6, 9000), size)
	defer c.Close()
	defer sc.Close()
	if got := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); got != addrA6 {
		t.Fatalf("local address %v", got)
	}
	if mss := c.Info().SndMSS; mss != 1440 {
		t.Fatalf("send MSS %d, want 1440 (MTU 1500 - 60)", mss)
	}
	st := b.Stats()
	if st.IP6["delivered"] == 0 || st.IP["received"] != 0 || st.TCPBadChecksum != 0 {
		t.Fatalf("ip6 %v, ip received %d, bad checksums %d", st.IP6, st.IP["received"], st.TCPBadChecksum)
	}
}

// TestDualStackListenerAndUDP: a listener on all addresses accepts
// connections of both families, and a UDP socket on all addresses echoes
// both.
func TestDualStackListenerAndUDP(t *testing.T) {
	a, b := pairDual(t, Options{}, Options{})
	l, err := b.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []netip.Addr{addrB, addrB6} {
		c, sc := exchange(t, a, l, netip.AddrPortFrom(to, 80), 1<<20)
		if got := sc.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); got != to {
			t.Errorf("accepted a connection to %v, dialled %v", got, to)
		}
		if got := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); got.Is4() != to.Is4() {
			t.Errorf("source %v chosen for %v", got, to)
		}
		c.Close()
		sc.Close()
	}
	srv := listenUDP(t, b, netip.AddrPortFrom(netip.Addr{}, 53))
	go udpEcho(srv)
	for _, to := range []netip.Addr{addrB, addrB6} {
		c, err := a.DialUDP(netip.AddrPortFrom(to, 53))
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("hello over " + to.String())
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got, from, err := readWithin(t, c, 5*time.Second)
		if err != nil || string(got) != string(msg) || from != netip.AddrPortFrom(to, 53) {
			t.Fatalf("echo %q from %v, %v", got, from, err)
		}
		c.Close()
	}
	if st := b.Stats(); st.UDPInDatagrams != 2 || st.IP6["delivered"] == 0 {
		t.Fatalf("udp in %d, ip6 %v", st.UDPInDatagrams, st.IP6)
	}
}

// TestListenerOnOneIPv6Address: a listener on one IPv6 address takes only
// connections to it; the same port on the IPv4 address is closed.
func TestListenerOnOneIPv6Address(t *testing.T) {
	a, b := pairDual(t, Options{}, Options{})
	l, err := ListenConfig{Addr: addrB6}.Listen(b, 80)
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr().String() != "[2001:2::2]:80" {
		t.Fatalf("listener address %v", l.Addr())
	}
	go echoServer(l)
	if _, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB, 80)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("to the IPv4 address: %v, want ECONNREFUSED", err)
	}
	c, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB6, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	// An IPv4 source cannot reach an IPv6 destination.
	d := Dialer{LocalAddr: netip.AddrPortFrom(addrA, 0)}
	if _, err := d.DialContext(ctxT(t, time.Second), a, netip.AddrPortFrom(addrB6, 80)); !errors.Is(err, syscall.EAFNOSUPPORT) {
		t.Fatalf("IPv4 source to IPv6 destination: %v", err)
	}
}

// TestICMPv6PortUnreachableRefusesUDP: RFC 4443 §3.1: a datagram to a
// closed port is answered with destination unreachable code 4, which a
// connected socket reports as ECONNREFUSED (Linux's icmpv6_err_convert).
func TestICMPv6PortUnreachableRefusesUDP(t *testing.T) {
	a, b := pair6(t, Options{}, Options{})
	c, err := a.DialUDP(netip.AddrPortFrom(addrB6, 9))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("anyone?"))
	if _, _, err := readWithin(t, c, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("read: %v, want ECONNREFUSED", err)
	}
	if m := statsOf(b); m["udp.drop_no_port"] != 1 || m["ip6.icmp_errors_sent"] != 1 {
		t.Fatalf("server counters: %v", m)
	}
	if m := statsOf(a); m["ip6.icmp_errors_delivered"] != 1 || m["icmp.errors_to_conn"] != 1 {
		t.Fatalf("client counters: %v", m)
	}
	// Rate-limited: a burst to the closed port gets fewer errors back
	// (from an unconnected socket, whose writes no error stops).
	u := listenUDP(t, a, netip.AddrPortFrom(addrA6, 0))
	for range 200 {
		if _, err := u.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB6, 9)); err != nil {
			t.Fatal(err)
		}
	}
	waitCounter(t, b, "udp.drop_no_port", 201)
	if m := statsOf(b); m["ip6.icmp_rate_limited"] == 0 || m["ip6.icmp_errors_sent"] >= 201 {
		t.Fatalf("no rate limit: %v", m)
	}
}

// router6 forwards IPv6 packets between two pipes and answers those over
// mtu with Packet Too Big reporting report (RFC 4443 §3.2); report below
// mtu plays a router that reports less than the floor of 1280.
type router6 struct {
	addr        [16]byte
	mtu, report int
	mu          sync.Mutex
	tooBig      int
	sizes       map[int]int // sizes forwarded A to B, for the test
	r1, r2      *link.PipeEnd
}

func newRouter6(t *testing.T, mtu, report int) (*router6, link.Endpoint, link.Endpoint) {
	a1, r1 := link.Pipe(1500)
	r2, b2 := link.PipeWithQueue(1500, 16384)
	r := &router6{addr: netip.MustParseAddr("2001:2::fe").As16(), mtu: mtu, report: report, r1: r1, r2: r2, sizes: map[int]int{}}
	go r.forward(r1, r2, true)
	go r.forward(r2, r1, false)
	t.Cleanup(func() { r1.Close(); r2.Close() })
	return r, a1, b2
}

func (r *router6) forward(from, to *link.PipeEnd, count bool) {
	bufs := [][]byte{make([]byte, link.Headroom+65536)}
	sizes := []int{0}
	for {
		n, err := from.ReadBatch(bufs, sizes, link.Headroom)
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		pkt := bufs[0][link.Headroom : link.Headroom+sizes[0]]
		if len(pkt) > r.mtu && pkt[0]>>4 == 6 {
			r.mu.Lock()
			r.tooBig++
			r.mu.Unlock()
			from.WriteBatch([][]byte{r.packetTooBig(pkt)}, link.Headroom)
			continue
		}
		if count {
			r.mu.Lock()
			r.sizes[len(pkt)]++
			r.mu.Unlock()
		}
		to.WriteBatch([][]byte{bufs[0][:link.Headroom+sizes[0]]}, link.Headroom)
	}
}

func (r *router6) packetTooBig(pkt []byte) []byte {
	q := pkt[:min(len(pkt), 1280-48)]
	src := header.IPv6(pkt).SrcBytes()
	b := make([]byte, link.Headroom+40+8+len(q))
	p := b[link.Headroom:]
	m := header.ICMPv6(p[40:])
	m.SetType(header.ICMPv6PacketTooBig)
	m.SetParam(uint32(r.report))
	copy(m[8:], q)
	m.UpdateChecksum(r.addr, src)
	header.PutIPv6(p, header.IPv6Fields{PayloadLen: uint16(len(m)), NextHeader: header.ProtoICMPv6, HopLimit: 64, Src: r.addr, Dst: src})
	return b
}

// TestPacketTooBigLowersMSS: a router with a smaller MTU answers Packet
// Too Big (RFC 8201 §4): a running connection's segments shrink to the
// path MTU less 60 at once, never below 1220 whatever the router reports,
// the transfer completes, and a new connection starts with that size.
func TestPacketTooBigLowersMSS(t *testing.T) {
	for _, tc := range []struct{ mtu, report, mss int }{
		{1400, 1400, 1340},
		{1280, 1000, 1220}, // the floor: RFC 8201 §4
	} {
		t.Run(fmt.Sprint(tc.report), func(t *testing.T) {
			r, ea, eb := newRouter6(t, tc.mtu, tc.report)
			a, b := pairOn(t, ea, eb, Options{}, Options{}, []netip.Addr{addrA6}, []netip.Addr{addrB6})
			l, err := b.ListenTCP(7)
			if err != nil {
				t.Fatal(err)
			}
			c, sc := exchange(t, a, l, netip.AddrPortFrom(addrB6, 7), 1<<20)
			c.Close()
			sc.Close()
			if mss := c.Info().SndMSS; mss != tc.mss {
				t.Fatalf("MSS %d after Packet Too Big %d, want %d", mss, tc.report, tc.mss)
			}
			if m := statsOf(a); m["icmp.pmtu_updates"] != 1 || m["icmp.errors_to_conn"] == 0 || m["ip6.icmp_errors_delivered"] == 0 {
				t.Fatalf("counters %v", m)
			}
			r.mu.Lock()
			before := r.tooBig
			for size := range r.sizes {
				if size > tc.mtu {
					t.Errorf("a %d-byte packet passed a %d MTU", size, tc.mtu)
				}
			}
			r.mu.Unlock()
			c2, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB6, 7))
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if mss := c2.Info().SndMSS; mss != tc.mss {
				t.Fatalf("new connection's MSS %d, want %d", mss, tc.mss)
			}
			if _, err := c2.Write(make([]byte, 64<<10)); err != nil {
				t.Fatal(err)
			}
			sc2 := waitAccept(t, l)
			if _, err := io.ReadFull(sc2, make([]byte, 64<<10)); err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.tooBig != before {
				t.Fatalf("the new connection hit the small MTU")
			}
		})
	}
}

// TestTimeWaitIPv6: the active closer's TIME-WAIT holds the IPv6 4-tuple,
// and a new SYN on it with a newer timestamp reopens it (RFC 6191), as
// over IPv4.
func TestTimeWaitIPv6(t *testing.T) {
	a, b := pair6(t, Options{}, Options{TCP: tcp.Config{MSL: 10 * time.Second}})
	l, err := b.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	local := netip.AddrPortFrom(addrA6, 40000)
	dial := func() *Conn {
		t.Helper()
		d := Dialer{LocalAddr: local, ReuseAddr: true}
		c, err := d.DialContext(ctxT(t, 5*time.Second), a, netip.AddrPortFrom(addrB6, 80))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := dial()
	sc := waitAccept(t, l)
	sc.Close() // the server closes first: its end goes to TIME-WAIT
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitfor.Cond(t, 5*time.Second, "TIME-WAIT", func() bool { return sc.State() == tcp.TimeWait })
	id := tcp.ID{Local: netip.AddrPortFrom(addrB6, 80), Remote: local}
	b.mu.RLock()
	tw := b.conns[keyOf(id)]
	b.mu.RUnlock()
	if tw != sc {
		t.Fatalf("the TIME-WAIT connection is not found under %v", id)
	}
	waitfor.Cond(t, 5*time.Second, "the client to close", func() bool { return c.State() == tcp.Closed })
	c2 := dial()
	defer c2.Close()
	sc2 := waitAccept(t, l)
	defer sc2.Close()
	if sc2.RemoteAddr().(*net.TCPAddr).AddrPort() != local || sc.State() != tcp.Closed {
		t.Fatalf("reopened from %v; old connection %v", sc2.RemoteAddr(), sc.State())
	}
	if _, err := c2.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(sc2, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
}

// TestDialIPv6Errors: a stack without an IPv6 address cannot dial one
// (EADDRNOTAVAIL); an IPv6 address needs a link MTU of 1280.
func TestDialIPv6Errors(t *testing.T) {
	a, _ := pair(t, Options{}, Options{})
	if _, err := a.DialTCP(context.Background(), netip.AddrPortFrom(addrB6, 80)); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("dial IPv6 from an IPv4-only stack: %v", err)
	}
	if _, err := a.DialUDP(netip.AddrPortFrom(addrB6, 80)); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("UDP to IPv6 from an IPv4-only stack: %v", err)
	}
	if _, err := a.DialUDP(netip.MustParseAddrPort("[ff02::1]:80")); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("UDP to a multicast group: %v", err)
	}
	ea, _ := link.Pipe(1000)
	if _, err := New(ea, Options{Addrs: []netip.Addr{addrA, addrA6}}); err == nil {
		t.Fatal("an IPv6 address on a 1000-byte link")
	}
	s, err := New(ea, Options{Addr: addrA})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddAddr(addrA6); err == nil {
		t.Fatal("AddAddr of an IPv6 address on a 1000-byte link")
	}
}

// TestUDPLargestDatagramIPv6: 65527 bytes, the most one IPv6 datagram
// carries without a jumbogram, go in fragments cut by the source (RFC 8200
// §4.5: 1448 bytes of data each on a 1500-byte link) and come back whole
// through echo; one more byte is EMSGSIZE, and so is a datagram over the
// path MTU in mode "do".
func TestUDPLargestDatagramIPv6(t *testing.T) {
	a, b := pair6(t, Options{}, Options{})
	go udpEcho(listenUDP(t, b, netip.AddrPortFrom(addrB6, 7)))
	c, err := a.DialUDP(netip.AddrPortFrom(addrB6, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg, _ := readAllStream(newStream(7, 65527))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got, _, err := readWithin(t, c, 10*time.Second)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("%d bytes back, %v", len(got), err)
	}
	for _, s := range []*Stack{a, b} {
		if m := statsOf(s); m["ip6.fragmented"] != 1 || m["ip6.fragments_sent"] != 46 || m["ip6.reassembled"] != 1 {
			t.Fatalf("counters %v", m)
		}
	}
	if _, err := c.Write(make([]byte, 65528)); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("65528 bytes: %v, want EMSGSIZE", err)
	}
	d, _ := pair6(t, Options{PMTUDiscovery: ipv4.PMTUDiscDo}, Options{})
	cd, err := d.DialUDP(netip.AddrPortFrom(addrB6, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer cd.Close()
	if _, err := cd.Write(make([]byte, 1500-48+1)); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("over the MTU in mode do: %v, want EMSGSIZE", err)
	}
	if _, err := cd.Write(make([]byte, 1500-48)); err != nil {
		t.Fatalf("at the MTU in mode do: %v", err)
	}
}
