package sim

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"testing"
	"time"

	"ustack/internal/gvpeer"
	"ustack/stack"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// Goodput benchmark parameters: 10 ms one-way delay (20 ms RTT) and the
// loss applied to both directions of the link, MTU 1500 (MSS 1460).
const (
	benchDelay = 10 * time.Millisecond
	benchRTT   = 2 * benchDelay
	benchMSS   = 1460
	// benchWall bounds a real-time transfer; benchBytes bounds every one.
	benchWall  = 8 * time.Second
	benchBytes = 64 << 20
)

var benchLosses = []float64{0, 0.01, 0.05}

// mathis is the Mathis et al. bound on Reno goodput, in bytes per second:
// MSS/RTT × 1.22/√p.
func mathis(p float64) float64 {
	return benchMSS / benchRTT.Seconds() * 1.22 / math.Sqrt(p)
}

// BenchmarkGoodput measures one bulk transfer's goodput over Impair(Pipe)
// with a 20 ms RTT at 0%, 1% and 5% loss (each direction), for ustack to
// ustack (in virtual time: the figure is bytes over virtual seconds, and
// ns/op is the CPU cost of simulating it), gVisor to gVisor, ustack to
// gVisor and gVisor to ustack (in real time, gvpeer offers no virtual
// clock; each transfer is bounded by benchWall and benchBytes). It reports
// MB/s (10^6 bytes per second of the receiver reading data) and, at 1%
// loss, the ratio to the Mathis bound (0.89 MB/s here). Both stacks use
// SACK, CUBIC and 1 MiB buffers (gVisor advertises about half of its
// receive buffer).
func BenchmarkGoodput(b *testing.B) {
	for _, loss := range benchLosses {
		name := fmt.Sprintf("loss=%g%%", loss*100)
		b.Run("ustack-ustack/"+name, func(b *testing.B) { benchVirtual(b, loss) })
		for _, pair := range []string{"gvisor-gvisor", "ustack-gvisor", "gvisor-ustack"} {
			b.Run(pair+"/"+name, func(b *testing.B) { benchReal(b, pair, loss) })
		}
	}
}

func reportGoodput(b *testing.B, loss float64, bytes int64, secs float64) {
	if secs <= 0 {
		return
	}
	mbps := float64(bytes) / secs / 1e6
	b.ReportMetric(mbps, "MB/s")
	if loss == 0.01 {
		b.ReportMetric(mbps*1e6/mathis(loss), "mathis-ratio")
	}
}

// benchVirtual transfers, per iteration, a size for the loss rate from A to
// B through the simulator, and reports bytes over virtual time.
func benchVirtual(b *testing.B, loss float64) {
	size := 32 << 20
	if loss > 0 {
		size = 8 << 20
	}
	p := Profile{Name: "bench", Spec: link.Spec{Loss: loss, Delay: benchDelay}, MaxSize: size}
	cfg := tcp.Config{MSL: MSL, FinWait2Timeout: time.Minute}
	var bytes int64
	var virt time.Duration
	for i := 0; i < b.N; i++ {
		res := RunScript(Script{
			Seed: uint64(i + 1), Profile: p, MTU: 1500, TCP: [2]tcp.Config{cfg, cfg},
			Conns: []ConnScript{{Client: 0, Size: [2]int{size, 0}, Close: [2]CloseMode{HalfClose, CloseOnEOF}}},
		})
		if res.Err != nil {
			b.Fatalf("seed %d: %v", i+1, res.Err)
		}
		bytes += int64(size)
		virt += res.DataDone[0]
	}
	reportGoodput(b, loss, bytes, virt.Seconds())
}

// benchReal transfers, per iteration, up to benchBytes (or benchWall) from
// the first named stack to the second, in real time.
func benchReal(b *testing.B, pair string, loss float64) {
	var bytes int64
	var took time.Duration
	for i := 0; i < b.N; i++ {
		n, d, err := realTransfer(pair, loss, int64(i+1))
		if err != nil {
			b.Fatal(err)
		}
		bytes += n
		took += d
	}
	reportGoodput(b, loss, bytes, took.Seconds())
}

