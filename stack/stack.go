// Package stack is ustack's socket layer: a Stack runs TCP and UDP over
// IPv4 and IPv6 for its addresses over a link.Endpoint and offers
// net.Conn, net.Listener and net.PacketConn. It owns the goroutines (a
// reader per queue of the link, timer callbacks), the per-connection locks, the clock and the
// link; the protocols themselves live in the packages below it (ipv4,
// ipv6, tcp, udp).
package stack

import (
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"ustack/stack/clock"
	"ustack/stack/counter"
	"ustack/stack/header"
	"ustack/stack/ipv4"
	"ustack/stack/ipv6"
	"ustack/stack/link"
	"ustack/stack/tcp"
	"ustack/stack/tcp/cc"
	"ustack/stack/udp"
)

// Options configure a Stack. One address, in Addr, Addrs or Prefixes, is
// required.
type Options struct {
	// Addr is the stack's own address: a shorthand for Addrs with one
	// address (it comes first when both are set).
	Addr netip.Addr
	// Addrs are the stack's addresses, IPv4 or IPv6 (Stack.AddAddr adds
	// more while it runs). The first is the primary one, which Stack.Addr
	// returns. An IPv6 address needs a link MTU of at least 1280 (RFC 8200
	// §5).
	Addrs []netip.Addr
	// Prefixes are more addresses, each with the length of its subnet as
	// `ip addr add 198.18.0.2/30` gives it (see Stack.AddPrefix).
	Prefixes []netip.Prefix
	// Clock drives every timer; clock.Real{} by default, clock.Virtual in tests.
	Clock clock.Clock
	// Rand seeds the ISN secret and ephemeral ports; crypto/rand by default.
	Rand io.Reader
	// TCP is the default configuration of every connection. MSS defaults
	// to the link MTU minus 40 (minus 60 on an IPv6 connection, whose MSS
	// is also held to that). New refuses a CC that cc.Lookup does not
	// know (the TCB itself would fall back to NewReno).
	TCP tcp.Config
	// Trace, if set, is called on every TCP state transition, under the
	// connection's lock: it must not block or call back into the stack.
	Trace func(tcp.TraceEvent)
	// Backlog bounds each listener's half-open and accept queues
	// (default 128).
	Backlog int
	// MaxConns bounds the number of connections (default 65536).
	MaxConns int
	// NoSYNCookies turns off SYN cookies (RFC 4987), which answer SYNs
	// statelessly once a listener's half-open queue is full.
	NoSYNCookies bool
	// ChallengeACKsPerSecond bounds challenge ACKs stack-wide (RFC 5961
	// §7; default 1000, as Linux's tcp_challenge_ack_limit was).
	ChallengeACKsPerSecond int
	// PMTUDiscovery is the path MTU discovery mode of every connection,
	// as Linux's IP_MTU_DISCOVER: want (the default: DF set, lowered by
	// ICMP "fragmentation needed", cleared below 552), do (DF always), dont
	// (DF clear, datagrams fragmented to the path MTU).
	// Conn.SetPMTUDiscovery overrides it for one connection. IPv6 has no
	// DF (RFC 8200 §5: only the source fragments): there TCP always follows
	// Packet Too Big, "do" refuses a UDP datagram over the path MTU
	// (EMSGSIZE, as Linux's IPV6_PMTUDISC_DO) and the other modes send it
	// in fragments.
	PMTUDiscovery ipv4.PMTUDisc
	// Manual runs no reader goroutine: the caller drives input with Poll
	// (the deterministic simulator does, over a link.Poller and a virtual
	// clock).
	Manual bool
	// NoOffload keeps the stack from using a link's offloads (a
	// link.Offloader's TSO, whole super-packets on read and checksum
	// offload): one packet per segment, every checksum computed and
	// verified here.
	NoOffload bool
}

