package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// sockTimeout bounds every blocking socket action.
const sockTimeout = 2 * time.Second

// errnoNames are the errors a socket call may end with, named as errno(3)
// names them.
var errnoNames = map[syscall.Errno]string{
	syscall.ECONNREFUSED: "ECONNREFUSED", syscall.ECONNRESET: "ECONNRESET", syscall.ETIMEDOUT: "ETIMEDOUT",
	syscall.EHOSTUNREACH: "EHOSTUNREACH", syscall.ENETUNREACH: "ENETUNREACH", syscall.EPIPE: "EPIPE",
	syscall.EPROTO: "EPROTO", syscall.ENOTCONN: "ENOTCONN", syscall.EAGAIN: "EAGAIN",
}

// errorClass names an error the same way for both targets: an errno by its
// name (before the deadline test, which ETIMEDOUT would also pass), else
// "timeout" for a deadline the harness set, "closed", "EOF".
func errorClass(err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &errno):
		if n, ok := errnoNames[errno]; ok {
			return n
		}
		return fmt.Sprintf("errno %d", int(errno))
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	case errors.Is(err, io.EOF):
		return "EOF"
	}
	return "error"
}

// sockStep is a socket action on the current flow's connection, taken
// once the target has processed what the peer sent. Timed observations
// measure from it.
func sockStep(doc string, fn func(r *Run, c net.Conn) error) Step {
	return Step{doc, func(r *Run) error {
		c, err := r.sock()
		if err != nil {
			return err
		}
		if err := r.target.Settle(r.ctx); err != nil {
			return err
		}
		r.lastSend = time.Now() // what follows answers this action
		return fn(r, c)
	}}
}

// Accept takes the next connection off the listener for the current flow.
func Accept() Step {
	return Step{"accept", func(r *Run) error {
		if r.lis == nil {
			return errors.New("accept: the scenario does not listen")
		}
		ch := make(chan opResult, 1)
		go func() {
			c, err := r.lis.Accept()
			ch <- opResult{c, err, time.Now()}
		}()
		res, err := r.await(ch)
		if err != nil || res.err != nil {
			return fmt.Errorf("accept: %s", errorClass(errors.Join(err, res.err)))
		}
		r.socks[r.cur] = res.c
		return nil
	}}
}

// await waits for an accept or dial with sockTimeout.
func (r *Run) await(ch <-chan opResult) (opResult, error) {
	t := time.NewTimer(sockTimeout)
	defer t.Stop()
	select {
	case res := <-ch:
		return res, nil
	case <-t.C:
		return opResult{}, os.ErrDeadlineExceeded
	}
}

// Dial makes the current flow an active open of the target's, towards the
// peer's ActivePort+flow, and starts it; Dialed waits for the result.
func Dial() Step {
	return Step{"dial", func(r *Run) error {
		to := r.activeFlow()
		ch := make(chan opResult, 1)
		r.ops[r.cur] = pendingOp{"dial", ch}
		go func() {
			ctx, cancel := context.WithTimeout(r.ctx, sockTimeout)
			defer cancel()
			c, err := r.target.Dial(ctx, to)
			ch <- opResult{c, err, time.Now()}
		}()
		return nil
	}}
}

// activeFlow makes the current flow a new one for an active open of the
// target's, and returns the address the target is to connect to.
func (r *Run) activeFlow() netip.AddrPort {
	f := newFlow(ActivePort+uint16(r.cur), 0, peerISN(r.cur))
	r.flows[r.cur] = f
	return netip.AddrPortFrom(PeerAddr, f.peerPort)
}

// Dialed waits for the current flow's Dial and records its result.
func Dialed() Step { return awaitOp("dialed", untimed) }

// Returned waits for the current flow's operation under way (Dial,
// DialWrite, LingerClose) and records how it ended, with its delay since
// the peer's last send or socket action as a timingBucket.
func Returned() Step { return awaitOp("returned, timed", sinceLast) }

