package stack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"ustack/stack/clock"
	"ustack/stack/header"
	"ustack/stack/udp"
)

// udpEcho answers every datagram on c to its sender until c closes.
func udpEcho(c *UDPConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		c.WriteToUDPAddrPort(buf[:n], from)
	}
}

func listenUDP(t *testing.T, s *Stack, ap netip.AddrPort) *UDPConn {
	t.Helper()
	c, err := s.ListenUDP(ap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readWithin reads one datagram, failing the test after d of real time.
func readWithin(t *testing.T, c *UDPConn, d time.Duration) ([]byte, netip.AddrPort, error) {
	t.Helper()
	type res struct {
		b    []byte
		from netip.AddrPort
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		buf := make([]byte, 65536)
		n, from, err := c.ReadFromUDPAddrPort(buf)
		ch <- res{buf[:n], from, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.from, r.err
	case <-time.After(d):
		t.Fatalf("no datagram within %v", d)
	}
	return nil, netip.AddrPort{}, nil
}

// TestUDPEchoUnconnected: WriteTo and ReadFrom both ways through an echo
// socket on all addresses, from an ephemeral port.
func TestUDPEchoUnconnected(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	srv := listenUDP(t, b, netip.AddrPortFrom(netip.Addr{}, 7))
	go udpEcho(srv)
	if got := srv.LocalAddr().String(); got != "0.0.0.0:7" {
		t.Fatalf("LocalAddr %s", got)
	}
	cli := listenUDP(t, a, netip.AddrPort{})
	port := cli.LocalAddr().(*net.UDPAddr).Port
	if port < udp.EphemeralLo || port > udp.EphemeralHi || cli.RemoteAddr() != nil {
		t.Fatalf("client bound to %v, remote %v", cli.LocalAddr(), cli.RemoteAddr())
	}
	for i := range 10 {
		msg := bytes.Repeat([]byte{byte(i)}, 100*i)
		if _, err := cli.WriteTo(msg, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrB, 7))); err != nil {
			t.Fatal(err)
		}
		got, from, err := readWithin(t, cli, 5*time.Second)
		if err != nil || !bytes.Equal(got, msg) || from != netip.AddrPortFrom(addrB, 7) {
			t.Fatalf("echo %d: %d bytes from %v, %v", i, len(got), from, err)
		}
	}
	st := b.Stats()
	if st.UDPInDatagrams != 10 || st.UDPOutDatagrams != 10 || st.UDPSockets != 1 {
		t.Fatalf("server stats %+v", st)
	}
}

// TestUDPEchoConnected: a connected socket's Write and Read, and the
// server's reply from the address the client wrote to.
func TestUDPEchoConnected(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	go udpEcho(listenUDP(t, b, netip.AddrPortFrom(addrB, 7)))
	c, err := a.DialUDP(netip.AddrPortFrom(addrB, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.RemoteAddr().String() != "198.18.0.2:7" || c.LocalAddr().(*net.UDPAddr).IP.String() != addrA.String() {
		t.Fatalf("local %v remote %v", c.LocalAddr(), c.RemoteAddr())
	}
	if _, err := c.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrB, 7))); !errors.Is(err, net.ErrWriteToConnected) {
		t.Fatalf("WriteTo on a connected socket: %v", err)
	}
	buf := make([]byte, 3)
	for _, msg := range []string{"hello", "", "world"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if want := msg[:min(len(msg), 3)]; err != nil || string(buf[:n]) != want {
			t.Fatalf("read %q, %v; want %q (cut to the buffer)", buf[:n], err, want)
		}
	}
	// The other way: the server side dials the client's port.
	lc := listenUDP(t, a, netip.AddrPortFrom(addrA, 5000))
	d, err := b.DialUDP(netip.AddrPortFrom(addrA, 5000))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Write([]byte("back"))
	if got, from, err := readWithin(t, lc, 5*time.Second); err != nil || string(got) != "back" || from.Addr() != addrB {
		t.Fatalf("%q from %v: %v", got, from, err)
	}
}

