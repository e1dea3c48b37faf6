package header

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// tcpSeg builds a TCP segment with the given raw option bytes (padded to a
// multiple of 4 with End) and payload.
func tcpSeg(flags uint8, opts []byte, payload []byte) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, OptEnd)
	}
	b := make([]byte, TCPMinHeaderLen+len(opts)+len(payload))
	copy(b[TCPMinHeaderLen:], opts)
	copy(b[TCPMinHeaderLen+len(opts):], payload)
	PutTCP(b, TCPFields{SrcPort: 443, DstPort: 51000, Seq: 0x01020304, Ack: 0x0a0b0c0d, Flags: flags, Window: 502, OptLen: len(opts)})
	return b
}

// Option layouts as real stacks send them.
var (
	// Linux SYN: MSS, SACK-permitted, TS, NOP, WS.
	linuxSYNOpts = []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7}
	// ACK with TS and three SACK blocks (40 bytes, the most that fits).
	tsSACKOpts = []byte{1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 8,
		1, 1, 5, 26, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0, 0, 0x30, 0, 0, 0, 0x40, 0, 0, 0, 0x50, 0, 0, 0, 0x60, 0}
	// Four SACK blocks, no TS.
	fourSACKOpts = []byte{1, 1, 5, 34, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4,
		0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0, 8}
)

func tcpSeeds() [][]byte {
	bad := func(b []byte, f func([]byte)) []byte { f(b); return b }
	return [][]byte{
		tcpSeg(FlagSYN, linuxSYNOpts, nil),
		tcpSeg(FlagSYN|FlagACK, []byte{2, 4, 0x05, 0x78, 1, 1, 4, 2, 1, 3, 3, 14}, nil),
		tcpSeg(FlagACK, tsSACKOpts, []byte("payload")),
		tcpSeg(FlagACK, fourSACKOpts, nil),
		tcpSeg(FlagACK|FlagPSH, nil, []byte("hello, world")),
		tcpSeg(FlagACK, []byte{1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8}, nil),
		// Unknown option (kind 30, MPTCP) skipped by length.
		tcpSeg(FlagSYN, []byte{30, 4, 0, 0, 2, 4, 1, 0}, nil),
		// Truncated options: TS with length running past the header.
		tcpSeg(FlagACK, []byte{1, 1, 8, 10, 0, 0}, nil),
		// Option length 0, 1, and a lone kind byte at the end.
		tcpSeg(FlagACK, []byte{30, 0, 0, 0}, nil),
		tcpSeg(FlagACK, []byte{30, 1, 0, 0}, nil),
		tcpSeg(FlagACK, []byte{1, 1, 1, 2}, nil),
		// Wrong fixed lengths for MSS, WS, SACK-perm, TS, SACK.
		tcpSeg(FlagSYN, []byte{2, 3, 0, 0}, nil),
		tcpSeg(FlagSYN, []byte{3, 4, 7, 0}, nil),
		tcpSeg(FlagSYN, []byte{4, 3, 0, 0}, nil),
		tcpSeg(FlagSYN, []byte{8, 8, 0, 0, 0, 0, 0, 0}, nil),
		tcpSeg(FlagACK, []byte{5, 2, 0, 0}, nil),
		tcpSeg(FlagACK, []byte{5, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil),
		// WS beyond 14 (RFC 7323 §2.3: use 14).
		tcpSeg(FlagSYN, []byte{3, 3, 200, 0}, nil),
		// Bad data offsets: below 20, beyond the segment.
		bad(tcpSeg(FlagACK, nil, nil), func(b []byte) { b[12] = 4 << 4 }),
		bad(tcpSeg(FlagACK, nil, nil), func(b []byte) { b[12] = 15 << 4 }),
		tcpSeg(FlagSYN, linuxSYNOpts, nil)[:30],
		make([]byte, 19),
		{},
	}
}

// FuzzParseTCP: ParseTCP and ParseTCPOptions never panic; options that parse
// survive PutTCPOptions and a second parse unchanged.
func FuzzParseTCP(f *testing.F) {
	for _, s := range tcpSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		seg, err := ParseTCP(b)
		if err != nil {
			return
		}
		// Every accessor is safe on a parsed view.
		_, _, _, _ = seg.SrcPort(), seg.DstPort(), seg.Seq(), seg.Ack()
		_, _, _ = seg.Flags(), seg.Window(), seg.Urgent()
		if off := seg.DataOffset(); off < TCPMinHeaderLen || off > len(b) ||
			len(seg.Options()) != off-TCPMinHeaderLen || len(seg.Payload()) != len(b)-off {
			t.Fatalf("data offset %d, options %d, payload %d, len %d", off, len(seg.Options()), len(seg.Payload()), len(b))
		}
		var o TCPOptions
		if ParseTCPOptions(seg.Options(), &o) != nil {
			return
		}
		checkOptionsRoundTrip(t, &o)
	})
}

