package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ustack/stack/link"
)

// Network safety: every address in these tests is in 198.18.0.0/15, and
// every device lives in a namespace the test created and deletes.

func TestMain(m *testing.M) {
	code := m.Run()
	if os.Geteuid() == 0 {
		// Nothing this process created may remain: no namespace, and no
		// test device in the host namespace (they all belong inside ours).
		left, err := Leftovers(os.Getpid(), testDevPrefix)
		if err != nil {
			fmt.Fprintln(os.Stderr, "listing leftovers:", err)
			code = 1
		}
		if len(left) > 0 {
			fmt.Fprintln(os.Stderr, "left behind:", left)
			code = 1
		}
	}
	os.Exit(code)
}

const testDevPrefix = "ustk"

// requireRoot skips a test that needs root and /dev/net/tun, or fails it
// when CI is set, where root is promised.
func requireRoot(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (CAP_NET_ADMIN for the TUN device, CAP_SYS_ADMIN for network namespaces)"
	} else if _, err := os.Stat("/dev/net/tun"); err != nil {
		why = "needs /dev/net/tun: " + err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(why + " (CI is set, so this is a failure)")
	}
	t.Skip(why)
}

// testNamespace creates a namespace for the test and deletes it on cleanup,
// failure included.
func testNamespace(t *testing.T, purpose string) *Namespace {
	t.Helper()
	requireRoot(t)
	ns, err := NewNamespace(purpose)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("deleting namespace: %v", err)
		}
	})
	return ns
}

var subnetSeq atomic.Uint32

// hostPrefix returns a fresh 198.18.a.b/30 for the kernel side; the stack's
// address is the next one.
func hostPrefix() (host netip.Prefix, stack netip.Addr) {
	n := subnetSeq.Add(1)
	a := netip.AddrFrom4([4]byte{198, 18, byte(n / 64), byte(n%64*4 + 1)})
	return netip.PrefixFrom(a, 30), a.Next()
}

// openDevice opens a TUN device in ns and closes it on cleanup (before the
// namespace is deleted: cleanups run last-in first-out).
func openDevice(t *testing.T, ns *Namespace, cfg Config) *Device {
	t.Helper()
	d, err := ns.OpenTUN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("closing device: %v", err)
		}
	})
	return d
}

// inNS runs fn in ns and fails the test on error.
func inNS(t *testing.T, ns *Namespace, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// linkIn looks a link up by name inside ns.
func linkIn(ns *Namespace, name string) (netlink.Link, error) {
	var l netlink.Link
	err := ns.Do(func() error {
		var err error
		l, err = netlink.LinkByName(name)
		return err
	})
	return l, err
}

// linksIn lists the link names inside ns.
func linksIn(t *testing.T, ns *Namespace) []string {
	t.Helper()
	var names []string
	inNS(t, ns, func() error {
		links, err := netlink.LinkList()
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		return err
	})
	return names
}

// reader reads from ep in a goroutine, batch buffers at a time, and passes
// copies of the packets on. It stops when ep is closed; the test's cleanup
// closes it.
type reader struct {
	pkts chan []byte
	errc chan error
}

func startReader(t *testing.T, ep link.Endpoint, batch, bufSize int) *reader {
	r := &reader{pkts: make(chan []byte, 4096), errc: make(chan error, 1)}
	go func() {
		bufs, sizes := link.ReadBuffers(batch, bufSize)
		for {
			n, err := ep.ReadBatch(bufs, sizes, link.Headroom)
			if err != nil {
				r.errc <- err
				close(r.pkts)
				return
			}
			for i := range n {
				r.pkts <- append([]byte(nil), bufs[i][link.Headroom:link.Headroom+sizes[i]]...)
			}
		}
	}()
	return r
}

// next returns the next packet that match accepts, failing the test if none
// arrives before the deadline.
func (r *reader) next(t *testing.T, deadline time.Time, what string, match func([]byte) bool) []byte {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case p, ok := <-r.pkts:
			if !ok {
				t.Fatalf("waiting for %s: reader stopped: %v", what, <-r.errc)
			}
			if match(p) {
				return p
			}
		case <-timer.C:
			t.Fatalf("no %s before the deadline", what)
		}
	}
}

// writePackets writes the packets in one batch, with headroom in front.
func writePackets(t *testing.T, ep link.Endpoint, pkts ...[]byte) {
	t.Helper()
	bufs := make([][]byte, len(pkts))
	for i, p := range pkts {
		bufs[i] = append(make([]byte, link.Headroom), p...)
	}
	if n, err := ep.WriteBatch(bufs, link.Headroom); n != len(pkts) || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
}

// tapDevice records the device's traffic to a pcapng file and, if the test
// fails, logs where the file is and what tshark makes of it.
func tapDevice(t *testing.T, d *Device) link.Endpoint {
	t.Helper()
	file := filepath.Join(t.TempDir(), "capture.pcapng")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	tap, err := link.Tap(d, f, link.TapInterface(d.Name(), "ustack tun test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if !t.Failed() {
			return
		}
		if out, err := exec.Command("tshark", "-n", "-r", file).Output(); err == nil {
			t.Logf("capture %s:\n%s", file, out)
		}
	})
	return tap
}

