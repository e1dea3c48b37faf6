package link

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
)

// gateWriter blocks every Write until released, as a throttled disk does.
type gateWriter struct {
	mu   sync.Mutex
	gate chan struct{}
	buf  bytes.Buffer
	err  error
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	return g.buf.Write(p)
}

func TestAsyncWriterDoesNotBlockOnASlowWriter(t *testing.T) {
	g := &gateWriter{gate: make(chan struct{})}
	a := NewAsyncWriter(g, 0)
	var want bytes.Buffer
	for i := 0; i < 100; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 1000)
		// Every Write returns while the underlying writer is blocked.
		if n, err := a.Write(p); n != len(p) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
		p[0] ^= 0xff // the writer must have copied p
		p[0] ^= 0xff
		want.Write(p)
	}
	close(g.gate)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.buf.Bytes(), want.Bytes()) {
		t.Fatalf("wrote %d bytes, want %d in order", g.buf.Len(), want.Len())
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after Close: %v, want io.ErrClosedPipe", err)
	}
}

func TestAsyncWriterReportsTheFirstError(t *testing.T) {
	g := &gateWriter{gate: make(chan struct{}), err: errors.New("disk full")}
	close(g.gate)
	a := NewAsyncWriter(g, 0)
	a.Write([]byte("a"))
	if err := a.Close(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Close: %v, want disk full", err)
	}
}

func TestAsyncWriterWaitsBeyondItsLimit(t *testing.T) {
	g := &gateWriter{gate: make(chan struct{})}
	a := NewAsyncWriter(g, 1<<20)
	a.Write(make([]byte, 1<<20+1)) // over the limit now
	wrote := make(chan struct{})
	go func() {
		a.Write([]byte("y"))
		close(wrote)
	}()
	select {
	case <-wrote:
		t.Fatal("a write beyond the limit returned before the writer drained")
	default:
	}
	close(g.gate) // the disk catches up
	<-wrote
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if g.buf.Len() != 1<<20+2 {
		t.Fatalf("wrote %d bytes, want %d", g.buf.Len(), 1<<20+2)
	}
}
