package link

// Offloader is an Endpoint that does the per-segment work of TCP itself, as
// a NIC with TSO, GRO and checksum offload does (a TUN device with the
// virtio-net header: the kernel on the other side does it). A stack that
// finds it uses ReadOffload and WriteOffload instead of ReadBatch and
// WriteBatch, so that one packet and one system call carry up to 64 KiB of
// a TCP stream instead of one MTU's worth.
//
// Wrappers (Impair, Tap) hide the capability unless they implement it
// themselves: an endpoint that drops or rewrites single packets cannot pass
// 64 KiB super-packets through as if they were one.
type Offloader interface {
	Endpoint

	// OffloadMaxSize is the largest packet ReadOffload returns and
	// WriteOffload accepts (at most MaxPacket).
	OffloadMaxSize() int

	// ReadOffload is ReadBatch, except that a TCP packet may be larger than
	// the MTU (segments the sender's kernel never cut, or coalesced), and
	// that csumOK[i] reports whether packet i's transport checksum is known
	// to be good and need not be verified (it came from the local kernel,
	// which leaves the checksum to the device, or the device checked it).
	// When csumOK[i] is false the checksum must be verified as usual.
	ReadOffload(bufs [][]byte, sizes []int, csumOK []bool, offset int) (int, error)

	// WriteOffload is WriteBatch, except that a TCP/IPv4 packet i larger
	// than the MTU is cut by the endpoint into segments carrying at most
	// segSize[i] payload bytes each, every one with the packet's IP and
	// TCP headers (sequence numbers advanced; FIN and PSH on the last
	// only). For such a packet the IP header checksum must be valid and the
	// TCP checksum field must hold the folded, uncomplemented sum of the
	// pseudo-header (header.SetTCPPartialChecksum); the endpoint completes each
	// segment's checksum. segSize[i] is ignored for packets within the MTU,
	// which must be complete.
	//
	// payloads, if not nil, holds per packet the bytes that follow
	// bufs[i][offset:] (nil for none): packet i is the two together, which
	// the endpoint writes without joining them first (writev), so that a
	// payload goes from the stack's send buffer to the device with one
	// copy, the kernel's.
	WriteOffload(bufs [][]byte, offset int, payloads [][]byte, segSize []int) (int, error)
}
