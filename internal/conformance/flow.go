package conformance

import (
	"fmt"
	"strings"

	"ustack/stack/header"
)

// SynOpts are the options the peer puts on its SYN or SYN-ACK.
type SynOpts struct {
	MSS  uint16 // 0: no MSS option
	WS   int    // window scale shift; -1: no option
	SACK bool   // SACK-permitted
	TS   bool   // timestamps
}

// Option sets of the scripts: what Linux itself offers, and nothing.
var (
	AllOpts = SynOpts{MSS: MTU - 40, WS: 7, SACK: true, TS: true}
	NoOpts  = SynOpts{WS: -1}
)

// flow is one connection as the peer sees it: its own sequence space, what
// it learnt of the target's, and the options in use. Sequence numbers are
// rendered relative to each side's ISN.
type flow struct {
	peerPort, targetPort uint16

	iss, sndNxt uint32 // the peer's ISN and next sequence number
	synced      bool   // the target's ISN (irs) is known
	irs, rcvNxt uint32 // the target's ISN, and what the peer acknowledges

	sent     SynOpts // on the peer's SYN or SYN-ACK
	sentSyn  bool
	wnd      uint16 // the window field of the peer's segments after its SYN
	theirSyn SynOpts
	wsOn     bool // both SYNs carried WS
	tsOn     bool // both SYNs carried TS
	tsRecent uint32
	tsLo     uint32 // the TSvals the peer has sent: an echo must lie in [tsLo, tsHi]
	tsHi     uint32
	theirAck uint32 // the target's RCV.NXT as it last announced it
	theirWnd uint32 // and its window, scaled
	sawAck   bool
	quote    []byte // of the target's latest segment, for an ICMP error about it
}

func newFlow(peerPort, targetPort uint16, iss uint32) *flow {
	return &flow{peerPort: peerPort, targetPort: targetPort, iss: iss, sndNxt: iss, wnd: 65535}
}

// negotiate settles window scaling and timestamps once both SYNs are known
// (RFC 7323: each needs the option on both).
func (f *flow) negotiate() {
	if f.sentSyn && f.synced {
		f.wsOn = f.sent.WS >= 0 && f.theirSyn.WS >= 0
		f.tsOn = f.sent.TS && f.theirSyn.TS
	}
}

// matches reports whether s belongs to the flow; an unbound flow (active
// open, target port unknown) binds to the first segment to its port.
func (f *flow) matches(s rxSeg) bool {
	if s.dstPort != f.peerPort {
		return false
	}
	if f.targetPort == 0 {
		f.targetPort = s.srcPort
	}
	return s.srcPort == f.targetPort
}

// learn updates the flow with a segment from the target, in arrival order.
func (f *flow) learn(s rxSeg) {
	f.quote = s.quote
	if s.flags&header.FlagSYN != 0 && s.flags&header.FlagRST == 0 {
		f.synced, f.irs, f.rcvNxt = true, s.seq, s.seq+1
		f.theirSyn = SynOpts{MSS: s.opts.MSS, WS: -1, SACK: s.opts.SACKPermit, TS: s.opts.TS}
		if s.opts.WS.Present {
			f.theirSyn.WS = int(s.opts.WS.Shift)
		}
		f.negotiate()
	} else if f.synced && s.seq == f.rcvNxt {
		f.rcvNxt += uint32(s.payload)
		if s.flags&header.FlagFIN != 0 {
			f.rcvNxt++
		}
	}
	if s.opts.TS {
		f.tsRecent = s.opts.TSVal
	}
	if s.flags&header.FlagACK != 0 && s.flags&header.FlagRST == 0 {
		f.theirAck, f.theirWnd, f.sawAck = s.ack, f.scaled(s), true
	}
}

// scaled is the window s announces, in bytes.
func (f *flow) scaled(s rxSeg) uint32 {
	if f.wsOn && s.flags&header.FlagSYN == 0 {
		return uint32(s.window) << f.theirSyn.WS
	}
	return uint32(s.window)
}

// render is the normalised form of s, the unit of comparison: flags,
// sequence and acknowledgment numbers relative to the ISNs, payload length,
// the window's class, and the options.
func (f *flow) render(s rxSeg) string {
	var b strings.Builder
	b.WriteString(flagString(s.flags))
	seq := s.seq
	if f.synced {
		seq -= f.irs
	}
	fmt.Fprintf(&b, " seq=%d", int32(seq))
	if s.flags&header.FlagACK != 0 {
		fmt.Fprintf(&b, " ack=%d", int32(s.ack-f.iss))
	}
	if s.payload > 0 {
		fmt.Fprintf(&b, " len=%d", s.payload)
	}
	if s.flags&header.FlagRST == 0 {
		b.WriteString(f.windowClass(s))
	}
	if o := f.renderOpts(s); o != "" {
		b.WriteString(" [" + o + "]")
	}
	return b.String()
}

// windowClass is the tolerance rule for windows: only whether the scaled
// window is zero, smaller than one MSS, or open is compared (the sizes
// follow each stack's buffer sizes, a local choice). Open is not written.
func (f *flow) windowClass(s rxSeg) string {
	w := f.scaled(s)
	switch {
	case w == 0:
		return " win=0"
	case w < MTU-40:
		return " win=small"
	}
	return ""
}

func (f *flow) renderOpts(s rxSeg) string {
	var o []string
	if s.opts.MSS != 0 {
		o = append(o, fmt.Sprintf("mss %d", s.opts.MSS))
	}
	if s.opts.SACKPermit {
		o = append(o, "sackOK")
	}
	if s.opts.TS {
		o = append(o, f.renderTS(s))
	}
	if s.opts.WS.Present {
		o = append(o, "ws")
	}
	for i := 0; i < s.opts.NumSACK; i++ {
		blk := s.opts.SACK[i]
		o = append(o, fmt.Sprintf("sack %d-%d", int32(blk.Start-f.iss), int32(blk.End-f.iss)))
	}
	return strings.Join(o, ",")
}

// renderTS checks the echo rather than printing clock values: TSecr must be
// a TSval the peer sent (zero on a SYN that answers nothing).
func (f *flow) renderTS(s rxSeg) string {
	ecr := s.opts.TSEcr
	switch {
	case s.flags&header.FlagACK == 0 && ecr == 0:
		return "TS"
	case f.tsHi != 0 && ecr-f.tsLo <= f.tsHi-f.tsLo:
		return "TS"
	}
	return "TS ecr?"
}
