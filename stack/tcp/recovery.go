package tcp

import (
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// Loss recovery: fast retransmit and fast recovery (RFC 5681 §3.2) with
// NewReno's partial ACKs (RFC 6582) when the peer does not SACK (reno,
// below), and the conservative SACK-based recovery of RFC 6675 with
// RACK-TLP (RFC 8985) when it does (sack.go, rack.go). A connection starts
// with reno and switches once, when the handshake shows SACK is in use.

// sackBlocks are the SACK blocks of one segment.
type sackBlocks = [header.MaxSACKBlocks]header.SACKBlock

// dupThresh is RFC 5681's and RFC 6675's DupThresh.
const dupThresh = 3

// lossRecovery is what the state machine and the sender ask of loss
// recovery. Each implementation owns its timers and counters.
type lossRecovery interface {
	// start sets RFC 6582's "recover" to the ISS: no recovery yet.
	start(iss seqnum.Value)
	inRecovery() bool
	// pipe estimates the bytes in the network (RFC 6675 §4 SetPipe).
	pipe() int
	// sackedAt and nextSACKed tell the sender what the peer holds above
	// SND.UNA: the end of the SACKed range holding v, and the start of the
	// first SACKed range above v.
	sackedAt(v seqnum.Value) (end seqnum.Value, ok bool)
	nextSACKed(v seqnum.Value) (start seqnum.Value, ok bool)

	// onSent records a transmission of [seq, end).
	onSent(now time.Time, seq, end seqnum.Value)
	// onDataSent runs after data left; onAckAdvanced after SND.UNA moved
	// and the retransmission timer was restarted or stopped.
	onDataSent(now time.Time)
	onAckAdvanced(now time.Time)
	// takeSACK takes the n SACK blocks of an acceptable ACK and reports
	// whether they SACKed anything new. The blocks come by value, so that
	// the segment does not escape through the interface.
	takeSACK(now time.Time, ack seqnum.Value, blocks sackBlocks, n int) bool
	// acked runs when SND.UNA has moved, before the RTT sample; ecr is
	// the ACK's TSecr, 0 without the timestamp option.
	acked(now time.Time, ecr uint32)
	// ackAdvanced handles a new cumulative ACK in recovery and reports
	// whether recovery was in progress (then congestion control does not
	// grow the window).
	ackAdvanced(now time.Time) bool
	// onDupAck handles a duplicate ACK (RFC 5681 §2, RFC 6675 §2).
	onDupAck(now time.Time)
	// check looks for lost segments after an ACK (RACK).
	check(now time.Time)
	// rttSample is the RTT of the newest never-retransmitted segment the
	// last ACK delivered, to the microsecond (0: none, or no records).
	rttSample() time.Duration
	// onRTO forgets recovery after a retransmission timeout.
	onRTO()
	// room is how many bytes may leave now, given cwnd - pipe: in recovery
	// PRR's allowance (prr.go).
	room(cwndRoom int) int

	// disorder reports duplicate ACKs or SACKed data short of a recovery;
	// sackedLost the bytes SACKed and marked lost (TCP_INFO).
	disorder() bool
	sackedLost() (sacked, lost int)

	deadline() stamp    // the earliest of its timers, or zero
	tick(now time.Time) // runs its timers that are due
	stopTimers()
	addStats(st *Stats)
}

// recoveryBase is the state both recoveries keep: one per connection
// (Conn.rb), which both point to, as only one is ever in use.
type recoveryBase struct {
	c         *Conn
	dupAcks   int
	recover   seqnum.Value // RFC 6582 / RFC 6675 RecoveryPoint
	inRecover bool
	highRxt   seqnum.Value // RFC 6675 HighRxt: highest retransmitted in recovery
	prr       prrState
	stats     struct{ dupAcks, fastRetransmits uint64 }
}

func (b *recoveryBase) start(iss seqnum.Value) { b.recover = iss }
func (b *recoveryBase) inRecovery() bool       { return b.inRecover }

// enter starts a recovery episode (RFC 6582 §3.2 step 2, RFC 6675 §5
// step 4): remember the recovery point and reduce the congestion window.
func (b *recoveryBase) enter(now time.Time) {
	s := &b.c.snd
	b.stats.fastRetransmits++
	b.inRecover = true
	b.recover = s.max
	b.highRxt = s.una
	if s.cc != nil {
		s.cc.OnLoss(now, s.flight())
	}
	b.prrEnter()
}

// leave ends recovery after a timeout (RFC 6582 §4, RFC 6675 §5.1): a later
// loss in this window does not reduce again.
func (b *recoveryBase) leave() {
	s := &b.c.snd
	b.inRecover = false
	b.dupAcks = 0
	b.recover = s.max
	b.highRxt = s.una
}

// fullyAcked reports whether the cumulative ACK has reached the recovery
// point, which ends recovery (RFC 6582 §3.2 step 3, RFC 6675 §5).
func (b *recoveryBase) fullyAcked() bool {
	s := &b.c.snd
	if s.una.GreaterThanEq(b.recover) {
		b.inRecover = false
		b.dupAcks = 0
		return true
	}
	if b.highRxt.LessThan(s.una) {
		b.highRxt = s.una
	}
	return false
}

// retransmitAt resends one segment's worth at seq, stopping at the next
// SACKed range, with the FIN if it is next.
func (b *recoveryBase) retransmitAt(now time.Time, seq seqnum.Value) {
	c := b.c
	s := &c.snd
	off := int(s.bufSeq().Size(seq))
	n := min(s.buf.Len()-off, c.effMSS())
	if start, ok := c.rec.nextSACKed(seq); ok {
		n = min(n, int(seq.Size(start)))
	}
	fin := s.finQueued && off+max(n, 0) == s.buf.Len() && seq.Add(seqnum.Size(max(n, 0))) == s.finSeq
	if n <= 0 && !fin {
		return
	}
	end := c.sendRange(now, seq, max(n, 0), fin, false)
	if end.GreaterThan(b.highRxt) {
		b.highRxt = end
	}
}

func (b *recoveryBase) addStats(st *Stats) {
	st.DupAcks, st.FastRetransmits = b.stats.dupAcks, b.stats.fastRetransmits
}

// renoRecovery is NewReno (RFC 6582) for a peer without SACK: three
// duplicate ACKs start recovery; each partial ACK resends the next
// unacknowledged segment. It has no timers of its own.
type renoRecovery struct{ *recoveryBase }

// pipe: in NewReno recovery each duplicate ACK stands for one segment that
// left the network (the window inflation of RFC 5681 step 4).
func (r *renoRecovery) pipe() int {
	s := &r.c.snd
	if !r.inRecover {
		return int(s.una.Size(s.nxt))
	}
	return max(s.flight()-r.dupAcks*int(s.mss), 0)
}

func (r *renoRecovery) sackedAt(seqnum.Value) (seqnum.Value, bool)   { return 0, false }
func (r *renoRecovery) nextSACKed(seqnum.Value) (seqnum.Value, bool) { return 0, false }
func (r *renoRecovery) onDataSent(time.Time)                         {}
func (r *renoRecovery) onAckAdvanced(time.Time)                      {}
func (r *renoRecovery) acked(time.Time, uint32)                      {}
func (r *renoRecovery) check(time.Time)                              {}
func (r *renoRecovery) onRTO()                                       { r.leave() }
func (r *renoRecovery) deadline() stamp                              { return 0 }
func (r *renoRecovery) tick(time.Time)                               {}
func (r *renoRecovery) stopTimers()                                  {}
func (r *renoRecovery) disorder() bool                               { return r.dupAcks > 0 }
func (r *renoRecovery) sackedLost() (int, int)                       { return 0, 0 }

func (r *renoRecovery) onSent(_ time.Time, seq, end seqnum.Value) { r.prrSent(seq, end) }

// takeSACK: no SACK; each duplicate ACK counts as one segment delivered
// (RFC 6937 §3 without SACK).
func (r *renoRecovery) takeSACK(time.Time, seqnum.Value, sackBlocks, int) bool {
	r.prrACKStart(r.dupSacked())
	return false
}

// dupSacked is what the duplicate ACKs say the peer holds above SND.UNA.
func (r *renoRecovery) dupSacked() int {
	s := &r.c.snd
	return min(r.dupAcks*int(s.mss), s.flight())
}

// ackAdvanced: a partial ACK resends the next unacknowledged segment at
// once (RFC 6582 §3.2 step 3).
func (r *renoRecovery) ackAdvanced(now time.Time) bool {
	if !r.inRecover {
		r.dupAcks = 0
		return false
	}
	if r.fullyAcked() {
		return true
	}
	r.dupAcks = 0
	r.prrACK(r.pipe(), 0)
	r.retransmitAt(now, r.c.snd.una)
	return true
}

// onDupAck: the third duplicate ACK resends the first unacknowledged
// segment (RFC 5681 §3.2), unless this window already had a recovery
// (RFC 6582 §4: SND.UNA must be beyond "recover").
func (r *renoRecovery) onDupAck(now time.Time) {
	r.stats.dupAcks++
	r.dupAcks++
	if r.inRecover {
		r.prrACK(r.pipe(), r.dupSacked()) // output sends new data as PRR allows
		return
	}
	s := &r.c.snd
	if r.dupAcks >= dupThresh && (s.una.GreaterThan(r.recover) || r.recover == s.iss) {
		r.enter(now)
		r.prrACK(r.pipe(), r.dupSacked())
		r.retransmitAt(now, s.una)
	}
}

func (*renoRecovery) rttSample() time.Duration { return 0 }
