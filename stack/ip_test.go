package stack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"ustack/stack/clock"
	"ustack/stack/header"
	"ustack/stack/ipv4"
	"ustack/stack/link"
)

// rawPeer is a test's hand on the other end of a Pipe: it writes packets it
// built and reads what the stack sends.
type rawPeer struct {
	ep   *link.PipeEnd
	addr [4]byte
	in   chan []byte
}

func newRawPeer(t *testing.T, opts Options) (*Stack, *rawPeer) {
	t.Helper()
	ea, eb := link.Pipe(1500)
	opts.Addr = addrB
	s, err := New(ea, strict(opts))
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{ep: eb, addr: addrA.As4(), in: make(chan []byte, 1024)}
	go func() {
		bufs := [][]byte{make([]byte, link.Headroom+65536)}
		sizes := []int{0}
		for {
			n, err := eb.ReadBatch(bufs, sizes, link.Headroom)
			if err != nil {
				close(p.in)
				return
			}
			if n == 1 {
				p.in <- bytes.Clone(bufs[0][link.Headroom : link.Headroom+sizes[0]])
			}
		}
	}()
	t.Cleanup(func() { s.Close() })
	return s, p
}

func (p *rawPeer) send(t *testing.T, pkt []byte) {
	t.Helper()
	b := make([]byte, link.Headroom+len(pkt))
	copy(b[link.Headroom:], pkt)
	if _, err := p.ep.WriteBatch([][]byte{b}, link.Headroom); err != nil {
		t.Fatal(err)
	}
}

// recv returns the next packet the stack sent that match accepts.
func (p *rawPeer) recv(t *testing.T, timeout time.Duration, match func(header.IPv4) bool) header.IPv4 {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case b, ok := <-p.in:
			if !ok {
				t.Fatal("link closed")
			}
			if h, err := header.ParseIPv4(b); err == nil && (match == nil || match(h)) {
				return h
			}
		case <-deadline:
			t.Fatalf("nothing within %v", timeout)
		}
	}
}

func isProto(proto uint8) func(header.IPv4) bool {
	return func(h header.IPv4) bool { return h.Protocol() == proto }
}

// datagram builds a datagram from the peer to the stack.
func (p *rawPeer) datagram(proto uint8, flags uint16, id uint16, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	header.PutIPv4(b, header.IPv4Fields{TotalLen: uint16(len(b)), ID: id, Flags: flags, TTL: 64,
		Protocol: proto, Src: p.addr, Dst: addrB.As4()})
	copy(b[20:], payload)
	return b
}

// icmpAbout is an ICMP error from the peer quoting the stack's datagram q.
func (p *rawPeer) icmpAbout(typ, code uint8, mtu uint16, q header.IPv4) []byte {
	m := header.ICMPv4(make([]byte, 8+min(len(q), 28)))
	m.SetType(typ)
	m.SetCode(code)
	binary.BigEndian.PutUint16(m[6:], mtu)
	copy(m[8:], q)
	m.UpdateChecksum()
	return p.datagram(header.ProtoICMP, 0, 1, m)
}

// TestICMPPortUnreachableFailsDial: RFC 1122 §4.2.3.9 and Linux: an ICMP
// port unreachable about our SYN ends the connect at once, ECONNREFUSED.
func TestICMPPortUnreachableFailsDial(t *testing.T) {
	for _, tc := range []struct {
		code uint8
		want syscall.Errno
	}{{3, syscall.ECONNREFUSED}, {1, syscall.EHOSTUNREACH}, {13, syscall.EHOSTUNREACH}, {0, syscall.ENETUNREACH}} {
		s, p := newRawPeer(t, Options{})
		done := make(chan error, 1)
		go func() {
			_, err := s.DialTCP(ctxT(t, 10*time.Second), netip.AddrPortFrom(addrA, 9))
			done <- err
		}()
		syn := p.recv(t, 5*time.Second, isProto(header.ProtoTCP))
		start := time.Now()
		p.send(t, p.icmpAbout(header.ICMPDestUnreach, tc.code, 0, syn))
		err := <-done
		if !errors.Is(err, tc.want) || time.Since(start) > time.Second {
			t.Fatalf("code %d: DialTCP = %v after %v, want %v at once", tc.code, err, time.Since(start), tc.want)
		}
		if m := statsOf(s); m["icmp.errors_to_conn"] != 1 {
			t.Fatalf("counters %v", m)
		}
	}
}

