package lab

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"time"

	"ustack/internal/record"
	"ustack/internal/waitfor"
	"ustack/stack"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// The syn-flood lab: a listen backlog of 4 (the SYN queue holds 5, as
// Linux counts) and 16 forged SYNs.
const (
	labFloodBacklog = 4
	labFloodSYNs    = 16
	// labSynAckRetries is Linux's tcp_synack_retries: a half-open
	// connection gives up after 1+2+4+8+16+32 = 63 s.
	labSynAckRetries = 5
)

var floodMsg = []byte("hello through the flood\n")

// floodSYNs builds n SYNs to the server from spoofed addresses (in the
// family's labFamily.spoofed, which nobody uses) and ports.
func (r *labRun) floodSYNs(n int, seed uint64) [][]byte {
	rng := labRand(seed)
	var b [8]byte
	var out [][]byte
	for range n {
		rng.Read(b[:])
		// The last two bytes of the address are random (the last one odd).
		a := r.fam.spoofed.Addr().AsSlice()
		a[len(a)-2], a[len(a)-1] = b[0], b[1]|1
		ip, _ := netip.AddrFromSlice(a)
		src := netip.AddrPortFrom(ip, 1024+binary.BigEndian.Uint16(b[2:])%64000)
		seq := binary.BigEndian.Uint32(b[4:])
		out = append(out, record.Build(src, r.fam.server, seq, 0, header.FlagSYN, nil))
	}
	return out
}

// spoofedPkt says whether a packet is to or from a forged address: the
// ladder does not draw them (a flood would fill it).
func (r *labRun) spoofedPkt(p record.Pkt) bool {
	return r.fam.spoofed.Contains(p.Src) || r.fam.spoofed.Contains(p.Dst)
}

// cookieBits decodes a SYN cookie ISN (RFC 4987 §3.6 as ustack, and
// Linux, lay it out): the top 5 bits are a 64-second counter mod 32, the
// next 3 the index of the peer's MSS.
func cookieBits(isn uint32) (t, mssIdx uint32) { return isn >> 27, isn >> 24 & 7 }

// cookieMSSIndex is the index a cookie gives the MSS of a client on a
// 1500-byte link: 7 for 1460 (IPv4), 6 for 1440 (IPv6), in the table
// ustack and Linux's IPv6 share (stack/tcp/cookie.go).
func (f labFamily) cookieMSSIndex() uint32 {
	if f.v6 {
		return 6
	}
	return 7
}

// isCookie reports whether isn is a cookie made at now (or the period
// before) for a client's MSS index mssIdx.
func isCookie(isn uint32, now time.Time, mssIdx uint32) bool {
	t, m := cookieBits(isn)
	cur := uint32(now.Unix() / 64)
	return m == mssIdx && (t == cur%32 || t == (cur-1)%32)
}

// floodFill checks that the flood filled the SYN queue: backlog+1
// half-open connections; the rest answered with cookies or dropped.
func (r *labRun) floodFill(st stack.Stats, cookies bool, dropped uint64) {
	half := uint64(labFloodBacklog + 1)
	rest := uint64(labFloodSYNs) - half
	if cookies {
		r.check(st.TCPPassiveOpens == half && st.TCPSynCookiesSent == rest,
			"the flood fills the SYN queue: %d half-open connections (backlog %d + 1); the other %d SYNs are answered with cookies (%d)", st.TCPPassiveOpens, labFloodBacklog, rest, st.TCPSynCookiesSent)
		return
	}
	r.check(st.TCPPassiveOpens == half && dropped == rest && st.TCPSynCookiesSent == 0,
		"the flood fills the SYN queue: %d half-open connections; without cookies the other %d SYNs are dropped and counted (%d)", st.TCPPassiveOpens, rest, dropped)
}

// cookieClaims checks the first half: the client connects through a
// cookie and its connection carries data.
func (r *labRun) cookieClaims(pk []record.Pkt, port uint16, st stack.Stats, got []byte) {
	sa, ok := record.First(pk, func(p record.Pkt) bool {
		return !p.ToServer && p.DstPort == port && p.Is(header.FlagSYN|header.FlagACK)
	})
	t, m := cookieBits(sa.Seq)
	r.check(ok && isCookie(sa.Seq, sa.T, r.fam.cookieMSSIndex()), "the SYN+ACK the client got carries a cookie ISN, %#08x: counter %d (the time in 64 s periods, mod 32), MSS index %d (%d)", sa.Seq, t, m, r.fam.mss1500())
	ack, okA := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.SrcPort == port && p.Is(header.FlagACK) })
	r.check(okA && ack.Ack == sa.Seq+1, "the client's ACK returns the cookie (ack=ISN+1) and the server rebuilds the connection from it")
	r.check(st.TCPSynCookiesOK == 1, "the server's counters: %d cookies sent, %d validated", st.TCPSynCookiesSent, st.TCPSynCookiesOK)
	r.check(string(got) == string(floodMsg), "the client's connection is established and carries data: the server read %q", got)
}

