package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"ustack/internal/gvpeer"
	"ustack/internal/services"
	"ustack/stack"
	"ustack/stack/link"
	"ustack/stack/tcp"
	"ustack/stack/tcp/cc"
	"ustack/tlslite"
	"ustack/tun"
)

// The bench's network: every environment is a fresh set of namespaces
// (unique names from tun.NewNamespace), with addresses in 198.18.0.0/15
// and (for the IPv6 rows) 2001:2::/48 only, deleted on the way out. The
// client namespace holds the kernel-side clients at benchClientAddr; the
// server under test answers at benchServerAddr, or over IPv6 at
// benchServerAddr6 from benchClientAddr6:
//
//	kernel: client ns --veth-- server ns (the kernel's TCP, Go servers in it)
//	ustack: client ns --TUN-- ustack (in this process)
//	gvisor: client ns --TUN-- gVisor netstack (in this process, gvpeer)
//
// With loss, link.Impair sits on the client's TUN for all three: ustack and
// gVisor run on Impair(TUN) directly; the kernel, which has no link of
// ours, is reached through a relay that copies between Impair(TUN) in the
// client namespace and a second TUN in the server namespace.
var (
	benchClientAddr = netip.MustParseAddr("198.18.0.1")
	benchServerAddr = netip.MustParseAddr("198.18.0.2")
	benchPrefixLen  = 30

	benchClientAddr6 = netip.MustParseAddr("2001:2::1")
	benchServerAddr6 = netip.MustParseAddr("2001:2::2")
	benchPrefixLen6  = 64
)

const (
	stackKernel = "kernel"
	stackUstack = "ustack"
	stackGVisor = "gvisor"
)

var benchStacks = []string{stackKernel, stackUstack, stackGVisor}

// benchMTU is the link MTU of every path; the TUNs keep their offloads
// (TSO/GRO through wireguard's virtio-net header), the veth its defaults.
const benchMTU = 1500

// envConfig says what to build.
type envConfig struct {
	stack string
	loss  float64 // > 0: Impair the path with this loss in each direction
	seed  int64
	tls   *tlslite.Dir
	// v6: the server answers at benchServerAddr6 and the clients reach it
	// over IPv6 (gVisor's host then has only that address; ustack has
	// both). Not with loss.
	v6 bool
}

// benchEnv is one stack under test with its client namespace.
type benchEnv struct {
	stack  string
	addr   netip.Addr // the server's address: benchServerAddr or benchServerAddr6
	client *tun.Namespace
	server *tun.Namespace // kernel only
	srv    *services.Server
	imp    *link.Impaired // on the path when loss > 0
	ust    *stack.Stack
	gv     *gvpeer.Host

	mu      sync.Mutex
	closers []func() // run in reverse order
}

func (e *benchEnv) onClose(f func()) {
	e.mu.Lock()
	e.closers = append(e.closers, f)
	e.mu.Unlock()
}

