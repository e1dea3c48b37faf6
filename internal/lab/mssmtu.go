package lab

import (
	"encoding/binary"
	"io"
	"net/netip"
	"sync/atomic"
	"time"

	"ustack/internal/record"
	"ustack/stack"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// The mss-mtu lab's numbers.
const (
	mmTSOpt = 12 // the timestamp option every segment carries (RFC 7323)
	mmDelay = 5 * time.Millisecond
	mmSize  = 20000
)

// mmMTUs are the MTUs of the mss-mtu lab in one family: the server's small
// link MTU, then a router with a small MTU in the middle of the path (and
// the --tun router's). IPv6 links carry at least 1280 bytes (RFC 8200
// §5), so its numbers stay at or above that.
type mmMTUs struct{ small, router, tunRouter int }

func (f labFamily) mmMTUs() mmMTUs {
	if f.v6 {
		return mmMTUs{small: 1400, router: 1280, tunRouter: 1280}
	}
	return mmMTUs{small: 1000, router: 1200, tunRouter: 800}
}

// hdr is the IP and TCP headers an MSS leaves out of the MTU: 40 bytes
// over IPv4, 60 over IPv6.
func (f labFamily) hdr() int { return f.ipHeader() + 20 }

// largest is the largest payload among the data segments in pk that
// match.
func largest(pk []record.Pkt, match func(record.Pkt) bool) int {
	m := 0
	for _, p := range pk {
		if len(p.Payload) > 0 && match(p) {
			m = max(m, len(p.Payload))
		}
	}
	return m
}

// labMSSMTU: each side announces MSS = its MTU − 40 and sends no more than
// the other announced; then a router with a smaller MTU drops a large
// segment and says why (ICMP "fragmentation needed", RFC 1191), and the
// sender shrinks its segments in the middle of the connection.
//
// Over IPv6 (-6) the MSS is the MTU − 60, and no router fragments: the
// router drops the packet and sends ICMPv6 "Packet Too Big" (RFC 8201,
// RFC 4443 §3.2).
func labMSSMTU(r *labRun) error {
	m, hdr := r.fam.mmMTUs(), r.fam.hdr()
	r.section("the MSS each side announces comes from its MTU")
	a, err := r.mmAnnounce()
	if err != nil {
		return err
	}
	r.section("path MTU discovery: a router with MTU %d in the middle", m.router)
	b, err := r.mmPMTU()
	if err != nil {
		return err
	}
	r.check(a.cliMSS == m.small-hdr && a.srvMSS == m.small-hdr,
		r.pick("the server's link has MTU %d, so it announces MSS %d; the client (MTU 1500, MSS 1460) sends with min(1460, %d) = %d (client %d, server %d)",
			"the server's link has MTU %d, so it announces MSS %d; the client (MTU 1500, MSS 1440) sends with min(1440, %d) = %d (client %d, server %d)"),
		m.small, m.small-hdr, m.small-hdr, m.small-hdr, a.cliMSS, a.srvMSS)
	r.check(a.cliMax == m.small-hdr-mmTSOpt && a.srvMax == m.small-hdr-mmTSOpt,
		"on the wire no segment carries more than %d − %d (timestamps) = %d bytes, either way (client %d, server %d)", m.small-hdr, mmTSOpt, m.small-hdr-mmTSOpt, a.cliMax, a.srvMax)
	r.check(b.before == 1500-hdr-mmTSOpt, r.pick("with MTU 1500 at both ends the server's first segments carry 1460 − 12 = 1448 bytes (%d)",
		"with MTU 1500 at both ends the server's first segments carry 1440 − 12 = 1428 bytes (%d)"), b.before)
	r.check(b.dropped > 0 && b.icmps == b.dropped, r.pick("the router drops every packet over %d bytes and answers each with ICMP \"fragmentation needed\" (%d dropped, %d ICMP)",
		"the router drops every packet over %d bytes and answers each with ICMPv6 \"Packet Too Big\" (%d dropped, %d ICMPv6)"), m.router, b.dropped, b.icmps)
	r.check(b.after == m.router-hdr-mmTSOpt && b.mss == m.router-hdr && b.pmtu == m.router,
		"the server takes the router's MTU: path MTU %d, MSS %d, segments of %d bytes from then on (%d, %d, %d)", m.router, m.router-hdr, m.router-hdr-mmTSOpt, b.pmtu, b.mss, b.after)
	r.check(b.got == mmSize && b.timeouts == 0 && b.ssthresh == 0,
		"the resent data arrives intact (%d bytes), with no timeout and no congestion response (ssthresh not set): the loss was not congestion", b.got)
	return nil
}

// mmA is what the first part found.
type mmA struct{ cliMSS, srvMSS, cliMax, srvMax int }

// mmAnnounce: the server's link has a smaller MTU; a request and a reply
// of mmSize bytes each.
func (r *labRun) mmAnnounce() (mmA, error) {
	m, hdr := r.fam.mmMTUs(), r.fam.hdr()
	w, ln, err := r.vListen(labVConfig{cliSeed: 7, srvSeed: 7, srvMTU: m.small,
		cliOut: link.Spec{Delay: mmDelay}, srvOut: link.Spec{Delay: mmDelay}})
	if err != nil {
		return mmA{}, err
	}
	defer w.close()
	r.setQuiet(true)
	defer r.setQuiet(false)
	r.say(r.pick("the client's link has MTU 1500: its SYN announces MSS 1500 − 40 = 1460 (20 bytes of IPv4 header, 20 of TCP)",
		"the client's link has MTU 1500: its SYN announces MSS 1500 − 60 = 1440 (40 bytes of IPv6 header, 20 of TCP)"))
	r.say("the server's link has MTU %d: its SYN+ACK announces MSS %d", m.small, m.small-hdr)
	c, sc, err := w.establish(ln)
	if err != nil {
		return mmA{}, err
	}
	n0 := len(r.rec.Packets())
	x := &labTransfer{w: w, sc: sc, c: c, size: mmSize}
	// The client sends mmSize bytes first (an upload), then the server.
	got := 0
	data := make([]byte, mmSize)
	if _, err := c.TryWrite(data); err != nil {
		return mmA{}, err
	}
	buf := make([]byte, 4096)
	w.until(5*time.Second, func() bool {
		n, _ := sc.TryRead(buf)
		got += n
		return got == mmSize
	})
	if err := x.run(5 * time.Second); err != nil {
		return mmA{}, err
	}
	pk := r.rec.Packets()[n0:]
	a := mmA{cliMSS: c.(ustackConn).Info().SndMSS, srvMSS: sc.Info().SndMSS,
		cliMax: largest(pk, func(p record.Pkt) bool { return p.ToServer }),
		srvMax: largest(pk, func(p record.Pkt) bool { return !p.ToServer })}
	r.say("the client sent %d bytes in segments of at most %d, the server as many in segments of at most %d (the ladder is not drawn)", mmSize, a.cliMax, a.srvMax)
	return a, nil
}

// mmB is what the second part found.
type mmB struct {
	before, after, dropped, icmps int
	mss, pmtu, got, ssthresh      int
	timeouts                      uint64
}

// mmPMTU: the server sends mmSize bytes through a router whose next hop
// has the family's router MTU; the router drops what is too big and sends
// ICMP (or ICMPv6) back.
func (r *labRun) mmPMTU() (mmB, error) {
	var b mmB
	var w *labVWorld
	var err error
	var dropAt time.Time
	m := r.fam.mmMTUs()
	decide := func(p record.Pkt) link.Action {
		size := r.fam.hdr() + mmTSOpt + len(p.Payload)
		if b.before == 0 {
			b.before = len(p.Payload)
		}
		if size <= m.router {
			if b.dropped > 0 && !p.T.Before(dropAt) {
				b.after = max(b.after, len(p.Payload))
			}
			return link.Pass
		}
		b.dropped++
		if b.dropped == 1 {
			r.say(r.pick("the router's next hop has MTU %d: this %d-byte packet (DF set) cannot pass; the router drops it and sends ICMP \"fragmentation needed, next-hop MTU %d\" back",
				"the router's next hop has MTU %d: this %d-byte packet cannot pass, and IPv6 routers never fragment; the router drops it and sends ICMPv6 \"Packet Too Big, MTU %d\" back"), m.router, size, m.router)
		}
		icmp := mmTooBig(p, r.fam.router, m.router)
		w.clk.AfterFunc(mmDelay/2, func() {
			b.icmps++
			w.cliEnd.WriteBatch([][]byte{icmp}, link.Headroom)
		})
		dropAt = p.T
		return link.Drop
	}
	var lst *stack.Listener
	w, lst, err = r.vListen(labVConfig{cliSeed: 8, srvSeed: 8, srvDecide: decide,
		cliOut: link.Spec{Delay: mmDelay}, srvOut: link.Spec{Delay: mmDelay}})
	if err != nil {
		return b, err
	}
	defer w.close()
	r.ladderHeader()
	r.say(r.pick("now both links have MTU 1500 (MSS 1460), but the path crosses a router (%v) whose next hop has MTU %d",
		"now both links have MTU 1500 (MSS 1440), but the path crosses a router (%v) whose next hop has MTU %d, IPv6's minimum"), r.fam.router, m.router)
	c, sc, err := w.establish(lst)
	if err != nil {
		return b, err
	}
	r.say(r.pick("the server sends %d bytes; ustack sets DF on every packet (path MTU discovery, RFC 1191)",
		"the server sends %d bytes; an IPv6 packet is never fragmented on the way, so a router sends back what does not fit (path MTU discovery, RFC 8201)"), mmSize)
	x := &labTransfer{w: w, sc: sc, c: c, size: mmSize}
	told := false
	x.onStep = func() {
		if !told && sc.Info().PMTU != 0 {
			told = true
			i := sc.Info()
			r.say(r.pick("the ICMP reaches the server: path MTU %d, MSS %d; it resends what is in flight in segments of %d bytes at once, without cutting its window",
				"the ICMPv6 reaches the server: path MTU %d, MSS %d; it resends what is in flight in segments of %d bytes at once, without cutting its window"), i.PMTU, i.SndMSS, i.SndMSS-mmTSOpt)
		}
	}
	if err := x.run(10 * time.Second); err != nil {
		return b, err
	}
	i := sc.Info()
	b.mss, b.pmtu, b.got, b.timeouts = i.SndMSS, i.PMTU, x.got, i.Stats.Timeouts
	if i.Ssthresh < noSsthresh {
		b.ssthresh = i.Ssthresh
	}
	r.say("the client has all %d bytes", x.got)
	return b, nil
}

// mmTooBig builds the router's answer to the server's packet p, which
// is too big for its next hop of MTU mtu. Over IPv4: ICMP destination
// unreachable, "fragmentation needed and DF set" (RFC 792, RFC 1191 §4),
// quoting p's IPv4 header and the first 8 bytes of its TCP header. Over
// IPv6: ICMPv6 Packet Too Big (RFC 4443 §3.2) with the MTU, quoting p's
// IPv6 header and its TCP header (RFC 4443 §2.4 (c): as much of the
// packet as fits in 1280 bytes; these are all the lab rebuilds).
func mmTooBig(p record.Pkt, from netip.Addr, mtu int) []byte {
	orig := record.Build(netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), p.Seq, p.Ack, p.Flags, nil)[link.Headroom:]
	if p.Src.Is6() {
		m := header.ICMPv6(make([]byte, 8+len(orig)))
		m.SetType(header.ICMPv6PacketTooBig)
		m.SetCode(0)
		m.SetParam(uint32(mtu))
		copy(m[8:], orig)
		m.UpdateChecksum(from.As16(), p.Src.As16())
		b := make([]byte, link.Headroom+header.IPv6HeaderLen+len(m))
		ip := b[link.Headroom:]
		header.PutIPv6(ip, header.IPv6Fields{PayloadLen: uint16(len(m)), NextHeader: header.ProtoICMPv6, HopLimit: 64, Src: from.As16(), Dst: p.Src.As16()})
		copy(ip[header.IPv6HeaderLen:], m)
		return b
	}
	quote := orig[:28]
	m := header.ICMPv4(make([]byte, 8+len(quote)))
	m.SetType(header.ICMPDestUnreach)
	m.SetCode(header.ICMPFragNeeded)
	binary.BigEndian.PutUint16(m[6:], uint16(mtu))
	copy(m[8:], quote)
	m.UpdateChecksum()
	b := make([]byte, link.Headroom+20+len(m))
	ip := b[link.Headroom:]
	header.PutIPv4(ip, header.IPv4Fields{TotalLen: uint16(len(ip)), TTL: 64, Protocol: header.ProtoICMP, Src: from.As4(), Dst: p.Src.As4()})
	copy(ip[20:], m)
	return b
}

