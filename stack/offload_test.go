package stack

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// softOffload is a link.Offloader in software over an in-memory pipe, as
// the kernel behind a TUN is one: a TSO unit written to it is cut into
// segments of segSize payload bytes, each with its own IPv4 and TCP
// headers (sequence numbers advanced, FIN and PSH on the last only) and a
// completed checksum; a TCP packet within the MTU has its partial checksum
// completed. Reads are ReadBatch's, nothing vouched for.
type softOffload struct {
	*link.PipeEnd
	units atomic.Int64 // TSO units cut
	apart atomic.Int64 // packets whose payload came apart from the headers
}

func (o *softOffload) OffloadMaxSize() int { return link.MaxPacket }

func (o *softOffload) ReadOffload(bufs [][]byte, sizes []int, csumOK []bool, offset int) (int, error) {
	n, err := o.ReadBatch(bufs, sizes, offset)
	clear(csumOK[:n])
	return n, err
}

func (o *softOffload) WriteOffload(bufs [][]byte, offset int, payloads [][]byte, segSize []int) (int, error) {
	for i, b := range bufs {
		pkt, off := b[offset:], offset
		if i < len(payloads) && len(payloads[i]) > 0 {
			// Joined here as the kernel does when it reads a writev.
			pkt = append(append([]byte(nil), pkt...), payloads[i]...)
			b, off = pkt, 0
			o.apart.Add(1)
		}
		if segSize[i] == 0 {
			if _, err := o.WriteBatch([][]byte{b}, off); err != nil {
				return i, err
			}
			continue
		}
		size := len(pkt) // within the MTU: only the checksum to complete
		if len(pkt) > o.MTU() {
			o.units.Add(1)
			size = segSize[i]
		}
		for _, seg := range cutTSO(pkt, size) {
			if _, err := o.WriteBatch([][]byte{seg}, 0); err != nil {
				return i, err
			}
		}
	}
	return len(bufs), nil
}

// cutTSO cuts an IPv4/TCP unit with a partial checksum into segments of
// at most size payload bytes, with whole checksums.
func cutTSO(pkt []byte, size int) [][]byte {
	ihl := int(pkt[0]&0x0f) * 4
	thl := int(pkt[ihl+12]>>4) * 4
	hdr, payload := pkt[:ihl+thl], pkt[ihl+thl:]
	seq := binary.BigEndian.Uint32(pkt[ihl+4:])
	flags := pkt[ihl+13]
	var out [][]byte
	for off := 0; off < len(payload) || off == 0; off += size {
		end := min(off+size, len(payload))
		seg := append(append([]byte(nil), hdr...), payload[off:end]...)
		binary.BigEndian.PutUint16(seg[2:], uint16(len(seg)))
		seg[10], seg[11] = 0, 0
		binary.BigEndian.PutUint16(seg[10:], ^header.Checksum(seg[:ihl], 0))
		t := seg[ihl:]
		binary.BigEndian.PutUint32(t[4:], seq+uint32(off))
		if end < len(payload) {
			t[13] = flags &^ (header.FlagFIN | header.FlagPSH)
		}
		src, dst := netip.AddrFrom4([4]byte(seg[12:16])), netip.AddrFrom4([4]byte(seg[16:20]))
		header.SetTransportChecksum(t, 16, header.PseudoSum(header.ProtoTCP, src, dst, len(t)))
		out = append(out, seg)
		if end == len(payload) {
			break
		}
	}
	return out
}

// TSO end to end: over a link that cuts TSO units as the kernel does, 32
// MiB go each way intact, the senders hand the link units of many
// segments, and the segment counters count segments, not units.
func TestTSOThroughAnOffloadingLink(t *testing.T) {
	ea, eb := link.Pipe(1500)
	oa, ob := &softOffload{PipeEnd: ea}, &softOffload{PipeEnd: eb}
	// Every in-order payload that finds its receive buffer empty is
	// adopted where it was read (the default takes only super-packets,
	// which this link does not make).
	adopt := tcp.Config{AdoptMin: 1}
	a, err := New(oa, strict(Options{Addr: addrA, TCP: adopt}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ob, strict(Options{Addr: addrB, TCP: adopt}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	if a.tsoMax <= 1500 {
		t.Fatalf("the stack took no TSO from the link: tsoMax %d", a.tsoMax)
	}
	l, err := b.ListenTCP(9000)
	if err != nil {
		t.Fatal(err)
	}
	const size = 32 << 20
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	got := make(chan result, 2)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		go func() {
			io.Copy(c, newStream(2, size))
			c.(*Conn).CloseWrite()
		}()
		s, n, err := sum(c)
		got <- result{s, n, err}
	}()
	c, err := a.DialTCP(ctxT(t, 10*time.Second), netip.AddrPortFrom(addrB, 9000))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		io.Copy(c, newStream(1, size))
		c.CloseWrite()
	}()
	s, n, err := sum(c)
	got <- result{s, n, err}
	for range 2 {
		r := <-got
		if r.err != nil || r.n != size {
			t.Fatalf("received %d bytes, %v", r.n, r.err)
		}
		if r.sum != streamSum(1, size) && r.sum != streamSum(2, size) {
			t.Fatal("the bytes received are not the bytes sent")
		}
	}
	if oa.units.Load() == 0 || ob.units.Load() == 0 {
		t.Errorf("TSO units cut: %d and %d, want both > 0", oa.units.Load(), ob.units.Load())
	}
	// The units' payloads went from the send buffers to the link without
	// a copy (pinned there while the application went on writing).
	if oa.apart.Load() == 0 || ob.apart.Load() == 0 {
		t.Errorf("units written with the payload apart: %d and %d, want both > 0", oa.apart.Load(), ob.apart.Load())
	}
	for _, st := range []*Stack{a, b} {
		if q := st.Stats().Queues; len(q) != 1 || q[0].RxAdopted == 0 {
			t.Errorf("queue counters %+v: no payload adopted where it was read", q)
		}
	}
	if out := b.Stats().TCPSegsOut; out < size/1460 {
		t.Errorf("the sender counted %d segments out for %d bytes: units counted as one?", out, size)
	}
}

func streamSum(seed byte, n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, newStream(seed, n))
	return [32]byte(h.Sum(nil))
}
