package link

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tapPacket builds an IPv4/ICMP echo request from src to dst with a valid
// header checksum and a payload of n bytes.
func tapPacket(src, dst string, id uint16, n int) []byte {
	p := make([]byte, 20+8+n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], id)
	p[8] = 64
	p[9] = 1 // ICMP
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], tapChecksum(p[:20]))
	icmp := p[20:]
	icmp[0] = 8 // echo request
	binary.BigEndian.PutUint16(icmp[4:], id)
	for i := range n {
		icmp[8+i] = byte(i)
	}
	binary.BigEndian.PutUint16(icmp[2:], tapChecksum(icmp))
	return p
}

func tapChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func withHeadroom(pkts ...[]byte) [][]byte {
	bufs := make([][]byte, len(pkts))
	for i, p := range pkts {
		bufs[i] = append(bytes.Repeat([]byte{0xEE}, Headroom), p...)
	}
	return bufs
}

// pcapngCapture is what parsePcapng found.
type pcapngCapture struct {
	linkType uint16
	ifName   string
	ifDesc   string
	tsresol  byte
	packets  []pcapngPacket
}

type pcapngPacket struct {
	ts    uint64
	flags uint32
	data  []byte
}

// parsePcapng is an independent little-endian pcapng reader: it checks every
// block's framing (both lengths, 32-bit alignment) and collects the fields
// the tests look at.
func parsePcapng(t *testing.T, b []byte) pcapngCapture {
	t.Helper()
	var c pcapngCapture
	le := binary.LittleEndian
	sawSHB, sawIDB := false, false
	for off := 0; off < len(b); {
		if len(b)-off < 12 {
			t.Fatalf("truncated block header at %d", off)
		}
		typ, n := le.Uint32(b[off:]), int(le.Uint32(b[off+4:]))
		if n%4 != 0 || n < 12 || off+n > len(b) {
			t.Fatalf("block at %d: bad total length %d", off, n)
		}
		if trailer := int(le.Uint32(b[off+n-4:])); trailer != n {
			t.Fatalf("block at %d: trailing length %d != %d", off, trailer, n)
		}
		body := b[off+8 : off+n-4]
		switch typ {
		case 0x0A0D0D0A:
			if off != 0 || le.Uint32(body) != 0x1A2B3C4D || le.Uint16(body[4:]) != 1 || le.Uint16(body[6:]) != 0 {
				t.Fatalf("bad section header block %x", body[:16])
			}
			sawSHB = true
		case 1:
			if !sawSHB {
				t.Fatal("interface block before section header")
			}
			c.linkType = le.Uint16(body)
			for code, v := range pcapngOptions(t, body[8:]) {
				switch code {
				case 2:
					c.ifName = string(v)
				case 3:
					c.ifDesc = string(v)
				case 9:
					c.tsresol = v[0]
				}
			}
			sawIDB = true
		case 6:
			if !sawIDB {
				t.Fatal("packet block before interface block")
			}
			if id := le.Uint32(body); id != 0 {
				t.Fatalf("packet on interface %d", id)
			}
			capLen, origLen := int(le.Uint32(body[12:])), int(le.Uint32(body[16:]))
			if capLen != origLen {
				t.Fatalf("captured %d of %d bytes", capLen, origLen)
			}
			p := pcapngPacket{
				ts:   uint64(le.Uint32(body[4:]))<<32 | uint64(le.Uint32(body[8:])),
				data: body[20 : 20+capLen],
			}
			for code, v := range pcapngOptions(t, body[20+(capLen+3)&^3:]) {
				if code == 2 {
					p.flags = le.Uint32(v)
				}
			}
			c.packets = append(c.packets, p)
		default:
			t.Fatalf("unexpected block type %#x", typ)
		}
		off += n
	}
	return c
}

func pcapngOptions(t *testing.T, b []byte) map[uint16][]byte {
	t.Helper()
	opts := map[uint16][]byte{}
	for len(b) >= 4 {
		code, n := binary.LittleEndian.Uint16(b), int(binary.LittleEndian.Uint16(b[2:]))
		if code == 0 {
			return opts
		}
		if 4+n > len(b) {
			t.Fatalf("option %d overruns its block", code)
		}
		opts[code] = b[4 : 4+n]
		b = b[4+(n+3)&^3:]
	}
	t.Fatal("options without opt_endofopt")
	return nil
}

