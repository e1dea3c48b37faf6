package tun

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ustack/stack/link"
)

var offloadModes = []struct {
	name      string
	noOffload bool
}{
	{"offload", false},
	{"no-offload", true},
}

func TestConfigValidation(t *testing.T) {
	host := netip.MustParsePrefix("198.18.0.1/30")
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "a-name-that-is-too-long", HostAddr: host}, "must be 1 to 15 bytes"},
		{Config{Name: "ustk/0", HostAddr: host}, "without '/'"},
		{Config{Name: "ustk0", MTU: 67, HostAddr: host}, "MTU 67 out of range"},
		{Config{Name: "ustk0", MTU: 70000, HostAddr: host}, "MTU 70000 out of range"},
		{Config{Name: "ustk0"}, "need an IPv4 address with prefix"},
		{Config{Name: "ustk0", HostAddr: netip.MustParsePrefix("2001:db8::1/64")}, "need an IPv4 address"},
		{Config{Name: "ustk0", HostAddr: netip.MustParsePrefix("198.18.0.1/32")}, "a /32 leaves no address for the stack"},
	} {
		_, err := Open(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v; want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	cfg, err := Config{HostAddr: host}.withDefaults()
	if err != nil || cfg.Name != DefaultName || cfg.MTU != DefaultMTU {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
}

func TestOpenConfiguresKernelSide(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			ns := testNamespace(t, "open")
			host, _ := hostPrefix()
			d := openDevice(t, ns, Config{Name: "ustk0", MTU: 1400, HostAddr: host, NoOffload: mode.noOffload})

			if d.Offload() == mode.noOffload {
				t.Errorf("Offload() = %v with NoOffload %v", d.Offload(), mode.noOffload)
			}
			wantBatch := 128
			if mode.noOffload {
				wantBatch = 1
			}
			if d.BatchSize() != wantBatch || d.MTU() != 1400 || d.Name() != "ustk0" {
				t.Errorf("BatchSize %d MTU %d Name %q", d.BatchSize(), d.MTU(), d.Name())
			}
			inNS(t, ns, func() error {
				l, err := netlink.LinkByName("ustk0")
				if err != nil {
					return err
				}
				a := l.Attrs()
				if l.Type() != "tuntap" || a.MTU != 1400 || a.Flags&net.FlagUp == 0 || a.Index != d.Index() {
					t.Errorf("link: type %s MTU %d flags %v index %d (device says %d)", l.Type(), a.MTU, a.Flags, a.Index, d.Index())
				}
				addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
				if err != nil {
					return err
				}
				var got []string
				for _, a := range addrs {
					got = append(got, a.IPNet.String())
				}
				if len(got) != 1 || got[0] != host.String() {
					t.Errorf("addresses on ustk0: %v; want only %v (IPv6 disabled)", got, host)
				}
				return nil
			})
			// What the kernel turned on, as ethtool sees it: TUNSETOFFLOAD
			// maps TUN_F_TSO4/6 to tcp-segmentation-offload and TUN_F_USO4/6
			// to tx-udp-segmentation.
			if _, err := exec.LookPath("ethtool"); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				out, err := ns.Command(ctx, "ethtool", "-k", "ustk0").Output()
				if err != nil {
					t.Fatalf("ethtool: %v", err)
				}
				features := map[string]string{}
				for _, line := range strings.Split(string(out), "\n") {
					if k, v, ok := strings.Cut(strings.TrimSpace(line), ": "); ok {
						features[k] = strings.Fields(v)[0]
					}
				}
				want := "on"
				if mode.noOffload {
					want = "off"
				}
				if features["tcp-segmentation-offload"] != want || features["tx-checksumming"] != want {
					t.Errorf("ethtool: tcp-segmentation-offload %s, tx-checksumming %s; want %s",
						features["tcp-segmentation-offload"], features["tx-checksumming"], want)
				}
				t.Logf("kernel offloads: tso %s, tx-csum %s, tx-udp-segmentation %s, gro %s",
					features["tcp-segmentation-offload"], features["tx-checksumming"],
					features["tx-udp-segmentation"], features["generic-receive-offload"])
			}
			// The namespace must not see the device from the host side.
			if _, err := netlink.LinkByName("ustk0"); err == nil {
				t.Error("ustk0 visible in the host namespace")
			}
		})
	}
}

