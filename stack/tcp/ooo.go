package tcp

import (
	"sort"
	"sync"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// oooQueue holds segments that arrived ahead of RCV.NXT, sorted by sequence
// number and without overlap (RFC 9293 §3.10.7.4 seventh: "segments with
// higher beginning sequence numbers may be held"). Its state is allocated
// with the first segment held and dropped with the last, so that a
// connection without a hole pays 8 bytes for it.
type oooQueue struct{ d *oooData }

type oooData struct {
	segs   []oooSeg
	blocks []span // the contiguous runs of the segments' bytes, in order: the SACK blocks
	bytes  int
	// The lists' arrays from their start (pop moves the lists' starts
	// forward), for clear to reuse.
	segsAll   []oooSeg
	blocksAll []span
}

// span is [start, end) of sequence space.
type span struct{ start, end seqnum.Value }

func (q *oooQueue) len() int {
	if q.d == nil {
		return 0
	}
	return len(q.d.segs)
}

// bytes is the payload held.
func (q *oooQueue) bytes() int {
	if q.d == nil {
		return 0
	}
	return q.d.bytes
}

func (q *oooQueue) first() (oooSeg, bool) {
	if q.d == nil {
		return oooSeg{}, false
	}
	return q.d.first()
}

func (q *oooQueue) pop() {
	q.d.pop()
	if len(q.d.segs) == 0 {
		q.clear()
	}
}

// clear drops every held segment: their copies and the queue's state go
// back to their pools.
func (q *oooQueue) clear() {
	if q.d == nil {
		return
	}
	q.d.clear()
	oooPool.Put(q.d)
	q.d = nil
}

func (q *oooQueue) insert(seq seqnum.Value, data []byte, fin bool) {
	if q.d == nil {
		q.d = oooPool.Get().(*oooData)
	}
	q.d.insert(seq, data, fin)
	if len(q.d.segs) == 0 {
		q.clear()
	}
}

// oooPool keeps the queues' state between holes, with the room its lists
// grew to: a connection under steady loss opens a hole every few round
// trips, and each would allocate them again.
var oooPool = sync.Pool{New: func() any { return new(oooData) }}

// nblocks is the number of blocks (contiguous runs of held bytes).
func (q *oooQueue) nblocks() int {
	if q.d == nil {
		return 0
	}
	return len(q.d.blocks)
}

// block is block j, from the lowest, as a SACK block.
func (q *oooQueue) block(j int) header.SACKBlock {
	b := q.d.blocks[j]
	return header.SACKBlock{Start: uint32(b.start), End: uint32(b.end)}
}

func (q *oooQueue) blockAt(v seqnum.Value) (header.SACKBlock, bool) {
	if q.d == nil {
		return header.SACKBlock{}, false
	}
	return q.d.blockAt(v)
}

type oooSeg struct {
	seq  seqnum.Value
	data []byte
	a    *array // data's array, from the buffer pools; nil for a bare FIN
	fin  bool
}

func (q *oooData) len() int { return len(q.segs) }

func (q *oooData) first() (oooSeg, bool) {
	if len(q.segs) == 0 {
		return oooSeg{}, false
	}
	return q.segs[0], true
}

func (q *oooData) pop() {
	if n := len(q.segs[0].data); n > 0 {
		// The lowest segment starts the lowest block.
		b := &q.blocks[0]
		b.start = b.start.Add(seqnum.Size(n))
		if b.start == b.end {
			q.blocks = q.blocks[1:]
		}
	}
	q.bytes -= len(q.segs[0].data)
	if a := q.segs[0].a; a != nil {
		putBuf(a) // drainOOO has moved the bytes to the receive buffer
	}
	q.segs[0] = oooSeg{}
	q.segs = q.segs[1:] // oooQueue.pop clears the queue once it is empty
}

// clear drops every segment, keeping the lists' room.
func (q *oooData) clear() {
	for i := range q.segs {
		if a := q.segs[i].a; a != nil {
			putBuf(a)
		}
		q.segs[i] = oooSeg{}
	}
	q.segs, q.blocks, q.bytes = q.segsAll[:0], q.blocksAll[:0], 0
}

// insert copies data at seq into the queue, dropping the parts already held.
func (q *oooData) insert(seq seqnum.Value, data []byte, fin bool) {
	end := seq.Add(seqnum.Size(len(data)))
	// The first segment ending after seq (the segments are in order and
	// do not overlap, so their ends are too). Most arrivals go last.
	i := len(q.segs)
	if i > 0 && seq.LessThan(q.end(i-1)) {
		i = sort.Search(len(q.segs), func(i int) bool { return seq.LessThan(q.end(i)) })
	}
	// q.segs[i] is the first segment ending after seq. Trim overlaps with it
	// and the ones after, inserting the pieces in between.
	for len(data) > 0 || fin {
		if i == len(q.segs) || end.LessThanEq(q.segs[i].seq) {
			q.add(i, seq, data, fin)
			return
		}
		s := q.segs[i]
		if seq.LessThan(s.seq) {
			n := int(seq.Size(s.seq))
			q.add(i, seq, data[:n], false)
			i++
			data, seq = data[n:], s.seq
		}
		// Skip what s already holds.
		sEnd := s.seq.Add(seqnum.Size(len(s.data)))
		if sEnd.GreaterThanEq(end) {
			if fin && sEnd == end {
				q.segs[i].fin = true
			}
			return
		}
		n := int(seq.Size(sEnd))
		data, seq = data[n:], sEnd
		i++
	}
}

func (q *oooData) add(i int, seq seqnum.Value, data []byte, fin bool) {
	if len(data) == 0 && !fin {
		return
	}
	var a *array
	var cp []byte
	if len(data) > 0 {
		a = getOOOBuf(len(data))
		cp = a.b[:len(data)]
		copy(cp, data)
	}
	q.segs = append(q.segs, oooSeg{})
	if cap(q.segs) > cap(q.segsAll) {
		q.segsAll = q.segs[:0] // the list grew: remember its start
	}
	copy(q.segs[i+1:], q.segs[i:])
	q.segs[i] = oooSeg{seq: seq, data: cp, a: a, fin: fin}
	q.bytes += len(cp)
	if len(cp) > 0 {
		q.addSpan(seq, seq.Add(seqnum.Size(len(cp))))
	}
}

// addSpan adds [start, end), bytes held by no segment before, to the
// blocks: it extends the block it touches, joins the two it fills the
// hole between, or makes a block of its own.
func (q *oooData) addSpan(start, end seqnum.Value) {
	// The first block ending at or after start; most spans go above
	// every block.
	j := len(q.blocks)
	if j > 0 && !q.blocks[j-1].end.LessThan(start) {
		j = sort.Search(len(q.blocks), func(j int) bool { return !q.blocks[j].end.LessThan(start) })
	}
	switch {
	case j < len(q.blocks) && q.blocks[j].end == start:
		q.blocks[j].end = end
		if j+1 < len(q.blocks) && q.blocks[j+1].start == end {
			q.blocks[j].end = q.blocks[j+1].end
			q.blocks = append(q.blocks[:j+1], q.blocks[j+2:]...)
		}
	case j < len(q.blocks) && q.blocks[j].start == end:
		q.blocks[j].start = start
	default:
		q.blocks = append(q.blocks, span{})
		if cap(q.blocks) > cap(q.blocksAll) {
			q.blocksAll = q.blocks[:0] // the list grew: remember its start
		}
		copy(q.blocks[j+1:], q.blocks[j:])
		q.blocks[j] = span{start, end}
	}
}

// blockAt is the block holding sequence number v, if any.
func (q *oooData) blockAt(v seqnum.Value) (header.SACKBlock, bool) {
	j := sort.Search(len(q.blocks), func(j int) bool { return v.LessThan(q.blocks[j].end) })
	if j == len(q.blocks) || !v.InRange(q.blocks[j].start, q.blocks[j].end) {
		return header.SACKBlock{}, false
	}
	return header.SACKBlock{Start: uint32(q.blocks[j].start), End: uint32(q.blocks[j].end)}, true
}

func (q *oooData) end(i int) seqnum.Value {
	return q.segs[i].seq.Add(seqnum.Size(len(q.segs[i].data)))
}

// getOOOBuf is an array for a held segment's copy, from the buffers'
// pools (down to 2 KiB: an MSS-sized segment), returned by pop and clear.
// Before, every held segment was a fresh allocation, and under steady loss
// the garbage collector paid for them.
func getOOOBuf(n int) *array { return getBufMin(n, minOOOClass) }

const minOOOClass = 11 // 2 KiB
