package integration

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ustack/stack/header"
)

// TestIPv6Flood: for 30 s (3 s with -short) the kernel side floods the
// stack's IPv6 address, from a raw socket, with packets that cost a naive
// stack: long extension-header chains (RFC 8200 §4.1 sets no limit; RFC
// 7112 §5 lets a receiver drop a chain it cannot follow), first fragments
// that never complete (RFC 8200 §4.5: held until the 60 s reassembly
// timeout), and both at once. The ustack process's resident memory stays
// within 64 MiB of what it was before (the flood would pile up hundreds of
// MiB of fragments if they were kept without bound), and HTTP answers on
// both families during and after. serve's "ip6:" line when it stops shows
// that the flood arrived and was dropped for what it is: the chains for
// too many extension headers, the fragments held until reassembly memory
// ran out and dropped after.
func TestIPv6Flood(t *testing.T) {
	requireStackIPv6(t)
	ns := newNamespace(t)
	s := startServe6(t, ns, "--http", httpPort)
	pid := s.cmd.Process.Pid
	d := newDialer(t, ns, 2)
	get := func(when, addr string) {
		t.Helper()
		if err := httpGet(d, addr); err != nil {
			t.Fatalf("HTTP to %s %s the flood: %v", addr, when, err)
		}
	}
	addrs := []string{net.JoinHostPort(stackAddr, httpPort), hostPort6(httpPort)}
	for _, a := range addrs {
		get("before", a)
	}
	base, err := vmRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	const bound = 64 << 20
	dur := 30 * time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	stop := make(chan struct{})
	flooded := make(chan error, 1)
	var sent int
	go func() { flooded <- ns.Do(func() (err error) { sent, err = flood6(stop); return err }) }()
	peak := base
	for end := time.Now().Add(dur); time.Now().Before(end); {
		for _, a := range addrs {
			get("during", a)
		}
		rss, err := vmRSS(pid)
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, rss)
		if rss-base > bound {
			close(stop)
			<-flooded
			t.Fatalf("ustack's resident memory grew from %d MiB to %d MiB under the flood, more than %d MiB", base>>20, rss>>20, bound>>20)
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	if err := <-flooded; err != nil {
		t.Fatalf("flooding: %v", err)
	}
	for _, a := range addrs {
		get("after", a)
	}
	t.Logf("%d packets sent; ustack's resident memory %d MiB before, %d MiB at most during", sent, base>>20, peak>>20)
	s.stop()
	_, line, err := s.out.wait(0, time.Second, func(l string) bool { return strings.HasPrefix(l, "ip6:") })
	if err != nil {
		t.Fatalf("serve printed no ip6: line when it stopped: %v", err)
	}
	t.Log(line)
	c := ip6Counters(t, line)
	// Two packets in three carry a chain of more than ipv6.MaxExtHeaders
	// headers, the third a first fragment: 4 MiB of reassembly memory
	// holds a few thousand of them, a flood of this rate sends tens of
	// thousands. The kernel may drop some on the way (the raw socket's
	// ENOBUFS, the TUN's queue): at least half must arrive.
	took := c["too_many_ext_headers"] + c["frag_held"] + c["frag_no_memory"]
	if c["too_many_ext_headers"] == 0 || c["frag_held"] == 0 || c["frag_no_memory"] == 0 || took < uint64(sent)/2 ||
		took > c["received"] || c["dropped"] < c["too_many_ext_headers"]+c["frag_no_memory"] {
		t.Errorf("after a flood of %d packets, serve's IPv6 counters are %v: want the chains dropped for too many extension headers, "+
			"fragments held and then dropped for memory, and at least half of the flood so accounted for", sent, c)
	}
}

var ip6LineRE = regexp.MustCompile(`^ip6: received (\d+), frag_held (\d+), dropped (\d+)(?: \((.*)\))?$`)

// ip6Counters reads serve's "ip6:" line: "ip6: received N, frag_held N,
// dropped N (reason N, ...)", into counters named as in the line.
func ip6Counters(t *testing.T, line string) map[string]uint64 {
	t.Helper()
	m := ip6LineRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("serve's ip6: line %q is not of the form %v", line, ip6LineRE)
	}
	c := map[string]uint64{}
	num := func(name, v string) {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("serve's ip6: line %q: %s: %v", line, name, err)
		}
		c[name] = n
	}
	num("received", m[1])
	num("frag_held", m[2])
	num("dropped", m[3])
	if m[4] != "" {
		for _, r := range strings.Split(m[4], ", ") {
			name, v, ok := strings.Cut(r, " ")
			if !ok {
				t.Fatalf("serve's ip6: line %q: reason %q", line, r)
			}
			num(name, v)
		}
	}
	return c
}

