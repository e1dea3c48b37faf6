package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestLabNoCookiesFlag: --no-cookies runs the syn-flood lab's second half
// only, and is refused for any other lab.
func TestLabNoCookiesFlag(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"lab", "--no-color", "--no-cookies", "syn-flood"}, &out, &errb)
	if code != 0 || strings.Contains(out.String(), "SYN cookies are on") || !strings.Contains(out.String(), "SYN cookies are off") || !strings.HasSuffix(strings.TrimSpace(out.String()), "PASS") {
		t.Fatalf("exit %d, stderr %q:\n%s", code, errb.String(), out.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"lab", "--no-cookies", "close"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--no-cookies is for the syn-flood lab only") {
		t.Fatalf("--no-cookies close: exit %d, stderr %q", code, errb.String())
	}
}
