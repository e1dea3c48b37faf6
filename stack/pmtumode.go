package stack

import (
	"sync"
	"sync/atomic"

	"ustack/stack/ipv4"
	"ustack/stack/tcp"
)

// connModes holds the connections whose path MTU discovery mode differs
// from Options.PMTUDiscovery (Conn.SetPMTUDiscovery, as setsockopt
// IP_MTU_DISCOVER on one socket). Looking a mode up costs one atomic load
// while there is none.
type connModes struct {
	mu sync.RWMutex
	m  map[tcp.ID]ipv4.PMTUDisc
	n  atomic.Int32
}

// modeFor is the path MTU discovery mode of connection id.
func (s *Stack) modeFor(id tcp.ID) ipv4.PMTUDisc {
	if s.modes.n.Load() == 0 {
		return s.opts.PMTUDiscovery
	}
	s.modes.mu.RLock()
	mode, ok := s.modes.m[id]
	s.modes.mu.RUnlock()
	if !ok {
		return s.opts.PMTUDiscovery
	}
	return mode
}

func (s *Stack) setMode(id tcp.ID, mode ipv4.PMTUDisc, set bool) {
	s.modes.mu.Lock()
	defer s.modes.mu.Unlock()
	if set {
		if s.modes.m == nil {
			s.modes.m = make(map[tcp.ID]ipv4.PMTUDisc)
		}
		s.modes.m[id] = mode
	} else {
		delete(s.modes.m, id)
	}
	s.modes.n.Store(int32(len(s.modes.m)))
}

// SetPMTUDiscovery sets this connection's path MTU discovery mode, as
// Linux's IP_MTU_DISCOVER socket option: ipv4.PMTUDiscWant, PMTUDiscDo or
// PMTUDiscDont. It holds until the connection is gone.
func (c *Conn) SetPMTUDiscovery(mode ipv4.PMTUDisc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return
	}
	c.s.setMode(c.tcb.ID, mode, mode != c.s.opts.PMTUDiscovery)
}
