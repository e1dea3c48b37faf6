// Package ustack_test holds repository-wide checks.
package ustack_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// layers says, for every package of the module, which of the module's
// packages it may depend on (directly or not): the layers of
// docs/design.md, where imports flow only downward (header, seqnum, clock,
// counter ← link ← ipv4, ipv6 ← tcp, udp ← stack ← cmd), tlslite stands alone, and
// tun uses only link. heapq, a container that imports nothing of the
// module, sits below clock and link. A pattern ending in / stands for a
// subtree; the longest pattern that matches a package is its rule.
var layers = []struct {
	pkg     string
	allowed []string
}{
	{"ustack", nil}, // this file
	{"ustack/stack/seqnum", nil},
	{"ustack/stack/header", nil},
	{"ustack/stack/counter", nil},
	{"ustack/stack/heapq", nil},
	{"ustack/stack/clock", []string{"ustack/stack/heapq"}},
	{"ustack/stack/link", []string{"ustack/stack/clock", "ustack/stack/header", "ustack/stack/counter", "ustack/stack/heapq"}},
	{"ustack/stack/ipv4", []string{"ustack/stack/header", "ustack/stack/counter"}},
	{"ustack/stack/ipv6", []string{"ustack/stack/header", "ustack/stack/counter"}},
	{"ustack/stack/udp", []string{"ustack/stack/header", "ustack/stack/counter"}},
	{"ustack/stack/tcp/cc", nil},
	{"ustack/stack/tcp", []string{"ustack/stack/header", "ustack/stack/seqnum", "ustack/stack/clock", "ustack/stack/heapq", "ustack/stack/tcp/cc"}},
	{"ustack/stack", []string{"ustack/stack/"}},
	{"ustack/stack/sim", []string{"ustack/stack", "ustack/stack/"}},
	{"ustack/tlslite", nil},
	{"ustack/tun", []string{"ustack/stack/link", "ustack/stack/clock", "ustack/stack/header", "ustack/stack/counter", "ustack/stack/heapq"}},
	{"ustack/internal/waitfor", nil},
	{"ustack/internal/gvpeer", []string{"ustack/stack/link", "ustack/stack/clock", "ustack/stack/header", "ustack/stack/counter", "ustack/stack/heapq"}},
	// The pictures of a story: drawn from its ladder events alone.
	{"ustack/internal/picture", []string{"ustack/internal/ladder", "ustack/internal/record", "ustack/internal/waitfor", "ustack/stack", "ustack/stack/", "ustack/tlslite"}},
	// Any other internal package (the default for new ones).
	{"ustack/internal/", []string{"ustack/stack", "ustack/stack/", "ustack/tlslite", "ustack/tun", "ustack/internal/"}},
	{"ustack/cmd/", []string{"ustack/stack", "ustack/stack/", "ustack/tlslite", "ustack/tun", "ustack/internal/"}},
	{"ustack/integration", []string{"ustack/stack", "ustack/stack/", "ustack/tlslite", "ustack/tun", "ustack/internal/"}},
}

// gvpeerUsers are the packages whose non-test files may import
// ustack/internal/gvpeer, the wrapper of gVisor's netstack: the benchmark
// and the labs that measure ustack against gVisor. Tests of any package
// may import it. A new package that needs it in its non-test files is
// added here.
var gvpeerUsers = []string{
	"ustack/cmd/ustack",
	"ustack/internal/bench",
	"ustack/internal/lab",
}

const gvpeer = "ustack/internal/gvpeer"

// gvisorNetstack reports whether p is part of gVisor's netstack (its link
// layer helpers and buffers are not).
func gvisorNetstack(p string) bool {
	return strings.HasPrefix(p, "gvisor.dev/gvisor/pkg/tcpip/stack") || strings.HasPrefix(p, "gvisor.dev/gvisor/pkg/tcpip/transport")
}

type pkgInfo struct {
	path          string
	imports, deps []string
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports ","}}|{{join .Deps ","}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	var pkgs []pkgInfo
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		pkgs = append(pkgs, pkgInfo{path: f[0], imports: split(f[1]), deps: split(f[2])})
	}
	return pkgs
}

func matches(pattern, p string) bool {
	return p == pattern || strings.HasSuffix(pattern, "/") && strings.HasPrefix(p, pattern)
}

// ruleFor returns the allowed list of the longest pattern matching p.
func ruleFor(p string) (allowed []string, ok bool) {
	best := -1
	for _, r := range layers {
		if matches(r.pkg, p) && len(r.pkg) > best {
			best, allowed, ok = len(r.pkg), r.allowed, true
		}
	}
	return allowed, ok
}

// TestPackageLayering enforces layers and gvpeerUsers on every package
// of the module (non-test files), and that gVisor's netstack is reached
// only through internal/gvpeer.
func TestPackageLayering(t *testing.T) {
	pkgs := listPackages(t)
	exists := map[string]bool{}
	for _, p := range pkgs {
		exists[p.path] = true
		allowed, ok := ruleFor(p.path)
		if !ok {
			t.Errorf("%s has no rule: add it to layers in layering_test.go, with the ustack packages it may import", p.path)
			continue
		}
		for _, dep := range p.deps {
			if (dep == "ustack" || strings.HasPrefix(dep, "ustack/")) && !slices.ContainsFunc(allowed, func(a string) bool { return matches(a, dep) }) {
				t.Errorf("%s depends on %s: against the layering of docs/design.md (layers in layering_test.go)", p.path, dep)
			}
			if gvisorNetstack(dep) && p.path != gvpeer && !slices.Contains(p.deps, gvpeer) {
				t.Errorf("%s depends on gVisor's netstack (%s) other than through %s", p.path, dep, gvpeer)
			}
		}
		if slices.Contains(p.imports, gvpeer) && !slices.Contains(gvpeerUsers, p.path) {
			t.Errorf("%s imports %s: only tests and the packages in gvpeerUsers (layering_test.go) may; "+
				"import it from _test.go files, or add the package to gvpeerUsers if it is a benchmark or lab that measures against gVisor", p.path, gvpeer)
		}
	}
	for _, r := range layers {
		if !strings.HasSuffix(r.pkg, "/") && !exists[r.pkg] {
			t.Errorf("layers has a rule for %s, which is no package of the module: remove it", r.pkg)
		}
	}
}
