package lab

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ustack/internal/browsertest"
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

// TestLabHTMLInChromium: a lab's page, opened in headless Chromium, shows
// the picture: the screenshot has many colours, text, and the pale yellow
// of the state labels, which only the diagram uses.
func TestLabHTMLInChromium(t *testing.T) {
	bin := browsertest.Chromium(t)
	pagePath := filepath.Join(t.TempDir(), "handshake.html")
	if err := Run(io.Discard, "handshake", Options{Lang: "en", HTML: pagePath}); err != nil {
		t.Fatal(err)
	}
	s := browsertest.Measure(browsertest.Screenshot(t, bin, pagePath, 1200, 1600))
	t.Logf("screenshot: %d colours, %d dark pixels, %d yellow", s.Colours, s.Dark, s.Pill)
	if s.Colours < 50 || s.Dark < 2000 || s.Pill < 200 {
		t.Errorf("the screenshot looks blank: %d colours, %d dark pixels, %d pixels of the state labels' yellow", s.Colours, s.Dark, s.Pill)
	}
}
