// Package services holds the servers that `ustack serve`, the bench and the
// tests run on any stack's net.Listener: echo (RFC 862), discard (RFC 863),
// an endless source, a sized source, a holder of idle connections, and an
// HTTP handler (the visitor's connection page and /bytes/N); and UDP echo
// (RFC 862) on a net.PacketConn.
package services

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server runs services on listeners and tracks their connections, so that
// Close ends them all.
type Server struct {
	// NoDelay turns Nagle's algorithm off on every accepted connection
	// that lets it be turned off.
	NoDelay bool
	// ErrorLog is net/http's error log; nil is the standard logger.
	ErrorLog *log.Logger
	// Grace is how long Close lets HTTP requests in flight finish
	// (default 2 s).
	Grace time.Duration
	// Setup, if set, is called on every accepted connection (the
	// *stack.Conn or *net.TCPConn under any TLS) before it is served: the
	// place for socket options.
	Setup func(net.Conn)

	wg        sync.WaitGroup
	mu        sync.Mutex
	listeners []net.Listener
	conns     map[net.Conn]struct{}
	closed    bool
	held      []net.Conn
	heldN     atomic.Int64
	https     []*http.Server
}

// Go runs serve on l in a goroutine; Close closes l and waits for it.
func (s *Server) Go(l net.Listener, serve func(net.Listener)) {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); serve(l) }()
}

// Handle returns a serve function that accepts connections and runs
// handle on each in its own goroutine, closing it afterwards.
func (s *Server) Handle(handle func(net.Conn)) func(net.Listener) {
	return func(l net.Listener) { s.acceptLoop(l, handle) }
}

// track adds or removes a connection; false once the server is closed.
func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	if add {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *Server) accept(l net.Listener) (net.Conn, error) {
	for {
		c, err := l.Accept()
		if err == nil {
			s.prepare(c)
			return c, nil
		}
		if !temporary(err) {
			return nil, err
		}
	}
}

func (s *Server) acceptLoop(l net.Listener, handle func(net.Conn)) {
	for {
		c, err := s.accept(l)
		if err != nil {
			return
		}
		if !s.track(c, true) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			defer c.Close()
			handle(c)
		}()
	}
}

func temporary(err error) bool {
	var ne interface{ Temporary() bool }
	return errors.As(err, &ne) && ne.Temporary() && !errors.Is(err, net.ErrClosed)
}

// prepare applies NoDelay and Setup to a newly accepted connection.
func (s *Server) prepare(c net.Conn) {
	c = rawConn(c)
	if nd, ok := c.(interface{ SetNoDelay(bool) error }); ok && s.NoDelay {
		nd.SetNoDelay(true)
	}
	if s.Setup != nil {
		s.Setup(c)
	}
}

// rawConn is the TCP connection under any wrappers (TLS).
func rawConn(c net.Conn) net.Conn {
	for {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c
		}
		c = w.NetConn()
	}
}

// Hold accepts connections and keeps them, doing nothing with them (for
// the idle-connection memory figure).
func (s *Server) Hold(l net.Listener) {
	for {
		c, err := s.accept(l)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.held = append(s.held, c)
		s.mu.Unlock()
		s.heldN.Add(1)
	}
}

// Held is how many connections Hold has accepted.
func (s *Server) Held() int64 { return s.heldN.Load() }

// take marks the server closed and hands over what it runs: listeners,
// HTTP servers, and every open connection (held ones included).
func (s *Server) take() ([]net.Listener, []*http.Server, []net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := append([]net.Conn(nil), s.held...)
	for c := range s.conns {
		conns = append(conns, c)
	}
	ls, srvs := s.listeners, s.https
	s.closed, s.conns, s.held = true, nil, nil
	return ls, srvs, conns
}

// Close stops every service and closes every connection, letting HTTP
// requests in flight finish within Grace.
func (s *Server) Close() {
	ls, srvs, conns := s.take()
	for _, l := range ls {
		l.Close()
	}
	grace := s.Grace
	if grace == 0 {
		grace = 2 * time.Second
	}
	for _, srv := range srvs {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		srv.Shutdown(ctx)
		cancel()
		srv.Close()
	}
	for _, c := range conns {
		rawConn(c).Close()
	}
	s.wg.Wait()
}

// Echo is RFC 862: write back what is read; return on EOF.
func Echo(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Discard is RFC 863: read and drop; return on EOF.
func Discard(c net.Conn) {
	buf := make([]byte, 256<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// Source sends an endless stream (byte i is i mod 256, repeating every
// 64 KiB) until the peer closes or resets; what the peer sends is read and
// dropped, and its EOF is answered with our FIN.
func Source(c net.Conn) {
	var pattern [64 << 10]byte
	for i := range pattern {
		pattern[i] = byte(i)
	}
	go func() {
		io.Copy(io.Discard, c)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	for {
		if _, err := c.Write(pattern[:]); err != nil {
			return
		}
	}
}

// Sized reads an 8-byte big-endian count N, sends N bytes (byte i is
// i mod 251) and returns, closing; what else the peer sends is read and
// dropped.
func Sized(c net.Conn) {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	n := binary.BigEndian.Uint64(hdr[:])
	go io.Copy(io.Discard, c)
	buf := pattern[:]
	for n > 0 {
		k := min(n, uint64(len(buf)))
		if _, err := c.Write(buf[:k]); err != nil {
			return
		}
		n -= k
	}
}

// pattern holds byte i = i mod 251 (a prime, so that a shifted copy does
// not match) for a whole number of periods, so that writing it again and
// again runs the pattern on. It is read-only once built: the services
// share it rather than filling a buffer per request (filling 64 KiB cost
// more than the rest of a small HTTP answer).
var pattern = func() (b [251 * 256]byte) {
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}()
