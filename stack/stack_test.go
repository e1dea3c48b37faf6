package stack

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// strict makes every TCB of a test stack panic on an illegal state
// transition instead of counting it.
func strict(o Options) Options {
	o.TCP.StrictTransitions = true
	return o
}

var (
	addrA = netip.MustParseAddr("198.18.0.1")
	addrB = netip.MustParseAddr("198.18.0.2")
)

// pair returns two stacks joined by an in-memory Pipe.
func pair(t testing.TB, optsA, optsB Options) (*Stack, *Stack) {
	t.Helper()
	ea, eb := link.Pipe(1500)
	optsA.Addr, optsB.Addr = addrA, addrB
	a, err := New(ea, strict(optsA))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(eb, strict(optsB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// stream is a deterministic pseudo-random byte source of a given length.
type stream struct {
	r *rand.ChaCha8
	n int64
}

func newStream(seed byte, n int64) *stream {
	var s [32]byte
	s[0] = seed
	return &stream{r: rand.NewChaCha8(s), n: n}
}

func (s *stream) Read(p []byte) (int, error) {
	if s.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.n {
		p = p[:s.n]
	}
	s.r.Read(p)
	s.n -= int64(len(p))
	return len(p), nil
}

func sum(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return [32]byte(h.Sum(nil)), n, err
}

// TestTransferBothWays64MiB: 64 MiB each way at once between two ustack
// stacks, SHA-256 equal, then a clean close on both sides.
func TestTransferBothWays64MiB(t *testing.T) {
	size := int64(64 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	short := Options{TCP: tcp.Config{MSL: 100 * time.Millisecond}}
	a, b := pair(t, short, short)
	l, err := b.ListenTCP(9000)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	server := make(chan result, 1)
	serverSent := make(chan result, 1)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			server <- result{err: err}
			return
		}
		accepted <- c
		go func() {
			src := newStream(2, size)
			h := sha256.New()
			n, err := io.Copy(c, io.TeeReader(src, h))
			if err == nil {
				err = c.(*Conn).CloseWrite()
			}
			serverSent <- result{[32]byte(h.Sum(nil)), n, err}
		}()
		s, n, err := sum(c)
		server <- result{s, n, err}
	}()
	c, err := a.DialTCP(ctxT(t, 10*time.Second), netip.AddrPortFrom(addrB, 9000))
	if err != nil {
		t.Fatal(err)
	}
	clientSent := make(chan result, 1)
	go func() {
		h := sha256.New()
		n, err := io.Copy(c, io.TeeReader(newStream(1, size), h))
		if err == nil {
			err = c.CloseWrite()
		}
		clientSent <- result{[32]byte(h.Sum(nil)), n, err}
	}()
	got, n, err := sum(c)
	if err != nil || n != size {
		t.Fatalf("client received %d bytes, err %v", n, err)
	}
	ss := <-serverSent
	if ss.err != nil || got != ss.sum {
		t.Fatalf("download: sha256 mismatch or error %v", ss.err)
	}
	cs := <-clientSent
	sr := <-server
	if cs.err != nil || sr.err != nil || sr.n != size || sr.sum != cs.sum {
		t.Fatalf("upload: server got %d bytes (err %v), client err %v, equal=%v", sr.n, sr.err, cs.err, sr.sum == cs.sum)
	}
	c.Close()
	sc := <-accepted
	sc.Close()
	// Whoever closed first waits 2*MSL in TIME-WAIT (both, if the FINs
	// crossed); then every TCB is gone.
	waitfor.Cond(t, 5*time.Second, "both stacks to drop the connection", func() bool {
		return b.Stats().TCPConns == 0 && a.Stats().TCPConns == 0
	})
}

// echoServer serves echo on l until it is closed.
func echoServer(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			io.Copy(c, c)
			c.Close()
		}()
	}
}

// TestThousandSequentialConnections: 1,000 connections one after another,
// each with a request, an echo and a close.
func TestThousandSequentialConnections(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	a, b := pair(t, Options{TCP: tcp.Config{MSL: 50 * time.Millisecond}}, Options{TCP: tcp.Config{MSL: 50 * time.Millisecond}})
	l, _ := b.ListenTCP(7)
	go echoServer(l)
	buf := make([]byte, 5)
	for i := 0; i < n; i++ {
		c, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB, 7))
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
			t.Fatalf("connection %d: echo %q, %v", i, buf, err)
		}
		c.CloseWrite()
		if _, err := c.Read(buf); err != io.EOF {
			t.Fatalf("connection %d: want EOF after the server's close, got %v", i, err)
		}
		c.Close()
	}
	st := b.Stats()
	if st.TCPEstablished != uint64(n) || st.TCPResetsSent != 0 {
		t.Fatalf("server stats: %+v", st)
	}
}

// TestHundredConcurrentConnections: 100 connections at once, each moving
// 256 KiB both ways through echo.
func TestHundredConcurrentConnections(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	l, _ := b.ListenTCP(7)
	go echoServer(l)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := a.DialTCP(ctxT(t, 20*time.Second), netip.AddrPortFrom(addrB, 7))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			size := int64(256 << 10)
			h := sha256.New()
			go func() {
				io.Copy(c, io.TeeReader(newStream(byte(i), size), h))
				c.CloseWrite()
			}()
			got, n, err := sum(c)
			if err != nil || n != size || got != [32]byte(h.Sum(nil)) {
				errs <- errors.Join(err, errors.New("echo mismatch"))
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDialClosedPortRefused: a SYN to a port with no listener is answered
// with RST|ACK and the dial fails with ECONNREFUSED.
func TestDialClosedPortRefused(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	_, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB, 81))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err %v, want ECONNREFUSED", err)
	}
	if b.Stats().TCPResetsSent != 1 {
		t.Fatalf("resets sent %d", b.Stats().TCPResetsSent)
	}
}

// TestReadDeadline: a read with no data returns os.ErrDeadlineExceeded at
// the deadline, and the connection still works after.
func TestReadDeadline(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	l, _ := b.ListenTCP(7)
	go echoServer(l)
	c, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB, 7))
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err %v is not a net.Error timeout", err)
	}
	c.SetReadDeadline(time.Time{})
	c.Write([]byte("x"))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
}

// TestPeerResetGivesECONNRESET: an abort on one side gives ECONNRESET on the
// other's next read.
func TestPeerResetGivesECONNRESET(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	l, _ := b.ListenTCP(7)
	accepted := make(chan *Conn, 1)
	go func() {
		c, _ := l.AcceptTCP()
		accepted <- c
	}()
	c, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB, 7))
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	sc.Abort()
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("err %v, want ECONNRESET", err)
	}
}