// TestPing: the kernel pings the stack's address; the test answers by hand.
func TestPing(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			ns := testNamespace(t, "ping")
			host, stack := hostPrefix()
			d := openDevice(t, ns, Config{Name: "ustk0", HostAddr: host, NoOffload: mode.noOffload})
			ep := tapDevice(t, d)
			r := startReader(t, ep, d.BatchSize(), d.MTU())

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ping := ns.Command(ctx, "ping", "-n", "-c", "1", "-W", "2", stack.String())
			var out bytes.Buffer
			ping.Stdout, ping.Stderr = &out, &out
			if err := ping.Start(); err != nil {
				t.Fatal(err)
			}
			pingDone := make(chan error, 1)
			go func() { pingDone <- ping.Wait() }()

			req := r.next(t, time.Now().Add(5*time.Second), "ICMP echo request", func(p []byte) bool {
				return isProto(p, 1, stack) && p[ihl(p)] == 8
			})
			if err := ipValid(req); err != nil {
				t.Fatalf("echo request: %v", err)
			}
			if src := netip.AddrFrom4([4]byte(req[12:16])); src != host.Addr() {
				t.Errorf("echo request from %v, want %v", src, host.Addr())
			}
			if checksum(req[ihl(req):], 0) != 0 {
				t.Error("echo request: bad ICMP checksum")
			}
			// An empty packet in the batch is dropped, not the batch.
			writePackets(t, ep, nil, echoReply(req))

			select {
			case err := <-pingDone:
				if err != nil {
					t.Fatalf("ping: %v\n%s", err, out.Bytes())
				}
				if !strings.Contains(out.String(), "1 received") {
					t.Errorf("ping output:\n%s", out.Bytes())
				}
			case <-ctx.Done():
				t.Fatalf("ping did not finish\n%s", out.Bytes())
			}
		})
	}
}

// TestKernelConnectSYN: a kernel TCP connect to the stack's address arrives
// through ReadBatch as a SYN with a valid checksum, offloads or not.
func TestKernelConnectSYN(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			ns := testNamespace(t, "syn")
			host, stack := hostPrefix()
			d := openDevice(t, ns, Config{Name: "ustk0", HostAddr: host, NoOffload: mode.noOffload})
			r := startReader(t, d, d.BatchSize(), d.MTU())
			dialFromNS(ns, netip.AddrPortFrom(stack, 80), nil) // ends when the device closes

			p := r.next(t, time.Now().Add(5*time.Second), "TCP SYN", func(p []byte) bool { return isProto(p, 6, stack) })
			syn, err := parseTCP(p)
			if err != nil {
				t.Fatal(err)
			}
			if syn.flags != tcpSYN {
				t.Errorf("flags %#02x, want SYN only", syn.flags)
			}
			if syn.dst.Port() != 80 || syn.src.Addr() != host.Addr() || syn.ack != 0 {
				t.Errorf("SYN %v -> %v ack %d", syn.src, syn.dst, syn.ack)
			}
			if want := uint16(d.MTU() - 40); syn.mss != want {
				t.Errorf("MSS option %d, want %d (MTU %d)", syn.mss, want, d.MTU())
			}
		})
	}
}

