package lab

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"ustack/internal/record"
	"ustack/stack"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// rstClosedPort is where nobody listens in the rst lab.
const rstClosedPort = 81

// rstClosed is the server's address at that port.
func (r *labRun) rstClosed() netip.AddrPort {
	return netip.AddrPortFrom(r.fam.server.Addr(), rstClosedPort)
}

// labKeepOpen is a stack's link that Close leaves open: the rst lab's
// rebooted server stack shares the tap with the stack it replaces.
type labKeepOpen struct{ *labTap }

func (labKeepOpen) Close() error { return nil }

// since returns the packets recorded from index n on.
func (r *labRun) since(n int) []record.Pkt { return r.rec.Packets()[n:] }

// checkRefused checks the first story: the SYN to a closed port is
// answered RST+ACK seq=0 ack=x+1 and connect fails with ECONNREFUSED.
func (r *labRun) checkRefused(pk []record.Pkt, err error, srv stack.Stats) {
	syn, okS := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.Is(header.FlagSYN) })
	rst, okR := record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.Has(header.FlagRST) })
	r.check(okS && okR && rst.Is(header.FlagRST|header.FlagACK) && rst.Seq == 0 && rst.Ack == syn.Seq+1,
		"a SYN to a port where nobody listens is answered RST+ACK seq=0 ack=x+1 (RFC 9293 §3.10.7.1)")
	r.check(errors.Is(err, syscall.ECONNREFUSED), "the client's connect fails with ECONNREFUSED (%v)", err)
	r.check(srv.TCPNoConnection >= 1 && srv.TCPResetsSent >= 1, "the server's stack counts the segment for no connection and the reset it sent (%d, %d)", srv.TCPNoConnection, srv.TCPResetsSent)
}

// checkAbort checks the second story: RST seq=SND.NXT instead of FIN, and
// ECONNRESET at the peer; with ustack states for the server.
func (r *labRun) checkAbort(pk []record.Pkt, sndNxt uint32, err error, port uint16) {
	_, fin := record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.Has(header.FlagFIN) })
	rst, okR := record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.Has(header.FlagRST) })
	r.check(okR && !fin && rst.Seq == sndNxt, "close with SO_LINGER 0 sends RST seq=SND.NXT=%d, no FIN", sndNxt)
	r.check(errors.Is(err, syscall.ECONNRESET), "the client's read fails with ECONNRESET (%v)", err)
	ss := r.rec.States(true, port)
	r.check(record.HasRun(ss, "ESTABLISHED", "CLOSED") && !slices.Contains(ss, "TIME-WAIT"),
		"the aborting side goes from ESTABLISHED straight to CLOSED: no FIN-WAIT, no TIME-WAIT (%s)", arrowJoin(ss))
}

// checkHalfOpen checks the third story: the client's data, for a
// connection the server forgot, is answered RST seq=SEG.ACK, and the
// client's read fails with ECONNRESET.
func (r *labRun) checkHalfOpen(pk []record.Pkt, err error, resets uint64) {
	data, okD := record.First(pk, func(p record.Pkt) bool { return p.ToServer && len(p.Payload) > 0 })
	rst, okR := record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.Has(header.FlagRST) })
	r.check(okD && okR && rst.Is(header.FlagRST) && rst.Seq == data.Ack,
		"the rebooted server answers the client's data with RST seq=SEG.ACK=%d (RFC 9293 §3.10.7.1: no such connection)", data.Ack)
	r.check(errors.Is(err, syscall.ECONNRESET), "the client's read fails with ECONNRESET (%v)", err)
	r.check(resets >= 1, "the rebooted stack counts the reset it sent (%d)", resets)
}

// labRST: a refused connect, an abort with SO_LINGER 0, and a half-open
// connection reset after the server's reboot.
func labRST(r *labRun) error {
	w, ln, err := r.vListen(labVConfig{cliSeed: 7, srvSeed: 7})
	if err != nil {
		return err
	}
	defer w.close()
	client := "client (ustack " + r.fam.client.String() + ")"
	buf := make([]byte, 100)

	r.section("1. connecting to a closed port")
	r.l.Restart(r.rstClosed().String(), "CLOSED", "CLOSED")
	r.l.Header(client, "server (ustack "+r.rstClosed().String()+", nobody listens)")
	r.say("the client sends SYN to port %d, where no application listens", rstClosedPort)
	c, err := w.cli.DialTCPAsync(r.rstClosed(), w.cli.Options().TCP)
	if err != nil {
		return err
	}
	w.settle()
	_, rerr := c.TryRead(buf)
	r.say("the client's connect fails: %v", rerr)
	r.checkRefused(r.rec.Packets(), rerr, w.srv.Stats())

	r.section("2. an abort: close with SO_LINGER 0")
	n := len(r.rec.Packets())
	r.l.Restart(r.fam.server.String(), "CLOSED", "LISTEN")
	r.ladderHeader()
	cc, sc, err := w.establish(ln)
	if err != nil {
		return err
	}
	r.say("the server's application sets SO_LINGER to 0 and closes: an abort, not a close")
	sc.SetLinger(0)
	sndNxt := uint32(sc.Info().SndNxt)
	sc.Close()
	w.settle()
	_, rerr = cc.TryRead(buf)
	r.say("the client's read fails: %v", rerr)
	r.checkAbort(r.since(n), sndNxt, rerr, cc.LocalPort())
	return r.rstHalfOpen(w, ln)
}

