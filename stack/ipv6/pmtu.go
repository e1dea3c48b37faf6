package ipv6

import (
	"sync"
	"sync/atomic"
	"time"

	"ustack/stack/header"
)

// Path MTU discovery (RFC 8201) parameters, Linux's defaults.
const (
	// PMTUExpires is how long a learned path MTU holds (Linux's
	// net.ipv6.route.mtu_expires). RFC 8201 §4: an attempt to detect an
	// increase "MUST NOT be done less than 5 minutes after a Packet Too Big
	// message has been received", 10 minutes recommended.
	PMTUExpires = 10 * time.Minute
	// MinPMTU is the floor of a path MTU: RFC 8201 §4, a node "MUST NOT
	// reduce its estimate of the Path MTU below the IPv6 minimum link
	// MTU", even when a Packet Too Big reports less (Linux's
	// __ip6_rt_update_pmtu does the same).
	MinPMTU = header.IPv6MinMTU

	maxPMTUEntries = 4096
)

// PMTUCache holds the path MTUs learned per destination. Safe for
// concurrent use; Lookup on an empty cache takes no lock.
type PMTUCache struct {
	mu sync.RWMutex
	m  map[[16]byte]pmtuEntry
	n  atomic.Int32
}

type pmtuEntry struct {
	mtu     int
	expires time.Time
}

// Empty reports that no path MTU was ever learned (or all were evicted).
func (c *PMTUCache) Empty() bool { return c.n.Load() == 0 }

// Lookup returns dst's path MTU, or 0 when none is known or it expired
// (RFC 8201 §4: the estimate then returns to the link MTU).
func (c *PMTUCache) Lookup(now time.Time, dst [16]byte) int {
	if c.n.Load() == 0 {
		return 0
	}
	c.mu.RLock()
	e, ok := c.m[dst]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return 0
	}
	return e.mtu
}

// Update takes a Packet Too Big with MTU mtu for dst, on a link of
// linkMTU. The estimate only goes down (RFC 8201 §4: a node "MUST NOT
// increase its estimate of the Path MTU in response to the contents of a
// Packet Too Big message") and never below MinPMTU. It returns the path
// MTU now in force and whether it changed.
func (c *PMTUCache) Update(now time.Time, dst [16]byte, mtu, linkMTU int) (int, bool) {
	mtu = max(mtu, MinPMTU)
	c.mu.Lock()
	defer c.mu.Unlock()
	old := linkMTU
	if e, ok := c.m[dst]; ok && now.Before(e.expires) {
		old = e.mtu
	}
	if mtu >= old {
		return old, false
	}
	if c.m == nil {
		c.m = make(map[[16]byte]pmtuEntry)
	}
	if _, ok := c.m[dst]; !ok && len(c.m) >= maxPMTUEntries {
		c.evictLocked(now)
	}
	c.m[dst] = pmtuEntry{mtu: mtu, expires: now.Add(PMTUExpires)}
	c.n.Store(int32(len(c.m)))
	return mtu, true
}

// evictLocked makes room: the expired entries go, or else the one that
// expires first.
func (c *PMTUCache) evictLocked(now time.Time) {
	var first [16]byte
	var at time.Time
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
		} else if at.IsZero() || e.expires.Before(at) {
			first, at = k, e.expires
		}
	}
	if len(c.m) >= maxPMTUEntries {
		delete(c.m, first)
	}
}
