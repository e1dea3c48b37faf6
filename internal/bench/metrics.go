package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack/link"
	"ustack/tun"

	"golang.org/x/sys/unix"
)

// metricInfo describes one figure of the report.
type metricInfo struct {
	name   string
	unit   string
	higher bool // higher is better
	label  string
}

// benchMetrics are the figures, in report order (the JSON names are fixed).
var benchMetrics = []metricInfo{
	{"upload_gbps", "Gbit/s", true, "upload, client to server"},
	{"upload_ipv6_gbps", "Gbit/s", true, "upload over IPv6"},
	{"download_gbps", "Gbit/s", true, "download, server to client"},
	{"download_ipv6_gbps", "Gbit/s", true, "download over IPv6"},
	{"http_rps", "req/s", true, "HTTP/1.1 keep-alive requests"},
	{"http_ipv6_rps", "req/s", true, "HTTP/1.1 keep-alive requests over IPv6"},
	{"http_conn_per_s", "conn/s", true, "HTTP/1.1 new connections (Connection: close)"},
	{"https_handshakes_per_s", "handshakes/s", true, "HTTPS full handshakes (RSA key exchange)"},
	{"https_rps", "req/s", true, "HTTPS keep-alive requests"},
	{"serve_http_rps", "req/s", true, "`ustack serve --http`: keep-alive requests for its connection page (kernel, gVisor: the bench server)"},
	{"serve_http_ipv6_rps", "req/s", true, "`ustack serve --http`: keep-alive requests over IPv6 (kernel, gVisor: the bench server)"},
	{"serve_conn_per_s", "conn/s", true, "`ustack serve --http`: new connections (kernel, gVisor: the bench server)"},
	{"serve_https_rps", "req/s", true, "`ustack serve --https --kex rsa`: keep-alive requests (kernel, gVisor: the bench server)"},
	{"serve_q1_http_rps", "req/s", true, "`ustack serve --queues 1`: HTTP keep-alive requests, wrk -t2 -c64 (ustack only)"},
	{"serve_q2_http_rps", "req/s", true, "`ustack serve --queues 2`: the same with two TUN queues, a reader each (ustack only)"},
	{"serve_queues_gain", "×", true, "`--queues 2` over `--queues 1`, median of each round's pair (ustack only)"},
	{"serve_q2_min_share", "%", true, "`--queues 2`: the less used queue's share of the packets read; 50 is even (ustack only)"},
	{"echo_rtt_p50_us", "µs", false, "1-byte echo round trip, median"},
	{"echo_rtt_p99_us", "µs", false, "1-byte echo round trip, 99th percentile"},
	{"echo_rtt_p50_same_cpu_us", "µs", false, "1-byte echo round trip, median, client and server on one CPU"},
	{"echo_rtt_p50_cross_cpu_us", "µs", false, "1-byte echo round trip, median, client and server on two CPUs"},
	{"bytes_per_idle_conn", "bytes", false, "server memory per idle established connection"},
	{"goodput_loss1_gbps", "Gbit/s", true, "download goodput at 1% loss"},
	{"goodput_loss5_gbps", "Gbit/s", true, "download goodput at 5% loss"},
	{"goodput_up_loss1_gbps", "Gbit/s", true, "upload goodput at 1% loss (the stack receives)"},
	{"goodput_up_loss5_gbps", "Gbit/s", true, "upload goodput at 5% loss (the stack receives)"},
	{"tun_limit_gbps", "Gbit/s", true, "TUN path limit: read and drop (same for every stack)"},
}

func metricByName(name string) (metricInfo, bool) {
	for _, m := range benchMetrics {
		if m.name == name {
			return m, true
		}
	}
	return metricInfo{}, false
}

// measurement is one thing run per stack (or once, for the TUN limit) in
// each round; it yields one or more metrics.
type measurement struct {
	id       string
	metrics  []string
	perStack bool
	run      func(b *bench, ctx context.Context, stack string, round int) (map[string]float64, error)
}