func statsOf(s *Stack) map[string]uint64 {
	m := map[string]uint64{}
	s.Each(func(n string, v uint64) { m[n] = v })
	return m
}

// TestICMPErrorChecks: an error quoting no connection or an old sequence
// number changes nothing and is counted; one about a passive connection in
// SYN-RECEIVED ends it only if Linux's tcp_req_err would.
func TestICMPErrorChecks(t *testing.T) {
	s, p := newRawPeer(t, Options{})
	l, err := s.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seg := make([]byte, 20)
	header.PutTCP(seg, header.TCPFields{SrcPort: 5555, DstPort: 80, Seq: 100, Flags: header.FlagSYN, Window: 1000})
	header.SetTCPChecksum(seg, p.addr, addrB.As4())
	p.send(t, p.datagram(header.ProtoTCP, header.IPv4FlagDF, 2, seg))
	synack := p.recv(t, 5*time.Second, isProto(header.ProtoTCP))
	p.send(t, p.icmpAbout(header.ICMPDestUnreach, header.ICMPPortUnreach, 0, synack))
	p.send(t, p.icmpAbout(header.ICMPDestUnreach, header.ICMPFragNeeded, 600, synack))
	waitCounter(t, s, "icmp.errors_req_ignored", 2)
	if s.Stats().TCPConns != 1 {
		t.Fatalf("the request went on a non-fatal error: %d conns", s.Stats().TCPConns)
	}
	// Not our sequence number: ignored (RFC 5927 §4.1).
	bad := header.IPv4(bytes.Clone(synack))
	binary.BigEndian.PutUint32(bad[bad.HeaderLen()+4:], 12345)
	p.send(t, p.icmpAbout(header.ICMPDestUnreach, header.ICMPHostUnreach, 0, bad))
	waitCounter(t, s, "icmp.errors_out_of_window", 1)
	p.send(t, p.icmpAbout(header.ICMPDestUnreach, header.ICMPHostUnreach, 0, synack))
	waitCounter(t, s, "icmp.errors_to_conn", 1)
	waitCounter(t, s, "tcp.conns", 0)
	// No such connection.
	other := header.IPv4(bytes.Clone(synack))
	binary.BigEndian.PutUint16(other[other.HeaderLen():], 81)
	p.send(t, p.icmpAbout(header.ICMPDestUnreach, header.ICMPPortUnreach, 0, other))
	waitCounter(t, s, "icmp.errors_no_conn", 1)
}

