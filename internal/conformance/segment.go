package conformance

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"ustack/stack/header"
	"ustack/stack/link"
)

// The addresses of every run: the target's TCP owns TargetAddr (the kernel
// side of the TUN, or the ustack stack), and the harness is the remote host
// PeerAddr. Both are in 198.18.0.0/15 and exist only inside the run's
// namespace or pipe.
var (
	TargetAddr   = netip.MustParseAddr("198.18.7.1")
	PeerAddr     = netip.MustParseAddr("198.18.7.2")
	TargetPrefix = netip.PrefixFrom(TargetAddr, 30)
)

// MTU of the link in both targets; the MSS either side announces is
// MTU - 40.
const MTU = 1500

// rxSeg is one TCP segment a target sent to the peer.
type rxSeg struct {
	at               time.Time
	flags            uint8
	seq, ack         uint32
	window           uint16
	opts             header.TCPOptions
	payload          int
	srcPort, dstPort uint16
	// quote is what an ICMP error about the segment quotes: its IP header
	// and the first 8 octets of TCP (RFC 792).
	quote []byte
}

// parseSeg reads an IPv4 packet from a target; ok is false for anything
// but TCP from TargetAddr to PeerAddr with valid options.
func parseSeg(pkt []byte, at time.Time) (rxSeg, bool) {
	h, err := header.ParseIPv4(pkt)
	if err != nil || h.Protocol() != header.ProtoTCP || h.Src() != TargetAddr || h.Dst() != PeerAddr || h.IsFragment() {
		return rxSeg{}, false
	}
	t, err := header.ParseTCP(h.Payload())
	if err != nil {
		return rxSeg{}, false
	}
	s := rxSeg{
		at: at, flags: t.Flags(), seq: t.Seq(), ack: t.Ack(), window: t.Window(),
		payload: len(t.Payload()), srcPort: t.SrcPort(), dstPort: t.DstPort(),
		quote: append([]byte(nil), pkt[:h.HeaderLen()+8]...),
	}
	if header.ParseTCPOptions(t.Options(), &s.opts) != nil {
		return rxSeg{}, false
	}
	return s, true
}

// txSeg is one segment the peer sends.
type txSeg struct {
	srcPort, dstPort uint16
	flags            uint8
	seq, ack         uint32
	window           uint16
	opts             header.TCPOptions
	payload          int
}

// build makes the IPv4 packet of s, with link.Headroom in front, correct
// checksums and a payload of 'x' bytes.
func (s txSeg) build() []byte {
	var opt [40]byte
	optLen := header.PutTCPOptions(opt[:], &s.opts)
	tcpLen := header.TCPMinHeaderLen + optLen + s.payload
	b := make([]byte, link.Headroom+20+tcpLen)
	p := b[link.Headroom:]
	t := p[20:]
	copy(t[header.TCPMinHeaderLen:], opt[:optLen])
	for i := header.TCPMinHeaderLen + optLen; i < tcpLen; i++ {
		t[i] = 'x'
	}
	header.PutTCP(t, header.TCPFields{
		SrcPort: s.srcPort, DstPort: s.dstPort, Seq: s.seq, Ack: s.ack,
		Flags: s.flags, Window: s.window, OptLen: optLen,
	})
	header.SetTCPChecksum(t, PeerAddr.As4(), TargetAddr.As4())
	header.PutIPv4(p, header.IPv4Fields{
		TotalLen: uint16(20 + tcpLen), TTL: 64, Protocol: header.ProtoTCP,
		Src: PeerAddr.As4(), Dst: TargetAddr.As4(),
	})
	return b
}

// flagString renders control bits as tcpdump does: S, F, R, P, and "."
// for ACK ("S.", "P.", "R", "FP.").
func flagString(f uint8) string {
	var b strings.Builder
	for _, x := range []struct {
		bit uint8
		s   string
	}{{header.FlagSYN, "S"}, {header.FlagFIN, "F"}, {header.FlagRST, "R"}, {header.FlagPSH, "P"}, {header.FlagURG, "U"}, {header.FlagECE, "E"}, {header.FlagCWR, "W"}, {header.FlagACK, "."}} {
		if f&x.bit != 0 {
			b.WriteString(x.s)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// parseFlags is the inverse of flagString.
func parseFlags(s string) uint8 {
	var f uint8
	for _, c := range s {
		switch c {
		case 'S':
			f |= header.FlagSYN
		case 'F':
			f |= header.FlagFIN
		case 'R':
			f |= header.FlagRST
		case 'P':
			f |= header.FlagPSH
		case '.':
			f |= header.FlagACK
		default:
			panic(fmt.Sprintf("conformance: unknown flag %q in %q", c, s))
		}
	}
	return f
}

// timingBucket classes a reply delay for the scenarios that compare timing:
// "now" (under 25 ms: no timer involved; Linux's shortest delayed ACK is
// 40 ms), "delayed" (25-250 ms: a delayed-ACK timer) or "late" (beyond).
func timingBucket(d time.Duration) string {
	switch {
	case d < 25*time.Millisecond:
		return "now"
	case d < 250*time.Millisecond:
		return "delayed"
	default:
		return "late"
	}
}

// roughly renders a delay to the nearest 100 ms ("~400ms"): for timers of
// hundreds of milliseconds, whose jitter on either target is a few.
func roughly(d time.Duration) string {
	return fmt.Sprintf("~%dms", d.Round(100*time.Millisecond).Milliseconds())
}
