package link

import (
	"testing"

	"ustack/stack/counter"
)

func TestLinkCountersAreNamed(t *testing.T) {
	for _, err := range []error{
		counter.Validate(numImpairEvents), counter.Validate(numImpairDrops), counter.Validate(numPipeDrops),
	} {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestPipeDropReasons: an oversized packet and a packet to a full queue
// each move exactly their own counter.
func TestPipeDropReasons(t *testing.T) {
	a, b := PipeWithQueue(100, 1)
	defer a.Close()
	defer b.Close()
	pkt := func(n int) [][]byte { return [][]byte{make([]byte, Headroom+n)} }
	check := func(want map[string]uint64) {
		t.Helper()
		got := counter.Snapshot(a)
		if len(got) != len(want) {
			t.Fatalf("counters %v, want %v", got, want)
		}
		for name, v := range want {
			if got[name] != v {
				t.Fatalf("counters %v, want %v", got, want)
			}
		}
	}
	a.WriteBatch(pkt(101), Headroom)
	check(map[string]uint64{"drop_too_big": 1, "drop_queue_full": 0})
	a.WriteBatch(pkt(20), Headroom) // fills the queue of one
	a.WriteBatch(pkt(20), Headroom)
	check(map[string]uint64{"drop_too_big": 1, "drop_queue_full": 1})
	if a.Dropped() != 2 {
		t.Fatalf("Dropped() = %d", a.Dropped())
	}
}

// TestImpairEachMatchesStats: Each lists both directions by name, with
// the values Stats reports.
func TestImpairEachMatchesStats(t *testing.T) {
	imp, _, _ := newOut(t, Spec{Loss: 1}, 1)
	write(t, imp, 0, 3)
	m := counter.Snapshot(imp)
	if len(m) != 2*(int(numImpairEvents)+int(numImpairDrops)) {
		t.Fatalf("Each listed %d counters: %v", len(m), m)
	}
	st := imp.Stats().Out
	if m["out.offered"] != st.Offered || m["out.drop_loss"] != st.DroppedLoss || st.DroppedLoss != 3 || m["in.offered"] != 0 {
		t.Fatalf("Each %v, Stats %+v", m, st)
	}
}
