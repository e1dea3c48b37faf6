package tcp

import (
	"sort"

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
	segs  []oooSeg
	bytes int
}

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
		q.d = nil
	}
}

func (q *oooQueue) clear() { q.d = nil }

func (q *oooQueue) insert(seq seqnum.Value, data []byte, fin bool) {
	if q.d == nil {
		q.d = new(oooData)
	}
	q.d.insert(seq, data, fin)
	if len(q.d.segs) == 0 {
		q.d = nil
	}
}

func (q *oooQueue) blockOf(i int) (header.SACKBlock, int) { return q.d.blockOf(i) }

func (q *oooQueue) blockAt(v seqnum.Value) (header.SACKBlock, bool) {
	if q.d == nil {
		return header.SACKBlock{}, false
	}
	return q.d.blockAt(v)
}

type oooSeg struct {
	seq  seqnum.Value
	data []byte
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
	q.bytes -= len(q.segs[0].data)
	q.segs[0] = oooSeg{}
	q.segs = q.segs[1:]
	if len(q.segs) == 0 {
		q.segs = nil
	}
}

func (q *oooData) clear() { q.segs, q.bytes = nil, 0 }

// insert copies data at seq into the queue, dropping the parts already held.
func (q *oooData) insert(seq seqnum.Value, data []byte, fin bool) {
	end := seq.Add(seqnum.Size(len(data)))
	i := 0
	for i < len(q.segs) && q.segs[i].seq.Add(seqnum.Size(len(q.segs[i].data))).LessThanEq(seq) {
		i++
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
	cp := append([]byte(nil), data...)
	q.segs = append(q.segs, oooSeg{})
	copy(q.segs[i+1:], q.segs[i:])
	q.segs[i] = oooSeg{seq: seq, data: cp, fin: fin}
	q.bytes += len(cp)
}

// blockOf is the contiguous run of queued segments around segment i, as a
// SACK block, and the index of its first segment.
func (q *oooData) blockOf(i int) (header.SACKBlock, int) {
	first, last := i, i
	for first > 0 && q.end(first-1) == q.segs[first].seq {
		first--
	}
	for last+1 < len(q.segs) && q.end(last) == q.segs[last+1].seq {
		last++
	}
	return header.SACKBlock{Start: uint32(q.segs[first].seq), End: uint32(q.end(last))}, first
}

// blockAt is the block holding sequence number v, if any.
func (q *oooData) blockAt(v seqnum.Value) (header.SACKBlock, bool) {
	i := sort.Search(len(q.segs), func(i int) bool { return v.LessThan(q.end(i)) })
	if i == len(q.segs) || !v.InRange(q.segs[i].seq, q.end(i)) {
		return header.SACKBlock{}, false
	}
	b, _ := q.blockOf(i)
	return b, true
}

func (q *oooData) end(i int) seqnum.Value {
	return q.segs[i].seq.Add(seqnum.Size(len(q.segs[i].data)))
}