func waitCounter(t *testing.T, s *Stack, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for statsOf(s)[name] != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d (%v)", name, statsOf(s)[name], want, statsOf(s))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestProtocolUnreachable: RFC 1122 §3.2.2.1, answered, rate-limited.
func TestProtocolUnreachable(t *testing.T) {
	s, p := newRawPeer(t, Options{})
	udp := p.datagram(253, 0, 3, make([]byte, 8)) // RFC 3692: for experiments
	for range 10 {
		p.send(t, udp)
	}
	for range 6 { // Linux's per-peer burst
		h := p.recv(t, 5*time.Second, isProto(header.ProtoICMP))
		m := header.ICMPv4(h.Payload())
		if m.Type() != 3 || m.Code() != 2 || !bytes.Equal(m[8:], udp) {
			t.Fatalf("got type %d code %d", m.Type(), m.Code())
		}
	}
	waitCounter(t, s, "ip.icmp_rate_limited", 4)
}

// TestBigEchoFragmented: an 8000-byte echo request in fragments is
// reassembled and answered in fragments of at most the MTU.
func TestBigEchoFragmented(t *testing.T) {
	_, p := newRawPeer(t, Options{})
	data := make([]byte, 8000)
	for i := range data {
		data[i] = byte(i * 3)
	}
	m := header.ICMPv4(make([]byte, 8+len(data)))
	m.SetType(header.ICMPEcho)
	binary.BigEndian.PutUint16(m[4:], 77)
	copy(m[8:], data)
	m.UpdateChecksum()
	for off := 0; off < len(m); off += 1480 {
		end := min(off+1480, len(m))
		f := p.datagram(header.ProtoICMP, 0, 4, m[off:end])
		flags := uint16(header.IPv4FlagMF)
		if end == len(m) {
			flags = 0
		}
		header.IPv4(f).SetFragment(len(f), flags, off)
		p.send(t, f)
	}
	// Put the reply together by hand: offsets, MF, sizes.
	reply := make([]byte, len(m))
	got, last := 0, false
	for !last || got < len(m) {
		h := p.recv(t, 5*time.Second, isProto(header.ProtoICMP))
		if len(h) > 1500 || !h.IsFragment() || h.DF() {
			t.Fatalf("a %d-byte reply, fragment %v, DF %v", len(h), h.IsFragment(), h.DF())
		}
		off := h.FragmentOffset()
		if off+len(h.Payload()) > len(reply) {
			t.Fatalf("fragment at %d+%d beyond %d", off, len(h.Payload()), len(reply))
		}
		copy(reply[off:], h.Payload())
		got += len(h.Payload())
		last = last || !h.MoreFragments()
	}
	r, err := header.ParseICMPv4(reply)
	if err != nil || r.Type() != header.ICMPEchoReply || r.Ident() != 77 || !bytes.Equal(r[8:], data) {
		t.Fatalf("reply: %v, type %d", err, r.Type())
	}
}

// TestReassemblyTimeExceeded: 30 s after a first fragment alone, an ICMP
// time exceeded (code 1) quotes it, driven by the stack's clock.
func TestReassemblyTimeExceeded(t *testing.T) {
	vc := clock.NewVirtual()
	s, p := newRawPeer(t, Options{Clock: vc})
	f := p.datagram(header.ProtoICMP, header.IPv4FlagMF, 5, make([]byte, 1000))
	p.send(t, f)
	waitCounter(t, s, "ip.frag_held", 1)
	vc.Advance(29 * time.Second)
	if s.ip.Stats.ReassemblyQueues() != 1 {
		t.Fatal("queue gone before 30 s")
	}
	vc.Advance(time.Second)
	h := p.recv(t, 5*time.Second, isProto(header.ProtoICMP))
	m := header.ICMPv4(h.Payload())
	if m.Type() != 11 || m.Code() != 1 || !bytes.Equal(m[8:], f[:548]) {
		t.Fatalf("type %d code %d", m.Type(), m.Code())
	}
	if s.ip.Stats.ReassemblyQueues() != 0 || s.ip.Stats.ReassemblyBytes() != 0 {
		t.Fatal("queue left")
	}
}

// router joins two pipes and plays a router whose second link has MTU mtu:
// a datagram over it with DF set is answered with "fragmentation needed"
// (RFC 1191 §4), once per drop.
type router struct {
	mu      sync.Mutex
	tooBig  int
	addr    [4]byte
	mtu     int
	aEnd    *link.PipeEnd
	bEnd    *link.PipeEnd
	quitErr error
}

func (r *router) forward(from, to *link.PipeEnd) {
	bufs := [][]byte{make([]byte, link.Headroom+65536)}
	sizes := []int{0}
	for {
		n, err := from.ReadBatch(bufs, sizes, link.Headroom)
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		pkt := bufs[0][link.Headroom : link.Headroom+sizes[0]]
		h := header.IPv4(pkt)
		if len(pkt) > r.mtu && h.DF() {
			r.mu.Lock()
			r.tooBig++
			r.mu.Unlock()
			m := header.ICMPv4(make([]byte, 8+28))
			m.SetType(header.ICMPDestUnreach)
			m.SetCode(header.ICMPFragNeeded)
			binary.BigEndian.PutUint16(m[6:], uint16(r.mtu))
			copy(m[8:], pkt)
			m.UpdateChecksum()
			b := make([]byte, link.Headroom+20+len(m))
			header.PutIPv4(b[link.Headroom:], header.IPv4Fields{TotalLen: uint16(20 + len(m)), TTL: 64,
				Protocol: header.ProtoICMP, Src: r.addr, Dst: h.SrcBytes()})
			copy(b[link.Headroom+20:], m)
			from.WriteBatch([][]byte{b}, link.Headroom)
			continue
		}
		to.WriteBatch([][]byte{bufs[0][:link.Headroom+sizes[0]]}, link.Headroom)
	}
}

// TestFragNeededLowersMSS: a router on the path with MTU 1000 sends
// "fragmentation needed"; the sender's segments shrink at once (RFC 1191
// §6.2), the transfer completes, and a new connection to that peer starts
// with the smaller size.
func TestFragNeededLowersMSS(t *testing.T) {
	a1, r1 := link.Pipe(1500)
	r2, b2 := link.Pipe(1500)
	r := &router{addr: [4]byte{198, 18, 0, 254}, mtu: 1000}
	go r.forward(r1, r2)
	go r.forward(r2, r1)
	a, err := New(a1, strict(Options{Addr: addrA}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(b2, strict(Options{Addr: addrB}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close(); r1.Close(); r2.Close() })
	l, err := b.ListenTCP(7)
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 20
	got := make(chan []byte, 1)
	go func() {
		c, err := l.AcceptTCP()
		if err != nil {
			got <- nil
			return
		}
		buf, _ := io.ReadAll(c)
		c.Close()
		got <- buf
	}()
	c, err := a.DialTCP(ctxT(t, 10*time.Second), netip.AddrPortFrom(addrB, 7))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(newStream(9, size))
	if _, err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	select {
	case buf := <-got:
		if !bytes.Equal(buf, want) {
			t.Fatalf("received %d bytes, want %d equal", len(buf), size)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("transfer did not complete")
	}
	if mss := c.Info().SndMSS; mss > 960 {
		t.Fatalf("MSS %d after fragmentation needed for MTU 1000", mss)
	}
	if m := statsOf(a); m["icmp.pmtu_updates"] != 1 || m["icmp.errors_to_conn"] == 0 {
		t.Fatalf("counters %v", m)
	}
	c.Close()
	// A new connection starts below the path MTU: no more ICMP needed.
	r.mu.Lock()
	before := r.tooBig
	r.mu.Unlock()
	c2, err := a.DialTCP(ctxT(t, 10*time.Second), netip.AddrPortFrom(addrB, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if mss := c2.Info().SndMSS; mss > 960 {
		t.Fatalf("new connection's MSS %d", mss)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tooBig != before {
		t.Fatalf("the new connection's handshake hit the small MTU")
	}
}

// TestPMTUModes: in mode "want" DF is set until the path MTU is locked
// below 552 (then clear, as Linux); in mode "dont" it is never set, and a
// connection may choose its own mode.
func TestPMTUModes(t *testing.T) {
	vc := clock.NewVirtual()
	s, p := newRawPeer(t, Options{Clock: vc})
	go s.DialTCP(ctxT(t, time.Minute), netip.AddrPortFrom(addrA, 9))
	syn := p.recv(t, 5*time.Second, isProto(header.ProtoTCP))
	if !syn.DF() {
		t.Fatal("mode want: SYN without DF")
	}
	p.send(t, p.icmpAbout(header.ICMPDestUnreach, header.ICMPFragNeeded, 300, syn))
	waitCounter(t, s, "icmp.pmtu_updates", 1)
	if mtu, locked := s.ip.PMTU.Lookup(vc.Now(), addrA.As4()); mtu != 552 || !locked {
		t.Fatalf("path MTU %d, locked %v; want 552, locked", mtu, locked)
	}
	vc.Advance(time.Second) // the SYN again
	if syn := p.recv(t, 5*time.Second, isProto(header.ProtoTCP)); syn.DF() {
		t.Fatal("mode want, path MTU locked: SYN with DF")
	}

	s2, p2 := newRawPeer(t, Options{PMTUDiscovery: ipv4.PMTUDiscDont})
	go s2.DialTCP(ctxT(t, time.Minute), netip.AddrPortFrom(addrA, 9))
	if syn := p2.recv(t, 5*time.Second, isProto(header.ProtoTCP)); syn.DF() {
		t.Fatal("mode dont: SYN with DF")
	}
	var c *Conn
	s2.mu.RLock()
	for _, x := range s2.conns {
		c = x
	}
	s2.mu.RUnlock()
	c.SetPMTUDiscovery(ipv4.PMTUDiscDo)
	if s2.modeFor(c.tcb.ID) != ipv4.PMTUDiscDo {
		t.Fatal("per-connection mode not taken")
	}
	c.Abort()
	if s2.modes.n.Load() != 0 {
		t.Fatal("per-connection mode outlives the connection")
	}
}