// Stack is one TCP and UDP host over IPv4 and IPv6, of one or more
// addresses, on a link.
//
// Lock order. A goroutine that holds more than one of the stack's locks
// takes them in this order, never the reverse:
//
//	Stack.pollMu → Conn.mu → Listener.mu → Stack.mu → timerHeap.mu → lane.txMu
//
// Each lane (one per queue of the link, lane.go) has its own timerHeap.mu
// and txMu (one flush at a time writes a lane: lane.writing); no goroutine holds two lanes' locks of one kind at
// once (moving a connection's timer entry to its new lane's heap takes the
// old heap's lock, releases it, then takes the new one's; a timer fire
// flushes one lane after another).
//
// The paths that nest them: Poll processes input under pollMu, which locks
// each connection; under Conn.mu, the TCB's output queues packets on the
// connection's lane (txMu), afterLocked hands an established child to its
// listener (Listener.mu), reschedules the connection's timer
// (timerHeap.mu) and, once CLOSED, unregisters it (Stack.mu, then
// Listener.mu for the half-open count, one after the other); Conn.Write
// flushes under Conn.mu (txMu). Conn.lnIdx and Conn.thIdx, which
// lane a connection sends on and whose heap holds its timer entry, change
// only under Conn.mu.
// No path holds Stack.mu, Listener.mu or timerHeap.mu while it locks a
// connection: input, Close, Listener.Close and the timer's fire copy what
// they need and unlock first. The locks below these are leaves, taken last
// and never held while calling back into the stack: challengeLimiter.mu
// (under Conn.mu), the clock's (Virtual runs its callbacks unlocked),
// fragTimer.mu, connModes.mu and ended.mu (under Conn.mu), addrSet.mu, the IPv4
// and IPv6 layers' own (addresses, reassembly, path MTUs, ICMP rate limit), the UDP table's
// and each UDP endpoint's (package udp: never held while calling out),
// UDPConn.mu, and the link endpoint's (WriteBatch, called by the writing
// flush with no lock held, must not call into the stack).
type Stack struct {
	ep   link.Endpoint
	opts Options
	clk  clock.Clock
	ip   *ipv4.Layer
	ip6  *ipv6.Layer
	isn  *tcp.ISNGenerator
	jar  *tcp.CookieJar
	chal challengeLimiter
	mtu  int
	cnt  counters
	// ended sums the counters of ended connections (TCPTotals).
	ended endedStats

	addrs addrSet
	udp   *udp.Table

	icmpCnt *counter.Set[icmpEvent]
	frag    fragTimer
	modes   connModes

	mu        sync.RWMutex // guards conns, listeners; lock order above
	conns     map[connKey]*Conn
	listeners map[listenKey]*Listener
	portRand  *mrand.Rand

	// lanes are the link's queues: one, unless the link is a
	// link.MultiQueue with several (lane.go).
	lanes   []*lane
	readers sync.WaitGroup
	pool    sync.Pool
	bigPool sync.Pool // buffers for TSO units larger than the MTU

	// off is the link's offloads when the stack uses them (useOffload);
	// tsoMax is then the most TCP payload one unit may carry.
	off    link.Offloader
	tsoMax int

	pollMu    sync.Mutex // serialises Poll; the first lock of the order above
	pollBatch rxBatch

	closeOnce sync.Once
	closed    atomic.Bool
	done      chan struct{}
}

