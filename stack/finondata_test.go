package stack

import (
	"bytes"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"ustack/stack/header"
	"ustack/stack/link"
)

// gate holds a link's next write until it is opened, so that a test can
// keep one goroutine writing the lane (lane.flush) while others queue.
// It records what passes, payloads joined to their headers.
type gate struct {
	mu      sync.Mutex
	held    chan struct{} // non-nil: the next write waits until it is closed
	entered chan struct{} // closed when that write has begun
	pkts    [][]byte
}

// hold makes the next write wait; the returned channel is closed once it
// waits.
func (g *gate) hold() (entered chan struct{}, open func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held, g.entered = make(chan struct{}), make(chan struct{})
	h := g.held
	return g.entered, func() { close(h) }
}

func (g *gate) pass(bufs [][]byte, offset int, payloads [][]byte) {
	g.mu.Lock()
	h, e := g.held, g.entered
	g.held = nil
	g.mu.Unlock()
	if h != nil {
		close(e)
		<-h
	}
	g.mu.Lock()
	for i, b := range bufs {
		p := append([]byte(nil), b[offset:]...)
		if i < len(payloads) {
			p = append(p, payloads[i]...)
		}
		g.pkts = append(g.pkts, p)
	}
	g.mu.Unlock()
}

// sent returns the TCP segments that passed, as headers and payloads.
func (g *gate) sent() (segs []header.TCP) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.pkts {
		ihl := ipv6HeaderLen
		if p[0]>>4 == 4 {
			ihl = int(p[0]&0x0f) * 4
		}
		if t, err := header.ParseTCP(p[ihl:]); err == nil {
			segs = append(segs, t)
		}
	}
	return segs
}

type gatedPipe struct {
	*link.PipeEnd
	gate
}

func (g *gatedPipe) WriteBatch(bufs [][]byte, offset int) (int, error) {
	g.pass(bufs, offset, nil)
	return g.PipeEnd.WriteBatch(bufs, offset)
}

type gatedOffload struct {
	*softOffload
	gate
}

func (g *gatedOffload) WriteOffload(bufs [][]byte, offset int, payloads [][]byte, segSize []int) (int, error) {
	g.pass(bufs, offset, payloads)
	return g.softOffload.WriteOffload(bufs, offset, payloads, segSize)
}

// A server's response and its FIN, queued while another connection's
// packet is being written, leave as one segment: the FIN rides on the
// data, as Linux's tcp_send_fin tacks it on an unsent skb, and the client
// reads the response, then EOF. Over IPv4 and IPv6, with the checksum
// whole (a plain link) or left to the link (checksum offload).
func TestFINRidesOnQueuedData(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offload bool
		a, b    netip.Addr
	}{
		{"ipv4", false, addrA, addrB},
		{"ipv4-offload", true, addrA, addrB},
		{"ipv6", false, addrA6, addrB6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ea, eb := link.Pipe(1500)
			var g *gate
			var ep link.Endpoint
			if tc.offload {
				o := &gatedOffload{softOffload: &softOffload{PipeEnd: ea}}
				g, ep = &o.gate, o
			} else {
				p := &gatedPipe{PipeEnd: ea}
				g, ep = &p.gate, p
			}
			srv, cli := pairOn(t, ep, eb, Options{}, Options{}, []netip.Addr{tc.a}, []netip.Addr{tc.b})
			if tc.offload && srv.off == nil {
				t.Fatal("the server stack took no offloads from the link")
			}
			l, err := srv.ListenTCP(80)
			if err != nil {
				t.Fatal(err)
			}
			dial := func() (*Conn, *Conn) {
				c, err := cli.DialTCP(ctxT(t, 5*time.Second), netip.AddrPortFrom(tc.a, 80))
				if err != nil {
					t.Fatal(err)
				}
				s, err := l.Accept()
				if err != nil {
					t.Fatal(err)
				}
				return c, s.(*Conn)
			}
			c1, s1 := dial()
			c2, s2 := dial()
			if err := srv.WaitIdle(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			entered, open := g.hold()
			go s2.Write([]byte("other"))
			<-entered // s2's flush writes the lane and waits in the link
			resp := []byte("HTTP/1.1 200 OK\r\n\r\nhello")
			if _, err := s1.Write(resp); err != nil {
				t.Fatal(err)
			}
			if err := s1.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if n := srv.Stats().TCPFINsOnData; n != 1 {
				t.Errorf("FINs on data: %d, want 1", n)
			}
			open()
			got, err := io.ReadAll(c1)
			if err != nil || !bytes.Equal(got, resp) {
				t.Fatalf("client read %q, %v; want %q then EOF", got, err, resp)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "other" {
				t.Fatalf("other connection read %q, %v", buf, err)
			}
			var fins []header.TCP
			for _, seg := range g.sent() {
				if seg.Flags()&header.FlagFIN != 0 && seg.SrcPort() == 80 && seg.DstPort() == c1.ID().Local.Port() {
					fins = append(fins, seg)
				}
			}
			if len(fins) != 1 || !bytes.Equal(fins[0].Payload(), resp) {
				t.Fatalf("FIN segments of the response's connection: %d (%v), want 1 carrying the response", len(fins), fins)
			}
		})
	}
}
