// Package link defines the batched packet link that the stack runs on, and the
// in-memory and decorating endpoints built on it: Pipe (an in-memory pair), and
// the wrappers for impairment and capture.
//
// The shape follows wireguard-go's tun.Device: packets move in batches, and each
// buffer reserves headroom before the packet so that a device can prepend its
// own header (the virtio-net header of a TUN with offloads) without a copy.
package link

import "errors"

// Headroom is the number of bytes every packet buffer reserves before the
// packet. Endpoints may write into bufs[i][:offset].
const Headroom = 32

// MaxPacket is the largest packet (IP header included) an Endpoint passes.
const MaxPacket = 65535

// Endpoint is a batched IP packet link.
//
// ReadBatch blocks until at least one packet is available, then fills up to
// len(bufs) packets: packet i is copied to bufs[i][offset:] and its length is
// stored in sizes[i]. It returns the number of packets read. After Close it
// returns net.ErrClosed.
//
// WriteBatch sends the packets bufs[i][offset:]; the bytes bufs[i][:offset]
// are headroom the endpoint may overwrite. The caller keeps ownership of the
// buffers: the endpoint copies what it keeps. It returns the number of packets
// accepted.
type Endpoint interface {
	ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error)
	WriteBatch(bufs [][]byte, offset int) (int, error)
	// BatchSize is the preferred (and maximum useful) number of packets per call.
	BatchSize() int
	// MTU is the largest IP packet the link carries.
	MTU() int
	Close() error
}

// ReadBuffers makes what ReadBatch needs to read n packets of up to size
// bytes at offset Headroom: n buffers of Headroom+size bytes, and n sizes.
func ReadBuffers(n, size int) (bufs [][]byte, sizes []int) {
	bufs = make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, Headroom+size)
	}
	return bufs, make([]int, n)
}

// ErrShortBuffer is returned when a read buffer cannot hold a packet.
var ErrShortBuffer = errors.New("link: buffer too small for packet")
