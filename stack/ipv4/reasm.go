package ipv4

import (
	"container/list"
	"sort"
	"sync"
	"time"

	"ustack/stack/header"
)

// Reassembly limits. The timeout and the memory cap are Linux's defaults;
// RFC 791 §3.2 leaves the timer to the implementation ("the recommended
// setting for the timer lower bound is 15 seconds") and RFC 1122 §3.3.2
// says it "MUST be a fixed value ... recommended ... between 60 seconds and
// 120 seconds": Linux, and we, use 30 s.
const (
	ReassemblyTimeout = 30 * time.Second // Linux net.ipv4.ipfrag_time
	ReassemblyMemCap  = 4 << 20          // Linux net.ipv4.ipfrag_high_thresh
	// ReassemblyMaxQueues bounds the datagrams being reassembled at once.
	// Linux bounds them only through the memory each fragment is charged;
	// the count is ours.
	ReassemblyMaxQueues = 4096

	// Bytes charged beyond the payload, so that a flood of tiny fragments
	// hits the cap as it does in Linux, which charges each fragment's
	// sk_buff truesize.
	fragOverhead  = 128
	queueOverhead = 256

	maxDatagram = 0xffff // RFC 791 §3.1 "Total Length"
	quoteMax    = 576    // an ICMP error's whole size, as Linux's icmp_send
	maxPending  = 16     // time-exceeded quotes waiting for the stack
)

// fragKey identifies a datagram under reassembly (RFC 791 §3.2: "the
// identification, source, destination, and protocol fields").
type fragKey struct {
	src, dst [4]byte
	proto    uint8
	id       uint16
}

type fragment struct {
	off, end int
	data     []byte
}

type fragQueue struct {
	key      fragKey
	deadline time.Time
	hdr      []byte     // the first fragment's header, once it arrived
	frags    []fragment // by offset, none overlapping
	length   int        // payload length: known once lastIn, else the highest end so far
	lastIn   bool
	covered  int // payload bytes held
	mem      int // bytes charged
	elem     *list.Element
}

// reassembler holds the queues of one layer. Its memory is bounded by
// ReassemblyMemCap and its queues by ReassemblyMaxQueues, whatever arrives.
type reassembler struct {
	mu      sync.Mutex
	queues  map[fragKey]*fragQueue
	order   list.List // *fragQueue by deadline (creation order: the timeout is fixed)
	mem     int
	pending [][]byte // quotes for ICMP time exceeded, taken by TakeExpired
	stats   *Stats
}

func (r *reassembler) init(s *Stats) {
	r.queues = make(map[fragKey]*fragQueue)
	r.order.Init()
	r.stats = s
}

// add takes fragment h (a valid datagram to us with MF or an offset). It
// returns the reassembled datagram when h completes one, or 0 and nil
// when h is held, or the reason h was dropped.
//
// RFC 791 §3.2 and Linux's ip_frag_queue: a fragment other than the last
// whose length is not a multiple of 8 is cut to one; a last fragment that
// contradicts what is known (data beyond it, another last fragment with a
// different end), an empty fragment and a datagram over 65535 bytes drop
// the whole queue; an overlap drops the whole queue (Linux since 4.19, in
// the spirit of RFC 5722 §4 for IPv6: "the entire datagram (and any
// constituent fragments) MUST be silently discarded"); a fragment wholly
// within data already held is a duplicate, dropped alone.
func (r *reassembler) add(now time.Time, h header.IPv4) (header.IPv4, Reason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(now)
	key := fragKey{src: h.SrcBytes(), dst: h.DstBytes(), proto: h.Protocol(), id: h.ID()}
	data := h.Payload()
	off := h.FragmentOffset()
	end := off + len(data)
	mf := h.MoreFragments()
	if mf {
		end &^= 7
		data = data[:max(end-off, 0)]
	}
	q := r.queues[key]
	cost := len(data) + fragOverhead
	if q == nil {
		cost += queueOverhead
	}
	// Linux refuses every fragment once the memory passes ipfrag_high_thresh
	// (inet_frag_find); we refuse the one that would pass it.
	if r.mem+cost > ReassemblyMemCap || (q == nil && len(r.queues) >= ReassemblyMaxQueues) {
		return nil, FragNoMemory
	}
	if q == nil {
		q = &fragQueue{key: key, deadline: now.Add(ReassemblyTimeout), mem: queueOverhead}
		q.elem = r.order.PushBack(q)
		r.queues[key] = q
		r.mem += queueOverhead
		r.stats.setReasm(r.mem, len(r.queues))
	}
	if why := q.bounds(h.HeaderLen(), off, end, mf); why != 0 {
		r.kill(q)
		return nil, why
	}
	if why := q.insert(off, end, data); why != 0 {
		if why == FragOverlap {
			r.kill(q)
		}
		return nil, why
	}
	if off == 0 {
		q.hdr = append([]byte(nil), h[:h.HeaderLen()]...)
	}
	q.mem += len(data) + fragOverhead
	r.mem += len(data) + fragOverhead
	r.stats.setReasm(r.mem, len(r.queues))
	if !q.lastIn || q.covered != q.length || q.hdr == nil {
		return nil, 0
	}
	dg := q.join()
	r.kill(q)
	return dg, 0
}