var benchMeasurements = []measurement{
	{"tun_limit", []string{"tun_limit_gbps"}, false, (*bench).measureTUNLimit},
	{"upload", []string{"upload_gbps"}, true, onEnv((*bench).measureUpload)},
	{"upload6", []string{"upload_ipv6_gbps"}, true, onEnv6((*bench).measureUpload, "upload_gbps", "upload_ipv6_gbps")},
	{"download", []string{"download_gbps"}, true, onEnv((*bench).measureDownload)},
	{"download6", []string{"download_ipv6_gbps"}, true, onEnv6((*bench).measureDownload, "download_gbps", "download_ipv6_gbps")},
	{"http", []string{"http_rps"}, true, onEnv((*bench).measureHTTP)},
	{"http6", []string{"http_ipv6_rps"}, true, onEnv6((*bench).measureHTTP, "http_rps", "http_ipv6_rps")},
	{"http_conn", []string{"http_conn_per_s"}, true, onEnv((*bench).measureHTTPConn)},
	{"https_handshakes", []string{"https_handshakes_per_s"}, true, onEnv((*bench).measureHandshakes)},
	{"https", []string{"https_rps"}, true, onEnv((*bench).measureHTTPS)},
	{"serve", []string{"serve_http_rps", "serve_conn_per_s", "serve_https_rps"}, true, (*bench).measureServe},
	{"serve6", []string{"serve_http_ipv6_rps"}, true, (*bench).measureServe6},
	{"echo", []string{"echo_rtt_p50_us", "echo_rtt_p99_us"}, true, onEnv((*bench).measureEcho)},
	{"echo_pinned", []string{"echo_rtt_p50_same_cpu_us", "echo_rtt_p50_cross_cpu_us"}, true, onEnv((*bench).measureEchoPinned)},
	{"serve_queues", queueMetrics, true, (*bench).measureServeQueues},
	{"idle", []string{"bytes_per_idle_conn"}, true, onEnv((*bench).measureIdle)},
	{"loss1", []string{"goodput_loss1_gbps"}, true, (*bench).measureLoss1},
	{"loss5", []string{"goodput_loss5_gbps"}, true, (*bench).measureLoss5},
	{"up_loss1", []string{"goodput_up_loss1_gbps"}, true, (*bench).measureLossUp1},
	{"up_loss5", []string{"goodput_up_loss5_gbps"}, true, (*bench).measureLossUp5},
}

// onEnv runs a measurement in a fresh environment for the stack, without
// loss, torn down afterwards.
func onEnv(m func(b *bench, ctx context.Context, env *benchEnv) (map[string]float64, error)) func(*bench, context.Context, string, int) (map[string]float64, error) {
	return func(b *bench, ctx context.Context, stack string, _ int) (map[string]float64, error) {
		env, err := b.env(stack, 0, 0)
		if err != nil {
			return nil, err
		}
		defer env.Close()
		return m(b, ctx, env)
	}
}

// onEnv6 is onEnv over IPv6: the measurement m, whose figure is named
// from, runs in a fresh IPv6 environment and yields it as to.
func onEnv6(m func(b *bench, ctx context.Context, env *benchEnv) (map[string]float64, error), from, to string) func(*bench, context.Context, string, int) (map[string]float64, error) {
	return func(b *bench, ctx context.Context, stack string, _ int) (map[string]float64, error) {
		env, err := newBenchEnv(envConfig{stack: stack, tls: b.tls, v6: true})
		if err != nil {
			return nil, err
		}
		defer env.Close()
		vals, err := m(b, ctx, env)
		if err != nil {
			return nil, err
		}
		return map[string]float64{to: vals[from]}, nil
	}
}

func (b *bench) env(stack string, loss float64, seed int64) (*benchEnv, error) {
	return newBenchEnv(envConfig{stack: stack, loss: loss, seed: seed, tls: b.tls})
}

func gbps(bytes int64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(bytes) * 8 / seconds / 1e9
}

// profile runs f under the CPU profiler when --profile asked for it: each
// measurement of the first round on ustack and gVisor (the kernel's work is
// not in this process). The clients are other processes, so the profile is
// the server stack's (and its Go servers').
func (b *bench) profile(stack, what string, round int, f func() (map[string]float64, error)) (map[string]float64, error) {
	if b.p.ProfileDir == "" || round != 0 || stack == stackKernel || stack == "" {
		return f()
	}
	name := filepath.Join(b.p.ProfileDir, stack+"-"+what+".pprof")
	pf, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	if err := pprof.StartCPUProfile(pf); err != nil {
		return nil, err
	}
	vals, err := f()
	pprof.StopCPUProfile()
	b.profiles = append(b.profiles, name)
	return vals, err
}

func (b *bench) measureUpload(ctx context.Context, env *benchEnv) (map[string]float64, error) {
	return b.measureBulk(ctx, env, "upload", benchPortDiscard)
}

