package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"ustack/internal/record"
	"ustack/internal/waitfor"
	"ustack/stack"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
	"ustack/tun"
)

// labTWorld is the --tun world: the server on ustack behind a TUN in a
// fresh network namespace (198.18.0.0/30 only, and with -6 2001:2::/64),
// the client on the kernel's TCP inside that namespace, real time.
type labTWorld struct {
	r   *labRun
	ns  *tun.Namespace
	srv *stack.Stack
	tap *labTap
	raw *peer // the lab's raw two-way server, if any
}

// labTUNMSL: TIME-WAIT lasts 2*MSL = 1 s in the --tun labs.
const labTUNMSL = 500 * time.Millisecond

// newTWorld makes the namespace, the TUN and the server stack. decideOut
// judges the server's packets (as in memory); dropIn, if set, drops
// packets from the kernel before the stack sees them. The returned
// function removes everything, the namespace included; call it even on
// failure.
func (r *labRun) newTWorld(cfg tcp.Config, decideOut func(p record.Pkt) link.Action, dropIn func(p record.Pkt) bool) (*labTWorld, func(), error) {
	return r.newTWorldWith(cfg, nil, decideOut, dropIn)
}

// newTWorldWith is newTWorld with the server stack's other options
// (Backlog, NoSYNCookies) set by so, if not nil.
func (r *labRun) newTWorldWith(cfg tcp.Config, so func(o *stack.Options), decideOut func(p record.Pkt) link.Action, dropIn func(p record.Pkt) bool) (*labTWorld, func(), error) {
	ns, err := tun.NewNamespace("lab")
	if err != nil {
		return nil, func() {}, err
	}
	w := &labTWorld{r: r, ns: ns}
	r.tw = w
	cleanup := func() { ns.Close() }
	dev, err := r.openTUN(ns)
	if err != nil {
		return nil, cleanup, err
	}
	r.say("network namespace %s: the kernel at %v, ustack at %v behind TUN ustack0", ns.Name(), r.fam.client, r.fam.server.Addr())
	r.newLadder(time.Now)
	r.l.InferClient()
	tap := &labTap{r: r, reads: true, decide: decideOut}
	w.tap = tap
	rule := func(dir link.Direction, pkt []byte) link.Action {
		if dir == link.Out {
			return tap.verdict
		}
		if dropIn == nil {
			return link.Pass
		}
		p, ok := record.Parse(pkt)
		if !ok || !dropIn(p) {
			return link.Pass
		}
		p.ToServer, p.Dropped, p.T = true, true, time.Now()
		r.rec.AddPkt(p)
		r.l.Packet(pkt, true, true)
		r.say("✗ lost on the way (the lab drops exactly this segment)")
		return link.Drop
	}
	tap.Endpoint = link.Impair(dev, link.ImpairConfig{Rule: rule})
	if cfg.MSL == 0 {
		cfg.MSL = labTUNMSL
	}
	opts := stack.Options{Addr: r.fam.server.Addr(), TCP: cfg, Trace: r.trace}
	if so != nil {
		so(&opts)
	}
	w.srv, err = stack.New(tap, opts)
	if err != nil {
		tap.Close()
		return nil, cleanup, err
	}
	return w, func() { w.srv.Close(); ns.Close() }, nil
}

// tunConfig is the TUN device of a --tun lab: the kernel's side takes the
// client's address, IPv4's always and IPv6's too with -6 (as ustack demo
// -6 does), without offloads so that the ladder sees every segment.
func (r *labRun) tunConfig() tun.Config {
	cfg := tun.Config{Name: "ustack0", MTU: 1500, HostAddr: netip.PrefixFrom(labIPv4.client, labIPv4.hostLen), NoOffload: true}
	if r.fam.v6 {
		cfg.HostAddr6 = netip.PrefixFrom(r.fam.client, r.fam.hostLen)
	}
	return cfg
}

// openTUN opens the lab's TUN device in ns; a kernel without IPv6 fails
// -6, saying how to go on.
func (r *labRun) openTUN(ns *tun.Namespace) (*tun.Device, error) {
	dev, err := ns.OpenTUN(r.tunConfig())
	if errors.Is(err, tun.ErrIPv6Disabled) {
		return nil, fmt.Errorf("%w (run the lab without -6 for IPv4)", err)
	}
	return dev, err
}

