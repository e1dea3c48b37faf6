package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"ustack/internal/bench"
)

func cmdBench(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "client" {
		return cmdBenchClient(args[1:], stdout, stderr)
	}
	fs := newFlagSet("bench", fmt.Sprintf(`Usage: ustack bench [flags]

Kernel vs ustack vs gVisor netstack: the same servers on each stack, reached
by the same kernel-side clients (wrk and this program) from a network
namespace. Needs root; creates and deletes its own namespaces (198.18.0.0/15
and 2001:2::/48 addresses only). Metrics: %s.

`, strings.Join(bench.MetricNames(), ", ")), stderr)
	quick := fs.Bool("quick", false, "a short run: one round, smaller sizes (a smoke test)")
	only := fs.String("only", "", "measure only these comma-separated `METRIC`s (e.g. upload_gbps,echo_rtt_p99_us); an IPv6 one brings its IPv4 row, for their ratio")
	jsonOut := fs.String("json", "", "write the results as JSON to `FILE`")
	report := fs.String("report", "", "write benchmarks.md and plots (bench/*.svg) to `DIR`")
	runs := fs.Int("runs", 0, "rounds; each figure is the median of its runs (default 5, 1 with --quick)")
	size := fs.Int64("bytes", 0, "bytes per upload and download (default: each transfers for --duration instead)")
	dur := fs.Duration("duration", 0, "length of each timed run: bulk transfers, wrk, handshakes, loss, TUN limit (default 10s, 2s with --quick)")
	conns := fs.Int("conns", 0, "idle connections for bytes_per_idle_conn (default 10000, 1000 with --quick)")
	profile := fs.String("profile", "", "write CPU profiles of the ustack and gVisor server process during each measurement of the first round to `DIR` (STACK-MEASUREMENT.pprof)")
	if err := parseFlags(fs, args, "bench"); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q: bench takes only flags (see 'ustack bench -h')", fs.Arg(0))
	}
	p := bench.Defaults(*quick)
	p.ProfileDir = *profile
	if err := benchSizes(&p, *runs, *size, *dur, *conns, *only); err != nil {
		return err
	}
	if err := bench.Check(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := bench.Output{JSON: *jsonOut, Report: *report, TTY: isTerminal(stderr),
		Command: strings.TrimSpace("ustack bench " + strings.Join(args, " "))}
	return bench.Run(ctx, p, out, stdout, stderr)
}

// benchSizes applies the size flags that were given and checks them.
func benchSizes(p *bench.Params, runs int, size int64, dur time.Duration, conns int, only string) error {
	if runs < 0 || size < 0 || dur < 0 || conns < 0 {
		return usageErr("--runs, --bytes, --duration and --conns must not be negative")
	}
	if runs > 0 {
		p.Runs = runs
	}
	if size > 0 {
		p.Bytes = size
	}
	if dur > 0 {
		if dur < time.Second {
			return usageErr("--duration %v: at least 1s (wrk counts whole seconds)", dur)
		}
		p.Duration = dur
	}
	if conns > 0 {
		if conns > 15000 {
			return usageErr("--conns %d: at most 15000 (one file descriptor each on both ends, and the kernel server's are in this process)", conns)
		}
		p.Conns = conns
	}
	if only != "" {
		p.Only = map[string]bool{}
		for name := range strings.SplitSeq(only, ",") {
			name = strings.TrimSpace(name)
			if !bench.IsMetric(name) {
				return usageErr("--only: unknown metric %q (metrics: %s)", name, strings.Join(bench.MetricNames(), ", "))
			}
			p.Only[name] = true
		}
	}
	return nil
}

// cmdBenchClient is `ustack bench client MODE [flags]`: the bench's
// kernel-side clients, run as separate processes in the client namespace.
func cmdBenchClient(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("bench client: want a mode: %s", strings.Join(bench.ClientModes, ", "))
	}
	mode := args[0]
	fs := newFlagSet("bench client "+mode, "", stderr)
	var f bench.ClientConfig
	fs.StringVar(&f.Addr, "addr", "", "server `IP:PORT`")
	fs.Int64Var(&f.Bytes, "bytes", 0, "bytes to move (0 with --duration: for that long)")
	fs.DurationVar(&f.Duration, "duration", 0, "how long to run")
	fs.IntVar(&f.Count, "count", 0, "round trips (echo) or connections (idle)")
	fs.IntVar(&f.Warmup, "warmup", 0, "round trips not measured (echo)")
	fs.IntVar(&f.Conc, "conc", 1, "concurrent connections (handshakes, idle)")
	fs.IntVar(&f.CPU, "cpu", -1, "echo: run the round trips on this `CPU` only (default: anywhere)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args[1:]); err != nil {
		return usageErr("bench client %s: %v", mode, err)
	}
	if f.Addr == "" {
		return usageErr("bench client %s: --addr is required", mode)
	}
	if !contains(bench.ClientModes, mode) {
		return usageErr("bench client: unknown mode %q", mode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	return bench.RunClient(ctx, mode, f, stdout)
}

// newFlagSet returns the flag set of `ustack name`, which writes to stderr.
// Unless usage is empty (the flag package's own then), -h prints usage,
// then the flags.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ustack "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if usage != "" {
		fs.Usage = func() {
			fmt.Fprint(stderr, usage)
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args, turning a mistake into a usage error that points
// at the command's help.
func parseFlags(fs *flag.FlagSet, args []string, cmd string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr("%v (see 'ustack %s -h')", err, cmd)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
