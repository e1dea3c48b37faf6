package picture

import (
	"fmt"
	"math"
	"strings"

	"ustack/internal/ladder"
)

// The plot of the congestion samples is drawn by hand rather than with
// gonum.org/v1/plot: its SVG backend embeds its own fonts and writes a
// whole document of its own, while these few step lines, ticks and a
// legend take little code, share the diagram's generic fonts and colours,
// and come out the same byte for byte on every run.

// The plot's geometry, relative to its top.
const (
	plotLeft   = 90.0
	plotRight  = width - 30
	plotTop    = 40.0 // the plot area, below the plot's title
	plotHeight = 300.0
)

var seriesColors = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// metric is one of the three values of a sample, and its line style.
type metric struct {
	name  string
	dash  string
	width float64
	value func(*ladder.Sample) int
}

var metrics = []metric{
	{"cwnd", "", 2.2, func(s *ladder.Sample) int { return s.Cwnd }},
	{"ssthresh", "8 4", 1.6, func(s *ladder.Sample) int { return s.Ssthresh }},
	{"bytes in flight", "2 3", 1.4, func(s *ladder.Sample) int { return s.InFlight }},
}

// plotFrame maps a sample's time and value to the page.
type plotFrame struct {
	top, t0, t1, ymax float64
}

func (f plotFrame) x(t float64) float64 {
	return plotLeft + (t-f.t0)/(f.t1-f.t0)*(plotRight-plotLeft)
}

func (f plotFrame) y(v float64) float64 {
	return f.top + plotTop + plotHeight - v/f.ymax*plotHeight
}

// plotSamples draws the samples, one colour per series (cwnd solid,
// ssthresh dashed, bytes in flight dotted), with axes and a legend under
// the axes, from top down; it returns the drawing and its height.
func plotSamples(samples []ladder.Event, top float64) (string, float64) {
	var series []string
	seen := map[string]bool{}
	f := plotFrame{top: top, t0: samples[0].T, t1: samples[0].T}
	big := 0
	for _, e := range samples {
		if !seen[e.Series] {
			seen[e.Series] = true
			series = append(series, e.Series)
		}
		f.t0, f.t1 = math.Min(f.t0, e.T), math.Max(f.t1, e.T)
		big = max(big, e.Cwnd, e.InFlight)
	}
	// An ssthresh far above every window is "not reached yet" (often
	// the largest value it can hold): it is left out, or it would flatten
	// the lines that matter.
	limit := 2 * big
	for _, e := range samples {
		if e.Ssthresh <= limit {
			big = max(big, e.Ssthresh)
		}
	}
	if f.t1 <= f.t0 {
		f.t1 = f.t0 + 1
	}
	step := niceStep(float64(max(big, 1)) / 5)
	f.ymax = math.Ceil(float64(max(big, 1))*1.05/step) * step
	var b strings.Builder
	fmt.Fprintf(&b, `<g class="plot"><text x="%.1f" y="%.1f" font-size="14" font-weight="bold" fill="#111111">congestion window, ssthresh and bytes in flight over time</text>`+"\n", timeX, top+18)
	b.WriteString(axes(f, step))
	for i, name := range series {
		color := seriesColors[i%len(seriesColors)]
		for _, m := range metrics {
			b.WriteString(plotLine(f, samples, name, m, color, limit))
		}
	}
	legend, h := plotLegend(series, f.top+plotTop+plotHeight+60)
	b.WriteString(legend)
	b.WriteString("</g>\n")
	return b.String(), plotTop + plotHeight + 60 + h
}

// plotLine is the step line of one metric of one series; a value of 0
// (ssthresh not set) or above limit leaves a gap.
func plotLine(f plotFrame, samples []ladder.Event, series string, m metric, color string, limit int) string {
	var d strings.Builder
	open := false
	for _, e := range samples {
		if e.Series != series {
			continue
		}
		v := m.value(e.Sample)
		if m.name == "ssthresh" && (v == 0 || v > limit) {
			open = false
			continue
		}
		x, y := f.x(e.T), f.y(float64(v))
		if open {
			fmt.Fprintf(&d, " H%.1f V%.1f", x, y)
		} else {
			fmt.Fprintf(&d, " M%.1f %.1f", x, y)
			open = true
		}
	}
	if d.Len() == 0 {
		return ""
	}
	dash := ""
	if m.dash != "" {
		dash = fmt.Sprintf(` stroke-dasharray="%s"`, m.dash)
	}
	return fmt.Sprintf(`<path class="plot-line" data-series="%s" data-metric="%s" d="%s" fill="none" stroke="%s" stroke-width="%.1f"%s/>`+"\n",
		esc(series), esc(m.name), strings.TrimSpace(d.String()), color, m.width, dash)
}

// niceStep rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// axes draws the frame, the grid and the ticks of both axes.
func axes(f plotFrame, ystep float64) string {
	var b strings.Builder
	y0, y1 := f.top+plotTop, f.top+plotTop+plotHeight
	fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#44505c"/>`+"\n", plotLeft, y0, plotRight-plotLeft, plotHeight)
	for v := 0.0; v <= f.ymax+ystep/2; v += ystep {
		y := f.y(v)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e3e7ec"/>`, plotLeft, y, plotRight, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="11" fill="#333333">%s</text>`+"\n", plotLeft-6, y+4, bytesLabel(v))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" fill="#333333">bytes</text>`+"\n", timeX, y0-8)
	unit, div := "ms", 1.0
	if f.t1-f.t0 >= 2000 {
		unit, div = "s", 1000
	}
	xstep := niceStep((f.t1 - f.t0) / div / 8)
	for v := math.Ceil(f.t0/div/xstep) * xstep; v <= f.t1/div+xstep/1e6; v += xstep {
		x := f.x(v * div)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#44505c"/>`, x, y1, x, y1+5)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11" fill="#333333">%s</text>`+"\n", x, y1+18, trimFloat(v))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11" fill="#333333">time (%s)</text>`+"\n", (plotLeft+plotRight)/2, y1+34, unit)
	return b.String()
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

// bytesLabel writes a tick's value: 1500, 15k, 1.5M.
func bytesLabel(v float64) string {
	switch {
	case v >= 1e6:
		return trimFloat(v/1e6) + "M"
	case v >= 1e4:
		return trimFloat(v/1e3) + "k"
	}
	return trimFloat(v)
}

// plotLegend lays out one entry per series (its colour) and one per
// metric (its line style), in rows that stay inside the picture, from y
// down; it returns the drawing and its height.
func plotLegend(series []string, y float64) (string, float64) {
	type entry struct {
		label, color, dash string
		stroke             float64
	}
	var entries []entry
	for i, s := range series {
		entries = append(entries, entry{s, seriesColors[i%len(seriesColors)], "", 2.2})
	}
	for _, m := range metrics {
		entries = append(entries, entry{m.name, "#555555", m.dash, m.width})
	}
	var b strings.Builder
	x, row := plotLeft, 0
	for _, e := range entries {
		w := 30 + textWidth(e.label, 12, 0.55) + 22
		if x+w > width-10 && x > plotLeft {
			x, row = plotLeft, row+1
		}
		ly := y + float64(row)*20
		dash := ""
		if e.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, e.dash)
		}
		fmt.Fprintf(&b, `<g class="legend"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"%s/>`, x, ly-4, x+24, ly-4, e.color, e.stroke, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#222222">%s</text></g>`+"\n", x+30, ly, esc(e.label))
		x += w
	}
	return b.String(), float64(row+1) * 20
}
