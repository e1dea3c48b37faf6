package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"ustack/stack/header"
	"ustack/stack/link"
)

// The offload path (link.Offloader) reads and writes the device's file
// directly, virtio-net header and all, instead of going through wireguard's
// Read (which cuts every super-packet into MTU segments and computes their
// checksums) and Write (which tries to coalesce segments again and
// re-verifies their checksums). A TCP super-packet the kernel hands over
// reaches the stack whole; one the stack builds leaves whole, and the
// kernel cuts it (include/linux/virtio_net.h, virtio_net_hdr_to_skb).

// virtioNetHdr is struct virtio_net_hdr (include/uapi/linux/virtio_net.h),
// in the host's byte order: a TUN device without TUNSETVNETLE/BE uses the
// legacy, native-endian layout.
type virtioNetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

func (h *virtioNetHdr) decode(b []byte) {
	h.flags, h.gsoType = b[0], b[1]
	h.hdrLen = binary.NativeEndian.Uint16(b[2:])
	h.gsoSize = binary.NativeEndian.Uint16(b[4:])
	h.csumStart = binary.NativeEndian.Uint16(b[6:])
	h.csumOffset = binary.NativeEndian.Uint16(b[8:])
}

func (h *virtioNetHdr) encode(b []byte) {
	b[0], b[1] = h.flags, h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}

// OffloadMaxSize implements link.Offloader: 64 KiB with offloads on, else
// 0 (the stack then uses ReadBatch and WriteBatch).
func (q *Queue) OffloadMaxSize() int {
	if !q.d.offload {
		return 0
	}
	return link.MaxPacket
}

var errOffloadOff = errors.New("tun: offloads are off on this device (OffloadMaxSize is 0)")

// ReadOffload implements link.Offloader: one packet per call, read straight
// into bufs[0] behind its virtio-net header, without a copy. A TCP
// super-packet (GSO_TCPV4 or GSO_TCPV6) stays whole; so does a UDP one, which no TCP
// consumer wants but a read-and-drop one can count. csumOK[0] is set when the
// kernel left the checksum to the device (NEEDS_CSUM: locally built, correct
// by construction) or says it checked it (DATA_VALID).
func (q *Queue) ReadOffload(bufs [][]byte, sizes []int, csumOK []bool, offset int) (int, error) {
	if !q.d.offload {
		return 0, errOffloadOff
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	if len(sizes) == 0 || len(csumOK) == 0 {
		return 0, errors.New("tun: ReadOffload: sizes and csumOK need room for one packet")
	}
	if offset < virtioNetHdrLen || len(bufs[0])-offset < link.MaxPacket {
		return 0, fmt.Errorf("tun: ReadOffload: need offset >= %d and %d bytes after it", virtioNetHdrLen, link.MaxPacket)
	}
	q.rmu.Lock()
	defer q.rmu.Unlock()
	for {
		if q.closed.Load() {
			return 0, net.ErrClosed
		}
		if q.pendI < q.pendN {
			// Left over from a ReadBatch through wireguard's path.
			n, err := q.handOut(bufs, sizes, offset)
			clear(csumOK[:n])
			return n, err
		}
		frame := bufs[0][offset-virtioNetHdrLen : offset+link.MaxPacket]
		n, err := q.file.Read(frame)
		if err != nil {
			if q.closed.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EBADFD) {
				return 0, net.ErrClosed
			}
			return 0, fmt.Errorf("tun: reading %s: %w", q.d.name, err)
		}
		size, ok, good := parseOffloadFrame(frame[:n])
		if !good {
			q.cnt.Drop(dropMalformed)
			continue
		}
		if size > q.d.mtu {
			q.cnt.Inc(evRxSuper)
		}
		q.cnt.Inc(evRxPackets)
		sizes[0], csumOK[0] = size, ok
		return 1, nil
	}
}

