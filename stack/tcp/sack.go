package tcp

import (
	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// The receiver's side of RFC 2018: SACK blocks for every hole, the block
// holding the most recent arrival first, then the blocks reported most
// recently (§4).

// fillSACK writes up to max blocks describing the out-of-order queue.
func (c *Conn) fillSACK(o *header.TCPOptions, max int) {
	max = min(max, header.MaxSACKBlocks)
	if max <= 0 {
		return
	}
	// Merge the queue into contiguous blocks.
	var blocks [16]header.SACKBlock
	nb := 0
	for _, s := range c.ooo.segs {
		start, end := s.seq, s.seq.Add(seqnum.Size(len(s.data)))
		if nb > 0 && seqnum.Value(blocks[nb-1].End) == start {
			blocks[nb-1].End = uint32(end)
			continue
		}
		if nb == len(blocks) {
			break
		}
		blocks[nb] = header.SACKBlock{Start: uint32(start), End: uint32(end)}
		nb++
	}
	n := 0
	used := [16]bool{}
	pick := func(i int) {
		if i >= 0 && i < nb && !used[i] && n < max {
			used[i] = true
			o.SACK[n] = blocks[i]
			n++
		}
	}
	find := func(v seqnum.Value) int {
		for i := 0; i < nb; i++ {
			if v.InRange(seqnum.Value(blocks[i].Start), seqnum.Value(blocks[i].End)) {
				return i
			}
		}
		return -1
	}
	pick(find(c.lastOOO))
	for _, v := range c.sackSent[:c.nSackSent] {
		pick(find(v))
	}
	for i := nb - 1; i >= 0; i-- {
		pick(i)
	}
	o.NumSACK = n
	c.nSackSent = n
	for i := 0; i < n; i++ {
		c.sackSent[i] = seqnum.Value(o.SACK[i].Start)
	}
}

// scoreboard is the sender's record of SACKed ranges above SND.UNA
// (RFC 6675 §3), sorted and merged.
type scoreboard struct {
	r     []sackRange
	bytes int // total SACKed bytes
}

type sackRange struct{ start, end seqnum.Value }

func (sb *scoreboard) reset() { sb.r, sb.bytes = sb.r[:0], 0 }

// add records [start, end).
func (sb *scoreboard) add(start, end seqnum.Value) {
	i := 0
	for i < len(sb.r) && sb.r[i].end.LessThan(start) {
		i++
	}
	j := i
	for j < len(sb.r) && sb.r[j].start.LessThanEq(end) {
		start = seqnum.Min(start, sb.r[j].start)
		end = seqnum.Max(end, sb.r[j].end)
		sb.bytes -= int(sb.r[j].start.Size(sb.r[j].end))
		j++
	}
	sb.bytes += int(start.Size(end))
	if i == j {
		sb.r = append(sb.r, sackRange{})
		copy(sb.r[i+1:], sb.r[i:])
		sb.r[i] = sackRange{start, end}
		return
	}
	sb.r[i] = sackRange{start, end}
	sb.r = append(sb.r[:i+1], sb.r[j:]...)
}

// ackedTo drops everything below una.
func (sb *scoreboard) ackedTo(una seqnum.Value) {
	k := 0
	for _, r := range sb.r {
		if r.end.LessThanEq(una) {
			sb.bytes -= int(r.start.Size(r.end))
			continue
		}
		if r.start.LessThan(una) {
			sb.bytes -= int(r.start.Size(una))
			r.start = una
		}
		sb.r[k] = r
		k++
	}
	sb.r = sb.r[:k]
}

// highest is the end of the highest SACKed range (or una if none).
func (sb *scoreboard) highest(una seqnum.Value) seqnum.Value {
	if len(sb.r) == 0 {
		return una
	}
	return sb.r[len(sb.r)-1].end
}

// sackedAt returns the end of the SACKed range holding v, if any.
func (sb *scoreboard) sackedAt(v seqnum.Value) (seqnum.Value, bool) {
	for _, r := range sb.r {
		if v.InRange(r.start, r.end) {
			return r.end, true
		}
	}
	return 0, false
}

// sackedBetween counts SACKed bytes in [a, b).
func (sb *scoreboard) sackedBetween(a, b seqnum.Value) int {
	n := 0
	for _, r := range sb.r {
		s, e := seqnum.Max(r.start, a), seqnum.Min(r.end, b)
		if s.LessThan(e) {
			n += int(s.Size(e))
		}
	}
	return n
}

// nextHole finds the first unSACKed sequence number at or above from and
// below the highest SACKed byte, with the hole's end.
func (sb *scoreboard) nextHole(from seqnum.Value) (seqnum.Value, seqnum.Value, bool) {
	for _, r := range sb.r {
		if from.LessThan(r.start) {
			return from, r.start, true
		}
		if from.LessThan(r.end) {
			from = r.end
		}
	}
	return 0, 0, false
}

// nextSACKed returns the first SACKed range that starts above v.
func (sb *scoreboard) nextSACKed(v seqnum.Value) (seqnum.Value, seqnum.Value, bool) {
	for _, r := range sb.r {
		if v.LessThan(r.start) {
			return r.start, r.end, true
		}
	}
	return 0, 0, false
}