func (b *bench) measureDownload(ctx context.Context, env *benchEnv) (map[string]float64, error) {
	return b.measureBulk(ctx, env, "download", benchPortSource)
}

// measureBulk runs the client mode (upload or download) against the
// service on port, and yields mode_gbps: for b.p.Duration, or for
// b.p.Bytes when --bytes asked for a size. A fixed size made the bulk rows
// noisy: 2 GiB lasts under a second at 20-45 Gbit/s, so the connection's
// start weighed on the figure, and single-round download ratios of the
// same code ranged 0.44-0.85 (iperf3 times its runs for the same reason).
func (b *bench) measureBulk(ctx context.Context, env *benchEnv, mode string, port int) (map[string]float64, error) {
	size := []string{"--bytes", strconv.FormatInt(b.p.Bytes, 10)}
	if b.p.Bytes == 0 {
		size = []string{"--duration", b.p.Duration.String()}
	}
	r, err := env.runClient(ctx, mode, append([]string{"--addr", env.serverAddr(port)}, size...)...)
	if err != nil {
		return nil, err
	}
	b.segmentNote(env)
	return map[string]float64{mode + "_gbps": gbps(r.Bytes, r.Seconds)}, nil
}

// segmentNote records how many segments the server stack took in and sent
// out: for the lead reading a profile, the ACK ratio of a bulk transfer.
func (b *bench) segmentNote(env *benchEnv) {
	switch {
	case env.ust != nil:
		st := env.ust.Stats()
		b.note("ustack: %d segments in, %d out (%.3f out per in)", st.TCPSegsIn, st.TCPSegsOut, float64(st.TCPSegsOut)/float64(max(st.TCPSegsIn, 1)))
	case env.gv != nil:
		st := env.gv.Stats()
		b.note("gvisor: %d segments in, %d out (%.3f out per in)", st.SegmentsRcvd, st.SegmentsSent, float64(st.SegmentsSent)/float64(max(st.SegmentsRcvd, 1)))
	}
}

// wrk's summary lines.
var (
	wrkRPS       = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkSockErrs  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx    = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkRequests  = regexp.MustCompile(`(\d+) requests in`)
	wrkVersionRe = regexp.MustCompile(`wrk ([^ ]+)`)
)

