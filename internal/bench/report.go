package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// benchMachine describes where and how the bench ran.
func benchMachine(command string, p Params) map[string]any {
	m := map[string]any{
		"command":  command,
		"date":     time.Now().UTC().Format(time.RFC3339),
		"cpu":      cpuModel(),
		"cpus":     runtime.NumCPU(),
		"go":       runtime.Version(),
		"runs":     p.Runs,
		"quick":    p.Quick,
		"bytes":    p.Bytes,
		"duration": p.Duration.String(),
		"conns":    p.Conns,
	}
	m["loadavg_before"] = loadAvg()
	if v := ustackVersion(); v != "" {
		m["ustack"] = v
	}
	if mem, err := readMeminfo("MemTotal"); err == nil {
		m["memory_bytes"] = mem
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m["kernel"] = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
	}
	m["congestion_control"] = kernelCC() + " (the kernel's default; ustack runs the same)"
	if os, err := osRelease(); err == nil {
		m["os"] = os
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "gvisor.dev/gvisor":
				m["gvisor"] = d.Version
			case "golang.zx2c4.com/wireguard":
				m["wireguard"] = d.Version
			}
		}
	}
	if out, err := exec.Command("wrk", "--version").CombinedOutput(); err == nil || len(out) > 0 {
		if v := wrkVersionRe.FindStringSubmatch(string(out)); v != nil {
			m["wrk"] = v[1]
		}
	}
	if out, err := exec.Command("openssl", "version").Output(); err == nil {
		m["openssl"] = strings.TrimSpace(string(out))
	}
	return m
}

// benchUstackVersion names the ustack code measured; a build can set it
// with -ldflags "-X ustack/internal/bench.benchUstackVersion=...".
// Otherwise ustackVersion asks git about the current directory.
var benchUstackVersion string

func ustackVersion() string {
	if benchUstackVersion != "" {
		return benchUstackVersion
	}
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	v := "commit " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		v += " with uncommitted changes"
	}
	return v
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute averages: other load on
// the machine skews every figure.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func osRelease() (string, error) {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`), nil
		}
	}
	return "", fmt.Errorf("no PRETTY_NAME")
}

// benchTarget is a goal for ustack, checked in the report.
type benchTarget struct {
	metric string
	other  string  // stack compared with, or "tun" for the TUN limit
	factor float64 // ustack >= factor*other (higher is better) or <= (lower)
	desc   string
}

var benchTargets = []benchTarget{
	{"upload_gbps", stackGVisor, 1.3, "upload ≥ 1.3× gVisor"},
	{"upload_gbps", "tun", 0.9, "upload ≥ 0.9× TUN limit"},
	{"download_gbps", stackGVisor, 1.3, "download ≥ 1.3× gVisor"},
	{"download_gbps", "tun", 0.9, "download ≥ 0.9× TUN limit"},
	{"http_rps", stackGVisor, 1.3, "HTTP keep-alive requests/s ≥ 1.3× gVisor"},
	{"http_conn_per_s", stackGVisor, 1.3, "HTTP new connections/s ≥ 1.3× gVisor"},
	{"https_handshakes_per_s", stackKernel, 0.95, "HTTPS handshakes/s ≥ 0.95× kernel"},
	{"echo_rtt_p99_us", stackGVisor, 1, "echo p99 ≤ gVisor"},
	{"bytes_per_idle_conn", stackGVisor, 0.5, "bytes per idle connection ≤ 0.5× gVisor"},
	{"goodput_loss1_gbps", stackGVisor, 1, "goodput at 1% loss ≥ gVisor"},
	{"serve_queues_gain", "", 1.5, "`serve --queues 2` HTTP keep-alive requests/s ≥ 1.5× `--queues 1` (wrk -t2)"},
	// Against the kernel, measured in the same run.
	{"upload_gbps", stackKernel, 0.6, "bulk upload ≥ 0.6× kernel"},
	{"download_gbps", stackKernel, 0.6, "bulk download ≥ 0.6× kernel"},
	{"http_rps", stackKernel, 0.9, "HTTP keep-alive requests/s ≥ 0.9× kernel"},
	{"https_rps", stackKernel, 0.9, "HTTPS keep-alive requests/s ≥ 0.9× kernel"},
	{"http_conn_per_s", stackKernel, 0.8, "HTTP new connections/s ≥ 0.8× kernel"},
	{"serve_http_rps", stackKernel, 0.9, "`ustack serve` HTTP keep-alive requests/s ≥ 0.9× kernel"},
	{"serve_https_rps", stackKernel, 0.9, "`ustack serve` HTTPS keep-alive requests/s ≥ 0.9× kernel"},
	{"serve_conn_per_s", stackKernel, 0.8, "`ustack serve` new connections/s ≥ 0.8× kernel"},
	{"goodput_loss1_gbps", stackKernel, 0.5, "download goodput at 1% loss ≥ 0.5× kernel"},
	{"goodput_loss5_gbps", stackKernel, 0.3, "download goodput at 5% loss ≥ 0.3× kernel"},
	{"goodput_up_loss1_gbps", stackKernel, 0.5, "goodput at 1% loss, ustack receiving, ≥ 0.5× kernel"},
	{"goodput_up_loss5_gbps", stackKernel, 0.3, "goodput at 5% loss, ustack receiving, ≥ 0.3× kernel"},
	{"echo_rtt_p50_us", stackKernel, 1.3, "1-byte echo p50 ≤ 1.3× kernel"},
	{"echo_rtt_p99_us", stackKernel, 1.3, "1-byte echo p99 ≤ 1.3× kernel"},
	{"bytes_per_idle_conn", targetBytes, 1536, "server memory per idle connection ≤ 1.5 KiB (1536 bytes)"},
}

