package tcp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// TestCookieRoundTripAndExpiry: a cookie checks for the same 4-tuple and
// ISN within two periods, carries the MSS (rounded down to the table), and
// fails for another tuple, another ISN, or after it expired (RFC 4987 §3.6).
func TestCookieRoundTripAndExpiry(t *testing.T) {
	j, _ := NewCookieJar(bytes.NewReader(make([]byte, 16)))
	irs := seqnum.Value(777)
	iss := j.Make(testID, irs, 1300, t0)
	ack := Segment{Seq: irs + 1, Ack: iss + 1, Flags: ACK}
	if mss, ok := j.Check(testID, &ack, t0.Add(time.Second)); !ok || mss != 1200 {
		t.Fatalf("check: mss %d ok %v, want 1200 (1300 rounded down)", mss, ok)
	}
	if _, ok := j.Check(testID, &ack, t0.Add(cookiePeriod+time.Second)); !ok {
		t.Fatal("a cookie from the previous period was refused")
	}
	if _, ok := j.Check(testID, &ack, t0.Add(3*cookiePeriod)); ok {
		t.Fatal("an expired cookie was accepted")
	}
	other := testID
	other.Remote = netip.MustParseAddrPort("198.18.0.9:40000")
	if _, ok := j.Check(other, &ack, t0); ok {
		t.Fatal("a cookie passed for another 4-tuple")
	}
	wrongISN := ack
	wrongISN.Seq++
	if _, ok := j.Check(testID, &wrongISN, t0); ok {
		t.Fatal("a cookie passed for another peer ISN")
	}
}

// TestCookieKeepsOptionsInTimestamp: with timestamps, a cookie SYN-ACK
// offers window scaling and SACK and keeps the peer's in the low bits of its
// TSval (Linux's cookie_init_timestamp); the ACK that echoes it makes a
// connection with them. Without timestamps only the MSS survives.
func TestCookieKeepsOptionsInTimestamp(t *testing.T) {
	cfg := Config{MSS: 1460, RcvBuf: 1 << 20}.WithDefaults()
	syn := synWith(SYN, 0, 123456, 7, true, true)
	const tsNow = 1_000_000_123
	sa := SynAckForCookie(&syn, lISS, cfg, tsNow)
	o := sa.Opts
	if !o.TS || o.TSEcr != 123456 || o.WS != header.WS(5) || !o.SACKPermit || o.MSS != 1460 {
		t.Fatalf("cookie SYN-ACK options %+v: want TS echoing 123456, WS 5, SACK, MSS 1460", o)
	}
	if o.TSVal&cookieTSMask != 7|cookieSACKBit || int32(o.TSVal-tsNow) > 0 || tsNow-o.TSVal >= 64 {
		t.Fatalf("TSval %d: want the peer's WS 7 and SACK in its low bits, at most 63 ms behind %d", o.TSVal, uint32(tsNow))
	}
	s := newScript(t, cfg)
	ack := seg(ACK, rISS+1, lISS+1)
	ack.Opts.TS, ack.Opts.TSVal, ack.Opts.TSEcr = true, 123460, o.TSVal
	s.c.AcceptCookie(s.now, &ack, 1460)
	s.in(ack)
	s.state(Established)
	i := s.c.Info()
	if !i.Timestamps || !i.SACK || i.WindowScale != [2]header.WindowScale{header.WS(5), header.WS(7)} {
		t.Fatalf("connection from the cookie: TS %v SACK %v WS %v", i.Timestamps, i.SACK, i.WindowScale)
	}
	plain := synWith(SYN, 0, 0, 7, false, true)
	if sa := SynAckForCookie(&plain, lISS, cfg, tsNow); sa.Opts != (header.TCPOptions{MSS: 1460}) {
		t.Fatalf("cookie SYN-ACK without timestamps: %+v, want MSS only", sa.Opts)
	}
}
