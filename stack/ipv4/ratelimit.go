package ipv4

import (
	"sync"
	"time"

	"ustack/stack/header"
)

// ICMP rate limits, Linux's defaults (RFC 1812 §4.3.2.8: "the rate
// limiting parameters SHOULD be settable"; RFC 1122 §3.2.2 lets a host
// limit the errors it sends).
const (
	ICMPRateLimit   = time.Second // net.ipv4.icmp_ratelimit: per peer
	ICMPMsgsPerSec  = 1000        // net.ipv4.icmp_msgs_per_sec: all peers
	ICMPMsgsBurst   = 50          // net.ipv4.icmp_msgs_burst
	peerBurstFactor = 6           // Linux's XRLIM_BURST_FACTOR
	maxPeers        = 4096        // peers tracked at once (Linux's inet_peer table is bounded by its GC)
)

// rateLimited reports the types Linux's default icmp_ratemask (0x1818)
// limits: destination unreachable, source quench, time exceeded, parameter
// problem. "Fragmentation needed" is exempt, as in icmpv4_mask_allow.
func rateLimited(typ, code uint8) bool {
	switch typ {
	case header.ICMPDestUnreach:
		return code != header.ICMPFragNeeded
	case header.ICMPSourceQuench, header.ICMPTimeExceeded, header.ICMPParamProblem:
		return true
	}
	return false
}

// icmpLimiter is Linux's two limits on ICMP errors sent (icmp_send, 6.x):
// a global token bucket (icmp_global_allow: icmp_msgs_per_sec credits a
// second, at most icmp_msgs_burst, refilled no more often than every 20 ms),
// then a bucket per destination (inet_peer_xrlim_allow: one message per
// icmp_ratelimit, bursts of 6, a new peer starting full). Linux takes a
// random 0-2 global credits per message (against side channels, mean 1);
// we take exactly 1 so that tests are deterministic.
type icmpLimiter struct {
	mu     sync.Mutex
	credit int
	stamp  time.Time
	peers  map[[4]byte]*peerBucket
}

type peerBucket struct {
	tokens time.Duration
	last   time.Time
}

func (r *icmpLimiter) allow(now time.Time, dst [4]byte, typ, code uint8) bool {
	if !rateLimited(typ, code) {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stamp.IsZero() {
		r.credit, r.stamp = ICMPMsgsBurst, now
	}
	if d := min(now.Sub(r.stamp), time.Second); d >= time.Second/50 {
		if incr := int(ICMPMsgsPerSec * d / time.Second); incr > 0 {
			r.credit = min(r.credit+incr, ICMPMsgsBurst)
			r.stamp = now
		}
	}
	if r.credit <= 0 {
		return false
	}
	p := r.peer(now, dst)
	if p == nil {
		return false
	}
	p.tokens = min(p.tokens+now.Sub(p.last), peerBurstFactor*ICMPRateLimit)
	p.last = now
	if p.tokens < ICMPRateLimit {
		return false
	}
	p.tokens -= ICMPRateLimit
	r.credit--
	return true
}

// peer finds or makes dst's bucket; nil when the table is full of peers
// that are still limited.
func (r *icmpLimiter) peer(now time.Time, dst [4]byte) *peerBucket {
	if p := r.peers[dst]; p != nil {
		return p
	}
	if r.peers == nil {
		r.peers = make(map[[4]byte]*peerBucket)
	}
	if len(r.peers) >= maxPeers {
		// A bucket idle long enough to be full again is the same as none.
		for k, p := range r.peers {
			if now.Sub(p.last)+p.tokens >= peerBurstFactor*ICMPRateLimit {
				delete(r.peers, k)
			}
		}
		if len(r.peers) >= maxPeers {
			return nil
		}
	}
	// Linux starts a peer 60 s in the past: its first refill fills it.
	p := &peerBucket{last: now.Add(-60 * time.Second)}
	r.peers[dst] = p
	return p
}