// parseOffloadFrame checks the virtio-net header in front of a packet read
// from the device and returns the packet's size and whether its transport
// checksum needs no verification; good is false for a frame to drop.
func parseOffloadFrame(frame []byte) (size int, csumOK, good bool) {
	if len(frame) <= virtioNetHdrLen {
		return 0, false, false
	}
	var h virtioNetHdr
	h.decode(frame)
	pkt := frame[virtioNetHdrLen:]
	csumOK = h.flags&(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM|unix.VIRTIO_NET_HDR_F_DATA_VALID) != 0
	switch h.gsoType {
	case unix.VIRTIO_NET_HDR_GSO_NONE:
		return len(pkt), csumOK, true
	case unix.VIRTIO_NET_HDR_GSO_TCPV4, unix.VIRTIO_NET_HDR_GSO_UDP_L4:
		return fixIPv4Length(pkt), csumOK, fixIPv4Length(pkt) > 0
	case unix.VIRTIO_NET_HDR_GSO_TCPV6:
		return fixIPv6Length(pkt), csumOK, fixIPv6Length(pkt) > 0
	}
	return 0, false, false // ECN GSO: never negotiated
}

// fixIPv4Length makes a super-packet's IPv4 total length (and so its
// header checksum) the whole packet's, as the stack trusts it; 0 if pkt is
// not IPv4.
func fixIPv4Length(pkt []byte) int {
	if len(pkt) < header.IPv4MinHeaderLen || pkt[0]>>4 != 4 {
		return 0
	}
	if int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) {
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < header.IPv4MinHeaderLen || ihl > len(pkt) {
			return 0
		}
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		pkt[10], pkt[11] = 0, 0
		binary.BigEndian.PutUint16(pkt[10:], ^header.Checksum(pkt[:ihl], 0))
	}
	return len(pkt)
}

// fixIPv6Length is fixIPv4Length for IPv6's payload length; 0 if pkt is
// not IPv6.
func fixIPv6Length(pkt []byte) int {
	const ipv6HeaderLen = 40
	if len(pkt) < ipv6HeaderLen || pkt[0]>>4 != 6 || len(pkt)-ipv6HeaderLen > 0xffff {
		return 0
	}
	binary.BigEndian.PutUint16(pkt[4:], uint16(len(pkt)-ipv6HeaderLen))
	return len(pkt)
}

// WriteOffload implements link.Offloader: each packet is written whole,
// behind a virtio-net header built in its headroom, one write(2) each, or
// one writev(2) of the headers and the payload when a payload comes apart.
// A packet with segSize > 0 has a partial TCP checksum, which the kernel
// completes (NEEDS_CSUM); if it is larger than the MTU the kernel also cuts
// it into segments of segSize payload bytes (GSO_TCPV4).
func (q *Queue) WriteOffload(bufs [][]byte, offset int, payloads [][]byte, segSize []int) (int, error) {
	if !q.d.offload {
		return 0, errOffloadOff
	}
	if offset < virtioNetHdrLen {
		return 0, fmt.Errorf("tun: WriteOffload: offset %d < %d", offset, virtioNetHdrLen)
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.closed.Load() {
		return 0, net.ErrClosed
	}
	var errs error
	for i, b := range bufs {
		pkt := b[offset:]
		var pay []byte
		if i < len(payloads) {
			pay = payloads[i]
		}
		h := virtioNetHdr{}
		if i < len(segSize) && segSize[i] > 0 {
			var ok bool
			if h, ok = tcpOffloadHdr(pkt, len(pay), segSize[i], q.d.mtu); !ok {
				q.cnt.Inc(evTxErrors)
				errs = errors.Join(errs, fmt.Errorf("tun: WriteOffload: packet %d is not a TCP packet fit for offload", i))
				continue
			}
		} else if size := len(pkt) + len(pay); size == 0 || size > q.d.mtu {
			q.cnt.Inc(evTxErrors)
			errs = errors.Join(errs, fmt.Errorf("tun: WriteOffload: packet %d: %d bytes for a link of MTU %d", i, size, q.d.mtu))
			continue
		}
		h.encode(b[offset-virtioNetHdrLen:])
		var err error
		if len(pay) > 0 {
			err = q.wv.write(b[offset-virtioNetHdrLen:], pay)
		} else {
			_, err = q.file.Write(b[offset-virtioNetHdrLen:])
		}
		if err != nil {
			if q.closed.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EBADFD) {
				return i, net.ErrClosed
			}
			q.cnt.Inc(evTxErrors)
			errs = errors.Join(errs, err)
			continue
		}
		if len(pkt)+len(pay) > q.d.mtu {
			q.cnt.Inc(evTxSuper)
		}
		q.cnt.Inc(evTxPackets)
	}
	if errs != nil {
		return len(bufs), fmt.Errorf("tun: writing to %s: %w", q.d.name, errs)
	}
	return len(bufs), nil
}

