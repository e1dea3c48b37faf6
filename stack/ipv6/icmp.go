package ipv6

import (
	"encoding/binary"
	"syscall"
	"time"

	"ustack/stack/header"
)

// ICMPError is an ICMPv6 error about a packet we sent (RFC 4443 §2.4(b),
// §3): what the stack needs to find the connection or socket and tell it,
// in the style of ipv4.ICMPError.
type ICMPError struct {
	Type, Code uint8
	// Errno is what the error means to the application, and Fatal whether
	// it is a hard error, as Linux's icmpv6_err_convert has them.
	Errno syscall.Errno
	Fatal bool
	// MTU is the MTU field of a Packet Too Big, as received (RFC 4443
	// §3.2; PMTUCache.Update raises it to 1280, RFC 8201 §4).
	MTU int
	// Pointer is the pointer of a Parameter Problem (RFC 4443 §3.4).
	Pointer uint32
	// From the quoted packet: its source (one of ours), destination (the
	// peer), upper-layer protocol, ports, and for TCP the sequence number.
	Src, Dst         [16]byte
	Proto            uint8
	SrcPort, DstPort uint16
	Seq              uint32
}

// PacketTooBig reports a Packet Too Big, about the path MTU rather than
// an error to report.
func (e *ICMPError) PacketTooBig() bool { return e.Type == header.ICMPv6PacketTooBig }

// unreachErrno is Linux's tab_unreach, indexed by the code of a
// destination unreachable (RFC 4443 §3.1).
var unreachErrno = [7]struct {
	errno syscall.Errno
	fatal bool
}{
	header.ICMPv6NoRoute:       {syscall.ENETUNREACH, false},
	header.ICMPv6AdminProhibit: {syscall.EACCES, true},
	header.ICMPv6BeyondScope:   {syscall.EHOSTUNREACH, false},
	header.ICMPv6AddrUnreach:   {syscall.EHOSTUNREACH, false},
	header.ICMPv6PortUnreach:   {syscall.ECONNREFUSED, true},
	header.ICMPv6PolicyFail:    {syscall.EACCES, true},
	header.ICMPv6RejectRoute:   {syscall.EACCES, true},
}

// Errno maps an ICMPv6 error's type and code to the errno Linux reports
// for it (icmpv6_err_convert) and whether it is fatal: destination
// unreachable through the table above (EPROTO, fatal, for codes beyond
// it), Packet Too Big EMSGSIZE, time exceeded EHOSTUNREACH, parameter
// problem EPROTO (fatal), and EPROTO for error types RFC 4443 does not
// define (§2.4(b): an unknown error "MUST be passed to the upper-layer
// process"). ok is false for informational types (128-255).
func Errno(typ, code uint8) (errno syscall.Errno, fatal, ok bool) {
	switch typ {
	case header.ICMPv6DestUnreach:
		if int(code) < len(unreachErrno) {
			return unreachErrno[code].errno, unreachErrno[code].fatal, true
		}
		return syscall.EPROTO, true, true
	case header.ICMPv6PacketTooBig:
		return syscall.EMSGSIZE, false, true
	case header.ICMPv6TimeExceeded:
		return syscall.EHOSTUNREACH, false, true
	case header.ICMPv6ParamProblem:
		return syscall.EPROTO, true, true
	}
	if header.IsICMPv6Error(typ) {
		return syscall.EPROTO, false, true
	}
	return 0, false, false
}

// icmp handles the ICMPv6 message of p (to us or one of our groups).
func (l *Layer) icmp(now time.Time, p Packet) (Verdict, Packet) {
	// RFC 4443 §2.3: the checksum, over the pseudo-header, is mandatory.
	m, err := header.ParseICMPv6(p.Payload(), p.Src, p.Dst)
	if err != nil {
		return l.drop(ICMPBad)
	}
	t := m.Type()
	switch {
	case t == header.ICMPv6EchoRequest:
		return l.echoReply(p)
	case t >= header.ICMPv6RouterSolicit && t <= header.ICMPv6Redirect:
		// A TUN device has no link layer: no neighbour to resolve, no
		// router to learn (the kernel routes for us), no redirect to
		// follow.
		return l.drop(ICMPNDIgnored)
	case !header.IsICMPv6Error(t) || p.Multicast:
		// RFC 4443 §2.4(b): unknown informational messages are
		// silently discarded; echo replies (we send no requests) and
		// MLD too. Errors go to the unicast source of a packet: none
		// to a group is about us.
		return l.drop(ICMPOtherDropped)
	}
	e, why := l.ParseICMPError(m)
	if why != 0 {
		return l.drop(why)
	}
	if e.Proto == header.ProtoICMPv6 {
		// A Packet Too Big about one of our echo replies: the layer's
		// own path MTU (Linux's icmpv6_err updates it, as RFC 8201 §4
		// asks of any packet).
		if _, changed := l.PMTU.Update(now, e.Dst, e.MTU, l.LinkMTU()); changed {
			l.Stats.c.Inc(PMTULowered)
		}
		l.Stats.c.Inc(ICMPErrorsTaken)
		return Drop, Packet{}
	}
	p.ICMP = e
	l.Stats.c.Inc(ICMPErrorsDelivered)
	return DeliverICMPError, p
}

