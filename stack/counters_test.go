package stack

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ustack/internal/waitfor"

	"ustack/stack/clock"
	"ustack/stack/counter"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// rawSeg builds an IPv4/TCP packet from addrA:sport to addrB:dport with
// the raw TCP options opts (a multiple of 4 bytes), then lets edit spoil
// it after the checksums are set.
func rawSeg(sport, dport uint16, flags uint8, opts []byte, edit func(ip, tcp []byte)) []byte {
	b := make([]byte, link.Headroom+40+len(opts))
	p := b[link.Headroom:]
	t := p[20:]
	copy(t[20:], opts)
	header.PutTCP(t, header.TCPFields{SrcPort: sport, DstPort: dport, Seq: 1000, Flags: flags, Window: 65535, OptLen: len(opts)})
	header.SetTCPChecksum(t, addrA.As4(), addrB.As4())
	header.PutIPv4(p, header.IPv4Fields{TotalLen: uint16(len(p)), TTL: 64, Protocol: header.ProtoTCP, Src: addrA.As4(), Dst: addrB.As4()})
	if edit != nil {
		edit(p, t)
	}
	return b
}

// drops returns the drop counters of every layer of s, by name.
func drops(s *Stack) map[string]uint64 {
	m := map[string]uint64{}
	s.Each(func(name string, v uint64) {
		if strings.Contains(name, ".drop_") {
			m[name] = v
		}
	})
	return m
}