// TestUDPPortUnreachable: a datagram to a closed port is answered with
// ICMP port unreachable, which a connected socket reports once as
// ECONNREFUSED, on its next Read or its next Write; an unconnected one
// ignores it (Linux without IP_RECVERR).
func TestUDPPortUnreachable(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	c, err := a.DialUDP(netip.AddrPortFrom(addrB, 9))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("anyone?"))
	if _, _, err := readWithin(t, c, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("read: %v, want ECONNREFUSED", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, _, err := readWithin(t, c, 5*time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second read: %v, want the deadline (the error is reported once)", err)
	}
	if m := statsOf(b); m["udp.drop_no_port"] != 1 || m["ip.icmp_errors_sent"] != 1 {
		t.Fatalf("server counters: %v", m)
	}
	// The next Write reports it instead, once.
	c.Write([]byte("again"))
	waitCounter(t, a, "icmp.errors_to_conn", 2)
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("write: %v, want ECONNREFUSED", err)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("write after the error was taken: %v", err)
	}
	// Unconnected: ignored, counted (the fourth ICMP error from b, within
	// its per-peer burst of 6).
	u := listenUDP(t, a, netip.AddrPort{})
	u.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB, 10))
	waitCounter(t, a, "icmp.errors_udp_ignored", 1)
	u.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, _, err := readWithin(t, u, 5*time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("unconnected read: %v", err)
	}
	if _, err := u.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB, 10)); err != nil {
		t.Fatalf("unconnected write after an ICMP error: %v", err)
	}
}