// httpGet fetches / from the HTTP service at addr (host:port) over a
// connection d dials in the namespace.
func httpGet(d *dialer, addr string) error {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       func(context.Context, string, string) (net.Conn, error) { return d.dial(addr) },
	}}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "ustack") {
		return fmt.Errorf("status %s, %d bytes, %v", resp.Status, len(body), err)
	}
	return nil
}

// flood6 writes hostile IPv6 packets to the stack from a raw socket (the
// whole packet given, IPv6 header included, as IPPROTO_RAW does) until
// stop closes, about 64k a second, and returns how many it sent. It runs
// inside the namespace; every packet goes from 2001:2::1 to 2001:2::2.
func flood6(stop chan struct{}) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return 0, fmt.Errorf("raw socket: %w", err)
	}
	defer syscall.Close(fd)
	src, dst := netip.MustParseAddr(hostAddr6).As16(), netip.MustParseAddr(stackAddr6).As16()
	to := &syscall.SockaddrInet6{Addr: dst}
	buf := make([]byte, 1500)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return i, nil
		default:
		}
		pkt := floodPacket(buf, i, src, dst)
		if err := syscall.Sendto(fd, pkt, 0, to); err != nil && !errors.Is(err, syscall.ENOBUFS) {
			return i, fmt.Errorf("sendto: %w", err)
		}
		if i%64 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// floodPacket builds the i-th packet of the flood in buf, in turn:
//   - a hop-by-hop options header and 160 destination options headers
//     (each 8 bytes of padding) before a UDP datagram to a closed port
//     (port 9);
//   - a first fragment (offset 0, more to come, a new identification each
//     time) of 1024 bytes of a UDP datagram, whose rest never comes;
//   - 64 destination options headers, then such a first fragment of 512
//     bytes.
func floodPacket(buf []byte, i int, src, dst [16]byte) []byte {
	const h = header.IPv6HeaderLen
	off := h
	first := uint8(header.ProtoDestOpts)
	opts, payload := 0, 0 // payload: a fragment's, a multiple of 8 bytes
	switch i % 3 {
	case 0:
		first, opts = header.ProtoHopByHop, 161
	case 1:
		first, payload = header.ProtoFragment, 1024
	case 2:
		opts, payload = 64, 512
	}
	for n := range opts {
		next := uint8(header.ProtoDestOpts)
		switch {
		case n < opts-1:
		case i%3 == 0:
			next = header.ProtoUDP
		default:
			next = header.ProtoFragment
		}
		// Next header, length 0 (8 bytes), then PadN (RFC 8200 §4.2) of
		// four zero bytes.
		copy(buf[off:], []byte{next, 0, 1, 4, 0, 0, 0, 0})
		off += 8
	}
	if i%3 != 0 {
		header.PutIPv6Frag(buf[off:], header.ProtoUDP, 0, true, uint32(i))
		off += header.IPv6FragHdrLen
	}
	if i%3 == 0 {
		// A whole UDP datagram to port 9, checksum and all, so that the
		// stack follows the chain to the end (and may answer port
		// unreachable, within its ICMPv6 rate limit).
		binary.BigEndian.PutUint64(buf[off+8:], uint64(i))
		header.PutUDP(buf[off:], 40000, 9, 8, netip.AddrFrom16(src), netip.AddrFrom16(dst))
		off += 16
	} else {
		// The start of a UDP datagram twice the fragment's size.
		binary.BigEndian.PutUint16(buf[off:], 40000)
		binary.BigEndian.PutUint16(buf[off+2:], 9)
		binary.BigEndian.PutUint16(buf[off+4:], uint16(8+2*payload))
		binary.BigEndian.PutUint16(buf[off+6:], 0)
		clear(buf[off+8 : off+8+payload])
		binary.BigEndian.PutUint32(buf[off+8:], uint32(i))
		off += 8 + payload
	}
	header.PutIPv6(buf, header.IPv6Fields{PayloadLen: uint16(off - h), NextHeader: first, HopLimit: 64, Src: src, Dst: dst})
	return buf[:off]
}
