package lab

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"time"

	"ustack/internal/record"
	"ustack/stack"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// timeWait is the state of the in-memory time-wait lab: what its link
// rules saw, and what each part of the story found.
type timeWait struct {
	r           *labRun
	w           *labVWorld
	ln          *stack.Listener
	req, newReq []byte
	srvFIN      uint32
	haveFIN     bool
	droppedLast bool
	oldReq      record.Pkt // the first request as it went out
	oldPort     uint16
	oldISS      uint32
	fin2At      time.Time    // the server's last FIN
	srvEnd      record.State // the server's first connection ending
	newPort     uint16
	got         []byte // what the server's new connection read
}

// labTimeWait: the client's last ACK is lost; the server repeats its FIN;
// TIME-WAIT acknowledges it again and restarts 2*MSL. Then an old segment
// of the connection arrives after the client has connected again.
func labTimeWait(r *labRun) error {
	seed, err := labSamePortSeed(r.fam)
	if err != nil {
		return err
	}
	s := &timeWait{r: r, req: []byte("GET /old HTTP/1.0\r\nX-Pad: " + strings.Repeat("o", 940) + "\r\n\r\n"), newReq: []byte("GET /new HTTP/1.0\r\n\r\n")}
	// Timestamps off: PAWS (RFC 7323) would be a second guard against old
	// segments; the textbook story has TIME-WAIT alone. Delayed ACKs off
	// and a small minimum RTO keep this zero-delay story within a few
	// milliseconds, so that the ISN clock (RFC 6528, 4 µs ticks) moves
	// little between the two connections.
	cfg := tcp.Config{MSL: labMSL, NoTimestamps: true, DelayedAck: -1, MinRTO: time.Millisecond}
	s.w, s.ln, err = r.vListen(labVConfig{cli: cfg, srv: cfg, cliSeed: seed, srvSeed: 3, srvDecide: s.srvDecide, cliDecide: s.cliDecide})
	if err != nil {
		return err
	}
	defer s.w.close()
	r.ladderHeader()
	if err := s.first(); err != nil {
		return err
	}
	r.section("a new connection, and an old segment")
	if err := s.second(); err != nil {
		return err
	}
	s.claims()
	return nil
}

// srvDecide notes the server's FIN.
func (s *timeWait) srvDecide(p record.Pkt) link.Action {
	if p.Has(header.FlagFIN) {
		s.srvFIN, s.haveFIN = p.Seq, true
	}
	return link.Pass
}

// cliDecide keeps a copy of the request and drops the client's ACK of the
// server's FIN, once.
func (s *timeWait) cliDecide(p record.Pkt) link.Action {
	if len(p.Payload) == len(s.req) && s.oldReq.Payload == nil {
		s.oldReq = p
	}
	if s.haveFIN && !s.droppedLast && p.Is(header.FlagACK) && p.Ack == s.srvFIN+1 {
		s.droppedLast = true
		return link.Drop
	}
	return link.Pass
}

// first is the first connection: a request, a reply, the close, and the
// lost last ACK.
func (s *timeWait) first() error {
	r, w := s.r, s.w
	c, sc, err := w.establish(s.ln)
	if err != nil {
		return err
	}
	s.oldPort, s.oldISS = c.LocalPort(), c.ISS()
	r.say("the client (port %d) sends a request of %d bytes; a copy of it will stray in the network", s.oldPort, len(s.req))
	if _, err := c.TryWrite(s.req); err != nil {
		return err
	}
	w.settle()
	buf := make([]byte, 4096)
	sc.TryRead(buf)
	sc.TryWrite([]byte("HTTP/1.0 200 OK\r\n\r\nold\n"))
	w.settle()
	c.TryRead(buf)
	r.say("the client closes first (active close); the server closes too")
	c.Close()
	w.settle()
	sc.Close()
	w.settle()
	r.say("the server, in LAST-ACK, waits for the ACK of its FIN; its retransmission timer runs")
	w.until(10*time.Second, func() bool { return w.srv.Stats().TCPConns == 0 })
	for _, p := range r.rec.Packets() {
		if !p.ToServer && p.Has(header.FlagFIN) {
			s.fin2At = p.T // the last FIN the server sent
		}
	}
	_, s.srvEnd, _ = r.rec.StateAt(true, 0, tcp.Closed)
	return nil
}

