package lab

import (
	"encoding/binary"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"ustack/internal/record"
	"ustack/stack"
	"ustack/stack/clock"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// labFamily is the addresses of one family's labs: IPv4's in
// 198.18.0.0/15 (RFC 2544), IPv6's in 2001:2::/48 (RFC 5180 §8), the
// only ranges the labs use (docs/design.md "Network safety").
type labFamily struct {
	v6      bool
	client  netip.Addr     // the client (with --tun, the kernel's side of the TUN)
	server  netip.AddrPort // the server, on ustack
	router  netip.Addr     // the mss-mtu lab's router in the middle of the path
	spoofed netip.Prefix   // where the syn-flood lab's forged SYNs claim to come from: nobody
	other   netip.Addr     // the host the cert-check lab's wrong certificate names
	hostLen int            // the prefix length of the kernel's side of the TUN
}

var (
	labIPv4 = labFamily{
		client:  netip.MustParseAddr("198.18.0.1"),
		server:  netip.AddrPortFrom(netip.MustParseAddr("198.18.0.2"), labPort),
		router:  netip.MustParseAddr("198.18.0.254"),
		spoofed: netip.MustParsePrefix("198.19.0.0/16"),
		other:   netip.MustParseAddr("198.18.0.99"),
		hostLen: 30,
	}
	labIPv6 = labFamily{
		v6:      true,
		client:  netip.MustParseAddr("2001:2::1"),
		server:  netip.AddrPortFrom(netip.MustParseAddr("2001:2::2"), labPort),
		router:  netip.MustParseAddr("2001:2::fe"),
		spoofed: netip.MustParsePrefix("2001:2:0:13::/64"),
		other:   netip.MustParseAddr("2001:2::99"),
		hostLen: 64,
	}
)

// labPort is the server's port in either family.
const labPort = 80

// family is the addresses a run uses: IPv6's with Options.IPv6.
func (o Options) family() labFamily {
	if o.IPv6 {
		return labIPv6
	}
	return labIPv4
}

// ipHeader is the family's IP header without options: 20 bytes (IPv4),
// 40 (IPv6, RFC 8200 §3).
func (f labFamily) ipHeader() int {
	if f.v6 {
		return 40
	}
	return 20
}

// mss1500 is the MSS of a host on a 1500-byte link in the family: the
// MTU less the IP and TCP headers (RFC 9293 §3.7.1): 1460, or 1440.
func (f labFamily) mss1500() int { return 1500 - f.ipHeader() - 20 }

// host is the server's address as an HTTP Host header names it (an IPv6
// literal in brackets, RFC 3986 §3.2.2).
func (f labFamily) host() string {
	if f.v6 {
		return "[" + f.server.Addr().String() + "]"
	}
	return f.server.Addr().String()
}

// pick is s4 for an IPv4 run and s6 for an IPv6 one: the story's
// sentences where the families differ.
func (r *labRun) pick(s4, s6 string) string {
	if r.fam.v6 {
		return s6
	}
	return s4
}

// trace is the state-transition hook of the stacks and peers: record, then
// draw.
func (r *labRun) trace(e tcp.TraceEvent) {
	server := e.ID.Local.Addr() == r.fam.server.Addr()
	r.rec.AddState(record.State{T: e.Time, Server: server, ID: e.ID, From: e.From, To: e.To, Cause: e.Cause})
	switch {
	case r.l == nil:
	case r.isQuiet():
		r.l.Track(e) // the columns stay right for what is drawn later
	default:
		r.l.State(e)
	}
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
// With --break skip-time-wait the client is the lab's raw peer instead of
// the client stack; with --break two-way-handshake the stale-syn lab's
// server port is the lab's raw two-way peer.
type labVWorld struct {
	r        *labRun
	clk      *clock.Virtual
	cli, srv *stack.Stack
	cliPeer  *peer         // the client, if the lab builds it (skip-time-wait)
	srvPeer  *peer         // the server's raw two-way ports, if any
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
	cli, srv  tcp.Config
	cliSeed   uint64
	srvSeed   uint64
	cliDecide func(p record.Pkt) link.Action
	srvDecide func(p record.Pkt) link.Action
	srvOpts   func(o *stack.Options) // the server stack's other options (Backlog, NoSYNCookies), if set
	// cliOut and srvOut impair what each end sends (a fixed delay, a
	// bottleneck's rate and queue); cliMTU and srvMTU, if set, are the
	// MTUs the two stacks see (the pipe itself carries 1500).
	cliOut, srvOut link.Spec
	cliMTU, srvMTU int
}

// newVWorld builds the in-memory world and the ladder.
func (r *labRun) newVWorld(c labVConfig) (*labVWorld, error) {
	w := &labVWorld{r: r, clk: clock.NewVirtual()}
	r.vw = w
	r.newLadder(w.clk.Now)
	w.cliEnd, w.srvEnd = link.Pipe(1500)
	w.cliTap = &labTap{r: r, toServer: true, decide: c.cliDecide}
	w.srvTap = &labTap{r: r, toServer: false, decide: c.srvDecide}
	// A Rule makes link.Impair read the In direction in a real-time
	// goroutine; in virtual time the stacks must poll the pipe themselves,
	// so Impair gets a write-only view and the taps read the pipe.
	w.cliTap.Endpoint = link.Impair(withMTU(newLabWriteOnly(w.cliEnd), c.cliMTU), link.ImpairConfig{Clock: w.clk, Rule: w.cliTap.outRule, Out: c.cliOut})
	w.srvTap.Endpoint = link.Impair(withMTU(newLabWriteOnly(w.srvEnd), c.srvMTU), link.ImpairConfig{Clock: w.clk, Rule: w.srvTap.outRule, Out: c.srvOut})
	w.cliTap.raw, w.srvTap.raw = w.cliEnd, w.srvEnd
	so := stack.Options{Addr: r.fam.server.Addr(), Clock: w.clk, Rand: labRand(c.srvSeed + 1000), TCP: c.srv, Trace: r.trace, Manual: true}
	if c.srvOpts != nil {
		c.srvOpts(&so)
	}
	var err error
	w.srv, err = stack.New(w.srvTap, so)
	if err != nil {
		return nil, err
	}
	w.cli, err = stack.New(w.cliTap, stack.Options{Addr: r.fam.client, Clock: w.clk, Rand: labRand(c.cliSeed), TCP: c.cli, Trace: r.trace, Manual: true})
	if err != nil {
		w.srv.Close()
		return nil, err
	}
	if r.opts.Break == breakSkipTimeWait {
		w.cliPeer = newPeer(r, r.fam.client, w.cliTap, c.cliSeed)
	}
	return w, nil
}

// vListen makes the in-memory world with the server listening on its port.
func (r *labRun) vListen(c labVConfig) (*labVWorld, *stack.Listener, error) {
	w, err := r.newVWorld(c)
	if err != nil {
		return nil, nil, err
	}
	ln, err := w.srv.ListenTCP(labPort)
	if err != nil {
		w.close()
		return nil, nil, err
	}
	return w, ln, nil
}

// rawServer diverts the server's packets to port to a raw two-way peer
// the lab builds (made on first use).
func (w *labVWorld) rawServer(port uint16) *peer {
	return rawServerOn(w.r, w.srvTap, &w.srvPeer, port)
}

// rawServerOn makes *p, a raw two-way peer that takes the packets tap
// reads for its ports, on first use, and adds port to them.
func rawServerOn(r *labRun, tap *labTap, p **peer, port uint16) *peer {
	if *p == nil {
		*p = newPeer(r, r.fam.server.Addr(), tap, 4)
		tap.divert = (*p).divert
	}
	(*p).listen(port)
	return *p
}

func (w *labVWorld) close() {
	w.cli.Close()
	w.srv.Close()
}

// dial opens a connection from the client to the server (not waiting for
// it).
func (w *labVWorld) dial() (clientConn, error) {
	if w.cliPeer != nil {
		return w.cliPeer.dial(w.r.fam.server), nil
	}
	c, err := w.cli.DialTCPAsync(w.r.fam.server, w.cli.Options().TCP)
	if err != nil {
		return nil, err
	}
	return ustackConn{c}, nil
}

// pollClient lets the client take in what reached it.
func (w *labVWorld) pollClient() int {
	if w.cliPeer != nil {
		return w.cliPeer.poll()
	}
	n, _ := w.cli.Poll()
	return n
}

// pollServer lets the server take in what reached it.
func (w *labVWorld) pollServer() int {
	n, _ := w.srv.Poll()
	if w.srvPeer != nil {
		n += w.srvPeer.takeHandled()
	}
	return n
}

// clientConns is how many connections the client holds (TIME-WAIT
// included).
func (w *labVWorld) clientConns() int {
	if w.cliPeer != nil {
		return w.cliPeer.conns()
	}
	return w.cli.Stats().TCPConns
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
			n += w.pollClient()
		}
		if !w.srvDown {
			n += w.pollServer()
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
	p, _ := record.Parse(pkt[link.Headroom:])
	p.ToServer, p.T, p.Injected = toServer, r.now(), true
	r.rec.AddPkt(p)
	r.l.Inject(toServer, pkt[link.Headroom:])
	r.say("%s", what)
	if r.vw != nil {
		end := r.vw.srvEnd
		if toServer {
			end = r.vw.cliEnd
		}
		end.WriteBatch([][]byte{pkt}, link.Headroom)
	}
}

// clientConn is the client's end of an in-memory lab's connection: a
// ustack connection, or the lab's raw peer's.
type clientConn interface {
	State() tcp.State
	ISS() uint32
	SndNxt() uint32
	LocalPort() uint16
	TryWrite(b []byte) (int, error)
	TryRead(b []byte) (int, error)
	CloseWrite() error
	Close() error
}

// ustackConn is a ustack connection as a clientConn.
type ustackConn struct{ *stack.Conn }

func (c ustackConn) ISS() uint32       { return uint32(c.Info().ISS) }
func (c ustackConn) SndNxt() uint32    { return uint32(c.Info().SndNxt) }
func (c ustackConn) LocalPort() uint16 { return c.ID().Local.Port() }