// noCookieClaims checks the second half: the client's SYNs are dropped
// until the half-open connections give up; then it connects.
func (r *labRun) noCookieClaims(pk []record.Pkt, port uint16, drained, connected time.Time, dropped uint64, wait time.Duration) {
	syns := record.Where(pk, func(p record.Pkt) bool { return p.ToServer && p.SrcPort == port && p.Is(header.FlagSYN) })
	unanswered := 0
	for _, s := range syns {
		if s.T.Before(drained) {
			unanswered++
		}
	}
	_, early := record.First(pk, func(p record.Pkt) bool {
		return !p.ToServer && p.DstPort == port && p.T.Before(drained)
	})
	r.check(unanswered >= 2 && !early, "the client's SYN goes unanswered while the queue is full: %d SYNs, no reply", unanswered)
	r.check(dropped >= uint64(unanswered), "the server drops each and counts it (syn_queue_full grew by %d)", dropped)
	r.check(!drained.IsZero(), "the half-open connections give up after their SYN+ACK retransmissions: the queue drains")
	r.check(!connected.IsZero() && !connected.Before(drained) && wait > 0,
		"the client's next SYN gets through: it connects %v after it started, instead of at once", wait)
}

// floodDrops is the server's count of SYNs dropped with the SYN queue
// full.
func floodDrops(s *stack.Stack) uint64 {
	var n uint64
	s.Each(func(name string, v uint64) {
		if name == "tcp.drop_syn_queue_full" {
			n = v
		}
	})
	return n
}

// drainedAt is when the last of the flood's half-open connections gave
// up, among the transitions from index k on.
func (r *labRun) drainedAt(k int) time.Time {
	var at time.Time
	n := 0
	for _, s := range r.rec.StateLog()[k:] {
		if s.Server && s.To == tcp.Closed && r.fam.spoofed.Contains(s.ID.Remote.Addr()) {
			at = s.T
			n++
		}
	}
	if n < labFloodBacklog+1 {
		return time.Time{}
	}
	return at
}

// floodWorld makes the in-memory world of one half: the server with a
// small backlog, cookies on or off.
func (r *labRun) floodWorld(cookies bool) (*labVWorld, *stack.Listener, error) {
	srv := tcp.Config{MaxSynRetries: labSynAckRetries}
	w, ln, err := r.vListen(labVConfig{cliSeed: 12, srvSeed: 12, srv: srv, srvOpts: func(o *stack.Options) {
		o.Backlog, o.NoSYNCookies = labFloodBacklog, !cookies
	}})
	if err != nil {
		return nil, nil, err
	}
	w.srvTap.hide = r.spoofedPkt
	w.cliTap.hide = r.spoofedPkt
	r.ladderHeader()
	return w, ln, nil
}

// flood writes the forged SYNs into the link towards the server, records
// them and lets the server answer, without drawing them.
func (r *labRun) floodMem(w *labVWorld) {
	syns := r.floodSYNs(labFloodSYNs, 12)
	first, _ := record.Parse(syns[0][link.Headroom:])
	r.say("an attacker sends %d SYNs from forged addresses and ports (e.g. %v), never to be completed (not drawn)", labFloodSYNs, netip.AddrPortFrom(first.Src, first.SrcPort))
	for _, b := range syns {
		p, _ := record.Parse(b[link.Headroom:])
		p.ToServer, p.T, p.Injected = true, r.now(), true
		r.rec.AddPkt(p)
	}
	r.setQuiet(true)
	w.cliEnd.WriteBatch(syns, link.Headroom)
	w.settle()
	r.setQuiet(false)
}

// labSYNFlood: forged SYNs fill the SYN queue; SYN cookies let a real
// client in; without them its SYNs are dropped until the queue drains.
func labSYNFlood(r *labRun) error {
	if !r.opts.NoCookies {
		if err := r.synFloodCookies(); err != nil {
			return err
		}
		r.section("the same flood, with SYN cookies off")
	}
	return r.synFloodNoCookies()
}

func (r *labRun) synFloodCookies() error {
	w, ln, err := r.floodWorld(true)
	if err != nil {
		return err
	}
	defer w.close()
	r.say("the server listens with backlog %d: its SYN queue holds %d half-open connections; SYN cookies are on (the default)", labFloodBacklog, labFloodBacklog+1)
	r.floodMem(w)
	filled := w.srv.Stats()
	r.say("the SYN queue is full; the server answers further SYNs with a cookie: an ISN that encodes the connection, so it keeps nothing")
	c, sc, err := w.establish(ln)
	if err != nil {
		return err
	}
	c.TryWrite(floodMsg)
	w.run(100 * time.Millisecond)
	buf := make([]byte, 100)
	n, _ := sc.TryRead(buf)
	r.say("the server read %q", buf[:n])
	r.floodFill(filled, true, 0)
	r.cookieClaims(r.rec.Packets(), c.LocalPort(), w.srv.Stats(), buf[:n])
	return nil
}