// ParseICMPError reads the ICMPv6 error m (checksum checked). RFC 4443
// §2.4(b) passes an error to the upper-layer process that sent the quoted
// packet; as Linux's icmpv6_notify, the quote must be an IPv6 header of a
// packet from one of our addresses whose extension headers
// (ipv6_skip_exthdr) lead to at least 8 bytes of the upper-layer header.
// TCP and UDP are handed up; a Packet Too Big about an echo reply of ours
// is for the layer. Why is the reason to count when it is nonzero.
func (l *Layer) ParseICMPError(m header.ICMPv6) (e ICMPError, why Reason) {
	if len(m) < header.ICMPv6MinLen {
		return e, ICMPBad
	}
	errno, fatal, ok := Errno(m.Type(), m.Code())
	if !ok {
		return e, ICMPOtherDropped
	}
	q := m[header.ICMPv6MinLen:]
	if len(q) < header.IPv6HeaderLen || q[0]>>4 != header.IPv6Version {
		return e, ICMPErrorBadQuote
	}
	qh := header.IPv6(q)
	if !l.IsMine(qh.SrcBytes()) {
		return e, ICMPErrorBadQuote
	}
	proto, at, ok := skipChain(q, qh.NextHeader(), header.IPv6HeaderLen)
	if !ok || len(q)-at < 8 {
		return e, ICMPErrorBadQuote
	}
	t := q[at:]
	e = ICMPError{Type: m.Type(), Code: m.Code(), Errno: errno, Fatal: fatal,
		Src: qh.SrcBytes(), Dst: qh.DstBytes(), Proto: proto}
	switch {
	case proto == header.ProtoTCP:
		e.Seq = binary.BigEndian.Uint32(t[4:])
		fallthrough
	case proto == header.ProtoUDP:
		e.SrcPort, e.DstPort = binary.BigEndian.Uint16(t[0:]), binary.BigEndian.Uint16(t[2:])
	case proto == header.ProtoICMPv6 && t[0] == header.ICMPv6EchoReply && e.PacketTooBig():
	default:
		return ICMPError{}, ICMPErrorOtherProto
	}
	switch e.Type {
	case header.ICMPv6PacketTooBig:
		e.MTU = int(min(m.Param(), 1<<31-1))
	case header.ICMPv6ParamProblem:
		e.Pointer = m.Param()
	}
	return e, 0
}

// echoReply turns the echo request in p into its reply, in place (RFC
// 4443 §4.2): type 129, the identifier, sequence number and data of the
// request unchanged, addressed to the request's source from the address
// it was sent to, or, for a request to a multicast group, from the
// address SourceFor picks (§4.2: "a unicast address belonging to the
// interface"; Linux answers those, net.ipv6.icmp.echo_ignore_multicast
// being 0). The request's extension headers are not carried over: the
// ICMPv6 message moves up to follow a 40-byte header. Hop limit 64, the
// request's traffic class (Linux's icmpv6_echo_reply), our flow label.
func (l *Layer) echoReply(p Packet) (Verdict, Packet) {
	src := p.Dst
	if p.Multicast {
		var ok bool
		if src, ok = l.SourceFor(p.Src); !ok {
			return l.drop(NotForUs)
		}
	}
	h := p.IP
	n := len(h) - p.Off
	tc := h.TrafficClass()
	copy(h[header.IPv6HeaderLen:], h[p.Off:])
	m := header.ICMPv6(h[header.IPv6HeaderLen : header.IPv6HeaderLen+n])
	m.SetType(header.ICMPv6EchoReply)
	m.SetCode(0)
	m.UpdateChecksum(src, p.Src)
	header.PutIPv6(h, header.IPv6Fields{
		TrafficClass: tc,
		FlowLabel:    l.ids.flowLabel(src, p.Src, header.ProtoICMPv6, 0, 0),
		PayloadLen:   uint16(n),
		NextHeader:   header.ProtoICMPv6,
		HopLimit:     DefaultHopLimit,
		Src:          src,
		Dst:          p.Src,
	})
	l.Stats.c.Inc(ICMPEchoReplied)
	l.Stats.c.Inc(Sent)
	return Reply, Packet{IP: h[:header.IPv6HeaderLen+n], Proto: header.ProtoICMPv6, Off: header.IPv6HeaderLen,
		Src: src, Dst: p.Src}
}

