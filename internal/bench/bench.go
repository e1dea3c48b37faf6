// Package bench is `ustack bench`: it runs the same servers (package
// services) on the kernel's TCP, on ustack and on gVisor's netstack,
// reaches them with the same kernel-side clients (wrk and `ustack bench
// client`, client.go), and reports the median of several interleaved runs
// of each figure with the ratios ustack/kernel and ustack/gVisor. env.go
// builds the namespaces, metrics.go measures, report.go and plot.go write
// the report.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"ustack/tlslite"
)

// Params are the sizes of a run.
type Params struct {
	Quick      bool
	Runs       int
	Bytes      int64         // upload and download size; 0: for Duration
	Duration   time.Duration // timed figures: wrk, handshakes, loss, TUN limit
	Conns      int           // idle connections
	EchoCount  int           // measured echo round trips per run
	Only       map[string]bool
	ProfileDir string
}

// Defaults are the sizes of a full run, or with quick of a smoke test.
func Defaults(quick bool) Params {
	if quick {
		return Params{Quick: true, Runs: 1, Duration: 2 * time.Second, Conns: 1000, EchoCount: 2000}
	}
	return Params{Runs: 5, Duration: 10 * time.Second, Conns: 10000, EchoCount: 20000}
}

type benchKey struct{ stack, metric string }

// bench is one invocation's state.
type bench struct {
	p   Params
	tls *tlslite.Dir
	tty bool // the progress goes to a terminal

	runs        map[benchKey][]float64
	byRound     map[benchKey]map[int]float64 // the same figures by round, for the IPv6/IPv4 ratios
	failures    map[benchKey][]string
	echoSamples map[string][]int64 // every measured round trip, per stack
	lossCounts  map[benchKey][]lossSample

	notes []string // the current step's remarks, printed after it
	log   []string // every remark, for the report

	idleRaw           []idleRaw
	clientSlabPerConn float64
	profiles          []string

	// The queues rows (queuerows.go): extra flags for the serve that
	// serveEnv starts next, and each queue's packets read and written,
	// as the last serve stopped reported them.
	serveArgs  []string
	queueSplit [][2]uint64
}

// Output says where a run's results go.
type Output struct {
	JSON    string // write the results as JSON to this file
	Report  string // write benchmarks.md and plots to this directory
	Command string // the command line, for the report
	TTY     bool   // the progress (stderr) is a terminal
}

// Check reports what stops a run on this machine: root, ip and wrk.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("bench: needs root (network namespaces, TUN devices, veth pairs): run it with sudo")
	}
	for _, tool := range []string{"ip", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("bench: %s not found in PATH (install iproute2 and wrk)", tool)
		}
	}
	return nil
}

// Run measures every stack, prints the table on stdout and the progress on
// stderr, and writes what out asks for. It stops early when ctx ends.
func Run(ctx context.Context, p Params, out Output, stdout, stderr io.Writer) error {
	if p.ProfileDir != "" {
		if err := os.MkdirAll(p.ProfileDir, 0o755); err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
	}
	tlsDir, err := os.MkdirTemp("", "ustack-bench-tls-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tlsDir)
	d, err := tlslite.LoadOrCreateDir(tlsDir, []net.IP{net.IP(benchServerAddr.AsSlice())}, nil)
	if err != nil {
		return err
	}
	if p.Only != nil {
		addIPv4Twins(p.Only)
	}
	b := &bench{
		p: p, tls: d, tty: out.TTY,
		runs:        map[benchKey][]float64{},
		byRound:     map[benchKey]map[int]float64{},
		failures:    map[benchKey][]string{},
		echoSamples: map[string][]int64{},
		lossCounts:  map[benchKey][]lossSample{},
	}
	machine := benchMachine(out.Command, p)
	runErr := b.runAll(ctx, stderr)
	machine["loadavg_after"] = loadAvg()
	b.finishIdle()
	results := b.results()
	ratios := b.ipv6Ratios()
	printBenchTable(stdout, results)
	printIPv6Table(stdout, ratios)
	b.printLossCounters(stdout)
	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	if out.JSON != "" {
		if err := writeBenchJSON(out.JSON, machine, results, ratios, b.lossJSON()); err != nil {
			errs = append(errs, err)
		}
	}
	if out.Report != "" && runErr == nil {
		if err := b.writeReport(out.Report, machine, results); err != nil {
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

// IsMetric reports whether name is a figure's name.
func IsMetric(name string) bool {
	_, ok := metricByName(name)
	return ok
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
	for r := range b.p.Runs {
		for _, m := range benchMeasurements {
			if b.p.Only != nil && !slices.ContainsFunc(m.metrics, func(n string) bool { return b.p.Only[n] }) {
				continue
			}
			if !m.perStack {
				steps = append(steps, step{r, m, ""})
				continue
			}
			for i := range benchStacks {
				s := benchStacks[(i+r)%len(benchStacks)]
				if ustackOnly(m.metrics[0]) && s != stackUstack {
					continue
				}
				steps = append(steps, step{r, m, s})
			}
		}
	}
	return steps
}

// runAll runs the plan with a progress line on w. A failed run is reported
// and recorded; the others go on. It stops early only when ctx ends.
func (b *bench) runAll(ctx context.Context, w io.Writer) error {
	steps := b.plan()
	tty := b.tty
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
		head := fmt.Sprintf("[%d/%d %s%s] round %d/%d %-16s %-6s", i+1, len(steps), time.Since(start).Round(time.Second), eta, st.round+1, b.p.Runs, st.m.id, who)
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
			v, ok := vals[name]
			if !ok {
				continue // not asked for (--only)
			}
			mi, _ := metricByName(name)
			for _, s := range stacks {
				k := benchKey{s, name}
				b.runs[k] = append(b.runs[k], v)
				if b.byRound[k] == nil {
					b.byRound[k] = map[int]float64{}
				}
				b.byRound[k][st.round] = v
			}
			parts = append(parts, fmt.Sprintf("%s %s %s", name, formatValue(v), mi.unit))
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
		if b.p.Only != nil && !b.p.Only[m.name] {
			continue
		}
		for _, s := range benchStacks {
			if ustackOnly(m.name) && s != stackUstack {
				continue
			}
			k := benchKey{s, m.name}
			r := benchResult{Stack: s, Metric: m.name, Unit: m.unit, Errors: b.failures[k]}
			r.Runs, r.Value = medianOf(b.runs[k])
			out = append(out, r)
		}
	}
	return out
}

// medianOf returns runs (never nil, for the JSON) and their median, nil
// when there are none.
func medianOf(runs []float64) ([]float64, *float64) {
	if len(runs) == 0 {
		return []float64{}, nil
	}
	v := median(runs)
	return runs, &v
}

func findResult(rs []benchResult, stack, metric string) (float64, bool) {
	for _, r := range rs {
		if r.Stack == stack && r.Metric == metric && r.Value != nil {
			return *r.Value, true
		}
	}
	return 0, false
}

func writeBenchJSON(name string, machine map[string]any, results []benchResult, ratios []familyRatio, loss []lossJSON) error {
	b, err := json.MarshalIndent(struct {
		Machine      map[string]any `json:"machine"`
		Results      []benchResult  `json:"results"`
		IPv6Ratios   []familyRatio  `json:"ipv6_ratios,omitempty"`
		LossCounters []lossJSON     `json:"loss_counters,omitempty"`
	}{machine, results, ratios, loss}, "", "  ")
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

// MetricNames lists the figures, in report order.
func MetricNames() []string {
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
