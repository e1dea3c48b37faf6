package stack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"ustack/stack/tcp"
	"ustack/stack/tcp/cc"
)

// Listener accepts TCP connections on a port of one of the stack's
// addresses or of all of them. It implements net.Listener.
type Listener struct {
	s       *Stack
	addr    netip.Addr // invalid: all the stack's addresses
	port    uint16
	cfg     *tcp.Config // shared by its connections (tcp.NewConnShared)
	mu      sync.Mutex  // guards what follows; lock order: see Stack (after Conn.mu)
	cond    sync.Cond
	queue   []*Conn
	half    int // connections in SYN-RECEIVED
	backlog int
	closed  bool
}

// listenKey finds a listener: its address (invalid: all) and port.
type listenKey struct {
	addr netip.Addr
	port uint16
}

// listenerFor is the listener for a connection to local: the one on
// local's address first, then the one on all addresses, as Linux's
// listener lookup scores a bound address above a wildcard. s.mu is held.
func (s *Stack) listenerFor(local netip.AddrPort) *Listener {
	if l := s.listeners[listenKey{local.Addr(), local.Port()}]; l != nil {
		return l
	}
	return s.listeners[listenKey{port: local.Port()}]
}

// ListenTCP listens on port of all the stack's addresses, those added
// later included.
func (s *Stack) ListenTCP(port uint16) (*Listener, error) {
	return s.ListenTCPConfig(port, s.opts.TCP)
}

// ListenTCPConfig is ListenTCP with a TCP configuration for the accepted
// connections (keepalive, buffers, ...).
func (s *Stack) ListenTCPConfig(port uint16, cfg tcp.Config) (*Listener, error) {
	return s.listen(netip.AddrPortFrom(netip.Addr{}, port), cfg)
}

// listen makes a listener on local: one of the stack's addresses, or all
// of them (an invalid or unspecified address). A listener on one address
// and one on all may share a port, the first taking the connections to
// its address: Linux allows the pair only with SO_REUSEPORT (then ranks
// them the same way); we allow it as BSD does.
func (s *Stack) listen(local netip.AddrPort, cfg tcp.Config) (*Listener, error) {
	port := local.Port()
	addr, err := s.checkLocal(local.Addr())
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: net.TCPAddrFromAddrPort(local), Err: err}
	}
	if port == 0 {
		return nil, fmt.Errorf("listen tcp %v: choose a port (1-65535)", local)
	}
	if err := cc.Valid(cfg.CC); err != nil {
		return nil, fmt.Errorf("listen tcp %v: %w", local, err)
	}
	if cfg.MSS == 0 || cfg.MSS > s.mtu-40 {
		cfg.MSS = s.mtu - 40
	}
	if cfg.ChallengeACK == nil {
		cfg.ChallengeACK = s.chal.allow
	}
	l := &Listener{s: s, addr: addr, port: port, cfg: s.sharedConfig(cfg), backlog: s.opts.Backlog}
	l.cond.L = &l.mu
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, net.ErrClosed
	}
	if _, ok := s.listeners[l.key()]; ok {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: l.Addr(), Err: fmt.Errorf("port %d is already in use on this stack: %w", port, syscall.EADDRINUSE)}
	}
	s.listeners[l.key()] = l
	return l, nil
}

// newChild makes the TCB for a SYN to this listener (RFC 9293 §3.10.7.2).
// It returns nil and the reason when it cannot: the listener is closed,
// the accept queue is full (dropListenOverflow: Linux's tcp_conn_request
// drops the SYN), the SYN queue is full (dropSYNQueueFull, when a SYN cookie can
// answer instead), the connection limit is reached, or the 4-tuple is
// taken.
func (l *Listener) newChild(now time.Time, id tcp.ID) (*Conn, dropReason) {
	c, why := l.admit(id, false)
	if c == nil {
		return nil, why
	}
	c.tcb.SetISS(l.s.isn.ISN(id, now))
	c.tcb.Listen(now)
	return c, 0
}

