package main

import (
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"ustack/stack"
	"ustack/stack/clock"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// The lab's addresses (docs/design.md "Network safety": 198.18.0.0/15 only).
var (
	labClientAddr = netip.MustParseAddr("198.18.0.1")
	labServer     = netip.MustParseAddrPort("198.18.0.2:80")
)

// labPkt is one TCP segment the lab saw on the link.
type labPkt struct {
	t        time.Time
	toServer bool // sent by the client (or injected towards the server)
	flags    uint8
	seq, ack uint32
	sport    uint16
	dport    uint16
	payload  []byte
	dropped  bool // lost on purpose by an Impair rule
	injected bool // written into the link by the lab (an old duplicate)
}

func (p labPkt) is(flags uint8) bool  { return p.flags&^header.FlagPSH == flags }
func (p labPkt) has(flags uint8) bool { return p.flags&flags == flags }

// labState is one state transition of a ustack side.
type labState struct {
	t        time.Time
	server   bool
	id       tcp.ID
	from, to tcp.State
	cause    string
}

// labRecorder keeps what the lab saw, for its claims.
type labRecorder struct {
	mu     sync.Mutex
	pkts   []labPkt
	states []labState
}

func (rec *labRecorder) addPkt(p labPkt) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.pkts = append(rec.pkts, p)
	return len(rec.pkts) - 1
}

func (rec *labRecorder) packets() []labPkt {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]labPkt(nil), rec.pkts...)
}

// waitPkts waits, up to d, until cond holds for the packets recorded so far
// and returns them (as they are at the deadline if it never holds): a
// real-time lab waits for the segment its story needs, not for a guess.
func (rec *labRecorder) waitPkts(d time.Duration, cond func([]labPkt) bool) []labPkt {
	deadline := time.Now().Add(d)
	for {
		pk := rec.packets()
		if cond(pk) || time.Now().After(deadline) {
			return pk
		}
		time.Sleep(time.Millisecond) // polling the recorder, bounded by the deadline
	}
}

// anyPkt is a waitPkts condition: some packet matches.
func anyPkt(match func(labPkt) bool) func([]labPkt) bool {
	return func(pk []labPkt) bool {
		_, ok := first(pk, match)
		return ok
	}
}

// atLeast is a waitPkts condition: n packets recorded.
func atLeast(n int) func([]labPkt) bool { return func(pk []labPkt) bool { return len(pk) >= n } }

func (rec *labRecorder) stateLog() []labState {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]labState(nil), rec.states...)
}

// parseLabPkt reads an IPv4/TCP packet; ok is false for anything else.
func parseLabPkt(pkt []byte) (labPkt, bool) {
	h, err := header.ParseIPv4(pkt)
	if err != nil || h.Protocol() != header.ProtoTCP {
		return labPkt{}, false
	}
	t, err := header.ParseTCP(h.Payload())
	if err != nil {
		return labPkt{}, false
	}
	return labPkt{
		flags: t.Flags(), seq: t.Seq(), ack: t.Ack(), sport: t.SrcPort(), dport: t.DstPort(),
		payload: append([]byte(nil), t.Payload()...),
	}, true
}

// trace is the stacks' state-transition hook: record, then draw.
func (r *labRun) trace(e tcp.TraceEvent) {
	server := e.ID.Local.Addr() == labServer.Addr()
	r.rec.mu.Lock()
	r.rec.states = append(r.rec.states, labState{t: e.Time, server: server, id: e.ID, from: e.From, to: e.To, cause: e.Cause})
	r.rec.mu.Unlock()
	if r.l != nil && !r.quiet {
		r.l.state(e)
	}
}

// states lists the states one side went through (its first "from" and
// every "to"), optionally only on the connection with the given local port.
func (r *labRun) states(server bool, port uint16) []string {
	var out []string
	for _, s := range r.rec.stateLog() {
		if s.server != server || (port != 0 && s.id.Local.Port() != port && s.id.Remote.Port() != port) {
			continue
		}
		if len(out) == 0 {
			out = append(out, s.from.String())
		}
		out = append(out, s.to.String())
	}
	return out
}

