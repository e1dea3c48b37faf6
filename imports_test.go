// Package ustack_test holds repository-wide checks.
package ustack_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportLayering enforces the layers of docs/design.md: imports flow only
// downward (header/seqnum/clock ← link ← ipv4 ← tcp ← stack ← cmd), tlslite
// stands alone, tun uses only link, and gVisor's netstack is never a
// dependency of the stack or tlslite (only tests and `ustack bench` use it).
func TestImportLayering(t *testing.T) {
	type rule struct {
		pkg     string
		allowed []string // ustack packages it may import; a trailing / allows a subtree
	}
	rules := []rule{
		{"ustack/stack/seqnum", nil},
		{"ustack/stack/clock", nil},
		{"ustack/stack/header", nil},
		{"ustack/stack/counter", nil},
		{"ustack/stack/link", []string{"ustack/stack/clock", "ustack/stack/header", "ustack/stack/counter"}},
		{"ustack/stack/ipv4", []string{"ustack/stack/header", "ustack/stack/counter"}},
		{"ustack/stack/tcp/cc", nil},
		{"ustack/stack/tcp", []string{"ustack/stack/header", "ustack/stack/seqnum", "ustack/stack/clock", "ustack/stack/tcp/cc"}},
		{"ustack/stack", []string{"ustack/stack/"}},
		{"ustack/tlslite", nil},
		{"ustack/tun", []string{"ustack/stack/link", "ustack/stack/clock", "ustack/stack/header", "ustack/stack/counter"}},
	}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", r.pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", r.pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == r.pkg {
				continue
			}
			if strings.Contains(dep, "gvisor.dev/gvisor/pkg/tcpip/stack") || strings.Contains(dep, "gvisor.dev/gvisor/pkg/tcpip/transport") {
				t.Errorf("%s depends on gVisor's netstack (%s): only tests and bench may", r.pkg, dep)
			}
			if !strings.HasPrefix(dep, "ustack/") && dep != "ustack" {
				continue
			}
			ok := false
			for _, a := range r.allowed {
				if dep == a || strings.HasSuffix(a, "/") && strings.HasPrefix(dep, a) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s imports %s: against the layering of docs/design.md", r.pkg, dep)
			}
		}
	}
}