// FuzzParseTCPOptions drives the option parser directly with any bytes
// (longer than a header can hold, too).
func FuzzParseTCPOptions(f *testing.F) {
	for _, s := range [][]byte{linuxSYNOpts, tsSACKOpts, fourSACKOpts, {1, 1, 8}, {5, 42}, {}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var o TCPOptions
		if ParseTCPOptions(b, &o) != nil {
			return
		}
		checkOptionsRoundTrip(t, &o)
	})
}

// putBufLen is room for everything PutTCPOptions can write for any
// TCPOptions value (MSS 4 + SACK-perm/TS 12 + WS 4 + SACK 4+32). It is more
// than the 40 bytes its doc comment promises: see tcp_knownbugs_test.go.
const putBufLen = 56

func checkOptionsRoundTrip(t *testing.T, o *TCPOptions) {
	t.Helper()
	if o.WS.Shift > 14 || !o.WS.Present && o.WS.Shift != 0 || o.NumSACK < 0 || o.NumSACK > MaxSACKBlocks {
		t.Fatalf("parsed out-of-range values: %+v", *o)
	}
	var buf [putBufLen]byte
	n := PutTCPOptions(buf[:], o)
	if n%4 != 0 {
		t.Fatalf("PutTCPOptions wrote %d bytes, not a multiple of 4", n)
	}
	var o2 TCPOptions
	if err := ParseTCPOptions(buf[:n], &o2); err != nil {
		t.Fatalf("reparse of %x: %v", buf[:n], err)
	}
	want := *o
	if o2.NumSACK < o.NumSACK {
		// PutTCPOptions writes only the SACK blocks that fit in the 40
		// bytes of option space with its padding (RFC 2018 §3), where
		// the wire may have packed one more without NOPs (TS, WS and
		// three blocks in 39 bytes): one more block must not have fit.
		more := 8
		if o2.NumSACK == 0 {
			more += 4 // the option's kind and length, with their NOPs
		}
		if n+more <= TCPMaxHeaderLen-TCPMinHeaderLen {
			t.Fatalf("PutTCPOptions wrote %d of %d SACK blocks in %d bytes: one more fits", o2.NumSACK, o.NumSACK, n)
		}
		want.NumSACK = o2.NumSACK
		clear(want.SACK[o2.NumSACK:])
	}
	if o2 != want {
		t.Fatalf("round trip changed options:\n got %+v\nwant %+v\nwire %x", o2, want, buf[:n])
	}
}

func TestTCPOptionsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		o    TCPOptions
		want []byte // exact wire form, when it matters
	}{
		{name: "none", o: TCPOptions{}, want: []byte{}},
		{name: "MSS only", o: TCPOptions{MSS: 1460}, want: []byte{2, 4, 0x05, 0xb4}},
		{name: "SYN all", o: TCPOptions{MSS: 1460, WS: WS(7), SACKPermit: true, TS: true, TSVal: 0x1234, TSEcr: 0},
			want: []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7}},
		{name: "SACK-perm no TS", o: TCPOptions{MSS: 536, WS: WS(0), SACKPermit: true},
			want: []byte{2, 4, 2, 24, 1, 1, 4, 2, 1, 3, 3, 0}},
		{name: "TS only", o: TCPOptions{TS: true, TSVal: 0xffffffff, TSEcr: 1},
			want: []byte{1, 1, 8, 10, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}},
		{name: "WS 14", o: TCPOptions{WS: WS(14)}, want: []byte{1, 3, 3, 14}},
		{name: "TS + 3 SACK", o: TCPOptions{TS: true, TSVal: 9, TSEcr: 8, NumSACK: 3,
			SACK: [MaxSACKBlocks]SACKBlock{{0x1000, 0x2000}, {0x3000, 0x4000}, {0x5000, 0x6000}}}, want: tsSACKOpts},
		{name: "4 SACK", o: TCPOptions{NumSACK: 4,
			SACK: [MaxSACKBlocks]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}}, want: fourSACKOpts},
		{name: "1 SACK wrapping", o: TCPOptions{NumSACK: 1, SACK: [MaxSACKBlocks]SACKBlock{{0xfffffff0, 0x10}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf [40]byte
			n := PutTCPOptions(buf[:], &tt.o)
			if tt.want != nil && !bytes.Equal(buf[:n], tt.want) {
				t.Errorf("wire %v\nwant %v", buf[:n], tt.want)
			}
			var got TCPOptions
			if err := ParseTCPOptions(buf[:n], &got); err != nil {
				t.Fatal(err)
			}
			if got != tt.o {
				t.Fatalf("got %+v\nwant %+v", got, tt.o)
			}
		})
	}
}

