package lab

import (
	"fmt"
	"io"
	"sync"
	"time"

	"ustack/internal/record"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// The --tun versions of slow-start and congestion: ustack's server sends
// to the kernel's client through the TUN, each of its packets held for
// tunDelay (real time), so that round trips are visible.

const (
	tunDelay = 20 * time.Millisecond
	tunSize  = 2 << 20
)

// tunCCRun is one sender's run against the kernel: decide may drop the
// server's packets (it is called before the delay); the sampler runs in
// real time, every millisecond.
func (r *labRun) tunCCRun(series string, cfg tcp.Config, decide func(p record.Pkt) link.Action) (*ccRunResult, error) {
	out := func(p record.Pkt) link.Action {
		if decide != nil {
			if a := decide(p); a == link.Drop {
				return a
			}
		}
		return link.Delay(tunDelay)
	}
	// Quiet before the stack's goroutines start, loud again once they are
	// gone: the tap reads the flag without a lock.
	r.setQuiet(true)
	defer r.setQuiet(false)
	w, ln, done, err := r.tunListen(cfg, out, nil)
	defer done()
	if err != nil {
		return nil, err
	}
	c, sc, err := w.connect(ln)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sc.SetDeadline(time.Now().Add(30 * time.Second))
	n0 := len(r.rec.Packets())
	s := r.newSampler(series, sc)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s.take()
			}
		}
	}()
	errc := make(chan error, 1)
	go func() { _, err := sc.Write(make([]byte, tunSize)); errc <- err }()
	got, rerr := io.ReadFull(c, make([]byte, tunSize))
	werr := <-errc
	close(stop)
	wg.Wait()
	s.take()
	if rerr != nil || werr != nil {
		return nil, fmt.Errorf("the transfer failed: read %d bytes, %v, %v", got, rerr, werr)
	}
	return &ccRunResult{s: s, pk: r.rec.Packets()[n0:], info: sc.Info(), start: s.start}, nil
}

// flightBefore is SND.MAX - SND.UNA just before pk[i] went out, from the
// order in which the server's tap saw its own packets and read the
// kernel's.
func flightBefore(pk []record.Pkt, i int) int {
	var maxEnd, una uint32
	haveEnd, haveUna := false, false
	for _, p := range pk[:i] {
		if p.ToServer {
			if !haveUna || int32(p.Ack-una) > 0 {
				una, haveUna = p.Ack, true
			}
			continue
		}
		if end := p.Seq + uint32(len(p.Payload)); len(p.Payload) > 0 && (!haveEnd || int32(end-maxEnd) > 0) {
			maxEnd, haveEnd = end, true
		}
	}
	return int(maxEnd - una)
}

// labSlowStartTUN: ustack's CUBIC sender in slow start against the
// kernel's receiver, 20 ms of delay on the way.
func labSlowStartTUN(r *labRun) error {
	r.say("ustack's server sends %d bytes to the kernel; the lab holds each of its packets %v (RTT about %v)", tunSize, tunDelay, tunDelay)
	res, err := r.tunCCRun("cubic", tcp.Config{}, nil)
	if err != nil {
		return err
	}
	rounds := ccRounds(newData(res.pk), tunDelay/2)
	var n []int
	for i := range min(len(rounds), 4) {
		n = append(n, len(rounds[i]))
		r.say("round %d: %d new segments", i+1, len(rounds[i]))
	}
	end := res.s.last()
	r.say("the kernel read everything after %v; cwnd %d MSS at the end, %d loss recoveries", end.t.Round(time.Millisecond), end.cwnd/res.info.SndMSS, res.info.Stats.FastRetransmits)
	ok := len(n) >= 3 && n[0] == 10 && n[1] == 20
	for i := 2; ok && i < len(n); i++ {
		ok = n[i] > n[i-1] && n[i] <= 2*n[i-1]
	}
	r.say("from round 3 the kernel's receive window, which its autotuning opens round by round, bounds the flight more than cwnd does")
	r.check(ok, "slow start against the kernel: 10 segments, then 20, then more each round trip, never more than twice as many (%v)", n)
	r.check(res.s.pts[0].cwnd == 10*res.info.SndMSS && res.s.maxCwnd(0, end.t+1) >= 40*res.info.SndMSS,
		"cwnd starts at 10 MSS and grows past 40 MSS (%d)", res.s.maxCwnd(0, end.t+1)/res.info.SndMSS)
	return nil
}

// labCongestionTUN: the lab drops three of ustack's segments; the kernel's
// duplicate ACKs (with SACK blocks, or without) bring the fast retransmit.
func labCongestionTUN(r *labRun) error {
	r.say("ustack's server sends %d bytes to the kernel; the lab holds each of its packets %v and drops three of them (new segments no. %d, %d and %d)", tunSize, tunDelay, cgFirst, cgFirst+cgSpacing, cgFirst+2*cgSpacing)
	for i, v := range []cgVariant{{"newreno", "newreno", false, false}, {"cubic+sack", "cubic", true, false}} {
		r.tunSection("%s", r.cgTitle(v))
		var mu sync.Mutex
		x := &cgWatch{r: r, v: v}
		decide := func(p record.Pkt) link.Action {
			mu.Lock()
			defer mu.Unlock()
			return x.decide(p)
		}
		res, err := r.tunCCRun(v.series, tcp.Config{CC: v.cc, NoSACK: !v.sack}, decide)
		if err != nil {
			return err
		}
		idx, ok := 0, false
		mu.Lock()
		if len(x.dropped) > 0 {
			first := x.dropped[0]
			idx, _, ok = retransmitOf(res.pk, func(p record.Pkt) bool { return p.Seq == first })
		}
		mu.Unlock()
		flight := 0
		if ok {
			flight = flightBefore(res.pk, idx)
		}
		red := res.s.firstReduced()
		want := ssthreshAfterLoss(v.cc, flight, res.info.SndMSS)
		st := res.info.Stats
		r.say("%d segments retransmitted, %d fast retransmits, %d timeouts; ssthresh %d MSS", st.Retransmits, st.FastRetransmits, st.Timeouts, red.ssthresh/res.info.SndMSS)
		r.check(ok && st.FastRetransmits >= 1 && st.Timeouts == 0, "%s: the kernel's duplicate ACKs bring a fast retransmit, no timeout (%d, %d)", v.series, st.FastRetransmits, st.Timeouts)
		beta := []string{"0.5", "0.7"}[i]
		r.check(ok && red.ssthresh == want, "%s: ssthresh = %s × flight = %s × %d = %d (%d)", v.series, beta, beta, flight, want, red.ssthresh)
	}
	r.say("(the timeout case runs in memory: without --tun)")
	return nil
}

// tunSection is a heading in a --tun lab: a note through the ladder's sink,
// which serialises it with the packets the stack's goroutines draw.
func (r *labRun) tunSection(format string, args ...any) {
	r.say("%s", "── "+fmt.Sprintf(r.T(format), args...))
}