// ReturnedAfter is Returned with the delay to the nearest 100 ms: for an
// operation a timer ends.
func ReturnedAfter() Step { return awaitOp("returned, after", intervals) }

func awaitOp(doc string, t timing) Step {
	return Step{doc, func(r *Run) error {
		op, ok := r.ops[r.cur]
		if !ok {
			return errors.New(doc + ": nothing under way on this flow")
		}
		delete(r.ops, r.cur)
		res, err := r.await(op.ch)
		err = errors.Join(err, res.err)
		line := op.what + ": " + errorClass(err)
		switch {
		case t == sinceLast && !res.at.IsZero():
			line = timingBucket(res.at.Sub(r.lastSend)) + ": " + line
		case t == intervals && !res.at.IsZero():
			line = roughly(res.at.Sub(r.lastSend)) + ": " + line
		}
		r.record("%s", line)
		if err == nil && res.c != nil {
			r.socks[r.cur] = res.c
		}
		return nil
	}}
}

// Write makes the target's application write n bytes.
func Write(n int) Step {
	return sockStep(fmt.Sprintf("app write %d", n), func(r *Run, c net.Conn) error {
		c.SetWriteDeadline(time.Now().Add(sockTimeout))
		_, err := c.Write(make([]byte, n))
		return err
	})
}

// Close makes the target's application close its socket.
func Close() Step {
	return sockStep("app close", func(r *Run, c net.Conn) error {
		delete(r.socks, r.cur)
		return c.Close()
	})
}

// Shutdown makes the target's application shut down its sending side.
func Shutdown() Step {
	return sockStep("app shutdown(SHUT_WR)", func(r *Run, c net.Conn) error {
		cw, ok := c.(closeWriter)
		if !ok {
			r.notOffered = "no CloseWrite"
			return nil
		}
		return cw.CloseWrite()
	})
}

// Linger0 sets SO_LINGER to 0 and closes: an abortive close. A target whose
// connections have no SetLinger does not offer the scenario.
func Linger0() Step {
	return sockStep("app SO_LINGER 0 + close", func(r *Run, c net.Conn) error {
		l, ok := c.(linger)
		if !ok {
			r.notOffered = fmt.Sprintf("%T has no SetLinger", c)
			return nil
		}
		if err := l.SetLinger(0); err != nil {
			return err
		}
		delete(r.socks, r.cur)
		return c.Close()
	})
}

// KeepAlive turns keepalive on with the given idle time, interval and
// count.
func KeepAlive(idle, interval time.Duration, count int) Step {
	return sockStep(fmt.Sprintf("app keepalive idle %v interval %v count %d", idle, interval, count), func(r *Run, c net.Conn) error {
		k, ok := c.(keepAliver)
		if !ok {
			r.notOffered = fmt.Sprintf("%T has no SetKeepAliveConfig", c)
			return nil
		}
		return k.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: idle, Interval: interval, Count: count})
	})
}

// CloseListener closes the target's listening socket.
func CloseListener() Step {
	return Step{"app closes the listener", func(r *Run) error {
		if r.lis == nil {
			return errors.New("no listener")
		}
		if err := r.target.Settle(r.ctx); err != nil {
			return err
		}
		err := r.lis.Close()
		r.lis = nil
		return err
	}}
}

// abortAll ends the sockets a run leaves open abortively (SO_LINGER 0, or
// ustack's Abort), so nothing outlives the target.
func (r *Run) abortAll() {
	for i, c := range r.socks {
		if a, ok := c.(interface{ Abort() error }); ok {
			a.Abort()
		} else if l, ok := c.(linger); ok {
			l.SetLinger(0)
		}
		c.Close()
		delete(r.socks, i)
	}
	if r.lis != nil {
		r.lis.Close()
	}
	for _, stop := range r.stops {
		stop()
	}
}