// mmTUNSize is what the kernel sends each time: a dozen segments, drawn.
const mmTUNSize = 10000

// labMSSMTUTUN: ustack announces MSS 960 (as a host with MTU 1000) and the
// kernel's segments obey it; then the lab, as a router with MTU 800 on
// ustack's side of the TUN, drops the kernel's large packets and sends
// ICMP "fragmentation needed" to the kernel, whose segments shrink. Over
// IPv6: MSS 1340 (MTU 1400), a router with MTU 1280, and ICMPv6 Packet
// Too Big.
func labMSSMTUTUN(r *labRun) error {
	var w *labTWorld
	var router atomic.Bool
	var dropped, after atomic.Int64
	m, hdr := r.fam.mmMTUs(), r.fam.hdr()
	dropIn := func(p record.Pkt) bool {
		size := hdr + mmTSOpt + len(p.Payload)
		if !router.Load() || len(p.Payload) == 0 {
			return false
		}
		if size <= m.tunRouter {
			if dropped.Load() > 0 {
				after.Store(max(after.Load(), int64(len(p.Payload))))
			}
			return false
		}
		if dropped.Add(1) == 1 {
			r.say(r.pick("the router's next hop has MTU %d: this %d-byte packet cannot pass; ICMP \"fragmentation needed, next-hop MTU %d\" goes back to the kernel",
				"the router's next hop has MTU %d: this %d-byte packet cannot pass; ICMPv6 \"Packet Too Big, MTU %d\" goes back to the kernel"), m.tunRouter, size, m.tunRouter)
		}
		icmp := mmTooBig(p, r.fam.server.Addr(), m.tunRouter)
		go w.tap.WriteBatch([][]byte{icmp}, link.Headroom)
		return true
	}
	w, c, sc, done, err := r.tunConnected(tcp.Config{MSS: m.small - hdr}, dropIn)
	defer done()
	if err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	sc.SetDeadline(time.Now().Add(20 * time.Second))
	r.say(r.pick("ustack announces MSS %d (as a host whose link has MTU %d); the kernel, on a TUN with MTU 1500, announces 1460",
		"ustack announces MSS %d (as a host whose link has MTU %d); the kernel, on a TUN with MTU 1500, announces 1440"), m.small-hdr, m.small)
	upload := func() (int, error) {
		errc := make(chan error, 1)
		go func() { _, err := c.Write(make([]byte, mmTUNSize)); errc <- err }()
		n, err := io.ReadFull(sc, make([]byte, mmTUNSize))
		if err == nil {
			err = <-errc
		}
		return n, err
	}
	n0 := len(r.rec.Packets())
	if _, err := upload(); err != nil {
		return err
	}
	pk := r.rec.Packets()[n0:]
	kMax := largest(pk, func(p record.Pkt) bool { return p.ToServer })
	r.say("the kernel sent %d bytes in segments of at most %d", mmTUNSize, kMax)
	r.tunSection("path MTU discovery: a router with MTU %d in the middle", m.tunRouter)
	router.Store(true)
	got, err := upload()
	if err != nil {
		return err
	}
	r.say(r.pick("the kernel sent another %d bytes; after the ICMP its segments carry at most %d",
		"the kernel sent another %d bytes; after the ICMPv6 its segments carry at most %d"), got, after.Load())
	r.check(kMax == m.small-hdr-mmTSOpt, "the kernel's segments carry at most ustack's MSS %d − %d (timestamps) = %d bytes (%d)", m.small-hdr, mmTSOpt, m.small-hdr-mmTSOpt, kMax)
	r.check(dropped.Load() > 0, "the router drops the kernel's packets over %d bytes (%d dropped)", m.tunRouter, dropped.Load())
	r.check(after.Load() == int64(m.tunRouter-hdr-mmTSOpt) && got == mmTUNSize,
		r.pick("the kernel takes the ICMP's MTU: its segments shrink to %d − 40 − %d = %d bytes (%d) and all %d bytes arrive",
			"the kernel takes the ICMPv6's MTU: its segments shrink to %d − 60 − %d = %d bytes (%d) and all %d bytes arrive"),
		m.tunRouter, mmTSOpt, m.tunRouter-hdr-mmTSOpt, after.Load(), got)
	return nil
}
