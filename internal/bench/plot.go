package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The report's plots, drawn with gonum.org/v1/plot and written as SVG.

var stackColor = map[string]color.Color{
	stackKernel: color.RGBA{R: 0x77, G: 0x77, B: 0x77, A: 0xff},
	stackUstack: color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	stackGVisor: color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
}

var stackLabel = map[string]string{stackKernel: "kernel", stackUstack: "ustack", stackGVisor: "gVisor"}

// benchPlot is one plot file of the report.
type benchPlot struct {
	file, title string
}

// writePlots draws what the results hold and returns the files written.
func (b *bench) writePlots(dir string, rs []benchResult) ([]benchPlot, error) {
	var out []benchPlot
	type maker struct {
		file, title string
		draw        func([]benchResult) (*plot.Plot, error)
	}
	for _, m := range []maker{
		{"throughput.svg", "Bulk throughput per stack", plotThroughput},
		{"requests.svg", "Request and connection rates per stack", plotRequests},
		{"latency.svg", "1-byte echo round trip: distribution", b.plotLatency},
		{"loss.svg", "Goodput against loss, the stack sending and receiving", plotLoss},
	} {
		p, err := m.draw(rs)
		if err != nil {
			return out, fmt.Errorf("plot %s: %w", m.file, err)
		}
		if p == nil {
			continue // nothing measured for it
		}
		if err := savePlot(p, filepath.Join(dir, m.file)); err != nil {
			return out, fmt.Errorf("plot %s: %w", m.file, err)
		}
		out = append(out, benchPlot{m.file, m.title})
	}
	return out, nil
}

// The plots' size, and the margins kept free: on the right and at the top,
// gonum draws the data area and a right-hand legend up to the canvas's
// edge, where a viewer cuts the legend's thumbnails and its text when its
// font is a little wider than the one gonum measured with; on the left,
// gonum puts the vertical axis label's baseline less than its font's
// ascent from the edge, so that a tall glyph would be cut.
const (
	plotWidth, plotHeight = 7 * vg.Inch, 4 * vg.Inch
	plotMargin            = vg.Length(12)
	plotMarginLeft        = vg.Length(4)
)

