package cc

import (
	"testing"
	"time"
)

// bbrPath drives a BBR controller over a model path: a bottleneck of rate
// bytes per second and a fixed propagation delay; each round the sender
// puts min(cwnd, what the bottleneck drains in a round plus a queue) in
// flight, and the bottleneck's ACKs come back spread over the round: acks
// rate samples a round (one: the whole flight acknowledged at once, the
// most aggregated path there is).
type bbrPath struct {
	b         *BBR
	now       time.Time
	rtt       time.Duration
	rate      float64 // bytes/s
	delivered int64
	loss      float64 // the fraction of each round lost (a random-loss stand-in)
	acks      int
}

func (p *bbrPath) round() {
	inflight := p.b.Cwnd()
	bdp := int(p.rate * p.rtt.Seconds())
	rtt := p.rtt
	if inflight > bdp {
		// The excess queues at the bottleneck: the round takes longer.
		rtt = time.Duration(float64(inflight) / p.rate * float64(time.Second))
	}
	lost := int(float64(inflight) * p.loss)
	got := inflight - lost
	prior := p.delivered
	n := max(p.acks, 1)
	for j := range n {
		// Each ACK covers a slice of the flight, all of it sent before
		// the round's first ACK (the round starts with the first).
		part := got/n + got%n*(j+1)/n - got%n*j/n
		p.delivered += int64(part)
		p.now = p.now.Add(rtt/time.Duration(n) + rtt%time.Duration(n)*time.Duration(j+1)/time.Duration(n) - rtt%time.Duration(n)*time.Duration(j)/time.Duration(n))
		if lost > 0 && j == 0 {
			p.b.OnLoss(p.now, inflight)
		}
		sLost := 0
		if j == 0 {
			sLost = lost
		}
		p.b.OnRateSample(p.now, RateSample{
			Delivered: int64(got), Interval: rtt, RTT: rtt,
			PriorDelivered: prior, TotalDelivered: p.delivered,
			Acked: part, Lost: sLost, InFlight: lost + got - int(p.delivered-prior), InRecovery: lost > 0,
		})
	}
	if lost > 0 {
		// The losses are repaired within the round: recovery ends.
		p.b.OnRateSample(p.now, RateSample{PriorDelivered: p.delivered, TotalDelivered: p.delivered, InFlight: 0})
	}
}

func newBBRPath(rate float64, rtt time.Duration) *bbrPath {
	return &bbrPath{b: NewBBR(mss), now: t0, rtt: rtt, rate: rate, acks: 20}
}

// Startup doubles the window each round, like slow start, until the
// bandwidth stops growing by 25% for three rounds; then Drain and ProbeBW
// hold the window near cwnd_gain * BDP.
func TestBBRStartupFindsTheBottleneck(t *testing.T) {
	p := newBBRPath(125e6, 10*time.Millisecond) // 1 Gbit/s, 10 ms: BDP 1.25 MB
	bdp := 125e6 * 0.010
	if p.b.Cwnd() != InitialWindow(mss) || p.b.Mode() != "startup" {
		t.Fatalf("start: cwnd %d mode %s", p.b.Cwnd(), p.b.Mode())
	}
	prev := p.b.Cwnd()
	p.round()
	if p.b.Cwnd() != 2*prev {
		t.Errorf("after one round of startup: cwnd %d, want %d (doubled)", p.b.Cwnd(), 2*prev)
	}
	for i := 0; i < 40 && p.b.Mode() != "probe_bw"; i++ {
		p.round()
	}
	if p.b.Mode() != "probe_bw" {
		t.Fatalf("after 40 rounds: mode %s, want probe_bw", p.b.Mode())
	}
	if bw := p.b.BtlBw(); bw < 0.9*125e6 || bw > 1.1*125e6 {
		t.Errorf("BtlBw = %.0f B/s, want about 125e6", bw)
	}
	if p.b.RTprop() != 10*time.Millisecond {
		t.Errorf("RTprop = %v, want 10ms", p.b.RTprop())
	}
	for range 16 {
		p.round()
	}
	// The target is 2*BDP, plus what the ACKs deliver beyond the rate
	// (about one ACK's share of the flight here: ackAggregationCwnd),
	// plus three TSO units (quantizationBudget).
	target := p.b.quantizationBudget(p.b.bdp(2) + p.b.ackAggregationCwnd())
	if a := float64(p.b.ackAggregationCwnd()); a <= 0 || a > 0.2*bdp {
		t.Errorf("ACK aggregation %.0f bytes with 20 ACKs a round, want above 0 and at most 0.2*BDP = %.0f", a, 0.2*bdp)
	}
	if c := float64(p.b.Cwnd()); c < 1.9*bdp || c > 2.5*bdp || c < float64(target-2*mss) || c > float64(target+2*mss) {
		t.Errorf("ProbeBW cwnd = %.0f, want about 2*BDP = %.0f, at its target %d", c, 2*bdp, target)
	}
}