// TestUDPQueueOverflow: the receive queue holds what its byte limit lets
// in (Linux's rule: while the bytes charged are at most the limit); the
// rest is dropped and counted on the socket and the stack.
func TestUDPQueueOverflow(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	srv := listenUDP(t, b, netip.AddrPortFrom(addrB, 7))
	srv.SetReadBuffer(1000) // a limit of 2000 bytes: 3 datagrams of 500 (756 charged each)
	cli := listenUDP(t, a, netip.AddrPort{})
	for range 20 {
		cli.WriteToUDPAddrPort(make([]byte, 500), netip.AddrPortFrom(addrB, 7))
	}
	waitCounter(t, b, "udp.drop_queue_full", 17)
	if st := b.Stats(); st.UDPInDatagrams != 3 || st.UDPQueueFull != 17 || srv.Drops() != 17 {
		t.Fatalf("in %d, full %d, socket drops %d", st.UDPInDatagrams, st.UDPQueueFull, srv.Drops())
	}
	for range 3 {
		if got, _, err := readWithin(t, srv, time.Second); err != nil || len(got) != 500 {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
	}
	if _, _, err := srv.TryReadFrom(make([]byte, 10)); !errors.Is(err, udp.ErrWouldBlock) {
		t.Fatalf("a fourth datagram: %v", err)
	}
}

// udpFromPeer builds a UDP datagram from the raw peer to the stack.
func udpFromPeer(p *rawPeer, srcPort, dstPort uint16, payload []byte) []byte {
	u := make([]byte, 8+len(payload))
	copy(u[8:], payload)
	header.PutUDP(u, srcPort, dstPort, len(payload), netip.AddrFrom4(p.addr), addrB)
	return p.datagram(header.ProtoUDP, 0, 9, u)
}

// TestUDPChecksum: a bad checksum is dropped and counted; a zero checksum
// (none computed, allowed on IPv4: RFC 768, RFC 1122 §4.1.3.4) is taken;
// a length field beyond the datagram is dropped as a bad header.
func TestUDPChecksum(t *testing.T) {
	s, p := newRawPeer(t, Options{})
	c := listenUDP(t, s, netip.AddrPortFrom(netip.Addr{}, 53))
	bad := udpFromPeer(p, 1000, 53, []byte("bad"))
	bad[len(bad)-1] ^= 1
	p.send(t, bad)
	waitCounter(t, s, "udp.drop_bad_checksum", 1)
	zero := udpFromPeer(p, 1000, 53, []byte("no checksum"))
	zero[26], zero[27] = 0, 0
	p.send(t, zero)
	if got, from, err := readWithin(t, c, 5*time.Second); err != nil || string(got) != "no checksum" || from != netip.AddrPortFrom(addrA, 1000) {
		t.Fatalf("%q from %v: %v", got, from, err)
	}
	long := udpFromPeer(p, 1000, 53, []byte("x"))
	binary.BigEndian.PutUint16(long[24:], 100)
	p.send(t, long)
	waitCounter(t, s, "udp.drop_bad_header", 1)
	// Our own datagrams carry a checksum that verifies.
	c.WriteToUDPAddrPort([]byte("reply"), netip.AddrPortFrom(addrA, 1000))
	h := p.recv(t, 5*time.Second, isProto(header.ProtoUDP))
	u, err := header.ParseUDP(h.Payload())
	if err != nil || u.Checksum() == 0 || !header.UDPChecksumOK(u, h.Src(), h.Dst()) || !h.DF() {
		t.Fatalf("our datagram: %v, checksum %#x, DF %v", err, u.Checksum(), h.DF())
	}
}

// TestUDPLargestDatagram: 65507 bytes, the most one IPv4 datagram carries,
// go in fragments (DF clear) and come back whole through echo; one more
// byte is EMSGSIZE.
func TestUDPLargestDatagram(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	go udpEcho(listenUDP(t, b, netip.AddrPortFrom(addrB, 7)))
	c, err := a.DialUDP(netip.AddrPortFrom(addrB, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg, _ := readAllStream(newStream(7, header.UDPMaxIPv4Payload))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got, _, err := readWithin(t, c, 10*time.Second)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("%d bytes back, %v", len(got), err)
	}
	for _, s := range []*Stack{a, b} {
		if m := statsOf(s); m["ip.fragmented"] != 1 || m["ip.fragments_sent"] != 45 || m["ip.reassembled"] != 1 {
			t.Fatalf("counters %v", m)
		}
	}
	if _, err := c.Write(make([]byte, header.UDPMaxIPv4Payload+1)); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("65508 bytes: %v, want EMSGSIZE", err)
	}
}

func readAllStream(s *stream) ([]byte, error) {
	b := make([]byte, s.n)
	_, err := s.Read(b)
	return b, err
}

// TestUDPBroadcastAndMulticast: refused on send (EACCES for broadcast, as
// Linux without SO_BROADCAST; EOPNOTSUPP for multicast), dropped and
// counted on receive with no ICMP answer.
func TestUDPBroadcastAndMulticast(t *testing.T) {
	s, p := newRawPeer(t, Options{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24")}})
	c := listenUDP(t, s, netip.AddrPortFrom(netip.Addr{}, 53))
	for dst, want := range map[string]error{
		"255.255.255.255:53": syscall.EACCES,
		"198.18.0.255:53":    syscall.EACCES, // directed, for our /24
		"224.0.0.251:5353":   syscall.EOPNOTSUPP,
		"198.18.0.1:0":       syscall.EINVAL,
	} {
		if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort(dst)); !errors.Is(err, want) {
			t.Errorf("to %s: %v, want %v", dst, err, want)
		}
		if dst != "198.18.0.1:0" {
			if _, err := s.DialUDP(netip.MustParseAddrPort(dst)); !errors.Is(err, want) {
				t.Errorf("dial %s: %v, want %v", dst, err, want)
			}
		}
	}
	for i, dst := range [][4]byte{{255, 255, 255, 255}, {198, 18, 0, 255}, {224, 0, 0, 251}} {
		d := udpFromPeer(p, 1000, 53, []byte("all of you"))
		copy(d[16:20], dst[:])
		header.IPv4(d).UpdateChecksum()
		p.send(t, d)
		waitCounter(t, s, "ip.drop_not_unicast", uint64(i+1))
	}
	if m := statsOf(s); m["udp.in_datagrams"] != 0 || m["ip.icmp_errors_sent"] != 0 || m["ip.sent"] != 0 {
		t.Fatalf("counters %v", m)
	}
}

// TestUDPDeadlines: a blocked read ends at its deadline on the stack's
// clock, with a timeout error; a past write deadline fails writes; clearing
// them restores both.
func TestUDPDeadlines(t *testing.T) {
	vc := clock.NewVirtual()
	a, b := pair(t, Options{Clock: vc}, Options{Clock: vc})
	srv := listenUDP(t, b, netip.AddrPortFrom(addrB, 7))
	srv.SetReadDeadline(vc.Now().Add(time.Second))
	done := make(chan error, 1)
	go func() {
		_, _, err := srv.ReadFrom(make([]byte, 10))
		done <- err
	}()
	vc.Advance(999 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("read returned before its deadline: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	vc.Advance(time.Millisecond)
	select {
	case err := <-done:
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read did not end at its deadline")
	}
	srv.SetDeadline(vc.Now().Add(-time.Second))
	if _, err := srv.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrA, 7)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: %v", err)
	}
	srv.SetDeadline(time.Time{})
	cli := listenUDP(t, a, netip.AddrPort{})
	cli.WriteToUDPAddrPort([]byte("late"), netip.AddrPortFrom(addrB, 7))
	if got, _, err := readWithin(t, srv, 5*time.Second); err != nil || string(got) != "late" {
		t.Fatalf("%q, %v", got, err)
	}
}

// TestUDPCloseUnblocksReader: Close (the socket's, or the stack's) ends a
// blocked read with net.ErrClosed and frees the port.
func TestUDPCloseUnblocksReader(t *testing.T) {
	_, b := pair(t, Options{}, Options{})
	for _, closeStack := range []bool{false, true} {
		c, err := b.ListenUDP(netip.AddrPortFrom(addrB, 7))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 10))
			done <- err
		}()
		time.Sleep(10 * time.Millisecond) // let it block (the test passes either way)
		if closeStack {
			b.Close()
		} else {
			c.Close()
		}
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("read still blocked after Close")
		}
		if !closeStack {
			if err := c.Close(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("second Close: %v", err)
			}
		}
	}
	if _, err := b.ListenUDP(netip.AddrPortFrom(addrB, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ListenUDP on a closed stack: %v", err)
	}
}

