package stack

import (
	"net/netip"
	"testing"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// rawSYN builds a SYN from src:port to dst:dport.
func rawSYN(src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	b := make([]byte, link.Headroom+40+4)
	p := b[link.Headroom:]
	t := p[20:]
	o := header.TCPOptions{MSS: 1460}
	n := header.PutTCPOptions(t[20:], &o)
	header.PutTCP(t, header.TCPFields{SrcPort: sport, DstPort: dport, Seq: seq, Flags: header.FlagSYN, Window: 65535, OptLen: n})
	header.SetTCPChecksum(t[:20+n], src.As4(), dst.As4())
	header.PutIPv4(p, header.IPv4Fields{TotalLen: uint16(40 + n), TTL: 64, Protocol: header.ProtoTCP, Src: src.As4(), Dst: dst.As4()})
	return b[:link.Headroom+40+n]
}

// TestSYNFloodRealClientConnectsThroughCookie: a flood of spoofed SYNs fills
// the half-open queue; the SYN-ACKs then carry cookies; a real client still
// connects, and the MSS it announced survives the cookie (RFC 4987 §3.6).
func TestSYNFloodRealClientConnectsThroughCookie(t *testing.T) {
	ea, eb := link.Pipe(1500)
	srv, err := New(eb, strict(Options{Addr: addrB, Backlog: 8}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The client announces MSS 1200 (its MTU is smaller).
	cli, err := New(ea, strict(Options{Addr: addrA, TCP: tcp.Config{MSS: 1200}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	l, _ := srv.ListenTCP(80)
	spoof := netip.MustParseAddr("198.19.7.7") // nobody answers for it
	var flood [][]byte
	for i := 0; i < 200; i++ {
		flood = append(flood, rawSYN(spoof, addrB, uint16(10000+i), 80, uint32(i*7919)))
	}
	ea.WriteBatch(flood, link.Headroom)
	waitfor.Cond(t, 5*time.Second, "the flood to be answered", func() bool {
		st := srv.Stats()
		return st.TCPPassiveOpens == 9 && st.TCPSynCookiesSent == 191 // the SYN queue holds backlog+1, as Linux
	})
	c, err := cli.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB, 80))
	if err != nil {
		t.Fatalf("a real client could not connect during the flood: %v", err)
	}
	defer c.Close()
	sc, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.TCPSynCookiesOK != 1 {
		t.Fatalf("cookie connections %d, want 1 (stats %+v)", st.TCPSynCookiesOK, st)
	}
	if mss := sc.Info().SndMSS; mss != 1200 {
		t.Fatalf("server's send MSS %d, want the client's 1200 kept in the cookie", mss)
	}
	// The timestamp kept window scaling and SACK (Linux's cookies do too).
	if i := sc.Info(); !i.Timestamps || !i.SACK || !i.WindowScale[0].Present || !i.WindowScale[1].Present {
		t.Fatalf("cookie connection lost options: TS %v SACK %v WS %v", i.Timestamps, i.SACK, i.WindowScale)
	}
	if i := c.Info(); !i.Timestamps || !i.SACK || !i.WindowScale[1].Present {
		t.Fatalf("client's view of the cookie connection: TS %v SACK %v WS %v", i.Timestamps, i.SACK, i.WindowScale)
	}
	// The connection works.
	if _, err := c.Write([]byte("through the flood")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 17)
	if _, err := sc.Read(buf); err != nil || string(buf) != "through the flood" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// TestRandomACKIsNotACookie: an ACK with a guessed sequence number does not
// pass as a cookie.
func TestRandomACKIsNotACookie(t *testing.T) {
	_, b := pair(t, Options{}, Options{})
	b.ListenTCP(80)
	id := tcp.ID{Local: netip.AddrPortFrom(addrB, 80), Remote: netip.AddrPortFrom(addrA, 5555)}
	seg := tcp.Segment{Seq: 100, Ack: 12345, Flags: header.FlagACK}
	if _, ok := b.jar.Check(id, &seg, time.Now()); ok {
		t.Fatal("a random ACK passed as a cookie")
	}
}
