package ipv6

import (
	"container/list"
	"sort"
	"sync"
	"time"

	"ustack/stack/header"
)

// Reassembly limits: RFC 8200 §4.5's timeout, Linux's memory cap, and the
// queue cap package ipv4 uses.
const (
	ReassemblyTimeout = 60 * time.Second // RFC 8200 §4.5; Linux net.ipv6.ip6frag_time
	ReassemblyMemCap  = 4 << 20          // Linux net.ipv6.ip6frag_high_thresh
	// ReassemblyMaxQueues bounds the datagrams being reassembled at once
	// (ours, as in package ipv4: Linux bounds them only by memory).
	ReassemblyMaxQueues = 4096

	// Bytes charged beyond the payload, as package ipv4 does, so that a
	// flood of tiny fragments hits the cap as it does in Linux (which
	// charges each fragment's sk_buff truesize).
	fragOverhead  = 128
	queueOverhead = 256

	maxPayload = 0xffff // RFC 8200 §4.5: a reassembled payload length fits 16 bits
	// quoteMax is the quote of an ICMPv6 error: RFC 4443 §2.4(c), the
	// whole error within the minimum MTU.
	quoteMax   = header.IPv6MinMTU - header.IPv6HeaderLen - header.ICMPv6MinLen
	maxPending = 16 // time-exceeded quotes waiting for the stack
)

// fragKey identifies a datagram under reassembly (RFC 8200 §4.5: "the
// same Source Address, Destination Address, and Fragment Identification").
type fragKey struct {
	src, dst [16]byte
	id       uint32
}

type fragment struct {
	off, end int
	data     []byte
}

type fragQueue struct {
	key      fragKey
	deadline time.Time
	// first is the first fragment's per-fragment headers and fragment
	// header (RFC 8200 §4.5), once it arrived; nhOff is the offset in it
	// of the Next Header byte that names the fragment header.
	first   []byte
	nhOff   int
	frags   []fragment // by offset, none overlapping
	length  int        // fragmentable part's length: known once lastIn, else the highest end so far
	lastIn  bool
	covered int
	mem     int
	elem    *list.Element
}

// reassembler holds the queues of one layer, bounded by ReassemblyMemCap
// and ReassemblyMaxQueues whatever arrives.
type reassembler struct {
	mu      sync.Mutex
	queues  map[fragKey]*fragQueue
	order   list.List // *fragQueue by deadline (creation order: the timeout is fixed)
	mem     int
	pending [][]byte // quotes for ICMPv6 time exceeded, taken by TakeExpired
	stats   *Stats
}

func (r *reassembler) init(s *Stats) {
	r.queues = make(map[fragKey]*fragQueue)
	r.order.Init()
	r.stats = s
}

// checkFragment applies RFC 8200 §4.5's rules on one fragment, before any
// queue: a non-last fragment's length must be a multiple of 8 (parameter
// problem code 0 at the payload length), the fragment must end within
// 65535 bytes (code 0 at the fragment offset; Linux tests the offset plus
// the fragment's length, as we do), and a first fragment must hold the
// whole header chain and the upper-layer header's start (RFC 7112 §5:
// code 3, pointer 0; Linux's ipv6frag_thdr_truncated).
func checkFragment(h header.IPv6, w walkResult) walkResult {
	f := header.IPv6Frag(h[w.off:])
	data := h[w.off+header.IPv6FragHdrLen:]
	if f.More() && len(data)%8 != 0 {
		return problem(FragBadLength, header.ICMPv6ErroneousField, 4)
	}
	if f.Offset()+len(data) > maxPayload {
		return problem(FragOversize, header.ICMPv6ErroneousField, w.off+2)
	}
	if f.Offset() == 0 {
		proto, at, ok := skipChain(data, f.NextHeader(), 0)
		if !ok || at+minUpperHeader(proto) > len(data) {
			return problem(FragIncompleteChain, header.ICMPv6IncompleteChain, 0)
		}
	}
	return walkResult{}
}

