package tcp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

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