// rawServer diverts the packets to port to a raw two-way peer the lab
// builds (made on first use).
func (w *labTWorld) rawServer(port uint16) *peer { return rawServerOn(w.r, w.tap, &w.raw, port) }

// dial opens a kernel TCP connection from inside the namespace; kernel
// keepalive is off so that only the lab's probes are seen.
func (w *labTWorld) dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := w.ns.Do(func() error {
		d := net.Dialer{KeepAlive: -1}
		var err error
		network := "tcp4"
		if addr.Addr().Is6() {
			network = "tcp6"
		}
		c, err = d.DialContext(ctx, network, addr.String())
		return err
	})
	return c, err
}

// sendRaw sends an IP packet of the run's family (with link.Headroom in
// front) from inside the namespace through a raw socket: it enters ustack
// as if from the wire. An IPPROTO_RAW socket takes the packet's own
// header, for IPv4 and for IPv6 alike (Linux's raw(7), and ipv6/raw.c).
func (w *labTWorld) sendRaw(pkt []byte) error {
	srv := w.r.fam.server.Addr()
	return w.ns.Do(func() error {
		family := syscall.AF_INET6
		var to syscall.Sockaddr = &syscall.SockaddrInet6{Addr: srv.As16()}
		if srv.Is4() {
			family, to = syscall.AF_INET, &syscall.SockaddrInet4{Addr: srv.As4()}
		}
		fd, err := syscall.Socket(family, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		return syscall.Sendto(fd, pkt[link.Headroom:], 0, to)
	})
}

// kernelTCP lists the kernel's TCP sockets in the namespace in a state
// (ss -tan state ...), one line each.
func (w *labTWorld) kernelTCP(state string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := w.ns.Command(ctx, "ss", "-Htan", "state", state).Output()
	if err != nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
	}
	return lines
}

func (r *labRun) tunHeader() {
	r.l.Header("client (kernel "+r.fam.client.String()+")", "server (ustack "+r.fam.server.String()+")")
}

// tunListen makes the --tun world (see newTWorld) with the server
// listening, and draws the ladder's column titles.
func (r *labRun) tunListen(cfg tcp.Config, decideOut func(p record.Pkt) link.Action, dropIn func(p record.Pkt) bool) (*labTWorld, *stack.Listener, func(), error) {
	w, done, err := r.newTWorld(cfg, decideOut, dropIn)
	if err != nil {
		return nil, nil, done, err
	}
	ln, err := w.srv.ListenTCP(labPort)
	if err != nil {
		return nil, nil, done, err
	}
	r.tunHeader()
	return w, ln, done, nil
}

// tunConnected is tunListen and connect in one; done closes the
// connection too.
func (r *labRun) tunConnected(cfg tcp.Config, dropIn func(p record.Pkt) bool) (*labTWorld, net.Conn, *stack.Conn, func(), error) {
	w, ln, done, err := r.tunListen(cfg, nil, dropIn)
	if err != nil {
		return nil, nil, nil, done, err
	}
	c, sc, err := w.connect(ln)
	if err != nil {
		return nil, nil, nil, done, err
	}
	return w, c, sc, func() { c.Close(); done() }, nil
}

// connect opens a kernel connection to the server and accepts it.
func (w *labTWorld) connect(ln *stack.Listener) (net.Conn, *stack.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := w.dial(ctx, w.r.fam.server)
	if err != nil {
		return nil, nil, err
	}
	sc, err := labAccept(ln, 5*time.Second)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, sc, nil
}

// labAccept accepts one connection or gives up.
func labAccept(ln *stack.Listener, d time.Duration) (*stack.Conn, error) {
	type res struct {
		c   *stack.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := ln.AcceptTCP(); ch <- res{c, err} }()
	select {
	case x := <-ch:
		return x.c, x.err
	case <-time.After(d):
		ln.Close()
		return nil, errors.New("no connection accepted")
	}
}

func within(d, want, tol time.Duration) bool { return d >= want-tol && d <= want+tol }

