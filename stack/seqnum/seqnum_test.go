package seqnum

import "testing"

func TestCompareAcrossWrap(t *testing.T) {
	a, b := Value(0xfffffff0), Value(0x10)
	if !a.LessThan(b) || b.LessThan(a) || !b.GreaterThan(a) {
		t.Fatal("0xfffffff0 must be before 0x10 across the wrap")
	}
	if !a.LessThanEq(a) || a.LessThan(a) {
		t.Fatal("LessThanEq/LessThan on equal values")
	}
	if a.Add(0x20) != b || a.Size(b) != 0x20 || b.Sub(0x20) != a {
		t.Fatal("Add/Size/Sub across the wrap")
	}
}

func TestInWindow(t *testing.T) {
	first := Value(0xfffffffe)
	for _, c := range []struct {
		v    Value
		size Size
		want bool
	}{
		{0xfffffffe, 4, true}, {1, 4, true}, {2, 4, false}, {0xfffffffd, 4, false}, {first, 0, false},
	} {
		if got := c.v.InWindow(first, c.size); got != c.want {
			t.Errorf("%#x.InWindow(%#x,%d) = %v, want %v", c.v, first, c.size, got, c.want)
		}
	}
	if !Value(5).InRange(5, 6) || Value(6).InRange(5, 6) {
		t.Error("InRange bounds")
	}
	if Max(0xfffffff0, 3) != 3 || Min(0xfffffff0, 3) != 0xfffffff0 {
		t.Error("Max/Min across the wrap")
	}
}
