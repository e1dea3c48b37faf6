package lab

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"syscall"
	"time"

	"ustack/internal/record"
	"ustack/stack"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// labMSL is the in-memory labs' MSL: Linux's TIME-WAIT of 60 s costs
// nothing in virtual time.
const labMSL = 30 * time.Second

func arrowJoin(s []string) string { return strings.Join(s, " → ") }

// establish opens a connection from the client to the server's listener and
// waits until both ends have it.
func (w *labVWorld) establish(ln *stack.Listener) (c clientConn, sc *stack.Conn, err error) {
	c, err = w.dial()
	if err != nil {
		return nil, nil, err
	}
	ok := w.until(10*time.Second, func() bool {
		if sc == nil {
			sc = ln.TryAccept()
		}
		return sc != nil && c.State() == tcp.Established
	})
	if !ok {
		return nil, nil, errors.New("the connection was not established")
	}
	return c, sc, nil
}

// ladderHeader names the columns of an in-memory lab.
func (r *labRun) ladderHeader() {
	client := "client (ustack " + r.fam.client.String() + ")"
	if r.vw != nil && r.vw.cliPeer != nil {
		client = "client (the lab's raw TCP " + r.fam.client.String() + ", no TIME-WAIT)"
	}
	r.l.Header(client, "server (ustack "+r.fam.server.String()+")")
}

// labHandshake: SYN seq=x; SYN+ACK seq=y ack=x+1; ACK ack=y+1.
func labHandshake(r *labRun) error {
	w, ln, err := r.vListen(labVConfig{cliSeed: 1, srvSeed: 1})
	if err != nil {
		return err
	}
	defer w.close()
	r.ladderHeader()
	r.say("the server listens on port %d (passive open): it waits in LISTEN", labPort)
	r.say("the client opens (active open): it picks its initial sequence number x and sends SYN seq=x")
	c, err := w.dial()
	if err != nil {
		return err
	}
	x := c.ISS()
	r.say("the server answers SYN+ACK: its own initial sequence number y, and ack=x+1 (the SYN takes one number)")
	w.pollServer()
	r.say("the client acknowledges y with ack=y+1: its side is ESTABLISHED")
	w.pollClient()
	r.say("the ACK arrives: the server's side is ESTABLISHED too")
	w.pollServer()
	w.settle()
	sc := ln.TryAccept()
	if sc == nil {
		return errors.New("the server accepted no connection")
	}
	y := uint32(sc.Info().ISS)
	r.say("x = %d, y = %d (the ladder shows sequence numbers relative to each side's ISN)", x, y)
	pk := r.rec.Packets()
	r.check(len(pk) >= 1 && pk[0].ToServer && pk[0].Is(header.FlagSYN) && pk[0].Seq == x,
		"the client's SYN carries seq=x=%d and no ACK", x)
	r.check(len(pk) >= 2 && !pk[1].ToServer && pk[1].Is(header.FlagSYN|header.FlagACK) && pk[1].Seq == y && pk[1].Ack == x+1,
		"the server's SYN+ACK carries seq=y=%d and ack=x+1=%d", y, x+1)
	r.check(len(pk) >= 3 && pk[2].ToServer && pk[2].Is(header.FlagACK) && pk[2].Seq == x+1 && pk[2].Ack == y+1,
		"the client's ACK carries seq=x+1=%d and ack=y+1=%d", x+1, y+1)
	r.check(len(pk) == 3, "three segments, no more, open the connection (%d seen)", len(pk))
	cs, ss := r.rec.States(false, 0), r.rec.States(true, 0)
	r.check(record.HasRun(cs, "CLOSED", "SYN-SENT", "ESTABLISHED"), "client: CLOSED → SYN-SENT → ESTABLISHED (%s)", arrowJoin(cs))
	r.check(record.HasRun(ss, "LISTEN", "SYN-RECEIVED", "ESTABLISHED"), "server: LISTEN → SYN-RECEIVED → ESTABLISHED (%s)", arrowJoin(ss))
	return nil
}

