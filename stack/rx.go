package stack

import (
	"errors"
	"net"

	"ustack/stack/link"
	"ustack/stack/tcp"
)

// The receive loop: one reader goroutine per lane (or Poll in Manual mode)
// reads batches from the lane's link queue and hands each packet to input
// (stack.go).

// readLoop is a lane's receive path (docs/design.md "The hot path"): read
// a batch, validate and demux each packet, process it under its
// connection's lock, then let every touched connection send one ACK for
// the batch and write everything out at once, on this lane.
func (s *Stack) readLoop(ln *lane) {
	defer s.readers.Done()
	var b rxBatch
	b.init(s, ln)
	for {
		var n int
		var err error
		if ln.off != nil {
			n, err = ln.off.ReadOffload(b.bufs, b.sizes, b.csumOK, link.Headroom)
		} else {
			n, err = ln.ep.ReadBatch(b.bufs, b.sizes, link.Headroom)
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

// rxBatch holds a reader's buffers and the connections a batch touched.
type rxBatch struct {
	ln      *lane
	pbs     []tcp.PacketBuf // what bufs are: a receive buffer may adopt one (Renew)
	bufs    [][]byte
	sizes   []int
	csumOK  []bool // per packet: the link vouches for the transport checksum
	touched []*Conn
	gen     uint64
}

func (b *rxBatch) init(s *Stack, ln *lane) {
	b.ln, b.gen = ln, uint64(ln.idx)
	n := max(ln.ep.BatchSize(), 1)
	if ln.off != nil {
		n = 1 // ReadOffload returns one packet (or super-packet) a call
	}
	b.pbs = make([]tcp.PacketBuf, n)
	b.bufs, b.sizes = make([][]byte, n), make([]int, n)
	for i := range b.pbs {
		b.pbs[i] = tcp.NewPacketBuf(link.Headroom + max(s.mtu, link.MaxPacket))
		b.bufs[i] = b.pbs[i].Bytes()
	}
	b.csumOK = make([]bool, len(b.bufs))
}

// process handles n packets just read, then lets every touched connection
// send one ACK for the batch and writes everything out at once.
func (b *rxBatch) process(s *Stack, n int) {
	ln := b.ln
	ln.rxBusy.Add(1)
	defer ln.rxBusy.Add(-1)
	ln.cnt.Add(laneRxPackets, uint64(n))
	ln.cnt.Inc(laneRxBatches)
	b.gen += link.MaxQueues // unique among the lanes: gen mod MaxQueues is the lane's index
	now := s.clk.Now()
	b.touched = b.touched[:0]
	for i := 0; i < n; i++ {
		ln.rxBuf = b.pbs[i]
		if c := s.input(ln, now, b.bufs[i][link.Headroom:link.Headroom+b.sizes[i]], b.csumOK[i]); c != nil && c.batchGen.Load() != b.gen {
			c.batchGen.Store(b.gen)
			b.touched = append(b.touched, c)
		}
	}
	ln.rxBuf = tcp.PacketBuf{}
	for i, c := range b.touched {
		c.mu.Lock()
		c.lnIdx = uint8(ln.idx) // another lane's reader may have taken it meanwhile: this batch's output is ours to flush
		c.tcb.Flush(now)
		c.afterLocked()
		c.sent = false // flushed below
		c.mu.Unlock()
		b.touched[i] = nil
	}
	ln.flush()
	for i := 0; i < n; i++ {
		if b.pbs[i].Renew() {
			// A receive buffer kept the packet's payload where it was
			// read (no copy): the next read goes to a new buffer.
			b.bufs[i] = b.pbs[i].Bytes()
			ln.cnt.Inc(laneRxAdopted)
		}
	}
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
		s.pollBatch.init(s, s.lanes[0])
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