// benchHost is one end of a real-time benchmark link.
type benchHost struct {
	dial   func(ctx context.Context, to netip.AddrPort) (net.Conn, error)
	listen func(port uint16) (func() (net.Conn, error), func() error, error)
	close  func()
}

func newBenchHost(kind string, ep link.Endpoint, addr netip.Addr) (*benchHost, error) {
	if kind == "ustack" {
		s, err := stack.New(ep, stack.Options{Addr: addr, TCP: tcp.Config{MSL: time.Second}})
		if err != nil {
			return nil, err
		}
		return &benchHost{
			dial: func(ctx context.Context, to netip.AddrPort) (net.Conn, error) { return s.DialTCP(ctx, to) },
			listen: func(port uint16) (func() (net.Conn, error), func() error, error) {
				l, err := s.ListenTCP(port)
				if err != nil {
					return nil, nil, err
				}
				return l.Accept, l.Close, nil
			},
			close: func() { s.Close() },
		}, nil
	}
	h, err := gvpeer.New(ep, addr, gvpeer.Options{SACK: true, CongestionControl: "cubic", SendBuf: 1 << 20, RecvBuf: 1 << 20, TimeWait: time.Second})
	if err != nil {
		return nil, err
	}
	return &benchHost{
		dial: func(ctx context.Context, to netip.AddrPort) (net.Conn, error) { return h.Dial(ctx, to) },
		listen: func(port uint16) (func() (net.Conn, error), func() error, error) {
			l, err := h.Listen(port)
			if err != nil {
				return nil, nil, err
			}
			return l.Accept, l.Close, nil
		},
		close: func() { h.Close() },
	}, nil
}

// realTransfer sends from the first stack of pair ("ustack-gvisor": ustack
// sends to gVisor) to the second for benchWall or benchBytes, whichever
// comes first, and returns the bytes the receiver read and the time from
// the first write to the last byte read.
func realTransfer(pair string, loss float64, seed int64) (int64, time.Duration, error) {
	var kinds [2]string
	fmt.Sscanf(pair, "%6s-%6s", &kinds[0], &kinds[1])
	spec := link.Spec{Loss: loss, Delay: benchDelay}
	pa, pb := link.Pipe(1500)
	ea := link.Impair(pa, link.ImpairConfig{Out: spec, Seed: seed * 2})
	eb := link.Impair(pb, link.ImpairConfig{Out: spec, Seed: seed*2 + 1})
	snd, err := newBenchHost(kinds[0], ea, addrs[0])
	if err != nil {
		return 0, 0, err
	}
	defer snd.close()
	rcv, err := newBenchHost(kinds[1], eb, addrs[1])
	if err != nil {
		return 0, 0, err
	}
	defer rcv.close()
	accept, stop, err := rcv.listen(basePort)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	type result struct {
		n    int64
		last time.Time
		err  error
	}
	got := make(chan result, 1)
	go func() {
		c, err := accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(benchWall + 30*time.Second))
		buf := make([]byte, 256<<10)
		var r result
		for {
			k, err := c.Read(buf)
			if k > 0 {
				r.n += int64(k)
				r.last = time.Now()
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				r.err = err
				break
			}
		}
		got <- r
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := snd.dial(ctx, netip.AddrPortFrom(addrs[1], basePort))
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	start := time.Now()
	c.SetWriteDeadline(start.Add(benchWall))
	var sent int64
	for sent < benchBytes {
		k, err := c.Write(buf)
		sent += int64(k)
		if err != nil {
			break // the deadline: stop offering data
		}
	}
	// Unacknowledged data in the send buffer still drains; EOF follows it.
	c.(interface{ CloseWrite() error }).CloseWrite()
	r := <-got
	if r.err != nil {
		return 0, 0, fmt.Errorf("%s receiver after %d bytes: %v", pair, r.n, r.err)
	}
	return r.n, r.last.Sub(start), nil
}
