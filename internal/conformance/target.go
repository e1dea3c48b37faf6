package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"ustack/stack"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// Target is one TCP implementation under test: the link the peer drives,
// and the socket side, at TargetAddr.
type Target interface {
	// Name is "kernel" or "ustack".
	Name() string
	// Link is the wire: the peer writes its segments into it and reads the
	// target's.
	Link() link.Endpoint
	// Listen listens on port of TargetAddr with the target's backlog.
	Listen(port uint16) (net.Listener, error)
	// Dial opens a connection to the peer (active open), blocking until the
	// handshake completes or ctx ends.
	Dial(ctx context.Context, to netip.AddrPort) (net.Conn, error)
	// Settle returns once the target has processed every segment the peer
	// wrote, so that a socket action comes after them on both targets.
	Settle(ctx context.Context) error
	// Close ends the target and removes everything it made.
	Close() error
}

// TargetConfig is what a scenario asks of a fresh target.
type TargetConfig struct {
	// Backlog is the listen backlog: listen(2)'s argument for the kernel,
	// stack.Options.Backlog for ustack. Zero: each one's default.
	Backlog int
}

// Factory makes a fresh target for one scenario.
type Factory func(cfg TargetConfig) (Target, error)

// ustackTarget is a stack.Stack on one end of a link.Pipe, on the real
// clock; the peer drives the other end.
type ustackTarget struct {
	s    *stack.Stack
	peer *countingEnd
	own  *countingEnd
	ends [2]*link.PipeEnd
}

// countingEnd counts what goes through a pipe end. On the stack's end,
// idleAt is how many packets the stack had been given when its reader last
// came back for more: by then it had processed (and flushed) them all.
type countingEnd struct {
	link.Endpoint
	written   atomic.Int64
	delivered atomic.Int64
	idleAt    atomic.Int64
}

func (e *countingEnd) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	e.idleAt.Store(e.delivered.Load())
	n, err := e.Endpoint.ReadBatch(bufs, sizes, offset)
	e.delivered.Add(int64(n))
	return n, err
}

func (e *countingEnd) WriteBatch(bufs [][]byte, offset int) (int, error) {
	n, err := e.Endpoint.WriteBatch(bufs, offset)
	e.written.Add(int64(n))
	return n, err
}

// NewUstack is the Factory of ustack targets.
func NewUstack(cfg TargetConfig) (Target, error) {
	a, b := link.Pipe(MTU)
	u := &ustackTarget{own: &countingEnd{Endpoint: a}, peer: &countingEnd{Endpoint: b}, ends: [2]*link.PipeEnd{a, b}}
	// TCP_NODELAY, as Go's net sets it on the kernel target's sockets.
	opts := stack.Options{Addr: TargetAddr, Backlog: cfg.Backlog, TCP: tcp.Config{NoDelay: true}}
	s, err := stack.New(u.own, opts)
	if err != nil {
		a.Close()
		b.Close()
		return nil, fmt.Errorf("ustack target: %w", err)
	}
	u.s = s
	return u, nil
}

func (u *ustackTarget) Name() string        { return "ustack" }
func (u *ustackTarget) Link() link.Endpoint { return u.peer }

// Settle waits until the stack's reader has come back for more after
// being given every packet the peer wrote (the pipe loses none below its
// queue limit).
func (u *ustackTarget) Settle(ctx context.Context) error {
	done := func() bool { return u.own.idleAt.Load() >= u.peer.written.Load() }
	for !done() {
		t := time.NewTimer(200 * time.Microsecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("ustack did not take in the peer's segments: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

func (u *ustackTarget) Listen(port uint16) (net.Listener, error) {
	return u.s.ListenTCP(port)
}

func (u *ustackTarget) Dial(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
	return u.s.DialTCP(ctx, to)
}

// DialWrite starts an active open (DialTCPAsync) and has a goroutine write
// n bytes on the connection at once; Write waits for the handshake as
// Linux's does. stop aborts the connection.
func (u *ustackTarget) DialWrite(to netip.AddrPort, n int) (<-chan opResult, func(), error) {
	c, err := u.s.DialTCPAsync(to, u.s.Options().TCP)
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan opResult, 1)
	go func() {
		c.SetWriteDeadline(time.Now().Add(sockTimeout))
		_, err := c.Write(make([]byte, n))
		ch <- opResult{err: err, at: time.Now()}
	}()
	return ch, func() { c.Abort() }, nil
}

func (u *ustackTarget) Close() error {
	err := u.s.Close()
	return errors.Join(err, u.ends[0].Close(), u.ends[1].Close())
}

// The optional socket controls a scenario may need. A connection that
// lacks one makes the scenario "not offered" on that target.
type (
	linger interface{ SetLinger(sec int) error }
	// keepAliver is Go's net.TCPConn's and stack.Conn's keepalive control.
	keepAliver interface {
		SetKeepAliveConfig(net.KeepAliveConfig) error
	}
	closeWriter interface{ CloseWrite() error }
	// userTimeouter is stack.Conn's TCP_USER_TIMEOUT; connUserTimeouter
	// a target's for connections that have none (the kernel's, through
	// setsockopt).
	userTimeouter     interface{ SetUserTimeout(time.Duration) error }
	connUserTimeouter interface {
		SetUserTimeout(c net.Conn, d time.Duration) error
	}
	// writeDialer is a target whose application can write on a connection
	// still opening; see DialWrite.
	writeDialer interface {
		DialWrite(to netip.AddrPort, n int) (res <-chan opResult, stop func(), err error)
	}
)
