package link

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"ustack/stack/clock"
	"ustack/stack/counter"
	"ustack/stack/heapq"
)

// Direction names a direction of an Impaired endpoint.
type Direction uint8

const (
	// In is inbound: packets read from the wrapped endpoint.
	In Direction = iota
	// Out is outbound: packets written to the wrapped endpoint.
	Out
)

var directionNames = [...]string{In: "in", Out: "out"}

func (d Direction) String() string { return counter.Name(directionNames[:], d, "direction") }

// Action is a Rule's decision about one packet: Pass, Drop or Delay(d).
type Action int64

const (
	// Pass leaves the packet to the random impairments of its Spec.
	Pass Action = 0
	// Drop drops the packet (counted as DroppedRule).
	Drop Action = -1
)

// Delay holds the packet for exactly d, then releases it; the random
// impairments and the rate limit do not apply to it. Delay(0) is Pass.
func Delay(d time.Duration) Action {
	if d <= 0 {
		return Pass
	}
	return Action(d)
}

func (a Action) String() string {
	switch {
	case a == Pass:
		return "pass"
	case a == Drop:
		return "drop"
	case a > 0:
		return "delay " + time.Duration(a).String()
	}
	return fmt.Sprintf("action(%d)", int64(a))
}

// Rule is a per-packet hook for scripted stories: it sees every packet
// offered in either direction (before the random impairments, which it
// overrides unless it returns Pass). It runs with the direction's lock held:
// it must not call the Impaired endpoint, and must not keep pkt.
type Rule func(dir Direction, pkt []byte) Action

// ReorderTimeout is how long a packet picked for reordering waits for a
// later packet to overtake it before it is released anyway.
const ReorderTimeout = time.Millisecond

// ImpairConfig configures Impair.
type ImpairConfig struct {
	In, Out Spec
	// Seed makes a run reproducible: for a given sequence of calls (and
	// clock readings) the same packets are lost, duplicated, reordered,
	// corrupted and delayed. Each direction and each kind of impairment
	// draws from its own PCG stream, so that changing one knob does not
	// change the pattern of another.
	Seed int64
	// Clock runs the delays; nil means clock.Real. With a clock.Virtual,
	// delayed packets are released inside Advance.
	Clock clock.Clock
	// Rule, if set, decides first about every packet.
	Rule Rule
}

// Impaired is an Endpoint that impairs the traffic of another; see Impair.
type Impaired struct {
	ep    Endpoint
	clk   clock.Clock
	rule  Rule
	in    *impairDir
	out   *impairDir
	close sync.Once

	readerDone chan struct{} // nil unless the inbound reader runs
}

