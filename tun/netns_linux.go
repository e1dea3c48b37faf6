package tun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NamespacePrefix starts the name of every namespace NewNamespace creates.
const NamespacePrefix = "ustack-"

// netnsDir is where named namespaces live, as with `ip netns add`.
const netnsDir = "/run/netns"

var nsSeq atomic.Uint64

// Namespace is a named network namespace created by NewNamespace.
type Namespace struct {
	name string
	fd   int // an open handle on the namespace: the target of setns

	closeOnce sync.Once
	closeErr  error
}

// NewNamespace creates a network namespace named
// ustack-<purpose>-<pid>-<n>, mounted under /run/netns so that
// `ip netns exec` finds it, with lo up. Characters of purpose other than
// letters, digits and '_' become '_'. It needs CAP_SYS_ADMIN.
func NewNamespace(purpose string) (*Namespace, error) {
	return newNamespace(fmt.Sprintf("%s%s-%d-%d", NamespacePrefix, sanitize(purpose), os.Getpid(), nsSeq.Add(1)))
}

func newNamespace(name string) (*Namespace, error) {
	path := filepath.Join(netnsDir, name)
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating network namespace %s: %w", name, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return nil, fmt.Errorf("creating network namespace %s: %w", name, err)
	}
	f.Close()

	err = onFreshThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("unshare: %w: needs CAP_SYS_ADMIN (run as root)", err)
			}
			return fmt.Errorf("unshare: %w", err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting %s: %w", path, err)
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			return fmt.Errorf("setting lo up: %w", err)
		}
		return nil
	})
	if err != nil {
		removeNamed(path)
		return nil, fmt.Errorf("creating network namespace %s: %w", name, err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		removeNamed(path)
		return nil, fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	return &Namespace{name: name, fd: fd}, nil
}

func sanitize(s string) string {
	if s == "" {
		return "x"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func removeNamed(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		err = nil // not mounted (creation failed half-way), or already gone
	}
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// onFreshThread runs fn on a goroutine locked to its OS thread and never
// unlocks it, so the thread, whatever namespace fn leaves it in, exits with
// the goroutine instead of going back to the scheduler. A panic in fn is
// re-raised in the caller; runtime.Goexit (t.FailNow) is reported as an
// error.
func onFreshThread(fn func() error) error {
	type result struct {
		err      error
		panicked any
		done     bool
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var r result
		defer func() {
			if !r.done {
				if p := recover(); p != nil {
					r.panicked = p
				} else {
					r.err = errors.New("tun: function exited through runtime.Goexit (t.FailNow or t.SkipNow?) inside a namespace; use t.Error and return")
				}
			}
			ch <- r
		}()
		r.err = fn()
		r.done = true
	}()
	r := <-ch
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// Name is the namespace's name, as `ip netns list` shows it.
func (ns *Namespace) Name() string { return ns.name }

// Path is the namespace's bind mount, e.g. for nsenter --net=PATH.
func (ns *Namespace) Path() string { return filepath.Join(netnsDir, ns.name) }

// Do runs fn on an OS thread inside the namespace and returns its error.
// Sockets and TUN devices fn creates belong to the namespace for their whole
// life, whichever thread uses them later; goroutines fn starts run outside
// it. The thread is discarded when fn returns.
func (ns *Namespace) Do(fn func() error) error {
	return onFreshThread(func() error {
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("entering network namespace %s: %w", ns.name, err)
		}
		return fn()
	})
}

// OpenTUN opens a TUN device inside the namespace (see Open).
func (ns *Namespace) OpenTUN(cfg Config) (*Device, error) {
	var d *Device
	err := ns.Do(func() error {
		var err error
		d, err = Open(cfg)
		return err
	})
	return d, err
}

// Command returns a command that runs name inside the namespace through
// `ip netns exec`, for kernel-side clients such as ping and curl.
func (ns *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
}

// Close deletes the namespace's name. The namespace itself goes away when
// nothing uses it any more: devices and sockets opened inside it keep it
// alive until they are closed, as do processes still running in it.
// Close is idempotent; use it with t.Cleanup.
func (ns *Namespace) Close() error {
	ns.closeOnce.Do(func() {
		err := unix.Close(ns.fd)
		if rerr := removeNamed(ns.Path()); rerr != nil {
			err = errors.Join(err, fmt.Errorf("deleting network namespace %s: %w", ns.name, rerr))
		}
		ns.closeErr = err
	})
	return ns.closeErr
}

// Leftovers lists what is left of ustack's namespaces and devices: the
// namespaces under /run/netns that NewNamespace created in process pid (in
// any process if pid is 0), as "netns NAME", and the links in the calling
// thread's namespace whose names start with devicePrefix (none if it is
// empty), as "link NAME".
func Leftovers(pid int, devicePrefix string) ([]string, error) {
	var out []string
	names, err := namespaces()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if p, ok := namespacePID(name); ok && (pid == 0 || p == pid) {
			out = append(out, "netns "+name)
		}
	}
	if devicePrefix == "" {
		return out, nil
	}
	links, err := netlink.LinkList()
	if err != nil {
		return out, fmt.Errorf("listing links: %w", err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, devicePrefix) {
			out = append(out, "link "+l.Attrs().Name)
		}
	}
	return out, nil
}

// RemoveStaleNamespaces deletes the namespaces NewNamespace created in
// processes that no longer run (a test binary killed before its cleanup),
// and returns their names.
func RemoveStaleNamespaces() ([]string, error) {
	names, err := namespaces()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs error
	for _, name := range names {
		pid, ok := namespacePID(name)
		if !ok || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if err := removeNamed(filepath.Join(netnsDir, name)); err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errs
}

func namespaces() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), NamespacePrefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// namespacePID parses the pid out of ustack-<purpose>-<pid>-<n>.
func namespacePID(name string) (int, bool) {
	parts := strings.Split(strings.TrimPrefix(name, NamespacePrefix), "-")
	if len(parts) != 3 {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[1])
	return pid, err == nil
}
