package ipv4

import (
	"encoding/binary"
	"syscall"
	"time"

	"ustack/stack/header"
)

// ICMPError is an ICMP error message about a TCP segment or UDP datagram
// we sent: what the stack needs to find the connection or socket and tell
// it (RFC 1122 §3.2.2.1, §4.1.3.3, §4.2.3.9; RFC 5927).
type ICMPError struct {
	Type, Code uint8
	// Errno is what the error means to the application, as Linux's
	// icmp_err_convert table and tcp_v4_err have it; 0 for "fragmentation
	// needed", which is about the path MTU instead.
	Errno syscall.Errno
	// MTU is the next-hop MTU of a "fragmentation needed" (RFC 1191 §4);
	// 0 when the router did not say (RFC 1191 §5's old routers).
	MTU int
	// From the quoted datagram: its protocol (header.ProtoTCP or
	// ProtoUDP), source (one of our addresses) and destination (the peer),
	// the ports, and the sequence number of a TCP segment (0 for UDP).
	Proto            uint8
	Src, Dst         [4]byte
	SrcPort, DstPort uint16
	Seq              uint32
}

// FragNeeded reports a "fragmentation needed and DF set".
func (e *ICMPError) FragNeeded() bool {
	return e.Type == header.ICMPDestUnreach && e.Code == header.ICMPFragNeeded
}

// unreachErrno is Linux's icmp_err_convert, indexed by the code of a
// destination unreachable (RFC 1122 §3.2.2.1 lists codes 0-5, RFC 1812
// §5.2.7.1 the rest).
var unreachErrno = [16]syscall.Errno{
	0:  syscall.ENETUNREACH,  // net unreachable
	1:  syscall.EHOSTUNREACH, // host unreachable
	2:  syscall.ENOPROTOOPT,  // protocol unreachable
	3:  syscall.ECONNREFUSED, // port unreachable
	4:  0,                    // fragmentation needed: PMTU (Linux's entry is EMSGSIZE, not used by TCP)
	5:  syscall.EOPNOTSUPP,   // source route failed
	6:  syscall.ENETUNREACH,  // destination network unknown
	7:  syscall.EHOSTDOWN,    // destination host unknown
	8:  syscall.ENONET,       // source host isolated
	9:  syscall.ENETUNREACH,  // network administratively prohibited
	10: syscall.EHOSTUNREACH, // host administratively prohibited
	11: syscall.ENETUNREACH,  // network unreachable for TOS
	12: syscall.EHOSTUNREACH, // host unreachable for TOS
	13: syscall.EHOSTUNREACH, // communication administratively prohibited
	14: syscall.EHOSTUNREACH, // host precedence violation
	15: syscall.EHOSTUNREACH, // precedence cutoff in effect
}

// Errno maps an ICMP error's type and code to the errno Linux reports for
// it on a TCP socket (tcp_v4_err): destination unreachable through
// icmp_err_convert, time exceeded EHOSTUNREACH, parameter problem EPROTO.
// ok is false for messages TCP ignores: source quench (RFC 6633 §1: "MUST
// ignore"), redirect, unknown types and codes above 15.
func Errno(typ, code uint8) (errno syscall.Errno, ok bool) {
	switch typ {
	case header.ICMPDestUnreach:
		if code > 15 {
			return 0, false
		}
		return unreachErrno[code], true
	case header.ICMPTimeExceeded:
		return syscall.EHOSTUNREACH, true
	case header.ICMPParamProblem:
		return syscall.EPROTO, true
	}
	return 0, false
}