// newCookieChild makes the connection a valid SYN cookie stands for, in
// SYN-RECEIVED, ready for the ACK that carried the cookie. It returns nil
// and the reason when it cannot.
func (l *Listener) newCookieChild(now time.Time, id tcp.ID, ack *tcp.Segment, mss int) (*Conn, dropReason) {
	c, why := l.admit(id, true)
	if c == nil {
		return nil, why
	}
	c.tcb.AcceptCookie(now, ack, mss)
	return c, 0
}

// admit makes and registers a half-open child for id, counted in l.half,
// or returns why it cannot: the listener is closed, its accept queue is
// full, its SYN queue is full (for a SYN; a cookie's handshake is already
// done), the connection limit is reached, or the 4-tuple is taken.
func (l *Listener) admit(id tcp.ID, cookie bool) (*Conn, dropReason) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, dropListenerClosed
	}
	if l.acceptFullLocked() {
		// Linux's tcp_conn_request drops a SYN (and cookie_v4_check an
		// ACK) while the accept queue is full.
		l.mu.Unlock()
		return nil, dropListenOverflow
	}
	if !cookie && l.half > l.backlog {
		// The SYN queue holds backlog+1 too, as Linux's
		// inet_csk_reqsk_queue_is_full counts.
		l.mu.Unlock()
		return nil, dropSYNQueueFull // a SYN cookie may answer instead
	}
	l.half++
	l.mu.Unlock()
	s := l.s
	s.mu.RLock()
	n := len(s.conns)
	s.mu.RUnlock()
	if n >= s.opts.MaxConns {
		l.leaveHalfOpen()
		return nil, dropConnLimit
	}
	c := s.newConn(id, l.cfg)
	c.listener, c.halfOpen = l, true
	if !s.register(c) {
		l.leaveHalfOpen()
		return nil, dropTupleInUse
	}
	s.cnt.Inc(evPassiveOpens)
	return c, 0
}

// acceptFullLocked reports whether the accept queue is full: it holds more
// than the backlog, as Linux's sk_acceptq_is_full counts (a listen(2)
// backlog of n queues n+1 connections). l.mu is held.
func (l *Listener) acceptFullLocked() bool { return len(l.queue) > l.backlog }

// acceptFull is acceptFullLocked for callers without l.mu.
func (l *Listener) acceptFull() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acceptFullLocked()
}

func (l *Listener) leaveHalfOpen() {
	l.mu.Lock()
	l.half--
	l.mu.Unlock()
}

// established queues a connection whose handshake completed. c.mu is held.
func (l *Listener) established(c *Conn) {
	c.halfOpen = false
	l.mu.Lock()
	l.half--
	if l.closed || l.acceptFullLocked() {
		l.mu.Unlock()
		if !l.closed {
			l.s.cnt.Drop(dropListenOverflow)
		}
		c.closed = true
		c.tcb.Abort(c.s.clk.Now(), "listener closed or accept queue full")
		return
	}
	l.queue = append(l.queue, c)
	l.cond.Signal()
	l.mu.Unlock()
}

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) { return l.AcceptTCP() }

// AcceptTCP waits for the next connection.
func (l *Listener) AcceptTCP() (*Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.queue) == 0 && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	}
	c := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	return c, nil
}

// Close implements net.Listener. Connections not yet accepted are reset.
func (l *Listener) Close() error {
	l.s.mu.Lock()
	if l.s.listeners[l.key()] == l {
		delete(l.s.listeners, l.key())
	}
	l.s.mu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	q := l.queue
	l.queue = nil
	l.cond.Broadcast()
	l.mu.Unlock()
	for _, c := range q {
		c.Abort()
	}
	return nil
}

func (l *Listener) key() listenKey { return listenKey{l.addr, l.port} }

// Addr implements net.Listener: the address listened on, 0.0.0.0 for all
// of them, as Go's listeners say.
func (l *Listener) Addr() net.Addr {
	a := l.addr
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, l.port))
}

// DialTCP opens a connection to raddr, IPv4 or IPv6 (active open), and
// waits for the handshake, the context, or the SYN retry limit.
func (s *Stack) DialTCP(ctx context.Context, raddr netip.AddrPort) (*Conn, error) {
	return s.DialTCPConfig(ctx, raddr, s.opts.TCP)
}

