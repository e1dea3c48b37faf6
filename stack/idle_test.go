package stack

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ustack/stack/link"
)

// TestWaitIdleAfterTransfer: once the peer has acknowledged every byte
// (and owes no delayed ACK) both stacks are idle, and then send nothing.
func TestWaitIdleAfterTransfer(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	l, err := b.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// More than a receive buffer holds at first: the peer reads it all,
	// so that no window update is still to come once the stacks are idle.
	read := make(chan error, 1)
	go func() { _, err := io.ReadFull(sc, make([]byte, 200_000)); read <- err }()
	if _, err := c.Write(make([]byte, 200_000)); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Stack{a, b} {
		if err := s.WaitIdle(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if i := c.Info(); i.Unacked != 0 || i.Unsent != 0 {
		t.Fatalf("idle with %d bytes unacknowledged, %d unsent", i.Unacked, i.Unsent)
	}
	out := a.Stats().TCPSegsOut + b.Stats().TCPSegsOut
	time.Sleep(100 * time.Millisecond) // more than the delayed ACK
	if now := a.Stats().TCPSegsOut + b.Stats().TCPSegsOut; now != out {
		t.Fatalf("idle stacks sent %d segments", now-out)
	}
}

// TestWaitIdleNotWhileSYNSent: a connection retransmitting its SYN keeps
// the stack busy, and WaitIdle says so when its context ends.
func TestWaitIdleNotWhileSYNSent(t *testing.T) {
	ea, eb := link.Pipe(1500) // nobody answers on eb
	defer eb.Close()
	a, err := New(ea, Options{Addr: addrA})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.WaitIdle(ctxT(t, time.Second)); err != nil {
		t.Fatalf("a new stack is not idle: %v", err)
	}
	if _, err := a.DialTCPAsync(netip.AddrPortFrom(addrB, 80), a.Options().TCP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = a.WaitIdle(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "SYN-SENT") {
		t.Fatalf("WaitIdle = %v, want a deadline error naming SYN-SENT", err)
	}
}

// TestWaitIdleOwedDelayedACK: in virtual time, a stack that owes a
// delayed ACK is busy until the clock passes it.
func TestWaitIdleOwedDelayedACK(t *testing.T) {
	a, b, ca, _, v := manualPair(t)
	for i := 0; i < 16; i++ { // past quick-ACK mode: these are ACKed at once
		ca.TryWrite([]byte("x"))
		b.Poll()
		a.Poll()
	}
	ca.TryWrite([]byte("x"))
	b.Poll() // b takes the byte and delays its ACK
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	if err := b.WaitIdle(short()); err == nil || !strings.Contains(err.Error(), "timer due") {
		t.Fatalf("b.WaitIdle with an ACK owed = %v", err)
	}
	if err := a.WaitIdle(short()); err == nil || !strings.Contains(err.Error(), "send buffer") {
		t.Fatalf("a.WaitIdle with a byte unacknowledged = %v", err)
	}
	v.Advance(b.Options().TCP.DelayedAck)
	a.Poll()
	for _, s := range []*Stack{a, b} {
		if err := s.WaitIdle(short()); err != nil {
			t.Fatal(err)
		}
	}
}
