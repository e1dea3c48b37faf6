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
