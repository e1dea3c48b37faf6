package ipv6

import (
	"sync"
	"time"

	"ustack/stack/header"
)

// ICMPv6 rate limits, Linux's defaults (RFC 4443 §2.4(f): an ICMPv6
// node MUST limit the rate of the errors it originates; a token bucket is
// its suggestion).
const (
	// ICMPRateLimit is the interval per peer (net.ipv6.icmp.ratelimit).
	// Linux shortens it for peers reached through a route shorter than a
	// /128 (by one bit of shift per 32 bits of prefix missing); the layer
	// knows no routes and takes the full interval, as package ipv4 does.
	ICMPRateLimit   = time.Second
	ICMPMsgsPerSec  = 1000 // net.ipv4.icmp_msgs_per_sec, which Linux applies to ICMPv6 too
	ICMPMsgsBurst   = 50   // net.ipv4.icmp_msgs_burst
	peerBurstFactor = 6    // Linux's XRLIM_BURST_FACTOR
	maxPeers        = 4096 // peers tracked at once
)

// rateLimited reports the types Linux's default net.ipv6.icmp.ratemask
// ("0-1,3-127") limits: every error but Packet Too Big, which path MTU
// discovery needs. Informational messages are not limited.
func rateLimited(typ uint8) bool {
	return header.IsICMPv6Error(typ) && typ != header.ICMPv6PacketTooBig
}

// icmpLimiter is Linux's two limits on ICMPv6 errors sent (icmp6_send, 6.x):
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
	peers  map[[16]byte]*peerBucket
}

type peerBucket struct {
	tokens time.Duration
	last   time.Time
}

func (r *icmpLimiter) allow(now time.Time, dst [16]byte, typ uint8) bool {
	if !rateLimited(typ) {
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
func (r *icmpLimiter) peer(now time.Time, dst [16]byte) *peerBucket {
	if p := r.peers[dst]; p != nil {
		return p
	}
	if r.peers == nil {
		r.peers = make(map[[16]byte]*peerBucket)
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
