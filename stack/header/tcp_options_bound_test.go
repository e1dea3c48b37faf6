package header

import "testing"

// Regression tests for a bug found by fuzzing, fixed in PutTCPOptions:
// it used to write past its 40 bytes.
//
// PutTCPOptions promises to fit in 40 bytes but does not bound what it
// writes: TS (12 bytes with its NOPs) plus 4 SACK blocks (36) is 48 bytes, and
// options that arrive in 40 bytes on the wire (MSS + TS + 3 SACK blocks
// without NOP padding) take 44 when written back. Either way it indexes past
// a 40-byte buffer and panics. RFC 2018 §3: with timestamps at most 3 SACK
// blocks fit; PutTCPOptions should write only as many blocks as fit in the
// room left (or the TCP layer must cap NumSACK, and the doc comment say so).

func TestPutTCPOptionsTSAndFourSACKFitsIn40(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("PutTCPOptions(TS + 4 SACK blocks) into 40 bytes panicked: %v", r)
		}
	}()
	o := TCPOptions{TS: true, TSVal: 1, TSEcr: 2, NumSACK: 4,
		SACK: [MaxSACKBlocks]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}}
	var buf [40]byte
	n := PutTCPOptions(buf[:], &o)
	if n > 40 {
		t.Fatalf("wrote %d bytes", n)
	}
}

func TestPutTCPOptionsOfParsed40ByteOptionsFitsIn40(t *testing.T) {
	// MSS, TS, 3 SACK blocks: 4 + 10 + 26 = 40 bytes, a legal option area.
	wire := []byte{2, 4, 5, 180, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2,
		5, 26, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6}
	var o TCPOptions
	if err := ParseTCPOptions(wire, &o); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("PutTCPOptions of options parsed from 40 bytes panicked on a 40-byte buffer: %v", r)
		}
	}()
	var buf [40]byte
	PutTCPOptions(buf[:], &o)
}