// Impair wraps ep so that the packets written through it (Out) and read
// through it (In) suffer the impairments of cfg. It panics if a Spec is
// invalid (see Spec.Validate).
//
// A direction whose Spec is zero, with no Rule, is passed straight through.
// Otherwise Out packets are copied on WriteBatch and written to ep when they
// are due (from WriteBatch itself when nothing delays them, else from a clock
// timer), and In packets are read from ep by a goroutine and queued until
// they are due and ReadBatch takes them. That goroutine runs in real time:
// for a deterministic simulation in virtual time impair the Out direction of
// each end of a link, not In.
func Impair(ep Endpoint, cfg ImpairConfig) *Impaired {
	for _, s := range []Spec{cfg.In, cfg.Out} {
		if err := s.Validate(); err != nil {
			panic(err)
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	i := &Impaired{ep: ep, clk: cfg.Clock, rule: cfg.Rule}
	i.in = newImpairDir(i, In, cfg.In, cfg.Seed)
	i.out = newImpairDir(i, Out, cfg.Out, cfg.Seed)
	if !i.in.passthrough {
		i.readerDone = make(chan struct{})
		go i.readLoop()
	}
	return i
}

// MTU implements Endpoint.
func (i *Impaired) MTU() int { return i.ep.MTU() }

// BatchSize implements Endpoint.
func (i *Impaired) BatchSize() int { return i.ep.BatchSize() }

// WriteBatch implements Endpoint. Every packet is accepted (a lossy link
// loses silently); the error is the wrapped endpoint's, for packets due at
// once.
func (i *Impaired) WriteBatch(bufs [][]byte, offset int) (int, error) {
	d := i.out
	if d.passthrough {
		n, err := i.ep.WriteBatch(bufs, offset)
		d.cnt.Add(evOffered, uint64(len(bufs)))
		d.cnt.Add(evPassed, uint64(n))
		return n, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, net.ErrClosed
	}
	now := i.clk.Now()
	for _, b := range bufs {
		d.offer(now, b[offset:])
	}
	if err := d.releaseDue(now); err != nil {
		return 0, err
	}
	return len(bufs), nil
}

// ReadBatch implements Endpoint.
func (i *Impaired) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	d := i.in
	if d.passthrough {
		n, err := i.ep.ReadBatch(bufs, sizes, offset)
		d.cnt.Add(evOffered, uint64(n))
		d.cnt.Add(evPassed, uint64(n))
		return n, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.ready) == 0 && !d.closed && d.readErr == nil {
		d.cond.Wait()
	}
	if d.closed {
		return 0, net.ErrClosed
	}
	if len(d.ready) == 0 {
		return 0, d.readErr
	}
	n := 0
	for n < len(bufs) && n < len(d.ready) {
		p := d.ready[n]
		data := p.buf[Headroom:]
		if len(bufs[n])-offset < len(data) {
			if n == 0 {
				d.ready = d.ready[1:]
				d.recycle(p)
				return 0, ErrShortBuffer
			}
			break
		}
		sizes[n] = copy(bufs[n][offset:], data)
		d.cnt.Inc(evPassed)
		d.recycle(p)
		n++
	}
	rest := copy(d.ready, d.ready[n:])
	clear(d.ready[rest:])
	d.ready = d.ready[:rest]
	d.cond.Broadcast() // room for the reader
	return n, nil
}

// Close stops the timers and the inbound reader, drops what is held, and
// closes the wrapped endpoint.
func (i *Impaired) Close() error {
	var err error
	i.close.Do(func() {
		i.in.shut()
		i.out.shut()
		err = i.ep.Close()
		if i.readerDone != nil {
			<-i.readerDone
		}
	})
	return err
}

// readLoop moves packets from the wrapped endpoint into the In direction.
func (i *Impaired) readLoop() {
	defer close(i.readerDone)
	d := i.in
	n := min(max(i.ep.BatchSize(), 1), 128)
	bufs, sizes := ReadBuffers(n, i.ep.MTU())
	for {
		got, err := i.ep.ReadBatch(bufs, sizes, Headroom)
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return
		}
		if got > 0 {
			now := i.clk.Now()
			for k := range got {
				d.offer(now, bufs[k][Headroom:Headroom+sizes[k]])
			}
			d.releaseDue(now) // inbound delivery cannot fail
		}
		if err != nil && err != ErrShortBuffer {
			d.readErr = err
			d.cond.Broadcast()
			d.mu.Unlock()
			return
		}
		// Back-pressure: a reader that does not keep up leaves packets
		// in the wrapped endpoint's queue, as it would without us.
		for len(d.ready) >= d.limit && !d.closed {
			d.cond.Wait()
		}
		d.mu.Unlock()
	}
}

// Streams of randomness, one per kind per direction.
const (
	streamLoss = iota + 1
	streamDup
	streamReorder
	streamCorrupt
	streamJitter
)

// impairDir is one direction: its Spec, randomness, held packets and timer.
type impairDir struct {
	imp         *Impaired
	dir         Direction
	spec        Spec
	limit       int
	passthrough bool

	mu      sync.Mutex
	cond    sync.Cond // In: ready or readErr changed, room in ready, closed
	closed  bool
	loss    *rand.Rand
	dup     *rand.Rand
	reorder *rand.Rand
	corrupt *rand.Rand
	jitter  *rand.Rand

	q       heapq.Heap[*heldPkt] // held packets by release time, then offer order
	seq     uint64               // tie-break: offer order
	last    time.Time            // latest release time given to a randomly impaired packet
	busy    time.Time            // the rate-limited link is busy until then
	slot    *heldPkt             // a packet held back for reordering
	slotAt  time.Time            // when slot goes anyway
	timer   clock.Timer
	armed   bool
	armedAt time.Time

	ready   []*heldPkt // In: released, waiting for ReadBatch
	readErr error      // In: the wrapped endpoint's read error
	batch   []*heldPkt // scratch: packets released together
	bufs    [][]byte   // scratch: their buffers, for WriteBatch
	free    []*heldPkt
	cnt     dirCounters
}

type heldPkt struct {
	buf     []byte // Headroom bytes, then the packet
	when    time.Time
	seq     uint64
	reorder bool
}

func newImpairDir(i *Impaired, dir Direction, s Spec, seed int64) *impairDir {
	d := &impairDir{imp: i, dir: dir, spec: s, limit: s.Queue, cnt: newDirCounters(), q: heapq.New(releasedBefore, nil)}
	if d.limit == 0 {
		d.limit = DefaultImpairQueue
	}
	d.passthrough = s == (Spec{}) && i.rule == nil
	d.cond.L = &d.mu
	stream := func(kind uint64) *rand.Rand {
		return rand.New(rand.NewPCG(uint64(seed), uint64(dir)<<32|kind))
	}
	d.loss, d.dup, d.reorder = stream(streamLoss), stream(streamDup), stream(streamReorder)
	d.corrupt, d.jitter = stream(streamCorrupt), stream(streamJitter)
	return d
}

