package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"ustack/stack/clock"
	"ustack/stack/tcp"
)

// Conn is a TCP connection on a Stack. It implements net.Conn, plus
// CloseWrite, keepalive and SetNoDelay like *net.TCPConn.
//
// Its memory is what an idle connection costs beside the TCB, so what
// most connections never use is allocated when first needed: the
// condition that blocked calls wait on, and the deadlines (the 4-tuple is
// the TCB's).
type Conn struct {
	s    *Stack
	mu   sync.Mutex // guards what follows; lock order: see Stack
	cond *sync.Cond // nil until a call first waits
	tcb  *tcp.Conn

	listener *Listener // the listener that made this connection, if passive
	fatal    error     // set when the stack shuts the connection down
	dl       *deadlines

	batchGen atomic.Uint64 // the last input batch that touched c (rxBatch.gen: unique among lanes)

	linger   int32 // SO_LINGER seconds; < 0: off (sockopt.go)
	queued   bool  // handed to the listener's accept queue
	halfOpen bool  // counted in the listener's half-open queue
	closed   bool  // the application called Close
	gone     bool  // removed from the stack's table
	// sent: the TCB queued a segment since the last unlockAndFlush
	// (or reader's batch end), which must flush. Guarded by mu.
	sent bool
	// lnIdx is the lane the connection's packets go out on (lane): the
	// one its last segment came in on (a reader sets it before it calls
	// into the TCB), or laneFor's until one came. thIdx is 1 + the lane
	// whose timer heap holds its entry, 0 for none. Both guarded by mu;
	// indices rather than pointers keep an idle connection at 96 bytes.
	lnIdx, thIdx uint8

	// Guarded by the lock of the timer heap c is in (th).
	tidx int32
	tdl  int64 // Unix nanoseconds
}

// deadlines are a connection's read and write deadlines and the timers
// that wake blocked calls at them.
type deadlines struct {
	rd, wr           time.Time
	rdTimer, wrTimer clock.Timer
}

func (s *Stack) newConn(id tcp.ID, cfg *tcp.Config) *Conn {
	c := &Conn{s: s, tidx: -1, linger: -1, lnIdx: uint8(s.laneFor(id).idx)}
	c.tcb = s.newTCB(id, cfg, (*laneSender)(c))
	c.tcb.SetTSOffset(s.tsOffset(id))
	return c
}

// lane is the lane the connection's packets go out on. c.mu is held.
func (c *Conn) lane() *lane { return c.s.lanes[c.lnIdx] }

// wait blocks on the connection's condition until a wake. c.mu is held.
func (c *Conn) wait() {
	if c.cond == nil {
		c.cond = sync.NewCond(&c.mu)
	}
	c.cond.Wait()
}

// wake wakes every blocked call. c.mu is held.
func (c *Conn) wake() {
	if c.cond != nil {
		c.cond.Broadcast()
	}
}

// tsOffset is the connection's random timestamp offset (RFC 7323 §5.4),
// from the stack's keyed hash like the ISN, so that a SYN cookie's
// SYN-ACK carries the clock its connection will have.
func (s *Stack) tsOffset(id tcp.ID) uint32 { return uint32(s.isn.ISN(id, time.Time{})) }

// afterLocked runs after every call into the TCB: wake waiters, hand a newly
// established passive connection to its listener, reschedule the timer,
// and drop the TCB from the table once CLOSED. c.mu is held.
func (c *Conn) afterLocked() {
	ev := c.tcb.TakeEvents()
	if ev != 0 {
		c.wake()
	}
	st := c.tcb.State()
	if ev&tcp.EvEstablished != 0 {
		c.s.cnt.Inc(evEstablished)
		if c.listener != nil && !c.queued {
			c.queued = true
			c.listener.established(c)
		}
	}
	if st == tcp.Closed || (st == tcp.Listen && c.listener != nil) {
		c.remove()
		return
	}
	c.schedule(c.tcb.NextDeadline())
}

// remove takes the connection out of the stack.
func (c *Conn) remove() {
	if c.gone {
		return
	}
	c.gone = true
	c.schedule(time.Time{})
	// The counters join ended before the connection leaves the table, so
	// that TCPTotals never finds it in neither.
	st := c.tcb.Stats()
	c.s.cnt.Add(evRetransmits, st.Retransmits)
	c.s.ended.add(st)
	c.s.unregister(c)
	if c.halfOpen {
		c.listener.leaveHalfOpen()
		c.halfOpen = false
	}
	c.wake()
}

// shutdown ends the connection without sending anything (the stack is
// closing). c.mu is held.
func (c *Conn) shutdown(err error) {
	if c.fatal == nil {
		c.fatal = err
	}
	c.remove()
}