func labHandshakeTUN(r *labRun) error {
	w, ln, done, err := r.tunListen(tcp.Config{}, nil, nil)
	defer done()
	if err != nil {
		return err
	}
	r.say("the server (ustack) listens on port %d; the kernel connects to it (its states, marked ~, are inferred from the packets)", labPort)
	c, sc, err := w.connect(ln)
	if err != nil {
		return err
	}
	defer c.Close()
	y := uint32(sc.Info().ISS)
	pk := r.rec.WaitPkts(2*time.Second, record.AtLeast(3))
	if len(pk) < 3 {
		return fmt.Errorf("only %d segments seen", len(pk))
	}
	x := pk[0].Seq
	r.say("x = %d (the kernel's ISN), y = %d (ustack's)", x, y)
	r.check(pk[0].ToServer && pk[0].Is(header.FlagSYN), "the client's SYN carries seq=x=%d and no ACK", x)
	r.check(!pk[1].ToServer && pk[1].Is(header.FlagSYN|header.FlagACK) && pk[1].Seq == y && pk[1].Ack == x+1,
		"the server's SYN+ACK carries seq=y=%d and ack=x+1=%d", y, x+1)
	r.check(pk[2].ToServer && pk[2].Is(header.FlagACK) && pk[2].Seq == x+1 && pk[2].Ack == y+1,
		"the client's ACK carries seq=x+1=%d and ack=y+1=%d", x+1, y+1)
	r.check(len(pk) == 3, "three segments, no more, open the connection (%d seen)", len(pk))
	ss := r.rec.States(true, 0)
	r.check(record.HasRun(ss, "LISTEN", "SYN-RECEIVED", "ESTABLISHED"), "server: LISTEN → SYN-RECEIVED → ESTABLISHED (%s)", arrowJoin(ss))
	return nil
}

func labCloseTUN(r *labRun) error {
	w, c, sc, done, err := r.tunConnected(tcp.Config{}, nil)
	defer done()
	if err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	sc.SetDeadline(time.Now().Add(5 * time.Second))
	r.rec.WaitPkts(2*time.Second, record.AtLeast(3)) // the handshake's last ACK drawn
	r.say("the client (kernel) has nothing more to send: shutdown(SHUT_WR) sends FIN seq=u (active close)")
	c.(*net.TCPConn).CloseWrite()
	if n, err := sc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		return fmt.Errorf("server read %d, %v; want EOF", n, err)
	}
	// The server's ACK of the client's FIN is drawn before the narration goes on.
	finAcked := func(pk []record.Pkt) bool {
		fin, ok := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.Has(header.FlagFIN) })
		_, acked := record.First(pk, func(p record.Pkt) bool { return ok && !p.ToServer && p.Ack == fin.Seq+1 })
		return acked
	}
	r.rec.WaitPkts(2*time.Second, finAcked)
	r.say("half-closed: the server still sends")
	tail := []byte("the rest of the reply, sent while half-closed\n")
	sc.Write(tail)
	got := make([]byte, len(tail))
	io.ReadFull(c, got)
	wseq := uint32(sc.Info().SndNxt)
	r.rec.WaitPkts(2*time.Second, record.Any(func(p record.Pkt) bool { return p.ToServer && p.Ack == wseq })) // the tail acknowledged
	r.say("the server closes: FIN seq=w, LAST-ACK")
	sc.Close()
	c.Read(make([]byte, 1)) // EOF
	waitfor.Within(3*time.Second, func() bool { return w.srv.Stats().TCPConns == 0 })
	tw := w.kernelTCP("time-wait")
	r.say("the kernel's socket: %s (Linux keeps TIME-WAIT 60 s)", strings.Join(tw, "; "))

	pk := r.rec.Packets()
	fin1, ok1 := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.Has(header.FlagFIN) })
	u := fin1.Seq
	r.check(ok1, "the client's FIN carries seq=u=%d", u)
	_, ok2 := record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.Is(header.FlagACK) && p.Ack == u+1 })
	r.check(ok2, "the server acknowledges it with ack=u+1=%d", u+1)
	r.check(bytes.Equal(got, tail), "half-closed, the server still sent %d bytes and the client read them", len(tail))
	fin2, ok3 := record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.Has(header.FlagFIN) })
	r.check(ok3 && fin2.Seq == wseq, "the server's FIN carries seq=w=%d", wseq)
	last, ok4 := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.Is(header.FlagACK) && p.Ack == wseq+1 })
	r.check(ok4 && last.Seq == u+1, "the client's last ACK carries ack=w+1=%d and seq=u+1=%d: the FIN consumed a sequence number", wseq+1, u+1)
	ss := r.rec.States(true, 0)
	r.check(record.HasRun(ss, "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"),
		"server (passive close): ESTABLISHED → CLOSE-WAIT → LAST-ACK → CLOSED (%s)", arrowJoin(ss))
	r.check(len(tw) == 1 && strings.Contains(tw[0], r.fam.server.String()),
		"the passive side (server) is CLOSED while the active side (kernel) is still in TIME-WAIT")
	return nil
}

