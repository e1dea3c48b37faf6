// Package sim is ustack's deterministic simulator (docs/design.md, "Tests" 2): two
// stacks in Manual mode on one clock.Virtual, joined by a link.Pipe whose two
// ends each impair their Out direction (link.Impair), run a random script of
// transfers and closes chosen by a seed. Everything (ISNs, ports, the
// impairments, the script) derives from the seed, and nothing runs in real
// time or in another goroutine, so a seed replays exactly.
//
// A run checks its invariants as it goes and at the end:
//   - every byte arrives once and in order: the SHA-256 and length of what
//     each side wrote equal those of what the other read, and EOF comes only
//     after the last byte;
//   - every connection reaches CLOSED, through LAST-ACK (on the ACK of its
//     FIN) or TIME-WAIT (after 2*MSL), within CloseBound of virtual time
//     after the application closed it, and the whole run ends within Limit;
//     no connection is reset or times out. The one exception is an RST in
//     LAST-ACK or TIME-WAIT sent by a peer whose TCB was CLOSED already:
//     a duplicated final ACK reaching a closed port (RFC 9293 §3.10.7.1)
//     kills the TIME-WAIT that sent it (RFC 1337's hazard), and a final ACK
//     lost until after the peer's TIME-WAIT ends the LAST-ACK with an RST.
//     Those are counted in Result.RSTEndings;
//   - every state transition is an edge that tcp.Legal allows, and each
//     connection's trace is one unbroken path;
//   - both stacks have no TCB left (Stats().TCPConns == 0);
//   - nothing panics.
//
// The tests of this package run many seeds per profile (see sim_test.go);
// a failure prints the one command that replays it.
package sim

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"ustack/stack"
	"ustack/stack/clock"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// Profile is a named impairment, applied to both directions of the link.
type Profile struct {
	Name string
	Spec link.Spec
	// MaxSize bounds the bytes one side sends on one connection, so that
	// the slow and lossy profiles keep the suite fast.
	MaxSize int
}

// Profiles are the link conditions of the issue, in the order the tests run
// them.
var Profiles = []Profile{
	{Name: "clean", MaxSize: 4 << 20},
	{Name: "loss1", Spec: link.Spec{Loss: 0.01}, MaxSize: 2 << 20},
	{Name: "loss10", Spec: link.Spec{Loss: 0.10}, MaxSize: 512 << 10},
	{Name: "reorder5", Spec: link.Spec{Reorder: 0.05}, MaxSize: 2 << 20},
	{Name: "dup5", Spec: link.Spec{Dup: 0.05}, MaxSize: 2 << 20},
	{Name: "corrupt1", Spec: link.Spec{Corrupt: 0.01}, MaxSize: 2 << 20},
	{Name: "slow", Spec: link.Spec{Rate: 10_000_000, Delay: 50 * time.Millisecond}, MaxSize: 1 << 20},
	{Name: "all", Spec: link.Spec{
		Loss: 0.10, Reorder: 0.05, Dup: 0.05, Corrupt: 0.01,
		Rate: 10_000_000, Delay: 50 * time.Millisecond,
	}, MaxSize: 256 << 10},
}

// ProfileByName finds a profile of Profiles.
func ProfileByName(name string) (Profile, bool) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// Bounds of a run, in virtual time.
const (
	// Limit bounds a whole run. Virtual time is free; under 10% loss a
	// transfer with small windows and no SACK can crawl for minutes with
	// its RTO at the 120 s cap, which is slow but not wrong.
	Limit = 30 * time.Minute
	// CloseBound bounds the time from the end of a TCB's data phase (its
	// application closed it and the peer application read its last byte)
	// to CLOSED: 2*MSL of TIME-WAIT plus four retransmissions of a FIN or
	// final ACK at the maximum RTO.
	CloseBound = 2*MSL + 4*tcp.DefaultMaxRTO
	// MSL of every simulated connection. Virtual time costs nothing, so it
	// is the default (TIME-WAIT lasts 60 s, as on Linux): a shorter one
	// lets TIME-WAIT end before the peer's backed-off retransmission of
	// its FIN, which then ends LAST-ACK with an RST.
	MSL = tcp.DefaultMSL
	// maxSpins bounds the loop iterations at one instant of virtual time:
	// more means packets ping-pong without time passing (a livelock).
	maxSpins = 1_000_000
)

