package ipv4

import (
	"bytes"
	"testing"

	"ustack/stack/header"
)

// FuzzInput: Input never panics, and what it returns is consistent (see
// checkInvariants); the counters always add up.
func FuzzInput(f *testing.F) {
	f.Add(tcpPacket())
	f.Add(echoPacket())
	f.Add(icmpPacket(header.ICMPEchoReply, nil))
	f.Add(icmpPacket(header.ICMPEcho, nil))
	f.Add(ipPacket(header.ProtoUDP, []byte("udp")))
	f.Add([]byte{})
	f.Add([]byte("\x45garbage that is long enough to be a header"))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		l := newLayer()
		b := bytes.Clone(pkt)
		v, h := l.Input(t0, b)
		checkInvariants(t, l, b, v, h)
		if v == Drop && !bytes.Equal(b, pkt) {
			t.Fatal("a dropped packet was modified")
		}
		if (v == DeliverTCP || v == DeliverUDP) && !bytes.Equal(b, pkt) {
			t.Fatal("a delivered packet was modified")
		}
		if got, want := l.Stats.Load(Received), accounted(l); got != 1 || want != 1 {
			t.Fatalf("received %d, delivered+replied+dropped %d", got, want)
		}
	})
}
