package tun

import (
	"testing"

	"ustack/stack/counter"
)

func TestDeviceCountersAreNamed(t *testing.T) {
	if err := counter.Validate(numEvents); err != nil {
		t.Error(err)
	}
	if err := counter.Validate(numDropReasons); err != nil {
		t.Error(err)
	}
	d := &Device{}
	d.Queue = &Queue{d: d, cnt: newCounters()}
	d.queues = []*Queue{d.Queue}
	d.cnt.Drop(dropShortBuffer)
	m := counter.Snapshot(d)
	if len(m) != int(numEvents)+int(numDropReasons) || m["rx_drop_short_buffer"] != 1 || d.Stats().RxDropped != 1 {
		t.Fatalf("Each %v, Stats %+v", m, d.Stats())
	}
	// With two queues, Each and Stats sum them; QueueStats tells them apart.
	q1 := &Queue{d: d, idx: 1, cnt: newCounters()}
	d.queues = append(d.queues, q1)
	q1.cnt.Add(evRxPackets, 5)
	d.cnt.Add(evRxPackets, 2)
	m = counter.Snapshot(d)
	if m["rx_packets"] != 7 || m["rx_drop_short_buffer"] != 1 || d.Stats().RxPackets != 7 {
		t.Fatalf("two queues: Each %v, Stats %+v", m, d.Stats())
	}
	if qs := d.QueueStats(); len(qs) != 2 || qs[0].RxPackets != 2 || qs[1].RxPackets != 5 {
		t.Fatalf("QueueStats %+v", qs)
	}
}