// New starts a stack on ep. The stack reads from ep until Close: from
// each of its queues, with a goroutine each, if ep is a link.MultiQueue.
func New(ep link.Endpoint, opts Options) (*Stack, error) {
	addrs, err := initialAddrs(&opts)
	if err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Backlog <= 0 {
		opts.Backlog = 128
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 65536
	}
	if opts.ChallengeACKsPerSecond <= 0 {
		opts.ChallengeACKsPerSecond = 1000
	}
	mtu := ep.MTU()
	if mtu < 68 {
		return nil, fmt.Errorf("stack: link MTU %d is below the IPv4 minimum of 68", mtu)
	}
	if opts.TCP.MSS == 0 || opts.TCP.MSS > mtu-40 {
		opts.TCP.MSS = mtu - 40
	}
	if err := cc.Valid(opts.TCP.CC); err != nil {
		// The TCB would fall back to NewReno silently: refuse instead.
		return nil, fmt.Errorf("stack: %w", err)
	}
	opts.TCP = opts.TCP.WithDefaults()
	isn, err := tcp.NewISNGenerator(opts.Rand, opts.Clock.Now())
	if err != nil {
		return nil, fmt.Errorf("stack: seeding ISNs: %w", err)
	}
	jar, err := tcp.NewCookieJar(opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("stack: seeding SYN cookies: %w", err)
	}
	var seed [16]byte
	if _, err := io.ReadFull(opts.Rand, seed[:]); err != nil {
		return nil, fmt.Errorf("stack: seeding ports: %w", err)
	}
	s := &Stack{
		ep: ep, opts: opts, clk: opts.Clock, ip: ipv4.New(netip.Addr{}), ip6: ipv6.New(netip.Addr{}),
		isn: isn, jar: jar,
		mtu:       mtu,
		conns:     make(map[connKey]*Conn),
		listeners: make(map[listenKey]*Listener),
		portRand:  mrand.New(mrand.NewChaCha8(*(*[32]byte)(append(seed[:], seed[:]...)))),
		udp:       udp.NewTable(udpSeed(seed)),
		done:      make(chan struct{}),
		cnt:       newCounters(),
		icmpCnt:   counter.NewSet("", numICMPEvents),
	}
	s.ip6.SetLinkMTU(mtu)
	if err := s.setAddrsLocked(addrs); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	s.chal.perSec = opts.ChallengeACKsPerSecond
	s.opts.TCP.ChallengeACK = s.chal.allow
	s.pool.New = func() any { b := make([]byte, link.Headroom+mtu); return &b }
	s.useOffload(ep)
	if err := s.initLanes(ep); err != nil {
		return nil, err
	}
	if opts.Manual {
		if _, ok := ep.(link.Poller); !ok {
			return nil, link.ErrNotPoller
		}
		close(s.done)
	} else {
		s.readers.Add(len(s.lanes))
		for _, ln := range s.lanes {
			go s.readLoop(ln)
		}
		go func() { s.readers.Wait(); close(s.done) }()
	}
	return s, nil
}

// Clock is the stack's clock.
func (s *Stack) Clock() clock.Clock { return s.clk }

// Close stops the stack: every connection is closed with net.ErrClosed
// (nothing more can be sent), so is every UDP socket, and the link is
// closed.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.mu.Lock()
		conns := make([]*Conn, 0, len(s.conns))
		for _, c := range s.conns {
			conns = append(conns, c)
		}
		ls := make([]*Listener, 0, len(s.listeners))
		for _, l := range s.listeners {
			ls = append(ls, l)
		}
		s.mu.Unlock()
		for _, l := range ls {
			l.Close()
		}
		for _, ep := range s.udp.All() {
			s.udp.Unbind(ep)
		}
		for _, c := range conns {
			c.mu.Lock()
			c.shutdown(net.ErrClosed)
			c.mu.Unlock()
		}
		for _, ln := range s.lanes {
			ln.tm.stop()
		}
		s.stopFragTimer()
		s.ep.Close()
		<-s.done
	})
	return nil
}

// input handles one inbound packet, read from lane ln (where what it
// makes goes out), and returns the connection it touched.
// csumOK: the link vouches for the TCP checksum (the kernel built the
// packet and left the checksum to the device, or checked it: virtio-net's
// NEEDS_CSUM and DATA_VALID), so it is not verified again. The version
// nibble (RFC 791 §3.1, RFC 8200 §3) chooses the layer.
func (s *Stack) input(ln *lane, now time.Time, pkt []byte, csumOK bool) *Conn {
	if len(pkt) > 0 && pkt[0]>>4 == header.IPv6Version {
		return s.input6(ln, now, pkt, csumOK)
	}
	v, h := s.ip.Input(now, pkt)
	switch v {
	case ipv4.Reply:
		s.reply(ln, now, h)
		return nil
	case ipv4.DeliverTCP:
	case ipv4.DeliverUDP:
		s.udpInput(ln, now, h, csumOK)
		return nil
	case ipv4.DeliverICMPError:
		return s.icmpError(ln, now, h)
	case ipv4.Held:
		s.fragmentsHeld(ln, now)
		return nil
	case ipv4.Unreachable:
		// RFC 1122 §3.2.2.1: a host SHOULD send protocol unreachable
		// when "the designated transport protocol is not supported".
		s.sendICMPError(ln, now, h, header.ICMPDestUnreach, header.ICMPProtoUnreach)
		return nil
	default:
		return nil
	}
	return s.tcpInput(ln, now, h.Payload(), h.Src(), h.Dst(), csumOK)
}