// tcpOffloadHdr is the virtio-net header for a TCP packet (IPv4, or IPv6
// without extension headers, as the stack sends it) with a partial
// checksum, cut into segSize-byte segments if it exceeds the MTU. pkt holds
// its headers and the first of its payload; more follow, when it comes in
// two pieces.
func tcpOffloadHdr(pkt []byte, more, segSize, mtu int) (virtioNetHdr, bool) {
	var ihl int
	gso := uint8(unix.VIRTIO_NET_HDR_GSO_TCPV4)
	switch {
	case len(pkt) >= header.IPv4MinHeaderLen && pkt[0]>>4 == 4 && pkt[9] == header.ProtoTCP:
		ihl = int(pkt[0]&0x0f) * 4
		if ihl < header.IPv4MinHeaderLen {
			return virtioNetHdr{}, false
		}
	case len(pkt) >= 40 && pkt[0]>>4 == 6 && pkt[6] == header.ProtoTCP:
		ihl, gso = 40, unix.VIRTIO_NET_HDR_GSO_TCPV6
	default:
		return virtioNetHdr{}, false
	}
	if len(pkt) < ihl+header.TCPMinHeaderLen {
		return virtioNetHdr{}, false
	}
	thl := int(pkt[ihl+12]>>4) * 4
	if thl < header.TCPMinHeaderLen || len(pkt) < ihl+thl {
		return virtioNetHdr{}, false
	}
	h := virtioNetHdr{
		flags:      unix.VIRTIO_NET_HDR_F_NEEDS_CSUM,
		hdrLen:     uint16(ihl + thl),
		csumStart:  uint16(ihl),
		csumOffset: 16, // the TCP checksum field
	}
	if len(pkt)+more > mtu {
		if segSize <= 0 || ihl+thl+segSize > mtu {
			return virtioNetHdr{}, false
		}
		h.gsoType = gso
		h.gsoSize = uint16(segSize)
	}
	return h, true
}

// writev writes one packet from two pieces with one writev(2), through the
// file's poller as its Write does. Its iovecs live in the queue (under
// wmu), so that a write allocates nothing.
type writev struct {
	rc  syscall.RawConn
	iov [2]unix.Iovec
	fn  func(fd uintptr) bool // w.once, made once
	n   int
	err error
}

func (w *writev) init(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("tun: the device's file: %w", err)
	}
	w.rc, w.fn = rc, w.once
	return nil
}

// write writes a, then b, as one packet; both are not empty.
func (w *writev) write(a, b []byte) error {
	w.iov[0].Base, w.iov[1].Base = &a[0], &b[0]
	w.iov[0].SetLen(len(a))
	w.iov[1].SetLen(len(b))
	err := w.rc.Write(w.fn)
	w.iov[0].Base, w.iov[1].Base = nil, nil // keep no packet alive
	if err == nil {
		err = w.err
	}
	if err == nil && w.n != len(a)+len(b) {
		err = fmt.Errorf("tun: short write: %d of %d bytes", w.n, len(a)+len(b))
	}
	return err
}

func (w *writev) once(fd uintptr) bool {
	n, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(len(w.iov)))
	w.n, w.err = int(n), nil
	if e != 0 {
		w.n, w.err = 0, os.NewSyscallError("writev", e)
	}
	return e != unix.EAGAIN
}
