package tcp

import (
	"math/rand/v2"
	"testing"

	"ustack/stack/seqnum"
)

// The out-of-order queue's blocks, kept as segments come and go, are
// always the runs of contiguous held bytes found by walking the segments:
// random inserts (overlapping, adjacent, filling holes, FIN-only) and pops
// from the front, across the sequence space's wrap.
func TestOOOBlocksFollowTheSegments(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		base := seqnum.Value(1<<32 - 5000) // wraps within the run
		var q oooQueue
		for step := range 300 {
			if q.len() > 0 && rng.IntN(4) == 0 {
				q.pop()
			} else {
				lo := base
				if e, ok := q.first(); ok {
					lo = e.seq
				}
				seq := lo.Add(seqnum.Size(rng.IntN(3000)))
				n := rng.IntN(200)
				if rng.IntN(10) == 0 {
					n = 0
				}
				q.insert(seq, make([]byte, n), n == 0 || rng.IntN(20) == 0)
			}
			var want []span
			if q.d != nil {
				for i := range q.d.segs {
					s := q.d.segs[i]
					if len(s.data) == 0 {
						continue
					}
					end := q.d.end(i)
					if k := len(want); k > 0 && want[k-1].end == s.seq {
						want[k-1].end = end
					} else {
						want = append(want, span{s.seq, end})
					}
				}
			}
			if q.nblocks() != len(want) {
				t.Fatalf("seed %d step %d: %d blocks, want %d (%v)", seed, step, q.nblocks(), len(want), want)
			}
			for j, w := range want {
				if b := q.block(j); b.Start != uint32(w.start) || b.End != uint32(w.end) {
					t.Fatalf("seed %d step %d: block %d is %+v, want %v", seed, step, j, b, w)
				}
				if b, ok := q.blockAt(w.end.Sub(1)); !ok || b.Start != uint32(w.start) {
					t.Fatalf("seed %d step %d: blockAt(%v) = %+v %v", seed, step, w.end.Sub(1), b, ok)
				}
				if _, ok := q.blockAt(w.end); ok && (j+1 == len(want) || want[j+1].start != w.end) {
					t.Fatalf("seed %d step %d: blockAt(%v), just past a block, found one", seed, step, w.end)
				}
			}
		}
	}
}