func (c *Conn) opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// errLocked is the error a blocked operation should return now, if any.
func (c *Conn) errLocked() error {
	if c.closed {
		return net.ErrClosed
	}
	if err := c.tcb.Err(); err != nil {
		return os.NewSyscallError("tcp", err)
	}
	if c.fatal != nil {
		return c.fatal
	}
	return nil
}

func (c *Conn) expired(d time.Time) bool {
	return !d.IsZero() && !c.s.clk.Now().Before(d)
}

// connecting reports whether the handshake is still under way. c.mu is held.
func (c *Conn) connecting() bool {
	st := c.tcb.State()
	return st == tcp.SynSent || st == tcp.SynReceived
}

// Read implements net.Conn.
func (c *Conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return 0, c.opError("read", net.ErrClosed)
		}
		if len(b) == 0 {
			c.mu.Unlock()
			return 0, nil
		}
		if c.tcb.ReadClosed() {
			c.mu.Unlock()
			return 0, io.EOF // CloseRead
		}
		n, eof := c.tcb.Read(c.s.clk.Now(), b)
		if n > 0 {
			c.afterLocked()
			c.unlockAndFlush()
			return n, nil
		}
		if eof {
			c.mu.Unlock()
			return 0, io.EOF
		}
		if err := c.errLocked(); err != nil {
			c.mu.Unlock()
			return 0, c.opError("read", err)
		}
		if st := c.tcb.State(); st == tcp.Closed || st == tcp.TimeWait {
			c.mu.Unlock()
			return 0, io.EOF
		}
		if c.dl != nil && c.expired(c.dl.rd) {
			c.mu.Unlock()
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		c.wait()
	}
}

// Write implements net.Conn. It blocks until all of b is queued in the send
// buffer (not until it is acknowledged), as a kernel socket does.
func (c *Conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	done := 0
	for {
		if c.closed {
			c.mu.Unlock()
			return done, c.opError("write", net.ErrClosed)
		}
		if err := c.errLocked(); err != nil {
			c.mu.Unlock()
			return done, c.opError("write", err)
		}
		if c.dl != nil && c.expired(c.dl.wr) {
			c.mu.Unlock()
			return done, c.opError("write", os.ErrDeadlineExceeded)
		}
		if c.connecting() {
			// A blocking write waits for the handshake and then fails with
			// its error (ECONNREFUSED after a RST), as Linux's
			// sk_stream_wait_connect does, rather than queue data for a
			// connection that may never exist.
			c.wait()
			continue
		}
		n, err := c.tcb.Write(c.s.clk.Now(), b[done:])
		done += n
		c.afterLocked()
		if err != nil {
			c.unlockAndFlush()
			return done, c.opError("write", os.NewSyscallError("tcp", err))
		}
		if done == len(b) {
			c.unlockAndFlush()
			return done, nil
		}
		if n > 0 {
			c.lane().flush() // under c.mu: allowed by the lock order (see Stack)
		}
		if c.tcb.SendSpace() == 0 || n == 0 {
			c.wait()
		}
	}
}

// Close implements net.Conn: the connection closes in the background (FIN,
// then the close handshake); unread data makes it an abort with RST.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.closed = true
	if c.linger == 0 {
		// SO_LINGER 0: an abort, unsent data discarded (RST|ACK).
		c.tcb.Abort(c.s.clk.Now(), "app close with linger 0")
	} else {
		c.tcb.Close(c.s.clk.Now())
	}
	c.stopDeadlineTimers()
	c.afterLocked()
	c.wake()
	c.unlockAndFlush()
	if c.linger > 0 {
		c.lingerWait(time.Duration(c.linger) * time.Second)
	}
	return nil
}

// lingerWait is SO_LINGER with a timeout: Close returns once the peer has
// acknowledged everything, FIN included, or after d (Linux's
// sk_stream_wait_close: while in FIN-WAIT-1, CLOSING or LAST-ACK).
func (c *Conn) lingerWait(d time.Duration) {
	expired := false
	t := c.s.clk.AfterFunc(d, func() { c.mu.Lock(); expired = true; c.wake(); c.mu.Unlock() })
	defer t.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !expired {
		switch c.tcb.State() {
		case tcp.FinWait1, tcp.Closing, tcp.LastAck:
			c.wait()
		default:
			return
		}
	}
}

// CloseWrite shuts down the sending side (half-close); reads go on.
func (c *Conn) CloseWrite() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.tcb.CloseWrite(c.s.clk.Now())
	c.afterLocked()
	c.unlockAndFlush()
	return nil
}

// Abort resets the connection at once (RST).
func (c *Conn) Abort() error {
	c.mu.Lock()
	c.closed = true
	c.tcb.Abort(c.s.clk.Now(), "app abort")
	c.afterLocked()
	c.unlockAndFlush()
	return nil
}

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(c.tcb.ID.Local) }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.tcb.ID.Remote) }

// ID is the connection's 4-tuple.
func (c *Conn) ID() tcp.ID { return c.tcb.ID }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(false, t)
}

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(true, t)
}

