package link

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack/clock"
)

// recorder is an Endpoint that records what is written to it and when.
type recorder struct {
	clk    clock.Clock
	mu     sync.Mutex
	pkts   [][]byte
	at     []time.Duration // since clock.Epoch
	closed chan struct{}
	once   sync.Once
}

func newRecorder(clk clock.Clock) *recorder { return &recorder{clk: clk, closed: make(chan struct{})} }

func (r *recorder) WriteBatch(bufs [][]byte, offset int) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range bufs {
		r.pkts = append(r.pkts, bytes.Clone(b[offset:]))
		r.at = append(r.at, r.clk.Now().Sub(clock.Epoch))
	}
	return len(bufs), nil
}

func (r *recorder) ReadBatch([][]byte, []int, int) (int, error) {
	<-r.closed
	return 0, net.ErrClosed
}

func (r *recorder) BatchSize() int { return 64 }
func (r *recorder) MTU() int       { return 1500 }
func (r *recorder) Close() error   { r.once.Do(func() { close(r.closed) }); return nil }

// ids returns the packet numbers (see pkt) recorded so far.
func (r *recorder) ids() []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []uint32
	for _, p := range r.pkts {
		ids = append(ids, binary.BigEndian.Uint32(p))
	}
	return ids
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pkts)
}

// pkt is a buffer with headroom holding a 100-byte packet numbered id.
func pkt(id uint32) []byte {
	b := make([]byte, Headroom+100)
	binary.BigEndian.PutUint32(b[Headroom:], id)
	for i := Headroom + 4; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	return b
}

// write sends packets from..to-1 one call each.
func write(t *testing.T, ep Endpoint, from, to uint32) {
	t.Helper()
	for id := from; id < to; id++ {
		if n, err := ep.WriteBatch([][]byte{pkt(id)}, Headroom); n != 1 || err != nil {
			t.Fatalf("WriteBatch = %d, %v", n, err)
		}
	}
}

func seq(from, to uint32) []uint32 {
	var s []uint32
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func newOut(t *testing.T, s Spec, seed int64) (*Impaired, *recorder, *clock.Virtual) {
	t.Helper()
	v := clock.NewVirtual()
	rec := newRecorder(v)
	imp := Impair(rec, ImpairConfig{Out: s, Seed: seed, Clock: v})
	t.Cleanup(func() { imp.Close() })
	return imp, rec, v
}

func TestImpairZeroSpecPassesThrough(t *testing.T) {
	imp, rec, _ := newOut(t, Spec{}, 1)
	write(t, imp, 0, 10)
	if got := rec.ids(); !slices.Equal(got, seq(0, 10)) {
		t.Fatalf("got %v", got)
	}
	if st := imp.Stats().Out; st.Offered != 10 || st.Passed != 10 {
		t.Fatalf("stats %+v", st)
	}
	if imp.readerDone != nil {
		t.Fatal("a zero In spec started the reader goroutine")
	}
}

func TestImpairLossRate(t *testing.T) {
	const n, loss = 100_000, 0.1
	imp, rec, _ := newOut(t, Spec{Loss: loss}, 42)
	b := [][]byte{pkt(0)}
	for range n {
		imp.WriteBatch(b, Headroom)
	}
	st := imp.Stats().Out
	// Binomial: sd = sqrt(n p (1-p)) ~ 95 packets; allow 6 sd.
	if got := float64(st.DroppedLoss) / n; got < loss-0.006 || got > loss+0.006 {
		t.Fatalf("lost %.4f of packets, want %.2f +- 0.006", got, loss)
	}
	if st.Passed+st.DroppedLoss != n || uint64(rec.count()) != st.Passed {
		t.Fatalf("stats %+v, recorded %d", st, rec.count())
	}
}

// lossPattern returns which of n packets survive.
func lossPattern(t *testing.T, s Spec, seed int64, n uint32) []uint32 {
	imp, rec, v := newOut(t, s, seed)
	write(t, imp, 0, n)
	v.Advance(time.Hour) // whatever is delayed
	ids := rec.ids()
	return slices.Compact(slices.Sorted(slices.Values(ids)))
}

func TestImpairSameSeedSameDrops(t *testing.T) {
	s := Spec{Loss: 0.3}
	a, b := lossPattern(t, s, 7, 1000), lossPattern(t, s, 7, 1000)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different drop patterns")
	}
	if c := lossPattern(t, s, 8, 1000); slices.Equal(a, c) {
		t.Fatal("different seeds, same drop pattern")
	}
	// Each knob has its own stream: adding others leaves the losses alone.
	// (Corruption is left out only because it may hit the packet number.)
	s2 := Spec{Loss: 0.3, Dup: 0.2, Reorder: 0.1, Delay: time.Millisecond, Jitter: time.Millisecond}
	if d := lossPattern(t, s2, 7, 1000); !slices.Equal(a, d) {
		t.Fatal("adding dup, reorder and jitter changed the loss pattern")
	}
}

