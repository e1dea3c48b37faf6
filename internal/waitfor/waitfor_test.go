package waitfor

import (
	"fmt"
	"testing"
	"time"
)

func TestWithin(t *testing.T) {
	n := 0
	if !Within(time.Second, func() bool { n++; return n == 5 }) {
		t.Fatal("Within gave up on a condition that came true")
	}
	start := time.Now()
	if Within(20*time.Millisecond, func() bool { return false }) {
		t.Fatal("Within reported a false condition true")
	}
	if d := time.Since(start); d < 20*time.Millisecond || d > time.Second {
		t.Fatalf("Within(20ms) took %v", d)
	}
}

// fakeTB records Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestCondFailsWithWhat(t *testing.T) {
	f := &fakeTB{TB: t}
	Cond(f, 5*time.Millisecond, "the moon", func() bool { return false })
	if f.msg != "timed out after 5ms waiting for the moon" {
		t.Fatalf("message %q", f.msg)
	}
	f.msg = ""
	Condf(f, 5*time.Millisecond, func() string { return "state X" }, func() bool { return false })
	if f.msg != "timed out after 5ms waiting for state X" {
		t.Fatalf("message %q", f.msg)
	}
	f.msg = ""
	Cond(f, time.Second, "nothing", func() bool { return true })
	if f.msg != "" {
		t.Fatalf("a true condition failed: %q", f.msg)
	}
}