// setDeadline sets the read or write deadline, and its wake-up timer, to t.
func (c *Conn) setDeadline(write bool, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dl == nil {
		if t.IsZero() {
			return nil
		}
		c.dl = new(deadlines)
	}
	at, tm := &c.dl.rd, &c.dl.rdTimer
	if write {
		at, tm = &c.dl.wr, &c.dl.wrTimer
	}
	*at = t
	*tm = c.armDeadline(*tm, t)
	return nil
}

func (c *Conn) armDeadline(tm clock.Timer, t time.Time) clock.Timer {
	if tm != nil {
		tm.Stop()
	}
	if t.IsZero() {
		return tm
	}
	d := t.Sub(c.s.clk.Now())
	if d <= 0 {
		c.wake()
		return tm
	}
	if tm == nil {
		return c.s.clk.AfterFunc(d, func() { c.mu.Lock(); c.wake(); c.mu.Unlock() })
	}
	tm.Reset(d) // no new closure: net/http moves a deadline on every request
	return tm
}

func (c *Conn) stopDeadlineTimers() {
	if c.dl == nil {
		return
	}
	if c.dl.rdTimer != nil {
		c.dl.rdTimer.Stop()
	}
	if c.dl.wrTimer != nil {
		c.dl.wrTimer.Stop()
	}
}

// SetKeepAlive turns keepalive on or off with the connection's current
// idle, interval and count.
func (c *Conn) SetKeepAlive(on bool) error {
	return c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: on})
}

// SetKeepAlivePeriod sets the idle time and the interval, as Go's net does.
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	return c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: d, Interval: d})
}

// SetKeepAliveConfig sets keepalive (RFC 1122 §4.2.3.6): zero fields keep
// their current values.
func (c *Conn) SetKeepAliveConfig(cfg net.KeepAliveConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("set", net.ErrClosed)
	}
	c.tcb.SetKeepAlive(c.s.clk.Now(), cfg.Enable, cfg.Idle, cfg.Interval, cfg.Count)
	c.afterLocked()
	return nil
}

// SetNoDelay turns Nagle's algorithm off (true) or on (false).
func (c *Conn) SetNoDelay(noDelay bool) error {
	c.mu.Lock()
	c.tcb.SetNoDelay(c.s.clk.Now(), noDelay)
	c.afterLocked()
	c.unlockAndFlush()
	return nil
}

// Info is the connection's state as the stack sees it: state, RTT, windows,
// retransmissions.
func (c *Conn) Info() tcp.Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tcb.Info()
}

// State is the TCP state now.
func (c *Conn) State() tcp.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tcb.State()
}

// waitEstablished blocks until the handshake completes or fails.
func (c *Conn) waitEstablished(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { c.mu.Lock(); c.wake(); c.mu.Unlock() })
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		st := c.tcb.State()
		if st.Synchronized() {
			return nil
		}
		if err := c.tcb.Err(); err != nil {
			return os.NewSyscallError("connect", err)
		}
		if c.fatal != nil {
			return c.fatal
		}
		if st == tcp.Closed {
			return errors.New("connection closed during the handshake")
		}
		if err := ctx.Err(); err != nil {
			c.closed = true
			c.tcb.Abort(c.s.clk.Now(), "dial canceled")
			c.afterLocked()
			c.lane().flush() // the RST
			return err
		}
		c.wait()
	}
}

var _ net.Conn = (*Conn)(nil)

// ErrWouldBlock is what TryRead and TryWrite return when they cannot make
// progress now.
var ErrWouldBlock = errors.New("operation would block")

// TryRead is Read that never blocks: (0, ErrWouldBlock) when no data is
// ready. For the simulator and other polled users.
func (c *Conn) TryRead(b []byte) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	n, eof := c.tcb.Read(c.s.clk.Now(), b)
	c.afterLocked()
	err := error(nil)
	switch {
	case n > 0:
	case eof:
		err = io.EOF
	default:
		if err = c.errLocked(); err == nil {
			if st := c.tcb.State(); st == tcp.Closed || st == tcp.TimeWait {
				err = io.EOF
			} else {
				err = ErrWouldBlock
			}
		}
	}
	c.unlockAndFlush()
	return n, err
}

// TryWrite is Write that never blocks: it queues what fits and returns
// ErrWouldBlock if that was not all of b.
func (c *Conn) TryWrite(b []byte) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if err := c.errLocked(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	if c.connecting() {
		c.mu.Unlock()
		return 0, ErrWouldBlock // EAGAIN, as a non-blocking write before the handshake
	}
	n, err := c.tcb.Write(c.s.clk.Now(), b)
	c.afterLocked()
	c.unlockAndFlush()
	if err != nil {
		return n, os.NewSyscallError("tcp", err)
	}
	if n < len(b) {
		return n, ErrWouldBlock
	}
	return n, nil
}
