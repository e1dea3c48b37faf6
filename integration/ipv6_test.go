package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ustack/stack"
	"ustack/stack/link"
	"ustack/tun"
)

// The IPv6 addresses of a default `ustack serve` (2001:2::/48, RFC 5180's
// benchmarking range), inside the test's namespace.
const (
	stackAddr6 = "2001:2::2"
	hostAddr6  = "2001:2::1"
)

// hostPort6 is [2001:2::2]:port.
func hostPort6(port string) string { return net.JoinHostPort(stackAddr6, port) }

// requireStackIPv6 is requireRoot for the IPv6 tests. A kernel without
// IPv6 (no /proc/sys/net/ipv6: booted with ipv6.disable=1) skips them, as
// requireTool does for a missing program, and fails them under CI. The
// stack takes IPv6 addresses: stack.New refusing one is a regression,
// which fails the test wherever it runs rather than skip every IPv6 test
// unseen.
func requireStackIPv6(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("this kernel has no IPv6 (CI needs it): %v", err)
		}
		t.Skipf("this kernel has no IPv6: %v", err)
	}
	a, b := link.Pipe(1500)
	defer b.Close()
	st, err := stack.New(a, stack.Options{Addrs: []netip.Addr{netip.MustParseAddr(stackAddr6)}})
	if err != nil {
		a.Close()
		t.Fatalf("stack.New refuses the IPv6 address %s: %v", stackAddr6, err)
	}
	st.Close()
}

// startServe6 is startServe for the IPv6 tests: the ready line must name
// the stack's IPv6 address (serve says "IPv6 off" when it runs without).
func startServe6(t *testing.T, ns *tun.Namespace, args ...string) *server {
	t.Helper()
	requireStackIPv6(t)
	s := startServe(t, ns, args...)
	_, ready, _ := s.out.wait(0, time.Second, func(l string) bool { return strings.HasPrefix(l, "ready") })
	if !strings.Contains(ready, stackAddr6) || !strings.Contains(ready, hostAddr6+"/64") {
		t.Fatalf("the ready line does not name %s and %s/64: %q\nstderr:\n%s", stackAddr6, hostAddr6, ready, s.errOut)
	}
	return s
}

