package tcp

import "ustack/stack/seqnum"

// Proportional Rate Reduction (RFC 6937), as Linux's tcp_cwnd_reduction
// does it with the slow-start reduction bound (PRR-SSRB). Congestion
// control sets ssthresh (and its cwnd) once, on entering recovery; during
// recovery what may leave is not cwnd - pipe but PRR's sndcnt, so that the
// window comes down to ssthresh spread over the round trip (about one
// segment sent per two delivered for a halving), not as silence followed
// by a burst. Recovery ends with cwnd = ssthresh (RFC 6937 §3), which is
// the controller's window: it does not grow during recovery.
type prrState struct {
	recoverFS int // RFC 6937 §3.1 RecoverFS: FlightSize when recovery began
	delivered int // prr_delivered
	out       int // prr_out
	sndcnt    int // what may still be sent on this ACK, in bytes
	// The delivery state last counted: SND.UNA and the bytes SACKed (for
	// NewReno, duplicate ACKs times SMSS). Outside recovery it is taken at
	// the start of every ACK, so that the ACK that starts recovery counts.
	una    seqnum.Value
	sacked int
	fresh  bool // an ACK came whose delivery is not counted yet
}

// prrACKStart runs at the start of every acceptable ACK, with the bytes the
// peer held SACKed before it.
func (b *recoveryBase) prrACKStart(sacked int) {
	b.prr.fresh = true
	if !b.inRecover {
		b.prr.una, b.prr.sacked = b.c.snd.una, sacked
	}
}

// prrEnter is RFC 6937 §3.1's initialization on entering recovery, after
// congestion control set ssthresh.
func (b *recoveryBase) prrEnter() {
	b.prr.recoverFS = max(b.c.snd.flight(), 1)
	b.prr.delivered, b.prr.out, b.prr.sndcnt = 0, 0, 0
}

// prrACK is RFC 6937 §3.1 "on every ACK during recovery": count
// DeliveredData (the change in SND.UNA plus the change in SACKed bytes) and
// compute sndcnt from pipe, after loss marking.
func (b *recoveryBase) prrACK(pipe, sacked int) {
	s := &b.c.snd
	p := &b.prr
	p.fresh = false
	dd := max(int(p.una.Size(s.una))+sacked-p.sacked, 0)
	p.una, p.sacked = s.una, sacked
	p.delivered += dd
	if s.cc == nil {
		return
	}
	ssthresh, mss := s.cc.Ssthresh(), b.c.effMSS()
	if pipe > ssthresh {
		// Proportional rate reduction: CEIL(prr_delivered * ssthresh /
		// RecoverFS) - prr_out.
		p.sndcnt = (p.delivered*ssthresh+p.recoverFS-1)/p.recoverFS - p.out
	} else {
		// Slow-start reduction bound: catch up towards ssthresh no faster
		// than slow start would.
		limit := max(p.delivered-p.out, dd) + mss
		p.sndcnt = min(ssthresh-pipe, limit)
	}
	if p.out == 0 {
		// The fast retransmit always goes (RFC 6675 §5 step 4; Linux lets
		// one segment out while prr_out is zero).
		p.sndcnt = max(p.sndcnt, mss)
	}
	p.sndcnt = max(p.sndcnt, 0)
}

// prrSent is RFC 6937 §3.1 "on any data transmission or retransmission".
func (b *recoveryBase) prrSent(seq, end seqnum.Value) {
	if !b.inRecover {
		return
	}
	n := int(seq.Size(end))
	b.prr.out += n
	b.prr.sndcnt -= n
}

// room is how many bytes may leave now given cwndRoom = cwnd - pipe: in
// recovery, what is left of PRR's sndcnt (RFC 6937 §3.1, Linux's
// cwnd = pipe + sndcnt); otherwise cwndRoom.
func (b *recoveryBase) room(cwndRoom int) int {
	if !b.inRecover || b.c.snd.rate != nil {
		// A model-based controller (BBR) sets the window in recovery
		// itself, as Linux skips tcp_cwnd_reduction for a module with
		// cong_control.
		return cwndRoom
	}
	return max(b.prr.sndcnt, 0)
}
