package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"ustack/tun"
)

// requireBenchRoot skips a test that needs root, /dev/net/tun, ip and wrk,
// or fails it when CI is set, where all of them are promised.
func requireBenchRoot(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (network namespaces, TUN devices, veth pairs)"
	} else if _, err := os.Stat("/dev/net/tun"); err != nil {
		why = "needs /dev/net/tun: " + err.Error()
	} else {
		for _, tool := range []string{"ip", "wrk"} {
			if _, err := exec.LookPath(tool); err != nil {
				why = "needs " + tool + " in PATH"
				break
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(why + " (CI is set, so this is a failure)")
	}
	t.Skip(why)
}

// TestBenchQuick is the smoke test of `ustack bench --quick`: it builds the
// command (the client modes run as its subprocesses), runs it, and checks that every metric has a value for every
// stack, that the JSON parses, that the report and its plots are written
// and that no namespace is left behind. The numbers are not judged.
func TestBenchQuick(t *testing.T) {
	requireBenchRoot(t)
	dir := t.TempDir()
	exe := filepath.Join(dir, "ustack")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	if out, err := exec.Command(goTool, "build", "-o", exe, "ustack/cmd/ustack").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	jsonPath, reportDir := filepath.Join(dir, "bench.json"), filepath.Join(dir, "report")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "bench", "--quick", "--json", jsonPath, "--report", reportDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("ustack bench --quick took %v:\n%s", time.Since(start).Round(time.Second), out.String())
	if cmd.Process != nil {
		left, lerr := tun.Leftovers(cmd.Process.Pid, "")
		if lerr != nil || len(left) > 0 {
			t.Errorf("left behind: %v (%v)", left, lerr)
		}
	}
	if err != nil {
		t.Fatalf("ustack bench --quick: %v", err)
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Machine map[string]any `json:"machine"`
		Results []struct {
			Stack  string    `json:"stack"`
			Metric string    `json:"metric"`
			Value  *float64  `json:"value"`
			Unit   string    `json:"unit"`
			Runs   []float64 `json:"runs"`
		} `json:"results"`
		IPv6Ratios []struct {
			Stack  string   `json:"stack"`
			Metric string   `json:"metric"`
			Value  *float64 `json:"value"`
		} `json:"ipv6_ratios"`
		LossCounters []struct {
			Stack  string             `json:"stack"`
			Metric string             `json:"metric"`
			Sender string             `json:"sender"`
			PerMB  map[string]float64 `json:"per_mb"`
		} `json:"loss_counters"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, raw)
	}
	for _, k := range []string{"cpu", "kernel", "go", "command"} {
		if doc.Machine[k] == nil {
			t.Errorf("machine lacks %q: %v", k, doc.Machine)
		}
	}
	got := map[[2]string]bool{}
	for _, r := range doc.Results {
		if r.Value == nil || math.IsNaN(*r.Value) || math.IsInf(*r.Value, 0) || len(r.Runs) == 0 || r.Unit == "" {
			t.Errorf("%s %s: value %v, runs %v, unit %q", r.Stack, r.Metric, r.Value, r.Runs, r.Unit)
			continue
		}
		got[[2]string{r.Stack, r.Metric}] = true
	}
	for _, m := range benchMetrics {
		for _, s := range []string{"kernel", "ustack", "gvisor"} {
			if ustackOnly(m.name) && s != "ustack" {
				continue
			}
			if !got[[2]string{s, m.name}] {
				t.Errorf("no %s for %s", m.name, s)
			}
		}
	}
	// Every stack has its IPv6/IPv4 ratio for every pair of rows.
	ratios := map[[2]string]bool{}
	for _, r := range doc.IPv6Ratios {
		if r.Value != nil && *r.Value > 0 && !math.IsInf(*r.Value, 0) {
			ratios[[2]string{r.Stack, r.Metric}] = true
		}
	}
	for _, p := range ipv6Pairs {
		for _, s := range []string{"kernel", "ustack", "gvisor"} {
			if !ratios[[2]string{s, p.v6}] {
				t.Errorf("no IPv6/IPv4 ratio of %s for %s: %+v", p.v6, s, doc.IPv6Ratios)
			}
		}
	}
	// Every loss run records the sender's counters: at least the segments
	// it sent.
	sent := map[string]string{"kernel": "OutSegs", "ustack": "SegsOut", "gvisor": "SegmentsSent"}
	counters := map[[2]string]bool{}
	for _, lc := range doc.LossCounters {
		if lc.PerMB[sent[lc.Sender]] > 0 {
			counters[[2]string{lc.Stack, lc.Metric}] = true
		}
	}
	for m := range lossMetricSender {
		for _, s := range []string{"kernel", "ustack", "gvisor"} {
			if !counters[[2]string{s, m}] {
				t.Errorf("no sender counters for %s on %s: %+v", m, s, doc.LossCounters)
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(reportDir, "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Machine", "## Results", "ustack / gVisor", "## IPv6 against IPv4", "over IPv6 ≥ 0.9× over IPv4", "bench/throughput.svg", "bench/latency.svg", "bench/loss.svg", "## Loss recovery: the sender's counters", "`TCPTimeouts`"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("benchmarks.md lacks %q", want)
		}
	}
	for _, f := range []string{"throughput.svg", "requests.svg", "latency.svg", "loss.svg"} {
		b, err := os.ReadFile(filepath.Join(reportDir, "bench", f))
		if err != nil || !bytes.Contains(b, []byte("<svg")) {
			t.Errorf("plot %s: %v", f, err)
		}
	}
	// The queues rows (ustack only) are in the report, with their target.
	if !strings.Contains(string(md), "`serve_queues_gain`") || !strings.Contains(string(md), "`serve --queues 2`") {
		t.Error("benchmarks.md lacks the queues rows or their target")
	}
}
