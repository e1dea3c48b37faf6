package stack

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"ustack/stack/clock"
	"ustack/stack/udp"
)

// UDPConn is a UDP socket on a Stack (RFC 768). Made by ListenUDP it is
// unconnected and implements net.PacketConn (ReadFrom, WriteTo); made by
// DialUDP it is connected to one peer and implements net.Conn (Read,
// Write), receiving only that peer's datagrams, as *net.UDPConn does.
type UDPConn struct {
	s  *Stack
	ep *udp.Endpoint

	closed     atomic.Bool
	rdDeadline atomic.Int64 // Unix nanoseconds; 0: none
	wrDeadline atomic.Int64

	mu      sync.Mutex // guards rdTimer
	rdTimer clock.Timer
}

// ListenUDP opens an unconnected UDP socket on laddr: one of the stack's
// addresses, or all of them (an invalid or unspecified address); port 0
// picks an ephemeral port. A socket on one address and one on all may
// share a port; the first gets the datagrams to its address (see
// udp.Table.Bind).
func (s *Stack) ListenUDP(laddr netip.AddrPort) (*UDPConn, error) {
	addr, err := s.checkLocal(laddr.Addr())
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(laddr), Err: err}
	}
	return s.openUDP(netip.AddrPortFrom(addr, laddr.Port()), netip.AddrPort{})
}

// DialUDP opens a UDP socket connected to raddr, from the source address
// SelectSource chooses and an ephemeral port.
func (s *Stack) DialUDP(raddr netip.AddrPort) (*UDPConn, error) {
	return s.DialUDPFrom(netip.AddrPort{}, raddr)
}

// DialUDPFrom is DialUDP from laddr: one of the stack's addresses (or
// unspecified: the one SelectSource chooses) and a port (0: ephemeral).
// As Linux's connect(2) on a UDP socket, a broadcast destination is refused
// with EACCES (we have no SO_BROADCAST).
func (s *Stack) DialUDPFrom(laddr, raddr netip.AddrPort) (*UDPConn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "udp", Addr: net.UDPAddrFromAddrPort(raddr), Err: err}
	}
	raddr = canonAddrPort(raddr)
	if err := s.checkUDPDest(raddr); err != nil {
		return nil, opErr(err)
	}
	src, err := s.checkLocal(laddr.Addr())
	if err != nil {
		return nil, opErr(err)
	}
	if !src.IsValid() {
		if src, err = s.sourceFor(raddr.Addr()); err != nil {
			return nil, opErr(err)
		}
	}
	c, err := s.openUDP(netip.AddrPortFrom(src, laddr.Port()), raddr)
	if err != nil {
		return nil, opErr(err)
	}
	return c, nil
}

func (s *Stack) openUDP(local, remote netip.AddrPort) (*UDPConn, error) {
	if s.closed.Load() {
		return nil, net.ErrClosed
	}
	ep := udp.NewEndpoint(local, remote)
	if err := s.udp.Bind(ep); err != nil {
		return nil, err
	}
	if s.closed.Load() { // Close ran meanwhile and may have missed it
		s.udp.Unbind(ep)
		return nil, net.ErrClosed
	}
	return &UDPConn{s: s, ep: ep}, nil
}

// canonAddrPort is a peer's address as the stack holds it: IPv4-mapped
// addresses as IPv4, IPv6 ones without a zone (one interface), so that it
// compares equal to what input reads from a header.
func canonAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

// checkUDPDest refuses a destination no datagram may go to: no address or
// port (EINVAL, as Linux's udp_sendmsg for port 0), a broadcast (EACCES,
// as Linux without SO_BROADCAST) or a multicast group of either family
// (EOPNOTSUPP: we have no multicast routing; Linux would send it).
func (s *Stack) checkUDPDest(dst netip.AddrPort) error {
	a := dst.Addr()
	switch {
	case !a.IsValid() || a.IsUnspecified() || dst.Port() == 0:
		return fmt.Errorf("destination %v: %w", dst, syscall.EINVAL)
	case a.IsMulticast():
		return fmt.Errorf("destination %v is a multicast group: %w", dst, syscall.EOPNOTSUPP)
	case a.Is4() && s.ip.NotUnicast(a.As4()):
		return fmt.Errorf("destination %v is a broadcast address: %w", dst, syscall.EACCES)
	}
	return nil
}

func (c *UDPConn) opError(op string, addr netip.AddrPort, err error) error {
	var a net.Addr
	if addr.IsValid() {
		a = net.UDPAddrFromAddrPort(addr)
	}
	return &net.OpError{Op: op, Net: "udp", Source: c.LocalAddr(), Addr: a, Err: err}
}

// ReadFromUDPAddrPort reads the next datagram into b, as
// *net.UDPConn.ReadFromUDPAddrPort: its length (cut to len(b), the rest
// discarded) and its sender. It blocks until one arrives, the read
// deadline passes (os.ErrDeadlineExceeded) or the socket closes
// (net.ErrClosed). On a connected socket, an ICMP error about a datagram
// it sent (port unreachable: ECONNREFUSED) is returned once, first.
func (c *UDPConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	n, from, err := c.ep.Read(b, true, c.readExpired)
	if err != nil {
		return 0, from, c.opError("read", c.ep.Remote, err)
	}
	return n, from, nil
}

// TryReadFrom is ReadFromUDPAddrPort that never blocks: udp.ErrWouldBlock
// when nothing is queued. For polled stacks.
func (c *UDPConn) TryReadFrom(b []byte) (int, netip.AddrPort, error) {
	return c.ep.Read(b, false, nil)
}

