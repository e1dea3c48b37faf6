package tun

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"

	"ustack/stack/header"
)

func tcp4(payload int) []byte {
	p := make([]byte, 20+20+payload)
	p[0], p[9] = 0x45, header.ProtoTCP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[20+12] = 5 << 4
	return p
}

func tcp6(payload int) []byte {
	p := make([]byte, 40+20+payload)
	p[0], p[6] = 0x60, header.ProtoTCP
	binary.BigEndian.PutUint16(p[4:], uint16(20+payload))
	p[40+12] = 5 << 4
	return p
}

// The header of a TSO unit asks the kernel to cut it at segSize and to
// complete the checksum; a packet within the MTU only needs the checksum.
func TestTCPOffloadHeader(t *testing.T) {
	for _, c := range []struct {
		name string
		pkt  []byte
		gso  uint8
		hdr  uint16
	}{
		{"ipv4 unit", tcp4(10 * 1448), unix.VIRTIO_NET_HDR_GSO_TCPV4, 40},
		{"ipv6 unit", tcp6(10 * 1428), unix.VIRTIO_NET_HDR_GSO_TCPV6, 60},
		{"ipv4 small", tcp4(100), unix.VIRTIO_NET_HDR_GSO_NONE, 40},
	} {
		h, ok := tcpOffloadHdr(c.pkt, 0, 1448, 1500)
		if c.name == "ipv6 unit" {
			h, ok = tcpOffloadHdr(c.pkt, 0, 1428, 1500)
		}
		if !ok || h.gsoType != c.gso || h.hdrLen != c.hdr || h.flags != unix.VIRTIO_NET_HDR_F_NEEDS_CSUM || h.csumOffset != 16 || int(h.csumStart) != int(c.hdr)-20 {
			t.Errorf("%s: %+v ok=%v", c.name, h, ok)
		}
	}
	// A unit whose payload comes apart from its headers (writev): the
	// headers alone are within the MTU, the packet is not.
	if h, ok := tcpOffloadHdr(tcp4(0), 10*1448, 1448, 1500); !ok || h.gsoType != unix.VIRTIO_NET_HDR_GSO_TCPV4 || h.gsoSize != 1448 || h.hdrLen != 40 {
		t.Errorf("headers of a unit with its payload apart: %+v ok=%v", h, ok)
	}
	if _, ok := tcpOffloadHdr(tcp4(10*1448), 0, 1480, 1500); ok {
		t.Error("a segment size that does not fit the MTU was accepted")
	}
	udp := tcp4(100)
	udp[9] = header.ProtoUDP
	if _, ok := tcpOffloadHdr(udp, 0, 1448, 1500); ok {
		t.Error("a UDP packet was taken for TCP offload")
	}
}

// A super-packet read whole has its IP length made right (the stack trusts
// it), and the checksum flags say whether the stack must verify.
func TestParseOffloadFrame(t *testing.T) {
	frame := func(flags, gso uint8, pkt []byte) []byte {
		f := make([]byte, virtioNetHdrLen+len(pkt))
		h := virtioNetHdr{flags: flags, gsoType: gso}
		h.encode(f)
		copy(f[virtioNetHdrLen:], pkt)
		return f
	}
	big := tcp4(20000)
	binary.BigEndian.PutUint16(big[2:], 1500) // as some kernels leave it
	size, ok, good := parseOffloadFrame(frame(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, unix.VIRTIO_NET_HDR_GSO_TCPV4, big))
	if !good || !ok || size != len(big) {
		t.Fatalf("ipv4 super-packet: size %d csumOK %v good %v", size, ok, good)
	}
	f := frame(0, unix.VIRTIO_NET_HDR_GSO_TCPV4, big)
	parseOffloadFrame(f)
	if got := binary.BigEndian.Uint16(f[virtioNetHdrLen+2:]); int(got) != len(big) {
		t.Errorf("total length %d, want %d", got, len(big))
	}
	if header.Checksum(f[virtioNetHdrLen:virtioNetHdrLen+20], 0) != 0xffff {
		t.Error("the IPv4 header checksum is wrong after the fix-up")
	}
	six := tcp6(20000)
	if size, _, good := parseOffloadFrame(frame(0, unix.VIRTIO_NET_HDR_GSO_TCPV6, six)); !good || size != len(six) {
		t.Errorf("ipv6 super-packet: size %d good %v", size, good)
	}
	if _, ok, good := parseOffloadFrame(frame(0, unix.VIRTIO_NET_HDR_GSO_NONE, tcp4(10))); !good || ok {
		t.Errorf("a plain packet without checksum flags: csumOK %v good %v", ok, good)
	}
	if _, _, good := parseOffloadFrame(frame(0, unix.VIRTIO_NET_HDR_GSO_TCPV4, tcp6(100))); good {
		t.Error("an IPv6 packet under an IPv4 GSO type was accepted")
	}
	if _, _, good := parseOffloadFrame(make([]byte, 5)); good {
		t.Error("a runt frame was accepted")
	}
}
