package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

const (
	mib = 1 << 20
	// patternLen is the period of the source service's stream: byte(i) for
	// i in 0..65535, repeated (cmd/ustack/serve.go).
	patternLen = 64 << 10
)

// bulkSize is the size of a full transfer: 256 MiB, or 32 MiB under -short.
func bulkSize() int64 {
	if testing.Short() {
		return 32 * mib
	}
	return 256 * mib
}

// stallTimeout fails a transfer that makes no progress for this long, well
// before its overall deadline.
const stallTimeout = 15 * time.Second

// watchdog wraps a connection so that each Read and Write must make
// progress within stallTimeout, and all of them finish by end.
type watchdog struct {
	c   *net.TCPConn
	end time.Time
}

func (w watchdog) deadline() time.Time {
	d := time.Now().Add(stallTimeout)
	if d.After(w.end) {
		d = w.end
	}
	return d
}

func (w watchdog) Read(p []byte) (int, error) {
	w.c.SetReadDeadline(w.deadline())
	n, err := w.c.Read(p)
	return n, w.explain(err)
}

func (w watchdog) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(w.deadline())
	n, err := w.c.Write(p)
	return n, w.explain(err)
}

func (w watchdog) explain(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if time.Now().Before(w.end) {
			return fmt.Errorf("stalled: no progress for %v: %w", stallTimeout, err)
		}
		return fmt.Errorf("overall deadline passed: %w", err)
	}
	return err
}

// transferResult describes one verified transfer.
type transferResult struct {
	bytes    int64
	elapsed  time.Duration
	sent     [32]byte // SHA-256 of what was sent (or expected)
	received [32]byte // SHA-256 of what arrived
}

func (r transferResult) mbps() float64 {
	return float64(r.bytes) / 1e6 / r.elapsed.Seconds()
}

func (r transferResult) String() string {
	s := fmt.Sprintf("%d MiB in %v: %.1f MB/s", r.bytes/mib, r.elapsed.Round(time.Millisecond), r.mbps())
	if r.received == ([32]byte{}) {
		return s // an upload: nothing came back to hash
	}
	return s + ", sha256 " + hex.EncodeToString(r.received[:8])
}

// echoRoundTrip writes size pseudo-random bytes (seeded) to c, an echo
// connection, while reading back what returns; then half-closes and reads
// to EOF. It returns the hashes of both streams and how many bytes came back.
//
// If maxInFlight > 0, the writer keeps at most that many bytes written but
// not yet read back, so that ustack's receive window (1 MiB) never closes
// even when this reader falls behind on a loaded machine: a zero window
// runs into the bug TestZeroWindowReopens shows, which these transfers are
// not about.
func echoRoundTrip(c *net.TCPConn, size int64, seed uint64, timeout time.Duration, maxInFlight int64) (transferResult, error) {
	var res transferResult
	start := time.Now()
	wd := watchdog{c: c, end: start.Add(timeout)}
	chunk := int64(256 << 10)
	if maxInFlight > 0 {
		chunk = min(chunk, maxInFlight/2)
	}
	var (
		mu       sync.Mutex
		progress = sync.NewCond(&mu)
		readBack int64
		stopped  bool // the reader gave up
	)
	werr := make(chan error, 1)
	go func() {
		rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
		h := sha256.New()
		buf := make([]byte, chunk)
		for left := size; left > 0; {
			n := min(chunk, left)
			if maxInFlight > 0 {
				mu.Lock()
				for size-left-readBack+n > maxInFlight && !stopped {
					progress.Wait()
				}
				mu.Unlock()
			}
			b := buf[:n]
			rng.Read(b)
			h.Write(b)
			if _, err := wd.Write(b); err != nil {
				werr <- fmt.Errorf("writing at byte %d: %w", size-left, err)
				return
			}
			left -= n
		}
		h.Sum(res.sent[:0])
		werr <- c.CloseWrite()
	}()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int64
	var rerr error
	for {
		m, err := wd.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		mu.Lock()
		readBack = n
		progress.Broadcast()
		mu.Unlock()
		if err == io.EOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	res.elapsed = time.Since(start)
	res.bytes = n
	h.Sum(res.received[:0])
	if rerr != nil {
		mu.Lock()
		stopped = true
		progress.Broadcast()
		mu.Unlock()
		c.Close() // unblock the writer
		<-werr
		return res, fmt.Errorf("reading back after %d bytes: %w", n, rerr)
	}
	if err := <-werr; err != nil {
		return res, err
	}
	if n != size {
		return res, fmt.Errorf("echo returned %d bytes, sent %d", n, size)
	}
	if res.sent != res.received {
		return res, fmt.Errorf("echo returned different bytes: sha256 sent %x, received %x", res.sent, res.received)
	}
	return res, nil
}

// sourcePattern is two periods of the source stream, so that any window of
// up to patternLen bytes starting anywhere in the first period is a slice.
var sourcePattern = func() []byte {
	b := make([]byte, 2*patternLen)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// readSource reads size bytes of the source service's stream from c and
// checks each byte against the pattern; it also hashes what arrived and
// what should have.
func readSource(c *net.TCPConn, size int64, timeout time.Duration) (transferResult, error) {
	var res transferResult
	start := time.Now()
	wd := watchdog{c: c, end: start.Add(timeout)}
	got, want := sha256.New(), sha256.New()
	buf := make([]byte, patternLen)
	var off int64
	for off < size {
		n := int64(len(buf))
		if size-off < n {
			n = size - off
		}
		if _, err := io.ReadFull(wd, buf[:n]); err != nil {
			return res, fmt.Errorf("reading at byte %d: %w", off, err)
		}
		p := off % patternLen
		exp := sourcePattern[p : p+n]
		if !bytes.Equal(buf[:n], exp) {
			i := 0
			for buf[i] == exp[i] {
				i++
			}
			return res, fmt.Errorf("byte %d is %#02x, want %#02x", off+int64(i), buf[i], exp[i])
		}
		got.Write(buf[:n])
		want.Write(exp)
		off += n
	}
	res.elapsed = time.Since(start)
	res.bytes = off
	got.Sum(res.received[:0])
	want.Sum(res.sent[:0])
	if res.sent != res.received {
		return res, fmt.Errorf("sha256 %x, want %x", res.received, res.sent)
	}
	return res, nil
}

// upload writes size pseudo-random bytes to c, a discard connection,
// half-closes and waits for the stack's FIN (the discard service closes on
// EOF, so its FIN means it read everything up to ours). Nothing may come
// back. That every byte arrived is all it shows: discard returns nothing
// whose contents could be checked, and the result carries no hash.
func upload(c *net.TCPConn, size int64, timeout time.Duration) (transferResult, error) {
	var res transferResult
	start := time.Now()
	wd := watchdog{c: c, end: start.Add(timeout)}
	rng := rand.NewChaCha8([32]byte{9})
	buf := make([]byte, 256<<10)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		rng.Read(buf[:n])
		if _, err := wd.Write(buf[:n]); err != nil {
			return res, fmt.Errorf("writing at byte %d: %w", size-left, err)
		}
		left -= n
	}
	if err := c.CloseWrite(); err != nil {
		return res, err
	}
	n, err := io.Copy(io.Discard, wd)
	res.elapsed = time.Since(start)
	res.bytes = size
	if err != nil {
		return res, fmt.Errorf("waiting for the stack's FIN: %w", err)
	}
	if n != 0 {
		return res, fmt.Errorf("discard sent %d bytes back", n)
	}
	return res, nil
}