// stateAt is when a side entered a state (on the connection with port, if
// not zero); ok is false if it never did.
func (r *labRun) stateAt(server bool, port uint16, st tcp.State) (time.Time, labState, bool) {
	for _, s := range r.rec.stateLog() {
		if s.server == server && s.to == st && (port == 0 || s.id.Local.Port() == port || s.id.Remote.Port() == port) {
			return s.t, s, true
		}
	}
	return time.Time{}, labState{}, false
}

// labTap sits between a stack and its (impaired) link: it draws and
// records every packet the stack writes, one at a time, and tells the
// Impair rule below what the scenario decided for it; with reads set it
// also draws what the stack reads (the kernel's packets, in --tun).
type labTap struct {
	link.Endpoint               // writes go through it (an Impaired link)
	raw           link.Endpoint // reads come from here if set (see labWriteOnly)
	r             *labRun
	toServer      bool // packets this end writes go to the server
	reads         bool
	decide        func(p labPkt) link.Action // nil: pass everything
	verdict       link.Action                // for the Out rule below; guarded by the stack's write lock
	one           [1][]byte
}

func (t *labTap) WriteBatch(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		t.verdict = link.Pass
		if p, ok := parseLabPkt(b[offset:]); ok {
			p.toServer = t.toServer
			p.t = t.r.now()
			if t.decide != nil {
				t.verdict = t.decide(p)
			}
			p.dropped = t.verdict == link.Drop
			t.r.rec.addPkt(p)
			if !t.r.burst(p.t) {
				t.one[0] = b
				if _, err := t.Endpoint.WriteBatch(t.one[:], offset); err != nil {
					return i, err
				}
				continue
			}
			prev := t.r.clientState()
			t.r.l.packet(b[offset:], t.toServer)
			if t.verdict == link.Drop {
				t.r.l.setClientState(prev) // the client never saw it
			}
			switch {
			case t.verdict == link.Drop:
				t.r.say("✗ lost on the way (the lab drops exactly this segment)")
			case t.verdict > 0:
				t.r.say("⌛ held in the network for %v", time.Duration(t.verdict))
			}
		}
		t.one[0] = b
		if _, err := t.Endpoint.WriteBatch(t.one[:], offset); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

func (t *labTap) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	src := t.Endpoint
	if t.raw != nil {
		src = t.raw
	}
	n, err := src.ReadBatch(bufs, sizes, offset)
	if t.reads {
		for i := 0; i < n; i++ {
			pkt := bufs[i][offset : offset+sizes[i]]
			if p, ok := parseLabPkt(pkt); ok {
				p.toServer, p.t = !t.toServer, t.r.now()
				t.r.rec.addPkt(p)
				if t.r.burst(p.t) {
					prev := t.r.clientState()
					t.r.l.packet(pkt, !t.toServer)
					if prev == "~LAST-ACK" && p.has(header.FlagFIN) {
						t.r.l.setClientState(prev) // a retransmitted FIN
					}
				}
			}
		}
	}
	return n, err
}

// TryReadBatch lets a Manual stack poll through the tap.
func (t *labTap) TryReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	src := t.Endpoint
	if t.raw != nil {
		src = t.raw
	}
	p, ok := src.(link.Poller)
	if !ok {
		return 0, link.ErrNotPoller
	}
	return p.TryReadBatch(bufs, sizes, offset)
}

// outRule is the Impair rule that carries out the tap's verdicts.
func (t *labTap) outRule(dir link.Direction, pkt []byte) link.Action {
	if dir == link.Out {
		return t.verdict
	}
	return link.Pass
}

// now is the time of the run's clock.
func (r *labRun) now() time.Time {
	if r.vw != nil {
		return r.vw.clk.Now()
	}
	return time.Now()
}

// labRand is the deterministic randomness of the in-memory labs (ISNs,
// ports), so that their output is the same on every run.
func labRand(seed uint64) *mrand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	copy(s[8:], "ustack lab")
	return mrand.NewChaCha8(s)
}