// targetBytes as a target's other stack: the factor is an absolute bound on
// ustack's own figure.
const targetBytes = "bytes"

// check evaluates a target: the ratio and whether it is met.
func (t benchTarget) check(rs []benchResult) (ratio float64, met, ok bool) {
	u, ok1 := findResult(rs, stackUstack, t.metric)
	var o float64
	var ok2 bool
	if t.other == "" {
		// The metric is a ratio already (ustack against itself).
		o, ok2 = 1, true
	} else if t.other == targetBytes {
		if !ok1 {
			return 0, false, false
		}
		return u, u <= t.factor, true
	} else if t.other == "tun" {
		o, ok2 = findResult(rs, stackUstack, "tun_limit_gbps")
	} else {
		o, ok2 = findResult(rs, t.other, t.metric)
	}
	if !ok1 || !ok2 || o == 0 {
		return 0, false, false
	}
	mi, _ := metricByName(t.metric)
	r := u / o
	if mi.higher {
		return r, r >= t.factor, true
	}
	return r, r <= t.factor, true
}

// writeReport writes DIR/benchmarks.md and the plots under DIR/bench.
func (b *bench) writeReport(dir string, machine map[string]any, rs []benchResult) error {
	if err := os.MkdirAll(filepath.Join(dir, "bench"), 0o755); err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	plots, err := b.writePlots(filepath.Join(dir, "bench"), rs)
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	var w strings.Builder
	p := printer(func(format string, args ...any) { fmt.Fprintf(&w, format, args...) })
	b.reportIntro(p, machine)
	b.reportMachine(p, machine)
	b.reportResults(p, rs)
	b.reportIPv6(p, b.ipv6Ratios())
	b.reportLoss(p)
	b.reportTargets(p, rs, plots)
	b.reportMethod(p)
	b.reportRuns(p, rs)
	if err := os.WriteFile(filepath.Join(dir, "benchmarks.md"), []byte(w.String()), 0o644); err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	return nil
}

// printer writes a formatted piece of the report.
type printer func(format string, args ...any)

// reportIntro writes the title, what was run and how.
func (b *bench) reportIntro(p printer, machine map[string]any) {
	p("# Benchmarks: the kernel, ustack and gVisor netstack\n\n")
	p("`ustack bench` runs the same servers (Go code: echo, discard, a sized source, `net/http`,\n")
	p("and `net/http` over TLS 1.2) on three TCP/IP stacks and reaches them with the same kernel-side\n")
	p("clients (`wrk`, and the bench's own Go client processes) from a network namespace:\n\n")
	p("- **kernel**: the server in a second namespace, joined to the client's by a veth pair;\n")
	p("- **ustack**: ustack on a TUN device (offloads on, MTU %d), in the bench process;\n", benchMTU)
	p("- **gVisor**: gVisor's netstack on a TUN device with the same settings, through the same\n")
	p("  batched link adapter (`internal/gvpeer`), configured as wireguard-go's `tun/netstack` does\n")
	p("  (stock options plus SACK), in the bench process.\n\n")
	p("This page is the report of one run of:\n\n```\n%v\n```\n\n", machine["command"])
	runs := "runs"
	if b.p.Runs == 1 {
		runs = "run"
	}
	p("Each figure is the median of %d %s; the stacks take turns on every measurement, in an order\n", b.p.Runs, runs)
	p("that rotates from round to round, so that drift hits all of them.\n\n")
}

