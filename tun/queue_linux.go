package tun

// A queue's packet I/O: what one file descriptor of the device reads and
// writes, through internal buffers when the caller's are too short.
// device_linux.go creates the device and attaches its queues.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	wgtun "golang.zx2c4.com/wireguard/tun"

	"ustack/stack/link"
)

// Queue is one queue of a Device: a file descriptor of /dev/net/tun
// attached to the device, wrapped by wireguard-go's tun.
type Queue struct {
	d    *Device
	idx  int
	dev  wgtun.Device
	file *os.File // the queue's file, for the offload path (offload_linux.go)

	rmu    sync.Mutex
	rbufs  [][]byte // internal read buffers, for callers with short batches or buffers
	rsizes []int
	pendI  int // rbufs[pendI:pendN] hold packets not yet handed out
	pendN  int

	wmu   sync.Mutex
	wbufs [][]byte // offload mode: the copies wireguard may rewrite and extend
	wq    [][]byte
	wv    writev // offload mode: a packet written from two pieces

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	cnt counters
}

func (q *Queue) initReadBuffers() {
	q.rbufs = make([][]byte, q.d.batch)
	for i := range q.rbufs {
		q.rbufs[i] = make([]byte, q.d.mtu)
	}
	q.rsizes = make([]int, q.d.batch)
}

// ReadBatch implements link.Endpoint. See the package documentation for
// when it copies through internal buffers.
func (q *Queue) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	if len(sizes) < len(bufs) {
		return 0, errors.New("tun: ReadBatch: len(sizes) < len(bufs)")
	}
	q.rmu.Lock()
	defer q.rmu.Unlock()
	for {
		if q.closed.Load() {
			return 0, net.ErrClosed
		}
		if q.pendI < q.pendN {
			return q.handOut(bufs, sizes, offset)
		}
		direct := len(bufs) >= q.d.batch && fits(bufs[:q.d.batch], offset, q.d.mtu)
		var n int
		var err error
		if direct {
			n, err = q.dev.Read(bufs[:q.d.batch], sizes[:q.d.batch], offset)
		} else {
			n, err = q.dev.Read(q.rbufs, q.rsizes, 0)
		}
		n, err = q.readResult(n, err)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			continue
		}
		if n > 1 {
			q.cnt.Inc(evRxSplits)
		}
		if direct {
			q.cnt.Add(evRxPackets, uint64(n))
			return n, nil
		}
		q.pendI, q.pendN = 0, n
	}
}

func fits(bufs [][]byte, offset, mtu int) bool {
	for _, b := range bufs {
		if len(b)-offset < mtu {
			return false
		}
	}
	return true
}

// readResult sorts wireguard's read errors: the device closed, a system call
// failing (returned), or one read's packet unusable (dropped and counted;
// the caller reads again).
func (q *Queue) readResult(n int, err error) (int, error) {
	switch {
	case err == nil:
		return n, nil
	case q.closed.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed):
		return 0, net.ErrClosed
	case errors.Is(err, wgtun.ErrTooManySegments):
		// The segments that fit are good; the rest of the super-packet is
		// lost, and TCP will retransmit it.
		q.cnt.Drop(dropTooManySegments)
		return max(n, 0), nil
	}
	var errno syscall.Errno
	var pathErr *os.PathError
	if errors.As(err, &errno) || errors.As(err, &pathErr) {
		return 0, fmt.Errorf("tun: reading %s: %w", q.d.name, err)
	}
	// A malformed virtio-net header, an unsupported GSO type, a packet too
	// big for the buffer: wireguard's parse errors.
	q.cnt.Drop(dropMalformed)
	return 0, nil
}

// handOut copies pending packets from the internal buffers to the caller's.
func (q *Queue) handOut(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	for n < len(bufs) && q.pendI < q.pendN {
		pkt := q.rbufs[q.pendI][:q.rsizes[q.pendI]]
		if len(bufs[n])-offset < len(pkt) {
			if n > 0 {
				break // try it as the first packet of the next call
			}
			q.pendI++
			q.cnt.Drop(dropShortBuffer)
			return 0, link.ErrShortBuffer
		}
		sizes[n] = copy(bufs[n][offset:], pkt)
		q.pendI++
		n++
	}
	q.cnt.Add(evRxPackets, uint64(n))
	return n, nil
}

// WriteBatch implements link.Endpoint. It returns len(bufs) unless the device
// is closed; an error otherwise means the kernel refused some packets, which
// are dropped as on any lossy link. Empty packets are dropped (see prepare).
func (q *Queue) WriteBatch(bufs [][]byte, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.closed.Load() {
		return 0, net.ErrClosed
	}
	var errs error
	for start := 0; start < len(bufs); start += q.d.batch {
		// wireguard's GRO tables hold at most IdealBatchSize flows per call.
		pkts, qoff := q.prepare(bufs[start:min(start+q.d.batch, len(bufs))], offset)
		if len(pkts) == 0 {
			continue
		}
		_, err := q.dev.Write(pkts, qoff)
		if err != nil {
			if q.closed.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
				return start, net.ErrClosed
			}
			q.cnt.Inc(evTxErrors)
			errs = errors.Join(errs, err)
		}
		q.cnt.Add(evTxPackets, uint64(len(pkts)))
	}
	if errs != nil {
		return len(bufs), fmt.Errorf("tun: writing to %s: %w", q.d.name, errs)
	}
	return len(bufs), nil
}

// prepare returns what to hand to wireguard's Write, and at which offset.
// With offloads, the packets are copied into the device's write buffers,
// which have room for the virtio-net header in front and the capacity GRO
// needs behind. Without, the caller's buffers go as they are. Either way,
// empty packets are left out: the kernel would refuse them, and wireguard's
// GRO would reject the whole batch for one.
func (q *Queue) prepare(bufs [][]byte, offset int) ([][]byte, int) {
	if !q.d.offload {
		empty := false
		for _, b := range bufs {
			empty = empty || len(b) <= offset
		}
		if !empty {
			return bufs, offset
		}
	}
	q.wq = q.wq[:0]
	for _, b := range bufs {
		if len(b) <= offset {
			continue
		}
		if !q.d.offload {
			q.wq = append(q.wq, b)
			continue
		}
		i := len(q.wq)
		if i == len(q.wbufs) {
			q.wbufs = append(q.wbufs, make([]byte, writeOffset, writeBufCap))
		}
		q.wq = append(q.wq, append(q.wbufs[i][:writeOffset], b[offset:]...))
	}
	if !q.d.offload {
		return q.wq, offset
	}
	return q.wq, writeOffset
}

// MTU implements link.Endpoint.
func (q *Queue) MTU() int { return q.d.mtu }

// BatchSize implements link.Endpoint: the device's.
func (q *Queue) BatchSize() int { return q.d.batch }

// Close implements link.Endpoint: it closes this queue only (the kernel
// detaches it and spreads flows over the others). Blocked ReadBatch calls
// on it return net.ErrClosed. Device.Close closes them all.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.closed.Store(true)
		err := q.dev.Close()
		if errors.Is(err, os.ErrClosed) {
			err = nil
		}
		q.closeErr = err
	})
	return q.closeErr
}
