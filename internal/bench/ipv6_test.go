package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRoundRatios: the IPv6 figure of each round over the IPv4 one of the
// same round, for the rounds that have both, in round order.
func TestRoundRatios(t *testing.T) {
	v6 := map[int]float64{0: 9, 1: 5, 2: 8, 4: 3}
	v4 := map[int]float64{0: 10, 2: 10, 3: 7, 4: 0}
	if got, want := roundRatios(v6, v4), []float64{0.9, 0.8}; !slices.Equal(got, want) {
		t.Fatalf("roundRatios = %v, want %v (round 1 lacks IPv4, round 3 IPv6, round 4's IPv4 is 0)", got, want)
	}
	if got := roundRatios(nil, v4); len(got) != 0 {
		t.Fatalf("no IPv6 figures: %v", got)
	}
}

// ratioBench is a bench whose rounds drifted: the IPv4 and IPv6 figures of
// each round move together, so ustack's upload ratio, the median of the
// rounds' ratios (0.9), is not the ratio of the medians (0.9 / 10).
func ratioBench() *bench {
	b := &bench{byRound: map[benchKey]map[int]float64{}}
	set := func(stack, metric string, vals ...float64) {
		m := map[int]float64{}
		for r, v := range vals {
			if v >= 0 {
				m[r] = v
			}
		}
		b.byRound[benchKey{stack, metric}] = m
	}
	set(stackUstack, "upload_gbps", 1, 10, 100)
	set(stackUstack, "upload_ipv6_gbps", 0.9, 0.6, 95) // ratios 0.9, 0.06, 0.95
	set(stackKernel, "upload_gbps", 10, 20, 30)
	set(stackKernel, "upload_ipv6_gbps", 10, 20, -1) // round 3 failed: ratios 1, 1
	set(stackUstack, "http_rps", 1000, 1000, 1000)
	set(stackUstack, "http_ipv6_rps", 800, 850, 900)
	return b
}

// TestIPv6Ratios: each stack's ratio is the median of its rounds' ratios;
// a stack or pair that has no round with both figures has none.
func TestIPv6Ratios(t *testing.T) {
	rs := ratioBench().ipv6Ratios()
	if len(rs) != len(ipv6Pairs)*len(benchStacks) {
		t.Fatalf("%d ratios, want one per pair and stack: %+v", len(rs), rs)
	}
	for _, c := range []struct {
		stack, metric string
		want          float64
		rounds        int
	}{
		{stackUstack, "upload_ipv6_gbps", 0.9, 3},
		{stackKernel, "upload_ipv6_gbps", 1, 2},
		{stackUstack, "http_ipv6_rps", 0.85, 3},
	} {
		r, ok := findRatio(rs, c.stack, c.metric)
		if !ok || len(r.Rounds) != c.rounds || fmt.Sprintf("%.4f", *r.Value) != fmt.Sprintf("%.4f", c.want) {
			t.Errorf("%s %s: %+v (ok %v), want %v over %d rounds", c.stack, c.metric, r, ok, c.want, c.rounds)
		}
		if r.Of != strings.Replace(strings.Replace(c.metric, "_ipv6", "", 1), "ipv6_", "", 1) {
			t.Errorf("%s: IPv4 row %q", c.metric, r.Of)
		}
	}
	for _, c := range [][2]string{{stackGVisor, "upload_ipv6_gbps"}, {stackUstack, "download_ipv6_gbps"}} {
		if r, ok := findRatio(rs, c[0], c[1]); ok {
			t.Errorf("%s %s: a ratio %v from nothing", c[0], c[1], *r.Value)
		}
	}

	// --only: just the pairs asked for.
	b := ratioBench()
	b.p.Only = map[string]bool{"http_ipv6_rps": true}
	addIPv4Twins(b.p.Only)
	if !b.p.Only["http_rps"] || len(b.p.Only) != 2 {
		t.Fatalf("--only http_ipv6_rps brings %v, want it and http_rps", slices.Sorted(maps.Keys(b.p.Only)))
	}
	for _, r := range b.ipv6Ratios() {
		if r.Metric != "http_ipv6_rps" {
			t.Fatalf("--only http_ipv6_rps gave a ratio for %s", r.Metric)
		}
	}
}

