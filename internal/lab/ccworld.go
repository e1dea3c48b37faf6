package lab

import (
	"errors"
	"time"

	"ustack/internal/record"
	"ustack/stack"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// What the congestion labs (nagle, slow-start, congestion, mss-mtu) share:
// a link with a fixed delay and a bottleneck, a bulk transfer from the
// server to the client driven in virtual time, and the sender's congestion
// state sampled for the plots.

// labMTUEndpoint shows a stack a smaller MTU than its link's, as a host
// whose interface is configured so.
type labMTUEndpoint struct {
	link.Endpoint
	mtu int
}

func (e labMTUEndpoint) MTU() int { return e.mtu }

// withMTU makes ep report mtu (0: its own).
func withMTU(ep link.Endpoint, mtu int) link.Endpoint {
	if mtu == 0 {
		return ep
	}
	return labMTUEndpoint{ep, mtu}
}

// ccPoint is one sample of a sender's congestion state.
type ccPoint struct {
	t                        time.Duration // since the sampler started
	cwnd, ssthresh, inFlight int           // bytes; ssthresh 0: none yet
	ca                       tcp.CAState
	timeouts, fastRtx        uint64
	dupAcks                  uint64 // duplicate ACKs the sender has counted
}

// ccSampler follows one sending connection: it emits a sample event each
// time its congestion state changes (the labs call take after every
// instant of virtual time at which something happened, so every ACK
// the sender processes is seen) and keeps the points for the claims.
type ccSampler struct {
	r      *labRun
	series string
	c      *stack.Conn
	start  time.Time
	pts    []ccPoint
}

func (r *labRun) newSampler(series string, c *stack.Conn) *ccSampler {
	s := &ccSampler{r: r, series: series, c: c, start: r.now()}
	s.take()
	return s
}

// noSsthresh is what the controllers hold before the first loss (1<<30,
// "none yet").
const noSsthresh = 1 << 30

// take samples the connection now if its state changed.
func (s *ccSampler) take() {
	i := s.c.Info()
	p := ccPoint{t: s.r.now().Sub(s.start), cwnd: i.Cwnd, ssthresh: i.Ssthresh, inFlight: i.Unacked,
		ca: i.CAState, timeouts: i.Stats.Timeouts, fastRtx: i.Stats.FastRetransmits, dupAcks: i.Stats.DupAcks}
	if p.ssthresh >= noSsthresh {
		p.ssthresh = 0
	}
	if n := len(s.pts); n > 0 {
		q := s.pts[n-1]
		if q.cwnd == p.cwnd && q.ssthresh == p.ssthresh && q.inFlight == p.inFlight && q.ca == p.ca {
			return
		}
	}
	s.pts = append(s.pts, p)
	s.r.sample(s.series, p.cwnd, p.ssthresh, p.inFlight)
}

// last is the latest point.
func (s *ccSampler) last() ccPoint { return s.pts[len(s.pts)-1] }

// before is the last point before t (or the first).
func (s *ccSampler) before(t time.Duration) ccPoint {
	p := s.pts[0]
	for _, q := range s.pts {
		if q.t >= t {
			break
		}
		p = q
	}
	return p
}

// maxCwnd is the largest cwnd in [from, to).
func (s *ccSampler) maxCwnd(from, to time.Duration) int {
	m := 0
	for _, q := range s.pts {
		if q.t >= from && q.t < to {
			m = max(m, q.cwnd)
		}
	}
	return m
}

// labTransfer is a bulk transfer from the server's connection to the
// client's in the in-memory world: the server writes size bytes (0: without
// end) as its send buffer takes them, the client reads everything.
type labTransfer struct {
	w      *labVWorld
	sc     *stack.Conn
	c      clientConn
	size   int
	sent   int
	got    int
	s      *ccSampler
	onStep func() // after every instant, if set
	buf    []byte
}

// run moves virtual time on until the client has every byte (or limit
// passes).
func (x *labTransfer) run(limit time.Duration) error {
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte('a' + i%26)
	}
	x.buf = make([]byte, 64<<10)
	endless := x.size == 0
	if endless {
		x.size = 1 << 62
	}
	ok := x.w.until(limit, func() bool {
		for x.sent < x.size {
			n, _ := x.sc.TryWrite(chunk[:min(len(chunk), x.size-x.sent)])
			x.sent += n
			if n == 0 {
				break
			}
		}
		for {
			n, _ := x.c.TryRead(x.buf)
			x.got += n
			if n == 0 {
				break
			}
		}
		if x.s != nil {
			x.s.take()
		}
		if x.onStep != nil {
			x.onStep()
		}
		return x.got >= x.size
	})
	if !ok && !endless {
		return errors.New("the transfer did not complete")
	}
	return nil
}

// dataSegs are the server's data segments in pk (retransmissions
// included, dropped ones too).
func dataSegs(pk []record.Pkt) []record.Pkt {
	return record.Where(pk, func(p record.Pkt) bool { return !p.ToServer && len(p.Payload) > 0 })
}

// The congestion labs' path: a fixed one-way delay each way and, from the
// server to the client, a bottleneck (a rate and a drop-tail queue), so
// that a window's segments arrive spaced and each ACK clocks out more.
const (
	ccDelay = 50 * time.Millisecond // one way: the RTT is 100 ms plus queueing
	ccRate  = 12_000_000            // bits per second: a 1500-byte packet takes 1 ms
	ccQueue = 60                    // packets
	ccRTT   = 2 * ccDelay
)