// labClose: the client closes first (active close), the server goes on
// sending while half-closed, then closes; TIME-WAIT holds the client 2*MSL.
func labClose(r *labRun) error {
	cfg := tcp.Config{MSL: labMSL}
	w, ln, err := r.vListen(labVConfig{cli: cfg, srv: cfg, cliSeed: 2, srvSeed: 2})
	if err != nil {
		return err
	}
	defer w.close()
	r.ladderHeader()
	c, sc, err := w.establish(ln)
	if err != nil {
		return err
	}
	u := c.SndNxt()
	r.say("the client has nothing more to send: it closes its side (active close) with FIN seq=u")
	c.CloseWrite()
	r.say("the server acknowledges the FIN with ack=u+1 and tells its application (end of file): CLOSE-WAIT")
	w.pollServer()
	w.pollClient()
	r.say("half-closed: the client can no longer send, but the server still can")
	tail := []byte("the rest of the reply, sent while half-closed\n")
	if _, err := sc.TryWrite(tail); err != nil {
		return err
	}
	w.run(100 * time.Millisecond)
	got := make([]byte, 200)
	n, _ := c.TryRead(got)
	got = got[:n]
	r.say("the client read %q", got)
	wseq := uint32(sc.Info().SndNxt)
	r.say("the server is done too: it closes with FIN seq=w and waits for the last ACK (LAST-ACK)")
	sc.Close()
	r.say("the client acknowledges it: ack=w+1, seq=u+1 (its FIN took one sequence number), and enters TIME-WAIT")
	w.pollClient()
	r.say("the last ACK arrives: the server's connection is CLOSED")
	w.pollServer()
	c.Close()
	r.say("the client waits 2*MSL = %v in TIME-WAIT before it is CLOSED", 2*labMSL)
	tw, _, _ := r.rec.StateAt(false, 0, tcp.TimeWait)
	w.until(3*labMSL, func() bool { return w.clientConns() == 0 })
	r.say("the client's connection is CLOSED")

	pk := r.rec.Packets()
	fin1, ok1 := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.Has(header.FlagFIN) })
	r.check(ok1 && fin1.Seq == u, "the client's FIN carries seq=u=%d", u)
	ack1, ok2 := record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.Is(header.FlagACK) && p.Ack == u+1 })
	r.check(ok2 && len(ack1.Payload) == 0, "the server acknowledges it with ack=u+1=%d", u+1)
	r.check(bytes.Equal(got, tail), "half-closed, the server still sent %d bytes and the client read them", len(tail))
	fin2, ok3 := record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.Has(header.FlagFIN) })
	r.check(ok3 && fin2.Seq == wseq, "the server's FIN carries seq=w=%d", wseq)
	last, ok4 := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.Is(header.FlagACK) && p.Ack == wseq+1 })
	r.check(ok4 && last.Seq == u+1, "the client's last ACK carries ack=w+1=%d and seq=u+1=%d: the FIN consumed a sequence number", wseq+1, u+1)
	cs, ss := r.rec.States(false, 0), r.rec.States(true, 0)
	r.check(record.HasRun(cs, "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"),
		"client (active close): ESTABLISHED → FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT → CLOSED (%s)", arrowJoin(cs))
	r.check(record.HasRun(ss, "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"),
		"server (passive close): ESTABLISHED → CLOSE-WAIT → LAST-ACK → CLOSED (%s)", arrowJoin(ss))
	sClosed, _, okS := r.rec.StateAt(true, 0, tcp.Closed)
	cClosed, _, okC := r.rec.StateAt(false, 0, tcp.Closed)
	r.check(okS && okC && sClosed.Before(cClosed), "the passive side (server) reaches CLOSED first")
	r.check(okC && cClosed.Sub(tw) == 2*labMSL, "the client stays in TIME-WAIT for 2*MSL = %v (%v)", 2*labMSL, cClosed.Sub(tw))
	return nil
}

// labPortSeed is a seed of labRand with which a stack's first two dials
// draw the same ephemeral port (checked, and searched for if the stack's
// port choice changed), over IPv4 and over IPv6. The stack has no bind():
// this is how the time-wait lab's client comes back on the same 4-tuple.
const labPortSeed = 18436