// DialTCPConfig is DialTCP with a TCP configuration for this connection.
func (s *Stack) DialTCPConfig(ctx context.Context, raddr netip.AddrPort, cfg tcp.Config) (*Conn, error) {
	return s.dial(ctx, canonAddrPort(raddr), cfg, nil)
}

// dial is DialTCPConfig with a way to bind the local end (nil: an
// ephemeral port).
func (s *Stack) dial(ctx context.Context, raddr netip.AddrPort, cfg tcp.Config, bind func(tcp.Config) (*Conn, error)) (*Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(raddr), Err: err}
	}
	if s.closed.Load() {
		return nil, opErr(net.ErrClosed)
	}
	c, err := s.startDial(raddr, cfg, bind)
	if err != nil {
		return nil, opErr(err)
	}
	if err := c.waitEstablished(ctx); err != nil {
		return nil, opErr(err)
	}
	return c, nil
}

// Ephemeral ports, as Linux's default ip_local_port_range.
const ephemeralLo, ephemeralHi = 32768, 60999

// bindEphemeral makes the connection to raddr from src (invalid: the
// address SelectSource chooses) and an ephemeral port.
func (s *Stack) bindEphemeral(src netip.Addr, raddr netip.AddrPort, cfg tcp.Config) (*Conn, error) {
	if cfg.ChallengeACK == nil {
		cfg.ChallengeACK = s.chal.allow
	}
	if !src.IsValid() {
		var err error
		if src, err = s.sourceFor(raddr.Addr()); err != nil {
			return nil, err
		}
	}
	shared := s.sharedConfig(cfg)
	s.mu.Lock()
	start := s.portRand.IntN(ephemeralHi - ephemeralLo + 1)
	s.mu.Unlock()
	for i := 0; i <= ephemeralHi-ephemeralLo; i++ {
		port := uint16(ephemeralLo + (start+i)%(ephemeralHi-ephemeralLo+1))
		id := tcp.ID{Local: netip.AddrPortFrom(src, port), Remote: raddr}
		c := s.newConn(id, shared)
		if s.register(c) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no free local port to %v: all %d ephemeral ports are in use", raddr, ephemeralHi-ephemeralLo+1)
}

var _ net.Listener = (*Listener)(nil)

// TryAccept returns a connection if one is waiting, else nil.
func (l *Listener) TryAccept() *Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		return nil
	}
	c := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	return c
}

// DialTCPAsync starts an active open and returns at once; the connection
// is usable when State() is ESTABLISHED (or failed when CLOSED). For polled
// stacks, which cannot block in DialTCP.
func (s *Stack) DialTCPAsync(raddr netip.AddrPort, cfg tcp.Config) (*Conn, error) {
	return s.startDial(canonAddrPort(raddr), cfg, nil)
}

// startDial binds the local end (bind; nil: an ephemeral port) and sends
// the SYN.
func (s *Stack) startDial(raddr netip.AddrPort, cfg tcp.Config, bind func(tcp.Config) (*Conn, error)) (*Conn, error) {
	if a := raddr.Addr(); !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
		return nil, fmt.Errorf("%v is not a unicast address: %w", a, syscall.EINVAL)
	}
	if err := cc.Valid(cfg.CC); err != nil {
		return nil, err
	}
	if cfg.MSS == 0 || cfg.MSS > s.mtu-40 {
		cfg.MSS = s.mtu - 40
	}
	if bind == nil {
		bind = func(cfg tcp.Config) (*Conn, error) { return s.bindEphemeral(netip.Addr{}, raddr, cfg) }
	}
	c, err := bind(cfg)
	if err != nil {
		return nil, err
	}
	s.cnt.Inc(evActiveOpens)
	c.mu.Lock()
	now := s.clk.Now()
	c.tcb.Connect(now, s.isn.ISN(c.tcb.ID, now))
	c.afterLocked()
	c.unlockAndFlush()
	return c, nil
}