// add takes the fragment in datagram h whose fragment header walk found.
// It returns the reassembled datagram when h completes one, or nil and a
// zero result when h is held, or the reason h was dropped.
//
// As package ipv4 and Linux's ip6_frag_queue: a last fragment that
// contradicts what is known and an empty fragment drop the whole queue; an
// overlap drops the whole queue (RFC 5722 §4: "the entire datagram (and
// any constituent fragments) MUST be silently discarded"); a fragment
// wholly within data already held is a duplicate, dropped alone (Linux's
// IPFRAG_DUP).
func (r *reassembler) add(now time.Time, h header.IPv6, w walkResult) (header.IPv6, walkResult) {
	if res := checkFragment(h, w); res.why != 0 {
		return nil, res
	}
	f := header.IPv6Frag(h[w.off:])
	data := h[w.off+header.IPv6FragHdrLen:]
	off, mf := f.Offset(), f.More()
	end := off + len(data)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(now)
	key := fragKey{src: h.SrcBytes(), dst: h.DstBytes(), id: f.ID()}
	q := r.queues[key]
	cost := len(data) + fragOverhead
	if off == 0 {
		cost += w.off + header.IPv6FragHdrLen
	}
	if q == nil {
		cost += queueOverhead
	}
	// Linux refuses every fragment once the memory passes the high
	// threshold; we refuse the one that would pass it.
	if r.mem+cost > ReassemblyMemCap || (q == nil && len(r.queues) >= ReassemblyMaxQueues) {
		return nil, dropped(FragNoMemory)
	}
	if q == nil {
		q = &fragQueue{key: key, deadline: now.Add(ReassemblyTimeout), mem: queueOverhead}
		q.elem = r.order.PushBack(q)
		r.queues[key] = q
		r.mem += queueOverhead
		r.stats.setReasm(r.mem, len(r.queues))
		cost -= queueOverhead
	}
	if why := q.bounds(off, end, mf); why != 0 {
		r.kill(q)
		return nil, dropped(why)
	}
	if why := q.insert(off, end, data); why != 0 {
		if why == FragOverlap {
			r.kill(q)
		}
		return nil, dropped(why)
	}
	if off == 0 {
		// RFC 8200 §4.5: the per-fragment headers come from the first
		// fragment (offset 0) alone.
		q.first = append([]byte(nil), h[:w.off+header.IPv6FragHdrLen]...)
		q.nhOff = w.nhOff
	}
	q.mem += cost
	r.mem += cost
	r.stats.setReasm(r.mem, len(r.queues))
	if !q.lastIn || q.covered != q.length || q.first == nil {
		return nil, walkResult{}
	}
	dg := q.join()
	r.kill(q)
	return dg, walkResult{}
}

// bounds applies the length rules of add to a fragment [off, end).
func (q *fragQueue) bounds(off, end int, mf bool) Reason {
	if end <= off {
		return FragBad // Linux: "if (end == offset) goto discard_fq"
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

// join builds the datagram of RFC 8200 §4.5: the first fragment's
// per-fragment headers, with the Next Header that named the fragment
// header set to the fragment header's, then every fragment's data; the
// payload length covers them.
func (q *fragQueue) join() header.IPv6 {
	ul := len(q.first) - header.IPv6FragHdrLen
	dg := header.IPv6(make([]byte, ul+q.length))
	copy(dg, q.first[:ul])
	dg[q.nhOff] = header.IPv6Frag(q.first[ul:]).NextHeader()
	for _, f := range q.frags {
		copy(dg[ul+f.off:], f.data)
	}
	dg.SetPayloadLen(len(dg) - header.IPv6HeaderLen)
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
// first fragment, a quote of it waits in pending for an ICMPv6 time
// exceeded, code 1 (RFC 8200 §4.5: "If the first fragment ... has been
// received"; Linux's ip6_expire_frag_queue).
func (r *reassembler) expireLocked(now time.Time) {
	for e := r.order.Front(); e != nil; e = r.order.Front() {
		q := e.Value.(*fragQueue)
		if now.Before(q.deadline) {
			return
		}
		r.stats.c.Inc(ReasmTimeouts)
		if q.first != nil && len(r.pending) < maxPending {
			r.pending = append(r.pending, q.quote())
		}
		r.kill(q)
	}
}

// quote is the first fragment as received (its payload length unchanged),
// cut to what an ICMPv6 error carries.
func (q *fragQueue) quote() []byte {
	f := q.frags[0] // the first fragment is in: frags[0] starts at 0
	n := max(min(len(f.data), quoteMax-len(q.first)), 0)
	b := make([]byte, 0, len(q.first)+n)
	b = append(b, q.first...)
	return append(b, f.data[:n]...)
}

// ExpireFragments ends the reassembly queues whose timeout passed at now;
// the quotes for the ICMPv6 time exceeded messages due wait for
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

// TakeExpired returns the first fragments (as an ICMPv6 error quotes them)
// of the datagrams whose reassembly timed out since the last call: the
// caller sends each a time exceeded, code 1, with PutICMPError.
func (l *Layer) TakeExpired() []header.IPv6 {
	l.reasm.mu.Lock()
	defer l.reasm.mu.Unlock()
	if len(l.reasm.pending) == 0 {
		return nil
	}
	out := make([]header.IPv6, len(l.reasm.pending))
	for i, b := range l.reasm.pending {
		out[i] = b
	}
	l.reasm.pending = l.reasm.pending[:0]
	return out
}
