package link

import "ustack/stack/counter"

// DirStats is a snapshot of the counters of one direction (Impaired.Each
// lists the same counters by name).
type DirStats struct {
	Offered      uint64 // packets that entered the direction
	Passed       uint64 // packets handed on (written to the endpoint, or returned by ReadBatch); duplicates count
	DroppedLoss  uint64 // dropped by Loss
	DroppedQueue uint64 // dropped because Queue packets were held already
	DroppedRule  uint64 // dropped by the Rule
	Duplicated   uint64 // extra copies made by Dup
	Reordered    uint64 // packets released after a later packet overtook them
	Corrupted    uint64 // packets with a flipped bit
	Delayed      uint64 // packets (copies) held for a time > 0: delay, jitter, rate, or Rule
}

// ImpairStats are the counters of both directions.
type ImpairStats struct{ In, Out DirStats }

// Stats returns the counters of both directions.
func (i *Impaired) Stats() ImpairStats {
	return ImpairStats{In: dirSnapshot(i.in.cnt), Out: dirSnapshot(i.out.cnt)}
}

// impairEvent is what an Impaired direction counts besides drops.
type impairEvent uint8

const (
	evOffered    impairEvent = iota // packets that entered the direction
	evPassed                        // packets handed on; duplicates count
	evDuplicated                    // extra copies made by Dup
	evReordered                     // packets released after a later packet overtook them
	evCorrupted                     // packets with a flipped bit
	evDelayed                       // packets (copies) held for a time > 0
	numImpairEvents
)

var impairEventNames = [numImpairEvents]string{
	evOffered: "offered", evPassed: "passed", evDuplicated: "duplicated",
	evReordered: "reordered", evCorrupted: "corrupted", evDelayed: "delayed",
}

func (e impairEvent) String() string { return counter.Name(impairEventNames[:], e, "event") }

// impairDrop is why an Impaired direction dropped a packet.
type impairDrop uint8

const (
	dropLoss  impairDrop = iota // drawn by Loss
	dropQueue                   // Queue packets were held already
	dropRule                    // the Rule said Drop
	numImpairDrops
)

var impairDropNames = [numImpairDrops]string{dropLoss: "loss", dropQueue: "queue", dropRule: "rule"}

func (r impairDrop) String() string { return counter.Name(impairDropNames[:], r, "reason") }

// pipeDrop is why a PipeEnd dropped a packet it was asked to write.
type pipeDrop uint8

const (
	dropPeerFull pipeDrop = iota // the peer's queue is full
	dropTooBig                   // larger than the MTU
	numPipeDrops
)

var pipeDropNames = [numPipeDrops]string{dropPeerFull: "queue_full", dropTooBig: "too_big"}

func (r pipeDrop) String() string { return counter.Name(pipeDropNames[:], r, "reason") }

// dirCounters are the counters of one direction of an Impaired endpoint.
type dirCounters = counter.Layer[impairEvent, impairDrop]

func newDirCounters() dirCounters { return counter.NewLayer(numImpairEvents, "drop_", numImpairDrops) }

func dirSnapshot(c dirCounters) DirStats {
	return DirStats{
		Offered: c.Load(evOffered), Passed: c.Load(evPassed),
		DroppedLoss: c.Drops(dropLoss), DroppedQueue: c.Drops(dropQueue), DroppedRule: c.Drops(dropRule),
		Duplicated: c.Load(evDuplicated), Reordered: c.Load(evReordered),
		Corrupted: c.Load(evCorrupted), Delayed: c.Load(evDelayed),
	}
}

// Each lists the counters of both directions: "in.offered", ...,
// "in.drop_loss", ..., "out.offered", ...
func (i *Impaired) Each(f func(name string, v uint64)) {
	counter.Prefixed("in.", i.in.cnt).Each(f)
	counter.Prefixed("out.", i.out.cnt).Each(f)
}

// Each lists the packets this end dropped on write, by reason:
// "drop_queue_full" (the peer's queue was full) and "drop_too_big" (over
// the MTU).
func (p *PipeEnd) Each(f func(name string, v uint64)) { p.drops.Each(f) }

// Dropped is the number of packets this end dropped on write.
func (p *PipeEnd) Dropped() uint64 { return p.drops.Sum() }
