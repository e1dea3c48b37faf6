package tcp

import (
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// Options negotiated in the handshake: RFC 7323 window scaling and
// timestamps, RFC 2018 SACK. Each is used only if both SYNs carry it.
type negotiated struct {
	ws       bool  // window scaling in use
	sndShift uint8 // the peer's shift: scales windows it sends us
	rcvShift uint8 // ours: scales windows we send
	// ourShift is the shift we announce (or announced), once shiftChosen.
	ourShift    uint8
	shiftChosen bool
	ts          bool // timestamps in use
	sack        bool // SACK in use

	tsRecent    uint32       // TS.Recent (RFC 7323 §4.3)
	tsRecentAt  uint32       // when TS.Recent was set, in Unix seconds, for the 24-day rule
	lastAckSent seqnum.Value // Last.ACK.sent
	tsOffset    uint32       // random per-connection offset (RFC 7323 §5.4)
}

// ourShift is the window scale we announce: the smallest that lets the
// largest receive buffer be offered whole: the auto-tuning's cap, or the
// size SO_RCVBUF fixed before the SYN. Linux chooses it the same way
// (tcp_select_initial_window: from tcp_rmem[2], or from the window clamp a
// locked buffer sets); RFC 7323 §2.3 leaves the choice to the receiver.
// It is chosen once, with the first SYN, so that a buffer set while the
// handshake is under way cannot change what the SYN announced.
func (c *Conn) ourShift() uint8 {
	if !c.opt.shiftChosen {
		size := c.cfg.RcvBuf
		if c.rcv.tune.locked {
			size = int(c.rcv.tune.size)
		}
		c.opt.shiftChosen, c.opt.ourShift = true, windowShift(size)
	}
	return c.opt.ourShift
}

// windowShift is the smallest window scale that lets a buffer of rcvBuf
// bytes be offered whole (RFC 7323 §2.3: at most 14).
func windowShift(rcvBuf int) uint8 {
	s := uint8(0)
	for s < maxWindowShift && rcvBuf>>s > maxWindow {
		s++
	}
	return s
}

// synOptions are the options of our SYN or SYN-ACK. A SYN-ACK carries an
// option only if the peer's SYN offered it (RFC 7323 §1.3, RFC 2018 §2).
func (c *Conn) synOptions(now time.Time, synAck bool) header.TCPOptions {
	o := header.TCPOptions{MSS: uint16(c.ourMSS())}
	if !c.cfg.NoWindowScale && (!synAck || c.opt.ws) {
		o.WS = header.WS(c.ourShift())
	}
	if !c.cfg.NoTimestamps && (!synAck || c.opt.ts) {
		o.TS, o.TSVal = true, c.tsNow(now)
		if synAck {
			o.TSEcr = c.opt.tsRecent
		}
	}
	if !c.cfg.NoSACK && (!synAck || c.opt.sack) {
		o.SACKPermit = true
	}
	return o
}

// takeSynOptions records what the peer's SYN (or SYN-ACK) offered. The MSS
// bounds every segment we send (RFC 9293 §3.7.1).
func (c *Conn) takeSynOptions(now time.Time, seg *Segment) {
	peer := int(seg.Opts.MSS)
	if peer == 0 {
		peer = DefaultPeerMSS
		if c.ipv6() {
			// RFC 9293 §3.7.1: 1220 over IPv6 (Linux's mss_clamp for an
			// IPv6 request, IPV6_MIN_MTU - 60).
			peer = DefaultPeerMSSv6
		}
	}
	c.snd.mss = int32(min(peer, c.ourMSS()))
	if c.pmtu > 0 {
		// A "fragmentation needed" that came during the handshake holds.
		c.snd.mss = int32(min(int(c.snd.mss), int(c.pmtu)-c.netHeaderLen()-tcpHeaderLen))
	}
	c.opt.ws = seg.Opts.WS.Present && !c.cfg.NoWindowScale
	if c.opt.ws {
		c.opt.sndShift, c.opt.rcvShift = seg.Opts.WS.Shift, c.ourShift()
	} else {
		c.opt.sndShift, c.opt.rcvShift = 0, 0
	}
	c.opt.ts = seg.Opts.TS && !c.cfg.NoTimestamps
	if c.opt.ts {
		c.opt.tsRecent, c.opt.tsRecentAt = seg.Opts.TSVal, uint32(now.Unix())
	}
	c.opt.sack = seg.Opts.SACKPermit && !c.cfg.NoSACK
	if c.opt.sack {
		// SACK is in use: RFC 6675 recovery with RACK-TLP instead of NewReno.
		c.rec = &c.sack
		c.rec.start(c.snd.iss)
	}
}

// tsNow is our timestamp clock: milliseconds (RFC 7323 §5.4: 1 ms to 1 s
// per tick) plus a per-connection offset.
func (c *Conn) tsNow(now time.Time) uint32 { return uint32(now.UnixMilli()) + c.opt.tsOffset }

// echoedBefore reports whether an ACK's TSecr ecr (0: none) is older than
// the TSval a segment sent at "at" carried (Linux's tcp_tsopt_ecr_before).
func (c *Conn) echoedBefore(ecr uint32, at stamp) bool {
	return ecr != 0 && int32(ecr-c.tsNow(at.Time())) < 0
}

// SetTSOffset sets the random timestamp offset (the stack derives it from
// its keyed hash, like the ISN).
func (c *Conn) SetTSOffset(off uint32) { c.opt.tsOffset = off }

// optionsFor fills the options of a non-SYN segment: the timestamp and,
// while data is missing, SACK blocks (as many as fit in room bytes).
func (c *Conn) optionsFor(now time.Time, seg *Segment) {
	seg.Opts = header.TCPOptions{}
	if seg.Flags&(flagRST|flagACK) == flagRST {
		return // a reset answering a segment carries no options
	}
	room := header.TCPMaxHeaderLen - header.TCPMinHeaderLen
	if c.opt.ts {
		seg.Opts.TS, seg.Opts.TSVal, seg.Opts.TSEcr = true, c.tsNow(now), c.opt.tsRecent
		room -= 12
	}
	if c.opt.sack && seg.Flags&flagACK != 0 && c.rcv.sackPending() {
		c.rcv.fillSACK(&seg.Opts, (room-4)/8)
	}
}

// optionBytes is the option space every data segment carries now.
func (c *Conn) optionBytes() int {
	n := 0
	if c.opt.ts {
		n += 12
	}
	if c.opt.sack && c.rcv.sackPending() {
		n += 4 + 8*min(c.rcv.ooo.len()+boolInt(c.rcv.dsackOn), header.MaxSACKBlocks-boolInt(c.opt.ts))
	}
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// paws is RFC 7323 §5.3 R1: a segment whose timestamp is older than
// TS.Recent is an old duplicate. TS.Recent older than 24 days is stale and
// does not count.
func (c *Conn) paws(now time.Time, seg *Segment) bool {
	if !c.opt.ts || !seg.Opts.TS || seg.Flags&flagRST != 0 {
		return true
	}
	if int32(seg.Opts.TSVal-c.opt.tsRecent) >= 0 {
		return true
	}
	if now.Unix()-int64(c.opt.tsRecentAt) > int64(24*24*time.Hour/time.Second) {
		c.opt.tsRecent = seg.Opts.TSVal // §5.5: invalidate the stale TS.Recent
		return true
	}
	return false
}

// updateTSRecent is RFC 7323 §4.3 (3): remember the peer's timestamp of a
// segment that covers the left edge of the window.
func (c *Conn) updateTSRecent(now time.Time, seg *Segment) {
	if c.opt.ts && seg.Opts.TS && int32(seg.Opts.TSVal-c.opt.tsRecent) >= 0 && seg.Seq.LessThanEq(c.opt.lastAckSent) {
		c.opt.tsRecent, c.opt.tsRecentAt = seg.Opts.TSVal, uint32(now.Unix())
	}
}
