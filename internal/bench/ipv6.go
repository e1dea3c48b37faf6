package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
)

// The IPv6 rows: each repeats an IPv4 row over IPv6 (2001:2::1 to
// 2001:2::2, in the same namespaces' layout), right after it in every
// round, and the report gives each stack's IPv6/IPv4 ratio: the median of
// the ratios of the rounds that have both, so that drift between rounds
// cancels out.

// ipv6Pair is an IPv6 row and the IPv4 row it repeats.
type ipv6Pair struct {
	v6, v4 string
	label  string
	target bool // ustack's ratio is a target: within 10% of IPv4
}

var ipv6Pairs = []ipv6Pair{
	{"upload_ipv6_gbps", "upload_gbps", "upload", true},
	{"download_ipv6_gbps", "download_gbps", "download", true},
	{"http_ipv6_rps", "http_rps", "HTTP keep-alive requests", true},
	{"serve_http_ipv6_rps", "serve_http_rps", "`ustack serve` HTTP keep-alive requests (kernel, gVisor: the bench server)", false},
}

// ipv6Target is the goal: ustack's IPv6 bulk transfers and
// request rates within 10% of its IPv4 figures of the same run.
const ipv6Target = 0.9

// ipv4Twin returns the IPv4 row an IPv6 row repeats.
func ipv4Twin(metric string) (string, bool) {
	for _, p := range ipv6Pairs {
		if p.v6 == metric {
			return p.v4, true
		}
	}
	return "", false
}

// addIPv4Twins adds to a --only selection the IPv4 row of each IPv6 row
// in it: the ratio needs both from the same rounds.
func addIPv4Twins(only map[string]bool) {
	for m := range maps.Clone(only) {
		if v4, ok := ipv4Twin(m); ok {
			only[v4] = true
		}
	}
}

// familyRatio is one stack's IPv6/IPv4 ratio for one pair of rows, in the
// JSON output.
type familyRatio struct {
	Stack  string    `json:"stack"`
	Metric string    `json:"metric"`      // the IPv6 row
	Of     string    `json:"ipv4_metric"` // the IPv4 row
	Value  *float64  `json:"value"`       // the median of Rounds; null when no round has both
	Rounds []float64 `json:"rounds"`      // IPv6 / IPv4 in each round that has both, in round order
}

// roundRatios divides v6 by v4 round by round (the maps are keyed by
// round), for the rounds that have both and a nonzero IPv4 figure, in
// round order.
func roundRatios(v6, v4 map[int]float64) []float64 {
	var out []float64
	for _, r := range slices.Sorted(maps.Keys(v6)) {
		if d, ok := v4[r]; ok && d != 0 {
			out = append(out, v6[r]/d)
		}
	}
	return out
}

// ipv6Ratios is every stack's ratio for every pair of rows measured.
func (b *bench) ipv6Ratios() []familyRatio {
	var out []familyRatio
	for _, p := range ipv6Pairs {
		if b.p.Only != nil && !b.p.Only[p.v6] {
			continue
		}
		for _, s := range benchStacks {
			r := familyRatio{Stack: s, Metric: p.v6, Of: p.v4}
			r.Rounds, r.Value = medianOf(roundRatios(b.byRound[benchKey{s, p.v6}], b.byRound[benchKey{s, p.v4}]))
			out = append(out, r)
		}
	}
	return out
}

func findRatio(rs []familyRatio, stack, metric string) (familyRatio, bool) {
	for _, r := range rs {
		if r.Stack == stack && r.Metric == metric && r.Value != nil {
			return r, true
		}
	}
	return familyRatio{}, false
}

// ratioCell is a ratio as the tables show it, or "-".
func ratioCell(rs []familyRatio, stack, metric string) string {
	r, ok := findRatio(rs, stack, metric)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2f×", *r.Value)
}

// printIPv6Table writes the console's IPv6/IPv4 table, if any pair ran.
func printIPv6Table(w io.Writer, rs []familyRatio) {
	if !slices.ContainsFunc(rs, func(r familyRatio) bool { return r.Value != nil }) {
		return
	}
	fmt.Fprintf(w, "\n%-24s %10s %10s %10s  (IPv6 / IPv4: median of the rounds' ratios)\n", "IPv6 / IPv4", "kernel", "ustack", "gvisor")
	for _, p := range ipv6Pairs {
		if !slices.ContainsFunc(rs, func(r familyRatio) bool { return r.Metric == p.v6 }) {
			continue
		}
		fmt.Fprintf(w, "%-24s %10s %10s %10s\n", p.v6, ratioCell(rs, stackKernel, p.v6), ratioCell(rs, stackUstack, p.v6), ratioCell(rs, stackGVisor, p.v6))
	}
}

// reportIPv6 writes the report's IPv6 section, if any pair ran.
func (b *bench) reportIPv6(p printer, rs []familyRatio) {
	if !slices.ContainsFunc(rs, func(r familyRatio) bool { return r.Value != nil }) {
		return
	}
	p("## IPv6 against IPv4\n\n")
	p("Each stack's IPv6 figure divided by its IPv4 figure of the same round (the IPv6 run comes right\n")
	p("after the IPv4 one), then the median of those ratios over the rounds. 1 is parity; the MSS over\n")
	p("IPv6 is 20 bytes smaller (1440 against 1460 at MTU %d), which costs bulk goodput 1.4%%.\n\n", benchMTU)
	p("| rows | kernel | ustack | gVisor | rounds |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, pr := range ipv6Pairs {
		if !slices.ContainsFunc(rs, func(r familyRatio) bool { return r.Metric == pr.v6 }) {
			continue
		}
		n := 0
		for _, s := range benchStacks {
			if r, ok := findRatio(rs, s, pr.v6); ok {
				n = max(n, len(r.Rounds))
			}
		}
		p("| %s<br>`%s` / `%s` | %s | %s | %s | %d |\n", pr.label, pr.v6, pr.v4,
			ratioCell(rs, stackKernel, pr.v6), ratioCell(rs, stackUstack, pr.v6), ratioCell(rs, stackGVisor, pr.v6), n)
	}
	p("\n")
}

// ipv6TargetRows are the Targets table's rows for the IPv6 pairs that ran.
func ipv6TargetRows(rs []familyRatio) [][3]string {
	var rows [][3]string
	for _, pr := range ipv6Pairs {
		r, ok := findRatio(rs, stackUstack, pr.v6)
		if !pr.target || !ok {
			continue
		}
		verdict := "**missed**"
		if *r.Value >= ipv6Target {
			verdict = "met"
		}
		rows = append(rows, [3]string{fmt.Sprintf("%s over IPv6 ≥ %.1f× over IPv4 (same rounds)", pr.label, ipv6Target), fmt.Sprintf("%.2f×", *r.Value), verdict})
	}
	return rows
}
