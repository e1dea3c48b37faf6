package integration

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"ustack/internal/waitfor"
)

// countCause counts the trace lines whose cause contains cause.
func countCause(s *server, cause string) int {
	n := 0
	for _, line := range s.out.snapshot() {
		if e, ok := parseTrace(line); ok && strings.Contains(e.cause, cause) {
			n++
		}
	}
	return n
}

// TestBacklog: --backlog sets every listener's queues, as listen(2)'s
// backlog does. With --backlog 8, 2,000 connections to echo from 100
// concurrent kernel clients, each exchanging data and closing: the
// half-open queue (9) overflows, so the trace shows connections made
// through SYN cookies, and the accept queue (9) fills, which drops the SYN
// or the final ACK (the kernel retries) rather than resetting: every
// connection still echoes, none sees ECONNRESET. With the default 128,
// 10,000 connections from 200 concurrent clients, all echo (the run that
// once saw 89 clients reset after connect() had succeeded).
// (With --backlog 1 none is reset either, but a few outlast the clients'
// 60 s deadline: the kernel's retransmissions for stranded handshakes come
// in synchronised bursts, of which an accept queue of 2 admits 2 each
// time, and back off exponentially, as they would against Linux.)
func TestBacklog(t *testing.T) {
	requireRoot(t)
	for _, c := range []struct {
		backlog       string
		clients, each int
		cookies       bool
	}{{"8", 100, 20, true}, {"128", 200, 50, false}} {
		t.Run(c.backlog, func(t *testing.T) {
			ns := newNamespace(t)
			s := startServe(t, ns, "--echo", echoPort, "--backlog", c.backlog)
			clients, each := c.clients, c.each
			d := newDialer(t, ns, clients)
			var failed, resets atomic.Int64
			var firstErr sync.Once
			var wg sync.WaitGroup
			start := time.Now()
			for w := range clients {
				wg.Go(func() {
					for i := range each {
						id, err := dialExchange(d, w*each+i)
						if err == nil {
							continue
						}
						failed.Add(1)
						if errors.Is(err, syscall.ECONNRESET) {
							resets.Add(1)
						}
						firstErr.Do(func() { t.Errorf("connection %d (%s): %v\ntrace: %v", w*each+i, id, err, s.traceOf(id)) })
					}
				})
			}
			wg.Wait()
			cookies := countCause(s, "syn cookie")
			t.Logf("--backlog %s: %d connections from %d clients in %v: %d failed (%d reset); %d made through SYN cookies",
				c.backlog, clients*each, clients, time.Since(start).Round(time.Millisecond), failed.Load(), resets.Load(), cookies)
			if failed.Load() != 0 {
				t.Errorf("%d of %d connections failed, %d of them reset; want none", failed.Load(), clients*each, resets.Load())
			}
			if c.cookies && cookies == 0 {
				t.Errorf("--backlog 1: no connection went through a SYN cookie: the half-open queue never overflowed (was --backlog applied?)")
			}
		})
	}
}

// dialExchange opens a connection to echo, exchanges a message naming i
// and closes; it returns the connection's ID in the trace.
func dialExchange(d *dialer, i int) (string, error) {
	c, err := d.dial(echoAddr())
	if err != nil {
		return "", fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	return connID(c), exchange(c, i)
}

// serveAndDial runs `ustack serve ARGS` in a namespace of its own and
// connects to addr from the kernel side; the connection closes with the
// test.
func serveAndDial(t *testing.T, addr string, args ...string) (*server, *net.TCPConn) {
	t.Helper()
	ns := newNamespace(t)
	s := startServe(t, ns, args...)
	c := newDialer(t, ns, 1).mustDial(t, addr)
	t.Cleanup(func() { c.Close() })
	return s, c
}

// TestLingerZero: with --linger 0 every close by a service is an abort
// (SO_LINGER 0): when the echo client half-closes, the echo service closes
// and the client reads ECONNRESET instead of EOF; the trace shows the
// connection going from CLOSE-WAIT straight to CLOSED by the close.
func TestLingerZero(t *testing.T) {
	requireRoot(t)
	s, c := serveAndDial(t, echoAddr(), "--echo", echoPort, "--linger", "0")
	id := connID(c)
	echoOnce(t, c, "before the half-close")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, rerr := io.Copy(io.Discard, c)
	if !errors.Is(rerr, syscall.ECONNRESET) {
		t.Fatalf("after our FIN: %d bytes, %v; want ECONNRESET (the service's close is an abort)", n, rerr)
	}
	_, ev, err := s.waitTrace(0, 10*time.Second, id, "CLOSE-WAIT", "CLOSED")
	if err != nil {
		t.Fatalf("%v\ntrace: %v", err, s.traceOf(id))
	}
	t.Logf("client read %v; trace: %s CLOSE-WAIT -> CLOSED (%s)", rerr, id, ev.cause)
	if !strings.Contains(ev.cause, "linger 0") {
		t.Errorf("CLOSE-WAIT -> CLOSED by %q, want the close with linger 0", ev.cause)
	}
}

// TestUserTimeout: with --user-timeout 2s, a connection whose peer goes
// silent while data is outstanding is aborted about 2 s later
// (TCP_USER_TIMEOUT, RFC 5482), long before the 15 retransmissions would
// end it: a kernel client reads from source as fast as it can (so that
// ustack always has data in flight), then nft drops everything ustack
// sends it, and the trace shows ESTABLISHED -> CLOSED by the user timeout.
func TestUserTimeout(t *testing.T) {
	requireRoot(t)
	requireTool(t, "nft")
	s, c := serveAndDial(t, sourceAddr(), "--source", sourcePort, "--user-timeout", "2s")
	id := connID(c)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var got atomic.Int64
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	waitfor.Cond(t, 20*time.Second, "the client to read 1 MiB from source", func() bool { return got.Load() >= mib })
	rules := fmt.Sprintf("table ip ustack_it {\n chain in {\n  type filter hook input priority 0; policy accept;\n  ip saddr %s tcp sport %s drop\n }\n}\n", stackAddr, sourcePort)
	if out, err := runIn(t, s.ns, 20*time.Second, "sh", "-c", "printf '%s' \"$1\" | nft -f -", "sh", rules); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	dropped := time.Now()
	_, ev, err := s.waitTrace(0, 30*time.Second, id, "ESTABLISHED", "CLOSED")
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(dropped)
	t.Logf("%s: ESTABLISHED -> CLOSED (%s) %v after the drop rule", id, ev.cause, took.Round(time.Millisecond))
	if !strings.Contains(ev.cause, "user timeout") {
		t.Errorf("connection closed by %q, want the user timeout", ev.cause)
	}
	if took < 1500*time.Millisecond || took > 4*time.Second {
		t.Errorf("aborted %v after the peer went silent, want about the 2 s user timeout", took)
	}
}
