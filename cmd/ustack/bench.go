package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"ustack/tlslite"
)

// `ustack bench` runs the same servers (bench_server.go) on the kernel's
// TCP, on ustack and on gVisor's netstack, reaches them with the same
// kernel-side clients (wrk and `ustack bench client`), and reports the
// median of several interleaved runs of each figure with the ratios
// ustack/kernel and ustack/gVisor. bench_env.go builds the namespaces,
// bench_metrics.go measures, bench_report.go and bench_plot.go write the
// report.

// benchParams are the sizes of a run.
type benchParams struct {
	quick      bool
	runs       int
	bytes      int64         // upload and download size
	duration   time.Duration // timed figures: wrk, handshakes, loss, TUN limit
	conns      int           // idle connections
	echoCount  int           // measured echo round trips per run
	only       map[string]bool
	profileDir string
}

type benchKey struct{ stack, metric string }

// bench is one invocation's state.
type bench struct {
	p   benchParams
	tls *tlslite.Dir

	runs        map[benchKey][]float64
	failures    map[benchKey][]string
	echoSamples map[string][]int64 // every measured round trip, per stack

	notes []string // the current step's remarks, printed after it
	log   []string // every remark, for the report

	idleRaw           []idleRaw
	clientSlabPerConn float64
	profiles          []string
}