var (
	addrs = [2]netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")}
	names = [2]string{"A", "B"}
)

// basePort is the listening port of connection 0; connection i listens on
// basePort+i on its server's stack, so that accepts match scripts.
const basePort = 1000

// CloseMode is how one side of a connection ends it.
type CloseMode uint8

const (
	// HalfClose: CloseWrite (FIN) once everything is written, then Close
	// once the peer's EOF is read. A side that sends nothing half-closes at
	// once: the receiver shuts its sending side first.
	HalfClose CloseMode = iota
	// CloseWhenDone: Close once everything is written and every byte the
	// peer sends is read, without waiting for the peer's FIN; this side is
	// usually the active closer.
	CloseWhenDone
	// CloseOnEOF: Close only after reading the peer's EOF (passive close).
	CloseOnEOF
)

func (m CloseMode) String() string {
	switch m {
	case HalfClose:
		return "half-close"
	case CloseWhenDone:
		return "close-when-done"
	case CloseOnEOF:
		return "close-on-eof"
	}
	return fmt.Sprintf("CloseMode(%d)", uint8(m))
}

// ConnScript is what the applications do on one connection. Index 0 of the
// arrays is the client (the side that dials), 1 the server.
type ConnScript struct {
	Client       int           // the stack that dials: 0 (A) or 1 (B)
	Start        time.Duration // when the client dials
	Size         [2]int        // bytes the client sends, bytes the server sends
	Close        [2]CloseMode
	CloseDelay   [2]time.Duration // wait this long once a close step is due
	Simultaneous bool             // both Close in the same instant, once both are done
}

// Script is one run: the link, the stacks' TCP settings and the connections.
type Script struct {
	Seed    uint64
	Profile Profile
	MTU     int
	TCP     [2]tcp.Config
	Conns   []ConnScript
}

// NewScript draws the script of seed for profile p.
func NewScript(seed uint64, p Profile) Script {
	r := rand.New(rand.NewPCG(seed, 0x73696d))
	s := Script{Seed: seed, Profile: p, MTU: 1500}
	switch r.IntN(8) {
	case 0:
		s.MTU = 576
	case 1:
		s.MTU = 1280
	}
	for k := range s.TCP {
		cfg := tcp.Config{MSL: MSL, FinWait2Timeout: time.Minute}
		switch r.IntN(6) {
		case 0:
			cfg.RcvBuf, cfg.SndBuf = 8<<10, 8<<10
		case 1:
			cfg.RcvBuf, cfg.SndBuf = 64<<10, 32<<10
		}
		cfg.NoSACK = r.IntN(4) == 0
		cfg.NoTimestamps = r.IntN(4) == 0
		cfg.NoWindowScale = r.IntN(8) == 0
		cfg.NoDelay = r.IntN(2) == 0
		if r.IntN(8) == 0 {
			cfg.DelayedAck = -1
		}
		if r.IntN(3) == 0 {
			cfg.CC = "newreno"
		}
		s.TCP[k] = cfg
	}
	n := 1 + r.IntN(4)
	for range n {
		var c ConnScript
		c.Client = r.IntN(2)
		if r.IntN(2) == 0 { // half the connections overlap from the start
			c.Start = time.Duration(r.IntN(2000)) * time.Millisecond
		}
		switch r.IntN(4) { // which side sends
		case 0:
			c.Size[0] = drawSize(r, p.MaxSize)
		case 1:
			c.Size[1] = drawSize(r, p.MaxSize)
		default:
			c.Size[0], c.Size[1] = drawSize(r, p.MaxSize), drawSize(r, p.MaxSize)
		}
		if r.IntN(6) == 0 {
			c.Simultaneous = true
			c.Close = [2]CloseMode{CloseWhenDone, CloseWhenDone}
		} else {
			for k := range c.Close {
				c.Close[k] = CloseMode(r.IntN(3))
				if r.IntN(3) == 0 {
					c.CloseDelay[k] = time.Duration(r.IntN(3000)) * time.Millisecond
				}
			}
			if c.Close == [2]CloseMode{CloseOnEOF, CloseOnEOF} {
				// Someone has to send the first FIN.
				c.Close[r.IntN(2)] = HalfClose
			}
		}
		s.Conns = append(s.Conns, c)
	}
	return s
}