// runWrk runs wrk in the client namespace and returns requests per second.
// Errors (refused or timed-out connections, non-2xx answers) beyond 1% of
// the requests fail the run.
func (b *bench) runWrk(ctx context.Context, env *benchEnv, url string, conns int, extra ...string) (float64, error) {
	args := append([]string{"-t", "2", "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(b.p.Duration.Seconds())), "--timeout", "5s"}, extra...)
	args = append(args, url)
	h, err := startHelper(ctx, env.client, "wrk", args...)
	if err != nil {
		return 0, err
	}
	out, err := h.output()
	if err != nil {
		return 0, fmt.Errorf("wrk on %s: %w", env.stack, err)
	}
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk on %s: no Requests/sec in its output:\n%s", env.stack, out)
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	var reqs, bad int64
	if m := wrkRequests.FindStringSubmatch(out); m != nil {
		reqs, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		bad += n
	}
	if m := wrkSockErrs.FindStringSubmatch(out); m != nil {
		for _, s := range []string{m[1], m[4]} { // connect and timeout; read errors are closes
			n, _ := strconv.ParseInt(s, 10, 64)
			bad += n
		}
	}
	if reqs == 0 || bad*100 > reqs {
		return 0, fmt.Errorf("wrk on %s: %d errors in %d requests:\n%s", env.stack, bad, reqs, out)
	}
	return rps, nil
}

func (b *bench) measureHTTP(ctx context.Context, env *benchEnv) (map[string]float64, error) {
	v, err := b.runWrk(ctx, env, "http://"+env.serverAddr(benchPortHTTP)+"/", 64)
	return map[string]float64{"http_rps": v}, err
}

func (b *bench) measureHTTPConn(ctx context.Context, env *benchEnv) (map[string]float64, error) {
	v, err := b.runWrk(ctx, env, "http://"+env.serverAddr(benchPortHTTP)+"/", 32, "-H", "Connection: close")
	if out, err := env.client.Command(ctx, "ss", "-Htan", "state", "time-wait").Output(); err == nil {
		b.note("client side: %d connections in TIME-WAIT after the run", strings.Count(string(out), "\n"))
	}
	if env.ust != nil {
		st := env.ust.Stats()
		b.note("ustack: %d passive opens, %d established, %d connections left (TIME-WAIT), %d SYN cookies sent, %d listen overflows, %d segments for no connection, %d resets sent",
			st.TCPPassiveOpens, st.TCPEstablished, st.TCPConns, st.TCPSynCookiesSent, st.TCPListenOverflow, st.TCPNoConnection, st.TCPResetsSent)
	}
	return map[string]float64{"http_conn_per_s": v}, err
}

func (b *bench) measureHTTPS(ctx context.Context, env *benchEnv) (map[string]float64, error) {
	v, err := b.runWrk(ctx, env, "https://"+env.serverAddr(benchPortHTTPS)+"/", 64)
	return map[string]float64{"https_rps": v}, err
}

func (b *bench) measureHandshakes(ctx context.Context, env *benchEnv) (map[string]float64, error) {
	r, err := env.runClient(ctx, "handshakes", "--addr", env.serverAddr(benchPortHTTPS), "--duration", b.p.Duration.String(), "--conc", "8")
	if err != nil {
		return nil, err
	}
	if r.Errors*100 > r.Count {
		return nil, fmt.Errorf("handshakes on %s: %d failed, %d completed", env.stack, r.Errors, r.Count)
	}
	return map[string]float64{"https_handshakes_per_s": float64(r.Count) / r.Seconds}, nil
}

func (b *bench) measureEcho(ctx context.Context, env *benchEnv) (map[string]float64, error) {
	ru0, _ := getrusage()
	r, err := env.runClient(ctx, "echo", "--addr", env.serverAddr(benchPortEcho), "--count", strconv.Itoa(b.p.EchoCount), "--warmup", strconv.Itoa(b.p.EchoCount/10))
	if err != nil {
		return nil, err
	}
	if len(r.Samples) == 0 {
		return nil, fmt.Errorf("echo on %s: no samples", env.stack)
	}
	if ru1, err := getrusage(); err == nil && r.Count > 0 {
		n := float64(b.p.EchoCount + b.p.EchoCount/10)
		b.note("server process: %.2f context switches and %.1f µs of CPU per round trip (the kernel's column: its Go server only)",
			float64(ru1.switches-ru0.switches)/n, (ru1.cpu-ru0.cpu).Seconds()*1e6/n)
	}
	b.echoSamples[env.stack] = append(b.echoSamples[env.stack], r.Samples...)
	s := slices.Clone(r.Samples)
	slices.Sort(s)
	return map[string]float64{
		"echo_rtt_p50_us": float64(percentile(s, 0.50)) / 1e3,
		"echo_rtt_p99_us": float64(percentile(s, 0.99)) / 1e3,
	}, nil
}

// rusage is what this process has spent so far.
type rusage struct {
	switches int64 // voluntary and involuntary context switches, every thread
	cpu      time.Duration
}

func getrusage() (rusage, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return rusage{}, err
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return rusage{switches: ru.Nvcsw + ru.Nivcsw, cpu: cpu}, nil
}

// percentile of sorted samples, nearest rank.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// memSnapshot is what the idle-connection figure compares.
type memSnapshot struct {
	goBytes   int64 // heap spans in use plus goroutine stacks of this process
	slabBytes int64 // the kernel's slab (/proc/meminfo Slab), all of it
}

func takeMemSnapshot() (memSnapshot, error) {
	for range 2 {
		runtime.GC()
	}
	time.Sleep(300 * time.Millisecond) // let RCU-freed kernel objects go
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	slab, err := readMeminfo("Slab")
	return memSnapshot{goBytes: int64(ms.HeapInuse + ms.StackInuse), slabBytes: slab}, err
}

func readMeminfo(key string) (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			break
		}
		n, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return 0, err
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("/proc/meminfo: no %s", key)
}

// measureIdle opens --conns idle connections from a client process and
// compares the server side's memory before and after. In-process stacks
// (ustack, gVisor): this process's heap in use plus goroutine stacks. The
// kernel: the same (its Go server's share) plus the growth of the kernel's
// slab, less the client sockets' share of that growth, which the ustack
// and gVisor runs measure (there the slab holds the client side only); see
// finishIdle.
func (b *bench) measureIdle(ctx context.Context, env *benchEnv) (map[string]float64, error) {
	n := b.p.Conns
	before, err := takeMemSnapshot()
	if err != nil {
		return nil, err
	}
	h, err := env.startClient(ctx, "idle", "--addr", env.serverAddr(benchPortIdle), "--count", strconv.Itoa(n), "--conc", "16")
	if err != nil {
		return nil, err
	}
	defer h.kill()
	var r benchClientResult
	if err := json.NewDecoder(h.stdout).Decode(&r); err != nil || !r.Ready {
		h.kill()
		return nil, fmt.Errorf("idle client on %s: not ready (%v): %s", env.stack, err, strings.TrimSpace(h.stderr.String()))
	}
	if !waitfor.Within(30*time.Second, func() bool { return env.srv.Held() >= int64(n) || ctx.Err() != nil }) || ctx.Err() != nil {
		return nil, fmt.Errorf("idle on %s: the server accepted %d of %d connections", env.stack, env.srv.Held(), n)
	}
	after, err := takeMemSnapshot()
	if err != nil {
		return nil, err
	}
	goPer := float64(after.goBytes-before.goBytes) / float64(n)
	slabPer := float64(after.slabBytes-before.slabBytes) / float64(n)
	b.idleRaw = append(b.idleRaw, idleRaw{stack: env.stack, goPer: goPer, slabPer: slabPer})
	b.note("per connection: Go heap in use + stacks %.0f bytes, kernel slab %.0f bytes (machine-wide)", goPer, slabPer)
	if env.stack == stackKernel {
		// Completed in finishIdle, once the client's share is known.
		return map[string]float64{"bytes_per_idle_conn": goPer + slabPer}, nil
	}
	return map[string]float64{"bytes_per_idle_conn": goPer}, nil
}

type idleRaw struct {
	stack          string
	goPer, slabPer float64
}

// finishIdle replaces the kernel's idle-connection runs by its Go share
// plus its slab growth less the client side's slab per connection (the
// median of the ustack and gVisor runs, where all slab growth is the
// client's).
func (b *bench) finishIdle() {
	var client []float64
	for _, r := range b.idleRaw {
		if r.stack != stackKernel {
			client = append(client, r.slabPer)
		}
	}
	if len(client) == 0 {
		return
	}
	c := median(client)
	b.clientSlabPerConn = c
	k := benchKey{stackKernel, "bytes_per_idle_conn"}
	var runs []float64
	for _, r := range b.idleRaw {
		if r.stack == stackKernel {
			runs = append(runs, r.goPer+r.slabPer-c)
		}
	}
	if len(runs) > 0 {
		b.runs[k] = runs
	}
}

// measureTUNLimit: a TUN in a namespace, read and dropped in batches by
// this process (through tun.Device, the same reader ustack and gVisor
// use), while a client floods it with UDP (GSO, 1500-byte packets). The
// figure is the IP bytes read per second.
func (b *bench) measureTUNLimit(ctx context.Context, _ string, _ int) (map[string]float64, error) {
	ns, err := tun.NewNamespace("bench_tun")
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	dev, err := ns.OpenTUN(tun.Config{Name: "bench0", MTU: benchMTU, HostAddr: netip.PrefixFrom(benchClientAddr, benchPrefixLen)})
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	var read atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		bufs, sizes := link.ReadBuffers(dev.BatchSize(), benchMTU)
		for {
			n, err := dev.ReadBatch(bufs, sizes, link.Headroom)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var sum int
			for _, s := range sizes[:n] {
				sum += s
			}
			read.Add(int64(sum))
		}
	}()
	defer func() { dev.Close(); <-done }()
	exe, err := benchExe()
	if err != nil {
		return nil, err
	}
	const warm = 500 * time.Millisecond
	addr := netip.AddrPortFrom(benchServerAddr, benchPortDiscard).String()
	h, err := startHelper(ctx, ns, exe, "bench", "client", "udpflood", "--addr", addr, "--duration", (warm + b.p.Duration + 300*time.Millisecond).String())
	if err != nil {
		return nil, err
	}
	defer h.kill()
	select {
	case <-time.After(warm):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c0, t0 := read.Load(), time.Now()
	select {
	case <-time.After(b.p.Duration):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c1, t1 := read.Load(), time.Now()
	if _, err := h.result(); err != nil {
		return nil, fmt.Errorf("udp flood: %w", err)
	}
	if c1 == c0 {
		return nil, errors.New("tun limit: nothing arrived on the TUN")
	}
	return map[string]float64{"tun_limit_gbps": gbps(c1-c0, t1.Sub(t0).Seconds())}, nil
}
