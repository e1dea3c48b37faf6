package bench

import (
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
)

// fakeResults gives every metric a value per stack (ustack twice and gVisor
// three times the kernel's), and every stack echo samples.
func fakeResults() (*bench, []benchResult) {
	b := &bench{echoSamples: map[string][]int64{}}
	var rs []benchResult
	for i, s := range benchStacks {
		for j := range 1000 {
			b.echoSamples[s] = append(b.echoSamples[s], int64(15000+j*80*(i+1)))
		}
		for _, m := range benchMetrics {
			v := float64(i+1) * 1.7
			rs = append(rs, benchResult{Stack: s, Metric: m.name, Value: &v})
		}
	}
	return b, rs
}

var (
	svgSize  = regexp.MustCompile(`<svg width="([0-9.]+)pt" height="([0-9.]+)pt"`)
	svgText  = regexp.MustCompile(`(?s)<text x="([-0-9.e]+)" y="[-0-9.e]+" transform="([^"]*)"\s*style="[^"]*font-size:([0-9.]+)px">([^<]*)</text>`)
	svgPath  = regexp.MustCompile(`<path d="([^"]*)"`)
	svgPoint = regexp.MustCompile(`[ML]([-0-9.e]+),([-0-9.e]+)`)
)

// TestPlotsFitTheirCanvas renders every plot to SVG and checks that each
// horizontal text (the legend's entries among them) starts and ends inside
// the picture, with a few points to spare on the right for a viewer whose
// font runs a little wider than gonum's metrics, and that nothing is drawn
// on the right edge (the legend's thumbnails used to be cut there).
func TestPlotsFitTheirCanvas(t *testing.T) {
	b, rs := fakeResults()
	dir := t.TempDir()
	plots, err := b.writePlots(dir, rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(plots) != 4 {
		t.Fatalf("wrote %d plots, want 4: %v", len(plots), plots)
	}
	style := plot.New().Legend.TextStyle
	const spare = 4 // points
	for _, pl := range plots {
		raw, err := os.ReadFile(filepath.Join(dir, pl.file))
		if err != nil {
			t.Fatal(err)
		}
		svg := string(raw)
		m := svgSize.FindStringSubmatch(svg)
		if m == nil {
			t.Fatalf("%s: no <svg width height>", pl.file)
		}
		width, _ := strconv.ParseFloat(m[1], 64)
		texts := svgText.FindAllStringSubmatch(svg, -1)
		if len(texts) == 0 {
			t.Fatalf("%s: no text parsed", pl.file)
		}
		legend := 0
		for _, tx := range texts {
			if strings.Contains(tx[2], "rotate") {
				continue // the vertical axis label
			}
			x, _ := strconv.ParseFloat(tx[1], 64)
			size, _ := strconv.ParseFloat(tx[3], 64)
			s := html.UnescapeString(tx[4])
			st := style
			st.Font.Size = font.Length(vg.Points(size))
			end := x + float64(st.Width(s).Points())
			if x < 0 || end > width-spare {
				t.Errorf("%s: text %q spans x %.1f to %.1f; the picture is %.0f wide", pl.file, s, x, end, width)
			}
			for _, st := range benchStacks {
				if strings.HasPrefix(s, stackLabel[st]) {
					legend++
				}
			}
		}
		if legend < len(benchStacks) {
			t.Errorf("%s: found %d legend entries, want at least %d", pl.file, legend, len(benchStacks))
		}
		for _, p := range svgPath.FindAllStringSubmatch(svg, -1) {
			for _, pt := range svgPoint.FindAllStringSubmatch(p[1], -1) {
				x, _ := strconv.ParseFloat(pt[1], 64)
				if x > width-1 && !strings.HasPrefix(p[1], "M0,0L"+m[1]) { // the background
					t.Errorf("%s: path %.60q reaches x %.1f of %.0f", pl.file, p[1], x, width)
					break
				}
			}
		}
	}
}
