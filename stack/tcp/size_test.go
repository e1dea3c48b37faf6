package tcp

import (
	"testing"
	"unsafe"
)

// TestConnSizeClass: the TCB is most of what an idle connection costs
// (docs/design.md "Memory"), and Go allocates it in size classes, an
// object over 512 bytes that holds pointers with an 8-byte header before
// it: the 896-byte class holds a TCB of up to 888 bytes. A field that
// pushes it past that costs 128 bytes more per connection (the next class
// is 1024), so it must find room first (small counts in small integers,
// packed with the other small fields; rarely used state behind a
// pointer).
func TestConnSizeClass(t *testing.T) {
	const class, header = 896, 8
	if n := unsafe.Sizeof(Conn{}); n+header > class {
		t.Errorf("tcp.Conn is %d bytes, more than the %d its %d-byte size class holds", n, class-header, class)
	}
}
