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

// A pinned array (a packet on its way to the link points into it) is
// neither compacted nor given back to the pool: the pinned bytes stay as
// they were while the buffer moves on, and the last Unpin returns it.
func TestBufferPinned(t *testing.T) {
	fill := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	t.Run("compaction", func(t *testing.T) {
		var x buffer
		x.Append(fill(4096, 'a'), 1<<20)
		arr := x.h
		seg := Segment{Payload: x.Bytes()[3000:4000], arr: x.h}
		pin, ok := seg.Pin()
		if !ok {
			t.Fatal("Pin refused a send-buffer payload")
		}
		x.Discard(3000)
		// Unpinned, this would compact in place (3000 bytes consumed,
		// 1096 live, 2000 more fit): the pinned bytes would move.
		x.Append(fill(2000, 'b'), 1<<20)
		if x.h == arr {
			t.Fatal("the buffer compacted a pinned array")
		}
		if !bytes.Equal(seg.Payload, fill(1000, 'a')) {
			t.Fatal("the pinned bytes changed")
		}
		if got := x.Bytes(); !bytes.Equal(got, append(fill(1096, 'a'), fill(2000, 'b')...)) {
			t.Fatalf("the buffer holds %d wrong bytes", len(got))
		}
		if p := arr.pins.Load(); p != abandoned+1 {
			t.Fatalf("pins %#x, want abandoned with one pin", p)
		}
		pin.Unpin()
		if p := arr.pins.Load(); p != 0 {
			t.Fatalf("pins %#x after the last Unpin, want 0 (back in the pool)", p)
		}
	})
	t.Run("release", func(t *testing.T) {
		var x buffer
		x.Append(fill(1000, 'a'), 1<<20)
		arr := x.h
		seg := Segment{Payload: x.Bytes(), arr: x.h}
		pin, _ := seg.Pin()
		pin2, _ := seg.Pin()
		x.Discard(1000) // all acknowledged: the buffer lets the array go
		if x.h != nil || arr.pins.Load() != abandoned+2 {
			t.Fatalf("after the release: h %p, pins %#x", x.h, arr.pins.Load())
		}
		for range 64 {
			var y buffer
			y.Append(fill(1000, 'z'), 1<<20)
			if y.h == arr {
				t.Fatal("a pinned array was handed out again")
			}
		}
		if !bytes.Equal(seg.Payload, fill(1000, 'a')) {
			t.Fatal("the pinned bytes changed")
		}
		pin.Unpin()
		if arr.pins.Load() != abandoned+1 {
			t.Fatalf("pins %#x, want one left", arr.pins.Load())
		}
		pin2.Unpin()
		if arr.pins.Load() != 0 {
			t.Fatalf("pins %#x after the last Unpin", arr.pins.Load())
		}
	})
	t.Run("not a buffer", func(t *testing.T) {
		seg := Segment{Payload: []byte("x")}
		if _, ok := seg.Pin(); ok {
			t.Fatal("Pin took a payload that is not the send buffer's")
		}
	})
}

// An adopted PacketBuf: the receive buffer reads the payload where the
// reader put it, the reader takes a new buffer (Renew), and the array goes
// back to the pool once both are done with it, in either order.
func TestBufferAdoptsPacketBuf(t *testing.T) {
	for _, readerFirst := range []bool{true, false} {
		pb := NewPacketBuf(4096)
		old := pb.a
		payload := pb.Bytes()[100:1100]
		copy(payload, bytes.Repeat([]byte("p"), len(payload)))
		seg := Segment{Payload: payload}
		seg.InPacketBuf(pb)
		if seg.arr != old {
			t.Fatal("InPacketBuf did not see the payload in the PacketBuf")
		}
		var x buffer
		x.adopt(seg.arr, seg.Payload)
		if &x.Bytes()[0] != &payload[0] || x.Len() != 1000 {
			t.Fatal("the buffer does not hold the payload where it was read")
		}
		// More data goes behind it in the same array, still uncopied.
		x.Append([]byte("more"), 1<<20)
		if x.h != old || string(x.Bytes()[1000:]) != "more" {
			t.Fatal("an append after the adopted payload moved it")
		}
		if _, ok := seg.Pin(); ok {
			t.Fatal("a received segment's PacketBuf was pinned for sending")
		}
		readAll := func() {
			got := make([]byte, 2000)
			if n := x.Read(got); n != 1004 || !bytes.Equal(got[:1000], bytes.Repeat([]byte("p"), 1000)) {
				t.Fatalf("read %d bytes %q", n, got[:min(n, 8)])
			}
		}
		if readerFirst {
			if !pb.Renew() || pb.a == old || pb.a.pins.Load() != 1 {
				t.Fatal("Renew kept an adopted array")
			}
			if old.pins.Load() != adopted {
				t.Fatalf("pins %#x: the reader's hold is not gone", old.pins.Load())
			}
			readAll()
		} else {
			readAll()
			if old.pins.Load() != abandoned|adopted|1 {
				t.Fatalf("pins %#x: the buffer let go while the reader holds it", old.pins.Load())
			}
			if !pb.Renew() {
				t.Fatal("Renew missed the adoption")
			}
		}
		if old.pins.Load() != 0 {
			t.Fatalf("readerFirst=%v: pins %#x, want 0 (back in the pool)", readerFirst, old.pins.Load())
		}
	}
	// A payload that is not in the PacketBuf (a reassembled datagram).
	pb := NewPacketBuf(4096)
	seg := Segment{Payload: make([]byte, 100)}
	seg.InPacketBuf(pb)
	if seg.arr != nil {
		t.Fatal("InPacketBuf took a payload from elsewhere")
	}
	if pb.Renew() {
		t.Fatal("Renew without an adoption")
	}
}

