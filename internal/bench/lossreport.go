package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
)

// The loss counters in the console summary, the report and the JSON.

// lossCell is a counter's median per MB over the runs of one stack, or ok
// false when the sender's family has no such counter (or nothing ran).
func (b *bench) lossCell(stack, metric string, r lossRow) (v float64, ok bool) {
	var vals []float64
	for _, s := range b.lossCounts[benchKey{stack, metric}] {
		name := r.name(s.kind)
		if name == "" {
			continue
		}
		if x, ok := s.perMB[name]; ok {
			vals = append(vals, x)
		}
	}
	if len(vals) == 0 {
		return 0, false
	}
	return median(vals), true
}

// lossMetrics lists the loss metrics that have counters, in report order.
func (b *bench) lossMetrics() []string {
	var out []string
	for _, m := range benchMetrics {
		if _, ok := lossMetricSender[m.name]; !ok {
			continue
		}
		for _, s := range benchStacks {
			if len(b.lossCounts[benchKey{s, m.name}]) > 0 {
				out = append(out, m.name)
				break
			}
		}
	}
	return out
}

// lossSenderText says whose counters a loss metric's table holds.
func lossSenderText(metric string) string {
	if lossMetricSender[metric] == senderClient {
		return "the sender is the kernel client in every column (the stack under test receives)"
	}
	return "the sender is the stack under test (the server)"
}

// lossRowsFor is the rows with a value for some stack.
func (b *bench) lossRowsFor(metric string) []lossRow {
	var rows []lossRow
	for _, r := range lossRows {
		if slices.ContainsFunc(benchStacks, func(s string) bool { _, ok := b.lossCell(s, metric, r); return ok }) {
			rows = append(rows, r)
		}
	}
	return rows
}

func formatPerMB(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// printLossCounters writes the console summary of the loss counters.
func (b *bench) printLossCounters(w io.Writer) {
	ms := b.lossMetrics()
	if len(ms) == 0 {
		return
	}
	fmt.Fprintf(w, "\nLoss-recovery counters of the sending side, per MB of goodput (medians; docs/benchmarks.md maps the names):\n")
	for _, m := range ms {
		fmt.Fprintf(w, "%s: %s\n", m, lossSenderText(m))
		fmt.Fprintf(w, "  %-50s %10s %10s %10s\n", "", "kernel", "ustack", "gvisor")
		for _, r := range b.lossRowsFor(m) {
			var cells []string
			for _, s := range benchStacks {
				cells = append(cells, formatPerMB(b.lossCell(s, m, r)))
			}
			fmt.Fprintf(w, "  %-50s %10s %10s %10s\n", r.label, cells[0], cells[1], cells[2])
		}
	}
}

// reportLoss writes the loss counters' section of the report.
func (b *bench) reportLoss(p printer) {
	ms := b.lossMetrics()
	if len(ms) == 0 {
		return
	}
	p("## Loss recovery: the sender's counters\n\n")
	p("For each loss run, the counters of the sending side are read before and after the run and the\n")
	p("difference is divided by the goodput in MB (10^6 bytes); each cell is the median over the runs.\n")
	p("The kernel's are its namespace's `/proc/net/netstat` (TcpExt) and `/proc/net/snmp` (Tcp), read from a\n")
	p("thread inside that namespace; ustack's are `Stack.TCPTotals()` (every connection, open or ended);\n")
	p("gVisor's are its stack's `tcpip.TCPStats`. The counters that correspond share a row:\n\n")
	p("| what is counted | Linux | ustack | gVisor |\n| --- | --- | --- | --- |\n")
	code := func(s string) string {
		if s == "" {
			return "-"
		}
		return "`" + s + "`"
	}
	for _, r := range lossRows {
		p("| %s | %s | %s | %s |\n", r.label, code(r.kernel), code(r.ustack), code(r.gvisor))
	}
	p("\n`TCPTimeouts` ~ `Timeouts` (RTO expiries), `TCPLossProbes` ~ `TLPProbes` (tail loss probes sent),\n")
	p("`TCPSackRecovery` ~ ustack's `FastRetransmits` (recoveries entered, not segments) ~ gVisor's\n")
	p("`SACKRecovery`, and `RetransSegs` ~ `Retransmits` (segments retransmitted, whatever the cause).\n")
	p("The other rows have no counterpart in the other stacks and are shown for what they tell.\n\n")
	for _, m := range ms {
		mi, _ := metricByName(m)
		p("### `%s`: %s\n\n", m, mi.label)
		p("Per MB of goodput; %s.\n\n", lossSenderText(m))
		p("| counter | kernel | ustack | gVisor |\n| --- | ---: | ---: | ---: |\n")
		for _, r := range b.lossRowsFor(m) {
			var cells []string
			for _, s := range benchStacks {
				cells = append(cells, formatPerMB(b.lossCell(s, m, r)))
			}
			p("| %s | %s | %s | %s |\n", r.label, cells[0], cells[1], cells[2])
		}
		p("\n")
	}
}

// lossJSON is one loss metric's counters for one stack in the JSON output.
type lossJSON struct {
	Stack  string               `json:"stack"`
	Metric string               `json:"metric"`
	Sender string               `json:"sender"` // the family of the names: kernel, ustack, gvisor
	PerMB  map[string]float64   `json:"per_mb"` // medians over the runs
	Runs   []map[string]float64 `json:"runs"`
}

func (b *bench) lossJSON() []lossJSON {
	var out []lossJSON
	for _, m := range b.lossMetrics() {
		for _, s := range benchStacks {
			samples := b.lossCounts[benchKey{s, m}]
			if len(samples) == 0 {
				continue
			}
			j := lossJSON{Stack: s, Metric: m, Sender: string(samples[0].kind), PerMB: map[string]float64{}}
			for _, r := range lossRows {
				if name := r.name(samples[0].kind); name != "" {
					if v, ok := b.lossCell(s, m, r); ok {
						j.PerMB[name] = v
					}
				}
			}
			for _, x := range samples {
				j.Runs = append(j.Runs, x.perMB)
			}
			out = append(out, j)
		}
	}
	return out
}