// Random loss is not congestion: at 5% loss per round BBR keeps its
// window near 2*BDP, where CUBIC's multiplicative decrease collapses it.
func TestBBRHoldsItsWindowUnderRandomLoss(t *testing.T) {
	p := newBBRPath(125e6, 10*time.Millisecond)
	for range 40 {
		p.round()
	}
	p.loss = 0.05
	for range 50 {
		p.round()
	}
	bdp := 125e6 * 0.010
	if c := float64(p.b.Cwnd()); c < 1.5*bdp {
		t.Errorf("BBR at 5%% loss: cwnd %.0f, want at least 1.5*BDP = %.0f", c, 1.5*bdp)
	}
	c := NewCubic(mss)
	now := t0
	for range 12 {
		now = round(c, now, 10*time.Millisecond)
	}
	for range 50 {
		c.OnLoss(now, c.Cwnd())
		now = round(c, now, 10*time.Millisecond)
	}
	if float64(c.Cwnd()) > 0.5*bdp {
		t.Errorf("CUBIC with a loss every round: cwnd %d, expected it far below the BDP (%.0f)", c.Cwnd(), bdp)
	}
}

// A timeout leaves one segment; the window regrows by what is delivered,
// and once what was in flight at the timeout is delivered, the window
// before it comes back (Linux's TCP_CA_Loss, then bbr's restore).
func TestBBRTimeoutThenRestore(t *testing.T) {
	p := newBBRPath(125e6, 10*time.Millisecond)
	for range 40 {
		p.round()
	}
	before := p.b.Cwnd()
	flight := before
	p.b.OnRTO(p.now, flight)
	if p.b.Cwnd() != mss {
		t.Fatalf("after RTO: cwnd %d, want one MSS", p.b.Cwnd())
	}
	p.delivered += int64(mss)
	p.b.OnRateSample(p.now, RateSample{Delivered: mss, Interval: p.rtt, PriorDelivered: p.delivered - mss, TotalDelivered: p.delivered, Acked: mss, InFlight: 0})
	if c := p.b.Cwnd(); c >= before || c < 2*mss {
		t.Errorf("first ACK after RTO: cwnd %d, want grown from one MSS and below %d", c, before)
	}
	p.delivered += int64(flight)
	p.b.OnRateSample(p.now, RateSample{Delivered: int64(flight), Interval: p.rtt, PriorDelivered: p.delivered - int64(flight), TotalDelivered: p.delivered, Acked: flight, InFlight: 0})
	if p.b.Cwnd() < before {
		t.Errorf("once the timed-out flight is delivered: cwnd %d, want the %d before the timeout", p.b.Cwnd(), before)
	}
}

// Ten seconds without a lower RTT sample: ProbeRTT holds four segments for
// 200 ms and a round, then returns to ProbeBW with the window restored.
func TestBBRProbeRTT(t *testing.T) {
	p := newBBRPath(125e6, 10*time.Millisecond)
	for range 40 {
		p.round()
	}
	before := p.b.Cwnd()
	p.rtt = 11 * time.Millisecond // a standing queue: no new minimum
	entered := false
	for i := 0; i < 2000; i++ {
		p.round()
		if p.b.Mode() == "probe_rtt" {
			entered = true
			if p.b.Cwnd() > bbrMinCwndSegs*mss {
				t.Fatalf("ProbeRTT cwnd %d, want at most %d", p.b.Cwnd(), bbrMinCwndSegs*mss)
			}
		} else if entered {
			break
		}
	}
	if !entered {
		t.Fatal("no ProbeRTT within 2000 rounds of 11 ms")
	}
	if p.b.Mode() != "probe_bw" || p.b.Cwnd() < before/2 {
		t.Errorf("after ProbeRTT: mode %s cwnd %d (before %d)", p.b.Mode(), p.b.Cwnd(), before)
	}
}

