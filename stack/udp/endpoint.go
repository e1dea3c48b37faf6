// Package udp is the stack's UDP (RFC 768): the demultiplexing table of
// endpoints, their bounded receive queues, and the input path that checks
// a datagram and hands it to its endpoint, counting every drop. It does no
// I/O: the stack builds outbound datagrams and sends the ICMP errors Input
// asks for, and blocks its callers on an Endpoint's queue. Where the RFCs
// (RFC 768, RFC 1122 §4.1, RFC 8085) leave a choice, it does what Linux
// does, and says so where it happens.
package udp

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// Receive buffer defaults, Linux's.
const (
	// DefaultRcvBuf is the receive queue's byte limit (Linux's
	// net.core.rmem_default, SO_RCVBUF's default).
	DefaultRcvBuf = 212992
	// Overhead is what each queued datagram is charged beyond its payload,
	// standing for Linux's sk_buff truesize, so that a flood of empty
	// datagrams is bounded too (about 830 of them at the default limit).
	// Linux charges more (768 bytes or over per small datagram); we keep
	// the limit and charge less.
	Overhead = 256
)

// ErrWouldBlock is what a non-blocking Read returns when nothing is queued.
var ErrWouldBlock = syscall.EAGAIN

// dgram is one queued datagram: its sender and a pooled buffer holding it.
type dgram struct {
	from netip.AddrPort
	buf  *[]byte
	n    int
}

// Endpoint is one UDP socket's binding and receive queue. Its methods may
// be called from any goroutine.
type Endpoint struct {
	// Local is the bound address and port; an invalid address: all of
	// the stack's. Remote is the peer of a connected endpoint, invalid
	// when unconnected. Both are fixed once the endpoint is in a Table.
	Local, Remote netip.AddrPort

	mu     sync.Mutex
	cond   sync.Cond
	q      []dgram // ring of cap(q) slots
	head   int
	count  int
	used   int // bytes charged: payloads plus Overhead each
	limit  int
	closed bool
	err    syscall.Errno // pending ICMP error (Linux's sk_err), reported once
	drops  atomic.Uint64
}

// NewEndpoint returns an unbound endpoint with the default receive limit.
func NewEndpoint(local, remote netip.AddrPort) *Endpoint {
	e := &Endpoint{Local: local, Remote: remote, limit: DefaultRcvBuf}
	e.cond.L = &e.mu
	return e
}

// Connected reports whether the endpoint has a peer.
func (e *Endpoint) Connected() bool { return e.Remote.IsValid() }

// SetReceiveLimit sets the receive queue's byte limit (SO_RCVBUF). As in
// Linux, a datagram is queued while the bytes charged are at most the
// limit before it, so one datagram always fits in an empty queue.
func (e *Endpoint) SetReceiveLimit(bytes int) {
	e.mu.Lock()
	e.limit = max(bytes, 0)
	e.mu.Unlock()
}

// Drops is the number of datagrams this endpoint dropped because its queue
// was full (Linux's SO_RXQ_OVFL count).
func (e *Endpoint) Drops() uint64 { return e.drops.Load() }

// Queued returns the datagrams and bytes (payloads) waiting.
func (e *Endpoint) Queued() (datagrams, bytes int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.count, e.used - e.count*Overhead
}

// deliver queues a copy of payload from from. It reports false, counting
// the drop, when the queue is over its limit or the endpoint is closed.
func (e *Endpoint) deliver(from netip.AddrPort, payload []byte) bool {
	bp := getBuf(len(payload))
	n := copy(*bp, payload)
	e.mu.Lock()
	// Linux's __udp_enqueue_schedule_skb: drop once the memory charged
	// exceeds sk_rcvbuf.
	if e.closed || e.used > e.limit {
		e.mu.Unlock()
		putBuf(bp)
		e.drops.Add(1)
		return false
	}
	if e.count == len(e.q) {
		e.grow()
	}
	e.q[(e.head+e.count)%len(e.q)] = dgram{from: from, buf: bp, n: n}
	e.count++
	e.used += n + Overhead
	e.cond.Signal()
	e.mu.Unlock()
	return true
}

