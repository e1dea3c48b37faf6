package link

import (
	"net"
	"sync"

	"ustack/stack/counter"
)

// PipeEnd is one end of an in-memory link made by Pipe. What one end writes,
// the other reads. Like a real link it has a bounded queue: a packet written
// to a full queue is dropped and counted, never blocks the writer (a blocking
// link would deadlock two stacks that each write while processing input).
type PipeEnd struct {
	mtu  int
	in   *pipeQueue // packets for this end to read
	peer *PipeEnd

	drops *counter.Set[pipeDrop] // packets this end could not write; see Each

	spread *spreader // MultiPipe's single end: writes go to one queue per flow
}

type pipeQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	pkts   [][]byte
	free   [][]byte // recycled packet buffers
	limit  int
	closed bool
}

// DefaultPipeQueue is the queue length (packets) of each direction of a Pipe.
const DefaultPipeQueue = 4096

// Pipe returns the two ends of an in-memory link with the given MTU and a
// queue of DefaultPipeQueue packets in each direction.
func Pipe(mtu int) (*PipeEnd, *PipeEnd) { return PipeWithQueue(mtu, DefaultPipeQueue) }

// PipeWithQueue is Pipe with a chosen queue length.
func PipeWithQueue(mtu, queue int) (*PipeEnd, *PipeEnd) {
	a := &PipeEnd{mtu: mtu, in: newPipeQueue(queue), drops: newPipeDrops()}
	b := &PipeEnd{mtu: mtu, in: newPipeQueue(queue), drops: newPipeDrops()}
	a.peer, b.peer = b, a
	return a, b
}

func newPipeDrops() *counter.Set[pipeDrop] { return counter.NewSet("drop_", numPipeDrops) }

func newPipeQueue(limit int) *pipeQueue {
	q := &pipeQueue{limit: limit}
	q.cond.L = &q.mu
	return q
}

// MTU implements Endpoint.
func (p *PipeEnd) MTU() int { return p.mtu }

// BatchSize implements Endpoint.
func (p *PipeEnd) BatchSize() int { return 64 }

// WriteBatch implements Endpoint. Packets larger than the MTU are dropped and
// counted, as a real link would.
func (p *PipeEnd) WriteBatch(bufs [][]byte, offset int) (int, error) {
	if p.spread != nil {
		return p.spread.write(p, bufs, offset)
	}
	q := p.peer.in
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, net.ErrClosed
	}
	for _, b := range bufs {
		p.put(q, b[offset:])
	}
	q.cond.Signal()
	return len(bufs), nil
}

// put appends a copy of pkt to q, or drops and counts it: larger than
// the MTU, or q full. q.mu is held.
func (p *PipeEnd) put(q *pipeQueue, pkt []byte) {
	if len(pkt) > p.mtu {
		p.drops.Inc(dropTooBig)
		return
	}
	if len(q.pkts) >= q.limit {
		p.drops.Inc(dropPeerFull)
		return
	}
	var c []byte
	if n := len(q.free); n > 0 {
		c = q.free[n-1][:0]
		q.free = q.free[:n-1]
	}
	q.pkts = append(q.pkts, append(c, pkt...))
}

// ReadBatch implements Endpoint.
func (p *PipeEnd) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	q := p.in
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.pkts) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.pkts) == 0 {
		return 0, net.ErrClosed
	}
	n := 0
	for n < len(bufs) && n < len(q.pkts) {
		pkt := q.pkts[n]
		if len(bufs[n])-offset < len(pkt) {
			if n == 0 {
				q.pkts = q.pkts[1:]
				return 0, ErrShortBuffer
			}
			break
		}
		sizes[n] = copy(bufs[n][offset:], pkt)
		if len(q.free) < 256 {
			q.free = append(q.free, pkt)
		}
		n++
	}
	rest := copy(q.pkts, q.pkts[n:])
	clear(q.pkts[rest:])
	q.pkts = q.pkts[:rest]
	return n, nil
}

// Close closes this end: reads on it return net.ErrClosed once drained,
// and writes from the peer fail.
func (p *PipeEnd) Close() error {
	q := p.in
	q.mu.Lock()
	q.closed = true
	q.pkts = nil
	q.cond.Broadcast()
	q.mu.Unlock()
	return nil
}
