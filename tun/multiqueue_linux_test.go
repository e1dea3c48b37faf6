package tun

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ustack/stack/link"
)

// buildUDP builds an IPv4/UDP packet (no UDP checksum, which IPv4 allows).
func buildUDP(src, dst netip.AddrPort, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20], 0))
	binary.BigEndian.PutUint16(p[20:], src.Port())
	binary.BigEndian.PutUint16(p[22:], dst.Port())
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

// udpFrom reports whether p is a UDP datagram to dst, and its source.
func udpFrom(p []byte, dst netip.AddrPort) (netip.AddrPort, bool) {
	if !isProto(p, 17, dst.Addr()) || len(p) < ihl(p)+8 || binary.BigEndian.Uint16(p[ihl(p)+2:]) != dst.Port() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[12:16])), binary.BigEndian.Uint16(p[ihl(p):])), true
}

// A device of two queues carries packets both ways on both: the kernel
// spreads flows over them, what is written on either reaches the kernel,
// and a flow answered on a queue is sent to that queue from then on (the
// kernel's flow table, which the stack's lanes rely on).
func TestMultiQueue(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			ns := testNamespace(t, "mq")
			host, stack := hostPrefix()
			d := openDevice(t, ns, Config{Name: "ustk0", HostAddr: host, NoOffload: mode.noOffload, Queues: 2})
			qs := d.Queues()
			if d.NumQueues() != 2 || len(qs) != 2 {
				t.Fatalf("%d queues (%d endpoints), want 2", d.NumQueues(), len(qs))
			}
			for i, q := range qs {
				if o, ok := q.(link.Offloader); !ok || (o.OffloadMaxSize() > 0) != d.Offload() {
					t.Errorf("queue %d: offloads differ from the device's (%v)", i, d.Offload())
				}
			}
			readers := []*reader{startReader(t, qs[0], d.BatchSize(), d.MTU()), startReader(t, qs[1], d.BatchSize(), d.MTU())}

			// The kernel's side: a socket to answer, and 32 flows to the stack.
			target := netip.AddrPortFrom(stack, 9)
			var sink *net.UDPConn
			flows := make([]*net.UDPConn, 32)
			inNS(t, ns, func() error {
				var err error
				if sink, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(host.Addr(), 5000))); err != nil {
					return err
				}
				for i := range flows {
					if flows[i], err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(target)); err != nil {
						return err
					}
				}
				return nil
			})
			defer sink.Close()
			for _, f := range flows {
				defer f.Close()
				if _, err := f.Write([]byte("hello")); err != nil {
					t.Fatal(err)
				}
			}
			queueOf := map[netip.AddrPort]int{}
			deadline := time.Now().Add(5 * time.Second)
			for len(queueOf) < len(flows) && time.Now().Before(deadline) {
				for i, r := range readers {
					select {
					case p := <-r.pkts:
						if src, ok := udpFrom(p, target); ok {
							queueOf[src] = i
						}
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
			if len(queueOf) != len(flows) {
				t.Fatalf("%d of %d datagrams arrived", len(queueOf), len(flows))
			}
			var per [2]int
			for _, q := range queueOf {
				per[q]++
			}
			if per[0] == 0 || per[1] == 0 {
				t.Fatalf("the kernel put %d flows on queue 0 and %d on queue 1: want both used", per[0], per[1])
			}

			// Written on either queue, a datagram reaches the kernel.
			for i, q := range qs {
				writePackets(t, q, buildUDP(target, netip.AddrPortFrom(host.Addr(), 5000), fmt.Appendf(nil, "from queue %d", i)))
			}
			sink.SetReadDeadline(time.Now().Add(5 * time.Second))
			got := map[string]bool{}
			for range qs {
				buf := make([]byte, 100)
				n, err := sink.Read(buf)
				if err != nil {
					t.Fatalf("the kernel received %v: %v", got, err)
				}
				got[string(buf[:n])] = true
			}
			if !got["from queue 0"] || !got["from queue 1"] {
				t.Errorf("the kernel received %v", got)
			}

			// A flow answered on the other queue than its own moves there.
			var moved netip.AddrPort
			for src, q := range queueOf {
				if q == 0 {
					moved = src
					break
				}
			}
			writePackets(t, qs[1], buildUDP(target, moved, []byte("answer")))
			for _, f := range flows {
				if netip.MustParseAddrPort(f.LocalAddr().String()) == moved {
					if _, err := f.Write([]byte("again")); err != nil {
						t.Fatal(err)
					}
				}
			}
			p := readers[1].next(t, time.Now().Add(5*time.Second), "the moved flow's next datagram on queue 1", func(p []byte) bool {
				src, ok := udpFrom(p, target)
				return ok && src == moved && strings.HasSuffix(string(p), "again")
			})
			if len(p) == 0 {
				t.Fatal("no datagram")
			}
			st := d.QueueStats()
			if st[0].RxPackets == 0 || st[1].RxPackets == 0 || st[0].TxPackets == 0 || st[1].TxPackets == 0 {
				t.Errorf("per-queue counters: %+v", st)
			}
			if sum := d.Stats(); sum.RxPackets != st[0].RxPackets+st[1].RxPackets {
				t.Errorf("device counters %+v are not the sum of the queues' %+v", sum, st)
			}
		})
	}
}

// Open refuses a queue count out of range and says what the range is.
func TestMultiQueueConfig(t *testing.T) {
	host := netip.MustParsePrefix("198.18.0.1/30")
	for _, n := range []int{-1, MaxQueues + 1} {
		_, err := Open(Config{Name: "ustk0", HostAddr: host, Queues: n})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("use 1 to %d", MaxQueues)) {
			t.Errorf("Queues %d: %v", n, err)
		}
	}
}
