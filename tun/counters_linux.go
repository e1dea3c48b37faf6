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

// Stats returns the device's counters.
func (d *Device) Stats() Stats {
	return Stats{
		RxPackets: d.cnt.Load(evRxPackets),
		RxSplits:  d.cnt.Load(evRxSplits),
		RxSuper:   d.cnt.Load(evRxSuper),
		RxDropped: d.cnt.Dropped(),
		TxPackets: d.cnt.Load(evTxPackets),
		TxErrors:  d.cnt.Load(evTxErrors),
		TxSuper:   d.cnt.Load(evTxSuper),
	}
}

// Each lists the device's counters by name: rx_packets, ..., and the read
// drops by reason, rx_drop_too_many_segments, ...
func (d *Device) Each(f func(name string, v uint64)) {
	d.cnt.Each(f)
}
