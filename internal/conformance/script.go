package conformance

import (
	"fmt"
	"time"

	"ustack/stack/header"
)

// Step is one line of a script: a segment the peer sends, an observation of
// what comes back, or an action on the target's socket.
type Step struct {
	// Doc is how the step reads in the scenario's listing.
	Doc string
	do  func(r *Run) error
}

// Mod adjusts a segment Send builds. Without one, a segment carries
// SEQ = the peer's SND.NXT (which it then advances) and ACK = what the peer
// received in order.
type Mod struct {
	doc string
	fn  func(f *flow, s *segSpec)
}

type segSpec struct {
	txSeg
	seqSet bool
	syn    *SynOpts
	times  int
	gap    time.Duration
}

// SeqNext puts SEQ at SND.NXT + d without advancing SND.NXT.
func SeqNext(d int64) Mod {
	return Mod{fmt.Sprintf("seq=SND.NXT%+d", d), func(f *flow, s *segSpec) { s.seq, s.seqSet = f.sndNxt+uint32(d), true }}
}

// AtEdge puts SEQ at the target's RCV.NXT + RCV.WND + d, as its latest
// ACK announced them.
func AtEdge(d int64) Mod {
	return Mod{fmt.Sprintf("seq=RCV.NXT+RCV.WND%+d", d), func(f *flow, s *segSpec) {
		s.seq, s.seqSet = f.theirAck+f.theirWnd+uint32(d), true
	}}
}

// Ack puts ACK at the target's ISN + rel (an absolute number before the
// target's ISN is known).
func Ack(rel int64) Mod {
	return Mod{fmt.Sprintf("ack=%d", rel), func(f *flow, s *segSpec) { s.ack = f.irs + uint32(rel) }}
}

// Data gives the segment n bytes of payload.
func Data(n int) Mod {
	return Mod{fmt.Sprintf("len=%d", n), func(_ *flow, s *segSpec) { s.payload = n }}
}

// Win sets the window field of this segment and of the peer's later ones.
func Win(w uint16) Mod {
	return Mod{fmt.Sprintf("win=%d", w), func(f *flow, s *segSpec) { f.wnd, s.window = w, w }}
}

// Opts sets the options of a SYN or SYN-ACK (default AllOpts).
func Opts(o SynOpts) Mod {
	return Mod{optsDoc(o), func(_ *flow, s *segSpec) { s.syn = &o }}
}

// Times sends the segment n times, gap apart.
func Times(n int, gap time.Duration) Mod {
	return Mod{fmt.Sprintf("x%d every %v", n, gap), func(_ *flow, s *segSpec) { s.times, s.gap = n, gap }}
}

func optsDoc(o SynOpts) string {
	if o == NoOpts {
		return "no options"
	}
	d := ""
	if o.MSS != 0 {
		d += fmt.Sprintf("mss %d ", o.MSS)
	}
	if o.SACK {
		d += "sackOK "
	}
	if o.TS {
		d += "TS "
	}
	if o.WS >= 0 {
		d += fmt.Sprintf("ws %d", o.WS)
	}
	return "[" + d + "]"
}

// Send makes the peer send a segment of the current flow; flags in
// tcpdump's letters ("S", "S.", ".", "P.", "F.", "R", "R.").
func Send(flags string, mods ...Mod) Step {
	doc := "send " + flags
	for _, m := range mods {
		doc += " " + m.doc
	}
	return Step{doc, func(r *Run) error { return r.sendSeg(parseFlags(flags), mods) }}
}

// sendSeg builds the segment from the flow's state and the mods, and sends
// it (several times with Times).
func (r *Run) sendSeg(flags uint8, mods []Mod) error {
	f := r.flow()
	s := segSpec{txSeg: txSeg{srcPort: f.peerPort, dstPort: f.targetPort, flags: flags, seq: f.sndNxt, window: f.wnd}, times: 1}
	if flags&header.FlagACK != 0 {
		s.ack = f.rcvNxt
	}
	if flags&header.FlagSYN != 0 {
		s.window = 64240
		o := AllOpts
		s.syn = &o
	}
	for _, m := range mods {
		m.fn(f, &s)
	}
	if flags&header.FlagACK == 0 {
		s.ack = 0
	}
	if flags&header.FlagSYN != 0 {
		f.sent, f.sentSyn = *s.syn, true
		f.negotiate()
		s.opts = header.TCPOptions{MSS: s.syn.MSS, SACKPermit: s.syn.SACK, TS: s.syn.TS}
		if s.syn.WS >= 0 {
			s.opts.WS = header.WS(uint8(s.syn.WS))
		}
	}
	if !s.seqSet {
		f.sndNxt += uint32(s.payload)
		if flags&(header.FlagSYN|header.FlagFIN) != 0 {
			f.sndNxt++
		}
	}
	for i := range s.times {
		if i > 0 {
			if err := r.wait(s.gap); err != nil {
				return err
			}
		}
		r.stampTS(f, &s)
		if err := r.send(s.build()); err != nil {
			return err
		}
	}
	return nil
}

