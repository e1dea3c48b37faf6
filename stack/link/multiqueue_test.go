package link

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"ustack/stack/header"
)

// tcpPacket builds a minimal IPv4 or IPv6 TCP header pair from src to dst.
func tcpPacket(src, dst netip.AddrPort) []byte {
	var p []byte
	if src.Addr().Is4() {
		p = make([]byte, header.IPv4MinHeaderLen+header.TCPMinHeaderLen)
		p[0], p[9] = 0x45, header.ProtoTCP
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(p[12:], s[:])
		copy(p[16:], d[:])
		binary.BigEndian.PutUint16(p[20:], src.Port())
		binary.BigEndian.PutUint16(p[22:], dst.Port())
		return p
	}
	p = make([]byte, header.IPv6HeaderLen+header.TCPMinHeaderLen)
	p[0], p[6] = 0x60, header.ProtoTCP
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	binary.BigEndian.PutUint16(p[40:], src.Port())
	binary.BigEndian.PutUint16(p[42:], dst.Port())
	return p
}

// FlowHash is the same both ways and tells flows apart by their ports.
func TestFlowHashSymmetric(t *testing.T) {
	for _, pair := range [][2]string{{"198.18.0.1", "198.18.0.2"}, {"2001:2::1", "2001:2::2"}} {
		a, b := netip.MustParseAddr(pair[0]), netip.MustParseAddr(pair[1])
		seen := map[uint32]bool{}
		for port := uint16(40000); port < 40064; port++ {
			c, s := netip.AddrPortFrom(a, port), netip.AddrPortFrom(b, 80)
			h := FlowHash(tcpPacket(c, s))
			if back := FlowHash(tcpPacket(s, c)); back != h {
				t.Fatalf("%v -> %v hashes %#x, the way back %#x", c, s, h, back)
			}
			seen[h%2] = true
		}
		if len(seen) != 2 {
			t.Errorf("%s: 64 flows all hash to one of two queues", pair[0])
		}
	}
	if FlowHash(nil) != 0 || FlowHash([]byte{0x45}) != 0 {
		t.Error("a short packet should hash to 0")
	}
}

// A MultiPipe keeps each flow to one queue and carries what any queue
// writes to the single end.
func TestMultiPipe(t *testing.T) {
	m, single := MultiPipe(1500, 2)
	defer m.Close()
	defer single.Close()
	qs := m.Queues()
	if len(qs) != 2 {
		t.Fatalf("%d queues, want 2", len(qs))
	}
	srv := netip.MustParseAddrPort("198.18.0.2:80")
	perQueue := [2]int{}
	for port := uint16(40000); port < 40032; port++ {
		cl := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), port)
		pkt := tcpPacket(cl, srv)
		buf := append(make([]byte, Headroom), pkt...)
		if _, err := single.WriteBatch([][]byte{buf}, Headroom); err != nil {
			t.Fatal(err)
		}
		want := int(FlowHash(pkt) % 2)
		bufs, sizes := ReadBuffers(1, 1500)
		n, err := qs[want].(*PipeEnd).TryReadBatch(bufs, sizes, Headroom)
		if err != nil || n != 1 {
			t.Fatalf("flow %v: queue %d read %d, %v", cl, want, n, err)
		}
		perQueue[want]++
		// The answer, written on that queue, reaches the single end.
		back := append(make([]byte, Headroom), tcpPacket(srv, cl)...)
		if _, err := qs[want].WriteBatch([][]byte{back}, Headroom); err != nil {
			t.Fatal(err)
		}
		if n, err := single.TryReadBatch(bufs, sizes, Headroom); err != nil || n != 1 {
			t.Fatalf("flow %v: the single end read %d, %v", cl, n, err)
		}
	}
	if perQueue[0] == 0 || perQueue[1] == 0 {
		t.Errorf("32 flows over two queues: %v", perQueue)
	}
}