// ReadFrom implements net.PacketConn.
func (c *UDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// Read implements net.Conn.
func (c *UDPConn) Read(b []byte) (int, error) {
	n, _, err := c.ReadFromUDPAddrPort(b)
	return n, err
}

func (c *UDPConn) readExpired() bool { return expiredAt(c.s.clk, c.rdDeadline.Load()) }

func expiredAt(clk clock.Clock, d int64) bool {
	return d != 0 && clk.Now().UnixNano() >= d
}

// WriteToUDPAddrPort sends b as one datagram to addr, as
// *net.UDPConn.WriteToUDPAddrPort (net.ErrWriteToConnected on a connected
// socket). See Write for the errors.
func (c *UDPConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if c.ep.Connected() {
		return 0, c.opError("write", addr, net.ErrWriteToConnected)
	}
	addr = canonAddrPort(addr)
	if err := c.write(b, addr); err != nil {
		return 0, c.opError("write", addr, err)
	}
	return len(b), nil
}

// WriteTo implements net.PacketConn; addr is a *net.UDPAddr.
func (c *UDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, c.opError("write", netip.AddrPort{}, fmt.Errorf("%T is not a *net.UDPAddr: %w", addr, syscall.EINVAL))
	}
	return c.WriteToUDPAddrPort(b, ua.AddrPort())
}

// Write implements net.Conn: b goes as one datagram to the connected peer
// (EDESTADDRREQ on an unconnected socket). It does not block. It fails with
// EMSGSIZE beyond 65507 bytes (or beyond the path MTU in path MTU discovery
// mode "do"), with a pending ICMP error once (ECONNREFUSED after a port
// unreachable), with EADDRNOTAVAIL once the socket's address was removed,
// and with os.ErrDeadlineExceeded past the write deadline. A datagram over
// the path MTU goes in IPv4 or IPv6 fragments (over IPv6, up to 65527
// bytes).
func (c *UDPConn) Write(b []byte) (int, error) {
	if !c.ep.Connected() {
		return 0, c.opError("write", netip.AddrPort{}, syscall.EDESTADDRREQ)
	}
	if err := c.write(b, c.ep.Remote); err != nil {
		return 0, c.opError("write", c.ep.Remote, err)
	}
	return len(b), nil
}

func (c *UDPConn) write(b []byte, dst netip.AddrPort) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	if expiredAt(c.s.clk, c.wrDeadline.Load()) {
		return os.ErrDeadlineExceeded
	}
	if err := c.ep.TakeError(); err != nil {
		return err
	}
	if err := c.s.checkUDPDest(dst); err != nil {
		return err
	}
	return c.s.sendUDP(c.ep.Local, dst, b)
}

// Close implements net.Conn and net.PacketConn: blocked reads return
// net.ErrClosed, queued datagrams are dropped, the port is free again.
func (c *UDPConn) Close() error {
	if c.closed.Swap(true) {
		return c.opError("close", netip.AddrPort{}, net.ErrClosed)
	}
	c.s.udp.Unbind(c.ep)
	c.mu.Lock()
	if c.rdTimer != nil {
		c.rdTimer.Stop()
	}
	c.mu.Unlock()
	return nil
}

// LocalAddr is the bound address and port (0.0.0.0 when bound to all the
// stack's addresses).
func (c *UDPConn) LocalAddr() net.Addr {
	l := c.ep.Local
	if !l.Addr().IsValid() {
		l = netip.AddrPortFrom(netip.IPv4Unspecified(), l.Port())
	}
	return net.UDPAddrFromAddrPort(l)
}

// RemoteAddr is the connected peer, or nil for an unconnected socket (as
// *net.UDPConn).
func (c *UDPConn) RemoteAddr() net.Addr {
	if !c.ep.Connected() {
		return nil
	}
	return net.UDPAddrFromAddrPort(c.ep.Remote)
}

// SetDeadline implements net.Conn.
func (c *UDPConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline implements net.Conn: reads blocked or to come return
// os.ErrDeadlineExceeded once the stack's clock reaches t; zero: none.
func (c *UDPConn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opError("set", netip.AddrPort{}, net.ErrClosed)
	}
	c.rdDeadline.Store(unixNanoOrZero(t))
	c.mu.Lock()
	if c.rdTimer != nil {
		c.rdTimer.Stop()
		c.rdTimer = nil
	}
	if d := t.Sub(c.s.clk.Now()); !t.IsZero() && d > 0 {
		c.rdTimer = c.s.clk.AfterFunc(d, c.ep.Wake)
	}
	c.mu.Unlock()
	c.ep.Wake()
	return nil
}

// SetWriteDeadline implements net.Conn. Writes never block, so it only
// makes those after t fail.
func (c *UDPConn) SetWriteDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opError("set", netip.AddrPort{}, net.ErrClosed)
	}
	c.wrDeadline.Store(unixNanoOrZero(t))
	return nil
}

func unixNanoOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixNano(), 1)
}

// SetReadBuffer is SO_RCVBUF: the receive queue's limit becomes 2*bytes,
// as Linux doubles the value for its bookkeeping (udp.Overhead is charged
// per datagram); the default is udp.DefaultRcvBuf.
func (c *UDPConn) SetReadBuffer(bytes int) error {
	if bytes < 0 {
		return c.opError("set", netip.AddrPort{}, syscall.EINVAL)
	}
	c.ep.SetReceiveLimit(2 * bytes)
	return nil
}

// Drops is the number of datagrams this socket dropped because its
// receive queue was full (Linux's SO_RXQ_OVFL).
func (c *UDPConn) Drops() uint64 { return c.ep.Drops() }

var (
	_ net.PacketConn = (*UDPConn)(nil)
	_ net.Conn       = (*UDPConn)(nil)
)
