package stack

import (
	"errors"
	"io"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack/tcp"
)

// TestAcceptQueueOverflowDropsNotResets: with a backlog of 1 and nobody
// accepting, clients beyond the accept queue's two places are not reset:
// their SYN or final ACK is dropped (Linux, tcp_abort_on_overflow=0), and
// once the application accepts, their retransmissions complete the
// handshakes and every client is served.
func TestAcceptQueueOverflowDropsNotResets(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	l, err := ListenConfig{Backlog: 1}.Listen(b, 7)
	if err != nil {
		t.Fatal(err)
	}
	const clients = 5
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := a.DialTCP(ctxT(t, 20*time.Second), netip.AddrPortFrom(addrB, 7))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if _, err := c.Write([]byte("ping")); err != nil {
				errs <- err
				return
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil {
				errs <- err
			}
		}()
	}
	waitfor.Cond(t, 5*time.Second, "the accept queue to fill and overflow", func() bool {
		return b.Stats().TCPListenOverflow > 0
	})
	for i := 0; i < clients; i++ {
		c, err := l.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		go func() { defer c.Close(); io.CopyN(c, c, 4) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("client: %v", err)
	}
	if n := b.Stats().TCPResetsSent; n != 0 {
		t.Errorf("%d resets sent", n)
	}
}

// TestDialerLocalAddr: a Dialer binds the port it is given; a listener's
// port is refused with EADDRINUSE, and so is a port other connections use
// unless ReuseAddr; the same 4-tuple twice is EADDRNOTAVAIL.
func TestDialerLocalAddr(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	if _, err := b.ListenTCP(80); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ListenTCP(8080); err != nil {
		t.Fatal(err)
	}
	raddr := netip.AddrPortFrom(addrB, 80)
	d := &Dialer{LocalAddr: netip.AddrPortFrom(addrA, 40000)}
	c, err := d.DialContext(ctxT(t, 5*time.Second), a, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.LocalAddr().String(); got != "198.18.0.1:40000" {
		t.Fatalf("local address %s, want 198.18.0.1:40000", got)
	}
	for _, tc := range []struct {
		d    Dialer
		want error
	}{
		{Dialer{LocalAddr: netip.AddrPortFrom(addrA, 8080)}, syscall.EADDRINUSE},
		{Dialer{LocalAddr: netip.AddrPortFrom(addrA, 8080), ReuseAddr: true}, syscall.EADDRINUSE},
		{Dialer{LocalAddr: netip.AddrPortFrom(addrA, 40000)}, syscall.EADDRINUSE},
		{Dialer{LocalAddr: netip.AddrPortFrom(addrA, 40000), ReuseAddr: true}, syscall.EADDRNOTAVAIL},
		{Dialer{LocalAddr: netip.AddrPortFrom(addrB, 1234)}, syscall.EADDRNOTAVAIL},
	} {
		if _, err := tc.d.DialContext(ctxT(t, 5*time.Second), a, raddr); !errors.Is(err, tc.want) {
			t.Errorf("dial from %v (reuse %v): %v, want %v", tc.d.LocalAddr, tc.d.ReuseAddr, err, tc.want)
		}
	}
	other := &Dialer{LocalAddr: netip.AddrPortFrom(addrA, 40000), ReuseAddr: true}
	if _, err := b.ListenTCP(81); err != nil {
		t.Fatal(err)
	}
	c2, err := other.DialContext(ctxT(t, 5*time.Second), a, netip.AddrPortFrom(addrB, 81))
	if err != nil {
		t.Fatalf("ReuseAddr to another remote: %v", err)
	}
	c2.Close()
}

// TestLingerZeroResets: SO_LINGER 0 makes Close an abort: the peer's read
// fails with ECONNRESET.
func TestLingerZeroResets(t *testing.T) {
	c, s := connected(t)
	c.SetLinger(0)
	c.Close()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Read(make([]byte, 10)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("peer read after linger-0 close: %v, want ECONNRESET", err)
	}
}

// TestLingerWaitsForAck: with SO_LINGER > 0, Close returns once the FIN is
// acknowledged: the connection is past FIN-WAIT-1.
func TestLingerWaitsForAck(t *testing.T) {
	c, s := connected(t)
	go io.Copy(io.Discard, s) // more than the peer's first receive buffer
	c.SetLinger(5)
	c.Write(make([]byte, 100000))
	c.Close()
	if st := c.State(); st != tcp.FinWait2 && st != tcp.TimeWait && st != tcp.Closed {
		t.Fatalf("Close with linger returned in %v", st)
	}
}

// TestWriteBeforeHandshakeFails: a Write on a connection still in SYN-SENT
// waits for the handshake and fails with its error: ECONNREFUSED when the
// peer resets (Linux's sk_stream_wait_connect).
func TestWriteBeforeHandshakeFails(t *testing.T) {
	a, _ := pair(t, Options{}, Options{})
	c, err := a.DialTCPAsync(netip.AddrPortFrom(addrB, 9), a.Options().TCP)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("write in SYN-SENT to a closed port: %v, want ECONNREFUSED", err)
	}
}

// TestCloseReadAndControls: CloseRead makes reads return EOF while writes
// go on; the other controls reach the TCB (TCP_INFO shows them).
func TestCloseReadAndControls(t *testing.T) {
	c, s := connected(t)
	if err := s.CloseRead(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after CloseRead: %v, want EOF", err)
	}
	if _, err := s.Write([]byte("still")); err != nil {
		t.Fatalf("write after CloseRead: %v", err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "still" {
		t.Fatalf("peer read %q, %v", buf, err)
	}
	c.SetUserTimeout(7 * time.Second)
	c.SetReadBuffer(1 << 16)
	c.SetWriteBuffer(1 << 16)
	c.SetCork(true)
	c.SetCork(false)
	c.SetFinWait2Timeout(time.Second)
	if i := c.TCPInfo(); i.UserTimeout != 7*time.Second || i.CAState != tcp.CAOpen {
		t.Fatalf("TCPInfo: user timeout %v, CA state %v", i.UserTimeout, i.CAState)
	}
	if err := c.SocketError(); err != nil {
		t.Fatalf("SO_ERROR on a healthy connection: %v", err)
	}
}

// connected is a connection between two test stacks: the client's end and
// the server's.
func connected(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	a, b := pair(t, Options{}, Options{})
	l, err := b.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB, 80))
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}
