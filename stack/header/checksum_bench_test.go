package header

import "testing"

// BenchmarkChecksum1460: the Internet checksum of a full segment's payload.
func BenchmarkChecksum1460(b *testing.B) {
	buf := make([]byte, 1460)
	for i := range buf {
		buf[i] = byte(i)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Checksum(buf, 0)
	}
}

// BenchmarkBuildSegment: options, header and checksum of a data segment.
func BenchmarkBuildSegment(b *testing.B) {
	buf := make([]byte, 1500)
	o := TCPOptions{TS: true, TSVal: 1, TSEcr: 2}
	src, dst := [4]byte{198, 18, 0, 2}, [4]byte{198, 18, 0, 1}
	b.SetBytes(1448)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		t := buf[20:]
		n := PutTCPOptions(t[20:], &o)
		PutTCP(t, TCPFields{SrcPort: 80, DstPort: 40000, Seq: uint32(i), Ack: 7, Flags: FlagACK, Window: 1000, OptLen: n})
		SetTCPChecksum(t[:20+n+1448], src, dst)
		PutIPv4(buf, IPv4Fields{TotalLen: uint16(40 + n + 1448), TTL: 64, Protocol: ProtoTCP, Src: src, Dst: dst})
	}
}
