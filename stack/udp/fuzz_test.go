package udp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"ustack/stack/header"
)

var (
	us6   = netip.MustParseAddr("2001:2::2")
	peer6 = netip.MustParseAddr("2001:2::1")
	other = netip.MustParseAddr("198.18.0.9")
	oth6  = netip.MustParseAddr("2001:2::9")
)

// Flags of one record of FuzzUDPInput's input.
const (
	fuzzV6     = 1 << iota // from peer6 to us6, else IPv4
	fuzzCsumOK             // the link vouches for the checksum
	fuzzFix                // the harness writes a valid length and checksum first
	fuzzOther              // from the other peer, not the connected endpoints' one
)

// udpRecord is one record of FuzzUDPInput's input: a flag byte, a 2-byte
// length, the IP payload.
func udpRecord(flags byte, d []byte) []byte {
	b := []byte{flags}
	b = binary.BigEndian.AppendUint16(b, uint16(len(d)))
	return append(b, d...)
}

// queued is what the harness expects an endpoint to hold.
type queued struct {
	from netip.AddrPort
	data []byte
}

// FuzzUDPInput: Table.Input on a sequence of datagrams of either family,
// with and without the link's checksum verdict, never panics, never
// modifies its input, and does exactly what a model of it says: a bad
// header, then (unless vouched for) a bad checksum, a zero one on IPv6
// included (RFC 8200 §8.1), then no endpoint, then a full queue; each
// outcome counted once under its own name. What it delivers is read back,
// in order, with its sender, from the endpoint Lookup names.
func FuzzUDPInput(f *testing.F) {
	from4, from6 := netip.AddrPortFrom(peer, 9999), netip.AddrPortFrom(peer6, 9999)
	f.Add(udpRecord(0, datagram(from4, netip.AddrPortFrom(us, 7), "hello")))
	f.Add(udpRecord(fuzzV6, datagram(from6, netip.AddrPortFrom(us6, 53), "over six")))
	f.Add(udpRecord(fuzzCsumOK, []byte{0, 1, 0, 9, 0, 9, 0xde, 0xad, 'x'}))
	f.Add(udpRecord(fuzzV6|fuzzCsumOK, []byte{0, 1, 0, 7, 0, 8, 0, 0}))
	f.Add(udpRecord(fuzzV6, []byte{0, 1, 0, 7, 0, 8, 0, 0}))
	f.Add(append(udpRecord(fuzzFix, bytes.Repeat([]byte{0, 7, 0, 7}, 20)),
		udpRecord(fuzzFix|fuzzV6, bytes.Repeat([]byte{0, 7, 0, 7}, 30))...))
	full := udpRecord(fuzzFix, bytes.Repeat([]byte{0, 7, 0, 7}, 27)) // 100 bytes: the queue at its limit
	f.Add(append(append(full, udpRecord(fuzzFix|fuzzV6, []byte{0, 1, 0, 7, 0, 0, 0, 0, 3})...), full...))
	f.Add(append(udpRecord(fuzzFix|fuzzOther, []byte{0x27, 0x0f, 0, 9, 0, 0, 0, 0, 1}),
		udpRecord(fuzzFix|fuzzV6, []byte{0x27, 0x0f, 0, 9, 0, 0, 0, 0, 2})...))
	f.Add([]byte{fuzzV6, 0, 3, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		tb := NewTable([32]byte{})
		want := map[*Endpoint][]queued{}
		limits := map[*Endpoint]int{}
		add := func(local, remote netip.AddrPort, limit int) {
			e := NewEndpoint(local, remote)
			if err := tb.Bind(e); err != nil {
				t.Fatal(err)
			}
			e.SetReceiveLimit(limit)
			want[e], limits[e] = nil, limit
		}
		add(netip.AddrPortFrom(netip.Addr{}, 7), netip.AddrPort{}, Overhead+100) // small: fills
		add(netip.AddrPortFrom(us, 53), netip.AddrPort{}, DefaultRcvBuf)
		add(netip.AddrPortFrom(us6, 53), netip.AddrPort{}, DefaultRcvBuf)
		add(netip.AddrPortFrom(us, 9), from4, DefaultRcvBuf)
		add(netip.AddrPortFrom(us6, 9), from6, DefaultRcvBuf)

		for len(data) >= 3 {
			flags := data[0]
			n := min(int(binary.BigEndian.Uint16(data[1:])), len(data)-3)
			b := data[3 : 3+n]
			data = data[3+n:]
			src, dst := peer, us
			if flags&fuzzOther != 0 {
				src = other
			}
			if flags&fuzzV6 != 0 {
				src, dst = peer6, us6
				if flags&fuzzOther != 0 {
					src = oth6
				}
			}
			if flags&fuzzFix != 0 && len(b) >= header.UDPHeaderLen {
				header.PutUDP(b, binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:]), len(b)-header.UDPHeaderLen, src, dst)
			}
			csumOK := flags&fuzzCsumOK != 0

			// The model.
			wantV, why := Delivered, Reason(numReasons)
			var to *Endpoint
			u, err := header.ParseUDP(b)
			switch {
			case err != nil:
				wantV, why = Dropped, BadHeader
			case !csumOK && !header.UDPChecksumOK(u, src, dst):
				wantV, why = Dropped, BadChecksum
			default:
				to = tb.Lookup(netip.AddrPortFrom(dst, u.DstPort()), netip.AddrPortFrom(src, u.SrcPort()))
				if to == nil {
					wantV, why = Unreachable, NoPort
				} else if qn, qb := to.Queued(); qb+qn*Overhead > limits[to] {
					wantV, why = Dropped, QueueFull
				}
			}
			if err == nil && src.Is6() && !csumOK && u.Checksum() == 0 && why != BadChecksum {
				t.Fatal("a zero IPv6 checksum passed UDPChecksumOK") // RFC 8200 §8.1
			}

			before := counters(tb)
			in := bytes.Clone(b)
			got := tb.Input(src, dst, b, csumOK)
			if !bytes.Equal(b, in) {
				t.Fatal("Input modified its input")
			}
			if got != wantV {
				t.Fatalf("Input(%v→%v, %x, csumOK=%v) = %v, want %v (%v)", src, dst, in, csumOK, got, wantV, why)
			}
			after := counters(tb)
			name := "in_datagrams"
			if why < numReasons {
				name = "drop_" + why.String()
			}
			for k, v := range after {
				d := v - before[k]
				if (k == name && d != 1) || (k != name && d != 0) {
					t.Fatalf("%v (%v): counter %s moved by %d", got, why, k, d)
				}
			}
			if got == Delivered {
				want[to] = append(want[to], queued{netip.AddrPortFrom(src, u.SrcPort()), bytes.Clone(u.Payload())})
			}
		}

		// Every endpoint holds exactly what the model delivered to it.
		buf := make([]byte, 1<<16)
		for e, q := range want {
			for i, w := range q {
				n, from, err := e.Read(buf, false, nil)
				if err != nil || from != w.from || !bytes.Equal(buf[:n], w.data) {
					t.Fatalf("endpoint %v datagram %d: %q from %v (%v), want %q from %v", e.Local, i, buf[:n], from, err, w.data, w.from)
				}
			}
			if _, _, err := e.Read(buf, false, nil); !errors.Is(err, ErrWouldBlock) {
				t.Fatalf("endpoint %v: more than the model delivered: %v", e.Local, err)
			}
		}
	})
}

func counters(tb *Table) map[string]uint64 { return counterMap(tb.Stats) }
