package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"ustack/tun"
)

// runUstack runs the ustack binary inside ns with a deadline, optionally
// through a wrapper (setpriv ...), and returns its exit code, stdout and
// stderr.
func runUstack(t *testing.T, ns *tun.Namespace, wrapper []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append(append(append([]string(nil), wrapper...), ustackBin), args...)
	cmd := ns.Command(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ustack %v: still running after 30 s", args)
	}
	code = exitCode(err)
	if code < 0 {
		t.Fatalf("ustack %v: %v", args, err)
	}
	return code, o.String(), e.String()
}

// netState is what a failed start must leave as it found it: the links and
// addresses of the namespace.
func netState(t *testing.T, ns *tun.Namespace) string {
	t.Helper()
	links, err := runIn(t, ns, 10*time.Second, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatalf("ip link: %v\n%s", err, links)
	}
	addrs, err := runIn(t, ns, 10*time.Second, "ip", "-o", "addr", "show")
	if err != nil {
		t.Fatalf("ip addr: %v\n%s", err, addrs)
	}
	return links + addrs
}

// TestServeUsageErrors: command-line mistakes exit with status 2 and a
// message that names the flags and shows the fix, before touching the
// network. They run inside a namespace anyway, in case one does not.
func TestServeUsageErrors(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	before := netState(t, ns)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"serve"}, []string{"no service", "--echo", "--discard", "--source", "--http"}},
		{[]string{"serve", "--echo", "7", "--addr", "nonsense"}, []string{`--addr "nonsense"`, "not an IPv4 address", "example: --addr 198.18.0.2"}},
		{[]string{"serve", "--echo", "7", "--host-addr", "198.18.0.1"}, []string{"--host-addr", "prefix length", "example: --host-addr 198.18.0.1/30"}},
		{[]string{"serve", "--echo", "7", "--msl", "-1s"}, []string{"--msl", "must be positive"}},
		{[]string{"serve", "--echo", "seven"}, []string{"-echo", "seven"}},
	} {
		code, stdout, stderr := runUstack(t, ns, nil, c.args...)
		if code != 2 {
			t.Errorf("ustack %s: exit status %d, want 2\nstderr: %s", strings.Join(c.args, " "), code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("ustack %s: stderr lacks %q:\n%s", strings.Join(c.args, " "), w, stderr)
			}
		}
		if strings.Contains(stdout, "ready") {
			t.Errorf("ustack %s printed ready:\n%s", strings.Join(c.args, " "), stdout)
		}
	}
	if after := netState(t, ns); after != before {
		t.Errorf("usage errors changed the namespace:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestServeTUNNameTaken: a second ustack asking for the TUN name the first
// one uses fails with a clear message and a non-zero status, changes
// nothing in the namespace, and the first one keeps working. So does one
// asking for a kernel-side address already in use.
func TestServeTUNNameTaken(t *testing.T) {
	requireRoot(t)
	requireTool(t, "ping")
	ns := newNamespace(t)
	startServe(t, ns, "--echo", echoPort)
	before := netState(t, ns)

	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"same TUN name", []string{"serve", "--echo", "7", "--tun", devName, "--addr", "198.18.0.6", "--host-addr", "198.18.0.5/30"},
			[]string{devName, "already exists", "--tun"}},
		{"same host address", []string{"serve", "--echo", "7", "--tun", devPrefix + "1"},
			[]string{hostAddr, "already", "--host-addr"}},
	} {
		code, stdout, stderr := runUstack(t, ns, nil, c.args...)
		t.Logf("%s: exit %d: %s", c.name, code, strings.TrimSpace(stderr))
		if code == 0 {
			t.Errorf("%s: ustack %s exited 0\nstdout: %s", c.name, strings.Join(c.args, " "), stdout)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, stderr)
			}
		}
		if after := netState(t, ns); after != before {
			t.Errorf("%s: the failed start changed the namespace:\nbefore:\n%s\nafter:\n%s", c.name, before, after)
		}
	}
	if out, err := runIn(t, ns, 20*time.Second, "ping", "-n", "-c", "1", "-W", "5", stackAddr); err != nil {
		t.Errorf("the first ustack no longer answers ping: %v\n%s", err, out)
	}
}

// TestServeWithoutCapNetAdmin: run without CAP_NET_ADMIN (as nobody, and
// as root with the capability dropped from the bounding set), ustack fails
// and says it needs CAP_NET_ADMIN, leaving nothing behind.
func TestServeWithoutCapNetAdmin(t *testing.T) {
	requireRoot(t)
	requireTool(t, "setpriv")
	ns := newNamespace(t)
	before := netState(t, ns)
	for _, c := range []struct {
		name    string
		wrapper []string
	}{
		{"as nobody", []string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", "--"}},
		{"as root without CAP_NET_ADMIN", []string{"setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "--"}},
	} {
		code, stdout, stderr := runUstack(t, ns, c.wrapper, "serve", "--echo", "7", "--tun", devName)
		t.Logf("%s: exit %d: %s", c.name, code, strings.TrimSpace(stderr))
		if code == 0 || strings.Contains(stdout, "ready") {
			t.Errorf("%s: ustack serve exited %d\nstdout: %s", c.name, code, stdout)
		}
		if !strings.Contains(stderr, "CAP_NET_ADMIN") {
			t.Errorf("%s: stderr does not mention CAP_NET_ADMIN:\n%s", c.name, stderr)
		}
		if after := netState(t, ns); after != before {
			t.Errorf("%s: the failed start changed the namespace:\nbefore:\n%s\nafter:\n%s", c.name, before, after)
		}
	}
}