// drawSize is 0 one time in ten, else log-uniform in [1, max]: mostly small
// transfers, a few large ones.
func drawSize(r *rand.Rand, max int) int {
	if r.IntN(10) == 0 {
		return 0
	}
	return int(math.Exp(r.Float64() * math.Log(float64(max))))
}

func (s Script) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d profile %s (%v) mtu %d\n", s.Seed, s.Profile.Name, s.Profile.Spec, s.MTU)
	for k, cfg := range s.TCP {
		fmt.Fprintf(&b, "  stack %s %s: rcvbuf %d sndbuf %d sack %v ts %v ws %v nodelay %v delack %v cc %q\n",
			names[k], addrs[k], cfg.RcvBuf, cfg.SndBuf, !cfg.NoSACK, !cfg.NoTimestamps, !cfg.NoWindowScale,
			cfg.NoDelay, cfg.DelayedAck, cfg.CC)
	}
	for i, c := range s.Conns {
		sim := ""
		if c.Simultaneous {
			sim = ", simultaneous close"
		}
		fmt.Fprintf(&b, "  conn %d: %s dials %s:%d at %v; client sends %d (%v after %v), server sends %d (%v after %v)%s\n",
			i, names[c.Client], names[1-c.Client], basePort+i, c.Start,
			c.Size[0], c.Close[0], c.CloseDelay[0], c.Size[1], c.Close[1], c.CloseDelay[1], sim)
	}
	return b.String()
}

// Event is one state transition of one stack.
type Event struct {
	Stack int           // 0 (A) or 1 (B)
	At    time.Duration // virtual time since the start of the run
	tcp.TraceEvent
}

func (e Event) String() string {
	return fmt.Sprintf("%12v %s %v %v -> %v (%s)", e.At, names[e.Stack], e.ID, e.From, e.To, e.Cause)
}

// Result is the outcome of a run.
type Result struct {
	Script Script
	Events []Event
	End    time.Duration    // virtual time at the end
	Stats  [2]stack.Stats   // of both stacks at the end
	Link   [2]link.DirStats // Out impairments of each end
	Err    error            // the first broken invariant, or nil
	Log    []string         // notes for -sim.v
	Spins  int              // loop iterations, a measure of work
	// RSTEndings counts TCBs that ended by an RST from a peer already
	// CLOSED (see the package comment).
	RSTEndings int
	// DataDone is, per connection in the order they finished, the virtual
	// time at which both applications had read every byte the other sent.
	DataDone []time.Duration
}

