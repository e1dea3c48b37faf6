package conformance

import (
	"encoding/binary"
	"errors"
	"fmt"

	"ustack/stack/header"
	"ustack/stack/link"
)

// ICMPMod adjusts an ICMP error Unreachable sends.
type ICMPMod struct {
	doc string
	fn  func(m *icmpSpec)
}

type icmpSpec struct {
	code     uint8
	mtu      uint16 // next-hop MTU of a "fragmentation needed"
	seqDelta uint32 // added to the quoted sequence number
}

// NextHopMTU puts the next-hop MTU of a "fragmentation needed" (RFC 1191
// §4) in the message.
func NextHopMTU(mtu uint16) ICMPMod {
	return ICMPMod{fmt.Sprintf("mtu %d", mtu), func(m *icmpSpec) { m.mtu = mtu }}
}

// QuotedSeq adds d to the sequence number the message quotes, so that it
// names one the target never sent.
func QuotedSeq(d int64) ICMPMod {
	return ICMPMod{fmt.Sprintf("quoting seq%+d", d), func(m *icmpSpec) { m.seqDelta = uint32(d) }}
}

// unreachNames are the codes of destination unreachable (RFC 792, RFC 1191)
// the scripts use, as the listing writes them.
var unreachNames = map[uint8]string{
	header.ICMPNetUnreach: "net", header.ICMPHostUnreach: "host",
	header.ICMPPortUnreach: "port", header.ICMPFragNeeded: "frag-needed",
}

// Unreachable makes the peer (as the router or host on the path) send an
// ICMP destination unreachable with code, quoting the last segment the
// current flow received from the target: its IP header and first 8 octets
// of TCP (RFC 792), unchanged unless a mod says otherwise.
func Unreachable(code uint8, mods ...ICMPMod) Step {
	doc := fmt.Sprintf("icmp unreachable %s (type 3 code %d)", unreachNames[code], code)
	for _, m := range mods {
		doc += " " + m.doc
	}
	return Step{doc, func(r *Run) error {
		q := r.flow().quote
		if q == nil {
			return errors.New("no segment from the target to quote")
		}
		m := icmpSpec{code: code}
		for _, mod := range mods {
			mod.fn(&m)
		}
		return r.send(buildUnreachable(q, m))
	}}
}

// buildUnreachable makes the IPv4 packet, from the peer to the target, of
// an ICMP destination unreachable quoting q, with link.Headroom in front
// and correct checksums.
func buildUnreachable(q []byte, m icmpSpec) []byte {
	const icmpLen = header.ICMPv4MinLen
	b := make([]byte, link.Headroom+20+icmpLen+len(q))
	p := b[link.Headroom:]
	msg := header.ICMPv4(p[20:])
	msg.SetType(header.ICMPDestUnreach)
	msg.SetCode(m.code)
	binary.BigEndian.PutUint16(msg[6:], m.mtu)
	quote := msg[icmpLen:]
	copy(quote, q)
	if m.seqDelta != 0 {
		seq := quote[len(q)-4:]
		binary.BigEndian.PutUint32(seq, binary.BigEndian.Uint32(seq)+m.seqDelta)
	}
	msg.UpdateChecksum()
	header.PutIPv4(p, header.IPv4Fields{
		TotalLen: uint16(len(p)), TTL: 64, Protocol: header.ProtoICMP,
		Src: PeerAddr.As4(), Dst: TargetAddr.As4(),
	})
	return b
}
