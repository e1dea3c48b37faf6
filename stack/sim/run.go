package sim

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"
	"ustack/stack"
	"ustack/stack/clock"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

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

	halfOpenIDs []tcp.ID // both TCBs of each half-open connection (halfOpen)
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
	pa, pb := link.Pipe(r.linkMTU())
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
			Addr:   r.addr(k),
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
		raddr := netip.AddrPortFrom(r.addr(1-sc.Client), uint16(basePort+cr.i))
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
		} else if cl.c != nil && cl.c.State() == tcp.Closed && cl.estab {
			r.halfOpen(cr)
			return true, nil
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
		p, err := r.closeDue(cr, want, now)
		if err != nil {
			return false, err
		}
		progress = progress || p
	}
	if cl.closed && sv.closed {
		if err := r.finish(cr); err != nil {
			return false, err
		}
	}
	return progress, nil
}

// closeDue shuts or closes each end whose close mode says so (want: 1 shut
// due, 2 close due), once the script's delay for it has passed.
func (r *run) closeDue(cr *connRun, want [2]int, now time.Time) (progress bool, err error) {
	sc := cr.sc
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
	return progress, nil
}

// finish ends a connection both sides have closed: every byte each side
// sent arrived, once and in order (equal counts and SHA-256).
func (r *run) finish(cr *connRun) error {
	cl, sv := cr.ends[0], cr.ends[1]
	cr.done = true
	done := max(cl.allReadAt.Sub(clock.Epoch), sv.allReadAt.Sub(clock.Epoch), 0)
	r.res.DataDone = append(r.res.DataDone, done)
	for role, e := range cr.ends {
		peer := cr.ends[1-role]
		if string(e.sendHash.Sum(nil)) != string(peer.recvHash.Sum(nil)) || e.sent != peer.recvd {
			return fmt.Errorf("%s sent %d bytes (sha256 %x), %s read %d (sha256 %x)",
				roleName(role), e.sent, e.sendHash.Sum(nil)[:8], roleName(1-role), peer.recvd, peer.recvHash.Sum(nil)[:8])
		}
	}
	return nil
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

// halfOpen ends a connection the server never accepted although the client
// was ESTABLISHED: every SYN-ACK retransmission (and the client's ACK) was
// lost, the listener gave up silently, and keepalive found the half-open
// connection with an RST from the server's closed port (RFC 9293 §3.10.7.1,
// RFC 1122 §4.2.3.6). No data could flow: the run counts it instead of
// checking its bytes; checkTrace accepts the pair of TCBs.
func (r *run) halfOpen(cr *connRun) {
	cl := cr.ends[0]
	cr.done, cl.closed = true, true
	r.res.HalfOpen++
	id := cl.c.ID()
	r.halfOpenIDs = append(r.halfOpenIDs, id, tcp.ID{Local: id.Remote, Remote: id.Local})
	r.logf("conn %d: half-open: the server never accepted; keepalive reset the client", cr.i)
}
