package conformance

import (
	"fmt"
	"net"
	"time"
)

// Steps whose outcome is on the socket side: what the application's calls
// return, where the wire alone does not show it (an error from an ICMP
// message, a reset in CLOSE-WAIT, a timer's verdict).

// Read makes the application read, blocking up to within, and records what
// it got: "read: 10 bytes", or its error ("read: EOF", "read: ECONNRESET",
// "read: timeout" when within passed).
func Read(within time.Duration) Step {
	return sockStep(fmt.Sprintf("app read (up to %v)", within), func(r *Run, c net.Conn) error {
		r.record("read: %s", readResult(c, within))
		return nil
	})
}

// ReadTimed is Read recording also how long the read blocked, to the
// nearest 100 ms: for an error a timer raises.
func ReadTimed(within time.Duration) Step {
	return sockStep(fmt.Sprintf("app read (up to %v), timed", within), func(r *Run, c net.Conn) error {
		res := readResult(c, within)
		r.record("%s: read: %s", roughly(time.Since(r.lastSend)), res)
		return nil
	})
}

func readResult(c net.Conn, within time.Duration) string {
	c.SetReadDeadline(time.Now().Add(within))
	n, err := c.Read(make([]byte, 64<<10))
	if n > 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	return errorClass(err)
}

// WriteResult makes the application write n bytes and records the result
// ("write: ok", "write: EPIPE"); Write instead stops the script on an
// error.
func WriteResult(n int) Step {
	return sockStep(fmt.Sprintf("app write %d, result", n), func(r *Run, c net.Conn) error {
		c.SetWriteDeadline(time.Now().Add(sockTimeout))
		_, err := c.Write(make([]byte, n))
		r.record("write: %s", errorClass(err))
		return nil
	})
}

// UserTimeout sets TCP_USER_TIMEOUT (RFC 5482) to d: ustack's
// (*stack.Conn).SetUserTimeout, setsockopt(2) on the kernel's socket.
func UserTimeout(d time.Duration) Step {
	return sockStep(fmt.Sprintf("app TCP_USER_TIMEOUT %v", d), func(r *Run, c net.Conn) error {
		if u, ok := c.(userTimeouter); ok {
			return u.SetUserTimeout(d)
		}
		if k, ok := r.target.(connUserTimeouter); ok {
			return k.SetUserTimeout(c, d)
		}
		r.notOffered = fmt.Sprintf("%T has no SetUserTimeout", c)
		return nil
	})
}

// NoDelay sets TCP_NODELAY (on: Nagle's algorithm off).
func NoDelay(on bool) Step {
	return sockStep(fmt.Sprintf("app TCP_NODELAY %v", on), func(r *Run, c net.Conn) error {
		nd, ok := c.(interface{ SetNoDelay(bool) error })
		if !ok {
			r.notOffered = fmt.Sprintf("%T has no SetNoDelay", c)
			return nil
		}
		return nd.SetNoDelay(on)
	})
}

// LingerClose sets SO_LINGER to sec seconds and starts the application's
// close in the background (it blocks until everything is acknowledged or
// sec passed); Returned or ReturnedAfter records how it ended.
func LingerClose(sec int) Step {
	return sockStep(fmt.Sprintf("app SO_LINGER %ds + close", sec), func(r *Run, c net.Conn) error {
		l, ok := c.(linger)
		if !ok {
			r.notOffered = fmt.Sprintf("%T has no SetLinger", c)
			return nil
		}
		if err := l.SetLinger(sec); err != nil {
			return err
		}
		delete(r.socks, r.cur)
		ch := make(chan opResult, 1)
		r.ops[r.cur] = pendingOp{"close", ch}
		go func() {
			err := c.Close()
			ch <- opResult{err: err, at: time.Now()}
		}()
		return nil
	})
}

// DialWrite makes the current flow an active open of the target's, as
// Dial, with the application writing n bytes on the socket at once, while
// the handshake is under way: the write blocks until the connection is
// established or has failed (Linux's sk_stream_wait_connect). Returned
// records how the write ended. A target that cannot write on an opening
// connection does not offer the scenario.
func DialWrite(n int) Step {
	return Step{fmt.Sprintf("dial + app write %d while opening", n), func(r *Run) error {
		wd, ok := r.target.(writeDialer)
		if !ok {
			r.notOffered = fmt.Sprintf("%s cannot write on an opening connection", r.target.Name())
			return nil
		}
		ch, stop, err := wd.DialWrite(r.activeFlow(), n)
		if err != nil {
			return err
		}
		r.stops = append(r.stops, stop)
		r.ops[r.cur] = pendingOp{"write", ch}
		return nil
	}}
}
