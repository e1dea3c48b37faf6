package cc

import (
	"testing"
	"unsafe"
)

// TestControllerSizeClass: every connection holds its controller; CUBIC's
// state fits the 160-byte size class, BBR's the 256-byte one.
func TestControllerSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Cubic{}); n > 160 {
		t.Errorf("Cubic is %d bytes, more than its 160-byte size class", n)
	}
	if n := unsafe.Sizeof(BBR{}); n > 256 {
		t.Errorf("BBR is %d bytes, more than its 256-byte size class", n)
	}
}
