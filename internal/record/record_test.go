package record

import (
	"net/netip"
	"testing"
	"time"

	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

var (
	cli = netip.MustParseAddrPort("198.18.0.1:40000")
	srv = netip.MustParseAddrPort("198.18.0.2:80")
)

// TestBuildParse: a built segment, IPv4 or IPv6, parses back to its
// fields, with valid checksums, and a SYN carries the MSS option of a
// 1500-byte link in its family.
func TestBuildParse(t *testing.T) {
	cli6 := netip.MustParseAddrPort("[2001:2::1]:40000")
	srv6 := netip.MustParseAddrPort("[2001:2::2]:80")
	for _, fam := range []struct {
		cli, srv netip.AddrPort
		mss      uint16
	}{{cli, srv, 1460}, {cli6, srv6, 1440}} {
		for _, c := range []struct {
			flags   uint8
			payload string
		}{
			{header.FlagSYN, ""},
			{header.FlagACK | header.FlagPSH, "hello"},
			{header.FlagFIN | header.FlagACK, ""},
		} {
			name := fam.cli.Addr().String() + " " + header.FlagString(c.flags)
			b := Build(fam.cli, fam.srv, 1000, 2000, c.flags, []byte(c.payload))
			pkt := b[link.Headroom:]
			var seg []byte
			if fam.cli.Addr().Is4() {
				ip, err := header.ParseIPv4(pkt)
				if err != nil {
					t.Fatalf("%s: IPv4: %v", name, err)
				}
				if !header.TCPChecksumOK(ip.Payload(), ip.SrcBytes(), ip.DstBytes()) {
					t.Errorf("%s: bad TCP checksum", name)
				}
				seg = ip.Payload()
			} else {
				ip, err := header.ParseIPv6(pkt)
				if err != nil || ip.NextHeader() != header.ProtoTCP || ip.PayloadLen() != len(pkt)-header.IPv6HeaderLen || ip.HopLimit() != 64 {
					t.Fatalf("%s: IPv6 header %x: %v", name, pkt[:header.IPv6HeaderLen], err)
				}
				seg = pkt[header.IPv6HeaderLen:]
				if header.Checksum(seg, header.PseudoSum(header.ProtoTCP, ip.Src(), ip.Dst(), len(seg))) != 0xffff {
					t.Errorf("%s: bad TCP checksum", name)
				}
			}
			p, ok := Parse(pkt)
			if !ok {
				t.Fatalf("%s: does not parse", name)
			}
			if p.Flags != c.flags || p.Seq != 1000 || p.Ack != 2000 || string(p.Payload) != c.payload ||
				p.Src != fam.cli.Addr() || p.Dst != fam.srv.Addr() || p.SrcPort != fam.cli.Port() || p.DstPort != fam.srv.Port() {
				t.Errorf("%s: parsed %+v", name, p)
			}
			tcpHdr, _ := header.ParseTCP(seg)
			var o header.TCPOptions
			header.ParseTCPOptions(tcpHdr.Options(), &o)
			if (c.flags&header.FlagSYN != 0) != (o.MSS == fam.mss) {
				t.Errorf("%s: MSS option %d", name, o.MSS)
			}
		}
	}
}

// TestParseRejects: what is not IPv4/TCP is not a segment.
func TestParseRejects(t *testing.T) {
	b := Build(cli, srv, 1, 2, header.FlagACK, nil)[link.Headroom:]
	for name, pkt := range map[string][]byte{
		"empty":     nil,
		"truncated": b[:30],
		"udp":       append([]byte(nil), b...),
	} {
		if name == "udp" {
			pkt[9] = 17
		}
		if _, ok := Parse(pkt); ok {
			t.Errorf("%s parses as TCP", name)
		}
	}
}

func TestIsHas(t *testing.T) {
	p := Pkt{Flags: header.FlagSYN | header.FlagACK | header.FlagPSH}
	if !p.Is(header.FlagSYN|header.FlagACK) || p.Is(header.FlagSYN) || !p.Has(header.FlagACK) || p.Has(header.FlagFIN) {
		t.Errorf("Is/Has wrong for %s", header.FlagString(p.Flags))
	}
}

// TestRecorder: states per side and port, the first entry into a state,
// and WaitPkts returning as soon as its condition holds.
func TestRecorder(t *testing.T) {
	var rec Recorder
	t0 := time.Unix(0, 0)
	id := tcp.ID{Local: srv, Remote: cli}
	rec.AddState(State{T: t0, Server: true, ID: id, From: tcp.Listen, To: tcp.SynReceived})
	rec.AddState(State{T: t0.Add(time.Second), Server: true, ID: id, From: tcp.SynReceived, To: tcp.Established})
	rec.AddState(State{T: t0, Server: false, ID: tcp.ID{Local: cli, Remote: srv}, From: tcp.Closed, To: tcp.SynSent})
	if got := rec.States(true, 0); !HasRun(got, "LISTEN", "SYN-RECEIVED", "ESTABLISHED") || len(got) != 3 {
		t.Errorf("server states %v", got)
	}
	if got := rec.States(true, 81); len(got) != 0 {
		t.Errorf("states on another port: %v", got)
	}
	if at, s, ok := rec.StateAt(true, 80, tcp.Established); !ok || !at.Equal(t0.Add(time.Second)) || s.From != tcp.SynReceived {
		t.Errorf("StateAt: %v %+v %v", at, s, ok)
	}
	if _, _, ok := rec.StateAt(false, 0, tcp.Established); ok {
		t.Errorf("the client never was ESTABLISHED")
	}
	go func() {
		time.Sleep(5 * time.Millisecond)
		rec.AddPkt(Pkt{ToServer: true, Flags: header.FlagSYN})
	}()
	pk := rec.WaitPkts(5*time.Second, Any(func(p Pkt) bool { return p.Has(header.FlagSYN) }))
	if len(pk) != 1 {
		t.Errorf("WaitPkts: %d packets", len(pk))
	}
	if got := rec.WaitPkts(time.Millisecond, AtLeast(2)); len(got) != 1 {
		t.Errorf("WaitPkts past its deadline: %d packets", len(got))
	}
}

// TestStream reassembles one direction from out-of-order, duplicated and
// dropped segments.
func TestStream(t *testing.T) {
	pk := []Pkt{
		{ToServer: true, Flags: header.FlagSYN, Seq: 99},
		{ToServer: true, Seq: 106, Payload: []byte("world")},
		{ToServer: true, Seq: 100, Payload: []byte("hello ")},
		{ToServer: true, Seq: 100, Payload: []byte("XXXXXX"), Dropped: true},
		{ToServer: false, Seq: 100, Payload: []byte("other way")},
		{ToServer: true, Seq: 106, Payload: []byte("wor")},
	}
	if got := string(Stream(pk, true)); got != "hello world" {
		t.Errorf("Stream = %q", got)
	}
	if got := Where(pk, func(p Pkt) bool { return !p.ToServer }); len(got) != 1 {
		t.Errorf("Where: %d", len(got))
	}
	if _, ok := First(pk, func(p Pkt) bool { return p.Has(header.FlagRST) }); ok {
		t.Errorf("First found an RST")
	}
}

// TestParseIPv6: an IPv6 packet whose next header is TCP parses with its
// addresses; one with another next header, or cut short, does not.
func TestParseIPv6(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::2")
	v4 := Build(cli, srv, 1000, 2000, header.FlagACK|header.FlagPSH, []byte("hi"))[link.Headroom:]
	seg := v4[20:]
	pkt := make([]byte, header.IPv6HeaderLen+len(seg))
	header.PutIPv6(pkt, header.IPv6Fields{PayloadLen: uint16(len(seg)), NextHeader: header.ProtoTCP, HopLimit: 64, Src: src.As16(), Dst: dst.As16()})
	copy(pkt[header.IPv6HeaderLen:], seg)
	p, ok := Parse(pkt)
	if !ok || p.Src != src || p.Dst != dst || p.SrcPort != cli.Port() || p.DstPort != srv.Port() || p.Seq != 1000 || p.Ack != 2000 || string(p.Payload) != "hi" {
		t.Fatalf("Parse = %+v, %v", p, ok)
	}
	other := append([]byte(nil), pkt...)
	other[6] = header.ProtoUDP
	for name, b := range map[string][]byte{"udp": other, "truncated": pkt[:len(pkt)-1]} {
		if _, ok := Parse(b); ok {
			t.Errorf("%s parses as TCP", name)
		}
	}
}
