package tcp

import "time"

// stamp is a point in time as nanoseconds since the Unix epoch: 8 bytes
// where a time.Time takes 24, which matters for the dozen deadlines and
// times every TCB keeps (an idle connection's memory). The zero stamp is
// "unset", as the zero time.Time was. Only differences and order of stamps
// are used, so the wall-clock form serves the real and the virtual clock
// alike.
type stamp int64

// stampOf is t as a stamp.
func stampOf(t time.Time) stamp { return stamp(t.UnixNano()) }

// IsZero reports whether s is unset.
func (s stamp) IsZero() bool { return s == 0 }

// Time is s as a time.Time (the zero time if s is unset).
func (s stamp) Time() time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(s))
}

// Add is s+d.
func (s stamp) Add(d time.Duration) stamp { return s + stamp(d) }

// Sub is s-t.
func (s stamp) Sub(t stamp) time.Duration { return time.Duration(s - t) }

// Before reports s < t.
func (s stamp) Before(t stamp) bool { return s < t }

// After reports s > t.
func (s stamp) After(t stamp) bool { return s > t }
