package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"ustack/stack"
	"ustack/stack/link"
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
	peer *link.PipeEnd
	ends [2]*link.PipeEnd
}

// NewUstack is the Factory of ustack targets.
func NewUstack(cfg TargetConfig) (Target, error) {
	a, b := link.Pipe(MTU)
	s, err := stack.New(a, stack.Options{Addr: TargetAddr, Backlog: cfg.Backlog})
	if err != nil {
		a.Close()
		b.Close()
		return nil, fmt.Errorf("ustack target: %w", err)
	}
	return &ustackTarget{s: s, peer: b, ends: [2]*link.PipeEnd{a, b}}, nil
}

func (u *ustackTarget) Name() string        { return "ustack" }
func (u *ustackTarget) Link() link.Endpoint { return u.peer }

func (u *ustackTarget) Listen(port uint16) (net.Listener, error) {
	return u.s.ListenTCP(port)
}

func (u *ustackTarget) Dial(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
	return u.s.DialTCP(ctx, to)
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
)
