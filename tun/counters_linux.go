package tun

import "ustack/stack/counter"

// event is what a Device counts besides drops.
type event uint8

const (
	evRxPackets event = iota // packets handed to ReadBatch callers
	evRxSplits               // super-packets split into segments (TSO on read)
	evTxPackets              // packets handed to the kernel (before GRO coalescing)
	evTxErrors               // writes in which the kernel refused some packets
	evRxSuper                // super-packets handed over whole (ReadOffload)
	evTxSuper                // TSO packets written whole for the kernel to cut (WriteOffload)
	numEvents
)

var eventNames = [numEvents]string{
	evRxPackets: "rx_packets", evRxSplits: "rx_splits", evTxPackets: "tx_packets", evTxErrors: "tx_errors",
	evRxSuper: "rx_super", evTxSuper: "tx_super",
}

func (e event) String() string { return counter.Name(eventNames[:], e, "event") }

// dropReason is why a Device dropped a packet it read.
type dropReason uint8

const (
	dropTooManySegments dropReason = iota // a super-packet split into more segments than buffers
	dropMalformed                         // wireguard could not parse it: virtio header, GSO type, size
	dropShortBuffer                       // the caller's buffer was too small
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	dropTooManySegments: "too_many_segments", dropMalformed: "malformed", dropShortBuffer: "short_buffer",
}

func (r dropReason) String() string { return counter.Name(dropReasonNames[:], r, "reason") }

type counters = counter.Layer[event, dropReason]

func newCounters() counters { return counter.NewLayer(numEvents, "rx_drop_", numDropReasons) }

// Stats returns the queue's counters.
func (q *Queue) Stats() Stats {
	return Stats{
		RxPackets: q.cnt.Load(evRxPackets),
		RxSplits:  q.cnt.Load(evRxSplits),
		RxSuper:   q.cnt.Load(evRxSuper),
		RxDropped: q.cnt.Dropped(),
		TxPackets: q.cnt.Load(evTxPackets),
		TxErrors:  q.cnt.Load(evTxErrors),
		TxSuper:   q.cnt.Load(evTxSuper),
	}
}

// Stats returns the device's counters: the sums over its queues.
func (d *Device) Stats() Stats {
	var t Stats
	for _, q := range d.queues {
		s := q.Stats()
		t.RxPackets += s.RxPackets
		t.RxSplits += s.RxSplits
		t.RxSuper += s.RxSuper
		t.RxDropped += s.RxDropped
		t.TxPackets += s.TxPackets
		t.TxErrors += s.TxErrors
		t.TxSuper += s.TxSuper
	}
	return t
}

// QueueStats returns each queue's counters.
func (d *Device) QueueStats() []Stats {
	st := make([]Stats, len(d.queues))
	for i, q := range d.queues {
		st[i] = q.Stats()
	}
	return st
}

// Each lists the device's counters by name, summed over its queues:
// rx_packets, ..., and the read drops by reason, rx_drop_too_many_segments,
// ...
func (d *Device) Each(f func(name string, v uint64)) {
	if len(d.queues) == 1 {
		d.cnt.Each(f)
		return
	}
	sums := map[string]uint64{}
	for _, q := range d.queues[1:] {
		q.cnt.Each(func(name string, v uint64) { sums[name] += v })
	}
	d.cnt.Each(func(name string, v uint64) { f(name, v+sums[name]) })
}

// Each lists the queue's counters by name, as Device.Each does.
func (q *Queue) Each(f func(name string, v uint64)) { q.cnt.Each(f) }
