package cc

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const mss = 1460

// t0 is the virtual start of every test; nothing here reads the real clock.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// round delivers one RTT of ACKs for a full window: Cwnd()/mss ACKs of one
// MSS each, spread evenly over rtt starting at now, each carrying rtt as its
// sample. It returns now+rtt, the start of the next round.
func round(c Controller, now time.Time, rtt time.Duration) time.Time {
	n := max(c.Cwnd()/mss, 1)
	for i := range n {
		c.OnAck(now.Add(rtt*time.Duration(i)/time.Duration(n)), mss, rtt)
	}
	return now.Add(rtt)
}

// growTo slow-starts c one MSS-sized ACK at a time until cwnd reaches segs
// segments exactly (each ACK adds one MSS in slow start).
func growTo(t *testing.T, c Controller, segs int) {
	t.Helper()
	for c.Cwnd() < segs*mss {
		c.OnAck(t0, mss, 0)
	}
	if c.Cwnd() != segs*mss {
		t.Fatalf("growTo(%d): cwnd = %d, want %d", segs, c.Cwnd(), segs*mss)
	}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{name: "", want: "cubic"},
		{name: "cubic", want: "cubic"},
		{name: "reno", want: "newreno"},
		{name: "newreno", want: "newreno"},
	} {
		f, err := Lookup(tc.name)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", tc.name, err)
		}
		if got := f(mss).Name(); got != tc.want {
			t.Errorf("Lookup(%q) builds %q, want %q", tc.name, got, tc.want)
		}
		if got := New(tc.name, mss).Name(); got != tc.want {
			t.Errorf("New(%q).Name() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestLookupUnknownListsValidNames(t *testing.T) {
	f, err := Lookup("vegas")
	if f != nil || !errors.Is(err, ErrUnknown) {
		t.Fatalf("Lookup(vegas) = (func set: %t), %v; want nil, ErrUnknown", f != nil, err)
	}
	for _, s := range []string{`"vegas"`, "cubic", "newreno", "reno"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
}

func TestValid(t *testing.T) {
	for _, name := range append(Known(), "") {
		if err := Valid(name); err != nil {
			t.Errorf("Valid(%q) = %v", name, err)
		}
	}
	err := Valid("cubc")
	if want := `unknown congestion control "cubc" (known: bbr, cubic, newreno, reno)`; err == nil || err.Error() != want || !errors.Is(err, ErrUnknown) {
		t.Fatalf("Valid(cubc) = %v, want %s (wrapping ErrUnknown)", err, want)
	}
}

// TestNewUnknownFallsBackToReno documents New's fallback for names Lookup
// rejects.
func TestNewUnknownFallsBackToReno(t *testing.T) {
	if got := New("vegas", mss).Name(); got != "newreno" {
		t.Errorf("New(vegas).Name() = %q, want newreno", got)
	}
}

// TestOnAckDoesNotAllocate: OnAck is on the per-ACK hot path (docs/design.md
// "The hot path": steady-state processing does not allocate).
func TestOnAckDoesNotAllocate(t *testing.T) {
	for _, name := range []string{"cubic", "newreno"} {
		for _, phase := range []string{"slow start", "congestion avoidance"} {
			c := New(name, mss)
			if phase == "congestion avoidance" {
				growTo(t, c, 100)
				c.OnLoss(t0, c.Cwnd())
			}
			now := t0
			allocs := testing.AllocsPerRun(1000, func() {
				now = now.Add(time.Millisecond)
				c.OnAck(now, mss, 20*time.Millisecond)
			})
			if allocs != 0 {
				t.Errorf("%s in %s: OnAck allocates %v times per call", name, phase, allocs)
			}
		}
	}
}