func cmdBench(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "client" {
		return cmdBenchClient(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("ustack bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "a short run: one round, smaller sizes (a smoke test)")
	only := fs.String("only", "", "measure only these comma-separated `METRIC`s (e.g. upload_gbps,echo_rtt_p99_us)")
	jsonOut := fs.String("json", "", "write the results as JSON to `FILE`")
	report := fs.String("report", "", "write benchmarks.md and plots (bench/*.svg) to `DIR`")
	runs := fs.Int("runs", 0, "rounds; each figure is the median of its runs (default 5, 1 with --quick)")
	size := fs.Int64("bytes", 0, "bytes per upload and download (default 2 GiB, 256 MiB with --quick)")
	dur := fs.Duration("duration", 0, "length of each timed run: wrk, handshakes, loss, TUN limit (default 10s, 2s with --quick)")
	conns := fs.Int("conns", 0, "idle connections for bytes_per_idle_conn (default 10000, 1000 with --quick)")
	profile := fs.String("profile", "", "write CPU profiles of the ustack and gVisor server process during each measurement of the first round to `DIR` (STACK-MEASUREMENT.pprof)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: ustack bench [flags]

Kernel vs ustack vs gVisor netstack: the same servers on each stack, reached
by the same kernel-side clients (wrk and this program) from a network
namespace. Needs root; creates and deletes its own namespaces (198.18.0.0/15
addresses only). Metrics: %s.

`, strings.Join(metricNames(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr("%v (see 'ustack bench -h')", err)
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q: bench takes only flags (see 'ustack bench -h')", fs.Arg(0))
	}
	p := benchParams{quick: *quick, runs: 5, bytes: 2 << 30, duration: 10 * time.Second, conns: 10000, echoCount: 20000, profileDir: *profile}
	if p.quick {
		p.runs, p.bytes, p.duration, p.conns, p.echoCount = 1, 256<<20, 2*time.Second, 1000, 2000
	}
	if *runs < 0 || *size < 0 || *dur < 0 || *conns < 0 {
		return usageErr("--runs, --bytes, --duration and --conns must not be negative")
	}
	if *runs > 0 {
		p.runs = *runs
	}
	if *size > 0 {
		p.bytes = *size
	}
	if *dur > 0 {
		if *dur < time.Second {
			return usageErr("--duration %v: at least 1s (wrk counts whole seconds)", *dur)
		}
		p.duration = *dur
	}
	if *conns > 0 {
		if *conns > 15000 {
			return usageErr("--conns %d: at most 15000 (one file descriptor each on both ends, and the kernel server's are in this process)", *conns)
		}
		p.conns = *conns
	}
	if *only != "" {
		p.only = map[string]bool{}
		for name := range strings.SplitSeq(*only, ",") {
			name = strings.TrimSpace(name)
			if _, ok := metricByName(name); !ok {
				return usageErr("--only: unknown metric %q (metrics: %s)", name, strings.Join(metricNames(), ", "))
			}
			p.only[name] = true
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("bench: needs root (network namespaces, TUN devices, veth pairs): run it with sudo")
	}
	for _, tool := range []string{"ip", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("bench: %s not found in PATH (install iproute2 and wrk)", tool)
		}
	}
	if p.profileDir != "" {
		if err := os.MkdirAll(p.profileDir, 0o755); err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	tlsDir, err := os.MkdirTemp("", "ustack-bench-tls-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tlsDir)
	d, err := tlslite.LoadOrCreateDir(tlsDir, []net.IP{net.IP(benchServerAddr.AsSlice())}, nil)
	if err != nil {
		return err
	}
	b := &bench{
		p: p, tls: d,
		runs:        map[benchKey][]float64{},
		failures:    map[benchKey][]string{},
		echoSamples: map[string][]int64{},
	}
	command := "ustack bench " + strings.Join(args, " ")
	machine := benchMachine(strings.TrimSpace(command), p)
	runErr := b.runAll(ctx, stderr)
	machine["loadavg_after"] = loadAvg()
	b.finishIdle()
	results := b.results()
	printBenchTable(stdout, results)
	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	if *jsonOut != "" {
		if err := writeBenchJSON(*jsonOut, machine, results); err != nil {
			errs = append(errs, err)
		}
	}
	if *report != "" && runErr == nil {
		if err := b.writeReport(*report, machine, results); err != nil {
			errs = append(errs, err)
		}
	}
	if len(b.profiles) > 0 {
		fmt.Fprintf(stdout, "\nCPU profiles (go tool pprof -top %s FILE): %s\n", mustExe(), strings.Join(b.profiles, " "))
	}
	if n := b.failureCount(); n > 0 {
		errs = append(errs, fmt.Errorf("bench: %d run(s) failed (see above)", n))
	}
	return errors.Join(errs...)
}

func mustExe() string {
	exe, err := benchExe()
	if err != nil {
		return "ustack"
	}
	return exe
}

// step is one measurement of one stack (or of the TUN) in one round.
type step struct {
	round int
	m     measurement
	stack string
}

// plan interleaves the stacks: every measurement runs on each stack back
// to back, in an order that rotates from round to round, so that drift
// (thermal, other load) hits all stacks alike.
func (b *bench) plan() []step {
	var steps []step
	for r := range b.p.runs {
		for _, m := range benchMeasurements {
			if b.p.only != nil && !slices.ContainsFunc(m.metrics, func(n string) bool { return b.p.only[n] }) {
				continue
			}
			if !m.perStack {
				steps = append(steps, step{r, m, ""})
				continue
			}
			for i := range benchStacks {
				steps = append(steps, step{r, m, benchStacks[(i+r)%len(benchStacks)]})
			}
		}
	}
	return steps
}

// runAll runs the plan with a progress line on w. A failed run is reported
// and recorded; the others go on. It stops early only when ctx ends.
func (b *bench) runAll(ctx context.Context, w io.Writer) error {
	steps := b.plan()
	tty := isTerminal(w)
	start := time.Now()
	for i, st := range steps {
		if ctx.Err() != nil {
			if tty {
				fmt.Fprintln(w)
			}
			return fmt.Errorf("bench: interrupted after %d of %d runs", i, len(steps))
		}
		who := st.stack
		if who == "" {
			who = "tun"
		}
		eta := ""
		if i > 0 {
			left := time.Duration(float64(time.Since(start)) / float64(i) * float64(len(steps)-i))
			eta = fmt.Sprintf(", ~%s left", left.Round(time.Second))
		}
		head := fmt.Sprintf("[%d/%d %s%s] round %d/%d %-16s %-6s", i+1, len(steps), time.Since(start).Round(time.Second), eta, st.round+1, b.p.runs, st.m.id, who)
		if tty {
			fmt.Fprintf(w, "\r\033[K%s ...", head)
		}
		t0 := time.Now()
		vals, err := b.profile(st.stack, st.m.id, st.round, func() (map[string]float64, error) {
			return st.m.run(b, ctx, st.stack, st.round)
		})
		took := time.Since(t0).Round(100 * time.Millisecond)
		stacks := []string{st.stack}
		if st.stack == "" {
			stacks = benchStacks // the TUN limit is a property of the path, listed for every stack
		}
		if err != nil && ctx.Err() != nil {
			if tty {
				fmt.Fprintln(w)
			}
			return fmt.Errorf("bench: interrupted after %d of %d runs", i, len(steps))
		}
		if err != nil {
			for _, name := range st.m.metrics {
				for _, s := range stacks {
					k := benchKey{s, name}
					b.failures[k] = append(b.failures[k], err.Error())
				}
			}
			if tty {
				fmt.Fprint(w, "\r\033[K")
			}
			fmt.Fprintf(w, "%s FAILED (%s): %v\n", head, took, err)
			continue
		}
		var parts []string
		for _, name := range st.m.metrics {
			mi, _ := metricByName(name)
			for _, s := range stacks {
				k := benchKey{s, name}
				b.runs[k] = append(b.runs[k], vals[name])
			}
			parts = append(parts, fmt.Sprintf("%s %s %s", name, formatValue(vals[name]), mi.unit))
		}
		if !tty {
			fmt.Fprintf(w, "%s %s (%s)\n", head, strings.Join(parts, ", "), took)
			for _, n := range b.notes {
				fmt.Fprintf(w, "    %s\n", n)
			}
		}
		for _, n := range b.notes {
			b.log = append(b.log, fmt.Sprintf("round %d, %s, %s: %s", st.round+1, st.m.id, who, n))
		}
		b.notes = b.notes[:0]
	}
	if tty {
		fmt.Fprintf(w, "\r\033[Kbench: %d runs in %s\n", len(steps), time.Since(start).Round(time.Second))
	}
	return nil
}

// note records a remark about the current step (shown unless the
// progress line is a terminal's).
func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

func (b *bench) failureCount() int {
	n := 0
	for _, f := range b.failures {
		n += len(f)
	}
	return n
}

// benchResult is one figure of the JSON output.
type benchResult struct {
	Stack  string    `json:"stack"`
	Metric string    `json:"metric"`
	Value  *float64  `json:"value"` // null when every run failed
	Unit   string    `json:"unit"`
	Runs   []float64 `json:"runs"`
	Errors []string  `json:"errors,omitempty"`
}

func (b *bench) results() []benchResult {
	var out []benchResult
	for _, m := range benchMetrics {
		if b.p.only != nil && !b.p.only[m.name] {
			continue
		}
		for _, s := range benchStacks {
			k := benchKey{s, m.name}
			r := benchResult{Stack: s, Metric: m.name, Unit: m.unit, Runs: b.runs[k], Errors: b.failures[k]}
			if r.Runs == nil {
				r.Runs = []float64{}
			}
			if len(r.Runs) > 0 {
				v := median(r.Runs)
				r.Value = &v
			}
			out = append(out, r)
		}
	}
	return out
}

func findResult(rs []benchResult, stack, metric string) (float64, bool) {
	for _, r := range rs {
		if r.Stack == stack && r.Metric == metric && r.Value != nil {
			return *r.Value, true
		}
	}
	return 0, false
}

func writeBenchJSON(name string, machine map[string]any, results []benchResult) error {
	b, err := json.MarshalIndent(struct {
		Machine map[string]any `json:"machine"`
		Results []benchResult  `json:"results"`
	}{machine, results}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	if err := os.WriteFile(name, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	return nil
}

// formatValue prints 3 significant digits, without exponent.
func formatValue(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// ratio is a/b, or "-".
func ratio(rs []benchResult, metric, a, b string) string {
	x, ok1 := findResult(rs, a, metric)
	y, ok2 := findResult(rs, b, metric)
	if !ok1 || !ok2 || y == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", x/y)
}

// printBenchTable writes the console table: medians and ratios.
func printBenchTable(w io.Writer, rs []benchResult) {
	fmt.Fprintf(w, "\n%-24s %10s %10s %10s  %-12s %14s %14s\n", "metric", "kernel", "ustack", "gvisor", "unit", "ustack/kernel", "ustack/gvisor")
	for _, m := range benchMetrics {
		var cells []string
		seen := false
		for _, s := range benchStacks {
			v, ok := findResult(rs, s, m.name)
			if ok {
				seen = true
				cells = append(cells, formatValue(v))
			} else {
				cells = append(cells, "-")
			}
		}
		if !seen && !slices.ContainsFunc(rs, func(r benchResult) bool { return r.Metric == m.name }) {
			continue
		}
		note := ""
		if !m.higher {
			note = " (lower is better)"
		}
		rk, rg := ratio(rs, m.name, stackUstack, stackKernel), ratio(rs, m.name, stackUstack, stackGVisor)
		if m.name == "tun_limit_gbps" {
			rk, rg, note = "", "", " (the path's, for every stack)"
		}
		fmt.Fprintf(w, "%-24s %10s %10s %10s  %-12s %14s %14s%s\n", m.name, cells[0], cells[1], cells[2], m.unit, rk, rg, note)
	}
}

func metricNames() []string {
	var names []string
	for _, m := range benchMetrics {
		names = append(names, m.name)
	}
	return names
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
