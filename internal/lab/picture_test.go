package lab

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"html"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ustack/internal/ladder"
	"ustack/internal/picture"
)

// labEvents runs a lab in memory as `ustack lab --svg` would and returns
// every event its pictures are drawn from, and whether it passed.
func labEvents(t *testing.T, sc scenario, opts Options) ([]ladder.Event, bool) {
	t.Helper()
	if opts.Lang == "" {
		opts.Lang = "en"
	}
	pic := ladder.NewRecorder()
	ok, _ := runLab(io.Discard, newSink(io.Discard, opts), sc, opts, pic)
	return pic.Events(), ok
}

// svgArrows decodes doc as XML from end to end and counts the elements
// of class arrow.
func svgArrows(t *testing.T, doc []byte) int {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	n, root := 0, false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if !root && (se.Name.Local != "svg" || se.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("root element %v, want svg in the SVG namespace", se.Name)
			}
			root = true
			for _, a := range se.Attr {
				if a.Name.Local == "class" && strings.HasPrefix(a.Value, "arrow ") {
					n++
				}
			}
		}
	}
	if !root {
		t.Fatal("no root element")
	}
	return n
}

// TestLabPictures: every lab's picture is XML with one arrow per segment
// and TLS message the lab drew, and its page holds every claim, marked,
// and the verdict; in text mode and in JSON mode alike.
func TestLabPictures(t *testing.T) {
	for _, sc := range labScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ev, ok := labEvents(t, sc, Options{JSON: sc.name == "handshake"})
			if !ok {
				t.Fatalf("lab %s failed", sc.name)
			}
			arrows, claims := 0, 0
			for _, e := range ev {
				switch e.Kind {
				case ladder.KindSegment, ladder.KindTLS:
					arrows++
				case ladder.KindClaim:
					claims++
				}
			}
			var svg, page bytes.Buffer
			if err := picture.SVG(&svg, ev); err != nil {
				t.Fatal(err)
			}
			if n := svgArrows(t, svg.Bytes()); n != arrows || n == 0 {
				t.Errorf("%d arrows in the picture, %d segment and tls events", n, arrows)
			}
			if err := picture.HTML(&page, ev, picture.Options{Answer: sc.answer}); err != nil {
				t.Fatal(err)
			}
			p := html.UnescapeString(page.String())
			for _, e := range ev {
				if e.Kind == ladder.KindClaim && !strings.Contains(p, "✔</span> "+e.Text) {
					t.Errorf("the page lacks the claim %q", e.Text)
				}
			}
			if claims == 0 || !strings.Contains(p, `class="verdict ok">PASS`) || !strings.Contains(p, sc.answer) {
				t.Errorf("%d claims; no PASS or no answer in the page", claims)
			}
		})
	}
}

// TestLabFailedPicture: a lab that fails draws its ✘ and its FAIL.
func TestLabFailedPicture(t *testing.T) {
	sc, _ := byName("time-wait")
	ev, ok := labEvents(t, sc, Options{Break: breakSkipTimeWait})
	if ok {
		t.Fatal("the broken lab passed")
	}
	var page bytes.Buffer
	if err := picture.HTML(&page, ev, picture.Options{}); err != nil {
		t.Fatal(err)
	}
	p := html.UnescapeString(page.String())
	if !strings.Contains(p, "✘</span> the old segment does not reach the new connection") || !strings.Contains(p, `class="verdict no">FAIL: `) {
		t.Errorf("no ✘ or FAIL in the page of a failed lab")
	}
}

// TestLabAllPictures: lab all --svg DIR --html DIR writes each lab's
// picture and page, and an index linking them; with -6 too, where every
// lab passes, the pictures show the IPv6 addresses, the index says IPv6
// and the mss-mtu page gives IPv6's answer.
func TestLabAllPictures(t *testing.T) {
	for _, fam := range labFamilies {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			svgDir, htmlDir := filepath.Join(dir, "svg"), filepath.Join(dir, "html")
			var out bytes.Buffer
			if err := All(&out, Options{Lang: "en", SVG: svgDir, HTML: htmlDir, IPv6: fam.v6}); err != nil {
				t.Fatalf("%v:\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), fmt.Sprintf("all %d scenarios PASS", len(labScenarios))) {
				t.Errorf("no summary of every lab passing:\n%s", out.String())
			}
			index, err := os.ReadFile(filepath.Join(htmlDir, "index.html"))
			if err != nil {
				t.Fatal(err)
			}
			if fam.v6 != bytes.Contains(index, []byte("over IPv6")) {
				t.Errorf("index.html should say over IPv6 exactly with -6")
			}
			for _, sc := range labScenarios {
				svg, err := os.ReadFile(filepath.Join(svgDir, sc.name+".svg"))
				if err != nil {
					t.Fatal(err)
				}
				svgArrows(t, svg)
				if !bytes.Contains(svg, []byte(html.EscapeString(fam.server))) || bytes.Contains(svg, []byte(fam.other)) {
					t.Errorf("%s.svg should show %s and no address in %s", sc.name, fam.server, fam.other)
				}
				page, err := os.ReadFile(filepath.Join(htmlDir, sc.name+".html"))
				if err != nil {
					t.Error(err)
				}
				if p := html.UnescapeString(string(page)); !strings.Contains(p, sc.answerIn(Options{IPv6: fam.v6})) {
					t.Errorf("%s.html lacks its answer", sc.name)
				}
				if !bytes.Contains(index, []byte(`href="`+sc.name+`.html"`)) || !bytes.Contains(index, []byte(`href="../svg/`+sc.name+`.svg"`)) {
					t.Errorf("index.html does not link %s's page and picture", sc.name)
				}
			}
		})
	}
}

// chromium is the browser the screenshot test drives: under CI it must be
// there (.ci/run installs it).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium (CI is set, so this is a failure; .ci/run installs it)")
	}
	t.Skip("no chromium: apt-get install chromium")
	return ""
}

// TestLabHTMLInChromium: a lab's page, opened in headless Chromium, shows
// the picture: the screenshot has many colours, text, and the pale yellow
// of the state labels, which only the diagram uses.
func TestLabHTMLInChromium(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	pagePath := filepath.Join(dir, "handshake.html")
	shot := filepath.Join(dir, "shot.png")
	if err := Run(io.Discard, "handshake", Options{Lang: "en", HTML: pagePath}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--screenshot="+shot, "--window-size=1200,1600", "file://"+pagePath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot: %v", err)
	}
	colours, dark, pill := screenshotStats(img)
	t.Logf("screenshot: %d colours, %d dark pixels, %d yellow", colours, dark, pill)
	if colours < 50 || dark < 2000 || pill < 200 {
		t.Errorf("the screenshot looks blank: %d colours, %d dark pixels, %d pixels of the state labels' yellow", colours, dark, pill)
	}
}

// screenshotStats counts an image's distinct colours, its dark pixels,
// and its pixels of the state labels' pale yellow (#fff4cc).
func screenshotStats(img image.Image) (colours, dark, pill int) {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			seen[[3]uint32{r, g, bl}] = true
			if r+g+bl < 3*90 {
				dark++
			}
			if r >= 250 && g >= 238 && g <= 250 && bl >= 196 && bl <= 212 {
				pill++
			}
		}
	}
	return len(seen), dark, pill
}