// rstHalfOpen is the third story in memory: the server's host reboots; a
// fresh stack on the same address and link knows nothing of the
// connection.
func (r *labRun) rstHalfOpen(w *labVWorld, ln *stack.Listener) error {
	r.section("3. a half-open connection: the server reboots and forgets it")
	n := len(r.rec.Packets())
	r.l.Restart(r.fam.server.String(), "CLOSED", "LISTEN")
	r.ladderHeader()
	c, sc, err := w.establish(ln)
	if err != nil {
		return err
	}
	c.TryWrite([]byte("hello\n"))
	w.run(time.Second)
	sc.TryRead(make([]byte, 100))
	r.say("the server's host crashes and reboots: no FIN, no RST; its new stack knows nothing of the connection, and the service listens again")
	fresh, err := stack.New(labKeepOpen{w.srvTap}, stack.Options{Addr: r.fam.server.Addr(), Clock: w.clk, Rand: labRand(77), Trace: r.trace, Manual: true})
	if err != nil {
		return err
	}
	old := w.srv
	w.srv = fresh
	defer func() { fresh.Close(); w.srv = old }()
	if _, err := fresh.ListenTCP(labPort); err != nil {
		return err
	}
	r.l.State(tcp.TraceEvent{Time: w.clk.Now(), ID: sc.ID(), From: tcp.Established, To: tcp.Closed, Cause: "host rebooted: the connection is forgotten"})
	r.say("the client, which has not heard of it, sends more data on its connection (ESTABLISHED on its side only: half-open)")
	c.TryWrite([]byte("are you still there?\n"))
	w.settle()
	_, rerr := c.TryRead(make([]byte, 100))
	r.say("the client's read fails: %v", rerr)
	r.checkHalfOpen(r.since(n), rerr, fresh.Stats().TCPResetsSent)
	return nil
}

func labRSTTUN(r *labRun) error {
	w, done, err := r.newTWorld(tcp.Config{}, nil, nil)
	defer done()
	if err != nil {
		return err
	}
	ln, err := w.srv.ListenTCP(labPort)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.section("1. connecting to a closed port")
	r.l.Restart(r.rstClosed().String(), "CLOSED", "CLOSED")
	r.l.Header("client (kernel "+r.fam.client.String()+")", "server (ustack "+r.rstClosed().String()+", nobody listens)")
	_, derr := w.dial(ctx, r.rstClosed())
	r.say("the kernel's connect fails: %v", derr)
	pk := r.rec.WaitPkts(2*time.Second, record.Any(func(p record.Pkt) bool { return !p.ToServer && p.Has(header.FlagRST) }))
	r.checkRefused(pk, derr, w.srv.Stats())

	r.section("2. an abort: close with SO_LINGER 0")
	n := len(r.rec.Packets())
	r.l.Restart(r.fam.server.String(), "CLOSED", "LISTEN")
	r.tunHeader()
	c, sc, err := w.connect(ln)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r.rec.WaitPkts(2*time.Second, func(pk []record.Pkt) bool { return len(pk) >= n+3 })
	r.say("the server's application sets SO_LINGER to 0 and closes: an abort, not a close")
	sc.SetLinger(0)
	sndNxt := uint32(sc.Info().SndNxt)
	sc.Close()
	_, rerr := c.Read(make([]byte, 100))
	r.say("the kernel's read fails: %v", rerr)
	r.checkAbort(r.since(n), sndNxt, rerr, labPort)
	return r.rstHalfOpenTUN(w, ln)
}

// rstHalfOpenTUN is the third story with --tun: ustack's "host" reboots
// (its stack and TUN are closed and made afresh); the kernel's connection
// stays ESTABLISHED.
func (r *labRun) rstHalfOpenTUN(w *labTWorld, ln *stack.Listener) error {
	r.section("3. a half-open connection: the server reboots and forgets it")
	n := len(r.rec.Packets())
	r.l.Restart(r.fam.server.String(), "CLOSED", "LISTEN")
	r.tunHeader()
	c, sc, err := w.connect(ln)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("hello\n"))
	sc.Read(make([]byte, 100))
	r.rec.WaitPkts(2*time.Second, record.Any(func(p record.Pkt) bool { return !p.ToServer && p.Ack == uint32(sc.Info().RcvNxt) }))
	r.say("the server's host crashes and reboots: no FIN, no RST; its new stack (and TUN) know nothing of the connection, and the service listens again")
	id := sc.ID()
	if err := w.reboot(); err != nil {
		return err
	}
	if _, err := w.srv.ListenTCP(labPort); err != nil {
		return err
	}
	r.l.State(tcp.TraceEvent{Time: time.Now(), ID: id, From: tcp.Established, To: tcp.Closed, Cause: "host rebooted: the connection is forgotten"})
	r.say("the kernel, which has not heard of it, sends more data on its connection (ESTABLISHED on its side only: half-open)")
	c.Write([]byte("are you still there?\n"))
	_, rerr := c.Read(make([]byte, 100))
	r.say("the kernel's read fails: %v", rerr)
	r.checkHalfOpen(r.since(n), rerr, w.srv.Stats().TCPResetsSent)
	return nil
}

// reboot closes the server stack and its TUN (silently: a closed stack
// sends nothing) and makes them afresh, as a rebooted host would be.
func (w *labTWorld) reboot() error {
	r := w.r
	w.srv.Close()
	dev, err := r.openTUN(w.ns)
	if err != nil {
		return err
	}
	tap := &labTap{r: r, reads: true}
	tap.Endpoint = link.Impair(dev, link.ImpairConfig{Rule: tap.outRule})
	w.tap = tap
	w.srv, err = stack.New(tap, stack.Options{Addr: r.fam.server.Addr(), TCP: tcp.Config{MSL: labTUNMSL}, Trace: r.trace})
	if err != nil {
		tap.Close()
		return err
	}
	return nil
}