// tcpInput handles the TCP segment raw from src to dst (one of ours),
// over either family, read from lane ln, and returns the connection it
// touched, which from now on sends on ln. The checksum
// covers the family's pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1).
func (s *Stack) tcpInput(ln *lane, now time.Time, raw []byte, src, dst netip.Addr, csumOK bool) *Conn {
	th, err := header.ParseTCP(raw)
	if err != nil {
		s.cnt.Drop(dropBadHeader)
		return nil
	}
	if !csumOK && header.Checksum(raw, header.PseudoSum(header.ProtoTCP, src, dst, len(raw))) != 0xffff {
		s.cnt.Drop(dropBadChecksum)
		return nil
	}
	var seg tcp.Segment
	if err := seg.FromHeader(th); err != nil {
		s.cnt.Drop(dropBadOptions)
		return nil
	}
	seg.InPacketBuf(ln.rxBuf)
	s.cnt.Inc(evSegsIn)
	id := tcp.ID{
		Local:  netip.AddrPortFrom(dst, th.DstPort()),
		Remote: netip.AddrPortFrom(src, th.SrcPort()),
	}
	c, stop := s.demux(ln, now, id, &seg)
	if stop {
		return nil
	}
	if c == nil {
		// RFC 9293 §3.10.7.1: no connection: reset.
		s.cnt.Drop(dropNoConnection)
		if r, ok := tcp.ResetFor(&seg); ok {
			s.cnt.Inc(evResetsSent)
			s.sendSegment(ln, id, &r)
		}
		return nil
	}
	c.mu.Lock()
	c.lnIdx = uint8(ln.idx)
	if c.halfOpen && seg.Flags&(header.FlagACK|header.FlagRST|header.FlagSYN) == header.FlagACK && c.listener.acceptFull() {
		// The handshake would complete with nowhere to queue the
		// connection. Linux (tcp_abort_on_overflow=0, the default) drops
		// the ACK: the SYN-ACK timer and the client's retransmissions
		// complete it once the application accepts.
		c.mu.Unlock()
		s.cnt.Drop(dropListenOverflow)
		return nil
	}
	c.tcb.SegmentArrives(now, &seg)
	c.afterLocked()
	c.mu.Unlock()
	return c
}