// TestMalformedPacketCountsItsReason: each bad packet moves exactly one
// drop counter of the whole stack, the one named for its fault.
func TestMalformedPacketCountsItsReason(t *testing.T) {
	badMSS := []byte{header.OptMSS, 3, 0, 0} // MSS option of length 3
	tests := []struct {
		name, counter string
		opts          Options
		pkts          [][]byte // the last one is the bad one
	}{
		{name: "IP checksum", counter: "ip.drop_bad_checksum", pkts: [][]byte{rawSeg(5000, 80, header.FlagSYN, nil, func(ip, _ []byte) { ip[10] ^= 0xff })}},
		{name: "TCP checksum", counter: "tcp.drop_bad_checksum", pkts: [][]byte{rawSeg(5000, 80, header.FlagSYN, nil, func(_, tcp []byte) { tcp[16] ^= 0xff })}},
		{name: "data offset", counter: "tcp.drop_bad_header", pkts: [][]byte{rawSeg(5000, 80, header.FlagSYN, nil, func(_, tcp []byte) { tcp[12] = 4 << 4 })}},
		{name: "TCP option", counter: "tcp.drop_bad_options", pkts: [][]byte{rawSeg(5000, 80, header.FlagSYN, badMSS, nil)}},
		{name: "closed port", counter: "tcp.drop_no_connection", pkts: [][]byte{rawSeg(5000, 81, header.FlagSYN, nil, nil)}},
		{name: "SYN queue full", counter: "tcp.drop_syn_queue_full", opts: Options{Backlog: 1, NoSYNCookies: true},
			pkts: [][]byte{rawSeg(5000, 80, header.FlagSYN, nil, nil), rawSeg(5001, 80, header.FlagSYN, nil, nil), rawSeg(5002, 80, header.FlagSYN, nil, nil)}},
		{name: "connection limit", counter: "tcp.drop_conn_limit", opts: Options{MaxConns: 1},
			pkts: [][]byte{rawSeg(5000, 80, header.FlagSYN, nil, nil), rawSeg(5001, 80, header.FlagSYN, nil, nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ea, eb := link.Pipe(1500)
			tt.opts.Addr, tt.opts.Clock, tt.opts.Manual = addrB, clock.NewVirtual(), true
			s, err := New(eb, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			defer ea.Close()
			if _, err := s.ListenTCP(80); err != nil {
				t.Fatal(err)
			}
			last := len(tt.pkts) - 1
			ea.WriteBatch(tt.pkts[:last], link.Headroom)
			s.Poll()
			before := drops(s)
			ea.WriteBatch(tt.pkts[last:], link.Headroom)
			s.Poll()
			after := drops(s)
			if _, ok := after[tt.counter]; !ok {
				t.Fatalf("no counter %q among %v", tt.counter, after)
			}
			for name, v := range after {
				want := before[name]
				if name == tt.counter {
					want++
				}
				if v != want {
					t.Errorf("%s = %d, want %d", name, v, want)
				}
			}
		})
	}
}

// TestEveryStackCounterIsNamed: no event or drop reason of the stack lacks
// a name, and Each lists every layer, with no name twice.
func TestEveryStackCounterIsNamed(t *testing.T) {
	if err := counter.Validate(numEvents); err != nil {
		t.Error(err)
	}
	if err := counter.Validate(numDropReasons); err != nil {
		t.Error(err)
	}
	a, _ := pair(t, Options{}, Options{})
	seen := map[string]bool{}
	a.Each(func(name string, _ uint64) {
		if seen[name] {
			t.Errorf("%s listed twice", name)
		}
		seen[name] = true
	})
	for _, name := range []string{"ip.received", "ip.drop_bad_checksum", "ip.dropped", "tcp.segs_in",
		"tcp.drop_no_connection", "tcp.drop_tuple_in_use", "tcp.conns", "link.drop_queue_full",
		"udp.in_datagrams", "udp.drop_no_port", "udp.sockets", "icmp.errors_udp_ignored",
		"ip6.received", "ip6.drop_not_for_us", "ip6.reasm_bytes"} {
		if !seen[name] {
			t.Errorf("Each does not list %s", name)
		}
	}
	if err := counter.Validate(numICMPEvents); err != nil {
		t.Error(err)
	}
	nUDP := len(counter.Snapshot(a.udp.Stats)) + 1
	if want := len(a.ip.Stats.Snapshot()) + len(a.ip6.Stats.Snapshot()) + int(numEvents) + int(numDropReasons) + 1 + nUDP + int(numICMPEvents) + 2; len(seen) != want {
		t.Errorf("Each listed %d counters, want %d", len(seen), want)
	}
}

// TCPTotals counts open connections and keeps the counts of ended ones.
func TestTCPTotalsOpenAndEnded(t *testing.T) {
	short := Options{TCP: tcp.Config{MSL: 10 * time.Millisecond}}
	a, b := pair(t, short, short)
	l, err := b.ListenTCP(7)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB, 7))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("twelve bytes")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(sc, make([]byte, len(msg))); err != nil {
		t.Fatal(err)
	}
	open := a.TCPTotals()
	if open.BytesOut != uint64(len(msg)) || open.SegsOut < 3 {
		t.Fatalf("open connection: BytesOut %d SegsOut %d, want %d and >= 3", open.BytesOut, open.SegsOut, len(msg))
	}
	c.Close()
	sc.Close()
	if !waitfor.Within(5*time.Second, func() bool { return a.Stats().TCPConns == 0 }) {
		t.Fatal("the connection did not end")
	}
	ended := a.TCPTotals()
	if ended.BytesOut != open.BytesOut || ended.SegsOut <= open.SegsOut {
		t.Errorf("after the end: BytesOut %d SegsOut %d, want %d and > %d", ended.BytesOut, ended.SegsOut, open.BytesOut, open.SegsOut)
	}
}

// TestTCPTotalsCountsEndingConnections reads TCPTotals while connections
// end, over and over: the sum of every connection the stack has had can
// only grow. A connection that ended between the copy of the table and the
// read of the ended sum used to be in neither (the loss bench read all
// zeros once), and the sum went down.
func TestTCPTotalsCountsEndingConnections(t *testing.T) {
	short := Options{TCP: tcp.Config{MSL: time.Millisecond}}
	a, b := pair(t, short, short)
	l, err := b.ListenTCP(7)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			sc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, sc)
				sc.Close()
			}()
		}
	}()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var last uint64
		reads := 0
		for {
			select {
			case <-stop:
				if reads == 0 {
					done <- errors.New("no reads")
				}
				done <- nil
				return
			default:
			}
			n := a.TCPTotals().SegsOut
			reads++
			if n < last {
				done <- fmt.Errorf("read %d: SegsOut went down from %d to %d", reads, last, n)
				return
			}
			last = n
		}
	}()
	for i := 0; i < 200; i++ {
		c, err := a.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(addrB, 7))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		c.Close()
	}
	if !waitfor.Within(10*time.Second, func() bool { return a.Stats().TCPConns == 0 }) {
		t.Fatal("the connections did not end")
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
