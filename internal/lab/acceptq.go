package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"ustack/internal/record"
	"ustack/internal/waitfor"
	"ustack/stack"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// The accept-queue lab's listen backlog: its accept queue holds
// backlog+1 connections, as Linux counts.
const labAcceptBacklog = 1

var acceptReq = []byte("GET / HTTP/1.0\r\n\r\n")

// acceptStory is what the accept-queue lab found: C's port, when the
// application accepted, the listen overflows counted before, C's
// client-side state then, and what the application read from C.
type acceptStory struct {
	port       uint16
	full       uint64 // connections established before C's ACK (A and B)
	acceptAt   time.Time
	overflows  uint64
	cliState   string
	got        []byte
	srvStateAt tcp.State // C's server side just before the accept
}

func (r *labRun) acceptIntro() {
	r.say("the server's application listens with backlog %d (the accept queue holds %d, as Linux counts) and never calls accept for now", labAcceptBacklog, labAcceptBacklog+1)
}

// acceptClaims checks the story.
func (r *labRun) acceptClaims(s acceptStory) {
	pk := r.rec.Packets()
	onC := func(p record.Pkt) bool { return p.SrcPort == s.port || p.DstPort == s.port }
	before := record.Where(pk, func(p record.Pkt) bool { return onC(p) && p.T.Before(s.acceptAt) })
	after := record.Where(pk, func(p record.Pkt) bool { return onC(p) && !p.T.Before(s.acceptAt) })
	r.check(s.full == labAcceptBacklog+1, "two connections (not drawn) fill the accept queue: %d established, not accepted", s.full)
	_, okA := record.First(before, func(p record.Pkt) bool { return p.ToServer && p.Is(header.FlagACK) && len(p.Payload) == 0 })
	r.check(okA && s.cliState == "ESTABLISHED" && s.srvStateAt == tcp.SynReceived,
		"the client's ACK completes its side of the handshake (ESTABLISHED), but the server drops it: it stays in SYN-RECEIVED (%s)", s.srvStateAt)
	synacks := record.Where(before, func(p record.Pkt) bool { return !p.ToServer && p.Is(header.FlagSYN|header.FlagACK) })
	r.check(len(synacks) >= 2, "the server retransmits its SYN+ACK (%d sent before the application accepts)", len(synacks))
	data, okD := record.First(before, func(p record.Pkt) bool { return p.ToServer && len(p.Payload) > 0 })
	acked := func(p record.Pkt) bool {
		return !p.ToServer && p.Has(header.FlagACK) && okD && p.Ack == data.Seq+uint32(len(data.Payload))
	}
	_, early := record.First(before, acked)
	copies := len(record.Where(before, func(p record.Pkt) bool { return p.ToServer && len(p.Payload) > 0 }))
	r.check(okD && !early, "the client's request is not acknowledged while the queue is full (%d copies sent)", copies)
	fromC := len(record.Where(before, func(p record.Pkt) bool { return p.ToServer && !p.Has(header.FlagSYN) }))
	r.check(okA && s.overflows >= uint64(fromC) && fromC >= 2, "each of the client's %d segments is dropped and counted (listen overflows: %d)", fromC, s.overflows)
	est, _, okE := r.rec.StateAt(true, s.port, tcp.Established)
	_, late := record.First(after, acked)
	r.check(okE && !est.Before(s.acceptAt) && late,
		"once the application accepts, the next segment completes the handshake (SYN-RECEIVED → ESTABLISHED) and the request is acknowledged")
	r.check(bytes.Equal(s.got, acceptReq), "the application accepts the connection and reads the request intact (%q)", s.got)
}

