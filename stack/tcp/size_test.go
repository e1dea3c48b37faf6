package tcp

import (
	"testing"
	"unsafe"
)

// TestConnSizeClass: the TCB is most of what an idle connection costs
// (docs/design.md "Memory"), and Go allocates it in size classes: 1024
// bytes holds it; a field that pushes it past that costs 128 bytes more
// per connection (the next class is 1152), so it must find room first
// (small counts in small integers, packed with the other small fields;
// rarely used state behind a pointer).
func TestConnSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 1024 {
		t.Errorf("tcp.Conn is %d bytes, more than its 1024-byte size class", n)
	}
}
