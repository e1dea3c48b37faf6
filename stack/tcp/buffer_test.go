package tcp

import (
	"bytes"
	"testing"
)

// TestBufferFIFOAndBoundedCopying: the buffer is a FIFO under any mix of
// appends and discards, and compaction moves each byte O(1) times.
func TestBufferFIFOAndBoundedCopying(t *testing.T) {
	var x buffer
	var model []byte
	next := byte(0)
	for i := 0; i < 20000; i++ {
		n := (i*7919)%3000 + 1
		p := make([]byte, n)
		for j := range p {
			p[j] = next
			next++
		}
		k := x.Append(p, 1<<16)
		model = append(model, p[:k]...)
		if d := (i * 104729) % 4000; d <= x.Len() {
			x.Discard(d)
			model = model[d:]
		}
		if !bytes.Equal(x.Bytes(), model) {
			t.Fatalf("step %d: buffer diverged from the model", i)
		}
		if x.Cap() > 4<<16 {
			t.Fatalf("capacity %d for a 64 KiB limit", x.Cap())
		}
	}
}
