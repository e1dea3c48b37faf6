package link

import (
	"io"
	"sync"
)

// AsyncWriter hands writes to a goroutine that drains them into w, so that a
// slow disk never stalls the caller: a Tap records under the stack's write
// lock, and a write(2) to a file can block for seconds while the kernel
// throttles dirty pages; the stack's timers and output would stall with it.
// Write copies p and returns at once unless more than the limit is pending,
// in which case it waits for the writer to catch up (nothing is dropped).
type AsyncWriter struct {
	w     io.Writer
	limit int

	mu      sync.Mutex
	cond    *sync.Cond
	pending [][]byte
	size    int // bytes in pending
	closed  bool
	err     error
	done    chan struct{}
}

// NewAsyncWriter starts the drain goroutine for w; limit bounds the bytes
// pending (at least 1 MiB).
func NewAsyncWriter(w io.Writer, limit int) *AsyncWriter {
	a := &AsyncWriter{w: w, limit: max(limit, 1<<20), done: make(chan struct{})}
	a.cond = sync.NewCond(&a.mu)
	go a.drain()
	return a
}

// Write implements io.Writer. It reports the first error of an earlier
// write, if any.
func (a *AsyncWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.size > a.limit && a.err == nil && !a.closed {
		a.cond.Wait()
	}
	if a.err != nil {
		return 0, a.err
	}
	if a.closed {
		return 0, io.ErrClosedPipe
	}
	a.pending = append(a.pending, append([]byte(nil), p...))
	a.size += len(p)
	a.cond.Broadcast()
	return len(p), nil
}

func (a *AsyncWriter) drain() {
	defer close(a.done)
	a.mu.Lock()
	for {
		for len(a.pending) == 0 && !a.closed {
			a.cond.Wait()
		}
		if len(a.pending) == 0 {
			a.mu.Unlock()
			return
		}
		chunks := a.pending
		a.pending = nil
		a.mu.Unlock()
		var err error
		n := 0
		for _, c := range chunks {
			n += len(c)
			if err == nil {
				_, err = a.w.Write(c)
			}
		}
		a.mu.Lock()
		a.size -= n
		if err != nil && a.err == nil {
			a.err = err
		}
		a.cond.Broadcast()
	}
}

// Close writes out everything pending and stops the goroutine; it returns
// the first write error. It does not close w.
func (a *AsyncWriter) Close() error {
	a.mu.Lock()
	a.closed = true
	a.cond.Broadcast()
	a.mu.Unlock()
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}
