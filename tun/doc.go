// Package tun gives the stack a real link: a Linux TUN device, configured
// through netlink, adapted to link.Endpoint, plus the network-namespace helpers
// that tests and commands use to keep every packet inside a namespace they own.
//
// # The device
//
// Open creates a TUN device in the network namespace of the calling thread,
// gives its kernel side an address (Config.HostAddr, e.g. 198.18.0.1/30) and
// optionally an IPv6 one (Config.HostAddr6, e.g. 2001:2::1/64, usable at once:
// no duplicate address detection, no link-local address, no router
// solicitations), sets the MTU and brings the link up. The kernel then routes
// the rest of those prefixes (e.g. 198.18.0.2 and 2001:2::2, the stack's
// addresses) into the device, and the stack reads those packets with
// ReadBatch and answers with WriteBatch. Without HostAddr6, IPv6 is off on
// the device.
// Close removes the device; a failed Open leaves nothing behind.
//
// Packet I/O goes through golang.zx2c4.com/wireguard/tun, which brings:
//
//   - the virtio-net header (IFF_VNET_HDR) and the offloads TUNSETOFFLOAD
//     turns on (checksum, TSO4/6, and USO on Linux >= 6.2). With them the
//     kernel may hand over one TCP "super-packet" of up to 64 KiB, which
//     wireguard splits into MSS-sized segments (TSO on read), and checksums
//     left partial by the kernel are completed. On write, consecutive TCP
//     segments of one flow in a batch are coalesced into one super-packet
//     (GRO), so the kernel processes one skb instead of dozens.
//   - batches: with offloads, BatchSize is 128 (wireguard's IdealBatchSize):
//     one read(2) returns one packet or one super-packet, and a 64 KiB
//     super-packet split at an MSS of 512 or more needs at most 128 buffers.
//     Without offloads (Config.NoOffload, or a kernel without them) every
//     read returns one packet and BatchSize is 1.
//
// # Buffers, offsets and copies
//
// wireguard's Write needs offset >= 10 (the virtio-net header is written in
// front of each packet) and, to coalesce, spare capacity behind the first
// packet of each flow; it also rewrites packet headers and swaps the slice
// elements it was given. link.Endpoint promises the caller that only the
// headroom is touched, so with offloads WriteBatch copies each packet into
// the device's own buffers (one 64 KiB buffer per batch slot, allocated on
// first use: up to 128 x 64 KiB) and hands those to wireguard. Without
// offloads the caller's buffers are written as they are.
//
// wireguard's Read with offloads reads into its own 64 KiB buffer and copies
// (or splits) into the caller's buffers, so any offset works. ReadBatch
// passes the caller's buffers straight through when there are at least
// BatchSize of them and each holds an MTU-sized packet after offset
// (link.Headroom+MTU is enough). Otherwise it reads into internal buffers and
// hands the packets out over as many calls as the caller needs: nothing a
// super-packet split produces is lost because the caller's batch was short.
// A packet that does not fit the caller's buffer is dropped and counted (and
// link.ErrShortBuffer returned if it is the first of a call), as link.Pipe
// does.
//
// The MTU is fixed by Open; raising the kernel side's MTU behind the device's
// back is not supported.
//
// # Queues
//
// With Config.Queues > 1 the device is a multi-queue one (IFF_MULTI_QUEUE):
// Open opens /dev/net/tun once per queue, attaches each descriptor to the
// device by name and wraps it in a wireguard-go tun with the same offloads.
// Device.Queues returns the queues, each a link.Endpoint (and
// link.Offloader) with its own buffers, locks and counters, to be read and
// written concurrently; Device itself reads and writes the first, and its
// Close closes them all. The kernel sends a new flow to the queue its hash
// chooses and, once a packet of the flow was written on a queue, to that
// queue (tun's flow table), so a reader that answers on its own queue keeps
// its flows. Stats and Each sum the queues; QueueStats tells them apart.
//
// # Namespaces
//
// NewNamespace creates a named network namespace (ustack-<purpose>-<pid>-<n>,
// visible to `ip netns`), with lo up. Namespace.Do runs a function on an OS
// thread switched into it (the thread is discarded afterwards), OpenTUN opens
// a device inside it (the file descriptor stays bound to that namespace
// wherever it is used from), Command runs a program inside it through
// `ip netns exec`, and Close deletes it. Leftovers lists what a process
// created and did not remove, so tests can assert that nothing remains, and
// RemoveStaleNamespaces deletes the namespaces of processes that died
// before their cleanup ran.
//
// Network safety: tests in this package use 198.18.0.0/15 and 2001:2::/48
// addresses only, only inside namespaces they created, and delete those
// namespaces on the way out, failure included.
package tun
