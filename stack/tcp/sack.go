package tcp

import (
	"sync"
	"time"

	"ustack/stack/seqnum"
)

// scoreboard is the sender's record of SACKed ranges above SND.UNA
// (RFC 6675 §3), sorted and merged. The ranges' array comes from a pool
// while any range is held and goes back when none is, so that a
// connection without loss holds none.
type scoreboard struct {
	rh    *[]sackRange // nil: no range
	bytes int          // total SACKed bytes
}

type sackRange struct{ start, end seqnum.Value }

var sbPool = sync.Pool{New: func() any { return new([]sackRange) }}

// ranges are the SACKed ranges, in order.
func (sb *scoreboard) ranges() []sackRange {
	if sb.rh == nil {
		return nil
	}
	return *sb.rh
}

// set makes r the ranges.
func (sb *scoreboard) set(r []sackRange) {
	if len(r) == 0 {
		if sb.rh != nil {
			*sb.rh = r[:0]
			sbPool.Put(sb.rh)
			sb.rh = nil
		}
		return
	}
	if sb.rh == nil {
		sb.rh = sbPool.Get().(*[]sackRange)
	}
	*sb.rh = r
}

func (sb *scoreboard) reset() {
	sb.set(sb.ranges()[:0])
	sb.bytes = 0
}

// add records [start, end).
func (sb *scoreboard) add(start, end seqnum.Value) {
	r := sb.ranges()
	if sb.rh == nil {
		sb.rh = sbPool.Get().(*[]sackRange)
		r = (*sb.rh)[:0]
	}
	i := 0
	for i < len(r) && r[i].end.LessThan(start) {
		i++
	}
	j := i
	for j < len(r) && r[j].start.LessThanEq(end) {
		start = seqnum.Min(start, r[j].start)
		end = seqnum.Max(end, r[j].end)
		sb.bytes -= int(r[j].start.Size(r[j].end))
		j++
	}
	sb.bytes += int(start.Size(end))
	if i == j {
		r = append(r, sackRange{})
		copy(r[i+1:], r[i:])
		r[i] = sackRange{start, end}
		sb.set(r)
		return
	}
	r[i] = sackRange{start, end}
	sb.set(append(r[:i+1], r[j:]...))
}

// ackedTo drops everything below una.
func (sb *scoreboard) ackedTo(una seqnum.Value) {
	r := sb.ranges()
	k := 0
	for _, x := range r {
		if x.end.LessThanEq(una) {
			sb.bytes -= int(x.start.Size(x.end))
			continue
		}
		if x.start.LessThan(una) {
			sb.bytes -= int(x.start.Size(una))
			x.start = una
		}
		r[k] = x
		k++
	}
	sb.set(r[:k])
}

// highest is the end of the highest SACKed range (or una if none).
func (sb *scoreboard) highest(una seqnum.Value) seqnum.Value {
	r := sb.ranges()
	if len(r) == 0 {
		return una
	}
	return r[len(r)-1].end
}

// sackedAt returns the end of the SACKed range holding v, if any.
func (sb *scoreboard) sackedAt(v seqnum.Value) (seqnum.Value, bool) {
	for _, r := range sb.ranges() {
		if v.InRange(r.start, r.end) {
			return r.end, true
		}
	}
	return 0, false
}

// sackedBetween counts SACKed bytes in [a, b).
func (sb *scoreboard) sackedBetween(a, b seqnum.Value) int {
	n := 0
	for _, r := range sb.ranges() {
		s, e := seqnum.Max(r.start, a), seqnum.Min(r.end, b)
		if s.LessThan(e) {
			n += int(s.Size(e))
		}
	}
	return n
}

// nextSACKed returns the first SACKed range that starts above v.
func (sb *scoreboard) nextSACKed(v seqnum.Value) (seqnum.Value, seqnum.Value, bool) {
	for _, r := range sb.ranges() {
		if v.LessThan(r.start) {
			return r.start, r.end, true
		}
	}
	return 0, 0, false
}

// sackRecovery is the conservative SACK-based loss recovery of RFC 6675,
// with losses found by RACK (RFC 8985 §6) and tail loss probes (§7). It
// owns the scoreboard, RACK's records and two timers: the probe timeout
// and the reordering window.
type sackRecovery struct {
	*recoveryBase
	sb    scoreboard // SACKed ranges above SND.UNA
	rack  rackState
	tlpAt stamp // tail loss probe (RFC 8985 §7)
	reoAt stamp // RACK reordering window (RFC 8985 §6.2)
	sstat struct{ tlpProbes, rackLost, dsackRecv uint32 }
}

