package tcp

import (
	"testing"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// With more holes than a fixed table holds (here 40 blocks above RCV.NXT),
// the first SACK block is still the one holding the newest arrival (RFC
// 2018 §4), then the blocks reported most recently, then the highest. A
// receiver that loses the newest block starves the sender of the news
// that its latest flight arrived, and it times out with the data there.
func TestSACKNewestBlockFirstWithManyHoles(t *testing.T) {
	var r receiver
	base := seqnum.Value(1000)
	r.start(base.Sub(1))
	payload := make([]byte, 100)
	for i := range 40 {
		// Blocks of two segments at 1000+300i+100 .. +300: a hole of 100 before each.
		seq := base.Add(seqnum.Size(300*i + 100))
		r.ooo.insert(seq, payload, false)
		r.ooo.insert(seq.Add(100), payload, false)
	}
	newest := base.Add(300*39 + 100)
	r.noteSACK(newest.Add(100))
	var o header.TCPOptions
	r.fillSACK(&o, 3)
	if o.NumSACK != 3 {
		t.Fatalf("%d blocks, want 3", o.NumSACK)
	}
	want := header.SACKBlock{Start: uint32(newest), End: uint32(newest.Add(200))}
	if o.SACK[0] != want {
		t.Fatalf("first block %+v, want the newest %+v", o.SACK[0], want)
	}
	// The next ACK after an arrival in block 5 reports it first, then the
	// blocks just reported.
	mid := base.Add(300*5 + 100)
	r.noteSACK(mid)
	var o2 header.TCPOptions
	r.fillSACK(&o2, 3)
	got := []uint32{o2.SACK[0].Start, o2.SACK[1].Start, o2.SACK[2].Start}
	wantStarts := []uint32{uint32(mid), o.SACK[0].Start, o.SACK[1].Start}
	for i := range got {
		if got[i] != wantStarts[i] {
			t.Fatalf("blocks start at %v, want %v", got, wantStarts)
		}
	}
}

// When more blocks change between two ACKs than one ACK can carry, the
// held ACK goes out before a changed block would drop out of the list:
// every block that changed is reported at least once (RFC 2018 §4; Linux
// sends its compressed ACK before forgetting a block, tcp_sack_new_ofo_skb).
// Here the ACKs are compressed (quick-ACK mode is over and the three
// immediate duplicate ACKs went), and one input batch brings six segments,
// each a block of its own above a hole: four fit an ACK without
// timestamps.
func TestSACKEveryChangedBlockReported(t *testing.T) {
	s := sackOpen(t, Config{})
	next := rISS + 1
	for range 2 * maxQuickACKs {
		s.in(seg(ACK, next, lISS+1, 'x'))
		next++
	}
	s.sent = nil
	if s.c.rcv.quick != 0 {
		t.Fatalf("still in quick-ACK mode (%d)", s.c.rcv.quick)
	}
	// next is missing; every segment after it sits alone between holes.
	at := func(k int) seqnum.Value { return next + seqnumSize(1+2*k) }
	for k := range compSACKDupAcks {
		s.in(seg(ACK, at(k), lISS+1, 'x'))
	}
	if len(s.sent) != compSACKDupAcks {
		t.Fatalf("%d immediate duplicate ACKs, want %d", len(s.sent), compSACKDupAcks)
	}
	s.sent = nil
	var batch []Segment
	for k := compSACKDupAcks; k < compSACKDupAcks+6; k++ {
		batch = append(batch, seg(ACK, at(k), lISS+1, 'x'))
	}
	s.inBatch(batch...)
	reported := func(v seqnum.Value) bool {
		for _, g := range s.sent {
			for _, b := range g.Opts.SACK[:g.Opts.NumSACK] {
				if v.InRange(seqnum.Value(b.Start), seqnum.Value(b.End)) {
					return true
				}
			}
		}
		return false
	}
	for k := compSACKDupAcks; k < compSACKDupAcks+6; k++ {
		if !reported(at(k)) {
			t.Errorf("the block at %v (arrival %d of the batch) was never reported; ACKs sent: %v", at(k), k-compSACKDupAcks, s.sent)
		}
	}
	if len(s.sent) > 2 {
		t.Errorf("%d ACKs for the batch, want 2: the held one before the fifth block, then the batch's", len(s.sent))
	}
	s.sent = nil
}
