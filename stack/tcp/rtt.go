package tcp

import (
	"time"

	"ustack/stack/seqnum"
)

// rttState is the RFC 6298 round-trip estimator with Karn's rule.
type rttState struct {
	srtt, rttvar, rto time.Duration // rto within Config.MinRTO and MaxRTO
	measured          bool
	// One segment is timed at a time (RFC 6298 §3 / Karn): the sample is
	// taken when an ACK covers seq, and dropped if anything was retransmitted.
	timing bool
	seq    seqnum.Value
	sent   stamp
}

func (r *rttState) init(cfg *Config) { r.rto = cfg.InitialRTO }

// start times the segment ending at end, unless one is already timed.
func (r *rttState) start(now time.Time, end seqnum.Value) {
	if !r.timing {
		r.timing, r.seq, r.sent = true, end, stampOf(now)
	}
}

// cancel forgets the timed segment (Karn's rule: never sample a
// retransmitted segment).
func (r *rttState) cancel() { r.timing = false }

// acked takes a sample if ack covers the timed segment and returns it.
func (r *rttState) acked(now time.Time, ack seqnum.Value, cfg *Config) time.Duration {
	if !r.timing || ack.LessThan(r.seq) {
		return 0
	}
	r.timing = false
	s := stampOf(now).Sub(r.sent)
	r.sample(s, cfg)
	return s
}

// sample feeds one measurement R (RFC 6298 §2.2, §2.3).
func (r *rttState) sample(s time.Duration, cfg *Config) {
	if s <= 0 {
		s = time.Microsecond
	}
	if !r.measured {
		r.srtt, r.rttvar, r.measured = s, s/2, true
	} else {
		d := r.srtt - s
		if d < 0 {
			d = -d
		}
		r.rttvar = (3*r.rttvar + d) / 4 // beta = 1/4
		r.srtt = (7*r.srtt + s) / 8     // alpha = 1/8
	}
	r.rto = r.srtt + max(time.Millisecond, 4*r.rttvar) // G = 1 ms
	r.clamp(cfg)
}

func (r *rttState) clamp(cfg *Config) {
	r.rto = min(max(r.rto, cfg.MinRTO), cfg.MaxRTO) // RFC 6298 §2.4, §2.5
}

// backoff doubles the RTO after a timeout (RFC 6298 §5.5).
func (r *rttState) backoff(cfg *Config) {
	r.rto *= 2
	r.clamp(cfg)
}
