package gvpeer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Conn is a gVisor TCP connection: a gonet.TCPConn (net.Conn, CloseRead,
// CloseWrite) that keeps its tcpip.Endpoint so that its state can be read.
// Read and Write return gonet's errors (io.EOF, timeouts, and otherwise
// gVisor's error text, not errnos).
type Conn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// Endpoint is gVisor's endpoint behind the connection.
func (c *Conn) Endpoint() tcpip.Endpoint { return c.ep }

// EndpointState is gVisor's TCP state of the connection.
func (c *Conn) EndpointState() tcp.EndpointState { return tcp.EndpointState(c.ep.State()) }

// State is gVisor's name for the TCP state of the connection:
// "ESTABLISHED", "FIN-WAIT1", "FIN-WAIT2", "CLOSE-WAIT", "LAST-ACK",
// "TIME-WAIT", "CLOSED", ... (tcp.EndpointState.String). It stays readable
// after Close.
func (c *Conn) State() string { return c.EndpointState().String() }

// State is gVisor's name for the TCP state behind conn, which must be a
// *Conn from this package; for anything else it returns "".
func State(conn net.Conn) string {
	if c, ok := conn.(*Conn); ok {
		return c.State()
	}
	return ""
}

// Listener accepts gVisor TCP connections. It implements net.Listener.
type Listener struct {
	wq        *waiter.Queue
	ep        tcpip.Endpoint
	addr      netip.AddrPort
	closeOnce sync.Once
	done      chan struct{}
}

// Listen listens on port of the host's address (backlog 4096, as gonet).
func (h *Host) Listen(port uint16) (*Listener, error) {
	var wq waiter.Queue
	ep, terr := h.s.NewEndpoint(tcp.ProtocolNumber, netProto(h.addr), &wq)
	if terr != nil {
		return nil, fmt.Errorf("gvpeer: listen tcp port %d: %v", port, terr)
	}
	la := h.fullAddr(netip.AddrPortFrom(h.addr, port))
	opErr := func(op string, terr tcpip.Error) error {
		ep.Close()
		return &net.OpError{Op: op, Net: "tcp", Addr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(h.addr, port)), Err: Errno(terr)}
	}
	if terr := ep.Bind(la); terr != nil {
		return nil, opErr("bind", terr)
	}
	if terr := ep.Listen(4096); terr != nil {
		return nil, opErr("listen", terr)
	}
	return &Listener{wq: &wq, ep: ep, addr: netip.AddrPortFrom(h.addr, port), done: make(chan struct{})}, nil
}

// Close implements net.Listener: it stops listening (connections not yet
// accepted are reset) and ends pending Accepts with net.ErrClosed.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.ep.Close()
	})
	return nil
}

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return net.TCPAddrFromAddrPort(l.addr) }

// Accept implements net.Listener; the net.Conn is a *Conn.
func (l *Listener) Accept() (net.Conn, error) { return l.AcceptGV() }

// AcceptGV waits for the next connection. Close (or Shutdown) ends it with
// an error.
func (l *Listener) AcceptGV() (*Conn, error) {
	we, ch := waiter.NewChannelEntry(waiter.ReadableEvents)
	l.wq.EventRegister(&we)
	defer l.wq.EventUnregister(&we)
	for {
		n, wq, terr := l.ep.Accept(nil)
		if terr == nil {
			return &Conn{TCPConn: gonet.NewTCPConn(wq, n), ep: n}, nil
		}
		select {
		case <-l.done:
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
		default:
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: Errno(terr)}
		}
		select {
		case <-ch:
		case <-l.done:
		}
	}
}

// Dial opens a TCP connection to raddr and waits for the handshake or ctx.
// Errors match syscall.ECONNREFUSED, ECONNRESET, ETIMEDOUT, ... with
// errors.Is.
func (h *Host) Dial(ctx context.Context, raddr netip.AddrPort) (*Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(raddr), Err: err}
	}
	raddr = netip.AddrPortFrom(raddr.Addr().Unmap(), raddr.Port())
	if raddr.Addr().Is4() != h.addr.Is4() {
		return nil, opErr(fmt.Errorf("%v is not of the host's family (%v)", raddr.Addr(), h.addr))
	}
	var wq waiter.Queue
	ep, terr := h.s.NewEndpoint(tcp.ProtocolNumber, netProto(h.addr), &wq)
	if terr != nil {
		return nil, opErr(Errno(terr))
	}
	// Register before Connect: the handshake may finish before we wait.
	we, ch := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	terr = ep.Connect(h.fullAddr(raddr))
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, opErr(ctx.Err())
		case <-ch:
		}
		terr = ep.LastError()
	}
	if terr != nil {
		ep.Close()
		return nil, opErr(Errno(terr))
	}
	return &Conn{TCPConn: gonet.NewTCPConn(&wq, ep), ep: ep}, nil
}

// Errno maps a gVisor error to the syscall.Errno a kernel socket would
// report, so that callers can test it with errors.Is; errors without an
// obvious errno are returned as text.
func Errno(err tcpip.Error) error {
	if err == nil {
		return nil
	}
	if e, ok := errnos[reflect.TypeOf(err)]; ok {
		return e
	}
	return errors.New(err.String())
}

// errnos maps the type of a gVisor error to its errno.
var errnos = map[reflect.Type]error{
	reflect.TypeFor[*tcpip.ErrConnectionRefused]():    syscall.ECONNREFUSED,
	reflect.TypeFor[*tcpip.ErrConnectionReset]():      syscall.ECONNRESET,
	reflect.TypeFor[*tcpip.ErrConnectionAborted]():    syscall.ECONNABORTED,
	reflect.TypeFor[*tcpip.ErrTimeout]():              syscall.ETIMEDOUT,
	reflect.TypeFor[*tcpip.ErrNetworkUnreachable]():   syscall.ENETUNREACH,
	reflect.TypeFor[*tcpip.ErrHostUnreachable]():      syscall.EHOSTUNREACH,
	reflect.TypeFor[*tcpip.ErrPortInUse]():            syscall.EADDRINUSE,
	reflect.TypeFor[*tcpip.ErrClosedForSend]():        syscall.EPIPE,
	reflect.TypeFor[*tcpip.ErrInvalidEndpointState](): syscall.EINVAL,
	reflect.TypeFor[*tcpip.ErrAborted]():              net.ErrClosed,
}

func (h *Host) fullAddr(ap netip.AddrPort) tcpip.FullAddress {
	return tcpip.FullAddress{Addr: tcpAddr(ap.Addr()), Port: ap.Port()}
}