func TestParseTCPOptionsErrors(t *testing.T) {
	for _, b := range [][]byte{
		{2},                                // kind without length
		{2, 4, 5},                          // MSS running past the end
		{2, 3, 0},                          // MSS length 3
		{3, 2},                             // WS length 2
		{4, 3, 0},                          // SACK-perm length 3
		{8, 9, 0, 0, 0, 0, 0, 0, 0},        // TS length 9
		{5, 2},                             // SACK without blocks
		{5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // SACK not a multiple of 8
		{30, 0},                            // length 0
		{30, 1},                            // length 1
		{1, 1, 1, 30},                      // unknown kind at the very end
	} {
		var o TCPOptions
		if err := ParseTCPOptions(b, &o); err != ErrBadOption {
			t.Errorf("ParseTCPOptions(%v) = %v, want ErrBadOption", b, err)
		}
	}
}

func TestParseTCPOptionsTolerates(t *testing.T) {
	var o TCPOptions
	// Unknown options are skipped; End stops parsing even if junk follows;
	// WS above 14 is taken as 14 (RFC 7323 §2.3).
	if err := ParseTCPOptions([]byte{30, 4, 9, 9, 3, 3, 99, 1, 0, 2, 9}, &o); err != nil {
		t.Fatal(err)
	}
	if o.WS != WS(14) || o.MSS != 0 {
		t.Fatalf("%+v", o)
	}
}

// refChecksum is RFC 1071's reference algorithm, written out independently.
func refChecksum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var sum uint32
	for i := 0; i < len(all); i += 2 {
		sum += uint32(all[i])<<8 | uint32(all[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func TestTCPChecksum(t *testing.T) {
	src, dst := [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}
	for _, payload := range [][]byte{nil, []byte("a"), []byte("hello, world"), bytes.Repeat([]byte{0xff}, 1461)} {
		seg := tcpSeg(FlagACK|FlagPSH, linuxSYNOpts, payload)
		SetTCPChecksum(seg, src, dst)
		if !TCPChecksumOK(seg, src, dst) {
			t.Fatalf("len %d: checksum not OK right after SetTCPChecksum", len(seg))
		}
		// Against RFC 9293 §3.1's definition, computed independently.
		ph := make([]byte, 12)
		copy(ph, src[:])
		copy(ph[4:], dst[:])
		ph[9] = ProtoTCP
		binary.BigEndian.PutUint16(ph[10:], uint16(len(seg)))
		c := bytes.Clone(seg)
		c[16], c[17] = 0, 0
		if want, got := refChecksum(ph, c), binary.BigEndian.Uint16(seg[16:]); got != want && !(want == 0 && got == 0xffff) {
			t.Fatalf("len %d: checksum %#04x, reference %#04x", len(seg), got, want)
		}
		// Any single bit flip is detected.
		for i := 0; i < len(seg)*8; i += 7 {
			seg[i/8] ^= 1 << (i % 8)
			if TCPChecksumOK(seg, src, dst) {
				t.Fatalf("len %d: flip of bit %d not detected", len(seg), i)
			}
			seg[i/8] ^= 1 << (i % 8)
		}
		// The pseudo-header counts: wrong addresses fail.
		if TCPChecksumOK(seg, dst, [4]byte{198, 18, 0, 3}) {
			t.Fatalf("len %d: checksum OK with the wrong pseudo-header", len(seg))
		}
		if !TCPChecksumOK(seg, src, dst) {
			t.Fatal("restoring the bits did not restore the checksum")
		}
	}
}
