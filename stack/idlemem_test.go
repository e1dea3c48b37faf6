package stack

import (
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"ustack/stack/clock"
	"ustack/stack/link"
)

// idleConnBytes opens n connections between two stacks over the
// in-memory pipe in virtual time, lets each exchange a request and an
// answer (so that its buffers have been used), and returns the heap bytes
// per connection per side once they are idle (perSide: HeapAlloc, both
// stacks' growth over 2n), and the server's alone (server: HeapAlloc plus
// StackInuse, as the bench's bytes_per_idle_conn counts HeapInuse plus
// StackInuse of a server-only process, measured once the client stack is
// closed and gone; HeapInuse here would count the holes the client's
// objects leave in spans they shared with the server's).
func idleConnBytes(tb testing.TB, n int) (perSide, server float64) {
	v := clock.NewVirtual()
	ea, eb := link.Pipe(1500)
	opts := Options{Clock: v, Manual: true, MaxConns: 2 * n, Backlog: n}
	b, err := New(eb, withAddr(opts, addrB))
	if err != nil {
		tb.Fatal(err)
	}
	defer b.Close()
	ln, err := b.ListenTCP(7)
	if err != nil {
		tb.Fatal(err)
	}
	b.Poll() // the poll buffers are the stack's, not a connection's
	bare := memNow()
	a, err := New(ea, withAddr(opts, addrA))
	if err != nil {
		tb.Fatal(err)
	}
	poll := func() {
		for {
			n0, _ := a.Poll()
			n1, _ := b.Poll()
			if n0+n1 == 0 {
				return
			}
		}
	}
	poll()
	before := memNow()
	clientStack := int64(before.HeapAlloc) - int64(bare.HeapAlloc) // freed with it
	cli := make([]*Conn, 0, n)
	srv := make([]*Conn, 0, n)
	req, buf := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), make([]byte, 512)
	for range n {
		c, err := a.DialTCPAsync(netip.AddrPortFrom(addrB, 7), a.opts.TCP)
		if err != nil {
			tb.Fatal(err)
		}
		poll()
		sc := ln.TryAccept()
		if sc == nil {
			tb.Fatal("no connection accepted")
		}
		c.TryWrite(req)
		poll()
		if k, _ := sc.TryRead(buf); k != len(req) {
			tb.Fatalf("server read %d bytes", k)
		}
		sc.TryWrite(buf[:200])
		poll()
		if k, _ := c.TryRead(buf); k != 200 {
			tb.Fatalf("client read %d bytes", k)
		}
		cli, srv = append(cli, c), append(srv, sc)
	}
	// Past the delayed ACKs: every connection idle.
	v.Advance(time.Second)
	poll()
	after := memNow()
	perSide = float64(after.HeapAlloc-before.HeapAlloc) / float64(2*n)
	// The client goes (its stack sends nothing as it closes); what is
	// left is the server's.
	a.Close()
	a, cli = nil, nil
	left := memNow()
	runtime.KeepAlive(srv)
	if f := os.Getenv("IDLEMEM_PROFILE"); f != "" { // the server's heap
		w, _ := os.Create(f)
		pprof.WriteHeapProfile(w)
		w.Close()
	}
	server = float64(int64(left.HeapAlloc+left.StackInuse)-int64(before.HeapAlloc+before.StackInuse)+clientStack) / float64(n)
	return perSide, server
}

func memNow() runtime.MemStats {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m
}

// TestIdleConnMemory: an idle established connection, once it has carried
// a request and an answer, costs its server at most 1.5 KiB (the TCB, the
// Conn, the congestion controller, the table entry): no data buffer, no
// loss-recovery records, no copy of the configuration.
func TestIdleConnMemory(t *testing.T) {
	per, server := idleConnBytes(t, 2000)
	t.Logf("per connection: %.0f bytes on each side, %.0f on the server", per, server)
	if server > 1536 {
		t.Errorf("an idle connection costs the server %.0f bytes, more than 1536", server)
	}
}

func withAddr(o Options, a netip.Addr) Options { o.Addr = a; return o }

// BenchmarkIdleConnMemory reports the heap one idle established
// connection costs a stack after it exchanged a request and an answer
// (bytes/conn): the TCB, the stack's Conn, its map entry and whatever
// buffers it still holds.
// server-bytes/conn is the server's share alone, over 10000 connections
// as the bench's bytes_per_idle_conn.
func BenchmarkIdleConnMemory(b *testing.B) {
	var per, srv float64
	for b.Loop() {
		per, srv = idleConnBytes(b, 10000)
	}
	b.ReportMetric(per, "bytes/conn")
	b.ReportMetric(srv, "server-bytes/conn")
}