// Close tears down in reverse order; the namespaces go last.
func (e *benchEnv) Close() {
	e.mu.Lock()
	cs := e.closers
	e.closers = nil
	e.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// serverAddr is the server's address and port, as "IP:PORT" or
// "[IPv6]:PORT".
func (e *benchEnv) serverAddr(port int) string {
	a := e.addr
	if !a.IsValid() {
		a = benchServerAddr
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}

// newBenchEnv builds the environment for one stack and starts the bench
// services on it.
func newBenchEnv(cfg envConfig) (env *benchEnv, err error) {
	env = &benchEnv{stack: cfg.stack, addr: benchServerAddr}
	if cfg.v6 {
		if cfg.loss > 0 {
			return nil, errors.New("bench: no IPv6 environment with loss")
		}
		env.addr = benchServerAddr6
	}
	defer func() {
		if err != nil {
			env.Close()
			env = nil
		}
	}()
	if env.client, err = tun.NewNamespace("bench_client"); err != nil {
		return nil, err
	}
	env.onClose(func() { env.client.Close() })
	// Connections per second open more connections than the default
	// ephemeral range (32768-60999) holds within TIME-WAIT's 60 s.
	if err := setSysctl(env.client, "net/ipv4/ip_local_port_range", "1024 65535"); err != nil {
		return nil, err
	}
	hostPrefix := netip.PrefixFrom(benchClientAddr, benchPrefixLen)
	var listen benchListen
	wrapTLS := cryptoTLSWrap(cfg.tls)
	switch cfg.stack {
	case stackKernel:
		listen, err = env.kernel(cfg, hostPrefix)
	case stackUstack, stackGVisor:
		listen, err = env.inProcess(cfg, hostPrefix)
		if cfg.stack == stackUstack {
			wrapTLS = tlsliteWrap(cfg.tls)
		}
	default:
		err = fmt.Errorf("bench: unknown stack %q", cfg.stack)
	}
	if err != nil {
		return nil, err
	}
	srv, err := startBenchServer(listen, wrapTLS)
	if err != nil {
		return nil, err
	}
	env.srv = srv
	env.onClose(srv.Close)
	return env, nil
}

// kernel puts the kernel's TCP in a server namespace, joined to the
// client's by a veth pair (or with loss by an impaired relay).
func (env *benchEnv) kernel(cfg envConfig, hostPrefix netip.Prefix) (benchListen, error) {
	var err error
	if env.server, err = tun.NewNamespace("bench_server"); err != nil {
		return nil, err
	}
	env.onClose(func() { env.server.Close() })
	if cfg.loss > 0 {
		err = env.kernelRelay(cfg, hostPrefix)
	} else {
		err = env.veth(cfg.v6)
	}
	if err != nil {
		return nil, err
	}
	network := "tcp4"
	if cfg.v6 {
		network = "tcp6"
	}
	return func(port uint16) (net.Listener, error) {
		var l net.Listener
		err := env.server.Do(func() error {
			var err error
			l, err = net.Listen(network, netip.AddrPortFrom(env.addr, port).String())
			return err
		})
		return l, err
	}, nil
}

// inProcess runs ustack or gVisor's netstack in this process on a TUN in
// the client namespace (impaired with loss).
func (env *benchEnv) inProcess(cfg envConfig, hostPrefix netip.Prefix) (benchListen, error) {
	tc := tun.Config{Name: "bench0", MTU: benchMTU, HostAddr: hostPrefix}
	if cfg.v6 {
		tc.HostAddr6 = netip.PrefixFrom(benchClientAddr6, benchPrefixLen6)
	}
	dev, err := env.client.OpenTUN(tc)
	if err != nil {
		return nil, err
	}
	env.onClose(func() { dev.Close() })
	var ep link.Endpoint = dev
	if cfg.loss > 0 {
		env.imp = benchImpair(dev, cfg)
		ep = env.imp
	}
	if cfg.stack == stackUstack {
		addrs := []netip.Addr{benchServerAddr}
		if cfg.v6 {
			addrs = append(addrs, benchServerAddr6)
		}
		st, err := stack.New(ep, stack.Options{
			Addrs: addrs,
			// As the kernel's: listen(2) backlog up to somaxconn (4096),
			// and no connection limit below what the runs open.
			Backlog:  4096,
			MaxConns: 1 << 20,
			// The kernel's congestion control, so that the two TCPs
			// are compared like for like (kernelCC).
			TCP: tcp.Config{CC: kernelCC()},
		})
		if err != nil {
			return nil, err
		}
		env.ust = st
		env.onClose(func() { st.Close() })
		return func(port uint16) (net.Listener, error) { return st.ListenTCP(port) }, nil
	}
	// gVisor as wireguard-go's tun/netstack configures it: stock options
	// plus SACK. A host has one address, so over IPv6 only that one.
	h, err := gvpeer.New(ep, env.addr, gvpeer.Options{SACK: true, ModerateRecvBuf: true})
	if err != nil {
		return nil, err
	}
	env.gv = h
	env.onClose(func() { h.Close() })
	return func(port uint16) (net.Listener, error) { return h.Listen(port) }, nil
}

func benchImpair(ep link.Endpoint, cfg envConfig) *link.Impaired {
	sp := link.Spec{Loss: cfg.loss}
	return link.Impair(ep, link.ImpairConfig{In: sp, Out: sp, Seed: cfg.seed})
}

// setSysctl writes a per-namespace sysctl from a thread inside ns.
func setSysctl(ns *tun.Namespace, name, value string) error {
	return ns.Do(func() error {
		if err := os.WriteFile("/proc/sys/"+name, []byte(value), 0o644); err != nil {
			return fmt.Errorf("bench: sysctl %s in %s: %w", name, ns.Name(), err)
		}
		return nil
	})
}

// veth joins the client and server namespaces with a veth pair, with
// IPv6 addresses too when v6 is set.
func (e *benchEnv) veth(v6 bool) error {
	c, s := e.client.Name(), e.server.Name()
	cp := netip.PrefixFrom(benchClientAddr, benchPrefixLen).String()
	sp := netip.PrefixFrom(benchServerAddr, benchPrefixLen).String()
	ip := func(cmds ...[]string) error {
		for _, args := range cmds {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("bench: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
			}
		}
		return nil
	}
	if err := ip(
		[]string{"-n", c, "link", "add", "bench0", "type", "veth", "peer", "name", "bench1", "netns", s},
		[]string{"-n", c, "addr", "add", cp, "dev", "bench0"},
		[]string{"-n", s, "addr", "add", sp, "dev", "bench1"},
	); err != nil {
		return err
	}
	if v6 {
		if err := vethIPv6(e.client, "bench0", netip.PrefixFrom(benchClientAddr6, benchPrefixLen6)); err != nil {
			return err
		}
		if err := vethIPv6(e.server, "bench1", netip.PrefixFrom(benchServerAddr6, benchPrefixLen6)); err != nil {
			return err
		}
	}
	return ip(
		[]string{"-n", c, "link", "set", "bench0", "up"},
		[]string{"-n", s, "link", "set", "bench1", "up"},
	)
}

// vethIPv6 gives one end of the veth pair, still down, its IPv6 address
// and nothing else, as the TUN's kernel side gets (tun.configureIPv6): no
// link-local address, so no router solicitations, no DAD (usable at once;
// nobody else is on the link), no router advertisements taken. The
// sysctls are the namespace's own.
func vethIPv6(ns *tun.Namespace, dev string, addr netip.Prefix) error {
	for _, kv := range [][2]string{{"addr_gen_mode", "1"}, {"accept_ra", "0"}, {"router_solicitations", "0"}, {"accept_dad", "0"}, {"disable_ipv6", "0"}} {
		if err := setSysctl(ns, "net/ipv6/conf/"+dev+"/"+kv[0], kv[1]); err != nil {
			return fmt.Errorf("%w (is IPv6 disabled in this kernel?)", err)
		}
	}
	args := []string{"-n", ns.Name(), "addr", "add", addr.String(), "dev", dev, "nodad"}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("bench: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// kernelRelay joins the namespaces with two TUNs and a relay between them
// that impairs the traffic with the same code ustack and gVisor run on.
func (e *benchEnv) kernelRelay(cfg envConfig, hostPrefix netip.Prefix) error {
	a, err := e.client.OpenTUN(tun.Config{Name: "bench0", MTU: benchMTU, HostAddr: hostPrefix})
	if err != nil {
		return err
	}
	e.onClose(func() { a.Close() })
	b, err := e.server.OpenTUN(tun.Config{Name: "bench1", MTU: benchMTU, HostAddr: netip.PrefixFrom(benchServerAddr, benchPrefixLen)})
	if err != nil {
		return err
	}
	e.onClose(func() { b.Close() })
	ia := benchImpair(a, cfg)
	e.imp = ia
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); relayPump(ia, b) }()
	go func() { defer wg.Done(); relayPump(b, ia) }()
	e.onClose(func() {
		ia.Close()
		b.Close()
		wg.Wait()
	})
	return nil
}

// relayPump copies batches from src to dst until src is closed.
func relayPump(src, dst link.Endpoint) {
	bs := max(src.BatchSize(), 1)
	bufs, sizes := link.ReadBuffers(bs, link.MaxPacket)
	out := make([][]byte, bs)
	for {
		n, err := src.ReadBatch(bufs, sizes, link.Headroom)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		for i := range n {
			out[i] = bufs[i][:link.Headroom+sizes[i]]
		}
		dst.WriteBatch(out[:n], link.Headroom)
	}
}

// helper is a client process (`ustack bench client ...`, or wrk) running
// in the client namespace.
type helper struct {
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stdin  io.WriteCloser
	stderr strings.Builder
	done   chan error
}

// benchExe is the program that runs the client modes: this one.
var benchExe = sync.OnceValues(os.Executable)

// startClient starts `ustack bench client MODE args...` in env's client
// namespace.
func (e *benchEnv) startClient(ctx context.Context, mode string, args ...string) (*helper, error) {
	exe, err := benchExe()
	if err != nil {
		return nil, err
	}
	return startHelper(ctx, e.client, exe, append([]string{"bench", "client", mode}, args...)...)
}

func startHelper(ctx context.Context, ns *tun.Namespace, name string, args ...string) (*helper, error) {
	cmd := ns.Command(ctx, name, args...)
	h := &helper{cmd: cmd, done: make(chan error, 1)}
	cmd.Stderr = &h.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var err error
	if h.stdout, err = cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting %s: %w", name, err)
	}
	return h, nil
}

// result reads the helper's JSON result and waits for it to exit.
func (h *helper) result() (benchClientResult, error) {
	var r benchClientResult
	derr := json.NewDecoder(h.stdout).Decode(&r)
	h.stdin.Close()
	werr := h.cmd.Wait()
	if werr != nil {
		return r, fmt.Errorf("%v: %s", werr, strings.TrimSpace(h.stderr.String()))
	}
	if derr != nil {
		return r, fmt.Errorf("reading the client's result: %v: %s", derr, strings.TrimSpace(h.stderr.String()))
	}
	return r, nil
}

// output reads all of a tool's stdout and waits for it to exit.
func (h *helper) output() (string, error) {
	b, rerr := io.ReadAll(bufio.NewReader(h.stdout))
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		return string(b), fmt.Errorf("%v: %s", err, strings.TrimSpace(h.stderr.String()))
	}
	return string(b), rerr
}

// kill stops the helper (by its PID) and reaps it.
func (h *helper) kill() {
	h.stdin.Close()
	if h.cmd.Process != nil {
		h.cmd.Process.Kill()
	}
	h.cmd.Wait()
}

// runClient runs a client mode to completion.
func (e *benchEnv) runClient(ctx context.Context, mode string, args ...string) (benchClientResult, error) {
	h, err := e.startClient(ctx, mode, args...)
	if err != nil {
		return benchClientResult{}, err
	}
	r, err := h.result()
	if err != nil {
		return r, fmt.Errorf("client %s on %s: %w", mode, e.stack, err)
	}
	return r, nil
}

// kernelCC is the congestion control the kernel's TCP runs by default
// here (net.ipv4.tcp_congestion_control: BBR on some distributions' kernels,
// CUBIC upstream), for ustack to run the same when it knows it, and CUBIC
// otherwise. Loss figures depend on it more than on anything else: BBR
// does not take random loss for congestion.
func kernelCC() string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	name := strings.TrimSpace(string(b))
	if err != nil || cc.Valid(name) != nil {
		return "cubic"
	}
	return name
}
