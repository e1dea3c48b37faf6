package stack

import (
	"errors"
	"net"

	"ustack/stack/link"
)

// The receive loop: one reader goroutine (or Poll in Manual mode) reads
// batches from the link and hands each packet to input (stack.go).

// readLoop is the one receive path (docs/design.md "The hot path"): read a batch,
// validate and demux each packet, process it under its connection's lock,
// then let every touched connection send one ACK for the batch and write
// everything out at once.
func (s *Stack) readLoop() {
	defer close(s.done)
	var b rxBatch
	b.init(s)
	for {
		var n int
		var err error
		if s.off != nil {
			n, err = s.off.ReadOffload(b.bufs, b.sizes, b.csumOK, link.Headroom)
		} else {
			n, err = s.ep.ReadBatch(b.bufs, b.sizes, link.Headroom)
		}
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.cnt.Inc(evLinkReadErr)
			continue
		}
		b.process(s, n)
	}
}

// rxBatch holds the reader's buffers and the connections a batch touched.
type rxBatch struct {
	bufs    [][]byte
	sizes   []int
	csumOK  []bool // per packet: the link vouches for the transport checksum
	touched []*Conn
	gen     uint64
}

func (b *rxBatch) init(s *Stack) {
	b.bufs, b.sizes = link.ReadBuffers(max(s.ep.BatchSize(), 1), max(s.mtu, link.MaxPacket))
	b.csumOK = make([]bool, len(b.bufs))
}

// process handles n packets just read, then lets every touched connection
// send one ACK for the batch and writes everything out at once.
func (b *rxBatch) process(s *Stack, n int) {
	s.rxBusy.Add(1)
	defer s.rxBusy.Add(-1)
	b.gen++
	now := s.clk.Now()
	b.touched = b.touched[:0]
	for i := 0; i < n; i++ {
		if c := s.input(now, b.bufs[i][link.Headroom:link.Headroom+b.sizes[i]], b.csumOK[i]); c != nil && c.batchGen != b.gen {
			c.batchGen = b.gen
			b.touched = append(b.touched, c)
		}
	}
	for i, c := range b.touched {
		c.mu.Lock()
		c.tcb.Flush(now)
		c.afterLocked()
		c.mu.Unlock()
		b.touched[i] = nil
	}
	s.flush()
}

// Poll processes every packet waiting on the link, without blocking, and
// returns how many there were. Only for a stack made with Options.Manual.
func (s *Stack) Poll() (int, error) {
	if !s.opts.Manual {
		return 0, errors.New("stack: Poll on a stack that runs its own reader (Options.Manual is off)")
	}
	p := s.ep.(link.Poller)
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	if s.pollBatch.bufs == nil {
		s.pollBatch.init(s)
	}
	total := 0
	for {
		n, err := p.TryReadBatch(s.pollBatch.bufs, s.pollBatch.sizes, link.Headroom)
		if err != nil || n == 0 {
			return total, err
		}
		clear(s.pollBatch.csumOK[:n])
		s.pollBatch.process(s, n)
		total += n
	}
}
