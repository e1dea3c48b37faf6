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
	d := &Device{cnt: newCounters()}
	d.cnt.Drop(dropShortBuffer)
	m := counter.Snapshot(d)
	if len(m) != int(numEvents)+int(numDropReasons) || m["rx_drop_short_buffer"] != 1 || d.Stats().RxDropped != 1 {
		t.Fatalf("Each %v, Stats %+v", m, d.Stats())
	}
}