// TestIPv6PairsAreMetrics: both rows of every pair are metrics, each IPv6
// row measured by a measurement of its own that comes right after its
// IPv4 row's in a round.
func TestIPv6PairsAreMetrics(t *testing.T) {
	at := func(metric string) int {
		return slices.IndexFunc(benchMeasurements, func(m measurement) bool { return slices.Contains(m.metrics, metric) })
	}
	for _, p := range ipv6Pairs {
		if !IsMetric(p.v6) || !IsMetric(p.v4) {
			t.Errorf("%s / %s: not both metrics", p.v6, p.v4)
		}
		i6, i4 := at(p.v6), at(p.v4)
		if i6 < 0 || i4 < 0 || i6 != i4+1 {
			t.Errorf("%s is measured at %d, %s at %d: want the IPv6 one right after", p.v6, i6, p.v4, i4)
		}
	}
}

// TestIPv6Report: the section, the console table, the targets and the
// JSON carry the ratios.
func TestIPv6Report(t *testing.T) {
	b := ratioBench()
	var w strings.Builder
	p := printer(func(format string, args ...any) { fmt.Fprintf(&w, format, args...) })
	b.reportIPv6(p, b.ipv6Ratios())
	md := w.String()
	for _, want := range []string{
		"## IPv6 against IPv4",
		"| upload<br>`upload_ipv6_gbps` / `upload_gbps` | 1.00× | 0.90× | - | 3 |",
		"| HTTP keep-alive requests<br>`http_ipv6_rps` / `http_rps` | - | 0.85× | - | 3 |",
		"| download<br>`download_ipv6_gbps` / `download_gbps` | - | - | - | 0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}

	var con strings.Builder
	printIPv6Table(&con, b.ipv6Ratios())
	if !strings.Contains(con.String(), "upload_ipv6_gbps") || !strings.Contains(con.String(), "0.90×") {
		t.Errorf("console table:\n%s", con.String())
	}
	var none strings.Builder
	printIPv6Table(&none, (&bench{}).ipv6Ratios())
	(&bench{}).reportIPv6(func(f string, a ...any) { fmt.Fprintf(&none, f, a...) }, nil)
	if none.Len() != 0 {
		t.Errorf("without IPv6 runs, something was written: %q", none.String())
	}

	rows := ipv6TargetRows(b.ipv6Ratios())
	want := [][3]string{
		{"upload over IPv6 ≥ 0.9× over IPv4 (same rounds)", "0.90×", "met"},
		{"HTTP keep-alive requests over IPv6 ≥ 0.9× over IPv4 (same rounds)", "0.85×", "**missed**"},
	}
	if !slices.Equal(rows, want) {
		t.Errorf("target rows %q, want %q", rows, want)
	}

	name := filepath.Join(t.TempDir(), "bench.json")
	if err := writeBenchJSON(name, map[string]any{}, nil, b.ipv6Ratios(), nil); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Ratios []struct {
			Stack, Metric string
			Of            string    `json:"ipv4_metric"`
			Value         *float64  `json:"value"`
			Rounds        []float64 `json:"rounds"`
		} `json:"ipv6_ratios"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range doc.Ratios {
		if r.Stack == stackUstack && r.Metric == "upload_ipv6_gbps" {
			found = r.Of == "upload_gbps" && r.Value != nil && *r.Value == 0.9 && len(r.Rounds) == 3
		}
		if r.Stack == stackGVisor && r.Metric == "upload_ipv6_gbps" && (r.Value != nil || r.Rounds == nil) {
			t.Errorf("gVisor's missing ratio in JSON: %+v", r)
		}
	}
	if !found {
		t.Errorf("JSON lacks ustack's upload ratio:\n%s", raw)
	}
}