// savePlot writes p as SVG, drawn inside the margins.
func savePlot(p *plot.Plot, name string) error {
	c := vgsvg.New(plotWidth, plotHeight)
	p.Draw(draw.Crop(draw.New(c), plotMarginLeft, -plotMargin, 0, -plotMargin))
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func newPlot(title, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	placeLegend(p, true)
	p.Y.Min = 0
	return p
}

// placeLegend puts the legend in the top or bottom right corner of the
// data area, clear of its edges and of the axis.
func placeLegend(p *plot.Plot, top bool) {
	p.Legend.Top, p.Legend.Left = top, false
	p.Legend.XOffs = -vg.Points(6)
	p.Legend.YOffs = -vg.Points(4)
	if !top {
		p.Legend.YOffs = vg.Points(6)
	}
}

// groupedBars draws one bar per stack in each group of metrics.
func groupedBars(p *plot.Plot, rs []benchResult, metrics []string, scale func(stack, metric string, v float64) (float64, bool)) (bool, error) {
	w := vg.Points(15)
	any := false
	for i, s := range benchStacks {
		vals := make(plotter.Values, len(metrics))
		for j, m := range metrics {
			v, ok := findResult(rs, s, m)
			if ok {
				v, ok = scale(s, m, v)
			}
			if ok {
				vals[j] = v
				any = true
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return false, err
		}
		bars.Color = stackColor[s]
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(i-1) * w
		p.Add(bars)
		p.Legend.Add(stackLabel[s], bars)
	}
	return any, nil
}

func plotThroughput(rs []benchResult) (*plot.Plot, error) {
	metrics := []string{"upload_gbps", "download_gbps"}
	p := newPlot("Bulk throughput, one connection (median)", "Gbit/s")
	ok, err := groupedBars(p, rs, metrics, func(_, _ string, v float64) (float64, bool) { return v, true })
	if err != nil || !ok {
		return nil, err
	}
	p.NominalX("upload (client to server)", "download (server to client)")
	if lim, ok := findResult(rs, stackUstack, "tun_limit_gbps"); ok {
		l := plotter.NewFunction(func(float64) float64 { return lim })
		l.Color = color.Black
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		l.Width = vg.Points(1)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("TUN limit (%.1f)", lim), l)
		p.Y.Max = math.Max(p.Y.Max, lim) * 1.35 // room for the legend
	}
	p.X.Min, p.X.Max = -0.6, 1.6
	return p, nil
}

// plotRequests shows each rate relative to the kernel's, which is 1.
func plotRequests(rs []benchResult) (*plot.Plot, error) {
	metrics := []string{"http_rps", "http_conn_per_s", "https_handshakes_per_s", "https_rps", "serve_http_rps", "serve_conn_per_s", "serve_https_rps"}
	p := newPlot("Request and connection rates, relative to the kernel (median)", "× kernel")
	ok, err := groupedBars(p, rs, metrics, func(s, m string, v float64) (float64, bool) {
		k, ok := findResult(rs, stackKernel, m)
		if !ok || k == 0 {
			return 0, false
		}
		return v / k, true
	})
	if err != nil || !ok {
		return nil, err
	}
	p.NominalX("HTTP", "HTTP\nnew conn", "HTTPS\nhandshake", "HTTPS", "serve\nHTTP", "serve\nnew conn", "serve\nHTTPS")
	p.X.Label.Text = "keep-alive requests unless named; serve: ustack serve against the others' bench server"
	p.Y.Max *= 1.3 // room for the legend
	return p, nil
}

// plotLatency draws the cumulative distribution of every echo round trip
// measured, per stack, on a log time axis.
func (b *bench) plotLatency([]benchResult) (*plot.Plot, error) {
	p := newPlot("1-byte echo round trip (all runs)", "fraction of round trips ≤ x")
	p.X.Label.Text = "round trip (µs)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	placeLegend(p, false)
	p.Y.Max = 1
	p.X.Tick.Marker = latencyTicks{}
	drawn := false
	for _, s := range benchStacks {
		samples := slices.Clone(b.echoSamples[s])
		if len(samples) == 0 {
			continue
		}
		slices.Sort(samples)
		const points = 400
		var xys plotter.XYs
		for i := range points + 1 {
			q := float64(i) / points
			v := percentile(samples, max(q, 1/float64(len(samples))))
			xys = append(xys, plotter.XY{X: float64(v) / 1e3, Y: q})
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = stackColor[s]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (p50 %.0f, p99 %.0f µs)", stackLabel[s], float64(percentile(samples, 0.5))/1e3, float64(percentile(samples, 0.99))/1e3), l)
		drawn = true
	}
	if !drawn {
		return nil, nil
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

// lossSeries are the loss plot's lines: the download (the stack sends),
// solid, and the upload (the stack receives), dashed.
var lossSeries = []struct {
	suffix  string
	metrics [2]string // at 1% and 5%
	dashed  bool
}{
	{" sending", [2]string{"goodput_loss1_gbps", "goodput_loss5_gbps"}, false},
	{" receiving", [2]string{"goodput_up_loss1_gbps", "goodput_up_loss5_gbps"}, true},
}

// plotLoss draws goodput at each loss rate measured, log scale.
func plotLoss(rs []benchResult) (*plot.Plot, error) {
	p := newPlot("Goodput against packet loss (median)", "Gbit/s (log)")
	p.X.Label.Text = "packet loss in each direction (%)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = math.Inf(1)
	drawn := false
	for _, ser := range lossSeries {
		for _, s := range benchStacks {
			var xys plotter.XYs
			for i, loss := range []float64{1, 5} {
				if v, ok := findResult(rs, s, ser.metrics[i]); ok && v > 0 {
					xys = append(xys, plotter.XY{X: loss, Y: v})
					p.Y.Min = math.Min(p.Y.Min, v)
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, sc, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			l.Color = stackColor[s]
			l.Width = vg.Points(1.5)
			sc.Color = stackColor[s]
			sc.Shape = draw.CircleGlyph{}
			if ser.dashed {
				l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
				sc.Shape = draw.RingGlyph{}
			}
			p.Add(l, sc)
			p.Legend.Add(stackLabel[s]+ser.suffix, l, sc)
			drawn = true
		}
	}
	if !drawn {
		return nil, nil
	}
	p.Y.Min /= 2
	p.Y.Max *= 30 // room for the legend
	p.X.Min, p.X.Max = 0, 6
	p.X.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 1, Label: "1"}, {Value: 5, Label: "5"}})
	p.Add(plotter.NewGrid())
	return p, nil
}

// latencyTicks marks 1, 2 and 5 times each power of ten on a log axis.
type latencyTicks struct{}

func (latencyTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for d := math.Pow(10, math.Floor(math.Log10(lo))); d <= hi; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := d * m; v >= lo && v <= hi {
				ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
			}
		}
	}
	return ts
}
