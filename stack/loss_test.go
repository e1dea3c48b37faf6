package stack

import (
	"net/netip"
	"testing"
	"time"

	"ustack/stack/clock"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// lossyBulk runs a download for d of virtual time over a path with loss
// each way (25 µs each way, 10 Gbit/s), the sender on cc, and returns the
// bytes delivered in order and the sender's counters. Every byte read is
// checked against what was written.
func lossyBulk(t *testing.T, cc string, loss float64, d time.Duration) (int64, tcp.Stats) {
	t.Helper()
	v := clock.NewVirtual()
	ea, eb := link.Pipe(1500)
	sp := link.Spec{Loss: loss, Delay: 25 * time.Microsecond, Rate: 10_000_000_000}
	ia := link.Impair(ea, link.ImpairConfig{Out: sp, Seed: 3, Clock: v})
	ib := link.Impair(eb, link.ImpairConfig{Out: sp, Seed: 7, Clock: v})
	cfg := tcp.Config{CC: cc}
	a, err := New(ia, Options{Addr: addrA, Clock: v, Manual: true, TCP: cfg})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ib, Options{Addr: addrB, Clock: v, Manual: true, TCP: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	ln, _ := b.ListenTCP(19)
	c, err := a.DialTCPAsync(netip.AddrPortFrom(addrB, 19), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sc *Conn
	pattern := make([]byte, 251*256)
	for i := range pattern {
		pattern[i] = byte(i % 251)
	}
	buf := make([]byte, 64<<10)
	var sent, got int64
	end := v.Now().Add(d)
	for v.Now().Before(end) {
		for {
			n0, _ := a.Poll()
			n1, _ := b.Poll()
			if n0+n1 == 0 {
				break
			}
		}
		progress := false
		if sc == nil {
			sc = ln.TryAccept()
		}
		if sc != nil {
			off := int(sent % int64(len(pattern)))
			if n, _ := sc.TryWrite(pattern[off:]); n > 0 {
				sent += int64(n)
				progress = true
			}
		}
		for {
			n, _ := c.TryRead(buf)
			if n <= 0 {
				break
			}
			for i := range n {
				if buf[i] != byte((got+int64(i))%251) {
					t.Fatalf("%s: byte %d corrupt", cc, got+int64(i))
				}
			}
			got += int64(n)
			progress = true
		}
		if progress {
			continue
		}
		next, ok := v.Next()
		if !ok {
			t.Fatalf("%s: stuck", cc)
		}
		v.AdvanceTo(next)
	}
	if sc == nil {
		t.Fatalf("%s: no connection", cc)
	}
	return got, sc.Info().Stats
}

// At 5% loss each way on a fast path, BBR (model-based: random loss is not
// congestion) moves many times more than CUBIC, whose window collapses
// under a loss every few round trips, and it does so without a single
// retransmission timeout: SACK and RACK repair every loss. This is why
// the kernel here, whose default is BBR, holds its rate on such a link.
func TestBBRHoldsUnderRandomLoss(t *testing.T) {
	d := 100 * time.Millisecond
	bbr, bs := lossyBulk(t, "bbr", 0.05, d)
	cubic, cs := lossyBulk(t, "cubic", 0.05, d)
	t.Logf("5%% loss each way, %v virtual: bbr %d bytes (%d retransmits, %d timeouts), cubic %d bytes (%d retransmits, %d timeouts)",
		d, bbr, bs.Retransmits, bs.Timeouts, cubic, cs.Retransmits, cs.Timeouts)
	if bbr < 5*cubic {
		t.Errorf("bbr delivered %d bytes, cubic %d: want bbr at least 5 times cubic", bbr, cubic)
	}
	if bs.Timeouts != 0 {
		t.Errorf("bbr: %d retransmission timeouts, want none (every loss repaired by SACK/RACK)", bs.Timeouts)
	}
	if bs.Retransmits == 0 {
		t.Error("bbr: no retransmissions at 5% loss: the loss did not happen")
	}
}