// pipe: outside recovery, the data sent and neither ACKed nor SACKed; in
// recovery, what is outstanding less what was SACKed and what is marked
// lost and not yet sent again (RFC 6675 SetPipe with RACK's IsLost).
func (k *sackRecovery) pipe() int {
	s := &k.c.snd
	if !k.inRecover {
		return int(s.una.Size(s.nxt)) - k.sb.sackedBetween(s.una, s.nxt)
	}
	return max(s.flight()-k.sb.bytes-k.rack.lostBytes, 0)
}

func (k *sackRecovery) sackedAt(v seqnum.Value) (seqnum.Value, bool) { return k.sb.sackedAt(v) }

func (k *sackRecovery) nextSACKed(v seqnum.Value) (seqnum.Value, bool) {
	s, _, ok := k.sb.nextSACKed(v)
	return s, ok
}

// takeSACK adds the ACK's SACK blocks to the scoreboard (RFC 6675 §5:
// blocks below SND.UNA or above SND.MAX are ignored) and marks the newly
// covered records delivered.
func (k *sackRecovery) takeSACK(now time.Time, ack seqnum.Value, blocks sackBlocks, n int) bool {
	k.prrACKStart(k.sb.bytes)
	k.rack.lastRTT, k.rack.lastAt = 0, 0 // this ACK's sample, if any, comes below
	if n == 0 {
		return false
	}
	s := &k.c.snd
	if isDSACK(blocks, n, seqnum.Max(ack, s.una)) {
		k.onDSACK()
	}
	before := k.sb.bytes
	for _, b := range blocks[:n] {
		start, end := seqnum.Value(b.Start), seqnum.Value(b.End)
		if !start.LessThan(end) || end.LessThanEq(s.una) || end.GreaterThan(s.max) {
			continue
		}
		k.sb.add(seqnum.Max(start, s.una), end)
	}
	if k.sb.bytes == before {
		return false
	}
	k.rackSACKed(now)
	return true
}

// acked drops the scoreboard and RACK's records below SND.UNA.
func (k *sackRecovery) acked(now time.Time, ecr uint32) {
	k.sb.ackedTo(k.c.snd.una)
	k.rackAcked(now, ecr)
}

// ackAdvanced: in recovery, a partial ACK lets more lost segments go out as
// PRR allows (RFC 6675 §5 step C), once check has marked losses.
func (k *sackRecovery) ackAdvanced(time.Time) bool {
	if !k.inRecover {
		k.dupAcks = 0
		return false
	}
	if k.fullyAcked() {
		k.rack.recoveryEnded()
	}
	return true
}

// isDSACK reports whether the first block is a D-SACK (RFC 2883 §4): it
// lies below the cumulative ACK, or inside the second block.
func isDSACK(blocks sackBlocks, n int, una seqnum.Value) bool {
	if n == 0 {
		return false
	}
	start, end := seqnum.Value(blocks[0].Start), seqnum.Value(blocks[0].End)
	if !start.LessThan(end) {
		return false
	}
	if end.LessThanEq(una) {
		return true
	}
	if n > 1 {
		s1, e1 := seqnum.Value(blocks[1].Start), seqnum.Value(blocks[1].End)
		return s1.LessThanEq(start) && end.LessThanEq(e1)
	}
	return false
}

// onDupAck: recovery starts at the third duplicate ACK or once more than
// (DupThresh-1)*SMSS bytes are SACKed (RFC 6675 §5 IsLost); in recovery,
// each one may let a lost segment go out (check does it).
func (k *sackRecovery) onDupAck(now time.Time) {
	k.stats.dupAcks++
	k.dupAcks++
	if k.inRecover {
		return
	}
	s := &k.c.snd
	sacked := k.sb.bytes > (dupThresh-1)*int(s.mss)
	if (k.dupAcks >= dupThresh || sacked) && (s.una.GreaterThan(k.recover) || k.recover == s.iss || sacked) {
		k.enterRecovery(now)
	}
}

