package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"ustack/stack/link"
)

// wire reads the target's segments off its link in a goroutine.
type wire struct {
	ep   link.Endpoint
	in   chan rxSeg
	done chan struct{}
}

func newWire(ep link.Endpoint) *wire {
	w := &wire{ep: ep, in: make(chan rxSeg, 1024), done: make(chan struct{})}
	go w.read()
	return w
}

func (w *wire) read() {
	n := max(w.ep.BatchSize(), 1)
	bufs, sizes := make([][]byte, n), make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, link.Headroom+link.MaxPacket)
	}
	for {
		k, err := w.ep.ReadBatch(bufs, sizes, link.Headroom)
		if errors.Is(err, link.ErrShortBuffer) {
			continue
		}
		if err != nil {
			return
		}
		now := time.Now()
		for i := range k {
			s, ok := parseSeg(bufs[i][link.Headroom:link.Headroom+sizes[i]], now)
			if !ok {
				continue
			}
			select {
			case w.in <- s:
			case <-w.done:
				return
			}
		}
	}
}

// write sends one packet built with link.Headroom in front.
func (w *wire) write(pkt []byte) error {
	_, err := w.ep.WriteBatch([][]byte{pkt}, link.Headroom)
	return err
}

// stop ends the reader once the link is closed.
func (w *wire) stop() { close(w.done) }

// Run is one scenario played against one target: the peer's flows, the
// target's sockets, and the outcome (one line per observation).
type Run struct {
	ctx    context.Context
	target Target
	w      *wire
	start  time.Time

	flows   []*flow
	cur     int
	pending []rxSeg // received, not yet taken by an observation

	lis      net.Listener
	socks    map[int]net.Conn
	ops      map[int]pendingOp // the application's operations under way, by flow
	stops    []func()          // end what those operations opened
	lastSend time.Time

	lines      []string
	notOffered string
}

// opResult is how an operation of the application ended, and when.
type opResult struct {
	c   net.Conn
	err error
	at  time.Time
}

// pendingOp is an operation of the application under way in the
// background (a dial, a write while opening, a lingering close), whose
// result a later step records.
type pendingOp struct {
	what string // "dial", "write", "close"
	ch   <-chan opResult
}

// Port numbers of the scripts: the target listens on ListenPort (nothing
// on ClosedPort); passive flow i of the peer uses PeerPortBase+i, and the
// peer accepts active opens on ActivePort.
const (
	ListenPort   = 7000
	ClosedPort   = 7001
	PeerPortBase = 40000
	ActivePort   = 9000
)

// peerISN is the peer's initial sequence number of flow i: fixed, so that
// transcripts read alike, and far from zero.
func peerISN(i int) uint32 { return 0x10000000*uint32(i+1) + 12345 }

func (r *Run) flow() *flow { return r.flows[r.cur] }

// tsval is the peer's timestamp clock: milliseconds since the run began,
// offset from zero.
func (r *Run) tsval() uint32 { return uint32(time.Since(r.start)/time.Millisecond) + 1_000_000 }

// record adds one observation to the outcome.
func (r *Run) record(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

// collect waits for segments of the current flow: until want of them
// arrived (then for settle more, to catch extras) or until the deadline.
// want <= 0 waits for the whole window. Segments of other flows stay
// pending.
func (r *Run) collect(want int, within, settle time.Duration) []rxSeg {
	deadline := time.Now().Add(within)
	var got []rxSeg
	f := r.flow()
	take := func(s rxSeg) bool {
		if f.matches(s) {
			got = append(got, s)
			return true
		}
		return false
	}
	rest := r.pending[:0]
	for _, s := range r.pending {
		if !take(s) {
			rest = append(rest, s)
		}
	}
	r.pending = rest
	for {
		if want > 0 && len(got) >= want {
			if end := time.Now().Add(settle); end.Before(deadline) {
				deadline = end
			}
			want = 0
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return got
		}
		timer := time.NewTimer(wait)
		select {
		case s := <-r.w.in:
			if !take(s) {
				r.pending = append(r.pending, s)
			}
		case <-timer.C:
		}
		timer.Stop()
	}
}

// timing is how an observation shows when each segment came.
type timing int

const (
	untimed   timing = iota
	sinceLast        // each delay since the peer's last send or socket action, as a timingBucket
	intervals        // each delay since the previous segment (the first: since the last send or action), roughly
)

// observe records the segments collected as one line, learning from each.
func (r *Run) observe(segs []rxSeg, within time.Duration, t timing) {
	f := r.flow()
	if len(segs) == 0 {
		r.record("silence (%v)", within)
		return
	}
	parts := make([]string, len(segs))
	prev := r.lastSend
	for i, s := range segs {
		f.learn(s)
		parts[i] = f.render(s)
		switch t {
		case sinceLast:
			parts[i] = timingBucket(s.at.Sub(r.lastSend)) + ": " + parts[i]
		case intervals:
			parts[i] = "+" + roughly(s.at.Sub(prev)) + ": " + parts[i]
		}
		prev = s.at
	}
	r.record("%s", strings.Join(parts, " + "))
}

// sock is the target's socket of the current flow.
func (r *Run) sock() (net.Conn, error) {
	c, ok := r.socks[r.cur]
	if !ok {
		return nil, fmt.Errorf("flow %d has no socket (accept or dial first)", r.cur)
	}
	return c, nil
}

// send writes one packet of the peer's (built with link.Headroom in front)
// and remembers when.
func (r *Run) send(pkt []byte) error {
	r.lastSend = time.Now()
	return r.w.write(pkt)
}

// wait blocks for d or until the run's context ends.
func (r *Run) wait(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}