// labAcceptQueue: an application that does not accept; the handshake's
// last ACK meets a full accept queue.
func labAcceptQueue(r *labRun) error {
	var cPort uint16
	held := false
	hold := func(p record.Pkt) link.Action {
		// C's ACK is held a moment, so that B completes first.
		if cPort != 0 && !held && p.SrcPort == cPort && p.Is(header.FlagACK) {
			held = true
			return link.Delay(10 * time.Millisecond)
		}
		return link.Pass
	}
	w, ln, err := r.vListen(labVConfig{cliSeed: 11, srvSeed: 11, cliDecide: hold, srvOpts: func(o *stack.Options) { o.Backlog = labAcceptBacklog }})
	if err != nil {
		return err
	}
	defer w.close()
	r.ladderHeader()
	r.acceptIntro()
	quietDial := func() error {
		r.setQuiet(true)
		defer r.setQuiet(false)
		n := w.srv.Stats().TCPEstablished
		if _, err := w.dial(); err != nil {
			return err
		}
		if !w.until(time.Second, func() bool { return w.srv.Stats().TCPEstablished > n }) {
			return fmt.Errorf("a connection to fill the queue was not established")
		}
		return nil
	}
	r.say("connection A (not drawn) is established and waits in the accept queue")
	if err := quietDial(); err != nil {
		return err
	}
	r.say("client C connects; its last ACK is held a moment in the network")
	c, err := w.dial()
	if err != nil {
		return err
	}
	cPort = c.LocalPort()
	w.settle()
	r.say("meanwhile connection B (not drawn) is established: the accept queue is full")
	if err := quietDial(); err != nil {
		return err
	}
	s := acceptStory{port: cPort, full: w.srv.Stats().TCPEstablished}
	w.run(20 * time.Millisecond)
	s.cliState = c.State().String()
	r.say("C's ACK arrives with nowhere to queue the connection: the server's stack drops it (Linux: tcp_abort_on_overflow=0); C believes it is connected")
	c.TryWrite(acceptReq)
	r.say("C sends its request: dropped too, not acknowledged; C retransmits it, the server its SYN+ACK")
	w.run(4 * time.Second)
	s.srvStateAt = srvState(r, cPort)
	s.overflows = w.srv.Stats().TCPListenOverflow
	s.acceptAt = w.clk.Now()
	r.say("the application accepts a connection (A): the queue has room again")
	ln.TryAccept()
	w.until(10*time.Second, func() bool {
		_, _, ok := r.rec.StateAt(true, cPort, tcp.Established)
		return ok
	})
	w.run(time.Second)
	r.say("it accepts the others (B, then C) and reads C's request")
	var sc *stack.Conn
	for range labAcceptBacklog + 1 {
		sc = ln.TryAccept()
	}
	if sc == nil || sc.ID().Remote.Port() != cPort {
		return fmt.Errorf("C was not accepted")
	}
	buf := make([]byte, 100)
	n, _ := sc.TryRead(buf)
	s.got = buf[:n]
	r.acceptClaims(s)
	return nil
}

// srvState is the last state the server side of the connection with port
// entered (CLOSED if none).
func srvState(r *labRun, port uint16) tcp.State {
	st := tcp.Closed
	for _, e := range r.rec.StateLog() {
		if e.Server && e.ID.Remote.Port() == port {
			st = e.To
		}
	}
	return st
}

// acceptTUN is the --tun accept-queue lab's state. C is the connection
// whose SYN comes while holding is set; its SYN+ACK is held, so that B
// completes first (the hooks run on the stack's goroutines).
type acceptTUN struct {
	r             *labRun
	w             *labTWorld
	ctx           context.Context
	holding, held atomic.Bool
	cPort         atomic.Uint32
	conns         []net.Conn
}

// spot notes C's port from its SYN (an inbound hook that drops nothing).
func (a *acceptTUN) spot(p record.Pkt) bool {
	if a.holding.Load() && a.cPort.Load() == 0 && p.Is(header.FlagSYN) {
		a.cPort.Store(uint32(p.SrcPort))
	}
	return false
}

// hold holds C's SYN+ACK a moment.
func (a *acceptTUN) hold(p record.Pkt) link.Action {
	if !a.held.Load() && p.Is(header.FlagSYN|header.FlagACK) && uint32(p.DstPort) == a.cPort.Load() {
		a.held.Store(true)
		return link.Delay(300 * time.Millisecond)
	}
	return link.Pass
}

// quietDial connects the kernel, not drawn, and waits until the server
// has the connection in its accept queue.
func (a *acceptTUN) quietDial() error {
	a.r.setQuiet(true)
	defer a.r.setQuiet(false)
	n := a.w.srv.Stats().TCPEstablished
	c, err := a.w.dial(a.ctx, a.r.fam.server)
	if err != nil {
		return err
	}
	a.conns = append(a.conns, c)
	if !waitfor.Within(2*time.Second, func() bool { return a.w.srv.Stats().TCPEstablished > n }) {
		return fmt.Errorf("a connection to fill the queue was not established")
	}
	return nil
}

