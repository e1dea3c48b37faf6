package lab

import (
	"net"
	"sync"
	"time"

	"ustack/internal/record"
	"ustack/stack/header"
	"ustack/stack/link"
)

// labTap sits between a stack and its (impaired) link: it draws and
// records every packet the stack writes, one at a time, and tells the
// Impair rule below what the scenario decided for it; with reads set it
// also draws what the stack reads (the kernel's packets, in --tun). A
// packet read that divert takes goes to a peer the lab built instead of
// the stack.
type labTap struct {
	link.Endpoint               // writes go through it (an Impaired link)
	raw           link.Endpoint // reads come from here if set (see labWriteOnly)
	r             *labRun
	toServer      bool // packets this end writes go to the server
	reads         bool
	decide        func(p record.Pkt) link.Action // nil: pass everything
	divert        func(pkt []byte) bool          // nil: the stack reads everything
	hide          func(p record.Pkt) bool        // recorded but not drawn (a flood's packets); nil: draw all
	wmu           sync.Mutex                     // the stack and a peer both write
	verdict       link.Action                    // for the Out rule below; guarded by wmu
	one           [1][]byte
}

func (t *labTap) WriteBatch(bufs [][]byte, offset int) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	for i, b := range bufs {
		t.verdict = link.Pass
		if p, ok := record.Parse(b[offset:]); ok {
			t.writeSeen(p, b[offset:])
		}
		t.one[0] = b
		if _, err := t.Endpoint.WriteBatch(t.one[:], offset); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

// writeSeen decides, records and draws a packet this end writes.
func (t *labTap) writeSeen(p record.Pkt, pkt []byte) {
	p.ToServer = t.toServer
	p.T = t.r.now()
	if t.decide != nil {
		t.verdict = t.decide(p)
	}
	p.Dropped = t.verdict == link.Drop
	t.r.rec.AddPkt(p)
	if t.hide != nil && t.hide(p) || !t.r.burst(p.T) {
		t.r.l.Learn(pkt, t.toServer)
		return
	}
	prev := t.r.l.ClientState()
	t.r.l.Packet(pkt, t.toServer, p.Dropped)
	if p.Dropped {
		t.r.l.SetClientState(prev) // the client never saw it
	}
	switch {
	case p.Dropped:
		t.r.say("✗ lost on the way (the lab drops exactly this segment)")
	case t.verdict > 0:
		t.r.say("⌛ held in the network for %v", time.Duration(t.verdict))
	}
}

func (t *labTap) source() link.Endpoint {
	if t.raw != nil {
		return t.raw
	}
	return t.Endpoint
}

func (t *labTap) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	for {
		n, err := t.source().ReadBatch(bufs, sizes, offset)
		if k := t.readSeen(bufs, sizes, offset, n); k > 0 || n == 0 || err != nil {
			return k, err
		}
	}
}

// TryReadBatch lets a Manual stack poll through the tap.
func (t *labTap) TryReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	p, ok := t.source().(link.Poller)
	if !ok {
		return 0, link.ErrNotPoller
	}
	for {
		n, err := p.TryReadBatch(bufs, sizes, offset)
		if k := t.readSeen(bufs, sizes, offset, n); k > 0 || n == 0 || err != nil {
			return k, err
		}
	}
}

// readSeen draws and records what was read (if reads is set), hands the
// diverted packets to their peer, and returns how many are left for the
// stack, moved to the front of bufs.
func (t *labTap) readSeen(bufs [][]byte, sizes []int, offset, n int) int {
	k := 0
	for i := 0; i < n; i++ {
		pkt := bufs[i][offset : offset+sizes[i]]
		if t.reads {
			t.drawRead(pkt)
		}
		if t.divert != nil && t.divert(pkt) {
			continue
		}
		bufs[k], bufs[i] = bufs[i], bufs[k]
		sizes[k] = sizes[i]
		k++
	}
	return k
}

// drawRead records and draws a packet the stack reads (--tun).
func (t *labTap) drawRead(pkt []byte) {
	p, ok := record.Parse(pkt)
	if !ok {
		return
	}
	p.ToServer, p.T = !t.toServer, t.r.now()
	t.r.rec.AddPkt(p)
	if (t.hide != nil && t.hide(p)) || !t.r.burst(p.T) {
		t.r.l.Learn(pkt, !t.toServer)
	} else {
		prev := t.r.l.ClientState()
		t.r.l.Packet(pkt, !t.toServer, false)
		if prev == "~LAST-ACK" && p.Has(header.FlagFIN) {
			t.r.l.SetClientState(prev) // a retransmitted FIN
		}
	}
}

// outRule is the Impair rule that carries out the tap's verdicts.
func (t *labTap) outRule(dir link.Direction, pkt []byte) link.Action {
	if dir == link.Out {
		return t.verdict
	}
	return link.Pass
}

// labWriteOnly hides an endpoint's reads from link.Impair, whose inbound
// reader would otherwise take the packets a polled stack must read itself.
type labWriteOnly struct {
	link.Endpoint
	done chan struct{}
	once sync.Once
}

func newLabWriteOnly(ep link.Endpoint) *labWriteOnly {
	return &labWriteOnly{Endpoint: ep, done: make(chan struct{})}
}

func (w *labWriteOnly) ReadBatch([][]byte, []int, int) (int, error) {
	<-w.done
	return 0, net.ErrClosed
}

func (w *labWriteOnly) Close() error {
	w.once.Do(func() { close(w.done) })
	return w.Endpoint.Close()
}

// setQuiet turns the drawing of segments and states off or on while the
// stacks run (bmu guards quiet).
func (r *labRun) setQuiet(q bool) {
	r.bmu.Lock()
	r.quiet = q
	r.bmu.Unlock()
}

func (r *labRun) isQuiet() bool {
	r.bmu.Lock()
	defer r.bmu.Unlock()
	return r.quiet
}

// labBurst is how many packets of one instant are drawn before the rest of
// that instant is only counted (a storm would fill the screen).
const labBurst = 12

// burst reports whether a packet sent at t should be drawn.
func (r *labRun) burst(t time.Time) bool {
	r.bmu.Lock()
	defer r.bmu.Unlock()
	if r.quiet {
		return false
	}
	if !t.Equal(r.burstAt) || r.burstReset {
		r.burstAt, r.burstN, r.burstReset = t, 0, false
	}
	r.burstN++
	if r.burstN == labBurst+1 {
		r.l.Note("%s", r.T("… (more packets at this instant are not drawn)"))
	}
	return r.burstN <= labBurst
}
