// Package seqnum implements TCP sequence numbers: 32-bit values compared
// modulo 2^32 (RFC 9293 §3.4). Never compare raw uint32 sequence numbers with
// < or >: use these methods.
package seqnum

// Value is a sequence number.
type Value uint32

// Size is a length in sequence space.
type Size uint32

// LessThan reports v < w in sequence space.
func (v Value) LessThan(w Value) bool { return int32(v-w) < 0 }

// LessThanEq reports v <= w in sequence space.
func (v Value) LessThanEq(w Value) bool { return int32(v-w) <= 0 }

// GreaterThan reports v > w in sequence space.
func (v Value) GreaterThan(w Value) bool { return int32(v-w) > 0 }

// GreaterThanEq reports v >= w in sequence space.
func (v Value) GreaterThanEq(w Value) bool { return int32(v-w) >= 0 }

// InRange reports a <= v < b.
func (v Value) InRange(a, b Value) bool { return v-a < b-a }

// InWindow reports first <= v < first+size.
func (v Value) InWindow(first Value, size Size) bool { return uint32(v-first) < uint32(size) }

// Add returns v+s.
func (v Value) Add(s Size) Value { return v + Value(s) }

// Sub returns v-s.
func (v Value) Sub(s Size) Value { return v - Value(s) }

// Size returns the distance from v to w (w-v).
func (v Value) Size(w Value) Size { return Size(w - v) }

// Max returns the later of v and w.
func Max(v, w Value) Value {
	if v.LessThan(w) {
		return w
	}
	return v
}

// Min returns the earlier of v and w.
func Min(v, w Value) Value {
	if v.LessThan(w) {
		return v
	}
	return w
}