// TestPing6: ICMPv6 echo requests to the stack's IPv6 address are
// answered (RFC 4443 §4.2): small, filling the MTU, and of 4000 bytes,
// which the kernel sends in fragments and the stack reassembles (RFC 8200
// §4.5) and answers in fragments.
func TestPing6(t *testing.T) {
	requireTool(t, "ping")
	requireStackIPv6(t)
	ns := newNamespace(t)
	startServe6(t, ns, "--echo", echoPort)
	for _, size := range []string{"56", "1452", "4000"} {
		out, err := runIn(t, ns, 20*time.Second, "ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "5", "-s", size, stackAddr6)
		if err != nil || !strings.Contains(out, "3 packets transmitted, 3 received") {
			t.Errorf("ping -6 -s %s %s: %v\n%s", size, stackAddr6, err, out)
		}
	}
}

// TestCurl6: curl -6 fetches the page over HTTP and over HTTPS, verifying
// the certificate serve made, which names the IPv6 address too.
func TestCurl6(t *testing.T) {
	requireTool(t, "curl")
	requireStackIPv6(t)
	ns := newNamespace(t)
	dir := t.TempDir()
	s := startServe6(t, ns, "--http", httpPort, "--https", httpsPort, "--tls-dir", dir)
	ca := filepath.Join(dir, "ca.pem")
	url := "https://[" + stackAddr6 + "]/"
	if want := "try: curl -6 --cacert " + ca + " " + url; !strings.Contains(s.out.String(), want) {
		t.Errorf("serve does not print %q:\n%s", want, s.out)
	}

	out, err := runIn(t, ns, 20*time.Second, "curl", "-6", "-sS", "-i", "--max-time", "10", "http://["+stackAddr6+"]/")
	if err != nil || !strings.HasPrefix(out, "HTTP/1.1 200 OK") {
		t.Fatalf("curl -6 http://[%s]/: %v\n%s", stackAddr6, err, out)
	}
	want := "X-Ustack-Connection: " + hostPort6(httpPort) + "<->[" + hostAddr6 + "]:"
	if !strings.Contains(out, want) {
		t.Errorf("no %q header:\n%s", want, out)
	}

	out, err = runIn(t, ns, 20*time.Second, "curl", "-6", "-sS", "-i", "--max-time", "10", "--cacert", ca,
		"-w", "\ncurl: status=%{http_code} verify=%{ssl_verify_result}\n", url)
	if err != nil || !strings.Contains(out, "curl: status=200 verify=0") {
		t.Fatalf("curl -6 --cacert %s %s: %v\n%s", ca, url, err, out)
	}
	if !strings.Contains(out, "<tr><th>TLS</th><td>TLS 1.2") {
		t.Errorf("the page shows no TLS 1.2 line:\n%s", out)
	}
}

// TestBulkTransfers6 is TestBulkTransfers over IPv6: 256 MiB (32 MiB with
// -short) through echo and from source, every byte checked, and to
// discard, every byte read (the service's FIN after ours; it returns
// nothing to check the contents by).
func TestBulkTransfers6(t *testing.T) {
	requireStackIPv6(t)
	ns := newNamespace(t)
	startServe6(t, ns, allServices...)
	d := newDialer(t, ns, 1)
	size := bulkSize()
	const timeout = 90 * time.Second

	t.Run("echo", func(t *testing.T) {
		c := d.mustDial(t, hostPort6(echoPort))
		defer c.Close()
		res, err := echoRoundTrip(c, size, 6, timeout, echoInFlight)
		if err != nil {
			t.Fatalf("%d MiB through echo over IPv6: %v", size/mib, err)
		}
		t.Logf("echo, up and back: %v", res)
	})
	t.Run("source", func(t *testing.T) {
		c := d.mustDial(t, hostPort6(sourcePort))
		defer c.Close()
		res, err := readSource(c, size, timeout)
		if err != nil {
			t.Fatalf("%d MiB from source over IPv6: %v", size/mib, err)
		}
		t.Logf("source, down: %v", res)
	})
	t.Run("discard", func(t *testing.T) {
		c := d.mustDial(t, hostPort6(discardPort))
		defer c.Close()
		res, err := upload(c, size, timeout)
		if err != nil {
			t.Fatalf("%d MiB to discard over IPv6: %v", size/mib, err)
		}
		t.Logf("discard, up: %v", res)
	})
}

// TestUDPEcho6: the UDP echo service answers over IPv6 too, for
// `nc -6 -u` and a Go client, fragmented datagrams included.
func TestUDPEcho6(t *testing.T) {
	requireTool(t, "nc")
	requireStackIPv6(t)
	ns := newNamespace(t)
	startServe6(t, ns, "--udp-echo", udpEchoPort)
	t.Run("nc", func(t *testing.T) { checkNetcatEcho(t, ns, "-6", stackAddr6, udpEchoPort) })
	t.Run("go", func(t *testing.T) { checkUDPEcho(t, ns, hostPort6(udpEchoPort)) })
	// The same socket still answers IPv4.
	t.Run("go-ipv4", func(t *testing.T) { checkUDPEcho(t, ns, net.JoinHostPort(stackAddr, udpEchoPort)) })
}

// TestUDPPortUnreachable6: a datagram to a closed port over IPv6 brings
// ICMPv6 destination unreachable, port unreachable (RFC 4443 §3.1: type 1
// code 4): ECONNREFUSED for the kernel's socket, and in the capture.
func TestUDPPortUnreachable6(t *testing.T) {
	requireTool(t, "tshark")
	requireStackIPv6(t)
	ns := newNamespace(t)
	pcap := tempFile(t, "udp6.pcapng")
	s := startServe6(t, ns, "--udp-echo", udpEchoPort, "--pcap", pcap)
	checkPortUnreachable(t, ns, hostPort6(udpClosedPort))
	s.stop()
	out, err := runTshark(t, "-r", pcap, "-Y", "icmpv6.type==1 && icmpv6.code==4 && ipv6.src=="+stackAddr6+" && udp.dstport=="+udpClosedPort,
		"-T", "fields", "-e", "ipv6.dst")
	if err != nil || !strings.Contains(out, hostAddr6) {
		t.Errorf("the capture shows no ICMPv6 port unreachable from %s to %s: %v\n%s", stackAddr6, hostAddr6, err, out)
	}
}

// TestGet6: `ustack get` fetches a page from a kernel-side server over
// IPv6, the URL's address in brackets; the server sees the stack's IPv6
// address.
func TestGet6(t *testing.T) {
	requireStackIPv6(t)
	ns := newNamespace(t)
	const (
		getAddr6  = "2001:2:0:1::2"
		getHost6  = "2001:2:0:1::1"
		getHostP6 = getHost6 + "/64"
		getDev    = devPrefix + "g6"
	)
	var tok [16]byte
	rand.Read(tok[:])
	body := "hello over IPv6 " + hex.EncodeToString(tok[:]) + "\n"
	l := listenIn(t, ns, net.JoinHostPort(getHost6, "8080"))
	visitors := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case visitors <- r.RemoteAddr:
		default:
		}
		fmt.Fprint(w, body)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, ustackBin, "get", "http://["+getHost6+"]:8080/",
		"--tun", getDev, "--addr", "198.18.1.2", "--host-addr", "198.18.1.1/30",
		"--addr6", getAddr6, "--host-addr6", getHostP6, "--timeout", "30s")
	cmd.WaitDelay = time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stdout.String() != body {
		t.Fatalf("ustack get: %v, printed %q, want %q\nstderr:\n%s", err, stdout.String(), body, stderr.String())
	}
	select {
	case v := <-visitors:
		if !strings.HasPrefix(v, "["+getAddr6+"]:") {
			t.Errorf("the server saw a request from %s, want [%s]:PORT", v, getAddr6)
		}
	default:
		t.Error("the server saw no request")
	}
}

// vmRSS is a process's resident set size, from /proc/PID/status.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

// TestDemo6: `ustack demo -6 --json` as root tells the whole story over
// IPv6, between the kernel's TCP at 2001:2::1 and ustack at
// [2001:2::2]:443, and removes its namespace.
func TestDemo6(t *testing.T) {
	requireStackIPv6(t)
	ns := newNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, ustackBin, "demo", "-6", "--json")
	cmd.WaitDelay = time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ustack demo -6: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "[2001:2::2]:443") || !strings.Contains(out, "2001:2::1") {
		t.Errorf("the demo does not name [2001:2::2]:443 and 2001:2::1:\n%s", out)
	}
	lines, namespace := parseDemo(t, out)
	if namespace == "" {
		t.Errorf("ustack demo -6 does not say which namespace it runs in")
	} else {
		demoNetnsGone(t, namespace)
	}
	findDemoSteps(t, lines)
	if !strings.Contains(out, "2001:2::2, RSA public key") {
		t.Errorf("the certificate on the ladder is not for 2001:2::2")
	}
}