// An app-limited sample below the estimate does not lower BtlBw.
func TestBBRAppLimitedSamplesDoNotLowerTheEstimate(t *testing.T) {
	p := newBBRPath(125e6, 10*time.Millisecond)
	for range 40 {
		p.round()
	}
	bw := p.b.BtlBw()
	for range 20 {
		p.now = p.now.Add(p.rtt)
		prior := p.delivered
		p.delivered += 1000
		p.b.OnRateSample(p.now, RateSample{Delivered: 1000, Interval: p.rtt, RTT: p.rtt, PriorDelivered: prior, TotalDelivered: p.delivered, Acked: 1000, AppLimited: true})
	}
	if p.b.BtlBw() != bw {
		t.Errorf("BtlBw moved from %.0f to %.0f on app-limited samples", bw, p.b.BtlBw())
	}
}

// On a short fast path the BDP is a few segments, but Linux keeps room
// for three TSO units of 1/1024 s of the pacing rate over it (its
// quantization budget), so that hosts that acknowledge in bursts (GRO,
// delayed and compressed ACKs) do not leave the pipe idle: 1 Gbit/s
// makes a unit of 44 segments of 1460 bytes (64 KiB less header room).
func TestBBRQuantizationBudgetOnAShortPath(t *testing.T) {
	p := newBBRPath(125e6, 50*time.Microsecond) // BDP about 6 KB
	for i := 0; i < 60 && p.b.Mode() != "probe_bw"; i++ {
		p.round()
	}
	if p.b.Mode() != "probe_bw" {
		t.Fatalf("mode %s, want probe_bw", p.b.Mode())
	}
	for range 16 {
		p.round()
	}
	if g := p.b.tsoSegsGoal(); g != 44 {
		t.Errorf("TSO goal %d segments, want 44", g)
	}
	// The model's queue keeps RTprop above 50 µs: the BDP is BBR's own.
	lo := int(2*125e6*p.b.RTprop().Seconds()) + p.b.ackAggregationCwnd() + 3*44*mss
	if c := p.b.Cwnd(); c < lo || c > lo+4*mss {
		t.Errorf("ProbeBW cwnd = %d, want 2*BDP plus the ACK aggregation plus three 44-segment units, %d to %d", c, lo, lo+4*mss)
	}
	if c := p.b.Cwnd() / mss; c%2 != 0 && p.b.cycle != 0 {
		t.Errorf("cwnd of %d segments: Linux rounds it up to an even number", c)
	}
}

// Where the ACKs of a round come back in one burst, a window of 2*BDP
// leaves the sender idle while it waits for the next: BBR adds the largest
// recent excess of the delivered bytes over what BtlBw would deliver
// (Linux's bbr_ack_aggregation_cwnd), at most BtlBw times
// 100 ms; with ACKs spread over the round the excess is one ACK's share.
func TestBBRAckAggregation(t *testing.T) {
	const rate, rtt = 125e6, 10 * time.Millisecond
	bdp := rate * rtt.Seconds()
	run := func(acks, rounds int) *bbrPath {
		p := newBBRPath(rate, rtt)
		p.acks = acks
		for i := 0; i < 60 && p.b.Mode() != "probe_bw"; i++ {
			p.round()
		}
		if p.b.Mode() != "probe_bw" {
			t.Fatalf("%d ACKs a round: mode %s, want probe_bw", acks, p.b.Mode())
		}
		for range rounds {
			p.round()
		}
		return p
	}
	spread, burst := run(20, 16), run(1, 16)
	if a := float64(spread.b.ackAggregationCwnd()); a > 0.2*bdp {
		t.Errorf("20 ACKs a round: aggregation %.0f bytes, want at most 0.2*BDP = %.0f", a, 0.2*bdp)
	}
	if a := float64(burst.b.ackAggregationCwnd()); a < bdp {
		t.Errorf("one ACK a round: aggregation %.0f bytes, want at least a BDP = %.0f", a, bdp)
	}
	if burst.b.Cwnd() <= spread.b.Cwnd()+int(bdp)/2 {
		t.Errorf("one ACK a round: cwnd %d, want well above the %d of 20 ACKs a round", burst.b.Cwnd(), spread.b.Cwnd())
	}
	// The cap: at most BtlBw times 100 ms over 2*BDP, however long the
	// bursts go on.
	long := run(1, 200)
	limit := long.b.quantizationBudget(long.b.bdp(2) + int(long.b.BtlBw()*0.1))
	if a, c := long.b.ackAggregationCwnd(), long.b.Cwnd(); a > int(long.b.BtlBw()*0.1)+mss || c > limit {
		t.Errorf("one ACK a round for 200 rounds: aggregation %d, cwnd %d, want at most BtlBw*100ms = %.0f and %d", a, c, long.b.BtlBw()*0.1, limit)
	}
}