// grow doubles the ring; e.mu is held. Steady state never grows it.
func (e *Endpoint) grow() {
	q := make([]dgram, max(2*len(e.q), 16))
	for i := 0; i < e.count; i++ {
		q[i] = e.q[(e.head+i)%len(e.q)]
	}
	e.q, e.head = q, 0
}

// Read copies the next datagram into b and returns its length (a datagram
// longer than b is cut to it, the rest discarded, as recvfrom does) and its
// sender. With block, it waits until a datagram arrives, the endpoint
// closes, an error is pending, or expired reports true (the caller calls
// Wake when a deadline passes); without, it returns ErrWouldBlock at once
// when nothing is queued.
//
// A pending ICMP error comes first, even before queued datagrams, and
// once, as Linux's __skb_recv_udp takes sock_error before the queue.
func (e *Endpoint) Read(b []byte, block bool, expired func() bool) (int, netip.AddrPort, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		if e.closed {
			return 0, netip.AddrPort{}, net.ErrClosed
		}
		if err := e.takeErrLocked(); err != nil {
			return 0, netip.AddrPort{}, err
		}
		if e.count > 0 {
			d := e.q[e.head]
			e.q[e.head] = dgram{}
			e.head = (e.head + 1) % len(e.q)
			e.count--
			e.used -= d.n + Overhead
			n := copy(b, (*d.buf)[:d.n])
			putBuf(d.buf)
			return n, d.from, nil
		}
		if !block {
			return 0, netip.AddrPort{}, ErrWouldBlock
		}
		if expired != nil && expired() {
			return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
		}
		e.cond.Wait()
	}
}

// Wake wakes every blocked reader, to look at its deadline again.
func (e *Endpoint) Wake() {
	e.mu.Lock()
	e.cond.Broadcast()
	e.mu.Unlock()
}

// SetError records an ICMP error for the application (Linux's sk_err),
// reported once by the next Read or TakeError, and wakes readers.
func (e *Endpoint) SetError(errno syscall.Errno) {
	e.mu.Lock()
	e.err = errno
	e.cond.Broadcast()
	e.mu.Unlock()
}

// TakeError returns and clears the pending error, as a send does (Linux's
// sock_alloc_send_pskb takes sock_error first).
func (e *Endpoint) TakeError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.takeErrLocked()
}

func (e *Endpoint) takeErrLocked() error {
	if e.err == 0 {
		return nil
	}
	err := e.err
	e.err = 0
	return os.NewSyscallError("udp", err)
}

// close drops the queue and wakes every reader; later datagrams are
// dropped. The Table calls it from Unbind.
func (e *Endpoint) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for e.count > 0 {
		d := e.q[e.head]
		e.q[e.head] = dgram{}
		e.head = (e.head + 1) % len(e.q)
		e.count--
		putBuf(d.buf)
	}
	e.used = 0
	e.cond.Broadcast()
}

// Closed reports whether the endpoint was closed.
func (e *Endpoint) Closed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Buffers of queued datagrams come from two pools: one for datagrams that
// fit a link MTU, one for reassembled ones up to the IPv4 maximum.
const smallBuf, bigBuf = 2048, 65536

var smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
var bigPool = sync.Pool{New: func() any { b := make([]byte, bigBuf); return &b }}

func getBuf(n int) *[]byte {
	if n <= smallBuf {
		return smallPool.Get().(*[]byte)
	}
	if n <= bigBuf {
		return bigPool.Get().(*[]byte)
	}
	b := make([]byte, n)
	return &b
}

func putBuf(bp *[]byte) {
	switch cap(*bp) {
	case smallBuf:
		smallPool.Put(bp)
	case bigBuf:
		bigPool.Put(bp)
	}
}