// demux finds the connection seg is for: an existing one (unless a new SYN
// ends its TIME-WAIT, RFC 6191), or a new child of the listener on the
// port, from a SYN or from the ACK of a valid SYN cookie. stop says the
// segment has been dealt with (answered with a cookie, or dropped and
// counted); a nil connection without stop means there is none.
func (s *Stack) demux(ln *lane, now time.Time, id tcp.ID, seg *tcp.Segment) (c *Conn, stop bool) {
	s.mu.RLock()
	c = s.conns[keyOf(id)]
	var l *Listener
	if c == nil || seg.Flags&header.FlagSYN != 0 {
		l = s.listenerFor(id.Local)
	}
	s.mu.RUnlock()
	if c != nil && l != nil && seg.Flags&header.FlagSYN != 0 {
		// A new SYN may end a TIME-WAIT on this 4-tuple (RFC 6191).
		c.mu.Lock()
		c.lnIdx = uint8(ln.idx)
		reopened := c.tcb.ReopenFromTimeWait(now, seg)
		if reopened {
			c.afterLocked()
		}
		c.mu.Unlock()
		if reopened {
			c = nil
		}
	}
	if c != nil || l == nil {
		return c, false
	}
	switch seg.Flags & (header.FlagSYN | header.FlagACK | header.FlagRST) {
	case header.FlagSYN:
		var why dropReason
		if c, why = l.newChild(now, id); c == nil {
			if why == dropSYNQueueFull && !s.opts.NoSYNCookies {
				// RFC 4987 §3.6: answer statelessly.
				iss := s.jar.Make(id, seg.Seq, seg.Opts.MSS, now)
				cfg := *l.cfg
				if !id.Remote.Addr().Is4() {
					cfg.MSS = s.startMSS(cfg.MSS, id.Remote.Addr()) // MTU - 60, not - 40
				}
				sa := tcp.SynAckForCookie(seg, iss, cfg, uint32(now.UnixMilli())+s.tsOffset(id))
				s.cnt.Inc(evCookiesSent)
				s.sendSegment(ln, id, &sa)
				return nil, true
			}
			s.cnt.Drop(why)
			return nil, true
		}
	case header.FlagACK:
		if s.opts.NoSYNCookies {
			break
		}
		if mss, ok := s.jar.Check(id, seg, now); ok {
			var why dropReason
			if c, why = l.newCookieChild(now, id, seg, mss); c == nil {
				s.cnt.Drop(why)
				return nil, true
			}
			s.cnt.Inc(evCookiesOK)
		}
	}
	return c, false
}

// register adds c to the demux table unless the 4-tuple is taken.
func (s *Stack) register(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := keyOf(c.tcb.ID)
	if _, ok := s.conns[k]; ok {
		return false
	}
	s.conns[k] = c
	return true
}

// connKey is the connection table's key: a 4-tuple in 36 bytes, where a
// tcp.ID takes 64 (each netip.Addr keeps room for a zone); the table entry
// is part of what an idle connection costs (docs/design.md "Memory"). No
// address here has a zone (packets carry none, canonAddrPort drops a
// dial's), and an IPv4 address and its IPv4-mapped IPv6 form never meet
// in one table with the same other end.
type connKey struct {
	local, remote [16]byte
	lport, rport  uint16
}

func keyOf(id tcp.ID) connKey {
	return connKey{id.Local.Addr().As16(), id.Remote.Addr().As16(), id.Local.Port(), id.Remote.Port()}
}

func (s *Stack) unregister(c *Conn) {
	s.mu.Lock()
	k := keyOf(c.tcb.ID)
	mine := s.conns[k] == c
	if mine {
		delete(s.conns, k)
	}
	s.mu.Unlock()
	if mine && s.modes.n.Load() != 0 {
		s.setMode(c.tcb.ID, 0, false)
	}
}

// newTCB makes the TCB for id from a configuration from sharedConfig; its
// segments go out through out (the connection's lane).
func (s *Stack) newTCB(id tcp.ID, cfg *tcp.Config, out tcp.Sender) *tcp.Conn {
	return tcp.NewConnShared(id, cfg, s.startMSS(cfg.MSS, id.Remote.Addr()), out, s.opts.Trace)
}

// sharedConfig is cfg as the connections made from it share it (a
// listener's, a dial's): defaults filled in, and the link's TSO size.
func (s *Stack) sharedConfig(cfg tcp.Config) *tcp.Config {
	cfg = cfg.WithDefaults()
	cfg.TSOMax = s.tsoMax // zero unless the link takes TSO units
	return &cfg
}

// Options returns the stack's options, with defaults filled in.
func (s *Stack) Options() Options { return s.opts }

// challengeLimiter is the stack-wide challenge-ACK budget (RFC 5961 §7): a
// token bucket refilled to perSec every second.
type challengeLimiter struct {
	mu     sync.Mutex
	perSec int
	tokens int
	at     time.Time
}

func (l *challengeLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at.IsZero() || now.Sub(l.at) >= time.Second {
		l.at, l.tokens = now, l.perSec
	}
	if l.tokens <= 0 {
		return false
	}
	l.tokens--
	return true
}
