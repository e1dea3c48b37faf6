package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"ustack/internal/services"
	"ustack/stack"
	"ustack/stack/header"
	"ustack/stack/ipv4"
	"ustack/tun"
)

// The network-layer tests run the stack in this process on a TUN device in
// the test's namespace, so that they can dial from it and read its
// counters.

// inProcessStack opens a TUN device in ns (kernel side hostAddr/30) and
// runs a stack with address addr on it until the test ends.
func inProcessStack(t *testing.T, ns *tun.Namespace, dev, addr, hostPrefix string) *stack.Stack {
	t.Helper()
	d, err := ns.OpenTUN(tun.Config{Name: dev, MTU: 1500, HostAddr: netip.MustParsePrefix(hostPrefix)})
	if err != nil {
		t.Fatalf("opening TUN %s: %v", dev, err)
	}
	st, err := stack.New(d, stack.Options{Addr: netip.MustParseAddr(addr)})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// mustRun runs a command in ns or fails the test.
func mustRun(t *testing.T, ns *tun.Namespace, name string, args ...string) {
	t.Helper()
	if out, err := runIn(t, ns, 20*time.Second, name, args...); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func counterOf(st *stack.Stack, name string) uint64 {
	var v uint64
	st.Each(func(n string, x uint64) {
		if n == name {
			v = x
		}
	})
	return v
}

// TestICMPRejectFailsDial: a kernel-side nftables rule rejects ustack's SYN
// with an ICMP error; DialTCP fails at once with the errno Linux reports
// for it (RFC 1122 §4.2.3.9; Linux's icmp_err_convert).
func TestICMPRejectFailsDial(t *testing.T) {
	requireRoot(t)
	requireTool(t, "nft")
	ns := newNamespace(t)
	st := inProcessStack(t, ns, devPrefix+"r0", stackAddr, hostAddr+"/30")
	mustRun(t, ns, "nft", "add", "table", "ip", "ustack_test")
	mustRun(t, ns, "nft", "add", "chain", "ip", "ustack_test", "input", "{ type filter hook input priority 0 ; }")
	mustRun(t, ns, "nft", "add", "rule", "ip", "ustack_test", "input", "tcp", "dport", "8081", "reject", "with", "icmp", "type", "port-unreachable")
	mustRun(t, ns, "nft", "add", "rule", "ip", "ustack_test", "input", "tcp", "dport", "8082", "reject", "with", "icmp", "type", "host-unreachable")
	for _, tc := range []struct {
		port uint16
		want syscall.Errno
	}{{8081, syscall.ECONNREFUSED}, {8082, syscall.EHOSTUNREACH}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		c, err := st.DialTCP(ctx, netip.AddrPortFrom(netip.MustParseAddr(hostAddr), tc.port))
		took := time.Since(start)
		cancel()
		if err == nil {
			c.Close()
			t.Fatalf("port %d: DialTCP succeeded", tc.port)
		}
		if !errors.Is(err, tc.want) || took > 100*time.Millisecond {
			t.Errorf("port %d: DialTCP = %v after %v, want %v within 100 ms", tc.port, err, took, tc.want)
		}
	}
	if n := counterOf(st, "icmp.errors_to_conn"); n != 2 {
		t.Errorf("icmp.errors_to_conn = %d, want 2", n)
	}
}

// TestPingFragmented: `ping -M dont -s 8000` from the kernel: ustack
// reassembles the request and answers in fragments (DF clear, as Linux).
func TestPingFragmented(t *testing.T) {
	requireRoot(t)
	requireTool(t, "ping")
	ns := newNamespace(t)
	startServe(t, ns, "--echo", echoPort)
	out, err := runIn(t, ns, 30*time.Second, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "5", "-M", "dont", "-s", "8000", stackAddr)
	if err != nil || !strings.Contains(out, "3 packets transmitted, 3 received") {
		t.Fatalf("ping -M dont -s 8000 %s: %v\n%s", stackAddr, err, out)
	}
}

// TestPathMTUDiscovery: ustack's TUN is in namespace A, which forwards to
// namespace B over a veth whose A end has MTU 1000. ustack sends a bulk
// upload to a kernel server in B with DF; A's kernel answers "fragmentation
// needed" (MTU 1000); ustack lowers its segment size and the transfer
// completes (RFC 1191).
func TestPathMTUDiscovery(t *testing.T) {
	requireRoot(t)
	a := newNamespace(t)
	b, err := tun.NewNamespace("it_" + t.Name() + "_b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	const (
		aVeth, bVeth = devPrefix + "va", devPrefix + "vb"
		server       = "198.18.2.2"
	)
	st := inProcessStack(t, a, devPrefix+"p0", stackAddr, hostAddr+"/30")
	mustRun(t, a, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	mustRun(t, a, "ip", "link", "add", aVeth, "mtu", "1000", "type", "veth", "peer", "name", bVeth, "netns", b.Name())
	mustRun(t, a, "ip", "addr", "add", "198.18.2.1/30", "dev", aVeth)
	mustRun(t, a, "ip", "link", "set", aVeth, "up")
	mustRun(t, b, "ip", "addr", "add", server+"/30", "dev", bVeth)
	mustRun(t, b, "ip", "link", "set", bVeth, "up")
	mustRun(t, b, "ip", "link", "set", "lo", "up")
	mustRun(t, b, "ip", "route", "add", "198.18.0.0/30", "via", "198.18.2.1")

	l := listenIn(t, b, net.JoinHostPort(server, "9000"))
	const size = 4 << 20
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		n, _ := io.Copy(io.Discard, c)
		c.Write([]byte("done"))
		got <- n
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := st.DialTCP(ctx, netip.AddrPortFrom(netip.MustParseAddr(server), 9000))
	if err != nil {
		t.Fatalf("dialing the server in B: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(bytes.Repeat([]byte("pmtu"), size/4)); err != nil {
		t.Fatalf("writing: %v (counters: pmtu_updates %d)", err, counterOf(st, "icmp.pmtu_updates"))
	}
	c.CloseWrite()
	if n := <-got; n != size {
		t.Fatalf("the server received %d bytes, want %d", n, size)
	}
	if mss := c.Info().SndMSS; mss > 960 {
		t.Errorf("segment size %d after fragmentation needed for MTU 1000", mss)
	}
	if n := counterOf(st, "icmp.pmtu_updates"); n == 0 {
		t.Errorf("no path MTU update")
	}
}

// TestFragmentFlood: fragments that never complete, from a raw socket on
// the kernel side, for 30 s (3 s with -short): the reassembly memory stays
// under its cap and HTTP answers during and after.
func TestFragmentFlood(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	st := inProcessStack(t, ns, devPrefix+"f0", stackAddr, hostAddr+"/30")
	hl, err := st.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	srv := &services.Server{}
	srv.Go(hl, func(l net.Listener) { srv.HTTP(l, "flood test\n") })
	t.Cleanup(srv.Close)
	d := newDialer(t, ns, 2)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       func(context.Context, string, string) (net.Conn, error) { return d.dial(stackAddr + ":80") },
	}}
	get := func(when string) {
		t.Helper()
		resp, err := client.Get("http://" + stackAddr + "/")
		if err != nil {
			t.Fatalf("HTTP %s the flood: %v", when, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "flood test") {
			t.Fatalf("HTTP %s the flood: %q", when, body)
		}
	}
	dur := 30 * time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	stop := make(chan struct{})
	flooded := make(chan error, 1)
	go func() { flooded <- ns.Do(func() error { return flood(stop) }) }()
	peak := 0
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		get("during")
		b := int(counterOf(st, "ip.reasm_bytes"))
		peak = max(peak, b)
		if b > ipv4.ReassemblyMemCap {
			t.Fatalf("reassembly holds %d bytes, over the cap %d", b, ipv4.ReassemblyMemCap)
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	if err := <-flooded; err != nil {
		t.Fatalf("flooding: %v", err)
	}
	get("after")
	t.Logf("peak reassembly memory %d bytes, %d fragments held, %d refused, %d queues timed out",
		peak, counterOf(st, "ip.frag_held"), counterOf(st, "ip.drop_frag_no_memory"), counterOf(st, "ip.reasm_timeouts"))
	if counterOf(st, "ip.frag_held") == 0 {
		t.Fatal("no fragment reached the stack")
	}
}

// flood sends first fragments of 1000 bytes with ever new IDs to the stack
// from a raw socket until stop closes. It runs inside the namespace.
func flood(stop chan struct{}) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer syscall.Close(fd)
	dst := netip.MustParseAddr(stackAddr).As4()
	to := &syscall.SockaddrInet4{Addr: dst}
	pkt := make([]byte, 20+1000)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		header.PutIPv4(pkt, header.IPv4Fields{TotalLen: uint16(len(pkt)), ID: uint16(i),
			Flags: header.IPv4FlagMF, TTL: 64, Protocol: uint8(200 + i>>16&7),
			Src: netip.MustParseAddr(hostAddr).As4(), Dst: dst})
		binary.BigEndian.PutUint32(pkt[20:], uint32(i))
		if err := syscall.Sendto(fd, pkt, 0, to); err != nil && !errors.Is(err, syscall.ENOBUFS) {
			return fmt.Errorf("sendto: %w", err)
		}
		if i%64 == 0 {
			time.Sleep(time.Millisecond) // about 64k fragments a second
		}
	}
}