// Fingerprint is a digest of everything observable in a run: identical for
// two runs of one seed if the simulation is deterministic.
func (r *Result) Fingerprint() string {
	var b strings.Builder
	for _, e := range r.Events {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	for k, st := range r.Stats {
		fmt.Fprintf(&b, "%s segs in %d out %d rtx %d est %d\n", names[k], st.TCPSegsIn, st.TCPSegsOut, st.TCPRetransmits, st.TCPEstablished)
	}
	fmt.Fprintf(&b, "end %v spins %d err %v\n", r.End, r.Spins, r.Err)
	return b.String()
}

// Run runs seed on profile p and checks every invariant. It never panics:
// a panic inside the stacks is the run's error.
func Run(seed uint64, p Profile) *Result {
	return RunScript(NewScript(seed, p))
}

// RunScript runs a script.
func RunScript(s Script) (res *Result) {
	res = &Result{Script: s}
	r := &run{Script: s, res: res, v: clock.NewVirtual()}
	defer func() {
		if x := recover(); x != nil {
			res.Err = fmt.Errorf("panic at %v: %v\n%s", r.since(), x, debug.Stack())
		}
	}()
	res.Err = r.run()
	res.End = r.since()
	for k, w := range r.st {
		if w != nil {
			res.Stats[k] = w.Stats()
			res.Link[k] = r.ends[k].Stats().Out
			w.Close()
		}
	}
	return res
}

// run is the state of one simulation.
type run struct {
	Script
	res  *Result
	v    *clock.Virtual
	st   [2]*stack.Stack
	ends [2]*link.Impaired
	ls   []*stack.Listener
	cs   []*connRun
	rbuf []byte
}

// connRun is one connection's two applications.
type connRun struct {
	i      int
	sc     ConnScript
	dialed bool
	ends   [2]*end // client, server
	done   bool
}

// end is one application: what it sent and read, how far it closed.
type end struct {
	role  int // 0 client, 1 server
	stack int
	c     *stack.Conn
	estab bool

	sendTotal, sent int
	gen             *rand.ChaCha8
	chunk           []byte
	off             int
	sendHash        hash.Hash

	recvWant, recvd int
	recvHash        hash.Hash
	eof             bool
	allReadAt       time.Time // when recvd reached recvWant

	shut, closed bool
	readyAt      time.Time // a due close step may run from then; zero: none due
	closedAt     time.Time
}

func (r *run) since() time.Duration { return r.v.Now().Sub(clock.Epoch) }

func (r *run) logf(format string, args ...any) {
	r.res.Log = append(r.res.Log, fmt.Sprintf("%12v ", r.since())+fmt.Sprintf(format, args...))
}

func (r *run) setup() error {
	pa, pb := link.Pipe(r.MTU)
	pipes := [2]*link.PipeEnd{pa, pb}
	for k := range r.st {
		r.ends[k] = link.Impair(pipes[k], link.ImpairConfig{
			Out:   r.Profile.Spec,
			Seed:  int64(r.Seed*2 + uint64(k)),
			Clock: r.v,
		})
		var key [32]byte
		copy(key[:], fmt.Sprintf("ustack sim %d %d", r.Seed, k))
		cfg := r.TCP[k]
		cfg.StrictTransitions = true // an illegal transition fails the run
		s, err := stack.New(r.ends[k], stack.Options{
			Addr:   addrs[k],
			Clock:  r.v,
			Rand:   rand.NewChaCha8(key),
			TCP:    cfg,
			Manual: true,
			Trace: func(ev tcp.TraceEvent) {
				r.res.Events = append(r.res.Events, Event{Stack: k, At: ev.Time.Sub(clock.Epoch), TraceEvent: ev})
			},
		})
		if err != nil {
			return err
		}
		r.st[k] = s
	}
	r.rbuf = make([]byte, 64<<10)
	for i, sc := range r.Conns {
		srv := 1 - sc.Client
		l, err := r.st[srv].ListenTCP(uint16(basePort + i))
		if err != nil {
			return err
		}
		r.ls = append(r.ls, l)
		cr := &connRun{i: i, sc: sc}
		for role := range cr.ends {
			var key [32]byte
			copy(key[:], fmt.Sprintf("data %d %d %d", r.Seed, i, role))
			cr.ends[role] = &end{
				role: role, stack: sc.Client ^ role,
				sendTotal: sc.Size[role], recvWant: sc.Size[1-role],
				gen: rand.NewChaCha8(key), sendHash: sha256.New(), recvHash: sha256.New(),
			}
		}
		r.cs = append(r.cs, cr)
		if sc.Start > 0 {
			r.v.AfterFunc(sc.Start, func() {}) // wake the driver then
		}
	}
	return nil
}

// run drives the simulation: poll both stacks until no packet waits, step
// the applications, and when nothing moves advance the clock to the next
// timer.
func (r *run) run() error {
	if err := r.setup(); err != nil {
		return err
	}
	deadline := r.v.Now().Add(Limit)
	spins := 0
	for {
		n, err := r.poll()
		if err != nil {
			return err
		}
		progress, err := r.step()
		if err != nil {
			return err
		}
		r.res.Spins++
		if n > 0 || progress {
			if spins++; spins > maxSpins {
				return fmt.Errorf("livelock: %d steps at %v without time passing%s", spins, r.since(), r.describe())
			}
			continue
		}
		spins = 0
		if r.finished() {
			break
		}
		next, ok := r.v.Next()
		if !ok {
			return fmt.Errorf("stuck at %v: nothing to do and no timer pending%s", r.since(), r.describe())
		}
		if next.After(deadline) {
			return fmt.Errorf("not finished within %v of virtual time%s", Limit, r.describe())
		}
		r.v.AdvanceTo(next)
	}
	for _, l := range r.ls {
		l.Close()
	}
	for k, s := range r.st {
		if n := s.Stats().TCPConns; n != 0 {
			return fmt.Errorf("stack %s holds %d TCBs after every connection closed", names[k], n)
		}
	}
	return r.checkTrace()
}

// poll processes every waiting packet on both stacks, until none waits.
func (r *run) poll() (int, error) {
	total := 0
	for {
		n0, err := r.st[0].Poll()
		if err != nil {
			return total, err
		}
		n1, err := r.st[1].Poll()
		if err != nil {
			return total, err
		}
		if n0+n1 == 0 {
			return total, nil
		}
		total += n0 + n1
	}
}

// finished: every application closed and no TCB is left.
func (r *run) finished() bool {
	for _, c := range r.cs {
		if !c.done {
			return false
		}
	}
	return r.st[0].Stats().TCPConns == 0 && r.st[1].Stats().TCPConns == 0
}

// step runs every application once; it reports whether any made progress.
func (r *run) step() (bool, error) {
	now := r.v.Now()
	progress := false
	for _, c := range r.cs {
		if c.done {
			continue
		}
		p, err := r.stepConn(c, now)
		if err != nil {
			return false, fmt.Errorf("conn %d: %w", c.i, err)
		}
		progress = progress || p
	}
	return progress, nil
}

func (r *run) stepConn(cr *connRun, now time.Time) (bool, error) {
	sc := cr.sc
	progress := false
	cl, sv := cr.ends[0], cr.ends[1]
	if !cr.dialed {
		if now.Sub(clock.Epoch) < sc.Start {
			return false, nil
		}
		raddr := netip.AddrPortFrom(addrs[1-sc.Client], uint16(basePort+cr.i))
		c, err := r.st[sc.Client].DialTCPAsync(raddr, r.st[sc.Client].Options().TCP)
		if err != nil {
			return false, fmt.Errorf("dial: %v", err)
		}
		cr.dialed, cl.c = true, c
		r.logf("conn %d: %s dials %v from %v", cr.i, names[sc.Client], raddr, c.LocalAddr())
		progress = true
	}
	if sv.c == nil {
		if c := r.ls[cr.i].TryAccept(); c != nil {
			sv.c = c
			r.logf("conn %d: %s accepts %v", cr.i, names[sv.stack], c.RemoteAddr())
			progress = true
		}
	}
	want := [2]int{} // 1: shut due, 2: close due
	for role, e := range cr.ends {
		if e.c == nil || e.closed {
			continue
		}
		p, err := r.transfer(e)
		if err != nil {
			return false, fmt.Errorf("%s (%s, %s): %w", roleName(role), names[e.stack], e.c.ID(), err)
		}
		progress = progress || p
		want[role] = e.due(sc.Close[role])
	}
	if sc.Simultaneous {
		if want[0] == 2 && want[1] == 2 {
			for _, e := range cr.ends {
				r.close(cr, e, now)
			}
			progress = true
		}
	} else {
		for role, e := range cr.ends {
			if want[role] == 0 {
				continue
			}
			if e.readyAt.IsZero() {
				e.readyAt = now.Add(sc.CloseDelay[role])
				if sc.CloseDelay[role] > 0 {
					r.v.AfterFunc(sc.CloseDelay[role], func() {})
				}
				progress = true
			}
			if now.Before(e.readyAt) {
				continue
			}
			e.readyAt = time.Time{}
			if want[role] == 1 {
				e.shut = true
				if err := e.c.CloseWrite(); err != nil {
					return false, fmt.Errorf("%s: CloseWrite: %v", roleName(role), err)
				}
				r.logf("conn %d: %s %s shuts its sending side", cr.i, roleName(role), names[e.stack])
			} else {
				r.close(cr, e, now)
			}
			progress = true
		}
	}
	if cl.closed && sv.closed {
		cr.done = true
		done := max(cl.allReadAt.Sub(clock.Epoch), sv.allReadAt.Sub(clock.Epoch), 0)
		r.res.DataDone = append(r.res.DataDone, done)
		for role, e := range cr.ends {
			peer := cr.ends[1-role]
			if string(e.sendHash.Sum(nil)) != string(peer.recvHash.Sum(nil)) || e.sent != peer.recvd {
				return false, fmt.Errorf("%s sent %d bytes (sha256 %x), %s read %d (sha256 %x)",
					roleName(role), e.sent, e.sendHash.Sum(nil)[:8], roleName(1-role), peer.recvd, peer.recvHash.Sum(nil)[:8])
			}
		}
	}
	return progress, nil
}

func (r *run) close(cr *connRun, e *end, now time.Time) {
	e.closed, e.closedAt = true, now
	e.c.Close()
	r.logf("conn %d: %s %s closes (state now %v)", cr.i, roleName(e.role), names[e.stack], e.c.State())
}

func roleName(role int) string {
	if role == 0 {
		return "client"
	}
	return "server"
}

// due reports the close step the application would take now: 0 none, 1
// CloseWrite, 2 Close.
func (e *end) due(m CloseMode) int {
	if !e.estab {
		return 0 // a close in SYN-SENT deletes the TCB (RFC 9293 §3.10.4)
	}
	sentAll := e.sent == e.sendTotal
	switch m {
	case HalfClose:
		if sentAll && !e.shut {
			return 1
		}
		if e.shut && e.eof {
			return 2
		}
	case CloseWhenDone:
		if sentAll && e.recvd == e.recvWant {
			return 2
		}
	case CloseOnEOF:
		if sentAll && e.eof {
			return 2
		}
	}
	return 0
}

// transfer writes what the send buffer takes and reads what has arrived.
func (r *run) transfer(e *end) (bool, error) {
	progress := false
	if !e.estab {
		switch st := e.c.State(); {
		case st.Synchronized():
			e.estab, progress = true, true
		case st == tcp.Closed:
			return false, fmt.Errorf("handshake failed: %v", e.c.Info().State)
		}
	}
	for !e.shut && e.sent < e.sendTotal {
		if e.off == len(e.chunk) {
			n := min(32<<10, e.sendTotal-e.sent)
			if cap(e.chunk) < n {
				e.chunk = make([]byte, 32<<10)
			}
			e.chunk, e.off = e.chunk[:n], 0
			e.gen.Read(e.chunk)
			e.sendHash.Write(e.chunk)
		}
		n, err := e.c.TryWrite(e.chunk[e.off:])
		e.off += n
		e.sent += n
		progress = progress || n > 0
		if errors.Is(err, stack.ErrWouldBlock) {
			break
		}
		if err != nil {
			return progress, fmt.Errorf("write after %d of %d bytes: %v (%s)", e.sent, e.sendTotal, err, infoString(e.c))
		}
	}
	if !e.estab || e.eof {
		return progress, nil
	}
	for {
		n, err := e.c.TryRead(r.rbuf)
		if n > 0 {
			e.recvHash.Write(r.rbuf[:n])
			e.recvd += n
			progress = true
			if e.recvd == e.recvWant {
				e.allReadAt = r.v.Now()
			}
			if e.recvd > e.recvWant {
				return progress, fmt.Errorf("read %d bytes, the peer sent only %d", e.recvd, e.recvWant)
			}
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, stack.ErrWouldBlock):
			return progress, nil
		case err == io.EOF:
			if e.recvd != e.recvWant {
				return progress, fmt.Errorf("EOF after %d of %d bytes (%s)", e.recvd, e.recvWant, infoString(e.c))
			}
			e.eof = true
			return true, nil
		default:
			return progress, fmt.Errorf("read after %d of %d bytes: %v (%s)", e.recvd, e.recvWant, err, infoString(e.c))
		}
	}
}