func labTimeWaitTUN(r *labRun) error {
	var kFIN uint32
	var haveFIN, dropped bool
	w, ln, done, err := r.tunListen(tcp.Config{MSL: labTUNMSL},
		func(p record.Pkt) link.Action {
			if haveFIN && !dropped && p.Is(header.FlagACK) && p.Ack == kFIN+1 {
				dropped = true
				return link.Drop
			}
			return link.Pass
		},
		func(p record.Pkt) bool {
			if p.Has(header.FlagFIN) && !haveFIN {
				kFIN, haveFIN = p.Seq, true
			}
			return false
		})
	defer done()
	if err != nil {
		return err
	}
	r.say("here the server (ustack) closes first, so that the TIME-WAIT is ustack's; 2*MSL = %v", 2*labTUNMSL)
	c, sc, err := w.connect(ln)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc.Write([]byte("HTTP/1.0 200 OK\r\n\r\nbye\n"))
	sc.Close()
	io.ReadAll(c)
	r.say("the kernel read the reply and EOF; it closes too")
	c.Close()
	waitfor.Within(10*time.Second, func() bool { return w.srv.Stats().TCPConns == 0 })
	cliEnd, _, _ := r.rec.StateAt(true, 0, tcp.Closed)
	pk := r.rec.Packets()
	fins := record.Where(pk, func(p record.Pkt) bool { return p.ToServer && p.Has(header.FlagFIN) })
	reack := record.Where(pk, func(p record.Pkt) bool { return !p.ToServer && p.Is(header.FlagACK) && p.Ack == kFIN+1 && !p.Dropped })
	rst := record.Where(pk, func(p record.Pkt) bool { return p.Has(header.FlagRST) })
	r.check(dropped, "the server's last ACK (of the kernel's FIN) is lost")
	r.check(len(fins) >= 2 && fins[1].Seq == kFIN, "the kernel, still in LAST-ACK, sends its FIN seq=w again (%d times in all)", len(fins))
	r.check(len(reack) >= 1 && len(rst) == 0, "the server, in TIME-WAIT, acknowledges the repeated FIN again (ack=w+1), no RST")
	var d time.Duration
	if len(fins) >= 2 {
		d = cliEnd.Sub(fins[len(fins)-1].T)
	}
	r.check(within(d, 2*labTUNMSL, 100*time.Millisecond), "TIME-WAIT restarts at the repeated FIN: the server is CLOSED 2*MSL after it (%v)", d.Round(time.Millisecond))
	r.check(len(w.kernelTCP("last-ack")) == 0, "the kernel's connection is gone: it ended on that ACK")
	r.say("(the old-segment half of this lab needs two ustack ends: run it without --tun)")
	return nil
}

// --tun keepalive settings (real time).
const (
	labTUNKeepIdle     = time.Second
	labTUNKeepInterval = 500 * time.Millisecond
)