func labSamePortSeed(fam labFamily) (uint64, error) {
	try := func(seed uint64) bool {
		a, _ := link.Pipe(1500)
		st, err := stack.New(a, stack.Options{Addr: fam.client, Rand: labRand(seed), Manual: true})
		if err != nil {
			return false
		}
		defer st.Close()
		c1, err := st.DialTCPAsync(fam.server, tcp.Config{})
		if err != nil {
			return false
		}
		p1 := c1.ID().Local.Port()
		c1.Abort()
		c2, err := st.DialTCPAsync(fam.server, tcp.Config{})
		return err == nil && c2.ID().Local.Port() == p1
	}
	if try(labPortSeed) {
		return labPortSeed, nil
	}
	for s := uint64(1); s < 2_000_000; s++ {
		if try(s) {
			return s, nil
		}
	}
	return 0, errors.New("no seed gives the same port twice")
}

func labShort(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// Keepalive settings of the in-memory lab (RFC 1122 defaults are 2 h, 75 s
// and 10 probes; virtual time would not mind, the ladder would).
const (
	labKeepIdle     = 10 * time.Second
	labKeepInterval = 5 * time.Second
	labKeepCount    = 3
)

// labKeepalive: the server probes an idle client; a live one answers and
// the connection survives; a dead one does not and after count probes the
// connection is closed.
func labKeepalive(r *labRun) error {
	w, ln, err := r.vListen(labVConfig{cliSeed: 5, srvSeed: 5})
	if err != nil {
		return err
	}
	defer w.close()
	r.ladderHeader()
	_, sc, err := w.establish(ln)
	if err != nil {
		return err
	}
	if err := sc.SetKeepAliveConfig(labKeepConfig()); err != nil {
		return err
	}
	on := w.clk.Now()
	r.say("the server turns keepalive on: idle %v, then a probe every %v, at most %d unanswered probes", labKeepIdle, labKeepInterval, labKeepCount)
	r.say("nobody sends anything; each probe is an ACK with seq=SND.NXT−1, a byte already acknowledged, so the peer must answer")
	w.run(2*labKeepIdle + labKeepInterval)
	alive := sc.State()
	r.say("the client answered every probe: the connection is still %s", alive)
	dead := w.clk.Now()
	r.say("now the client's host goes dead without a word (switched off): nothing it receives is answered")
	w.cliDown = true
	w.until(10*labKeepIdle, func() bool { return sc.State() == tcp.Closed })
	_, rerr := sc.TryRead(make([]byte, 1))
	r.say("the server gives up: %v", rerr)

	pk := r.rec.Packets()
	sndNxt := uint32(sc.Info().SndNxt)
	isProbe := func(p record.Pkt) bool {
		return !p.ToServer && p.Is(header.FlagACK) && len(p.Payload) == 0 && p.Seq == sndNxt-1
	}
	live := record.Where(pk, func(p record.Pkt) bool { return isProbe(p) && p.T.Before(dead) })
	deadP := record.Where(pk, func(p record.Pkt) bool { return isProbe(p) && !p.T.Before(dead) })
	r.check(len(live) >= 1 && live[0].T.Sub(on) == labKeepIdle, "the first probe goes out after the idle time, %v", labKeepIdle)
	r.check(len(live)+len(deadP) > 0, "a probe is an ACK with seq=SND.NXT−1 and no data")
	answered := record.Where(pk, func(p record.Pkt) bool {
		return p.ToServer && p.Is(header.FlagACK) && p.T.Before(dead) && p.T.After(on)
	})
	r.check(len(live) >= 2 && len(answered) == len(live) && alive == tcp.Established,
		"a live peer answers every probe (%d of %d) and its connection survives (%s)", len(answered), len(live), alive)
	spaced := len(deadP) >= 2
	for i := 1; i < len(deadP); i++ {
		spaced = spaced && deadP[i].T.Sub(deadP[i-1].T) == labKeepInterval
	}
	r.check(spaced, "unanswered probes repeat every interval, %v", labKeepInterval)
	r.check(len(deadP) == labKeepCount, "a dead peer gets count=%d probes (%d sent)", labKeepCount, len(deadP))
	end, _, ok := r.rec.StateAt(true, 0, tcp.Closed)
	r.check(ok && len(deadP) > 0 && end.Sub(deadP[len(deadP)-1].T) == labKeepInterval && errors.Is(rerr, syscall.ETIMEDOUT),
		"one interval after the last probe the connection is closed with ETIMEDOUT")
	return nil
}

func labKeepConfig() net.KeepAliveConfig {
	return net.KeepAliveConfig{Enable: true, Idle: labKeepIdle, Interval: labKeepInterval, Count: labKeepCount}
}
