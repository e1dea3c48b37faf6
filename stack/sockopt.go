package stack

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"ustack/stack/tcp"
)

// The socket controls real programs set, in the shape Go's net package
// gives them: ListenConfig and Dialer, like net.ListenConfig and
// net.Dialer, and methods on *Conn named as *net.TCPConn names them where it
// has one. Each says which Linux socket option it stands for.

// ListenConfig configures a listener, like net.ListenConfig.
type ListenConfig struct {
	// Backlog is listen(2)'s backlog: the SYN queue holds Backlog
	// half-open connections and the accept queue Backlog+1 (Linux's
	// sk_acceptq_is_full). Zero: the stack's Options.Backlog.
	Backlog int
	// TCP configures the accepted connections; nil: the stack's
	// Options.TCP. Its MSS is TCP_MAXSEG.
	TCP *tcp.Config
	// Addr binds the listener to one of the stack's addresses (bind(2)
	// before listen(2)); the zero Addr or an unspecified one: all of them.
	// An address the stack does not have is refused (EADDRNOTAVAIL).
	Addr netip.Addr
}

// Listen listens on port of lc.Addr, or of all the stack's addresses.
func (lc ListenConfig) Listen(s *Stack, port uint16) (*Listener, error) {
	cfg := s.opts.TCP
	if lc.TCP != nil {
		cfg = *lc.TCP
	}
	l, err := s.listen(netip.AddrPortFrom(lc.Addr, port), cfg)
	if err != nil {
		return nil, err
	}
	if lc.Backlog > 0 {
		l.mu.Lock()
		l.backlog = lc.Backlog
		l.mu.Unlock()
	}
	return l, nil
}

// Dialer opens connections, like net.Dialer.
type Dialer struct {
	// LocalAddr binds the connection before it connects: the address must
	// be one of the stack's (EADDRNOTAVAIL otherwise), or unspecified for
	// the one source address selection chooses (SelectSource); port 0
	// picks an ephemeral port.
	LocalAddr netip.AddrPort
	// ReuseAddr is SO_REUSEADDR: LocalAddr's port may be one that other
	// connections (in TIME-WAIT among them) use. A listener's port is
	// never shared, and an existing 4-tuple is never reused, as in Linux.
	ReuseAddr bool
	// Timeout bounds the handshake; zero: the SYN retry limit does.
	Timeout time.Duration
	// TCP configures the connection; nil: the stack's Options.TCP.
	TCP *tcp.Config
}

// DialContext opens a connection from s to raddr and waits for the
// handshake.
func (d *Dialer) DialContext(ctx context.Context, s *Stack, raddr netip.AddrPort) (*Conn, error) {
	cfg := s.opts.TCP
	if d.TCP != nil {
		cfg = *d.TCP
	}
	raddr = canonAddrPort(raddr)
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	if d.LocalAddr.Port() == 0 && !d.LocalAddr.Addr().IsValid() {
		return s.DialTCPConfig(ctx, raddr, cfg)
	}
	return s.dial(ctx, raddr, cfg, func(cfg tcp.Config) (*Conn, error) { return s.bindLocal(d.LocalAddr, d.ReuseAddr, raddr, cfg) })
}

// bindLocal makes the connection from local to raddr, with bind(2)'s
// rules as Linux applies them (inet_csk_bind_conflict and
// __inet_check_established).
func (s *Stack) bindLocal(local netip.AddrPort, reuse bool, raddr netip.AddrPort, cfg tcp.Config) (*Conn, error) {
	src, err := s.checkLocal(local.Addr())
	if err != nil {
		return nil, fmt.Errorf("bind %v: %w", local, err)
	}
	if src.IsValid() && src.Is4() != raddr.Addr().Is4() {
		return nil, fmt.Errorf("bind %v: %w (connecting to %v)", local, syscall.EAFNOSUPPORT, raddr)
	}
	if local.Port() == 0 {
		return s.bindEphemeral(src, raddr, cfg)
	}
	if !src.IsValid() {
		if src, err = s.sourceFor(raddr.Addr()); err != nil {
			return nil, err
		}
	}
	if cfg.ChallengeACK == nil {
		cfg.ChallengeACK = s.chal.allow
	}
	id := tcp.ID{Local: netip.AddrPortFrom(src, local.Port()), Remote: raddr}
	s.mu.RLock()
	listening := s.listenerFor(id.Local) != nil
	_, taken := s.conns[keyOf(id)]
	shared := false
	for _, other := range s.conns {
		if other.tcb.ID.Local == id.Local {
			shared = true
			break
		}
	}
	s.mu.RUnlock()
	switch {
	case listening || shared && !reuse:
		return nil, fmt.Errorf("bind %v: %w", local, syscall.EADDRINUSE)
	case taken:
		return nil, fmt.Errorf("connect %v from %v: %w (the 4-tuple is in use)", raddr, local, syscall.EADDRNOTAVAIL)
	}
	c := s.newConn(id, s.sharedConfig(cfg))
	if !s.register(c) {
		return nil, fmt.Errorf("connect %v from %v: %w (the 4-tuple is in use)", raddr, local, syscall.EADDRNOTAVAIL)
	}
	return c, nil
}

