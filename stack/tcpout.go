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
	header.PutTCP(t, header.TCPFields{
		SrcPort: id.Local.Port(), DstPort: id.Remote.Port(),
		Seq: uint32(seg.Seq), Ack: uint32(seg.Ack), Flags: seg.Flags, Window: seg.Wnd, OptLen: optLen,
	})
	pseudo := header.PseudoSum(header.ProtoTCP, src, dst, hl+n)
	segSize := 0
	if s.off != nil {
		// Checksum offload: the link completes the checksum (and cuts a
		// TSO unit into segments of SegSize payload bytes).
		binary.BigEndian.PutUint16(t[tcpChecksumAt:], pseudo)
		segSize = max(seg.SegSize, 1)
	} else {
		header.SetTransportChecksum(t[:hl+n], tcpChecksumAt, pseudo)
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

// tcpChecksumAt is the offset of the TCP checksum (RFC 9293 §3.1).
const tcpChecksumAt = 16
