package stack

import (
	"fmt"
	"sync"
	"sync/atomic"

	"ustack/stack/counter"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// A lane is one queue of the link and what the stack keeps for it: the
// reader goroutine that reads the queue, the packets waiting to be written
// to it, and a timer heap. A link with one queue (every link but a
// link.MultiQueue with several) gives the stack one lane, the whole stack
// as it was before lanes. With several, each reader runs its batches (IP,
// TCP, the connections' output) and flushes its own lane, in parallel
// with the others: nothing global is locked per packet but the demux
// table's read lock and the counters.
//
// Which lane a packet goes out on: the reader's, for everything its input
// made (a connection takes the lane its last segment came in on,
// Conn.ln); a connection's own lane for what the application's calls and
// its timers make; for the rest (UDP sent by the application, ICMP errors
// at reassembly timeouts) a lane by flow hash. Linux's TUN learns from
// what we write on which queue it is to send the flow's next packets
// (tun_flow_update in tun_get_user, tun_automq_select_queue), so a
// connection answered on the lane it came in on stays there.
type lane struct {
	s   *Stack
	idx int
	ep  link.Endpoint
	off link.Offloader // ep's offloads, when the stack uses them (Stack.off)

	txMu    sync.Mutex // guards tx and writing; the last lock of the order (see Stack)
	tx      txBatch    // packets to write
	writing bool       // a flush is writing: the only writer, it takes what is queued meanwhile
	txSpare txBatch    // the batch being written (by the one writer), reused

	tm     timerHeap
	rxBuf  tcp.PacketBuf // the packet being input, while its reader processes it (Segment.InPacketBuf)
	rxBusy atomic.Int32  // input batches being processed (see WaitIdle)
	cnt    *counter.Set[laneEvent]
}

// txBatch is the packets queued on a lane, in parallel slices as the link
// takes them.
type txBatch struct {
	pkts [][]byte     // packets, or their headers when a payload follows
	hs   []*[]byte    // their pool handles, returned after the write
	seg  []int        // per packet: its TSO segment size, 0 if complete (link.Offloader)
	pay  [][]byte     // per packet: the payload written after it without a copy, or nil
	pins []tcp.Pinned // what keeps each pay as it is until written
}

func (b *txBatch) reset() {
	clear(b.pkts)
	clear(b.hs)
	clear(b.pay)
	clear(b.pins)
	b.pkts, b.hs, b.seg, b.pay, b.pins = b.pkts[:0], b.hs[:0], b.seg[:0], b.pay[:0], b.pins[:0]
}

// laneEvent is what a lane counts.
type laneEvent uint8

const (
	laneRxPackets laneEvent = iota // packets read from the queue (super-packets count once)
	laneTxPackets                  // packets written to it (TSO units count once)
	laneRxBatches                  // reads that returned packets
	laneRxAdopted                  // packets whose payload a receive buffer kept where it was read
	numLaneEvents
)

var laneEventNames = [numLaneEvents]string{
	laneRxPackets: "rx_packets", laneTxPackets: "tx_packets", laneRxBatches: "rx_batches",
	laneRxAdopted: "rx_adopted",
}

func (e laneEvent) String() string { return counter.Name(laneEventNames[:], e, "event") }

// QueueStats are one lane's counters (Stats.Queues).
type QueueStats struct {
	RxPackets uint64 // packets read from the link queue (a super-packet counts once)
	TxPackets uint64 // packets written to it (a TSO unit counts once)
	RxBatches uint64 // reads that returned packets
	RxAdopted uint64 // packets whose payload a receive buffer kept, uncopied (tcp.PacketBuf)
}

// initLanes makes a lane per queue of ep: its queues if it is a
// link.MultiQueue with more than one (never in Manual mode, whose one
// Poll reads one endpoint), else ep alone.
func (s *Stack) initLanes(ep link.Endpoint) error {
	eps := []link.Endpoint{ep}
	if mq, ok := ep.(link.MultiQueue); ok {
		qs := mq.Queues()
		switch {
		case len(qs) > link.MaxQueues:
			return fmt.Errorf("stack: the link has %d queues; at most %d are supported", len(qs), link.MaxQueues)
		case len(qs) > 1 && s.opts.Manual:
			return fmt.Errorf("stack: the link has %d queues, but a Manual stack polls one endpoint: give it a link of one queue", len(qs))
		case len(qs) > 1:
			eps = qs
		}
	}
	s.lanes = make([]*lane, len(eps))
	for i, e := range eps {
		ln := &lane{s: s, idx: i, ep: e, cnt: counter.NewSet("", numLaneEvents)}
		if s.off != nil {
			o, ok := e.(link.Offloader)
			if !ok || o.OffloadMaxSize() != s.off.OffloadMaxSize() {
				return fmt.Errorf("stack: queue %d of the link lacks the offloads of the first", i)
			}
			ln.off = o
		}
		ln.tm.init(ln)
		s.lanes[i] = ln
	}
	return nil
}

// laneFor is the lane of a connection before any segment of it came in
// (an active open, or a passive one until its SYN is processed): one by
// the hash of its 4-tuple.
func (s *Stack) laneFor(id tcp.ID) *lane {
	if len(s.lanes) == 1 {
		return s.lanes[0]
	}
	a, b := id.Local.Addr().As16(), id.Remote.Addr().As16()
	h := uint32(2166136261)
	for i := range a {
		h = (h ^ uint32(a[i]^b[i])) * 16777619
	}
	h = (h ^ uint32(id.Local.Port()^id.Remote.Port())) * 16777619
	return s.lanes[h%uint32(len(s.lanes))]
}

// queue adds the first n bytes of the pooled buffer *bp to the lane's
// output; segSize is what link.Offloader.WriteOffload takes (0: a
// complete packet).
func (ln *lane) queue(bp *[]byte, n, segSize int) {
	ln.queuePayload(bp, n, segSize, nil, tcp.Pinned{})
}

// queuePayload is queue for a packet whose payload follows its headers
// from elsewhere, held by pin until written (only with ln.off).
func (ln *lane) queuePayload(bp *[]byte, n, segSize int, pay []byte, pin tcp.Pinned) {
	ln.txMu.Lock()
	b := &ln.tx
	b.pkts = append(b.pkts, (*bp)[:n])
	b.hs = append(b.hs, bp)
	b.seg = append(b.seg, segSize)
	b.pay = append(b.pay, pay)
	b.pins = append(b.pins, pin)
	ln.txMu.Unlock()
}

// queued is the number of packets waiting on the lane.
func (ln *lane) queued() int {
	ln.txMu.Lock()
	defer ln.txMu.Unlock()
	return len(ln.tx.pkts)
}

// flush writes every packet queued on the lane to its link queue, in
// batches, in the order they were queued.
//
// One goroutine writes at a time, and it writes what the others queue
// while it writes: a flush that finds another writing returns at once,
// as a socket's write(2) returns once its packet is on the device's
// queue. The writer looks at the queue again under txMu before it stops,
// so no packet is left behind. Waiting for the writer instead (as flush
// did before) held a server's response behind the other connections'
// packets and its FIN behind the response, tens of microseconds apart;
// a client that closes on the last byte of the response (wrk with
// Connection: close) then closed first and kept the TIME-WAIT.
func (ln *lane) flush() {
	ln.txMu.Lock()
	if len(ln.tx.pkts) == 0 || ln.writing {
		ln.txMu.Unlock()
		return
	}
	ln.writing = true
	ln.txMu.Unlock()
	for {
		ln.txMu.Lock()
		if len(ln.tx.pkts) == 0 {
			ln.writing = false
			ln.txMu.Unlock()
			return
		}
		ln.tx, ln.txSpare = ln.txSpare, ln.tx
		ln.txMu.Unlock()
		ln.write(&ln.txSpare)
	}
}

// write writes the batch b to the link queue and empties it; only the
// writing flush calls it.
func (ln *lane) write(b *txBatch) {
	s := ln.s
	defer b.reset()
	n := len(b.pkts)
	bs := max(ln.ep.BatchSize(), 1)
	for i := 0; i < n; i += bs {
		end := min(i+bs, n)
		var err error
		if ln.off != nil {
			_, err = ln.off.WriteOffload(b.pkts[i:end], link.Headroom, b.pay[i:end], b.seg[i:end])
		} else {
			_, err = ln.ep.WriteBatch(b.pkts[i:end], link.Headroom)
		}
		if err != nil {
			s.cnt.Inc(evLinkWriteErr)
		}
	}
	ln.cnt.Add(laneTxPackets, uint64(n))
	for i, bp := range b.hs {
		if cap(*bp) > link.Headroom+s.mtu {
			s.bigPool.Put(bp)
		} else {
			s.pool.Put(bp)
		}
		b.pins[i].Unpin()
	}
}

// stats returns the lane's counters.
func (ln *lane) stats() QueueStats {
	return QueueStats{
		RxPackets: ln.cnt.Load(laneRxPackets),
		TxPackets: ln.cnt.Load(laneTxPackets),
		RxBatches: ln.cnt.Load(laneRxBatches),
		RxAdopted: ln.cnt.Load(laneRxAdopted),
	}
}

// unlockAndFlush unlocks c and writes out what the calls into its TCB
// queued, if they queued anything: on its lane, read while c.mu is still
// held (a reader may move the connection to its own lane as soon as it is
// released). Every goroutine that queues flushes afterwards, so one that
// queued nothing has nothing to flush: a Read that sends no window update
// does not wait behind other connections' writes.
func (c *Conn) unlockAndFlush() {
	ln, sent := c.lane(), c.sent
	c.sent = false
	c.mu.Unlock()
	if sent {
		ln.flush()
	}
}

// laneSender is a connection as the tcp.Sender of its TCB: segments go out
// on the connection's lane. Every call into a TCB holds c.mu, which guards
// c.lnIdx.
type laneSender Conn

// Send implements tcp.Sender.
func (ls *laneSender) Send(tcb *tcp.Conn, seg *tcp.Segment) {
	c := (*Conn)(ls)
	c.sent = true
	c.s.sendSegment(c.lane(), tcb.ID, seg)
}
