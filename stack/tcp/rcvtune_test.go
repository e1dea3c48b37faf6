package tcp

import (
	"testing"
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// drsPeer is a sender for the auto-tuning tests: it sends what our window
// allows (at most a given amount per round), in chunks of up to 64 KiB
// (as a link's receive offload hands them over), each echoing the
// timestamp of the last segment we sent a round trip before or earlier.
type drsPeer struct {
	s     *script
	rtt   time.Duration
	seq   seqnum.Value // the next byte the peer sends
	edge  seqnum.Value // the right edge of the window we offered last
	ours  []sentTS     // our segments' timestamps, oldest first
	shift uint8        // our window scale
	tsVal uint32
}

type sentTS struct {
	at time.Time
	ts uint32
}

// tsEcr is the TSval the peer echoes now: that of our latest segment sent
// at least a round trip ago.
func (p *drsPeer) tsEcr() uint32 {
	var ecr uint32
	for _, o := range p.ours {
		if o.at.After(p.s.now.Add(-p.rtt)) {
			break
		}
		ecr = o.ts
	}
	return ecr
}

// openDRS makes a passive connection with window scaling and timestamps,
// whose handshake takes one rtt (the RTT the receiver starts from).
func openDRS(t *testing.T, cfg Config, rtt time.Duration, before func(*script)) *drsPeer {
	s := newScript(t, cfg)
	s.c.SetISS(lISS)
	s.c.Listen(s.now)
	if before != nil {
		before(s)
	}
	s.in(synWith(SYN, 0, 1, 7, true, true))
	sa := s.out(Segment{Flags: SYN | ACK, Seq: lISS, Ack: rISS + 1})
	p := &drsPeer{s: s, rtt: rtt, seq: rISS + 1, shift: sa.Opts.WS.Shift, tsVal: 1}
	p.ours = append(p.ours, sentTS{s.now, sa.Opts.TSVal})
	s.advance(rtt)
	p.in(seg(ACK, rISS+1, lISS+1))
	s.state(Established)
	p.edge = p.seq.Add(seqnum.Size(s.c.rcv.window()))
	return p
}

// in delivers one segment with the peer's timestamp.
func (p *drsPeer) in(g Segment) {
	p.tsVal++
	g.Opts.TS, g.Opts.TSVal, g.Opts.TSEcr = true, p.tsVal, p.tsEcr()
	p.s.in(g)
	p.took()
}

// took notes the window our latest segments offered, checking that its
// right edge never moved left (RFC 7323 §2.4), and their timestamp.
func (p *drsPeer) took() {
	for _, g := range p.s.sent {
		edge := g.Ack.Add(seqnum.Size(uint32(g.Wnd) << p.shift))
		if edge.LessThan(p.edge) {
			p.s.t.Fatalf("at +%v: the window's right edge moved left, from %d to %d", p.s.now.Sub(t0), p.edge, edge)
		}
		p.edge = edge
		p.ours = append(p.ours, sentTS{p.s.now, g.Opts.TSVal})
	}
	p.s.sent = p.s.sent[:0]
}

// window is how much the peer may send now.
func (p *drsPeer) window() int { return int(p.seq.Size(p.edge)) }

// send sends min(n, window) bytes now and returns how many.
func (p *drsPeer) send(n int) int {
	n = min(n, p.window())
	for left := n; left > 0; {
		k := min(left, 64<<10)
		p.in(seg(ACK|PSH, p.seq, lISS+1, bytesN(k)...))
		p.seq = p.seq.Add(seqnum.Size(k))
		left -= k
	}
	return n
}

// read has the application read up to n bytes.
func (p *drsPeer) read(n int) int {
	got, _ := p.s.c.Read(p.s.now, make([]byte, n))
	p.took()
	return got
}

// TestRcvBufStartsSmall: the SYN-ACK offers what Linux's does (a 65535
// window, window scale 7 for the 6 MiB cap); once established, the window
// is the 64 KiB buffer a connection starts with, not the cap.
func TestRcvBufStartsSmall(t *testing.T) {
	p := openDRS(t, Config{}, 10*time.Millisecond, nil)
	if p.shift != 7 {
		t.Fatalf("SYN-ACK window scale %d, want 7 (Linux's, for a 6 MiB tcp_rmem[2])", p.shift)
	}
	if got := p.s.c.RcvBuf(); got != DefaultRcvBufInit {
		t.Fatalf("receive buffer %d, want %d", got, DefaultRcvBufInit)
	}
	p.send(1000)
	// What the buffer has left, rounded up to the scale's unit of 128.
	if w, want := p.window(), DefaultRcvBufInit-1000; w < want || w >= want+128 {
		t.Fatalf("window %d after 1000 bytes, want %d", w, want)
	}
}

// TestRcvBufGrowsPerRTT: a sender in slow start (doubling each round) and
// an application that reads everything at once: the buffer grows only at
// the first read a round trip after the last measurement, in steps, up to
// the cap, and the window never holds the sender back before the cap.
func TestRcvBufGrowsPerRTT(t *testing.T) {
	const rtt, cap = 10 * time.Millisecond, 1 << 20
	p := openDRS(t, Config{RcvBuf: cap}, rtt, nil)
	sizes := []int{p.s.c.RcvBuf()}
	cwnd := 10 * 1460
	for round := 0; round < 10; round++ {
		// Two halves a half round trip apart, each read at once.
		for half := 0; half < 2; half++ {
			want := cwnd / 2
			if got := p.send(want); got < want && p.s.c.RcvBuf() < cap {
				t.Fatalf("round %d: window-limited (%d of %d bytes) with the buffer at %d, under the cap", round, got, want, p.s.c.RcvBuf())
			}
			before := p.s.c.RcvBuf()
			p.read(1 << 22)
			if after := p.s.c.RcvBuf(); after != before {
				if half == 1 {
					t.Fatalf("round %d: grew half a round trip after the previous measurement", round)
				}
				sizes = append(sizes, after)
			}
			p.s.advance(rtt / 2)
		}
		cwnd *= 2
	}
	t.Logf("buffer sizes: %v", sizes)
	if sizes[len(sizes)-1] != cap {
		t.Fatalf("buffer sizes %v: never reached the cap %d", sizes, cap)
	}
	if len(sizes) < 4 {
		t.Fatalf("buffer sizes %v: want growth in several steps", sizes)
	}
	for i := 1; i < len(sizes); i++ {
		if sizes[i] <= sizes[i-1] {
			t.Fatalf("buffer sizes %v: not growing", sizes)
		}
	}
	// The window offered grew with the buffer.
	if w := p.window(); w < cap/2 {
		t.Fatalf("window %d with an empty buffer of %d", w, cap)
	}
}

// TestRcvBufSlowReaderNoGrowth: an application that reads less per round
// trip than the window lets in, or that reads a full buffer only every 20
// round trips, does not grow the buffer: the window is not what limits it.
func TestRcvBufSlowReaderNoGrowth(t *testing.T) {
	const rtt = 10 * time.Millisecond
	for _, c := range []struct {
		name        string
		every, read int
	}{{"trickle", 1, 4000}, {"pauses", 20, 1 << 22}} {
		t.Run(c.name, func(t *testing.T) {
			p := openDRS(t, Config{}, rtt, nil)
			for round := 0; round < 60; round++ {
				p.send(1 << 20)
				if round%c.every == c.every-1 {
					p.read(c.read)
				}
				p.s.advance(rtt)
			}
			if got := p.s.c.RcvBuf(); got != DefaultRcvBufInit {
				t.Fatalf("receive buffer %d, want %d: grew for a slow reader", got, DefaultRcvBufInit)
			}
		})
	}
}

// TestRcvBufLockedBySetBuffers: SO_RCVBUF fixes the buffer (no tuning,
// Linux's SOCK_RCVBUF_LOCK) on an established connection; set before the
// SYN, it also chooses the window scale.
func TestRcvBufLockedBySetBuffers(t *testing.T) {
	const rtt = 10 * time.Millisecond
	t.Run("established", func(t *testing.T) {
		p := openDRS(t, Config{}, rtt, nil)
		p.s.c.SetBuffers(p.s.now, 32<<10, 0)
		p.took()
		cwnd := 10 * 1460
		for round := 0; round < 10; round++ {
			p.send(cwnd)
			p.read(1 << 22)
			p.s.advance(rtt)
			cwnd *= 2
		}
		if got := p.s.c.RcvBuf(); got != 32<<10 {
			t.Fatalf("receive buffer %d, want 32 KiB as SO_RCVBUF set it", got)
		}
		if w := p.window(); w > 64<<10 {
			t.Fatalf("window %d beyond the 64 KiB it had when the buffer was fixed", w)
		}
	})
	t.Run("before SYN", func(t *testing.T) {
		p := openDRS(t, Config{}, rtt, func(s *script) { s.c.SetBuffers(s.now, 200<<10, 0) })
		if p.shift != 2 {
			t.Fatalf("window scale %d, want 2 (the smallest for 200 KiB)", p.shift)
		}
		p.send(1000)
		if w := p.window(); w != 200<<10-1000 {
			t.Fatalf("window %d after 1000 bytes, want what is left of the 200 KiB buffer", w)
		}
		p.send(1 << 20)
		p.read(1 << 22)
		p.s.advance(rtt)
		p.send(1 << 20)
		p.read(1 << 22)
		if got := p.s.c.RcvBuf(); got != 200<<10 {
			t.Fatalf("receive buffer %d, want 200 KiB", got)
		}
	})
}

// TestRcvRTTFromTimestamps: the receiver's RTT estimate follows the
// timestamps echoed on full-sized data: the first sample, then a smaller
// one at once, a larger one by 1/8 of the difference.
func TestRcvRTTFromTimestamps(t *testing.T) {
	p := openDRS(t, Config{}, 10*time.Millisecond, nil)
	if got := p.s.c.rcv.tune.rtt; got != 0 {
		t.Fatalf("receiver RTT %v before any data, want none", got)
	}
	var ecr uint32
	for _, c := range []struct {
		ago  int // ms since we sent the TSval the segment echoes; 0: the previous one again
		want time.Duration
	}{
		{30, 30 * time.Millisecond},
		{50, 30*time.Millisecond + 20*time.Millisecond/8},
		{0, 30*time.Millisecond + 20*time.Millisecond/8}, // the same TSecr: no sample
		{20, 20 * time.Millisecond},
	} {
		p.s.advance(10 * time.Millisecond)
		if c.ago > 0 {
			ecr = p.s.c.tsNow(p.s.now) - uint32(c.ago)
		}
		g := seg(ACK, p.seq, lISS+1, bytesN(1460)...)
		g.Opts = header.TCPOptions{TS: true, TSVal: p.tsVal, TSEcr: ecr}
		p.seq = p.seq.Add(1460)
		p.s.in(g)
		if got := p.s.c.rcv.tune.rtt; got != c.want {
			t.Fatalf("echo of %d ms ago: receiver RTT %v, want %v", c.ago, got, c.want)
		}
	}
}

// TestRcvBufLongRoundTrip: a round trip estimated at days (an echo of a
// stale timestamp can do that) does not overflow the per-round-trip count.
func TestRcvBufLongRoundTrip(t *testing.T) {
	p := openDRS(t, Config{RcvBuf: 1 << 20}, 10*time.Millisecond, nil)
	n := p.send(1 << 20)
	p.s.c.rcv.tune.rtt = 10 * 24 * time.Hour
	p.s.now = p.s.now.Add(20 * 24 * time.Hour)
	if got := p.read(1 << 22); got != n {
		t.Fatalf("read %d bytes of %d", got, n)
	}
	if sp := int(p.s.c.rcv.tune.space); sp != n/2 {
		t.Fatalf("best round %d bytes, want %d: half of what was read, over two round trips", sp, n/2)
	}
	if got := p.s.c.RcvBuf(); got <= DefaultRcvBufInit || got > 1<<20 {
		t.Fatalf("receive buffer %d, want it grown, within its cap", got)
	}
}