// ccRunConfig is one sender's run over the path.
type ccRunConfig struct {
	series string
	srv    tcp.Config
	seed   uint64
	decide func(p record.Pkt) link.Action // the server's packets, if set
	watch  func(p record.Pkt)             // sees the server's packets, if set
	queue  int                            // the bottleneck's queue (0: ccQueue)
	size   int                            // bytes to send (0: send until dur)
	dur    time.Duration                  // how long the run may last
	draw   time.Duration                  // draw the ladder this long, then go quiet
	// drawWhen, if set, decides at every step whether the ladder is drawn
	// (a window around the moment the story is about).
	drawWhen func() bool
	onStep   func(x *labTransfer)
}

// ccRunResult is what a run left: the samples, its packets, the server's
// connection.
type ccRunResult struct {
	s     *ccSampler
	pk    []record.Pkt
	info  tcp.Info
	start time.Time // the first data segment may leave
	err   error
}

// ccRun builds a fresh in-memory world with the bottleneck, opens a
// connection and lets the server send, sampling its congestion state.
func (r *labRun) ccRun(c ccRunConfig) (*ccRunResult, error) {
	q := c.queue
	if q == 0 {
		q = ccQueue
	}
	r.setQuiet(c.draw == 0 && c.drawWhen == nil || c.drawWhen != nil && !c.drawWhen())
	defer r.setQuiet(false)
	decide := func(p record.Pkt) link.Action {
		if c.watch != nil {
			c.watch(p)
		}
		if c.decide != nil {
			return c.decide(p)
		}
		return link.Pass
	}
	w, ln, err := r.vListen(labVConfig{srv: c.srv, cliSeed: c.seed, srvSeed: c.seed, srvDecide: decide,
		srvOut: link.Spec{Delay: ccDelay, Rate: ccRate, Queue: q}, cliOut: link.Spec{Delay: ccDelay}})
	if err != nil {
		return nil, err
	}
	defer w.close()
	r.ladderHeader()
	n0 := len(r.rec.Packets())
	cl, sc, err := w.establish(ln)
	if err != nil {
		return nil, err
	}
	x := &labTransfer{w: w, sc: sc, c: cl, size: c.size}
	x.s = r.newSampler(c.series, sc)
	start := r.now()
	x.onStep = func() {
		if c.draw > 0 && r.now().Sub(start) >= c.draw {
			r.setQuiet(true)
		}
		if c.drawWhen != nil {
			r.setQuiet(!c.drawWhen())
		}
		if c.onStep != nil {
			c.onStep(x)
		}
	}
	res := &ccRunResult{s: x.s, start: start}
	res.err = x.run(c.dur)
	res.pk = r.rec.Packets()[n0:]
	res.info = sc.Info()
	return res, nil
}

// newData are the data segments in pk that send new data (no
// retransmission), in order.
func newData(pk []record.Pkt) []record.Pkt {
	var out []record.Pkt
	var maxEnd uint32
	have := false
	for _, p := range dataSegs(pk) {
		end := p.Seq + uint32(len(p.Payload))
		if !have || int32(end-maxEnd) > 0 {
			if !have || int32(p.Seq-maxEnd) >= 0 {
				out = append(out, p)
			}
			maxEnd, have = end, true
		}
	}
	return out
}

// firstRetransmit finds the first data segment sent again in pk: its
// index, and the flight (SND.MAX - SND.UNA) the sender had when it sent
// it (see flightAt).
func firstRetransmit(pk []record.Pkt) (idx, flight int, ok bool) {
	return retransmitOf(pk, func(record.Pkt) bool { return true })
}

// retransmitOf finds the first data segment sent again in pk that match
// accepts, and the flight when it was sent.
func retransmitOf(pk []record.Pkt, match func(record.Pkt) bool) (idx, flight int, ok bool) {
	var maxEnd uint32
	have := false
	for i, p := range pk {
		if p.ToServer || len(p.Payload) == 0 {
			continue
		}
		end := p.Seq + uint32(len(p.Payload))
		if have && int32(p.Seq-maxEnd) < 0 && match(p) {
			return i, flightAt(pk[:i], maxEnd, p.T), true
		}
		if !have || int32(end-maxEnd) > 0 {
			maxEnd, have = end, true
		}
	}
	return 0, 0, false
}

// flightAt is SND.MAX - SND.UNA at t read from the wire: the end of the
// highest byte sent (maxEnd), less the highest ACK that had reached the
// sender by t (the client's packets take exactly ccDelay).
func flightAt(pk []record.Pkt, maxEnd uint32, t time.Time) int {
	var una uint32
	have := false
	for _, a := range pk {
		if a.ToServer && a.Has(header.FlagACK) && !a.T.Add(ccDelay).After(t) && (!have || int32(a.Ack-una) > 0) {
			una, have = a.Ack, true
		}
	}
	return int(maxEnd - una)
}

// ccRounds splits the segments into rounds: bursts separated by a pause
// of at least gap.
func ccRounds(segs []record.Pkt, gap time.Duration) [][]record.Pkt {
	var out [][]record.Pkt
	for i, p := range segs {
		if i == 0 || p.T.Sub(segs[i-1].T) >= gap {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], p)
	}
	return out
}

// ssthreshAfterLoss is what the controller named sets ssthresh to for a
// loss with flight bytes in flight (cc.Reno.OnLoss, cc.Cubic.reduce).
func ssthreshAfterLoss(ccName string, flight, mss int) int {
	if ccName == "newreno" {
		return max(flight/2, 2*mss)
	}
	return max(int(float64(flight)*0.7), 2*mss)
}
