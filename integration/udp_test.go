package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"ustack/tun"
)

// udpEchoPort is where `ustack serve --udp-echo` listens in these tests;
// udpClosedPort has nothing behind it.
const (
	udpEchoPort   = "7"
	udpClosedPort = "9"
)

// udpDial opens a kernel UDP socket inside ns connected to addr
// (host:port; the family follows the address). It is closed when the test
// ends.
func udpDial(t *testing.T, ns *tun.Namespace, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() error {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		c, err = net.DialUDP("udp", nil, ua)
		return err
	})
	if err != nil {
		t.Fatalf("UDP socket to %s in %s: %v", addr, ns.Name(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpRoundTrip sends msg on c and waits for the same bytes to come back,
// sending again (up to 3 times in all) when nothing returns within 2 s:
// UDP promises no delivery, though nothing should be lost here.
func udpRoundTrip(c *net.UDPConn, msg []byte) error {
	buf := make([]byte, 65536)
	var last error
	for range 3 {
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("sending %d bytes: %w", len(msg), err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			last = err
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the echo of %d bytes: %w", len(msg), err)
		}
		if !bytes.Equal(buf[:n], msg) {
			return fmt.Errorf("echo of %d bytes returned %d different bytes", len(msg), n)
		}
		return nil
	}
	return fmt.Errorf("no echo of %d bytes after 3 tries: %w", len(msg), last)
}

// udpEchoSizes are the datagram sizes the echo tests send: tiny, the
// largest that fits a 1500-byte MTU over IPv4 and over IPv6, and one that
// goes in fragments both ways.
var udpEchoSizes = []int{1, 1232, 1452, 1472, 8000}

// checkUDPEcho sends datagrams of udpEchoSizes through the echo service at
// addr from a kernel socket in ns.
func checkUDPEcho(t *testing.T, ns *tun.Namespace, addr string) {
	t.Helper()
	c := udpDial(t, ns, addr)
	for _, size := range udpEchoSizes {
		msg := make([]byte, size)
		rand.Read(msg)
		if err := udpRoundTrip(c, msg); err != nil {
			t.Errorf("UDP echo at %s: %v", addr, err)
		}
	}
}

// checkNetcatEcho sends a line through the echo service at host:port with
// netcat-openbsd (`nc -u`, family flag -4 or -6) and checks that it comes
// back.
func checkNetcatEcho(t *testing.T, ns *tun.Namespace, family, host, port string) {
	t.Helper()
	var tok [8]byte
	rand.Read(tok[:])
	line := "hello over udp " + hex.EncodeToString(tok[:]) + "\n"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// -w2: after stdin's EOF, wait up to 2 s for what comes back.
	cmd := ns.Command(ctx, "nc", family, "-u", "-w2", host, port)
	cmd.WaitDelay = time.Second
	cmd.Stdin = strings.NewReader(line)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), line) {
		t.Errorf("echo %q | nc %s -u -w2 %s %s: %v, printed %q; want the line back", line, family, host, port, err, out)
	}
}

// checkPortUnreachable sends a datagram to a closed port at addr from a
// connected kernel socket: the stack's ICMP port unreachable makes the
// next read fail with ECONNREFUSED (Linux's icmp_err_convert, and
// icmpv6_err_convert for IPv6).
func checkPortUnreachable(t *testing.T, ns *tun.Namespace, addr string) {
	t.Helper()
	c := udpDial(t, ns, addr)
	buf := make([]byte, 64)
	for try := range 3 {
		if _, err := c.Write([]byte("anyone there?")); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return // the error of the previous try's ICMP message
			}
			t.Fatalf("sending to %s: %v", addr, err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.Logf("try %d: no ICMP error within 2 s", try+1)
		case err == nil:
			t.Fatalf("a closed port at %s answered %q", addr, buf[:n])
		default:
			t.Fatalf("reading from %s: %v, want ECONNREFUSED", addr, err)
		}
	}
	t.Fatalf("a datagram to the closed port %s brought no ECONNREFUSED (no ICMP port unreachable) in 3 tries", addr)
}

// TestUDPEcho: `serve --udp-echo` answers netcat's datagram and a Go
// client's of every size, fragmented ones included (RFC 862 over RFC 768).
func TestUDPEcho(t *testing.T) {
	requireRoot(t)
	requireTool(t, "nc")
	ns := newNamespace(t)
	startServe(t, ns, "--udp-echo", udpEchoPort, "--echo", echoPort)
	t.Run("nc", func(t *testing.T) { checkNetcatEcho(t, ns, "-4", stackAddr, udpEchoPort) })
	t.Run("go", func(t *testing.T) { checkUDPEcho(t, ns, net.JoinHostPort(stackAddr, udpEchoPort)) })
}

// TestUDPPortUnreachable: a datagram to a port nothing is bound to is
// answered with ICMP destination unreachable, port unreachable (RFC 1122
// §4.1.3.1; type 3 code 3), which the kernel reports to the sender as
// ECONNREFUSED and which the capture shows coming from the stack.
func TestUDPPortUnreachable(t *testing.T) {
	requireRoot(t)
	requireTool(t, "tshark")
	ns := newNamespace(t)
	pcap := tempFile(t, "udp.pcapng")
	s := startServe(t, ns, "--udp-echo", udpEchoPort, "--pcap", pcap)
	checkPortUnreachable(t, ns, net.JoinHostPort(stackAddr, udpClosedPort))
	s.stop() // the capture is complete once ustack has exited
	out, err := runTshark(t, "-r", pcap, "-Y", "icmp.type==3 && icmp.code==3 && ip.src=="+stackAddr+" && udp.dstport=="+udpClosedPort,
		"-T", "fields", "-e", "ip.dst")
	if err != nil || !strings.Contains(out, hostAddr) {
		t.Errorf("the capture shows no ICMP port unreachable from %s to %s quoting a datagram to port %s: %v\n%s", stackAddr, hostAddr, udpClosedPort, err, out)
	}
}