func (r *labRun) synFloodNoCookies() error {
	w, ln, err := r.floodWorld(false)
	if err != nil {
		return err
	}
	defer w.close()
	// Both halves' worlds start at the same virtual time: this half's
	// packets and transitions are told apart by their index.
	np, ns := len(r.rec.Packets()), len(r.rec.StateLog())
	r.say("the server listens with backlog %d: its SYN queue holds %d half-open connections; SYN cookies are off", labFloodBacklog, labFloodBacklog+1)
	r.floodMem(w)
	filled, drops := w.srv.Stats(), floodDrops(w.srv)
	w.run(500 * time.Millisecond)
	start := w.clk.Now()
	r.say("a real client connects")
	c, err := w.dial()
	if err != nil {
		return err
	}
	r.say("its SYNs are dropped while the queue is full; it retransmits them, backing off; the half-open connections give up after %d SYN+ACK retransmissions", labSynAckRetries)
	w.until(3*time.Minute, func() bool { return c.State() == tcp.Established || c.State() == tcp.Closed })
	var connected time.Time
	for _, e := range r.rec.StateLog()[ns:] {
		if !e.Server && e.To == tcp.Established {
			connected = e.T
		}
	}
	wait := time.Duration(0)
	if !connected.IsZero() {
		wait = connected.Sub(start)
	}
	r.say("the client is %s after %v", c.State(), wait)
	ln.TryAccept()
	r.floodFill(filled, false, drops)
	r.noCookieClaims(r.rec.Packets()[np:], c.LocalPort(), r.drainedAt(ns), connected, floodDrops(w.srv)-drops, wait)
	return nil
}

// The --tun halves run in real time: a half-open connection gives up
// after two SYN+ACK retransmissions, 250 ms apart at first (1.75 s).
const (
	labTUNSynAckRTO     = 250 * time.Millisecond
	labTUNSynAckRetries = 2
)

func labSYNFloodTUN(r *labRun) error {
	if !r.opts.NoCookies {
		if err := r.synFloodTUN(true); err != nil {
			return err
		}
		r.section("the same flood, with SYN cookies off")
	}
	return r.synFloodTUN(false)
}

// synFloodTUN is one half with --tun: a namespace of its own, the flood
// through a raw socket, the kernel as the real client.
func (r *labRun) synFloodTUN(cookies bool) error {
	cfg := tcp.Config{MaxSynRetries: labTUNSynAckRetries, InitialRTO: labTUNSynAckRTO}
	w, done, err := r.newTWorldWith(cfg, func(o *stack.Options) { o.Backlog, o.NoSYNCookies = labFloodBacklog, !cookies }, nil, nil)
	defer done()
	if err != nil {
		return err
	}
	w.tap.hide = r.spoofedPkt
	ln, err := w.srv.ListenTCP(labPort)
	if err != nil {
		return err
	}
	r.tunHeader()
	np, ns := len(r.rec.Packets()), len(r.rec.StateLog())
	if cookies {
		r.say("the server listens with backlog %d: its SYN queue holds %d half-open connections; SYN cookies are on (the default)", labFloodBacklog, labFloodBacklog+1)
	} else {
		r.say("the server listens with backlog %d: its SYN queue holds %d half-open connections; SYN cookies are off", labFloodBacklog, labFloodBacklog+1)
	}
	syns := r.floodSYNs(labFloodSYNs, 12)
	first, _ := record.Parse(syns[0][link.Headroom:])
	r.say("an attacker sends %d SYNs from forged addresses and ports (e.g. %v), never to be completed (not drawn)", labFloodSYNs, netip.AddrPortFrom(first.Src, first.SrcPort))
	r.setQuiet(true)
	for _, b := range syns {
		if err := w.sendRaw(b); err != nil {
			r.setQuiet(false)
			return err
		}
	}
	rest := uint64(labFloodSYNs - labFloodBacklog - 1)
	waitfor.Within(2*time.Second, func() bool {
		st := w.srv.Stats()
		return st.TCPSynCookiesSent+floodDrops(w.srv) >= rest
	})
	r.setQuiet(false)
	filled, drops := w.srv.Stats(), floodDrops(w.srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	r.say("a real client (the kernel) connects")
	c, err := w.dial(ctx, r.fam.server)
	if err != nil {
		return err
	}
	defer c.Close()
	port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	sc, err := labAccept(ln, 2*time.Second)
	if err != nil {
		return err
	}
	r.floodFill(filled, cookies, drops)
	if !cookies {
		pk := r.rec.Packets()[np:]
		sa, _ := record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.DstPort == port })
		r.say("the client is connected after %v", sa.T.Sub(start).Round(time.Millisecond))
		r.noCookieClaims(pk, port, r.drainedAt(ns), sa.T, floodDrops(w.srv)-drops, sa.T.Sub(start).Round(time.Millisecond))
		return nil
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	sc.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(floodMsg)
	got, _ := io.ReadAll(io.LimitReader(sc, int64(len(floodMsg))))
	r.say("the server read %q", got)
	r.cookieClaims(r.rec.Packets()[np:], port, w.srv.Stats(), got)
	return nil
}