// stampTS puts the timestamp option on a segment that needs one: a SYN
// offering it, any segment once both sides use it.
func (r *Run) stampTS(f *flow, s *segSpec) {
	if !(s.flags&header.FlagSYN != 0 && s.syn.TS) && !f.tsOn {
		return
	}
	s.opts.TS, s.opts.TSVal = true, r.tsval()
	s.opts.TSEcr = 0
	if s.flags&header.FlagACK != 0 {
		s.opts.TSEcr = f.tsRecent
	}
	if f.tsLo == 0 {
		f.tsLo = s.opts.TSVal
	}
	f.tsHi = s.opts.TSVal
}

// settle is how long an observation goes on listening once it has the
// segments it waited for, to catch extra ones.
const settle = 60 * time.Millisecond

// Expect waits up to within for n segments of the current flow (and settle
// more), and records them, or the silence.
func Expect(n int, within time.Duration) Step { return expect(n, within, "", untimed) }

// ExpectTimed is Expect with each segment's delay since the peer's last
// send, as a timing bucket (see timingBucket).
func ExpectTimed(n int, within time.Duration) Step { return expect(n, within, ", timed", sinceLast) }

// ExpectIntervals is Expect with each segment's delay since the previous
// one (the first: since the peer's last send or socket action), to the
// nearest 100 ms: for backoff, where the intervals are the outcome.
func ExpectIntervals(n int, within time.Duration) Step {
	return expect(n, within, ", intervals", intervals)
}

func expect(n int, within time.Duration, doc string, t timing) Step {
	return Step{fmt.Sprintf("expect %d within %v%s", n, within, doc), func(r *Run) error {
		r.observe(r.collect(n, within, settle), within, t)
		return nil
	}}
}

// Take records the next n segments of the current flow as soon as they
// have come (no settle time for extras), so that the peer can answer the
// first of a burst before the rest is looked at; the rest stays for the
// next observation.
func Take(n int, within time.Duration) Step {
	return Step{fmt.Sprintf("take %d within %v", n, within), func(r *Run) error {
		segs := r.collect(n, within, 0)
		if len(segs) > n { // already pending
			r.pending = append(segs[n:len(segs):len(segs)], r.pending...)
			segs = segs[:n]
		}
		r.observe(segs, within, untimed)
		return nil
	}}
}

// Watch records everything the current flow gets in a fixed window: for
// the outcomes where silence, or a count, is the point.
func Watch(window time.Duration) Step {
	return Step{fmt.Sprintf("watch %v", window), func(r *Run) error {
		r.observe(r.collect(0, window, 0), window, untimed)
		return nil
	}}
}

// Flow makes flow i (a passive flow from port PeerPortBase+i unless Dial
// made it active) the current one.
func Flow(i int) Step {
	return Step{fmt.Sprintf("flow %d", i), func(r *Run) error {
		r.useFlow(i)
		return nil
	}}
}

func (r *Run) useFlow(i int) {
	for len(r.flows) <= i {
		n := len(r.flows)
		r.flows = append(r.flows, newFlow(PeerPortBase+uint16(n), ListenPort, peerISN(n)))
	}
	r.cur = i
}

// Handshake opens the current flow actively from the peer: SYN with o,
// the reply recorded, and the final ACK if the reply was a SYN-ACK.
func Handshake(o SynOpts) Step {
	return Step{"handshake " + optsDoc(o), func(r *Run) error {
		if err := r.sendSeg(header.FlagSYN, []Mod{Opts(o)}); err != nil {
			return err
		}
		segs := r.collect(1, time.Second, 0)
		r.observe(segs, time.Second, untimed)
		if len(segs) == 0 || segs[0].flags != header.FlagSYN|header.FlagACK {
			return fmt.Errorf("no SYN-ACK")
		}
		return r.sendSeg(header.FlagACK, nil)
	}}
}

// ToPort points the current flow at another port of the target.
func ToPort(port uint16) Step {
	return Step{fmt.Sprintf("to port %d", port), func(r *Run) error {
		r.flow().targetPort = port
		return nil
	}}
}