// A receive buffer that holds data when a large payload arrives in a
// PacketBuf chains the array after its own instead of copying: bytes
// appended after it, and a second adopted payload, follow in order; reads
// in pieces cross the arrays; each array goes back once the reader that
// read into it and the buffer are both done with it.
func TestBufferChainsAdoptedPacketBufs(t *testing.T) {
	var x buffer
	var want []byte
	push := func(p []byte) {
		if n := x.Append(p, 1<<20); n != len(p) {
			t.Fatalf("appended %d of %d", n, len(p))
		}
		want = append(want, p...)
	}
	adopt := func(fill byte, n int) (PacketBuf, *array) {
		pb := NewPacketBuf(8192)
		p := pb.Bytes()[64 : 64+n]
		for i := range p {
			p[i] = fill + byte(i%7)
		}
		seg := Segment{Payload: p}
		seg.InPacketBuf(pb)
		before := x.Len()
		x.adopt(seg.arr, seg.Payload)
		if x.Len() != before+n {
			t.Fatalf("Len %d after adopting %d onto %d", x.Len(), n, before)
		}
		want = append(want, p...)
		return pb, pb.a
	}
	push(bytes.Repeat([]byte("a"), 3000)) // an array of its own
	pb1, a1 := adopt('A', 5000)
	if x.h == a1 || x.h.tail != a1 {
		t.Fatal("the adopted array is not chained after the buffer's own")
	}
	push([]byte("after the first"))
	pb2, a2 := adopt('K', 7000)
	push(bytes.Repeat([]byte("z"), 9000)) // more than a2 has left: a new array
	if x.Cap() < 3*8192 {
		t.Fatalf("Cap %d counts not every array of the chain", x.Cap())
	}
	// The readers renew their buffers (the end of their batches).
	if !pb1.Renew() || !pb2.Renew() {
		t.Fatal("Renew missed an adoption")
	}
	var got []byte
	for _, n := range []int{1000, 2500, 1, 4999, 7015, 3, 100000} {
		p := make([]byte, n)
		k := x.Read(p)
		got = append(got, p[:k]...)
		if x.Len() != len(want)-len(got) {
			t.Fatalf("Len %d after reading %d of %d", x.Len(), len(got), len(want))
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d appended and adopted in order", len(got), len(want))
	}
	if x.h != nil || x.Cap() != 0 {
		t.Fatal("the emptied buffer still holds an array")
	}
	for i, a := range []*array{a1, a2} {
		if a.pins.Load() != 0 || a.next != nil || a.tail != nil {
			t.Fatalf("adopted array %d: pins %#x, chained %v: not back in the pool clean", i, a.pins.Load(), a.next != nil || a.tail != nil)
		}
	}
	// Discard across the chain, then release the rest.
	push(bytes.Repeat([]byte("b"), 100))
	adopt('Q', 4000)
	push([]byte("tail"))
	x.Discard(150)
	if x.Len() != 3954 || x.Bytes()[0] != 'Q'+byte(50%7) {
		t.Fatalf("after Discard(150): Len %d, first byte %q", x.Len(), x.Bytes()[0])
	}
	x.release()
	if x.Len() != 0 || x.Cap() != 0 {
		t.Fatal("release left bytes")
	}
}