func infoString(c *stack.Conn) string {
	i := c.Info()
	return fmt.Sprintf("state %v snd.una %d snd.nxt %d rcv.nxt %d unacked %d unsent %d sndwnd %d rcvwnd %d cwnd %d rto %v rtx %d timeouts %d",
		i.State, i.SndUna, i.SndNxt, i.RcvNxt, i.Unacked, i.Unsent, i.SndWnd, i.RcvWnd, i.Cwnd, i.RTO, i.Stats.Retransmits, i.Stats.Timeouts)
}

// describe lists the connections that are not finished, for a stuck run.
func (r *run) describe() string {
	var b strings.Builder
	for _, c := range r.cs {
		if c.done && !r.anyOpen(c) {
			continue
		}
		fmt.Fprintf(&b, "\n  conn %d (dialed %v, apps done %v):", c.i, c.dialed, c.done)
		for role, e := range c.ends {
			if e.c == nil {
				fmt.Fprintf(&b, "\n    %s %s: no connection yet", roleName(role), names[e.stack])
				continue
			}
			fmt.Fprintf(&b, "\n    %s %s %v: sent %d/%d read %d/%d eof %v shut %v closed %v: %s",
				roleName(role), names[e.stack], e.c.ID(), e.sent, e.sendTotal, e.recvd, e.recvWant,
				e.eof, e.shut, e.closed, infoString(e.c))
		}
	}
	for k, s := range r.st {
		fmt.Fprintf(&b, "\n  stack %s: %d TCBs", names[k], s.Stats().TCPConns)
	}
	return b.String()
}

