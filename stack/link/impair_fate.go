package link

// The fate of one offered packet: the random draws, the per-packet rule,
// and when each copy leaves.

import (
	"math/rand/v2"
	"time"
)

// jitterDraw is a uniform offset in [-Jitter, +Jitter].
func jitterDraw(r *rand.Rand, j time.Duration) time.Duration {
	if j <= 0 {
		return 0
	}
	return time.Duration(r.Uint64N(2*uint64(j)+1) - uint64(j))
}

// fate is what the random draws decided for one packet.
type fate struct {
	lost, dup, reorder, corrupt bool
	jitter, dupJitter           time.Duration
	flipByte, flipBit           int
}

// draw makes every random draw for a packet of n bytes, in a fixed order,
// whether or not a rule then decides its fate: a run's draws do not depend
// on the rules, so seeds replay.
func (d *impairDir) draw(n int) fate {
	s := &d.spec
	var f fate
	f.lost = s.Loss > 0 && d.loss.Float64() < s.Loss
	f.dup = s.Dup > 0 && d.dup.Float64() < s.Dup
	if f.dup {
		f.dupJitter = jitterDraw(d.dup, s.Jitter)
	}
	f.reorder = s.Reorder > 0 && d.reorder.Float64() < s.Reorder
	f.corrupt = s.Corrupt > 0 && d.corrupt.Float64() < s.Corrupt
	if f.corrupt {
		f.flipByte, f.flipBit = d.corrupt.IntN(max(n, 1)), d.corrupt.IntN(8)
		f.corrupt = n > 0
	}
	f.jitter = jitterDraw(d.jitter, s.Jitter)
	return f
}

// byRule applies the per-packet rule; it reports whether the rule decided
// the packet's fate (dropped, or held for the delay it gave).
func (d *impairDir) byRule(now time.Time, data []byte) bool {
	a := d.imp.rule(d.dir, data)
	switch {
	case a == Drop:
		d.cnt.Drop(dropRule)
		return true
	case a > 0:
		if d.held() >= d.limit {
			d.cnt.Drop(dropQueue)
			return true
		}
		p := d.newPkt(data)
		p.when = now.Add(time.Duration(a))
		d.cnt.Inc(evDelayed)
		d.push(p)
		return true
	}
	return false
}

// schedule is when a copy of n bytes leaves: after serialization at the
// rate limit, the delay and its jitter, never before the one before it
// (jitter does not reorder).
func (d *impairDir) schedule(now time.Time, n int, jitter time.Duration) time.Time {
	s := &d.spec
	when := now
	if s.Rate > 0 {
		// Serialization on the bottleneck, then propagation delay.
		if d.busy.After(when) {
			when = d.busy
		}
		when = when.Add(time.Duration(int64(n) * 8 * int64(time.Second) / s.Rate))
		d.busy = when
	}
	when = when.Add(max(s.Delay+jitter, 0))
	if when.Before(d.last) {
		when = d.last
	}
	d.last = when
	if when.After(now) {
		d.cnt.Inc(evDelayed)
	}
	return when
}
