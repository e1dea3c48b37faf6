package stack

import (
	"testing"
	"unsafe"
)

// TestConnSizeClass: beside its TCB, an idle connection costs its Conn:
// 96 bytes, what most connections never use (the condition blocked calls
// wait on, the deadlines) allocated when first used.
func TestConnSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 96 {
		t.Errorf("stack.Conn is %d bytes, more than its 96-byte size class", n)
	}
}