func (d *impairDir) held() int {
	n := d.q.Len()
	if d.slot != nil {
		n++
	}
	return n
}

func (d *impairDir) newPkt(data []byte) *heldPkt {
	var p *heldPkt
	if n := len(d.free); n > 0 {
		p = d.free[n-1]
		d.free = d.free[:n-1]
	} else {
		p = new(heldPkt)
	}
	p.buf = append(p.buf[:0], make([]byte, Headroom)...)
	p.buf = append(p.buf, data...)
	p.reorder = false
	return p
}

func (d *impairDir) recycle(p *heldPkt) {
	if len(d.free) < 256 {
		d.free = append(d.free, p)
	}
}

// offer runs one packet through the direction at time now. Every draw is made
// for every packet, whatever the outcome, so that each kind's pattern depends
// only on the seed and the packet's position.
func (d *impairDir) offer(now time.Time, data []byte) {
	d.cnt.Inc(evOffered)
	f := d.draw(len(data))
	if d.imp.rule != nil && d.byRule(now, data) {
		return
	}
	if f.lost {
		d.cnt.Drop(dropLoss)
		return
	}
	if f.corrupt {
		d.cnt.Inc(evCorrupted)
	}
	copies := 1
	if f.dup {
		copies = 2
	}
	jitter := f.jitter
	for c := range copies {
		if d.held() >= d.limit {
			d.cnt.Drop(dropQueue)
			continue
		}
		if c == 1 {
			d.cnt.Inc(evDuplicated)
			jitter = f.dupJitter
		}
		p := d.newPkt(data)
		if f.corrupt {
			p.buf[Headroom+f.flipByte] ^= 1 << f.flipBit
		}
		p.when = d.schedule(now, len(data), jitter)
		p.reorder = f.reorder && c == 0
		d.push(p)
	}
}

func (d *impairDir) push(p *heldPkt) {
	d.seq++
	p.seq = d.seq
	d.q.Push(p)
}

// releaseDue hands on every packet due at now, in release order, and re-arms
// the timer for the next one. For Out it returns the endpoint's write error.
func (d *impairDir) releaseDue(now time.Time) error {
	batch := d.batch[:0]
	for d.q.Len() > 0 && !d.q.Min().when.After(now) {
		p := d.q.Pop()
		if p.reorder && d.slot == nil {
			d.slot, d.slotAt = p, now.Add(ReorderTimeout)
			continue
		}
		batch = append(batch, p)
		if d.slot != nil {
			batch = append(batch, d.slot)
			d.slot = nil
			d.cnt.Inc(evReordered)
		}
	}
	if d.slot != nil && !d.slotAt.After(now) {
		batch = append(batch, d.slot)
		d.slot = nil
	}
	var err error
	if len(batch) > 0 {
		err = d.deliver(batch)
	}
	clear(batch)
	d.batch = batch[:0]
	d.arm(now)
	return err
}

func (d *impairDir) deliver(batch []*heldPkt) error {
	if d.dir == In {
		d.ready = append(d.ready, batch...)
		d.cond.Broadcast()
		return nil
	}
	bufs := d.bufs[:0]
	for _, p := range batch {
		bufs = append(bufs, p.buf)
	}
	n, err := d.imp.ep.WriteBatch(bufs, Headroom)
	d.cnt.Add(evPassed, uint64(n))
	clear(bufs)
	d.bufs = bufs[:0]
	for _, p := range batch {
		d.recycle(p)
	}
	return err
}

// arm sets the timer for the next release, if it is not set early enough.
func (d *impairDir) arm(now time.Time) {
	var next time.Time
	switch {
	case d.q.Len() > 0 && d.slot != nil:
		next = d.q.Min().when
		if d.slotAt.Before(next) {
			next = d.slotAt
		}
	case d.q.Len() > 0:
		next = d.q.Min().when
	case d.slot != nil:
		next = d.slotAt
	default:
		return
	}
	if d.armed && !d.armedAt.After(next) {
		return
	}
	d.armed, d.armedAt = true, next
	if d.timer == nil {
		d.timer = d.imp.clk.AfterFunc(next.Sub(now), d.fire)
	} else {
		d.timer.Reset(next.Sub(now))
	}
}

func (d *impairDir) fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.armed = false
	if d.closed {
		return
	}
	// A delayed write that fails is a lost packet; nobody is there to tell.
	_ = d.releaseDue(d.imp.clk.Now())
}

// shut drops what the direction holds and wakes its waiters.
func (d *impairDir) shut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.timer != nil {
		d.timer.Stop()
	}
	d.q.Clear()
	d.slot = nil
	clear(d.ready)
	d.ready = nil
	d.cond.Broadcast()
}

// releasedBefore orders held packets by release time, then offer order.
func releasedBefore(a, b *heldPkt) bool {
	if a.when.Equal(b.when) {
		return a.seq < b.seq
	}
	return a.when.Before(b.when)
}
