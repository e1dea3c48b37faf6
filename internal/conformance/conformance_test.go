package conformance

import (
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"ustack/stack/header"
	"ustack/stack/ipv4"
	"ustack/stack/link"
)

func TestRender(t *testing.T) {
	f := newFlow(PeerPortBase, ListenPort, 5000)
	f.sent, f.sentSyn = AllOpts, true
	f.tsLo, f.tsHi = 100, 200
	synAck := rxSeg{flags: header.FlagSYN | header.FlagACK, seq: 9000, ack: 5001, window: 65535,
		opts: header.TCPOptions{MSS: 1460, WS: header.WS(7), SACKPermit: true, TS: true, TSVal: 77, TSEcr: 150}}
	f.learn(synAck)
	if got, want := f.render(synAck), "S. seq=0 ack=1 [mss 1460,sackOK,TS,ws]"; got != want {
		t.Errorf("SYN-ACK renders as %q, want %q", got, want)
	}
	if !f.wsOn || !f.tsOn || f.rcvNxt != 9001 || f.tsRecent != 77 {
		t.Errorf("after the SYN-ACK: wsOn %v tsOn %v rcvNxt %d tsRecent %d", f.wsOn, f.tsOn, f.rcvNxt, f.tsRecent)
	}
	cases := []struct {
		seg  rxSeg
		want string
	}{
		{rxSeg{flags: header.FlagACK | header.FlagPSH, seq: 9001, ack: 5101, window: 10, payload: 100,
			opts: header.TCPOptions{TS: true, TSEcr: 300}}, "P. seq=1 ack=101 len=100 win=small [TS ecr?]"},
		{rxSeg{flags: header.FlagACK, seq: 9101, ack: 5101, window: 0}, ". seq=101 ack=101 win=0"},
		{rxSeg{flags: header.FlagACK, seq: 9101, ack: 5101, window: 12,
			opts: header.TCPOptions{NumSACK: 1, SACK: [4]header.SACKBlock{{Start: 5201, End: 5301}}}}, ". seq=101 ack=101 [sack 201-301]"},
		{rxSeg{flags: header.FlagRST, seq: 9101}, "R seq=101"},
	}
	for _, c := range cases {
		f.learn(c.seg)
		if got := f.render(c.seg); got != c.want {
			t.Errorf("renders as %q, want %q", got, c.want)
		}
	}
	if f.rcvNxt != 9101 {
		t.Errorf("rcvNxt %d after 100 bytes in order, want 9101", f.rcvNxt)
	}
}

func TestTimingBucket(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Millisecond: "now", 40 * time.Millisecond: "delayed", time.Second: "late"} {
		if got := timingBucket(d); got != want {
			t.Errorf("timingBucket(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestBuildParse(t *testing.T) {
	s := txSeg{srcPort: 1, dstPort: 2, flags: header.FlagSYN, seq: 7, window: 100, payload: 3,
		opts: header.TCPOptions{MSS: 1460, TS: true, TSVal: 9}}
	pkt := s.build()[link.Headroom:]
	h, err := header.ParseIPv4(pkt)
	if err != nil || h.Src() != PeerAddr || h.Dst() != TargetAddr {
		t.Fatalf("IPv4 header: %v", err)
	}
	if !header.TCPChecksumOK(h.Payload(), h.SrcBytes(), h.DstBytes()) {
		t.Errorf("bad TCP checksum")
	}
	got, ok := parseSeg(append([]byte(nil), pkt...), time.Now())
	if ok {
		t.Errorf("parseSeg took a segment from the peer: %+v", got)
	}
}

func TestBuildUnreachable(t *testing.T) {
	seg := txSeg{srcPort: 1, dstPort: 2, flags: header.FlagACK, seq: 7000}
	quote := seg.build()[link.Headroom:][:28]
	pkt := buildUnreachable(quote, icmpSpec{code: header.ICMPFragNeeded, mtu: 1000, seqDelta: 5})[link.Headroom:]
	h, err := header.ParseIPv4(pkt)
	if err != nil || h.Protocol() != header.ProtoICMP || h.Src() != PeerAddr || h.Dst() != TargetAddr {
		t.Fatalf("IPv4 header: %v", err)
	}
	if _, err := header.ParseICMPv4(h.Payload()); err != nil {
		t.Fatalf("ICMP message: %v", err)
	}
	// The quote names the peer as its source: parse it as the peer would.
	e, why := ipv4.New(PeerAddr).ParseICMPError(h)
	if why != 0 || !e.FragNeeded() || e.MTU != 1000 || e.Seq != 7005 || e.SrcPort != 1 || e.DstPort != 2 {
		t.Errorf("parsed as %+v (%v)", e, why)
	}
}

func TestErrorClass(t *testing.T) {
	for err, want := range map[error]string{
		nil: "ok", io.EOF: "EOF", os.ErrDeadlineExceeded: "timeout", net.ErrClosed: "closed",
		&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}: "ETIMEDOUT",
		os.NewSyscallError("connect", syscall.ECONNREFUSED):                          "ECONNREFUSED",
	} {
		if got := errorClass(err); got != want {
			t.Errorf("errorClass(%v) = %q, want %q", err, got, want)
		}
	}
	if got := roughly(449 * time.Millisecond); got != "~400ms" {
		t.Errorf("roughly(449ms) = %q", got)
	}
}

// TestUstackIsItsOwnReference plays a few scenarios twice on ustack: a
// harness that normalises properly finds a stack the same as itself.
func TestUstackIsItsOwnReference(t *testing.T) {
	want := []string{"passive-open-options", "active-open", "closed-port-ack", "data-ack", "rst-exact", "time-wait-fin-retransmit", "linger0",
		"icmp-host-unreachable-connect", "icmp-frag-needed", "write-before-handshake", "rst-after-fin"}
	for _, sc := range Scenarios() {
		if !slices.Contains(want, sc.Name) {
			continue
		}
		res, err := Compare(sc, NewUstack, NewUstack)
		if err != nil {
			t.Fatal(err)
		}
		if res.Verdict != Same || strings.Contains(res.Kernel.String(), "stopped") {
			t.Errorf("%s: %s\n  first:  %s\n  second: %s", sc.Name, res.Verdict, res.Kernel, res.Ustack)
		}
	}
}

func TestListing(t *testing.T) {
	l := Listing(Scenarios())
	for _, s := range []string{"**zero-window-probe**", "send . seq=SND.NXT+1073741824 x10 every 10ms", "listen on 7000 (backlog 1)"} {
		if !strings.Contains(l, s) {
			t.Errorf("listing lacks %q", s)
		}
	}
}

// Delays match within one rounding step, and only delays.
func TestSameLine(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"+~400ms: ACK", "+~400ms: ACK", true},
		{"+~400ms: ACK", "+~500ms: ACK", true},
		{"+~1100ms: RST|ACK", "+~1000ms: RST|ACK", true},
		{"+~400ms: ACK", "+~600ms: ACK", false},
		{"+~400ms: ACK", "+~400ms: RST", false},
		{"+~400ms: ACK len=1", "+~400ms: ACK len=2", false},
		{"+~0ms: ACK, +~200ms: ACK", "+~0ms: ACK, +~300ms: ACK", true},
	} {
		if got := sameLine(c.a, c.b); got != c.want {
			t.Errorf("sameLine(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