// TestKernelTCPStream runs a whole connection by hand against the kernel:
// 64 KiB from the kernel (TSO super-packets split on read, when offloads are
// on), then a batch of 16 segments to it (coalesced into fewer packets by
// GRO, when offloads are on). The short-batch variant reads with fewer
// buffers than BatchSize, so split segments wait inside the device.
func TestKernelTCPStream(t *testing.T) {
	for _, tc := range []struct {
		name      string
		noOffload bool
		batch     int // 0: BatchSize
	}{
		{"offload", false, 0},
		{"offload-short-batch", false, 3},
		{"no-offload", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := testNamespace(t, "stream")
			host, stack := hostPrefix()
			d := openDevice(t, ns, Config{Name: "ustk0", HostAddr: host, NoOffload: tc.noOffload})
			ep := tapDevice(t, d)
			batch := tc.batch
			if batch == 0 {
				batch = d.BatchSize()
			}
			r := startReader(t, ep, batch, d.MTU())
			deadline := time.Now().Add(20 * time.Second)

			up := make([]byte, 64<<10)
			for i := range up {
				up[i] = byte(i * 7)
			}
			down := make([]byte, 16*1000)
			for i := range down {
				down[i] = byte(i * 13)
			}
			gotDown := make(chan []byte, 1)
			client := dialFromNS(ns, netip.AddrPortFrom(stack, 80), func(c net.Conn) error {
				if _, err := c.Write(up); err != nil {
					return err
				}
				b := make([]byte, len(down))
				_, err := io.ReadFull(c, b)
				gotDown <- b // before returning: the test reads it once the client is done
				return err
			})

			// Handshake, by hand.
			p := r.next(t, deadline, "SYN", func(p []byte) bool { return isProto(p, 6, stack) })
			syn, err := parseTCP(p)
			if err != nil || syn.flags != tcpSYN {
				t.Fatalf("SYN: flags %#x, %v", syn.flags, err)
			}
			const iss = 1_000_000
			me, peer := syn.dst, syn.src
			writePackets(t, ep, buildTCP(me, peer, iss, syn.seq+1, tcpSYN|tcpACK, 1460, nil))

			// 64 KiB from the kernel, acknowledged as it arrives.
			rcvNxt := syn.seq + 1
			var got []byte
			for len(got) < len(up) {
				p := r.next(t, deadline, "data from the kernel", func(p []byte) bool { return isProto(p, 6, stack) })
				s, err := parseTCP(p)
				if err != nil {
					t.Fatalf("segment from the kernel: %v", err)
				}
				if s.flags&(tcpRST|tcpSYN) != 0 {
					t.Fatalf("unexpected flags %#x", s.flags)
				}
				if len(p) > d.MTU() {
					t.Fatalf("%d-byte packet exceeds the MTU: super-packet not split", len(p))
				}
				if len(s.payload) == 0 || s.seq != rcvNxt {
					continue // pure ACK, or a retransmission
				}
				got = append(got, s.payload...)
				rcvNxt += uint32(len(s.payload))
				if len(r.pkts) == 0 { // acknowledge once per burst
					writePackets(t, ep, buildTCP(me, peer, iss+1, rcvNxt, tcpACK, 0, nil))
				}
			}
			writePackets(t, ep, buildTCP(me, peer, iss+1, rcvNxt, tcpACK, 0, nil))
			if !bytes.Equal(got, up) {
				t.Fatal("data from the kernel corrupted")
			}
			st := d.Stats()
			t.Logf("after receiving: %+v", st)
			if !tc.noOffload && st.RxSplits == 0 {
				t.Error("offloads on, but the kernel sent no super-packet to split")
			}
			if tc.noOffload && st.RxSplits != 0 {
				t.Error("offloads off, yet packets were split")
			}

			// 16 segments to the kernel in one batch.
			rxBefore := kernelRxPackets(t, ns, d.Name())
			var segs [][]byte
			for i := range 16 {
				flags := byte(tcpACK)
				if i == 15 {
					flags |= tcpPSH
				}
				segs = append(segs, buildTCP(me, peer, iss+1+uint32(i*1000), rcvNxt, flags, 0, down[i*1000:(i+1)*1000]))
			}
			writePackets(t, ep, segs...)
			select {
			case err := <-client:
				if err != nil {
					t.Fatalf("client: %v", err)
				}
			case <-time.After(time.Until(deadline)):
				t.Fatal("the kernel did not receive the 16 segments")
			}
			if b := <-gotDown; !bytes.Equal(b, down) {
				t.Fatal("data to the kernel corrupted")
			}
			skbs := kernelRxPackets(t, ns, d.Name()) - rxBefore
			t.Logf("16 segments reached the kernel as %d packets", skbs)
			if tc.noOffload && skbs != 16 {
				t.Errorf("offloads off: %d packets, want 16", skbs)
			}
			if !tc.noOffload && skbs >= 16 {
				t.Errorf("offloads on: %d packets, want GRO to coalesce the 16 segments", skbs)
			}
		})
	}
}

// kernelRxPackets is the device's rx_packets counter as the kernel sees it:
// one per skb the device handed in.
func kernelRxPackets(t *testing.T, ns *Namespace, name string) uint64 {
	t.Helper()
	l, err := linkIn(ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Statistics.RxPackets
}

func TestOpenExistingName(t *testing.T) {
	ns := testNamespace(t, "exists")
	host, _ := hostPrefix()
	inNS(t, ns, func() error {
		return netlink.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: "ustk-dup"}})
	})
	_, err := ns.OpenTUN(Config{Name: "ustk-dup", HostAddr: host})
	if !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), `creating TUN device "ustk-dup"`) ||
		!strings.Contains(err.Error(), "already exists (ifb") || !strings.Contains(err.Error(), "ip link del ustk-dup") {
		t.Errorf("Open over an ifb device = %v", err)
	}
	t.Log(err)

	// A second TUN device of the same name.
	first := openDevice(t, ns, Config{Name: "ustk1", HostAddr: host})
	host2, _ := hostPrefix()
	if _, err := ns.OpenTUN(Config{Name: "ustk1", HostAddr: host2}); !errors.Is(err, os.ErrExist) {
		t.Errorf("Open over an open TUN device = %v", err)
	}
	// The kernel check behind the preflight one: IFF_TUN_EXCL never attaches
	// to an existing device.
	inNS(t, ns, func() error {
		fd, err := createTUN("ustk1", true, false, true)
		if err == nil {
			unix.Close(fd)
			t.Error("createTUN attached to the existing ustk1")
		} else if !errors.Is(err, os.ErrExist) {
			t.Errorf("createTUN over ustk1 = %v", err)
		}
		return nil
	})
	if l, err := linkIn(ns, "ustk1"); err != nil || l.Attrs().Index != first.Index() {
		t.Errorf("the first ustk1 was disturbed: %v", err)
	}
	if got := strings.Join(linksIn(t, ns), " "); got != "lo ustk-dup ustk1" {
		t.Errorf("links after the failures: %s", got)
	}
}