// TestImpairSameSeedSameRun: a whole mixed run is reproducible, contents and
// times included.
func TestImpairSameSeedSameRun(t *testing.T) {
	run := func() ([][]byte, []time.Duration) {
		s := Spec{Loss: 0.1, Dup: 0.1, Reorder: 0.1, Corrupt: 0.1, Delay: 3 * time.Millisecond, Jitter: 2 * time.Millisecond, Rate: 10_000_000}
		imp, rec, v := newOut(t, s, 99)
		for id := range uint32(500) {
			write(t, imp, id, id+1)
			v.Advance(100 * time.Microsecond)
		}
		v.Advance(time.Second)
		return rec.pkts, rec.at
	}
	p1, t1 := run()
	p2, t2 := run()
	if !slices.EqualFunc(p1, p2, bytes.Equal) || !slices.Equal(t1, t2) {
		t.Fatal("same seed and calls, different runs")
	}
}

// TestImpairDelayExact: in virtual time a packet leaves exactly Delay after
// it was written, not a nanosecond sooner.
func TestImpairDelayExact(t *testing.T) {
	const delay = 10 * time.Millisecond
	imp, rec, v := newOut(t, Spec{Delay: delay}, 1)
	v.Advance(time.Second)
	write(t, imp, 1, 2)
	v.Advance(delay - time.Nanosecond)
	if rec.count() != 0 {
		t.Fatal("packet released before its delay")
	}
	v.Advance(time.Nanosecond)
	if rec.count() != 1 || rec.at[0] != time.Second+delay {
		t.Fatalf("released %d packets at %v, want 1 at %v", rec.count(), rec.at, time.Second+delay)
	}
	if st := imp.Stats().Out; st.Delayed != 1 || st.Passed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestImpairJitterBounded: every delay lies in [Delay-Jitter, Delay+Jitter];
// packets spaced wider than the jitter range see the whole range.
func TestImpairJitterBounded(t *testing.T) {
	const delay, jitter = 10 * time.Millisecond, 3 * time.Millisecond
	imp, rec, v := newOut(t, Spec{Delay: delay, Jitter: jitter}, 5)
	sent := map[uint32]time.Duration{}
	for id := range uint32(2000) {
		sent[id] = v.Now().Sub(clock.Epoch)
		write(t, imp, id, id+1)
		v.Advance(2*jitter + time.Millisecond)
	}
	v.Advance(time.Second)
	lo, hi := checkJitter(t, rec, sent, delay, jitter, 2000)
	if lo > delay-jitter+100*time.Microsecond || hi < delay+jitter-100*time.Microsecond {
		t.Fatalf("delays span only %v..%v", lo, hi)
	}
}

// TestImpairJitterKeepsOrder: packets closer together than the jitter keep
// their order (a later one is held until the earlier one has gone) and stay
// within bounds.
func TestImpairJitterKeepsOrder(t *testing.T) {
	const delay, jitter = 10 * time.Millisecond, 3 * time.Millisecond
	imp, rec, v := newOut(t, Spec{Delay: delay, Jitter: jitter}, 5)
	sent := map[uint32]time.Duration{}
	for id := range uint32(2000) {
		sent[id] = v.Now().Sub(clock.Epoch)
		write(t, imp, id, id+1)
		v.Advance(50 * time.Microsecond)
	}
	v.Advance(time.Second)
	checkJitter(t, rec, sent, delay, jitter, 2000)
}

func checkJitter(t *testing.T, rec *recorder, sent map[uint32]time.Duration, delay, jitter time.Duration, n uint32) (lo, hi time.Duration) {
	t.Helper()
	ids := rec.ids()
	if !slices.Equal(ids, seq(0, n)) {
		t.Fatal("jitter lost or reordered packets")
	}
	lo, hi = time.Hour, 0
	for i, id := range ids {
		d := rec.at[i] - sent[id]
		if d < delay-jitter || d > delay+jitter {
			t.Fatalf("packet %d delayed %v, want %v +- %v", id, d, delay, jitter)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	return lo, hi
}

// TestImpairReorderSwaps: with Reorder 1 every other packet is overtaken by
// its successor.
func TestImpairReorderSwaps(t *testing.T) {
	imp, rec, _ := newOut(t, Spec{Reorder: 1}, 1)
	b := [][]byte{pkt(1), pkt(2), pkt(3), pkt(4)}
	imp.WriteBatch(b, Headroom)
	if got := rec.ids(); !slices.Equal(got, []uint32{2, 1, 4, 3}) {
		t.Fatalf("order %v, want [2 1 4 3]", got)
	}
	if st := imp.Stats().Out; st.Reordered != 2 || st.Passed != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// TestImpairReorderTimeout: a held packet that nobody overtakes leaves after
// ReorderTimeout.
func TestImpairReorderTimeout(t *testing.T) {
	imp, rec, v := newOut(t, Spec{Reorder: 1}, 1)
	write(t, imp, 1, 2)
	v.Advance(ReorderTimeout - time.Nanosecond)
	if rec.count() != 0 {
		t.Fatal("held packet left early")
	}
	v.Advance(time.Nanosecond)
	if got := rec.ids(); !slices.Equal(got, []uint32{1}) || rec.at[0] != ReorderTimeout {
		t.Fatalf("got %v at %v", got, rec.at)
	}
	if imp.Stats().Out.Reordered != 0 {
		t.Fatal("counted as reordered though nothing overtook it")
	}
}

func TestImpairReorderWithDelay(t *testing.T) {
	imp, rec, v := newOut(t, Spec{Reorder: 0.5, Delay: 5 * time.Millisecond}, 3)
	for id := range uint32(200) {
		write(t, imp, id, id+1)
		v.Advance(100 * time.Microsecond)
	}
	v.Advance(time.Second)
	ids := rec.ids()
	if !slices.Equal(slices.Sorted(slices.Values(ids)), seq(0, 200)) {
		t.Fatal("reordering lost or duplicated packets")
	}
	if slices.IsSorted(ids) || imp.Stats().Out.Reordered == 0 {
		t.Fatal("nothing reordered")
	}
}

func TestImpairDuplicates(t *testing.T) {
	imp, rec, _ := newOut(t, Spec{Dup: 1}, 1)
	write(t, imp, 1, 4)
	if got := rec.ids(); !slices.Equal(got, []uint32{1, 1, 2, 2, 3, 3}) {
		t.Fatalf("got %v", got)
	}
	if st := imp.Stats().Out; st.Duplicated != 3 || st.Passed != 6 || st.Offered != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestImpairCorruptFlipsOneBit(t *testing.T) {
	imp, rec, _ := newOut(t, Spec{Corrupt: 1}, 1)
	const n = 1000
	seen := map[int]bool{}
	for id := range uint32(n) {
		b := pkt(id)
		orig := bytes.Clone(b)
		imp.WriteBatch([][]byte{b}, Headroom)
		if !bytes.Equal(b, orig) {
			t.Fatal("corruption touched the caller's buffer")
		}
		got := rec.pkts[id]
		flipped := 0
		for i := range got {
			flipped += bits.OnesCount8(got[i] ^ orig[Headroom+i])
			if got[i] != orig[Headroom+i] {
				seen[i] = true
			}
		}
		if flipped != 1 || len(got) != len(orig)-Headroom {
			t.Fatalf("packet %d: %d bits flipped, length %d", id, flipped, len(got))
		}
	}
	if len(seen) < 50 {
		t.Fatalf("corruption hit only %d distinct byte positions of 100", len(seen))
	}
	if st := imp.Stats().Out; st.Corrupted != n {
		t.Fatalf("stats %+v", st)
	}
}

// TestImpairRateSpacing: 1250-byte packets at 1 Mbit/s leave 10 ms apart.
func TestImpairRateSpacing(t *testing.T) {
	imp, rec, v := newOut(t, Spec{Rate: 1_000_000, Delay: time.Millisecond}, 1)
	b := make([][]byte, 5)
	for i := range b {
		b[i] = make([]byte, Headroom+1250)
		b[i][Headroom+3] = byte(i)
	}
	imp.WriteBatch(b, Headroom)
	v.Advance(time.Second)
	want := []time.Duration{11, 21, 31, 41, 51}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(rec.at, want) || !slices.Equal(rec.ids(), seq(0, 5)) {
		t.Fatalf("released %v at %v, want 0..4 at %v", rec.ids(), rec.at, want)
	}
	// The link idles once drained: the next packet (100 bytes: 0.8 ms)
	// waits for itself only.
	write(t, imp, 9, 10)
	v.Advance(time.Second)
	if got := rec.at[5]; got != time.Second+1800*time.Microsecond {
		t.Fatalf("packet after idle released at %v", got)
	}
}

func TestImpairQueueLimit(t *testing.T) {
	imp, rec, v := newOut(t, Spec{Delay: time.Second, Queue: 3}, 1)
	write(t, imp, 0, 10)
	if st := imp.Stats().Out; st.DroppedQueue != 7 || st.Delayed != 3 {
		t.Fatalf("stats %+v", st)
	}
	v.Advance(time.Second)
	if got := rec.ids(); !slices.Equal(got, seq(0, 3)) {
		t.Fatalf("got %v", got)
	}
	// Drained: room again.
	write(t, imp, 10, 11)
	v.Advance(time.Second)
	if rec.count() != 4 {
		t.Fatal("queue did not drain")
	}
}

func TestImpairDefaultQueue(t *testing.T) {
	imp, _, _ := newOut(t, Spec{Delay: time.Second}, 1)
	write(t, imp, 0, DefaultImpairQueue+5)
	if st := imp.Stats().Out; st.DroppedQueue != 5 {
		t.Fatalf("stats %+v", st)
	}
}

// TestImpairCopies: the caller may reuse its buffer at once.
func TestImpairCopies(t *testing.T) {
	imp, rec, v := newOut(t, Spec{Delay: time.Millisecond}, 1)
	b := pkt(7)
	imp.WriteBatch([][]byte{b}, Headroom)
	clear(b)
	v.Advance(time.Millisecond)
	if got := rec.ids(); !slices.Equal(got, []uint32{7}) {
		t.Fatalf("got %v", got)
	}
}

// TestImpairRuleDropsThird: a Rule drops exactly the 3rd outbound packet.
func TestImpairRuleDropsThird(t *testing.T) {
	v := clock.NewVirtual()
	rec := newRecorder(v)
	n := 0
	var dirs []Direction
	imp := Impair(rec, ImpairConfig{Clock: v, Rule: func(dir Direction, p []byte) Action {
		dirs = append(dirs, dir)
		if n++; n == 3 {
			return Drop
		}
		return Pass
	}})
	defer imp.Close()
	write(t, imp, 1, 6)
	if got := rec.ids(); !slices.Equal(got, []uint32{1, 2, 4, 5}) {
		t.Fatalf("got %v, want [1 2 4 5]", got)
	}
	if st := imp.Stats().Out; st.DroppedRule != 1 || st.Passed != 4 {
		t.Fatalf("stats %+v", st)
	}
	if slices.ContainsFunc(dirs, func(d Direction) bool { return d != Out }) {
		t.Fatalf("rule saw directions %v", dirs)
	}
}

// TestImpairRuleDelay: a Rule delays the 2nd packet past the 3rd, exactly,
// and overrides random loss.
func TestImpairRuleDelay(t *testing.T) {
	v := clock.NewVirtual()
	rec := newRecorder(v)
	imp := Impair(rec, ImpairConfig{Clock: v, Out: Spec{Loss: 1}, Rule: func(_ Direction, p []byte) Action {
		switch binary.BigEndian.Uint32(p) {
		case 2:
			return Delay(5 * time.Millisecond)
		case 3:
			return Delay(time.Millisecond)
		}
		return Pass
	}})
	defer imp.Close()
	write(t, imp, 1, 5)
	v.Advance(time.Second)
	if got := rec.ids(); !slices.Equal(got, []uint32{3, 2}) {
		t.Fatalf("got %v, want [3 2] (1 and 4 lost)", got)
	}
	if !slices.Equal(rec.at, []time.Duration{time.Millisecond, 5 * time.Millisecond}) {
		t.Fatalf("released at %v", rec.at)
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Pass: "pass", Drop: "drop", Delay(3 * time.Millisecond): "delay 3ms", Delay(0): "pass"} {
		if a.String() != want {
			t.Errorf("%d.String() = %q, want %q", int64(a), a.String(), want)
		}
	}
}

func TestImpairInvalidSpecPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	Impair(newRecorder(clock.Real{}), ImpairConfig{Out: Spec{Loss: 2}})
}

// readAll reads from ep until want packets arrived or the deadline passed.
func readAll(t *testing.T, ep Endpoint, want int, deadline time.Duration) ([]uint32, []time.Time) {
	t.Helper()
	type res struct {
		ids []uint32
		at  []time.Time
		err error
	}
	done := make(chan res, 1)
	go func() {
		var r res
		bufs := [][]byte{make([]byte, Headroom+1500), make([]byte, Headroom+1500)}
		sizes := make([]int, 2)
		for len(r.ids) < want {
			n, err := ep.ReadBatch(bufs, sizes, Headroom)
			if err != nil {
				r.err = err
				break
			}
			for i := range n {
				r.ids = append(r.ids, binary.BigEndian.Uint32(bufs[i][Headroom:]))
				r.at = append(r.at, time.Now())
			}
		}
		done <- r
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("ReadBatch: %v (after %v)", r.err, r.ids)
		}
		return r.ids, r.at
	case <-time.After(deadline):
		t.Fatalf("no %d packets within %v", want, deadline)
	}
	return nil, nil
}

// TestImpairInOverPipe: inbound delay, loss by Rule, and Close, over a Pipe
// in real time.
func TestImpairInOverPipe(t *testing.T) {
	const delay = 30 * time.Millisecond
	a, b := Pipe(1500)
	imp := Impair(b, ImpairConfig{In: Spec{Delay: delay}, Rule: func(dir Direction, p []byte) Action {
		if dir == In && binary.BigEndian.Uint32(p) == 2 {
			return Drop
		}
		return Pass
	}})
	start := time.Now()
	write(t, a, 0, 5)
	ids, at := readAll(t, imp, 4, 5*time.Second)
	if !slices.Equal(ids, []uint32{0, 1, 3, 4}) {
		t.Fatalf("got %v, want [0 1 3 4]", ids)
	}
	for i := range at {
		if at[i].Sub(start) < delay {
			t.Fatalf("packet %d arrived after %v, before its delay %v", ids[i], at[i].Sub(start), delay)
		}
	}
	if st := imp.Stats().In; st.Offered != 5 || st.Passed != 4 || st.DroppedRule != 1 || st.Delayed != 4 {
		t.Fatalf("stats %+v", st)
	}

	// Writes still work and pass through (the Out spec is zero).
	write(t, imp, 10, 11)
	if got, _ := readAll(t, a, 1, 5*time.Second); !slices.Equal(got, []uint32{10}) {
		t.Fatalf("out got %v", got)
	}

	// Close wakes a blocked ReadBatch and stops the reader goroutine
	// (Close waits for it).
	errc := make(chan error, 1)
	go func() {
		_, err := imp.ReadBatch([][]byte{make([]byte, 2000)}, []int{0}, Headroom)
		errc <- err
	}()
	closed := make(chan struct{})
	go func() { imp.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadBatch still blocked after Close")
	}
	if _, err := imp.WriteBatch([][]byte{pkt(1)}, Headroom); err == nil {
		t.Fatal("WriteBatch after Close succeeded")
	}
}

// TestImpairInVirtualTime: inbound packets are held until Advance reaches
// their release time.
func TestImpairInVirtualTime(t *testing.T) {
	v := clock.NewVirtual()
	a, b := Pipe(1500)
	imp := Impair(b, ImpairConfig{In: Spec{Delay: time.Second, Dup: 1}, Clock: v})
	defer imp.Close()
	write(t, a, 0, 3)
	waitfor.Cond(t, 5*time.Second, "the reader to pick up the packets", func() bool { return imp.Stats().In.Offered >= 3 })
	v.Advance(time.Second - time.Nanosecond)
	imp.in.mu.Lock()
	ready := len(imp.in.ready)
	imp.in.mu.Unlock()
	if st := imp.Stats().In; st.Delayed != 6 || ready != 0 {
		t.Fatalf("released early: %+v", st)
	}
	v.Advance(time.Nanosecond)
	if got, _ := readAll(t, imp, 6, 5*time.Second); !slices.Equal(got, []uint32{0, 0, 1, 1, 2, 2}) {
		t.Fatalf("got %v", got)
	}
}

func TestParseSpec(t *testing.T) {
	good := []struct {
		in   string
		want Spec
	}{
		{"", Spec{}},
		{"none", Spec{}},
		{"loss=0.05,dup=0.01,reorder=0.02,delay=5ms,corrupt=0.001,rate=10mbit,jitter=1ms",
			Spec{Loss: 0.05, Dup: 0.01, Reorder: 0.02, Corrupt: 0.001, Delay: 5 * time.Millisecond, Jitter: time.Millisecond, Rate: 10_000_000}},
		{"loss=5%", Spec{Loss: 0.05}},
		{" loss = 100% , dup=0 ", Spec{Loss: 1}},
		{"rate=1500", Spec{Rate: 1500}},
		{"rate=64kbit", Spec{Rate: 64_000}},
		{"rate=1.5Mbit", Spec{Rate: 1_500_000}},
		{"rate=10gbit", Spec{Rate: 10_000_000_000}},
		{"rate=2bit", Spec{Rate: 2}},
		{"queue=50,delay=1.5s", Spec{Queue: 50, Delay: 1500 * time.Millisecond}},
	}
	for _, tt := range good {
		got, err := ParseSpec(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if back, err := ParseSpec(got.String()); err != nil || back != got {
			t.Errorf("ParseSpec(%q.String() = %q) = %+v, %v", tt.in, got.String(), back, err)
		}
	}
	bad := []struct{ in, errHas string }{
		{"lose=0.1", `unknown key "lose" (valid keys: loss, dup, reorder, corrupt, delay, jitter, rate, queue)`},
		{"loss", `"loss" has no value`},
		{"loss=abc", `loss="abc": want a probability`},
		{"loss=1.5", `loss="1.5"`},
		{"loss=-0.1", `loss="-0.1"`},
		{"dup=150%", `dup="150%"`},
		{"corrupt=NaN", `corrupt="NaN"`},
		{"delay=5", `delay="5": want a duration`},
		{"jitter=-1ms", `jitter="-1ms"`},
		{"delay=48h", `delay="48h"`},
		{"rate=10mbps", `rate="10mbps": want bits per second such as 10mbit (units: bit, kbit, mbit, gbit`},
		{"rate=fast", `rate="fast"`},
		{"rate=0.1bit", `rate="0.1bit"`},
		{"queue=-1", `queue="-1"`},
		{"loss=0.1,loss=0.2", `key "loss" given twice`},
		{"loss=0.1,,dup=0.1", "empty item"},
	}
	for _, tt := range bad {
		_, err := ParseSpec(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("ParseSpec(%q) error %v, want one containing %q", tt.in, err, tt.errHas)
		}
	}
}

func TestSpecString(t *testing.T) {
	for s, want := range map[Spec]string{
		{}:                             "none",
		{Loss: 0.05, Rate: 10_000_000}: "loss=0.05,rate=10mbit",
		{Delay: 5 * time.Millisecond, Jitter: time.Millisecond, Queue: 10, Rate: 1234}: "delay=5ms,jitter=1ms,rate=1234bit,queue=10",
	} {
		if got := s.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", s, got, want)
		}
	}
}

// TestImpairConcurrentRealTime: writers on several goroutines, timers on
// the real clock, a reader on the far end; every packet offered is
// accounted for, and the race detector stays quiet.
func TestImpairConcurrentRealTime(t *testing.T) {
	a, b := PipeWithQueue(1500, 100_000)
	imp := Impair(a, ImpairConfig{Seed: 3, Out: Spec{Delay: time.Millisecond, Jitter: 500 * time.Microsecond, Dup: 0.1, Reorder: 0.1, Loss: 0.1, Queue: 100_000}})
	const writers, each = 4, 300
	var wg sync.WaitGroup
	for w := range uint32(writers) {
		wg.Go(func() {
			for i := range uint32(each) {
				imp.WriteBatch([][]byte{pkt(w*each + i)}, Headroom)
			}
		})
	}
	wg.Wait()
	if st := imp.Stats().Out; st.Offered != writers*each {
		t.Fatalf("offered %d", st.Offered)
	}
	waitfor.Condf(t, 5*time.Second, func() string { return fmt.Sprintf("the held packets to go (%+v)", imp.Stats().Out) }, func() bool {
		st := imp.Stats().Out
		return st.Passed == st.Offered-st.DroppedLoss+st.Duplicated
	})
	st := imp.Stats().Out
	ids, _ := readAll(t, b, int(st.Passed), 5*time.Second)
	if len(ids) != int(st.Passed) {
		t.Fatalf("read %d of %d", len(ids), st.Passed)
	}
	if err := imp.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestImpairWriteDoesNotAllocate: the undelayed path reuses its buffers.
func TestImpairWriteDoesNotAllocate(t *testing.T) {
	imp, rec, _ := newOut(t, Spec{Loss: 0.2, Dup: 0.2, Corrupt: 0.2, Reorder: 0.2}, 1)
	discard := &discardEP{recorder: rec}
	imp.ep = discard
	bufs := [][]byte{pkt(1), pkt(2), pkt(3), pkt(4)}
	for range 100 {
		imp.WriteBatch(bufs, Headroom)
	}
	if n := testing.AllocsPerRun(1000, func() { imp.WriteBatch(bufs, Headroom) }); n != 0 {
		t.Fatalf("WriteBatch allocates %v times per call", n)
	}
}

type discardEP struct{ *recorder }

func (discardEP) WriteBatch(bufs [][]byte, _ int) (int, error) { return len(bufs), nil }

func BenchmarkImpairWrite(b *testing.B) {
	v := clock.NewVirtual()
	imp := Impair(discardEP{newRecorder(v)}, ImpairConfig{Out: Spec{Loss: 0.01, Corrupt: 0.01}, Clock: v})
	defer imp.Close()
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, Headroom+1500)
	}
	b.ReportAllocs()
	b.SetBytes(64 * 1500)
	for b.Loop() {
		imp.WriteBatch(bufs, Headroom)
	}
}

// TestImpairInShortBuffer: as with Pipe, a packet too big for the first
// buffer is dropped with ErrShortBuffer, and the next read goes on.
func TestImpairInShortBuffer(t *testing.T) {
	a, b := Pipe(1500)
	imp := Impair(b, ImpairConfig{Rule: func(Direction, []byte) Action { return Pass }})
	defer imp.Close()
	write(t, a, 1, 3)
	waitfor.Cond(t, 5*time.Second, "the reader to pick up the packets", func() bool { return imp.Stats().In.Offered >= 2 })
	if _, err := imp.ReadBatch([][]byte{make([]byte, Headroom+50)}, []int{0}, Headroom); err != ErrShortBuffer {
		t.Fatalf("err %v, want ErrShortBuffer", err)
	}
	if got, _ := readAll(t, imp, 1, 5*time.Second); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("got %v", got)
	}
}

// FuzzParseSpec: ParseSpec never panics, accepts only valid specs, and
// String round-trips what it accepts.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"", "none", "loss=0.05,dup=0.01,reorder=0.02,delay=5ms,corrupt=0.001,rate=10mbit,jitter=1ms",
		"loss=5%", "rate=1.5mbit,queue=7", "rate=1e3kbit", "loss=1e-9", "delay=1h2m3.5s", "x=", "=", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSpec(in)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("ParseSpec(%q) accepted an invalid spec: %v", in, err)
		}
		back, err := ParseSpec(s.String())
		if err != nil || back != s {
			t.Fatalf("ParseSpec(%q) = %+v; String %q parses as %+v, %v", in, s, s.String(), back, err)
		}
	})
}
