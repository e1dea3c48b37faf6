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
	svgSize  = regexp.MustCompile(`<svg width="([0-9.]+)pt" height="([0-9.]+)pt" viewBox="0 0 ([0-9.]+) ([0-9.]+)"`)
	svgFlip  = regexp.MustCompile(`<g transform="scale\(1, -1\) translate\(0, -([0-9.]+)\)">`)
	svgGroup = regexp.MustCompile(`<g transform="([^"]*)">`)
	svgRot90 = regexp.MustCompile(`(?s)<g transform="rotate\(90\)">(.*?)</g>`)
	svgText  = regexp.MustCompile(`(?s)<text x="([-0-9.e]+)" y="([-0-9.e]+)" transform="([^"]*)"\s*style="[^"]*font-size:([0-9.]+)px">([^<]*)</text>`)
	svgPath  = regexp.MustCompile(`<path d="([^"]*)"`)
	svgPoint = regexp.MustCompile(`[ML]([-0-9.e]+),([-0-9.e]+)`)
)

// TestPlotsFitTheirCanvas renders every plot to SVG and checks that each
// horizontal text (the legend's entries among them) lies inside the
// picture (its viewBox): starts and ends inside it, with a few points to
// spare on the right for a viewer whose font runs a little wider than
// gonum's metrics, and its ascent and descent between the top and the
// bottom; that nothing is drawn on the right edge (the legend's thumbnails
// used to be cut there) or outside the picture. The echo samples include
// slow round trips, so that the latency legend's entries are as wide as a
// loaded machine makes them.
func TestPlotsFitTheirCanvas(t *testing.T) {
	b, rs := fakeResults()
	for j := range 50 {
		b.echoSamples[stackGVisor] = append(b.echoSamples[stackGVisor], int64(20_000_000+j*1000)) // 20 ms: "p99 20000 µs"
	}
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
			t.Fatalf("%s: no <svg width height viewBox>", pl.file)
		}
		width, _ := strconv.ParseFloat(m[1], 64)
		height, _ := strconv.ParseFloat(m[2], 64)
		if m[3] != m[1] || m[4] != m[2] {
			t.Fatalf("%s: viewBox %s×%s, size %s×%s", pl.file, m[3], m[4], m[1], m[2])
		}
		// gonum draws with y upwards: everything is inside one group
		// that flips the picture's height.
		if f := svgFlip.FindStringSubmatch(svg); f == nil || f[1] != m[2] {
			t.Fatalf("%s: not drawn in one group flipped over the height %s", pl.file, m[2])
		}
		for _, g := range svgGroup.FindAllStringSubmatch(svg, -1) {
			if g[1] != "rotate(90)" && !strings.HasPrefix(g[1], "scale(1, -1) translate(0, -") {
				t.Fatalf("%s: a group transformed by %q, which this test does not follow", pl.file, g[1])
			}
		}
		// box is where a text lies in the picture, from its bottom left
		// corner, y upwards: its x and y attributes, its size and
		// whether it sits in a rotate(90) group (the vertical axis label).
		box := func(tx []string, rotated bool) (s string, x0, x1, y0, y1 float64) {
			if tx[3] != "scale(1, -1)" {
				t.Fatalf("%s: text %q drawn with transform %q", pl.file, tx[5], tx[3])
			}
			x, _ := strconv.ParseFloat(tx[1], 64)
			y, _ := strconv.ParseFloat(tx[2], 64)
			size, _ := strconv.ParseFloat(tx[4], 64)
			s = html.UnescapeString(tx[5])
			st := style
			st.Font.Size = font.Length(vg.Points(size))
			w := float64(st.Width(s).Points())
			ext := st.FontExtents()
			asc, desc := float64(ext.Ascent.Points()), float64(ext.Descent.Points())
			if rotated {
				// rotate(90) takes the flipped text's (x, -y) to (y, x):
				// it reads upwards from x, its ascent to the left.
				return s, y - asc, y + desc, x, x + w
			}
			// The text flips back: its baseline is -y from the bottom.
			return s, x, x + w, -y - desc, -y + asc
		}
		legend, texts := 0, 0
		for _, rot := range svgRot90.FindAllStringSubmatch(svg, -1) {
			for _, tx := range svgText.FindAllStringSubmatch(rot[1], -1) {
				texts++
				s, x0, x1, y0, y1 := box(tx, true)
				if x0 < 0 || x1 > width || y0 < 0 || y1 > height-spare {
					t.Errorf("%s: vertical text %q spans x %.1f to %.1f, y %.1f to %.1f; the picture is %.0f×%.0f", pl.file, s, x0, x1, y0, y1, width, height)
				}
			}
		}
		for _, tx := range svgText.FindAllStringSubmatch(svgRot90.ReplaceAllString(svg, ""), -1) {
			texts++
			s, x0, x1, y0, y1 := box(tx, false)
			if x0 < 0 || x1 > width-spare || y0 < 0 || y1 > height {
				t.Errorf("%s: text %q spans x %.1f to %.1f, y %.1f to %.1f; the picture is %.0f×%.0f", pl.file, s, x0, x1, y0, y1, width, height)
			}
			for _, st := range benchStacks {
				if strings.HasPrefix(s, stackLabel[st]) {
					legend++
				}
			}
		}
		if texts == 0 {
			t.Fatalf("%s: no text parsed", pl.file)
		}
		if legend < len(benchStacks) {
			t.Errorf("%s: found %d legend entries, want at least %d", pl.file, legend, len(benchStacks))
		}
		for _, p := range svgPath.FindAllStringSubmatch(svg, -1) {
			for _, pt := range svgPoint.FindAllStringSubmatch(p[1], -1) {
				x, _ := strconv.ParseFloat(pt[1], 64)
				y, _ := strconv.ParseFloat(pt[2], 64)
				if x > width-1 || x < 0 || y < 0 || y > height {
					t.Errorf("%s: path %.60q reaches (%.1f, %.1f) of %.0f×%.0f", pl.file, p[1], x, y, width, height)
					break
				}
			}
		}
	}
}
