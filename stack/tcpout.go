package stack

import (
	"encoding/binary"

	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// A TCP segment's way out: the IP packet built around it, queued on a lane
// (docs/architecture.md "One packet's way out").

// sendSegment builds the IP packet for seg, from the connection's local
// address, and queues it on lane ln.
func (s *Stack) sendSegment(ln *lane, id tcp.ID, seg *tcp.Segment) {
	if seg.Flags&(header.FlagFIN|header.FlagSYN|header.FlagRST|header.FlagURG) == header.FlagFIN &&
		len(seg.Payload) == 0 && s.finOnQueued(ln, id, seg) {
		s.cnt.Inc(evFINsOnData)
		return
	}
	pool := &s.pool
	var pay []byte // the payload, when it goes from the send buffer to the link without a copy
	var pin tcp.Pinned
	if seg.SegSize > 0 {
		// A TSO unit (newTCB sets TSOMax only with s.off): the link
		// writes its headers and payload as one packet (writev), the
		// payload straight from the send buffer, pinned there until then.
		var ok bool
		if pin, ok = seg.Pin(); ok {
			pay = seg.Payload
		} else {
			pool = &s.bigPool
		}
	}
	bp := pool.Get().(*[]byte)
	buf := (*bp)[:cap(*bp)]
	p := buf[link.Headroom:]
	src, dst := id.Local.Addr(), id.Remote.Addr()
	ihl := ipHeaderLen(dst)
	t := p[ihl:]
	optLen := header.PutTCPOptions(t[header.TCPMinHeaderLen:], &seg.Opts)
	hl := header.TCPMinHeaderLen + optLen
	n := len(seg.Payload)
	if pay == nil {
		if hl+n > len(t) {
			// More than the MTU (or a TSO unit) holds: never sent short,
			// which would lose bytes the TCB counts as sent.
			s.cnt.Inc(evSegTooBig)
			pool.Put(bp)
			return
		}
		copy(t[hl:], seg.Payload)
	}
	// With checksum offload the link completes the checksum (and cuts a
	// TSO unit into segments of SegSize payload bytes).
	pseudo := putTCPHeader(t, hl+n, id, seg, uint32(seg.Seq), seg.Flags, optLen, s.off != nil)
	segSize := 0
	if s.off != nil {
		segSize = max(seg.SegSize, 1)
	}
	var mtu int
	if ihl == header.IPv4MinHeaderLen {
		mtu = s.putIPHeader(p, src, dst, header.ProtoTCP, hl+n, s.modeFor(id), false)
	} else {
		mtu = s.putIP6Header(p, src, dst, header.ProtoTCP, hl+n, id.Local.Port(), id.Remote.Port())
	}
	if mtu == 0 {
		// The local address was removed: Linux's route lookup fails and
		// the segment is not sent; the connection's timers go on.
		s.cnt.Inc(evAddrGone)
		pool.Put(bp)
		pin.Unpin()
		return
	}
	size := ihl + hl + n
	if seg.SegSize > 0 {
		s.cnt.Add(evSegsOut, uint64((n+seg.SegSize-1)/seg.SegSize))
		// The link cuts it.
		ln.queuePayload(bp, link.Headroom+size-len(pay), segSize, pay, pin)
		return
	}
	s.cnt.Inc(evSegsOut)
	if size > mtu && ihl == header.IPv4MinHeaderLen {
		// DF clear (mode "dont", or a path MTU locked below 552) and over
		// the path MTU: fragments. Over IPv6, TCP is never fragmented:
		// its MSS keeps segments within the path MTU (startMSS,
		// Conn.PathMTU); one sent before a Packet Too Big lowered this
		// connection's goes whole, as a DF segment does over IPv4, and
		// the router's Packet Too Big about it lowers it.
		if s.off != nil {
			// Fragments carry no offload: the checksum must be whole.
			header.SetTransportChecksum(t[:hl+n], tcpChecksumAt, pseudo)
		}
		s.queueDatagram(ln, p[:size], mtu)
		s.pool.Put(bp)
		return
	}
	ln.queue(bp, link.Headroom+size, segSize)
}

// finOnQueued sets the FIN of seg, a bare FIN, on the connection's last
// packet still queued on ln, if that is the data just before it, and
// reports whether it did: the FIN leaves with the data, as Linux's
// tcp_send_fin tacks it onto the last skb of the write queue when that is
// not yet sent. RFC 9293 §3.1 and §3.10.4 let a FIN ride on a data
// segment (the FIN's sequence number follows the data's last byte). The
// header becomes the FIN's own (its ACK, window and options are the
// newest) but for the data's sequence number and PSH. A peer that closes
// on the response's last byte (wrk, with Connection: close) then sees the
// FIN first and closes from CLOSE-WAIT, so that the TIME-WAIT, and the
// ports it holds, are not the client's.
//
// It happens only while another goroutine writes the lane (lane.flush):
// otherwise the data left in its own call. The TCB still counts two
// segments; on the wire, and to the pcap tap, they are one.
func (s *Stack) finOnQueued(ln *lane, id tcp.ID, seg *tcp.Segment) bool {
	var opts [header.TCPMaxHeaderLen - header.TCPMinHeaderLen]byte
	optLen := header.PutTCPOptions(opts[:], &seg.Opts)
	hl := header.TCPMinHeaderLen + optLen
	dst := id.Remote.Addr()
	ihl := ipHeaderLen(dst)
	ln.txMu.Lock()
	defer ln.txMu.Unlock()
	b := &ln.tx
	for i := len(b.pkts) - 1; i >= 0; i-- {
		p := b.pkts[i][link.Headroom:]
		if !tcpOf(p, ihl, id) {
			continue
		}
		// The connection's last queued packet: it must be whole (no
		// payload written apart, not a TSO unit), carry data that ends
		// where the FIN is, and have headers of the same length.
		t := p[ihl:]
		if b.pay[i] != nil || b.seg[i] > 1 || int(t[12]>>4)*4 != hl || len(t) <= hl ||
			t[13]&(header.FlagFIN|header.FlagSYN|header.FlagRST) != 0 {
			return false
		}
		n := len(t) - hl
		dataSeq := binary.BigEndian.Uint32(t[4:])
		if dataSeq+uint32(n) != uint32(seg.Seq) {
			return false
		}
		copy(t[header.TCPMinHeaderLen:hl], opts[:optLen])
		// b.seg[i] == 1: queued with checksum offload (sendSegment).
		putTCPHeader(t, len(t), id, seg, dataSeq, seg.Flags|t[13]&header.FlagPSH, optLen, b.seg[i] == 1)
		return true
	}
	return false
}

// putTCPHeader writes the fixed header of seg at t, a TCP segment of
// size bytes whose options are in place, with sequence number seq and
// flags, and its checksum: with partial set, only the pseudo-header's sum,
// for the link to complete (checksum offload; the payload may then be
// written apart, beyond t), else the whole sum of t[:size]. It returns the
// pseudo-header's sum.
func putTCPHeader(t []byte, size int, id tcp.ID, seg *tcp.Segment, seq uint32, flags uint8, optLen int, partial bool) uint16 {
	header.PutTCP(t, header.TCPFields{
		SrcPort: id.Local.Port(), DstPort: id.Remote.Port(),
		Seq: seq, Ack: uint32(seg.Ack), Flags: flags, Window: seg.Wnd, OptLen: optLen,
	})
	pseudo := header.PseudoSum(header.ProtoTCP, id.Local.Addr(), id.Remote.Addr(), size)
	if partial {
		binary.BigEndian.PutUint16(t[tcpChecksumAt:], pseudo)
	} else {
		header.SetTransportChecksum(t[:size], tcpChecksumAt, pseudo)
	}
	return pseudo
}

// tcpOf reports whether the packet p, queued with an IP header of ihl
// bytes (sendSegment's), is a whole TCP segment of the connection id.
func tcpOf(p []byte, ihl int, id tcp.ID) bool {
	if len(p) < ihl+header.TCPMinHeaderLen {
		return false
	}
	t := p[ihl:]
	if binary.BigEndian.Uint16(t[0:]) != id.Local.Port() || binary.BigEndian.Uint16(t[2:]) != id.Remote.Port() {
		return false
	}
	if ihl == header.IPv4MinHeaderLen {
		src, dst := id.Local.Addr().As4(), id.Remote.Addr().As4()
		return p[0] == 0x45 && p[9] == header.ProtoTCP && p[6]&0x3f == 0 && p[7] == 0 && // not a fragment
			[4]byte(p[12:16]) == src && [4]byte(p[16:20]) == dst
	}
	src, dst := id.Local.Addr().As16(), id.Remote.Addr().As16()
	return p[0]>>4 == 6 && p[6] == header.ProtoTCP && [16]byte(p[8:24]) == src && [16]byte(p[24:40]) == dst
}

// tcpChecksumAt is the offset of the TCP checksum (RFC 9293 §3.1).
const tcpChecksumAt = 16
