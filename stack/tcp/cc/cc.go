// Package cc holds TCP congestion control behind a small interface. The TCB
// owns loss detection and recovery (which segments to resend); a Controller
// only decides how much may be in flight.
package cc

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Controller is a congestion-control algorithm.
type Controller interface {
	// OnAck reports acked bytes newly acknowledged outside loss recovery,
	// with the latest RTT sample (0 if none).
	OnAck(now time.Time, acked int, rtt time.Duration)
	// OnLoss reports a loss detected by duplicate ACKs or SACK (entering fast
	// recovery) with the bytes in flight at that moment.
	OnLoss(now time.Time, flight int)
	// OnRTO reports a retransmission timeout.
	OnRTO(now time.Time, flight int)
	// Cwnd is the congestion window in bytes.
	Cwnd() int
	// Ssthresh is the slow-start threshold in bytes.
	Ssthresh() int
	Name() string
}

// AppLimitedObserver is implemented by a Controller that needs to know how
// much of its window the sender uses (RFC 9438 §5.8: an application-limited
// sender must not grow cwnd as if it were full, nor count idle time).
type AppLimitedObserver interface {
	// OnSend reports a transmission of data or FIN: the bytes in flight
	// (SND.MAX - SND.UNA) before and after it. before == 0 means the
	// connection was idle until now.
	OnSend(now time.Time, before, after int)
}

// InitialWindow is RFC 5681 §3.1's IW for an MSS (in bytes), raised to ten
// segments as RFC 6928 allows.
func InitialWindow(mss int) int { return 10 * mss }

// ErrUnknown is returned (wrapped) by Lookup and Valid for a name they do
// not know.
var ErrUnknown = errors.New("unknown congestion control")

// Known lists the names Lookup accepts (besides "", the default), sorted.
func Known() []string { return []string{"bbr", "cubic", "newreno", "reno"} }

// Lookup returns the constructor for the named algorithm: "cubic" (also
// the default, for ""; docs/design.md "Defaults"), or "newreno" (alias "reno").
// Any other name is an error wrapping ErrUnknown that lists the known names,
// so a configuration can be checked before the first connection.
func Lookup(name string) (func(mss int) Controller, error) {
	switch name {
	case "", "cubic":
		return newCubic, nil
	case "newreno", "reno":
		return newReno, nil
	case "bbr":
		return newBBR, nil
	}
	return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknown, name, strings.Join(Known(), ", "))
}

// Valid reports whether Lookup knows name: nil, or the error Lookup
// returns, e.g. `unknown congestion control "cubc" (known: bbr, cubic, newreno,
// reno)`.
func Valid(name string) error {
	_, err := Lookup(name)
	return err
}

func newCubic(mss int) Controller { return NewCubic(mss) }
func newReno(mss int) Controller  { return NewReno(mss) }
func newBBR(mss int) Controller   { return NewBBR(mss) }

// New returns the named algorithm for an MSS, as Lookup does. An unknown
// name falls back to NewReno, the conservative choice, rather than failing
// a connection at setup; callers that can report an error should validate
// the name with Lookup first.
func New(name string, mss int) Controller {
	f, err := Lookup(name)
	if err != nil {
		return NewReno(mss)
	}
	return f(mss)
}

// Reno is RFC 5681 slow start and congestion avoidance; the NewReno partial
// ACK handling of RFC 6582 lives in the TCB's recovery logic.
type Reno struct {
	mss, cwnd, ssthresh int
	caAcked             int // bytes acked in congestion avoidance since the last increase
}

// NewReno returns a Reno controller for the given MSS.
func NewReno(mss int) *Reno {
	return &Reno{mss: mss, cwnd: InitialWindow(mss), ssthresh: 1 << 30}
}

// Name implements Controller.
func (r *Reno) Name() string { return "newreno" }

// OnAck implements Controller (RFC 5681 §3.1).
func (r *Reno) OnAck(_ time.Time, acked int, _ time.Duration) {
	if r.cwnd < r.ssthresh {
		// Slow start: grow by the bytes acknowledged, at most 2*SMSS per ACK
		// (RFC 3465 appropriate byte counting with L = 2; RFC 5681 §3.1
		// allows one SMSS, RFC 3465 §2.3 allows L = 2).
		r.cwnd += min(acked, 2*r.mss)
		return
	}
	r.caAcked += acked
	if r.caAcked >= r.cwnd {
		r.caAcked -= r.cwnd
		r.cwnd += r.mss
	}
}

// OnLoss implements Controller (RFC 5681 §3.2 step 2).
func (r *Reno) OnLoss(_ time.Time, flight int) {
	r.ssthresh = max(flight/2, 2*r.mss)
	r.cwnd = r.ssthresh
	r.caAcked = 0
}

// OnRTO implements Controller (RFC 5681 §3.1, equation 4).
func (r *Reno) OnRTO(_ time.Time, flight int) {
	r.ssthresh = max(flight/2, 2*r.mss)
	r.cwnd = r.mss
	r.caAcked = 0
}

// Cwnd implements Controller.
func (r *Reno) Cwnd() int { return r.cwnd }

// Ssthresh implements Controller.
func (r *Reno) Ssthresh() int { return r.ssthresh }