// PutICMPError writes into b an ICMPv6 error of the given type, code and
// parameter (the pointer of a parameter problem, the MTU of a Packet Too
// Big) about orig, a packet we received, and returns its length, or 0 when
// none may be sent (RFC 4443 §2.4(e)):
//
//   - about an ICMPv6 error or a redirect (e.1, e.2), or an ICMPv6 packet
//     too short to tell (Linux's is_ineligible);
//   - about a packet to a multicast address (e.3), except a Packet Too Big
//     and a parameter problem code 2 about an option whose type's
//     high-order bits are 10;
//   - about a packet whose source is not a unicast address (e.6);
//   - about a packet to an address not ours (we do not forward);
//   - over the rate limit (f; ratelimit.go).
//
// The error goes from the address orig was sent to (§2.2), or SourceFor
// its source when that was a group, and quotes as much of orig as fits in
// len(b) and in 1280 bytes in all (§2.4(c); Linux's icmp6_send).
func (l *Layer) PutICMPError(now time.Time, b []byte, orig []byte, typ, code uint8, param uint32) int {
	if len(orig) < header.IPv6HeaderLen || orig[0]>>4 != header.IPv6Version {
		return 0
	}
	o := header.IPv6(orig)
	peer := o.SrcBytes()
	from, ok := l.errorSource(o, typ, code, param)
	if !ok || !unicastSource(peer) || ineligible(o) {
		return 0
	}
	if !l.limit.allow(now, peer, typ) {
		l.Stats.c.Inc(ICMPRateLimited)
		return 0
	}
	const hl = header.IPv6HeaderLen + header.ICMPv6MinLen
	n := min(len(orig), min(len(b), header.IPv6MinMTU)-hl)
	if n < header.IPv6HeaderLen {
		return 0
	}
	m := header.ICMPv6(b[header.IPv6HeaderLen : hl+n])
	m.SetType(typ)
	m.SetCode(code)
	m.SetParam(param)
	copy(m[header.ICMPv6MinLen:], orig[:n])
	m.UpdateChecksum(from, peer)
	header.PutIPv6(b, header.IPv6Fields{
		FlowLabel:  l.ids.flowLabel(from, peer, header.ProtoICMPv6, 0, 0),
		PayloadLen: uint16(len(m)),
		NextHeader: header.ProtoICMPv6,
		HopLimit:   DefaultHopLimit,
		Src:        from,
		Dst:        peer,
	})
	l.Stats.c.Inc(ICMPErrorsSent)
	l.Stats.c.Inc(Sent)
	return hl + n
}

// errorSource is the source of an error about o, and whether RFC 4443
// §2.4(e.3) lets one go.
func (l *Layer) errorSource(o header.IPv6, typ, code uint8, param uint32) ([16]byte, bool) {
	dst := o.DstBytes()
	if l.IsMine(dst) {
		return dst, true
	}
	if !l.isGroup(dst) {
		return dst, false
	}
	exempt := typ == header.ICMPv6PacketTooBig ||
		typ == header.ICMPv6ParamProblem && code == header.ICMPv6UnknownOption &&
			uint64(param) < uint64(len(o)) && o[param]>>6 == 2
	if !exempt {
		return dst, false
	}
	return l.SourceFor(o.SrcBytes())
}

// ineligible reports packets no error may answer (RFC 4443 §2.4(e.1),
// (e.2)): an ICMPv6 error or redirect, or an ICMPv6 packet whose type
// is cut off, unless it is a non-first fragment (Linux's is_ineligible).
// A chain that cannot be followed does not make a packet ineligible: the
// error may be about that chain.
func ineligible(o header.IPv6) bool {
	proto, at, ok := skipChain(o, o.NextHeader(), header.IPv6HeaderLen)
	if !ok || proto != header.ProtoICMPv6 {
		return false
	}
	if at >= len(o) {
		return true
	}
	return header.IsICMPv6Error(o[at]) || o[at] == header.ICMPv6Redirect
}