// labVWorld is the in-memory world: two stacks in Manual mode on one
// virtual clock, joined by a Pipe whose ends impair their Out direction.
type labVWorld struct {
	r        *labRun
	clk      *clock.Virtual
	cli, srv *stack.Stack
	cliEnd   *link.PipeEnd // the client's end: write here to reach the server
	srvEnd   *link.PipeEnd
	cliTap   *labTap
	srvTap   *labTap
	cliDown  bool // the client's host is off: it reads nothing
	srvDown  bool
	storm    bool // packets ping-ponged without time passing; the lab cut the link
}

// labVConfig configures newVWorld.
type labVConfig struct {
	cli, srv    tcp.Config
	cliSeed     uint64
	srvSeed     uint64
	cliDecide   func(p labPkt) link.Action
	srvDecide   func(p labPkt) link.Action
	serverTitle string
}

// newVWorld builds the in-memory world and the ladder.
func (r *labRun) newVWorld(c labVConfig) (*labVWorld, error) {
	w := &labVWorld{r: r, clk: clock.NewVirtual()}
	r.vw = w
	r.l = newLadder(r.w, r.opts.color, w.clk.Now, labServer.String())
	w.cliEnd, w.srvEnd = link.Pipe(1500)
	w.cliTap = &labTap{r: r, toServer: true, decide: c.cliDecide}
	w.srvTap = &labTap{r: r, toServer: false, decide: c.srvDecide}
	// A Rule makes link.Impair read the In direction in a real-time
	// goroutine; in virtual time the stacks must poll the pipe themselves,
	// so Impair gets a write-only view and the taps read the pipe.
	w.cliTap.Endpoint = link.Impair(newLabWriteOnly(w.cliEnd), link.ImpairConfig{Clock: w.clk, Rule: w.cliTap.outRule})
	w.srvTap.Endpoint = link.Impair(newLabWriteOnly(w.srvEnd), link.ImpairConfig{Clock: w.clk, Rule: w.srvTap.outRule})
	w.cliTap.raw, w.srvTap.raw = w.cliEnd, w.srvEnd
	r.applyBreak(&c.cli)
	r.applyBreak(&c.srv)
	var err error
	w.srv, err = stack.New(w.srvTap, stack.Options{Addr: labServer.Addr(), Clock: w.clk, Rand: labRand(c.srvSeed + 1000), TCP: c.srv, Trace: r.trace, Manual: true})
	if err != nil {
		return nil, err
	}
	w.cli, err = stack.New(w.cliTap, stack.Options{Addr: labClientAddr, Clock: w.clk, Rand: labRand(c.cliSeed), TCP: c.cli, Trace: r.trace, Manual: true})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// applyBreak breaks a configuration on purpose (--break).
func (r *labRun) applyBreak(c *tcp.Config) {
	switch r.opts.brk {
	case "skip-time-wait":
		c.LabSkipTimeWait = true
	case "two-way-handshake":
		c.LabTwoWayHandshake = true
	}
}

func (w *labVWorld) close() {
	w.cli.Close()
	w.srv.Close()
}

// labStormPolls bounds the polls at one instant of virtual time: more means
// the two ends answer each other forever (an ACK storm).
const labStormPolls = 500

// settle delivers every packet in flight at this instant. If the two ends
// keep answering each other without time passing, it says so and cuts
// the link.
func (w *labVWorld) settle() {
	for range labStormPolls {
		n := 0
		if !w.cliDown {
			k, _ := w.cli.Poll()
			n += k
		}
		if !w.srvDown {
			k, _ := w.srv.Poll()
			n += k
		}
		if n == 0 {
			return
		}
	}
	w.storm, w.cliDown, w.srvDown = true, true, true
	w.r.say("an ACK storm: the two ends disagree about the sequence numbers and answer each other's ACKs at once, forever; the lab cuts the link")
}

// run lets virtual time pass for d, firing timers and delivering packets.
func (w *labVWorld) run(d time.Duration) { w.until(d, nil) }

// until lets virtual time pass until cond holds (checked after every step)
// or limit has passed; it reports cond.
func (w *labVWorld) until(limit time.Duration, cond func() bool) bool {
	end := w.clk.Now().Add(limit)
	for {
		w.settle()
		if cond != nil && cond() {
			return true
		}
		next, ok := w.clk.Next()
		if !ok || next.After(end) {
			w.clk.AdvanceTo(end)
			w.settle()
			return cond != nil && cond()
		}
		w.clk.AdvanceTo(next)
	}
}

// inject writes a raw packet into the link towards the server (or the
// client), as if it had been wandering in the network; it is drawn with
// absolute numbers and recorded.
func (r *labRun) inject(toServer bool, pkt []byte, what string) {
	p, _ := parseLabPkt(pkt[link.Headroom:])
	p.toServer, p.t, p.injected = toServer, r.now(), true
	r.rec.addPkt(p)
	label := fmt.Sprintf("%s seq=%d", flagLabel(p.flags), p.seq)
	if p.has(header.FlagACK) {
		label += fmt.Sprintf(" ack=%d", p.ack)
	}
	if len(p.payload) > 0 {
		label += fmt.Sprintf(" len=%d", len(p.payload))
	}
	r.l.arrow(toServer, label, cMag+cBold)
	r.say("%s", what)
	if r.vw != nil {
		end := r.vw.srvEnd
		if toServer {
			end = r.vw.cliEnd
		}
		end.WriteBatch([][]byte{pkt}, link.Headroom)
	}
}

func flagLabel(f uint8) string {
	s := header.FlagString(f &^ header.FlagPSH)
	out := []byte(s)
	for i := range out {
		if out[i] == '|' {
			out[i] = '+'
		}
	}
	return string(out)
}

// rawTCP builds an IPv4/TCP packet (with link.Headroom in front).
func rawTCP(src, dst netip.AddrPort, seq, ack uint32, flags uint8, payload []byte) []byte {
	b := make([]byte, link.Headroom+40+4+len(payload))
	p := b[link.Headroom:]
	t := p[20:]
	optLen := 0
	if flags&header.FlagSYN != 0 {
		o := header.TCPOptions{MSS: 1460, WS: -1}
		optLen = header.PutTCPOptions(t[20:], &o)
	}
	copy(t[20+optLen:], payload)
	header.PutTCP(t, header.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(), Seq: seq, Ack: ack, Flags: flags, Window: 65535, OptLen: optLen})
	header.SetTCPChecksum(t[:20+optLen+len(payload)], src.Addr().As4(), dst.Addr().As4())
	header.PutIPv4(p, header.IPv4Fields{TotalLen: uint16(40 + optLen + len(payload)), TTL: 64, Protocol: header.ProtoTCP, Src: src.Addr().As4(), Dst: dst.Addr().As4()})
	return b[:link.Headroom+40+optLen+len(payload)]
}