func labKeepaliveTUN(r *labRun) error {
	var dead bool
	_, _, sc, done, err := r.tunConnected(tcp.Config{}, func(p record.Pkt) bool { return dead })
	defer done()
	if err != nil {
		return err
	}
	r.rec.WaitPkts(2*time.Second, record.AtLeast(3)) // the handshake is over before the idle time starts
	on := time.Now()
	sndNxt := uint32(sc.Info().SndNxt)
	isProbe := func(p record.Pkt) bool {
		return !p.ToServer && p.Is(header.FlagACK) && len(p.Payload) == 0 && p.Seq == sndNxt-1
	}
	sc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: labTUNKeepIdle, Interval: labTUNKeepInterval, Count: labKeepCount})
	r.say("the server turns keepalive on: idle %v, then a probe every %v, at most %d unanswered probes", labTUNKeepIdle, labTUNKeepInterval, labKeepCount)
	// Wait for two probes, each answered by the kernel.
	r.rec.WaitPkts(3*labTUNKeepIdle+2*labTUNKeepInterval, func(pk []record.Pkt) bool {
		probes := record.Where(pk, isProbe)
		if len(probes) < 2 {
			return false
		}
		_, ok := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.Is(header.FlagACK) && p.T.After(probes[1].T) })
		return ok
	})
	alive := sc.State()
	r.say("the kernel answered every probe: the connection is still %s", alive)
	r.say("now the client's host is cut off: the lab drops everything it sends")
	deadAt := time.Now()
	dead = true
	sc.SetReadDeadline(time.Now().Add(4 * time.Second))
	_, rerr := sc.Read(make([]byte, 1))
	r.say("the server gives up: %v", rerr)
	pk := r.rec.WaitPkts(time.Second, record.Any(func(p record.Pkt) bool { return !p.ToServer && p.Has(header.FlagRST) }))
	live := record.Where(pk, func(p record.Pkt) bool { return isProbe(p) && p.T.Before(deadAt) })
	deadP := record.Where(pk, func(p record.Pkt) bool { return isProbe(p) && p.T.After(deadAt) })
	tol := 150 * time.Millisecond // real timers on a shared machine
	r.check(len(live) >= 1 && within(live[0].T.Sub(on), labTUNKeepIdle, tol), "the first probe goes out after the idle time, %v", labTUNKeepIdle)
	answered := record.Where(pk, func(p record.Pkt) bool {
		return p.ToServer && p.Is(header.FlagACK) && !p.Dropped && p.T.After(on) && p.T.Before(deadAt)
	})
	r.check(len(live) >= 2 && len(answered) >= len(live) && alive == tcp.Established,
		"a live peer answers every probe (%d of %d) and its connection survives (%s)", len(answered), len(live), alive)
	spaced := len(deadP) >= 2
	for i := 1; i < len(deadP); i++ {
		spaced = spaced && within(deadP[i].T.Sub(deadP[i-1].T), labTUNKeepInterval, tol)
	}
	r.check(spaced, "unanswered probes repeat every interval, %v", labTUNKeepInterval)
	r.check(len(deadP) == labKeepCount, "a dead peer gets count=%d probes (%d sent)", labKeepCount, len(deadP))
	r.check(errors.Is(rerr, syscall.ETIMEDOUT), "after them the connection is closed with ETIMEDOUT")
	return nil
}

// tlsEnvTUN: the TLS labs with the client's TCP in the kernel.
func (r *labRun) tlsEnvTUN() (*labTLSEnv, func(), error) { return r.tlsEnvTUNWith(0, tcp.Config{}) }

// tlsEnvTUNWith is tlsEnvTUN with the server's packets held delay in the
// network and the server's stack on cfg.
func (r *labRun) tlsEnvTUNWith(delay time.Duration, cfg tcp.Config) (*labTLSEnv, func(), error) {
	r.setQuiet(true)
	var hold func(record.Pkt) link.Action
	if delay > 0 {
		hold = func(record.Pkt) link.Action { return link.Delay(delay) }
	}
	w, done, err := r.newTWorld(cfg, hold, nil)
	if err != nil {
		return nil, done, err
	}
	ln, err := w.srv.ListenTCP(labPort)
	if err != nil {
		return nil, done, err
	}
	return &labTLSEnv{srv: w.srv, ln: ln, who: "kernel",
		dial: func(ctx context.Context) (net.Conn, error) { return w.dial(ctx, r.fam.server) }}, done, nil
}