// ParseICMPError reads the ICMP error in datagram h, an ICMP message to us
// with a valid checksum. It checks the quote as RFC 5927 §4 and Linux's
// icmp_unreach do: an IPv4 header (IHL at least 5) of a datagram from one
// of our addresses, followed by at least 8 octets of its data (RFC 792:
// "the internet header plus the first 64 bits of the original datagram's
// data"), of protocol TCP or UDP. Why is the reason to count when ok is
// false.
func (l *Layer) ParseICMPError(h header.IPv4) (e ICMPError, why Reason) {
	m := header.ICMPv4(h.Payload())
	errno, ok := Errno(m.Type(), m.Code())
	if !ok {
		return e, ICMPOtherDropped
	}
	q := m[header.ICMPv4MinLen:]
	if len(q) < header.IPv4MinHeaderLen || q[0]>>4 != header.IPv4Version {
		return e, ICMPErrorBadQuote
	}
	ihl := int(q[0]&0xf) * 4
	if ihl < header.IPv4MinHeaderLen || len(q) < ihl+8 {
		return e, ICMPErrorBadQuote
	}
	qh := header.IPv4(q)
	if !l.IsLocal(qh.SrcBytes()) {
		return e, ICMPErrorBadQuote
	}
	proto := qh.Protocol()
	if proto != header.ProtoTCP && proto != header.ProtoUDP {
		return e, ICMPErrorOtherProto
	}
	t := q[ihl:]
	e = ICMPError{
		Type: m.Type(), Code: m.Code(), Errno: errno, Proto: proto, Src: qh.SrcBytes(), Dst: qh.DstBytes(),
		SrcPort: binary.BigEndian.Uint16(t[0:]), DstPort: binary.BigEndian.Uint16(t[2:]),
	}
	if proto == header.ProtoTCP {
		e.Seq = binary.BigEndian.Uint32(t[4:])
	}
	if e.FragNeeded() {
		e.MTU = m.NextHopMTU()
	}
	return e, 0
}

// PutICMPError writes into b (576 bytes, or the path MTU if smaller) an ICMP error of the given
// type and code about datagram orig, received by us, and returns its length,
// or 0 when none may be sent. Its source is the address orig was sent to,
// as Linux's icmp_send takes for a datagram to a local address. None is
// sent:
//
//   - RFC 1122 §3.2.2: "An ICMP error message MUST NOT be sent as the result
//     of receiving: an ICMP error message, ... a datagram destined to an IP
//     broadcast or IP multicast address, ... a datagram whose source address
//     does not define a single host ..., a non-initial fragment";
//   - RFC 1812 §4.3.2.8 and Linux's icmp_ratelimit: the rate limit below.
//
// As Linux's icmp_send, the message quotes as much of orig as fits in
// len(b), at most 576 bytes (RFC 1812 §4.3.2.3; RFC 792 asks for at least
// the header and 64 bits), goes out with DF clear and an ID from the per-destination
// counters, TTL 64 and TOS precedence "internetwork control" (0xc0) with
// orig's TOS bits.
func (l *Layer) PutICMPError(now time.Time, b []byte, orig header.IPv4, typ, code uint8) int {
	if len(orig) < header.IPv4MinHeaderLen || orig.HeaderLen() < header.IPv4MinHeaderLen || orig.HeaderLen() > len(orig) {
		return 0
	}
	if orig.FragmentOffset() != 0 || !l.IsLocal(orig.DstBytes()) || badSource(orig.SrcBytes()) {
		return 0
	}
	if orig.Protocol() == header.ProtoICMP {
		p := orig[orig.HeaderLen():]
		if len(p) < 1 || header.IsICMPError(p[0]) {
			return 0
		}
	}
	src, dst := orig.DstBytes(), orig.SrcBytes()
	if !l.limit.allow(now, dst, typ, code) {
		l.Stats.c.Inc(ICMPRateLimited)
		return 0
	}
	room := min(len(b), quoteMax) - header.IPv4MinHeaderLen - header.ICMPv4MinLen
	n := min(len(orig), room)
	if n < header.IPv4MinHeaderLen {
		return 0
	}
	m := header.ICMPv4(b[header.IPv4MinHeaderLen : header.IPv4MinHeaderLen+header.ICMPv4MinLen+n])
	clear(m[:header.ICMPv4MinLen])
	m.SetType(typ)
	m.SetCode(code)
	copy(m[header.ICMPv4MinLen:], orig[:n])
	m.UpdateChecksum()
	header.PutIPv4(b, header.IPv4Fields{
		TotalLen: uint16(header.IPv4MinHeaderLen + len(m)),
		ID:       l.ids.next(now, src, dst, header.ProtoICMP),
		TTL:      DefaultTTL,
		TOS:      orig.TOS()&0x1e | 0xc0, // Linux: IPTOS_TOS(tos) | IPTOS_PREC_INTERNETCONTROL
		Protocol: header.ProtoICMP,
		Src:      src,
		Dst:      dst,
	})
	l.Stats.c.Inc(ICMPErrorsSent)
	l.Stats.c.Inc(Sent)
	return header.IPv4MinHeaderLen + len(m)
}