func (r *run) anyOpen(c *connRun) bool {
	for _, e := range c.ends {
		if e.c != nil && e.c.State() != tcp.Closed {
			return true
		}
	}
	return false
}

// checkTrace checks each TCB's transitions: legal edges, one unbroken path
// from CLOSED (or LISTEN) to CLOSED, a clean ending (the ACK of our FIN in
// LAST-ACK, or 2*MSL in TIME-WAIT), TIME-WAIT held for 2*MSL, and CLOSED
// within CloseBound of the application's Close.
func (r *run) checkTrace() error {
	type key struct {
		stack int
		id    tcp.ID
	}
	var order []key
	paths := make(map[key][]Event)
	closedIdx := make(map[key]int) // index in Events of the CLOSED event
	for i, e := range r.res.Events {
		if e.To == tcp.Closed {
			closedIdx[key{e.Stack, e.ID}] = i
		}
		if !tcp.Legal(e.From, e.To) {
			return fmt.Errorf("illegal transition: %v", e)
		}
		k := key{e.Stack, e.ID}
		if _, ok := paths[k]; !ok {
			order = append(order, k)
		}
		paths[k] = append(paths[k], e)
	}
	closedAt := make(map[key]time.Time) // end of each TCB's data phase
	for _, c := range r.cs {
		for role, e := range c.ends {
			t, peer := e.closedAt, c.ends[1-role]
			if peer.allReadAt.After(t) {
				t = peer.allReadAt
			}
			closedAt[key{e.stack, e.c.ID()}] = t
		}
	}
	if want := 2 * len(r.cs); len(order) != want {
		return fmt.Errorf("%d TCBs in the trace, want %d (2 per connection)", len(order), want)
	}
	for _, k := range order {
		p := paths[k]
		if f := p[0].From; f != tcp.Closed && f != tcp.Listen {
			return fmt.Errorf("%s %v: trace starts in %v: %v", names[k.stack], k.id, f, p[0])
		}
		for i := 1; i < len(p); i++ {
			if p[i].From != p[i-1].To {
				return fmt.Errorf("%s %v: broken path: %v then %v", names[k.stack], k.id, p[i-1], p[i])
			}
		}
		last := p[len(p)-1]
		if last.To != tcp.Closed {
			return fmt.Errorf("%s %v: ends in %v, not CLOSED", names[k.stack], k.id, last.To)
		}
		switch {
		case last.From == tcp.LastAck && strings.HasPrefix(last.Cause, "rcv ") && !strings.Contains(last.Cause, "RST"):
		case last.From == tcp.TimeWait && last.Cause == "timer 2*MSL":
			tw := p[len(p)-2]
			if d := last.At - tw.At; d < 2*MSL {
				return fmt.Errorf("%s %v: TIME-WAIT lasted %v, less than 2*MSL = %v", names[k.stack], k.id, d, 2*MSL)
			}
		case (last.From == tcp.LastAck || last.From == tcp.TimeWait) && strings.Contains(last.Cause, "RST"):
			peer := key{1 - k.stack, tcp.ID{Local: k.id.Remote, Remote: k.id.Local}}
			if pi, ok := closedIdx[peer]; !ok || pi > closedIdx[k] {
				return fmt.Errorf("%s %v: reset while the peer's TCB was still open: %v", names[k.stack], k.id, last)
			}
			r.res.RSTEndings++
		default:
			return fmt.Errorf("%s %v: connection aborted: %v", names[k.stack], k.id, last)
		}
		ca, ok := closedAt[k]
		if !ok {
			return fmt.Errorf("%s %v: a TCB the script did not open: %v", names[k.stack], k.id, p[0])
		}
		if d := last.At - ca.Sub(clock.Epoch); d > CloseBound {
			return fmt.Errorf("%s %v: CLOSED %v after its data phase ended (bound %v)", names[k.stack], k.id, d, CloseBound)
		}
	}
	return nil
}