// stepClock returns a clock that starts at base and advances by step on each call.
func stepClock(base time.Time, step time.Duration) func() time.Time {
	var mu sync.Mutex
	now := base
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := now
		now = now.Add(step)
		return t
	}
}

func TestTapRecordsBothDirections(t *testing.T) {
	a, b := Pipe(1500)
	defer b.Close()
	var capture bytes.Buffer
	base := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	tap, err := Tap(a, &capture, TapClock(stepClock(base, time.Millisecond)), TapInterface("tun-test", "ustack test link"))
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()

	out1 := tapPacket("198.18.0.2", "198.18.0.1", 1, 10)
	out2 := tapPacket("198.18.0.2", "198.18.0.1", 2, 33) // odd length: exercises padding
	in1 := tapPacket("198.18.0.1", "198.18.0.2", 3, 0)

	// Outbound: through the tap to the far end.
	if n, err := tap.WriteBatch(withHeadroom(out1, out2), Headroom); n != 2 || err != nil {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	got := make([][]byte, 4)
	for i := range got {
		got[i] = make([]byte, Headroom+1500)
	}
	sizes := make([]int, len(got))
	if n, err := b.ReadBatch(got, sizes, Headroom); n != 2 || err != nil {
		t.Fatalf("far end ReadBatch = %d, %v", n, err)
	}
	// Inbound: from the far end through the tap.
	if _, err := b.WriteBatch(withHeadroom(in1), Headroom); err != nil {
		t.Fatal(err)
	}
	if n, err := tap.ReadBatch(got, sizes, Headroom); n != 1 || err != nil {
		t.Fatalf("tap ReadBatch = %d, %v", n, err)
	}
	if !bytes.Equal(got[0][Headroom:Headroom+sizes[0]], in1) {
		t.Fatal("tap changed the packet it passed up")
	}
	if err := tap.Err(); err != nil {
		t.Fatal(err)
	}

	c := parsePcapng(t, capture.Bytes())
	if c.linkType != uint16(LinkTypeRaw) || c.ifName != "tun-test" || c.ifDesc != "ustack test link" || c.tsresol != 9 {
		t.Errorf("interface: linktype %d name %q desc %q tsresol %d", c.linkType, c.ifName, c.ifDesc, c.tsresol)
	}
	want := []pcapngPacket{
		{ts: uint64(base.UnixNano()), flags: epbFlagOutbound, data: out1},
		{ts: uint64(base.UnixNano()), flags: epbFlagOutbound, data: out2}, // one clock read per batch
		{ts: uint64(base.Add(time.Millisecond).UnixNano()), flags: epbFlagInbound, data: in1},
	}
	if len(c.packets) != len(want) {
		t.Fatalf("%d packets recorded, want %d", len(c.packets), len(want))
	}
	for i, w := range want {
		p := c.packets[i]
		if p.ts != w.ts || p.flags != w.flags || !bytes.Equal(p.data, w.data) {
			t.Errorf("packet %d: ts %d flags %d len %d; want ts %d flags %d len %d", i, p.ts, p.flags, len(p.data), w.ts, w.flags, len(w.data))
		}
	}

	checkWithTshark(t, capture.Bytes(), []string{
		"198.18.0.2\t198.18.0.1\tOutbound",
		"198.18.0.2\t198.18.0.1\tOutbound",
		"198.18.0.1\t198.18.0.2\tInbound",
	})
}

func TestTapLinkTypeIPv4(t *testing.T) {
	a, b := Pipe(1500)
	defer b.Close()
	var capture bytes.Buffer
	tap, err := Tap(a, &capture, TapLinkType(LinkTypeIPv4))
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	if _, err := tap.WriteBatch(withHeadroom(tapPacket("198.18.0.2", "198.18.0.1", 7, 5)), Headroom); err != nil {
		t.Fatal(err)
	}
	c := parsePcapng(t, capture.Bytes())
	if c.linkType != 228 || len(c.packets) != 1 {
		t.Fatalf("linktype %d, %d packets", c.linkType, len(c.packets))
	}
	checkWithTshark(t, capture.Bytes(), []string{"198.18.0.2\t198.18.0.1\tOutbound"})
}

// TestTapConcurrent reads and writes through one tap from two goroutines:
// the file must stay well formed and hold every packet once.
func TestTapConcurrent(t *testing.T) {
	a, b := Pipe(1500)
	var capture bytes.Buffer
	tap, err := Tap(a, &capture)
	if err != nil {
		t.Fatal(err)
	}
	const rounds, per = 50, 4
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // stack side writes
		defer wg.Done()
		for r := range rounds {
			var pkts [][]byte
			for i := range per {
				pkts = append(pkts, tapPacket("198.18.0.2", "198.18.0.1", uint16(r*per+i), r%7))
			}
			if _, err := tap.WriteBatch(withHeadroom(pkts...), Headroom); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() { // far side writes
		defer wg.Done()
		for r := range rounds * per {
			if _, err := b.WriteBatch(withHeadroom(tapPacket("198.18.0.1", "198.18.0.2", uint16(r), 3)), Headroom); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() { // stack side reads until it has them all
		defer wg.Done()
		bufs, sizes := ReadBuffers(8, 1500)
		for got := 0; got < rounds*per; {
			n, err := tap.ReadBatch(bufs, sizes, Headroom)
			if err != nil {
				t.Error(err)
				return
			}
			got += n
		}
	}()
	wg.Wait()
	tap.Close()
	b.Close()

	c := parsePcapng(t, capture.Bytes())
	var in, out int
	for _, p := range c.packets {
		switch p.flags {
		case epbFlagInbound:
			in++
		case epbFlagOutbound:
			out++
		default:
			t.Fatalf("flags %d", p.flags)
		}
		if tapChecksum(p.data[:20]) != 0 {
			t.Fatal("recorded packet with a broken IPv4 header")
		}
	}
	if in != rounds*per || out != rounds*per {
		t.Fatalf("recorded %d in, %d out; want %d each", in, out, rounds*per)
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after == 0 {
		return 0, fmt.Errorf("disk full")
	}
	w.after--
	return len(p), nil
}

func TestTapWriteErrorStopsRecordingNotLink(t *testing.T) {
	a, b := Pipe(1500)
	defer b.Close()
	tap, err := Tap(a, &failingWriter{after: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	pkt := tapPacket("198.18.0.2", "198.18.0.1", 1, 1)
	for range 2 {
		if n, err := tap.WriteBatch(withHeadroom(pkt), Headroom); n != 1 || err != nil {
			t.Fatalf("WriteBatch = %d, %v; the link must go on", n, err)
		}
	}
	if err := tap.Err(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Err() = %v", err)
	}
	if _, err := Tap(a, &failingWriter{}); err == nil {
		t.Fatal("Tap: header write error not returned")
	}
}

// checkWithTshark reads the capture with tshark, if installed: one row of
// "src dst direction" per packet, and nothing malformed.
func checkWithTshark(t *testing.T, capture []byte, want []string) {
	t.Helper()
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Log("tshark not installed: skipping the tshark check")
		return
	}
	file := filepath.Join(t.TempDir(), "tap.pcapng")
	if err := os.WriteFile(file, capture, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		cmd := exec.Command(tshark, append([]string{"-n", "-r", file}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no user profile
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark %v: %v\n%s", args, err, stderr.Bytes())
		}
		return string(out)
	}
	// frame.packet_flags_direction is 1 for inbound, 2 for outbound.
	direction := map[uint64]string{1: "Inbound", 2: "Outbound"}
	rows := strings.Split(strings.TrimSpace(run("-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "frame.packet_flags_direction")), "\n")
	for i, row := range rows {
		f := strings.Split(row, "\t")
		if len(f) == 3 {
			if d, err := strconv.ParseUint(f[2], 0, 32); err == nil && direction[d] != "" {
				f[2] = direction[d]
			}
		}
		rows[i] = strings.Join(f, "\t")
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("tshark rows:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	if v := run("-V"); strings.Contains(v, "Malformed") || strings.Contains(v, "Expert Info (Warning") {
		t.Errorf("tshark -V reports a problem:\n%s", v)
	}
}
