package link

import (
	"encoding/binary"
	"net"
	"sync"

	"ustack/stack/header"
)

// MultiQueue is an Endpoint with several queues, each an Endpoint of its
// own that can be read and written independently of the others: a Linux
// TUN device opened with IFF_MULTI_QUEUE, whose kernel side spreads flows
// over the queues. A stack runs one reader per queue, so that as many
// cores as queues process input at once. What is written to any queue
// leaves on the one link; the endpoint itself (the first queue, usually)
// is what reads and writes go to when the caller uses one queue only, and
// closing it closes every queue.
type MultiQueue interface {
	Endpoint
	// Queues are the link's queues, at least one; every packet for the
	// link arrives on exactly one of them.
	Queues() []Endpoint
}

// MaxQueues is the most queues a stack runs: one reader goroutine each.
// Linux's TUN allows 256 (MAX_TAP_QUEUES); beyond the cores of a machine
// more readers only add contention.
const MaxQueues = 64

// FlowHash is a hash of a packet's flow that is the same in both
// directions: the IPv4 or IPv6 addresses and, for TCP and UDP, the ports,
// each pair combined so that swapping source and destination leaves it
// unchanged (as Linux's __skb_get_hash_symmetric). A packet too short for
// its headers hashes by what it has.
func FlowHash(pkt []byte) uint32 {
	if len(pkt) == 0 {
		return 0
	}
	var a, b []byte
	var proto uint8
	var l4 []byte
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < header.IPv4MinHeaderLen {
			return 0
		}
		ihl := int(pkt[0]&0x0f) * 4
		a, b, proto = pkt[12:16], pkt[16:20], pkt[9]
		if ihl >= header.IPv4MinHeaderLen && len(pkt) >= ihl+4 && binary.BigEndian.Uint16(pkt[6:])&0x3fff == 0 {
			l4 = pkt[ihl:]
		}
	case 6:
		if len(pkt) < header.IPv6HeaderLen {
			return 0
		}
		a, b, proto = pkt[8:24], pkt[24:40], pkt[6]
		if len(pkt) >= header.IPv6HeaderLen+4 {
			l4 = pkt[header.IPv6HeaderLen:]
		}
	default:
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(a); i += 4 {
		h = (h ^ (binary.BigEndian.Uint32(a[i:]) ^ binary.BigEndian.Uint32(b[i:]))) * 16777619
	}
	if l4 != nil && (proto == header.ProtoTCP || proto == header.ProtoUDP) {
		p := uint32(binary.BigEndian.Uint16(l4)) ^ uint32(binary.BigEndian.Uint16(l4[2:]))
		h = (h ^ p) * 16777619
	}
	h ^= uint32(proto)
	h ^= h >> 16
	h *= 0x45d9f3b
	h ^= h >> 16
	return h
}

// MultiPipeEnd is the many-queued end of a MultiPipe: an Endpoint (its
// first queue) and a MultiQueue.
type MultiPipeEnd struct {
	*PipeEnd
	queues []*PipeEnd
}

var _ MultiQueue = (*MultiPipeEnd)(nil)

// Queues implements MultiQueue.
func (m *MultiPipeEnd) Queues() []Endpoint {
	qs := make([]Endpoint, len(m.queues))
	for i, q := range m.queues {
		qs[i] = q
	}
	return qs
}

// Close closes every queue.
func (m *MultiPipeEnd) Close() error {
	for _, q := range m.queues {
		q.Close()
	}
	return nil
}

// MultiPipe returns the two ends of an in-memory link with the given MTU
// whose first end has n queues, as a multi-queue TUN device: a packet
// the other (single) end writes goes to the queue FlowHash(packet) mod n
// chooses, so each flow keeps to one queue; what any queue writes, the
// single end reads.
func MultiPipe(mtu, n int) (*MultiPipeEnd, *PipeEnd) {
	single := &PipeEnd{mtu: mtu, in: newPipeQueue(DefaultPipeQueue), drops: newPipeDrops()}
	m := &MultiPipeEnd{queues: make([]*PipeEnd, max(n, 1))}
	spread := &spreader{}
	for i := range m.queues {
		q := &PipeEnd{mtu: mtu, in: newPipeQueue(DefaultPipeQueue), peer: single, drops: newPipeDrops()}
		m.queues[i] = q
		spread.queues = append(spread.queues, q.in)
	}
	m.PipeEnd = m.queues[0]
	single.spread = spread
	return m, single
}

// spreader is where a MultiPipe's single end writes: one queue per flow.
type spreader struct {
	queues []*pipeQueue
	mu     sync.Mutex // serialises writes, as one link's
}

// write puts each packet on its flow's queue.
func (sp *spreader) write(p *PipeEnd, bufs [][]byte, offset int) (int, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for _, b := range bufs {
		pkt := b[offset:]
		q := sp.queues[FlowHash(pkt)%uint32(len(sp.queues))]
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return 0, net.ErrClosed
		}
		p.put(q, pkt)
		q.cond.Signal()
		q.mu.Unlock()
	}
	return len(bufs), nil
}