// enterRecovery starts RFC 6675 recovery: every hole below the highest
// SACK is lost; the first goes out at once, then as much as PRR allows
// (RFC 6937 §3.1, counting the ACK that started recovery).
func (k *sackRecovery) enterRecovery(now time.Time) {
	k.enter(now)
	k.tlpAt = 0
	k.markHolesLost()
	k.prrACK(k.pipe(), k.sb.bytes)
	if s, ok := k.firstLost(); ok {
		k.retransmitAt(now, s)
	}
	k.recoverySend(now)
}

// markHolesLost is RFC 6675's IsLost for a recovery started by duplicate
// ACKs: every unSACKed segment below the highest SACKed one (and the one at
// SND.UNA) counts as lost, unless already sent again.
func (k *sackRecovery) markHolesLost() {
	high := k.sb.highest(k.c.snd.una)
	live := k.rack.live()
	for i := range live {
		rec := &live[i]
		if i > 0 && !rec.start.LessThan(high) {
			break
		}
		if rec.sacked || rec.lost || rec.rtx && i > 0 {
			continue
		}
		rec.lost = true
		k.rack.lostBytes += int(rec.start.Size(rec.end))
		k.c.snd.noteLost(int(rec.start.Size(rec.end)))
	}
}

// recoverySend resends lost segments (RFC 6675 §5 NextSeg rule 1) while
// PRR allows a full segment (RFC 6937 §3.1: the segments sent in recovery
// are bounded by sndcnt).
func (k *sackRecovery) recoverySend(now time.Time) {
	c := k.c
	if c.snd.cc == nil {
		return
	}
	for i := 0; i < 64; i++ {
		if k.room(c.snd.cc.Cwnd()-k.pipe()) < c.effMSS() {
			return
		}
		s, ok := k.firstLost()
		if !ok {
			return
		}
		before := k.rack.lostBytes
		k.retransmitAt(now, s)
		if k.rack.lostBytes == before {
			return // nothing could be sent
		}
	}
}

// onRTO: RFC 2018 §8: after a timeout, SACK information is not trusted (the
// receiver may have reneged): forget the scoreboard and RACK's marks, so
// that everything from SND.UNA is resent.
func (k *sackRecovery) onRTO() {
	k.leave()
	k.sb.reset()
	live := k.rack.live()
	for i := range live {
		live[i].lost, live[i].sacked = false, false
	}
	k.rack.lostBytes, k.rack.tlpOut = 0, false
	k.stopTimers()
}

func (k *sackRecovery) disorder() bool { return k.dupAcks > 0 || k.sb.bytes > 0 }

func (k *sackRecovery) sackedLost() (int, int) { return k.sb.bytes, k.rack.lostBytes }

func (k *sackRecovery) stopTimers() { k.tlpAt, k.reoAt = 0, 0 }

func (k *sackRecovery) deadline() stamp { return earliest(k.tlpAt, k.reoAt) }

// tick runs the probe timer, then the reordering timer: segments whose
// reordering window has passed are lost.
func (k *sackRecovery) tick(now time.Time) {
	if due(k.tlpAt, now) {
		k.tlpAt = 0
		k.onTLP(now)
	}
	if due(k.reoAt, now) {
		k.reoAt = 0
		if k.rackDetect(now) && !k.inRecover {
			k.enterRecovery(now)
		} else if k.inRecover {
			k.recoverySend(now)
		}
	}
}

// onDataSent restarts the probe timer from this transmission (RFC 8985
// §7.2: "start or restart a loss probe PTO timer after transmitting new
// data"; Linux's tcp_schedule_loss_probe after every transmission).
func (k *sackRecovery) onDataSent(now time.Time) { k.armTLP(now) }

// onAckAdvanced: an ACK that moves SND.UNA answers any probe; the probe
// timer restarts while data is outstanding (RFC 8985 §7.2).
func (k *sackRecovery) onAckAdvanced(now time.Time) {
	k.rack.tlpOut = false
	if k.c.snd.una == k.c.snd.max {
		k.tlpAt = 0
	} else {
		k.armTLP(now)
	}
}

func (k *sackRecovery) addStats(st *Stats) {
	k.recoveryBase.addStats(st)
	st.TLPProbes, st.RACKLost, st.DSACKsReceived = uint64(k.sstat.tlpProbes), uint64(k.sstat.rackLost), uint64(k.sstat.dsackRecv)
}