// SetLinger is SO_LINGER, as *net.TCPConn.SetLinger: sec < 0 (the
// default) closes in the background; sec == 0 makes Close an abort (RST,
// unsent data discarded); sec > 0 makes Close wait up to sec seconds for
// the peer to acknowledge everything, FIN included, before it returns (the
// connection goes on closing in the background if it has not).
func (c *Conn) SetLinger(sec int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("set", net.ErrClosed)
	}
	c.linger = int32(max(min(sec, math.MaxInt32), -1))
	return nil
}

// SetReadBuffer is SO_RCVBUF: the receive buffer, and so the window. It
// fixes the size: the buffer's auto-tuning stops (Linux's
// SOCK_RCVBUF_LOCK; stack/tcp/rcvtune.go).
func (c *Conn) SetReadBuffer(bytes int) error { return c.setBuffers(bytes, 0) }

// SetWriteBuffer is SO_SNDBUF: how much Write may queue unacknowledged.
func (c *Conn) SetWriteBuffer(bytes int) error { return c.setBuffers(0, bytes) }

func (c *Conn) setBuffers(rcv, snd int) error {
	if rcv < 0 || snd < 0 {
		return c.opError("set", syscall.EINVAL)
	}
	return c.control(func(now time.Time) { c.tcb.SetBuffers(now, rcv, snd) })
}

// SetUserTimeout is TCP_USER_TIMEOUT (RFC 5482): the connection ends with
// ETIMEDOUT when data stays unacknowledged, or zero-window probes
// unanswered, for d. Zero turns it off.
func (c *Conn) SetUserTimeout(d time.Duration) error {
	return c.control(func(time.Time) { c.tcb.SetUserTimeout(d) })
}

// SetFinWait2Timeout is TCP_LINGER2: how long a closed connection waits in
// FIN-WAIT-2 for the peer's FIN.
func (c *Conn) SetFinWait2Timeout(d time.Duration) error {
	return c.control(func(time.Time) { c.tcb.SetFinWait2Timeout(d) })
}

// SetCork is TCP_CORK: while on, only full segments leave; off sends the
// rest.
func (c *Conn) SetCork(on bool) error {
	return c.control(func(now time.Time) { c.tcb.SetCork(now, on) })
}

// CloseRead shuts down the reading side, as *net.TCPConn.CloseRead
// (shutdown(SHUT_RD)): reads return io.EOF; data that arrives is
// acknowledged and dropped.
func (c *Conn) CloseRead() error {
	return c.control(func(now time.Time) { c.tcb.CloseRead(now) })
}

// SocketError is SO_ERROR: the connection's error not yet taken, else the
// last ICMP error it kept (a soft error), cleared by the call; nil if none.
func (c *Conn) SocketError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.tcb.TakeError(); err != nil {
		return os.NewSyscallError("tcp", err)
	}
	return nil
}

// TCPInfo is TCP_INFO: the connection's state, timers, windows, congestion
// state and counters.
func (c *Conn) TCPInfo() tcp.Info { return c.Info() }

// control runs f on the TCB under the connection's lock and sends what it
// made due.
func (c *Conn) control(f func(now time.Time)) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.opError("set", net.ErrClosed)
	}
	f(c.s.clk.Now())
	c.afterLocked()
	c.unlockAndFlush()
	return nil
}
