package cc

import (
	"testing"
	"unsafe"
)

// TestCubicSizeClass: every connection holds its controller; CUBIC's
// state fits the 160-byte size class.
func TestCubicSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Cubic{}); n > 160 {
		t.Errorf("Cubic is %d bytes, more than its 160-byte size class", n)
	}
}
