package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"ustack/tlslite"
)

// The bench services: the same server code on every stack, given that
// stack's net.Listener for each port.
const (
	benchPortEcho    = 7    // RFC 862 echo
	benchPortDiscard = 9    // read until EOF, then close (upload)
	benchPortSource  = 19   // read an 8-byte big-endian count N, send N bytes, close (download)
	benchPortHTTP    = 80   // net/http, a small page
	benchPortHTTPS   = 443  // the same over TLS 1.2 (tlslite on ustack, crypto/tls elsewhere)
	benchPortIdle    = 5001 // accept and hold, for the idle-connection memory figure
)

// benchPage is the body of GET / on the HTTP and HTTPS services.
const benchPage = "hello from the ustack bench server: the same net/http handler on every stack\n"

// benchDiscardLog silences net/http's per-connection errors (TLS
// handshakes cut short by a client at the end of a timed run).
var benchDiscardLog = log.New(io.Discard, "", 0)

// benchServer runs the bench services on one stack.
type benchServer struct {
	wg        sync.WaitGroup
	mu        sync.Mutex
	listeners []net.Listener
	conns     map[net.Conn]struct{}
	idle      []net.Conn // held by the idle service
	idleN     atomic.Int64
	https     []*http.Server
}

// benchListen opens a listener on a port of the stack under test.
type benchListen func(port uint16) (net.Listener, error)

// benchTLS wraps the HTTPS listener: tlslite for ustack, crypto/tls for the
// kernel and gVisor, both limited to TLS_RSA_WITH_AES_128_GCM_SHA256.
type benchTLS func(net.Listener) net.Listener

func startBenchServer(listen benchListen, wrapTLS benchTLS) (*benchServer, error) {
	s := &benchServer{conns: map[net.Conn]struct{}{}}
	type svc struct {
		port  uint16
		serve func(net.Listener)
	}
	for _, v := range []svc{
		{benchPortEcho, func(l net.Listener) { s.acceptLoop(l, benchEcho) }},
		{benchPortDiscard, func(l net.Listener) { s.acceptLoop(l, benchDiscard) }},
		{benchPortSource, func(l net.Listener) { s.acceptLoop(l, benchSource) }},
		{benchPortHTTP, s.serveHTTP},
		{benchPortHTTPS, func(l net.Listener) { s.serveHTTP(wrapTLS(l)) }},
		{benchPortIdle, s.hold},
	} {
		l, err := listen(v.port)
		if err != nil {
			s.close()
			return nil, err
		}
		s.listeners = append(s.listeners, l)
		s.wg.Add(1)
		go func() { defer s.wg.Done(); v.serve(l) }()
	}
	return s, nil
}

// noDelay turns Nagle off where the connection lets us (Go's net does it
// for kernel sockets; gvpeer's gVisor has it off by default).
func benchNoDelay(c net.Conn) {
	if nd, ok := c.(interface{ SetNoDelay(bool) error }); ok {
		nd.SetNoDelay(true)
	}
}

func (s *benchServer) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		return false // closed
	}
	if add {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *benchServer) acceptLoop(l net.Listener, handle func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			if benchTemporary(err) {
				continue
			}
			return
		}
		benchNoDelay(c)
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

func benchTemporary(err error) bool {
	var ne interface{ Temporary() bool }
	return errors.As(err, &ne) && ne.Temporary() && !errors.Is(err, net.ErrClosed)
}

func benchEcho(c net.Conn) {
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

func benchDiscard(c net.Conn) {
	buf := make([]byte, 256<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// benchSource sends the count of bytes asked for, then closes; what else
// the peer sends is read and dropped.
func benchSource(c net.Conn) {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	n := binary.BigEndian.Uint64(hdr[:])
	go io.Copy(io.Discard, c)
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i % 251)
	}
	for n > 0 {
		k := min(n, uint64(len(buf)))
		if _, err := c.Write(buf[:k]); err != nil {
			return
		}
		n -= k
	}
}

func (s *benchServer) serveHTTP(l net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, benchPage)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          benchDiscardLog,
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
					benchNoDelay(tc.NetConn())
				} else {
					benchNoDelay(c)
				}
			}
		},
	}
	s.mu.Lock()
	s.https = append(s.https, srv)
	s.mu.Unlock()
	srv.Serve(l)
}

// hold accepts connections and keeps them, doing nothing with them.
func (s *benchServer) hold(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			if benchTemporary(err) {
				continue
			}
			return
		}
		s.mu.Lock()
		s.idle = append(s.idle, c)
		s.mu.Unlock()
		s.idleN.Add(1)
	}
}

// close stops every service and closes every connection.
func (s *benchServer) close() {
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Lock()
	srvs := s.https
	conns := s.conns
	s.conns = nil
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, srv := range srvs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		srv.Shutdown(ctx)
		cancel()
		srv.Close()
	}
	for c := range conns {
		c.Close()
	}
	for _, c := range idle {
		c.Close()
	}
	s.wg.Wait()
}

// tlsliteWrap serves TLS with tlslite, RSA key exchange only.
func tlsliteWrap(d *tlslite.Dir) benchTLS {
	cfg := &tlslite.Config{Certificates: []tlslite.Certificate{d.Certificate}, KeyExchange: tlslite.KeyExchangeRSA}
	return func(l net.Listener) net.Listener { return tlslite.NewListener(l, cfg) }
}

// cryptoTLSWrap serves TLS 1.2 with crypto/tls and the one suite tlslite
// has: TLS_RSA_WITH_AES_128_GCM_SHA256.
func cryptoTLSWrap(d *tlslite.Dir) benchTLS {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: d.Certificate.Chain, PrivateKey: d.Certificate.PrivateKey}},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
	}
	return func(l net.Listener) net.Listener { return tls.NewListener(l, cfg) }
}
