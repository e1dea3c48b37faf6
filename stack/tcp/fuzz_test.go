package tcp

import (
	"encoding/binary"
	"testing"
	"time"

	"ustack/stack/header"
	"ustack/stack/seqnum"
)

// FuzzEstablishedSegments feeds arbitrary segments to an established
// connection (with data in flight both ways) and checks that nothing panics,
// every transition is legal and the sequence invariants hold:
// SND.UNA =< SND.NXT =< SND.MAX and the receive buffer within its bound.
func FuzzEstablishedSegments(f *testing.F) {
	// Each segment is 12 bytes: flags, seq offset (int16 around RCV.NXT),
	// ack offset (int16 around SND.UNA), window, payload length, time step.
	f.Add([]byte{ACK, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 0})
	f.Add([]byte{RST, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{SYN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{FIN | ACK, 0, 0, 0, 4, 0xff, 0xff, 0, 0, 0, 1, 0, ACK, 0, 1, 0, 4, 0, 0, 0, 0, 0, 0, 5})
	f.Add([]byte{ACK, 0, 100, 0, 0, 0, 0, 200, 0, 0, 0, 0, ACK, 0, 0, 0, 0, 0, 10, 50, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newScript(t, Config{RcvBuf: 8192, MSS: 1000, KeepAlive: true, KeepIdle: time.Second})
		s.passiveOpen()
		s.write(bytesN(3000))
		payload := bytesN(2000)
		for len(data) >= 12 {
			d := data[:12]
			data = data[12:]
			g := Segment{
				Flags: d[0],
				Seq:   s.c.rcv.nxt.Add(seqnum.Size(int32(int16(binary.BigEndian.Uint16(d[1:]))))),
				Ack:   s.c.snd.una.Add(seqnum.Size(int32(int16(binary.BigEndian.Uint16(d[3:]))))),
				Wnd:   binary.BigEndian.Uint16(d[5:]),
				Opts:  header.TCPOptions{},
			}
			g.Payload = payload[:int(binary.BigEndian.Uint16(d[7:]))%len(payload)]
			s.in(g)
			s.advance(time.Duration(d[9]) * 50 * time.Millisecond)
			if d[10]&1 != 0 {
				s.read()
			}
			if d[11]&1 != 0 && s.c.State() == Established {
				s.c.Close(s.now)
			}
			c := s.c
			if c.state != Closed && c.state != Listen {
				if c.snd.nxt.LessThan(c.snd.una) || c.snd.max.LessThan(c.snd.nxt) {
					t.Fatalf("sequence invariant broken: una %d nxt %d max %d", c.snd.una, c.snd.nxt, c.snd.max)
				}
			}
			if c.rcv.buf.Len() > 8192 {
				t.Fatalf("receive buffer %d beyond its 8192 bound", c.rcv.buf.Len())
			}
			s.sent = s.sent[:0]
		}
		s.advance(time.Hour)
	})
}