// fill establishes A, starts C, establishes B while C's SYN+ACK is held,
// and returns C once its connect returned.
func (a *acceptTUN) fill(s *acceptStory) (net.Conn, error) {
	r := a.r
	r.say("connection A (not drawn) is established and waits in the accept queue")
	if err := a.quietDial(); err != nil {
		return nil, err
	}
	r.say("client C connects; the server's SYN+ACK is held a moment in the network")
	type dialed struct {
		c   net.Conn
		err error
	}
	ch := make(chan dialed, 1)
	a.holding.Store(true)
	go func() { c, err := a.w.dial(a.ctx, a.r.fam.server); ch <- dialed{c, err} }()
	if !waitfor.Within(2*time.Second, a.held.Load) {
		return nil, fmt.Errorf("C's SYN+ACK was not seen")
	}
	r.say("meanwhile connection B (not drawn) is established: the accept queue is full")
	if err := a.quietDial(); err != nil {
		return nil, err
	}
	s.port = uint16(a.cPort.Load())
	s.full = a.w.srv.Stats().TCPEstablished
	d := <-ch
	if d.err != nil {
		return nil, d.err
	}
	a.conns = append(a.conns, d.c)
	s.cliState = "ESTABLISHED" // connect returned
	return d.c, nil
}

func labAcceptQueueTUN(r *labRun) error {
	a := &acceptTUN{r: r}
	w, done, err := r.newTWorldWith(tcp.Config{}, func(o *stack.Options) { o.Backlog = labAcceptBacklog }, a.hold, a.spot)
	defer done()
	if err != nil {
		return err
	}
	a.w = w
	ln, err := w.srv.ListenTCP(labPort)
	if err != nil {
		return err
	}
	r.tunHeader()
	r.acceptIntro()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.ctx = ctx
	defer func() {
		for _, c := range a.conns {
			c.Close()
		}
	}()
	var s acceptStory
	c, err := a.fill(&s)
	if err != nil {
		return err
	}
	port := s.port
	fromC := func(p record.Pkt) bool { return p.ToServer && p.SrcPort == port }
	r.rec.WaitPkts(time.Second, record.Any(func(p record.Pkt) bool { return fromC(p) && p.Is(header.FlagACK) }))
	r.say("C's ACK arrives with nowhere to queue the connection: the server's stack drops it (Linux: tcp_abort_on_overflow=0); C believes it is connected")
	c.Write(acceptReq)
	r.say("C sends its request: dropped too, not acknowledged; C retransmits it, the server its SYN+ACK")
	// Wait for the retransmitted SYN+ACK and the kernel's answer to it.
	r.rec.WaitPkts(5*time.Second, func(pk []record.Pkt) bool {
		sa := record.Where(pk, func(p record.Pkt) bool {
			return !p.ToServer && p.Is(header.FlagSYN|header.FlagACK) && p.DstPort == port
		})
		return len(sa) >= 2 && len(record.Where(pk, func(p record.Pkt) bool { return fromC(p) && p.T.After(sa[1].T) })) > 0
	})
	waitfor.Within(time.Second, func() bool {
		return w.srv.Stats().TCPListenOverflow >= uint64(len(record.Where(r.rec.Packets(), fromC))-1)
	})
	s.srvStateAt = srvState(r, port)
	s.overflows = w.srv.Stats().TCPListenOverflow
	s.acceptAt = time.Now()
	r.say("the application accepts a connection (A): the queue has room again")
	if _, err := labAccept(ln, time.Second); err != nil {
		return err
	}
	sc, err := acceptPort(ln, port)
	if err != nil {
		return err
	}
	r.say("it accepts the others (B, then C) and reads C's request")
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	s.got, _ = io.ReadAll(io.LimitReader(sc, int64(len(acceptReq))))
	r.rec.WaitPkts(2*time.Second, record.Any(func(p record.Pkt) bool {
		return !p.ToServer && p.DstPort == port && p.Ack == uint32(sc.Info().RcvNxt) && !p.T.Before(s.acceptAt)
	}))
	r.acceptClaims(s)
	return nil
}

// acceptPort accepts connections until the one from port.
func acceptPort(ln *stack.Listener, port uint16) (*stack.Conn, error) {
	var seen []uint16
	for range 3 {
		sc, err := labAccept(ln, 5*time.Second)
		if err != nil {
			return nil, err
		}
		if sc.ID().Remote.Port() == port {
			return sc, nil
		}
		seen = append(seen, sc.ID().Remote.Port())
	}
	return nil, fmt.Errorf("C (port %d) was not accepted (got %v)", port, seen)
}
