package tun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func netnsInode(t *testing.T) string {
	t.Helper()
	s, err := os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", gettid()))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNamespace(t *testing.T) {
	ns := testNamespace(t, "ns test/1")
	prefix := fmt.Sprintf("ustack-ns_test_1-%d-", os.Getpid())
	if !strings.HasPrefix(ns.Name(), prefix) {
		t.Errorf("name %q, want prefix %q", ns.Name(), prefix)
	}
	if _, err := os.Stat(ns.Path()); err != nil {
		t.Fatal(err)
	}

	host := netnsInode(t)
	var inside string
	inNS(t, ns, func() error { inside = netnsInode(t); return nil })
	if inside == host {
		t.Fatalf("Do ran in the host namespace %s", host)
	}
	var again string
	inNS(t, ns, func() error { again = netnsInode(t); return nil })
	if again != inside {
		t.Errorf("second Do in %s, first in %s", again, inside)
	}
	if got := strings.Join(linksIn(t, ns), " "); got != "lo" {
		t.Errorf("links in a fresh namespace: %s", got)
	}

	// Command runs in the namespace too, and lo is up there.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := ns.Command(ctx, "ip", "-o", "link", "show", "up").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v\n%s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], ": lo:") {
		t.Errorf("links up in the namespace:\n%s", out)
	}

	left, err := Leftovers(os.Getpid(), "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range left {
		found = found || l == "netns "+ns.Name()
	}
	if !found {
		t.Errorf("Leftovers %v does not list the open %s", left, ns.Name())
	}
}

func TestDoPropagatesPanicAndGoexit(t *testing.T) {
	ns := testNamespace(t, "panic")
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		ns.Do(func() error { panic("boom") })
		t.Error("Do returned after a panic")
	}()
	err := ns.Do(func() error { runtimeGoexit(); return nil })
	if err == nil || !strings.Contains(err.Error(), "Goexit") {
		t.Errorf("Do with Goexit = %v", err)
	}
}

func TestNamespacePID(t *testing.T) {
	for name, want := range map[string]int{
		"ustack-ping-123-4": 123,
		"ustack-a_b-9-10":   9,
		"ustack-x-y-1-2":    0,
		"ustack-ping-abc-1": 0,
		"ustack-ping-123":   0,
	} {
		pid, ok := namespacePID(name)
		if ok != (want != 0) || pid != want && want != 0 {
			t.Errorf("namespacePID(%q) = %d, %v", name, pid, ok)
		}
	}
}

func TestRemoveStaleNamespaces(t *testing.T) {
	requireRoot(t)
	// A pid that has just exited stands for a test binary killed before its
	// cleanup.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale, err := newNamespace(fmt.Sprintf("%sstale-%d-1", NamespacePrefix, dead.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stale.Close() })
	live := testNamespace(t, "live")

	removed, err := RemoveStaleNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, stale.Name()) || slices.Contains(removed, live.Name()) {
		t.Errorf("removed %v; want %s and not %s", removed, stale.Name(), live.Name())
	}
	if _, err := os.Stat(stale.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v", stale.Path(), err)
	}
	if _, err := os.Stat(live.Path()); err != nil {
		t.Errorf("the live namespace went: %v", err)
	}
}