func TestOpenAddressClash(t *testing.T) {
	ns := testNamespace(t, "clash")
	host, _ := hostPrefix()
	inNS(t, ns, func() error {
		other := &netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: "other0"}}
		if err := netlink.LinkAdd(other); err != nil {
			return err
		}
		return netlink.AddrAdd(other, &netlink.Addr{IPNet: &net.IPNet{IP: host.Addr().AsSlice(), Mask: net.CIDRMask(30, 32)}})
	})
	_, err := ns.OpenTUN(Config{Name: "ustk0", HostAddr: host})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "is already assigned to interface \"other0\"") ||
		!strings.Contains(err.Error(), "--host-addr") {
		t.Errorf("Open with a taken address = %v", err)
	}
	t.Log(err)

	// A different address whose prefix overlaps other0's.
	overlap := netip.PrefixFrom(host.Addr().Next().Next(), 29)
	_, err = ns.OpenTUN(Config{Name: "ustk0", HostAddr: overlap})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("Open with an overlapping prefix = %v", err)
	}
	t.Log(err)
	if got := strings.Join(linksIn(t, ns), " "); got != "lo other0" {
		t.Errorf("links after the failures: %s", got)
	}
}

// TestOpenWithoutCapNetAdmin drops CAP_NET_ADMIN on the (throwaway) thread
// inside the namespace, so the kernel refuses to create the device.
func TestOpenWithoutCapNetAdmin(t *testing.T) {
	ns := testNamespace(t, "nocap")
	host, _ := hostPrefix()
	var openErr error
	inNS(t, ns, func() error {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return err
		}
		data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return err
		}
		_, openErr = Open(Config{Name: "ustk-nocap", HostAddr: host})
		return nil
	})
	want := `creating TUN device "ustk-nocap": operation not permitted: needs CAP_NET_ADMIN (run as root, or grant it: sudo setcap cap_net_admin+ep ./ustack)`
	if openErr == nil || openErr.Error() != want || !errors.Is(openErr, os.ErrPermission) {
		t.Errorf("Open without CAP_NET_ADMIN = %v\nwant %s", openErr, want)
	}
	if got := strings.Join(linksIn(t, ns), " "); got != "lo" {
		t.Errorf("links after the failure: %s", got)
	}
}

func TestCloseRemovesDevice(t *testing.T) {
	requireRoot(t)
	ns, err := NewNamespace("close")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() }) // in case of failure; idempotent
	host, _ := hostPrefix()
	d, err := ns.OpenTUN(Config{Name: "ustk0", HostAddr: host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })

	blocked := make(chan error, 1)
	go func() {
		bufs := [][]byte{make([]byte, link.Headroom+d.MTU())}
		_, err := d.ReadBatch(bufs, make([]int, 1), link.Headroom)
		blocked <- err
	}()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked ReadBatch returned %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadBatch")
	}
	if _, err := linkIn(ns, "ustk0"); !errors.As(err, new(netlink.LinkNotFoundError)) {
		t.Errorf("after Close, looking up ustk0: %v; want not found", err)
	}
	if n, err := d.WriteBatch([][]byte{make([]byte, link.Headroom+20)}, link.Headroom); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteBatch after Close = %d, %v", n, err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}

	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	left, err := Leftovers(os.Getpid(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		if l == "netns "+ns.Name() {
			t.Errorf("%s still exists after Close", ns.Name())
		}
	}
	if _, err := os.Stat(ns.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v", ns.Path(), err)
	}
}

// TestShortReadBuffer: a packet that does not fit the caller's buffer is
// dropped and counted, and ReadBatch says so with link.ErrShortBuffer.
func TestShortReadBuffer(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			ns := testNamespace(t, "short")
			host, stack := hostPrefix()
			d := openDevice(t, ns, Config{Name: "ustk0", HostAddr: host, NoOffload: mode.noOffload})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// 84-byte echo request; the buffer holds 40 bytes.
			ping := ns.Command(ctx, "ping", "-n", "-c", "1", "-W", "1", stack.String())
			if err := ping.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cancel(); ping.Wait() })
			done := make(chan error, 1)
			go func() {
				_, err := d.ReadBatch([][]byte{make([]byte, link.Headroom+40)}, make([]int, 1), link.Headroom)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, link.ErrShortBuffer) {
					t.Errorf("ReadBatch = %v, want link.ErrShortBuffer", err)
				}
			case <-ctx.Done():
				t.Fatal("no packet")
			}
			if st := d.Stats(); st.RxDropped != 1 || st.RxPackets != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}
