// Package waitfor is the one way tests wait for a condition in real time:
// poll it with a short backoff until it holds or a deadline passes, then
// fail the test saying what was awaited.
package waitfor

import (
	"time"
)

// Backoff bounds: the first poll waits First, each next one twice as long,
// up to Max.
const (
	First = 100 * time.Microsecond
	Max   = 10 * time.Millisecond
)

// Cond polls cond until it returns true, and fails t (Fatalf) when timeout
// passes first, with the message "timed out after <timeout> waiting for
// <what>". cond is called from t's goroutine.
// TB is the part of testing.TB that Cond uses; the package does not import
// testing, so that programs (the labs, the demo, the bench) can use Within.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

func Cond(t TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Condf is Cond with what computed when the wait fails, so that the
// message can show the state at the end (what is called once, then).
func Condf(t TB, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	if !Within(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what())
	}
}

// Within polls cond until it returns true (true) or timeout passes
// (false), for callers that do not fail at once.
func Within(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	wait := First
	for !cond() {
		left := time.Until(deadline)
		if left <= 0 {
			return cond()
		}
		time.Sleep(min(wait, left))
		wait = min(2*wait, Max)
	}
	return true
}