// relSeq renders a sequence number relative to an ISN, as the ladder does.
func relSeq(v, isn uint32) uint32 { return v - isn }

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

// labBurst is how many packets of one instant are drawn before the rest of
// that instant is only counted (a storm would fill the screen).
const labBurst = 12

// burst reports whether a packet sent at t should be drawn.
func (r *labRun) burst(t time.Time) bool {
	if r.quiet {
		return false
	}
	r.bmu.Lock()
	defer r.bmu.Unlock()
	if !t.Equal(r.burstAt) || r.burstReset {
		r.burstAt, r.burstN, r.burstReset = t, 0, false
	}
	r.burstN++
	if r.burstN == labBurst+1 {
		r.l.note("%s", r.T("… (more packets at this instant are not drawn)"))
	}
	return r.burstN <= labBurst
}

// clientState is the ladder's client column now.
func (r *labRun) clientState() string {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	return r.l.cliState
}

// resetLadder starts the ladder afresh for a second story against server
// (another port), keeping the one ladder the taps draw on.
func (r *labRun) resetLadder(server string) {
	l := r.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.server, l.start = server, l.now()
	l.haveCli, l.haveSrv, l.cliISN, l.srvISN = false, false, 0, 0
	l.cliState, l.srvState = "CLOSED", "LISTEN"
}