// TestUDPBindRules: one socket per address and port; a socket on one
// address takes its datagrams before one on all; addresses not ours are
// refused.
func TestUDPBindRules(t *testing.T) {
	addrB2 := netip.MustParseAddr("198.18.0.3")
	a, b := pair(t, Options{}, Options{Addrs: []netip.Addr{addrB2}})
	wild := listenUDP(t, b, netip.AddrPortFrom(netip.Addr{}, 53))
	one := listenUDP(t, b, netip.AddrPortFrom(addrB2, 53))
	if _, err := b.ListenUDP(netip.AddrPortFrom(addrB2, 53)); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second socket on %v:53: %v", addrB2, err)
	}
	if _, err := b.ListenUDP(netip.MustParseAddrPort("198.18.9.9:53")); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("a socket on an address not ours: %v", err)
	}
	cli := listenUDP(t, a, netip.AddrPort{})
	cli.WriteToUDPAddrPort([]byte("to B2"), netip.AddrPortFrom(addrB2, 53))
	cli.WriteToUDPAddrPort([]byte("to B"), netip.AddrPortFrom(addrB, 53))
	if got, _, err := readWithin(t, one, 5*time.Second); err != nil || string(got) != "to B2" {
		t.Fatalf("specific socket: %q %v", got, err)
	}
	if got, _, err := readWithin(t, wild, 5*time.Second); err != nil || string(got) != "to B" {
		t.Fatalf("wildcard socket: %q %v", got, err)
	}
	// A socket on all addresses sends from the one source selection picks
	// (Linux without IP_PKTINFO), not from the one it was written to.
	wild.WriteToUDPAddrPort([]byte("reply"), netip.AddrPortFrom(addrA, cli.ep.Local.Port()))
	if _, from, err := readWithin(t, cli, 5*time.Second); err != nil || from.Addr() != addrB {
		t.Fatalf("reply from %v: %v", from, err)
	}
}
