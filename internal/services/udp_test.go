package services

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"ustack/stack"
	"ustack/stack/link"
)

// TestServeUDPEcho: datagrams of every size come back whole to their
// sender, over two ustack stacks joined by a Pipe; Close ends the service
// with nil.
func TestServeUDPEcho(t *testing.T) {
	ea, eb := link.Pipe(1500)
	srvAddr, cliAddr := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1")
	srv, err := stack.New(eb, stack.Options{Addr: srvAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := stack.New(ea, stack.Options{Addr: cliAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	pc, err := srv.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 7))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ServeUDPEcho(pc) }()
	c, err := cli.DialUDP(netip.AddrPortFrom(srvAddr, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 0xffff)
	for _, n := range []int{0, 1, 1472, 1473, 9000, 65507} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:got], msg) {
			t.Fatalf("%d bytes: got %d, %v", n, got, err)
		}
	}
	pc.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeUDPEcho after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeUDPEcho did not return after Close")
	}
}
