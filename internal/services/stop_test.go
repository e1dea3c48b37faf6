package services

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack"
	"ustack/stack/link"
)

// stackPair is a client stack and a server stack joined by a Pipe.
func stackPair(t *testing.T) (cli, srv *stack.Stack) {
	t.Helper()
	ea, eb := link.Pipe(1500)
	cli, err := stack.New(ea, stack.Options{Addr: netip.MustParseAddr("198.18.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	srv, err = stack.New(eb, stack.Options{Addr: netip.MustParseAddr("198.18.0.2")})
	if err != nil {
		cli.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli, srv
}

// stopEnv runs a holder of idle connections on port 9, source on 19 and
// HTTP on 80 of a stack with s, and dials each from a client stack.
func stopEnv(t *testing.T, s *Server) (held, source, web *stack.Conn) {
	t.Helper()
	cli, st := stackPair(t)
	for port, serve := range map[uint16]func(net.Listener){9: s.Hold, 19: s.Handle(Source), 80: func(l net.Listener) { s.HTTP(l, "") }} {
		l, err := stack.ListenConfig{Backlog: 4}.Listen(st, port)
		if err != nil {
			t.Fatal(err)
		}
		s.Go(l, serve)
	}
	dial := func(port uint16) *stack.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := cli.DialTCP(ctx, netip.AddrPortFrom(netip.MustParseAddr("198.18.0.2"), port))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { c.Close() })
		return c
	}
	return dial(9), dial(19), dial(80)
}

// TestStopEndsEveryConnection: Stop closes the connections of every
// service, HTTP's included: the client of a held connection, which sent
// data the server has not read, sees a RST; the HTTP client, idle between
// requests, a FIN;
// the source client, not reading (so that the service's FIN cannot leave
// through the zero window), a RST once the drain time is up.
func TestStopEndsEveryConnection(t *testing.T) {
	var setUp atomic.Int32
	s := &Server{Setup: func(c net.Conn) {
		if _, ok := c.(*stack.Conn); ok {
			setUp.Add(1)
		}
	}}
	held, source, web := stopEnv(t, s)
	io.WriteString(web, "GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n")
	resp := make([]byte, 4096)
	if n, err := web.Read(resp); err != nil || n == 0 {
		t.Fatalf("HTTP: %d, %v", n, err)
	}
	source.SetReadBuffer(4096) // the source fills the client's window
	io.WriteString(held, "unread")
	if !waitfor.Within(5*time.Second, func() bool { return held.Info().Unacked == 0 && s.Held() == 1 }) {
		t.Fatal("the held connection's data is not acknowledged")
	}
	// The source must have filled the window the client offered before
	// the smaller buffer: until then its FIN could still leave.
	if !waitfor.Within(5*time.Second, func() bool { return source.Info().RcvWnd == 0 }) {
		t.Fatal("the source did not fill the client's window")
	}
	st := s.Stop(300 * time.Millisecond)
	if st.Closed != 3 || st.Aborted < 1 {
		t.Errorf("Stop: %+v, want 3 closed, the source's among the aborted", st)
	}
	if n := setUp.Load(); n != 3 {
		t.Errorf("Setup saw %d ustack connections, want 3", n)
	}
	if _, err := io.Copy(io.Discard, web); err != nil {
		t.Errorf("HTTP client: %v, want EOF (FIN)", err)
	}
	if _, err := io.Copy(io.Discard, source); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("source client: %v, want ECONNRESET", err)
	}
	if _, err := io.Copy(io.Discard, held); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client with unread data: %v, want ECONNRESET", err)
	}
}
