package ipv4

import (
	"sync"
	"sync/atomic"
	"time"
)

// Path MTU discovery (RFC 1191) parameters, Linux's defaults.
const (
	// PMTUExpires is how long a learned path MTU holds (Linux's
	// net.ipv4.route.mtu_expires). RFC 1191 §6.3: a host "MUST attempt to
	// detect increases" no sooner than 5 minutes and recommends 10.
	PMTUExpires = 10 * time.Minute
	// MinPMTU is the smallest path MTU taken from an ICMP message (Linux's
	// net.ipv4.route.min_pmtu). A smaller one, or none (RFC 1191 §5's old
	// routers send 0), is taken as MinPMTU and "locked": datagrams to that
	// destination then go without DF, as Linux does in mode "want", so that
	// the path may fragment them (RFC 1191 §3 allows a host to stop setting
	// DF).
	MinPMTU = 552

	maxPMTUEntries = 4096
)

// PMTUDisc is the path MTU discovery mode, as Linux's IP_MTU_DISCOVER
// socket option (its numbering differs: the zero value here is "want",
// Linux's default for TCP).
type PMTUDisc uint8

const (
	// PMTUDiscWant (IP_PMTUDISC_WANT): DF set, lowered by "fragmentation
	// needed"; cleared towards a destination whose path MTU is below
	// MinPMTU.
	PMTUDiscWant PMTUDisc = iota
	// PMTUDiscDont (IP_PMTUDISC_DONT): DF clear; datagrams over the path
	// MTU are fragmented here; TCP keeps its segment size.
	PMTUDiscDont
	// PMTUDiscDo (IP_PMTUDISC_DO): DF always, lowered by "fragmentation
	// needed".
	PMTUDiscDo
)

func (m PMTUDisc) String() string {
	switch m {
	case PMTUDiscWant:
		return "want"
	case PMTUDiscDont:
		return "dont"
	case PMTUDiscDo:
		return "do"
	}
	return "pmtudisc(?)"
}

// DF reports whether a datagram goes out with DF set in this mode towards a
// destination whose cached path MTU is locked (below MinPMTU) or not.
func (m PMTUDisc) DF(locked bool) bool {
	return m == PMTUDiscDo || (m == PMTUDiscWant && !locked)
}

// PMTUCache holds the path MTUs learned per destination (Linux keeps them
// as route exceptions). Safe for concurrent use; Lookup on an empty cache
// takes no lock.
type PMTUCache struct {
	mu sync.RWMutex
	m  map[[4]byte]pmtuEntry
	n  atomic.Int32
}

type pmtuEntry struct {
	mtu     int
	locked  bool
	expires time.Time
}

// Empty reports that no path MTU was ever learned (or all were evicted):
// one atomic load.
func (c *PMTUCache) Empty() bool { return c.n.Load() == 0 }

// Lookup returns dst's path MTU and whether it is locked, or 0 when none is
// known (or it expired: RFC 1191 §6.3, the path MTU returns to the link's).
func (c *PMTUCache) Lookup(now time.Time, dst [4]byte) (mtu int, locked bool) {
	if c.n.Load() == 0 {
		return 0, false
	}
	c.mu.RLock()
	e, ok := c.m[dst]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return 0, false
	}
	return e.mtu, e.locked
}

// Update takes a "fragmentation needed" with next-hop MTU mtu for dst, on a
// link of linkMTU, as Linux's __ip_rt_update_pmtu: a locked entry stays
// until it expires; the path MTU only goes down (RFC 1191 §6.1: a host
// "MUST NOT increase its estimate of the Path MTU in response to the
// contents of a Datagram Too Big message"); below MinPMTU it becomes
// MinPMTU, locked. It returns the path MTU now in force and whether it
// changed.
func (c *PMTUCache) Update(now time.Time, dst [4]byte, mtu, linkMTU int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := linkMTU
	if e, ok := c.m[dst]; ok && now.Before(e.expires) {
		if e.locked {
			return e.mtu, false
		}
		old = e.mtu
	}
	if mtu >= old {
		return old, false
	}
	locked := false
	if mtu < MinPMTU {
		mtu, locked = min(old, MinPMTU), true
	}
	if c.m == nil {
		c.m = make(map[[4]byte]pmtuEntry)
	}
	if _, ok := c.m[dst]; !ok && len(c.m) >= maxPMTUEntries {
		c.evictLocked(now)
	}
	c.m[dst] = pmtuEntry{mtu: mtu, locked: locked, expires: now.Add(PMTUExpires)}
	c.n.Store(int32(len(c.m)))
	return mtu, mtu != old || locked
}

// evictLocked makes room: the expired entries go, or else the one that
// expires first.
func (c *PMTUCache) evictLocked(now time.Time) {
	var first [4]byte
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