// second is the new connection from the same port, and the old copy of the
// first request arriving late.
func (s *timeWait) second() error {
	r, w := s.r, s.w
	r.say("the client connects again, drawing the same local port %d", s.oldPort)
	c2, sc2, err := w.establish(s.ln)
	if err != nil {
		return err
	}
	s.newPort = c2.LocalPort()
	if s.newPort == s.oldPort {
		r.say("port %d is free: the new connection has the old one's 4-tuple; new ISN = old ISN + %d (the ISN clock moved little)", s.newPort, c2.ISS()-s.oldISS)
	} else {
		r.say("the 4-tuple with port %d is held by TIME-WAIT: the stack will not reuse it and picks port %d", s.oldPort, s.newPort)
	}
	if s.oldReq.Payload == nil {
		return errors.New("the request was not captured")
	}
	o := s.oldReq
	old := record.Build(netip.AddrPortFrom(r.fam.client, s.oldPort), r.fam.server, o.Seq, o.Ack, o.Flags, o.Payload)
	r.inject(true, old, r.T("the old copy of the first connection's request arrives now, late (within MSL)"))
	w.settle()
	r.say("the client sends its new request")
	if _, err := c2.TryWrite(s.newReq); err != nil {
		return err
	}
	w.run(time.Second)
	buf := make([]byte, 4096)
	for {
		n, err := sc2.TryRead(buf)
		s.got = append(s.got, buf[:n]...)
		if err != nil || n == 0 {
			break
		}
	}
	r.say("the server's new connection read %d bytes: %q", len(s.got), labShort(s.got))
	r.say("virtual time runs on until the first connection's TIME-WAIT is over")
	w.until(3*labMSL, func() bool {
		_, _, ok := r.rec.StateAt(false, s.oldPort, tcp.Closed)
		return ok
	})
	return nil
}

// claims checks the story.
func (s *timeWait) claims() {
	r := s.r
	cliEnd, _, _ := r.rec.StateAt(false, s.oldPort, tcp.Closed)
	pk := r.rec.Packets()
	r.check(s.droppedLast, "the client's last ACK (of the server's FIN) is lost")
	fins := record.Where(pk, func(p record.Pkt) bool { return !p.ToServer && p.Has(header.FlagFIN) && p.Seq == s.srvFIN })
	r.check(s.haveFIN && len(fins) >= 2, "the server, still in LAST-ACK, sends its FIN seq=w again (%d times in all)", len(fins))
	reack := record.Where(pk, func(p record.Pkt) bool {
		return p.ToServer && p.Is(header.FlagACK) && p.Ack == s.srvFIN+1 && !p.Dropped
	})
	rst := record.Where(pk, func(p record.Pkt) bool {
		return p.ToServer && p.Has(header.FlagRST) && p.DstPort == labPort && p.SrcPort == s.oldPort
	})
	r.check(len(reack) >= 1 && len(rst) == 0, "the client, in TIME-WAIT, acknowledges the repeated FIN again (ack=w+1), no RST")
	r.check(s.srvEnd.To == tcp.Closed && !strings.Contains(s.srvEnd.Cause, "RST"), "the server's connection ends normally on that ACK, not by a reset (%s)", s.srvEnd.Cause)
	r.check(!s.fin2At.IsZero() && cliEnd.Sub(s.fin2At) == 2*labMSL, "TIME-WAIT restarts at the repeated FIN: the client is CLOSED 2*MSL after it (%v)", cliEnd.Sub(s.fin2At))
	r.check(s.newPort != s.oldPort, "while TIME-WAIT holds the 4-tuple, a new connection cannot use it")
	r.check(bytes.Equal(s.got, s.newReq), "the old segment does not reach the new connection: the server reads exactly the new request")
}
