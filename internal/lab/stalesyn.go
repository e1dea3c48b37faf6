package lab

import (
	"net/netip"
	"slices"
	"time"

	"ustack/internal/record"
	"ustack/stack/header"
	"ustack/stack/tcp"
)

// The stale-syn lab's old duplicate SYN: seq z from a port the client no
// longer uses.
const (
	staleSeq  = 1000000
	stalePort = 40000
)

// staleSYN builds the old duplicate SYN to the server's port.
func (r *labRun) staleSYN(port uint16) []byte {
	return record.Build(netip.AddrPortFrom(r.fam.client, stalePort), netip.AddrPortFrom(r.fam.server.Addr(), port), staleSeq, 0, header.FlagSYN, nil)
}

// twoWayPort is where the lab's raw two-way server listens.
const twoWayPort = labPort + 1

// serverTitle is the server column's title; raw: the lab's two-way TCP.
func (r *labRun) serverTitle(port uint16, raw bool) string {
	at := netip.AddrPortFrom(r.fam.server.Addr(), port).String()
	if raw {
		return "server (the lab's raw TCP " + at + ", two-way)"
	}
	return "server (ustack " + at + ")"
}

// checkStaleRefused checks the first half of the story: SYN+ACK, RST, and
// no connection (established tells whether the server's application got
// one).
func (r *labRun) checkStaleRefused(pk []record.Pkt, established bool) {
	sa, okSA := record.First(pk, func(p record.Pkt) bool {
		return !p.ToServer && p.Is(header.FlagSYN|header.FlagACK) && p.DstPort == stalePort
	})
	rst, okR := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.Has(header.FlagRST) && p.SrcPort == stalePort })
	ss := r.rec.States(true, labPort)
	r.check(okSA && sa.Ack == staleSeq+1, "the server answers the old SYN with SYN+ACK ack=z+1")
	r.check(okR && rst.Seq == staleSeq+1, "the client, which never sent it, answers RST seq=z+1")
	r.check(!established && !slices.Contains(ss, "ESTABLISHED"), "no connection is established (server: %s)", arrowJoin(ss))
}

// twoWaySection starts the second half: the same SYN to the lab's raw
// two-way server; it returns the number of packets recorded before it.
func (r *labRun) twoWaySection(client string) int {
	r.section("the same, with a two-way handshake (a TCP the lab builds from raw segments, on port %d)", twoWayPort)
	n := len(r.rec.Packets())
	r.l.Restart(netip.AddrPortFrom(r.fam.server.Addr(), twoWayPort).String(), "CLOSED", "LISTEN")
	r.l.Header(client, r.serverTitle(twoWayPort, true))
	return n
}

// checkBogus checks the second half: the old SYN alone opened a
// connection on the two-way server.
func (r *labRun) checkBogus(pk []record.Pkt, bogus *peerConn) {
	ss := r.rec.States(true, twoWayPort)
	_, okSA := record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.Is(header.FlagSYN|header.FlagACK) })
	r.check(okSA && bogus != nil && record.HasRun(ss, "SYN-RECEIVED", "ESTABLISHED"),
		"with a two-way handshake the old SYN alone opens a bogus connection (server: %s)", arrowJoin(ss))
}

// labStaleSYN: an old duplicate SYN reaches the server; the client never
// sent it and resets the SYN+ACK. With a two-way handshake (the lab's own
// raw TCP on another port) the server would have a connection nobody
// asked for.
func labStaleSYN(r *labRun) error {
	w, ln, err := r.vListen(labVConfig{cliSeed: 4, srvSeed: 4})
	if err != nil {
		return err
	}
	defer w.close()
	two := w.rawServer(twoWayPort)
	broken := r.opts.Break == breakTwoWay
	if broken {
		w.rawServer(labPort)
	}
	client := "client (ustack " + r.fam.client.String() + ")"
	r.l.Header(client, r.serverTitle(labPort, broken))
	r.say("long ago the client sent SYN seq=z (z=%d) from port %d, gave up, and forgot it; a copy was delayed in the network", staleSeq, stalePort)
	r.inject(true, r.staleSYN(labPort), r.T("the old duplicate SYN arrives at the server now"))
	r.say("the server cannot tell it is old: it answers SYN+ACK ack=z+1 and waits in SYN-RECEIVED")
	w.pollServer()
	r.say("the client has no such connection: it answers the SYN+ACK with RST seq=z+1")
	w.pollClient()
	r.say("the RST takes the server back to LISTEN: no connection")
	w.pollServer()
	w.settle()
	r.checkStaleRefused(r.rec.Packets(), ln.TryAccept() != nil || two.acceptedOn(labPort) != nil)

	n := r.twoWaySection(client)
	r.inject(true, r.staleSYN(twoWayPort), r.T("the same old duplicate SYN, to a server that trusts a SYN alone"))
	w.pollServer()
	bogus := two.acceptedOn(twoWayPort)
	if bogus != nil {
		r.say("the server is ESTABLISHED at once and hands its application a connection (%s) that nobody asked for; it waits for data that will never come", bogus.State())
	}
	r.say("here the client's RST happens to end it; had it been lost, the server would hold the connection and its buffers")
	w.settle()
	r.checkBogus(r.rec.Packets()[n:], bogus)
	return nil
}

func labStaleSYNTUN(r *labRun) error {
	w, done, err := r.newTWorld(tcp.Config{}, nil, nil)
	defer done()
	if err != nil {
		return err
	}
	if _, err := w.srv.ListenTCP(labPort); err != nil {
		return err
	}
	two := w.rawServer(twoWayPort)
	r.tunHeader()
	r.say("an old duplicate SYN seq=z (z=%d) from %v:%d, a connection the kernel never made, reaches the server (sent through a raw socket)", staleSeq, r.fam.client, stalePort)
	if err := w.sendRaw(r.staleSYN(labPort)); err != nil {
		return err
	}
	pk := r.rec.WaitPkts(2*time.Second, record.Any(func(p record.Pkt) bool { return p.ToServer && p.Has(header.FlagRST) && p.SrcPort == stalePort }))
	r.checkStaleRefused(pk, w.srv.Stats().TCPEstablished != 0)

	n := r.twoWaySection("client (kernel " + r.fam.client.String() + ")")
	if err := w.sendRaw(r.staleSYN(twoWayPort)); err != nil {
		return err
	}
	bogus := two.waitAccepted(twoWayPort, 2*time.Second)
	if bogus != nil {
		r.say("the server handed its application a connection that nobody asked for")
	}
	pk = r.rec.WaitPkts(2*time.Second, func(pk []record.Pkt) bool {
		_, ok := record.First(pk[n:], func(p record.Pkt) bool { return !p.ToServer && p.Is(header.FlagSYN|header.FlagACK) })
		return ok
	})[n:]
	r.checkBogus(pk, bogus)
	return nil
}
