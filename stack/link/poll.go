package link

import "errors"

// Poller is an Endpoint that can be read without blocking: the
// deterministic simulator drives a stack by polling instead of running a
// reader goroutine.
type Poller interface {
	// TryReadBatch is ReadBatch that returns 0, nil at once when no packet
	// is waiting.
	TryReadBatch(bufs [][]byte, sizes []int, offset int) (int, error)
}

// ErrNotPoller is returned when a polled stack's link cannot be polled.
var ErrNotPoller = errors.New("link: endpoint cannot be read without blocking (not a link.Poller)")

// TryReadBatch implements Poller.
func (p *PipeEnd) TryReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	q := p.in
	q.mu.Lock()
	empty := len(q.pkts) == 0 && !q.closed
	q.mu.Unlock()
	if empty {
		return 0, nil
	}
	return p.ReadBatch(bufs, sizes, offset)
}

// TryReadBatch implements Poller when the In direction is not impaired and
// the wrapped endpoint is a Poller.
func (i *Impaired) TryReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	p, ok := i.ep.(Poller)
	if !i.in.passthrough || !ok {
		return 0, ErrNotPoller
	}
	n, err := p.TryReadBatch(bufs, sizes, offset)
	i.in.cnt.Add(evOffered, uint64(n))
	i.in.cnt.Add(evPassed, uint64(n))
	return n, err
}
