package tcp

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// SYN cookies (RFC 4987 §3.6): when a listener's half-open queue is full,
// the SYN-ACK's sequence number itself carries what the TCB would have held,
// so no state is kept until the final ACK proves the peer real:
//
//	bits 31-27  t mod 32, where t counts 64-second periods
//	bits 26-24  index of the peer's MSS in cookieMSS (rounded down)
//	bits 23-0   keyed hash of the 4-tuple, the peer's ISN and t
//
// The ACK that completes the handshake carries ISS+1, and its SEQ is the
// peer's ISN+1; a cookie is accepted for the current or the previous period.
// Window scaling, SACK and timestamps are not encoded: a connection made
// through a cookie runs without them (as in Linux without timestamps).
type CookieJar struct {
	secret [16]byte
}

var cookieMSS = [8]uint16{216, 536, 1024, 1200, 1360, 1400, 1440, 1460}

const cookiePeriod = 64 * time.Second

// NewCookieJar draws the secret from rand.
func NewCookieJar(rand io.Reader) (*CookieJar, error) {
	j := &CookieJar{}
	_, err := io.ReadFull(rand, j.secret[:])
	return j, err
}

func (j *CookieJar) hash(id ID, irs seqnum.Value, t uint32) uint32 {
	var b [keyedMax + 8]byte
	n := keyed(b[:], &j.secret, id)
	binary.BigEndian.PutUint32(b[n:], uint32(irs))
	binary.BigEndian.PutUint32(b[n+4:], t)
	h := sha256.Sum256(b[:n+8])
	return binary.BigEndian.Uint32(h[:4]) & 0xffffff
}

func period(now time.Time) uint32 { return uint32(now.Unix() / int64(cookiePeriod/time.Second)) }

// Make returns the cookie ISS for a SYN with sequence irs and MSS option
// peerMSS (0 if absent).
func (j *CookieJar) Make(id ID, irs seqnum.Value, peerMSS uint16, now time.Time) seqnum.Value {
	if peerMSS == 0 {
		peerMSS = DefaultPeerMSS
		if a := id.Remote.Addr(); a.Is6() && !a.Is4In6() {
			peerMSS = DefaultPeerMSSv6
		}
	}
	idx := 0
	for i, m := range cookieMSS {
		if m <= peerMSS {
			idx = i
		}
	}
	t := period(now)
	return seqnum.Value(t%32<<27 | uint32(idx)<<24 | j.hash(id, irs, t))
}

// Check validates the ACK of a cookie SYN-ACK and returns the MSS encoded.
func (j *CookieJar) Check(id ID, seg *Segment, now time.Time) (mss int, ok bool) {
	if seg.Flags&(flagSYN|flagRST|flagACK) != flagACK {
		return 0, false
	}
	iss := uint32(seg.Ack - 1)
	irs := seg.Seq - 1
	cur := period(now)
	for _, t := range []uint32{cur, cur - 1} {
		if iss>>27 != t%32 {
			continue
		}
		if iss&0xffffff == j.hash(id, irs, t) {
			return int(cookieMSS[iss>>24&7]), true
		}
	}
	return 0, false
}

// A cookie keeps the options it cannot hold in its sequence number in the
// low bits of the SYN-ACK's timestamp, which the ACK echoes, as Linux does
// (cookie_init_timestamp): 4 bits of the peer's window scale (15: none) and
// one for SACK. RFC 4987 §3.6 notes that cookies lose the options; with
// timestamps they need not, and a connection made through a cookie keeps
// window scaling and SACK.
const (
	cookieTSBits  = 6
	cookieTSMask  = 1<<cookieTSBits - 1
	cookieNoWS    = 0xf
	cookieSACKBit = 1 << 4
)

// SynAckForCookie is the SYN-ACK sent with a cookie: no TCB stands behind
// it. cfg is the listener's configuration; tsNow is the timestamp clock the
// connection will have (its TSval now).
func SynAckForCookie(syn *Segment, iss seqnum.Value, cfg Config, tsNow uint32) Segment {
	sa := Segment{
		Seq: iss, Ack: syn.Seq.Add(1), Flags: flagSYN | flagACK, Wnd: maxWindow,
		Opts: header.TCPOptions{MSS: uint16(cfg.MSS)},
	}
	if !syn.Opts.TS || cfg.NoTimestamps {
		return sa // nowhere to keep the other options
	}
	bits := uint32(cookieNoWS)
	if syn.Opts.WS.Present && !cfg.NoWindowScale {
		bits = uint32(min(syn.Opts.WS.Shift, maxWindowShift))
		sa.Opts.WS = header.WS(windowShift(cfg.RcvBuf))
	}
	if syn.Opts.SACKPermit && !cfg.NoSACK {
		bits |= cookieSACKBit
		sa.Opts.SACKPermit = true
	}
	ts := tsNow&^cookieTSMask | bits
	if int32(ts-tsNow) > 0 {
		ts -= 1 << cookieTSBits // never ahead of the clock
	}
	sa.Opts.TS, sa.Opts.TSVal, sa.Opts.TSEcr = true, ts, syn.Opts.TSVal
	return sa
}

// AcceptCookie makes a LISTEN TCB into the SYN-RECEIVED connection that the
// cookie in ack stood for, with the options its timestamp kept; ack is
// then processed with SegmentArrives and completes the handshake.
func (c *Conn) AcceptCookie(now time.Time, ack *Segment, mss int) {
	iss, irs := ack.Ack.Sub(1), ack.Seq.Sub(1)
	c.Listen(now)
	c.snd.start(iss)
	c.rcv.start(irs)
	c.rcv.adv = c.rcv.nxt.Add(maxWindow)
	c.opt.lastAckSent = c.rcv.nxt
	c.snd.mss = int32(min(mss, c.ourMSS()))
	c.snd.wl1, c.snd.wl2 = irs, iss
	if ack.Opts.TS && !c.cfg.NoTimestamps {
		bits := ack.Opts.TSEcr & cookieTSMask
		c.opt.ts = true
		c.opt.tsRecent, c.opt.tsRecentAt = ack.Opts.TSVal, uint32(now.Unix())
		if ws := bits & 0xf; ws != cookieNoWS && !c.cfg.NoWindowScale {
			c.opt.ws, c.opt.sndShift, c.opt.rcvShift = true, uint8(min(ws, maxWindowShift)), c.ourShift()
		}
		if bits&cookieSACKBit != 0 && !c.cfg.NoSACK {
			c.opt.sack = true
			c.rec = &c.sack
		}
	}
	c.rec.start(iss)
	c.setState(now, SynReceived, "syn cookie")
}

// ReopenFromTimeWait reports whether a SYN for this 4-tuple may end the
// TIME-WAIT and open a new connection (RFC 9293 §3.10.7.4 and RFC 6191):
// the SYN must lie beyond everything of the old connection, by sequence
// number or, with timestamps, by a newer timestamp. If so the TCB goes to
// CLOSED, and the stack hands the SYN to the listener.
func (c *Conn) ReopenFromTimeWait(now time.Time, seg *Segment) bool {
	if c.state != TimeWait || seg.Flags&(flagSYN|flagACK|flagRST) != flagSYN {
		return false
	}
	newer := seg.Seq.GreaterThan(c.rcv.nxt)
	if c.opt.ts && seg.Opts.TS {
		newer = int32(seg.Opts.TSVal-c.opt.tsRecent) > 0
	}
	if !newer {
		return false
	}
	c.setState(now, Closed, "rcv SYN: new connection (RFC 6191)")
	return true
}