// reportMachine writes the machine the bench ran on.
func (b *bench) reportMachine(p printer, machine map[string]any) {
	p("## Machine\n\n| | |\n| --- | --- |\n")
	row := func(k string, keys ...string) {
		var vs []string
		for _, key := range keys {
			if v, ok := machine[key]; ok {
				vs = append(vs, fmt.Sprint(v))
			}
		}
		if len(vs) > 0 {
			p("| %s | %s |\n", k, strings.Join(vs, ", "))
		}
	}
	row("date (UTC)", "date")
	p("| CPU | %v (%v logical CPUs) |\n", machine["cpu"], machine["cpus"])
	if m, ok := machine["memory_bytes"].(int64); ok {
		p("| memory | %.1f GiB |\n", float64(m)/(1<<30))
	}
	row("kernel", "kernel")
	row("OS", "os")
	row("ustack", "ustack")
	row("Go", "go")
	row("gVisor", "gvisor")
	row("wireguard-go (TUN I/O)", "wireguard")
	row("wrk", "wrk")
	row("OpenSSL (wrk's TLS)", "openssl")
	row("load average before, after (1, 5, 15 min)", "loadavg_before", "loadavg_after")
	transfer := "bulk transfers timed"
	if b.p.Bytes > 0 {
		transfer = byteSize(b.p.Bytes) + " per transfer"
	}
	p("| sizes | %s, %v per timed run, %d idle connections, %d echo round trips per run |\n\n",
		transfer, b.p.Duration, b.p.Conns, b.p.EchoCount)
}

// reportResults writes the medians and ratios.
func (b *bench) reportResults(p printer, rs []benchResult) {
	p("## Results\n\n")
	p("Medians. A ratio is ustack's figure divided by the other stack's: above 1 is better for ustack\n")
	p("where more is better, below 1 is better where less is better (round trips, bytes).\n\n")
	p("| metric | | kernel | ustack | gVisor | ustack / kernel | ustack / gVisor |\n")
	p("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, m := range benchMetrics {
		if b.p.Only != nil && !b.p.Only[m.name] {
			continue
		}
		var cells []string
		for _, s := range benchStacks {
			if v, ok := findResult(rs, s, m.name); ok {
				cells = append(cells, formatValue(v))
			} else if ustackOnly(m.name) && s != stackUstack {
				cells = append(cells, "")
			} else {
				cells = append(cells, "failed")
			}
		}
		better := "higher is better"
		if !m.higher {
			better = "lower is better"
		}
		rk, rg := ratio(rs, m.name, stackUstack, stackKernel), ratio(rs, m.name, stackUstack, stackGVisor)
		if m.name == "tun_limit_gbps" {
			rk, rg = "", ""
		}
		p("| %s<br>`%s` | %s, %s | %s | %s | %s | %s | %s |\n", m.label, m.name, m.unit, better, cells[0], cells[1], cells[2], rk, rg)
	}
	p("\n")
}

// reportTargets writes the targets and the plots.
func (b *bench) reportTargets(p printer, rs []benchResult, plots []benchPlot) {
	p("## Targets\n\n| target | ustack's ratio | |\n| --- | ---: | --- |\n")
	for _, t := range benchTargets {
		r, met, ok := t.check(rs)
		if !ok {
			continue
		}
		verdict := "**missed**"
		if met {
			verdict = "met"
		}
		if t.other == targetBytes {
			p("| %s | %.0f bytes | %s |\n", t.desc, r, verdict)
			continue
		}
		p("| %s | %.2f× | %s |\n", t.desc, r, verdict)
	}
	for _, row := range ipv6TargetRows(b.ipv6Ratios()) {
		p("| %s | %s | %s |\n", row[0], row[1], row[2])
	}
	p("\n")

	if len(plots) > 0 {
		p("## Plots\n\n")
		for _, pl := range plots {
			p("### %s\n\n![%s](bench/%s)\n\n", pl.title, pl.title, pl.file)
		}
	}
}

// reportRuns writes every run, the counters seen and the profiles.
func (b *bench) reportRuns(p printer, rs []benchResult) {
	p("## All runs\n\n| metric | stack | runs |\n| --- | --- | --- |\n")
	for _, r := range rs {
		var vs []string
		for _, v := range r.Runs {
			vs = append(vs, formatValue(v))
		}
		if len(r.Errors) > 0 {
			vs = append(vs, fmt.Sprintf("%d failed", len(r.Errors)))
		}
		p("| `%s` | %s | %s |\n", r.Metric, r.Stack, strings.Join(vs, ", "))
	}
	if len(b.log) > 0 {
		p("\n<details><summary>Counters seen during the runs</summary>\n\n")
		for _, l := range b.log {
			p("- %s\n", l)
		}
		p("\n</details>\n")
	}
	if len(b.profiles) > 0 {
		p("\nCPU profiles of the server process during the first round's measurements: ")
		var names []string
		for _, f := range b.profiles {
			names = append(names, "`"+filepath.Base(f)+"`")
		}
		p("%s (`go tool pprof -top`).\n", strings.Join(names, ", "))
	}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