// bounds applies the length rules of add to a fragment [off, end).
func (q *fragQueue) bounds(hl, off, end int, mf bool) Reason {
	if end <= off {
		return FragBad // Linux: "if (end == offset) goto discard_qp"
	}
	if hl+end > maxDatagram {
		return FragOversize
	}
	if !mf {
		if end < q.length || (q.lastIn && end != q.length) {
			return FragBad
		}
		q.lastIn, q.length = true, end
		return 0
	}
	if end > q.length {
		if q.lastIn {
			return FragBad
		}
		q.length = end
	}
	return 0
}

// insert adds [off, end) to the queue, or reports a duplicate or overlap.
func (q *fragQueue) insert(off, end int, data []byte) Reason {
	i := sort.Search(len(q.frags), func(i int) bool { return q.frags[i].end > off })
	if i < len(q.frags) && q.frags[i].off <= off {
		// Starts inside frags[i]: a duplicate if it ends within the run of
		// contiguous fragments from there, else an overlap.
		for j := i; j < len(q.frags); j++ {
			if j > i && q.frags[j].off != q.frags[j-1].end {
				break
			}
			if end <= q.frags[j].end {
				return FragDuplicate
			}
		}
		return FragOverlap
	}
	if i < len(q.frags) && end > q.frags[i].off {
		return FragOverlap
	}
	f := fragment{off: off, end: end, data: append([]byte(nil), data...)}
	q.frags = append(q.frags, fragment{})
	copy(q.frags[i+1:], q.frags[i:])
	q.frags[i] = f
	q.covered += end - off
	return 0
}

// join builds the whole datagram: the first fragment's header, every
// fragment's data, MF and offset cleared.
func (q *fragQueue) join() header.IPv4 {
	hl := len(q.hdr)
	dg := header.IPv4(make([]byte, hl+q.length))
	copy(dg, q.hdr)
	for _, f := range q.frags {
		copy(dg[hl+f.off:], f.data)
	}
	dg.SetFragment(len(dg), 0, 0)
	return dg
}

// kill forgets q and its memory.
func (r *reassembler) kill(q *fragQueue) {
	if r.queues[q.key] != q {
		return
	}
	delete(r.queues, q.key)
	r.order.Remove(q.elem)
	r.mem -= q.mem
	r.stats.setReasm(r.mem, len(r.queues))
}

// expireLocked ends the queues whose time is up. For each that holds its
// first fragment, a quote (header and the start of the data) waits in
// pending for an ICMP time exceeded, code 1 (RFC 792; RFC 1122 §3.3.2
// MAY; Linux's ip_expire sends it, from the first fragment, only then).
func (r *reassembler) expireLocked(now time.Time) {
	for e := r.order.Front(); e != nil; e = r.order.Front() {
		q := e.Value.(*fragQueue)
		if now.Before(q.deadline) {
			return
		}
		r.stats.c.Inc(ReasmTimeouts)
		if q.hdr != nil && len(q.frags) > 0 && q.frags[0].off == 0 && len(r.pending) < maxPending {
			r.pending = append(r.pending, q.quote())
		}
		r.kill(q)
	}
}

// quote is the first fragment as received (its header unchanged), cut to
// what an ICMP error carries.
func (q *fragQueue) quote() []byte {
	f := q.frags[0]
	n := min(len(f.data), quoteMax-2*header.IPv4MinHeaderLen-header.ICMPv4MinLen)
	b := make([]byte, 0, len(q.hdr)+n)
	b = append(b, q.hdr...)
	return append(b, f.data[:n]...)
}

// ExpireFragments ends the reassembly queues whose timeout passed at now.
// The quotes for the ICMP time-exceeded messages due wait for
// TakeExpired.
func (l *Layer) ExpireFragments(now time.Time) {
	l.reasm.mu.Lock()
	l.reasm.expireLocked(now)
	l.reasm.mu.Unlock()
}

// NextFragmentExpiry is when the oldest reassembly queue times out, or
// zero when none is waiting.
func (l *Layer) NextFragmentExpiry() time.Time {
	l.reasm.mu.Lock()
	defer l.reasm.mu.Unlock()
	if e := l.reasm.order.Front(); e != nil {
		return e.Value.(*fragQueue).deadline
	}
	return time.Time{}
}

// TakeExpired returns the first fragments (header and the start of the
// data, as an ICMP error quotes them) of the datagrams whose reassembly
// timed out since the last call: the caller sends each an ICMP time
// exceeded with PutICMPError.
func (l *Layer) TakeExpired() []header.IPv4 {
	l.reasm.mu.Lock()
	defer l.reasm.mu.Unlock()
	if len(l.reasm.pending) == 0 {
		return nil
	}
	out := make([]header.IPv4, len(l.reasm.pending))
	for i, b := range l.reasm.pending {
		out[i] = b
	}
	l.reasm.pending = l.reasm.pending[:0]
	return out
}