// Tiny IPv4/ICMP/TCP helpers, independent of the stack's own.

func checksum(b []byte, initial uint32) uint16 {
	sum := initial
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func pseudoSum(ip []byte) uint32 {
	ihl := int(ip[0]&0xf) * 4
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	return sum + uint32(ip[9]) + uint32(len(ip)-ihl)
}

func ipValid(p []byte) error {
	if len(p) < 20 || p[0]>>4 != 4 {
		return errors.New("not IPv4")
	}
	ihl := int(p[0]&0xf) * 4
	if int(binary.BigEndian.Uint16(p[2:])) != len(p) {
		return fmt.Errorf("total length %d, packet %d", binary.BigEndian.Uint16(p[2:]), len(p))
	}
	if checksum(p[:ihl], 0) != 0 {
		return errors.New("bad IPv4 header checksum")
	}
	return nil
}

func isProto(p []byte, proto byte, dst netip.Addr) bool {
	return len(p) >= 20 && p[0]>>4 == 4 && p[9] == proto && netip.AddrFrom4([4]byte(p[16:20])) == dst
}

func ihl(p []byte) int { return int(p[0]&0xf) * 4 }

// echoReply turns an ICMP echo request into its reply: addresses swapped,
// type 0, checksums fixed.
func echoReply(req []byte) []byte {
	p := append([]byte(nil), req...)
	h := ihl(p)
	var src [4]byte
	copy(src[:], p[12:16])
	copy(p[12:16], p[16:20])
	copy(p[16:20], src[:])
	p[8] = 64
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:], checksum(p[:h], 0))
	icmp := p[h:]
	icmp[0] = 0
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp, 0))
	return p
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

// tcpSeg is a parsed TCP segment in an IPv4 packet.
type tcpSeg struct {
	src, dst         netip.AddrPort
	seq, ack         uint32
	flags            byte
	window           uint16
	mss              uint16 // 0 if no MSS option
	payload          []byte
	checksumVerified bool
}

func parseTCP(p []byte) (tcpSeg, error) {
	if err := ipValid(p); err != nil {
		return tcpSeg{}, err
	}
	h := ihl(p)
	tcp := p[h:]
	if len(tcp) < 20 {
		return tcpSeg{}, errors.New("short TCP header")
	}
	off := int(tcp[12]>>4) * 4
	s := tcpSeg{
		src:     netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[12:16])), binary.BigEndian.Uint16(tcp[0:])),
		dst:     netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[16:20])), binary.BigEndian.Uint16(tcp[2:])),
		seq:     binary.BigEndian.Uint32(tcp[4:]),
		ack:     binary.BigEndian.Uint32(tcp[8:]),
		flags:   tcp[13],
		window:  binary.BigEndian.Uint16(tcp[14:]),
		payload: tcp[off:],
	}
	for o := tcp[20:off]; len(o) > 0; {
		switch {
		case o[0] == 0:
			o = nil
		case o[0] == 1:
			o = o[1:]
		case len(o) >= 2 && int(o[1]) >= 2 && int(o[1]) <= len(o):
			if o[0] == 2 && o[1] == 4 {
				s.mss = binary.BigEndian.Uint16(o[2:])
			}
			o = o[o[1]:]
		default:
			return s, errors.New("bad TCP options")
		}
	}
	if checksum(tcp, pseudoSum(p)) != 0 {
		return s, errors.New("bad TCP checksum")
	}
	s.checksumVerified = true
	return s, nil
}

// buildTCP builds an IPv4/TCP packet with valid checksums.
func buildTCP(src, dst netip.AddrPort, seq, ack uint32, flags byte, mss uint16, payload []byte) []byte {
	tcpLen := 20
	if mss != 0 {
		tcpLen += 4
	}
	p := make([]byte, 20+tcpLen+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[6] = 0x40 // DF
	p[8] = 64
	p[9] = 6
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20], 0))
	tcp := p[20:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = byte(tcpLen/4) << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	if mss != 0 {
		tcp[20], tcp[21] = 2, 4
		binary.BigEndian.PutUint16(tcp[22:], mss)
	}
	copy(tcp[tcpLen:], payload)
	binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, pseudoSum(p)))
	return p
}

// dialFromNS starts a kernel TCP connection from inside ns to addr and runs
// fn on it; the result arrives on the returned channel.
func dialFromNS(ns *Namespace, addr netip.AddrPort, fn func(net.Conn) error) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- ns.Do(func() error {
			c, err := net.DialTimeout("tcp", addr.String(), 10*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			if fn == nil {
				return nil
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			return fn(c)
		})
	}()
	return done
}

func gettid() int { return unix.Gettid() }

func runtimeGoexit() { runtime.Goexit() }
