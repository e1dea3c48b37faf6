package gvpeer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"ustack/internal/waitfor"
)

var (
	addrA = netip.MustParseAddr("198.18.0.1")
	addrB = netip.MustParseAddr("198.18.0.2")
)

func pair(t *testing.T, opts Options) (*Host, *Host) {
	t.Helper()
	a, b, err := Pair(1500, addrA, addrB, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func waitState(t *testing.T, c *Conn, want string) {
	t.Helper()
	waitfor.Condf(t, 5*time.Second, func() string { return fmt.Sprintf("gVisor state %s (now %s)", want, c.State()) }, func() bool {
		return c.State() == want
	})
}

// TestPairTransferAndClose: gVisor on both ends of a Pipe moves 4 MiB,
// then closes gracefully through the expected states.
func TestPairTransferAndClose(t *testing.T) {
	a, b := pair(t, Options{SACK: true, CongestionControl: "cubic", TimeWait: 50 * time.Millisecond})
	l, err := b.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	want := sha256.Sum256(data)
	type res struct {
		c   *Conn
		sum [32]byte
		err error
	}
	got := make(chan res, 1)
	go func() {
		c, err := l.AcceptGV()
		if err != nil {
			got <- res{err: err}
			return
		}
		h := sha256.New()
		_, err = io.Copy(h, c)
		got <- res{c, [32]byte(h.Sum(nil)), err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, netip.AddrPortFrom(addrB, 80))
	if err != nil {
		t.Fatal(err)
	}
	if s := State(c); s != "ESTABLISHED" {
		t.Fatalf("state after dial %q", s)
	}
	if _, err := io.Copy(c, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.sum != want {
		t.Fatalf("receiver: err %v, sha256 equal %v", r.err, r.sum == want)
	}
	waitState(t, r.c, "CLOSE-WAIT")
	waitState(t, c, "FIN-WAIT2")
	r.c.Close()
	waitState(t, c, "TIME-WAIT")
	waitState(t, r.c, "CLOSED")
	c.Close()
	waitState(t, c, "CLOSED")
	st := a.Stats()
	if st.ActiveOpens != 1 || st.SegmentsSent == 0 || st.LinkPacketsOut == 0 || b.Stats().PassiveOpens != 1 {
		t.Fatalf("stats %+v / %+v", st, b.Stats())
	}
}

// TestDialRefused: a SYN to a port with no listener is reset.
func TestDialRefused(t *testing.T) {
	a, _ := pair(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.Dial(ctx, netip.AddrPortFrom(addrB, 81))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial: %v, want ECONNREFUSED", err)
	}
}

// TestListenerClose ends a pending Accept with net.ErrClosed.
func TestListenerClose(t *testing.T) {
	a, _ := pair(t, Options{})
	l, err := a.Listen(82)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
}
