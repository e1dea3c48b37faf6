package picture

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"strconv"
	"strings"
	"testing"

	"ustack/internal/ladder"
)

// element is one element of a parsed SVG: its name, attributes, the text
// directly inside it and the classes of the elements around it.
type element struct {
	name  string
	attr  map[string]string
	text  string
	outer []string
}

// parseSVG decodes doc as XML from end to end and returns its elements;
// the root must be a standalone SVG with its size and viewBox.
func parseSVG(t *testing.T, doc string) []*element {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	var all, stack []*element
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &element{name: tok.Name.Local, attr: map[string]string{}}
			for _, a := range tok.Attr {
				e.attr[a.Name.Local] = a.Value
			}
			for _, o := range stack {
				e.outer = append(e.outer, o.attr["class"])
			}
			if len(all) == 0 && (e.name != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg" || e.attr["width"] == "" || e.attr["height"] == "" || e.attr["viewBox"] == "") {
				t.Fatalf("root %+v: want <svg xmlns=... width height viewBox>", tok)
			}
			all, stack = append(all, e), append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tok)
			}
		}
	}
	if len(all) == 0 {
		t.Fatal("empty document")
	}
	return all
}

func num(e *element, a string) (float64, bool) {
	v, err := strconv.ParseFloat(e.attr[a], 64)
	return v, err == nil
}

// checkInside fails for any coordinate outside the picture and for any
// text that (by the layout's own estimate of widths) runs past its edges.
func checkInside(t *testing.T, els []*element) {
	t.Helper()
	w, _ := num(els[0], "width")
	h, _ := num(els[0], "height")
	for _, e := range els[1:] {
		for _, a := range []string{"x", "y", "x1", "x2", "y1", "y2"} {
			if v, ok := num(e, a); ok && (v < 0 || (a[0] == 'x' && v > w) || (a[0] == 'y' && v > h)) {
				t.Errorf("<%s %s=%v> outside %vx%v", e.name, a, v, w, h)
			}
		}
		x, ok := num(e, "x")
		if !ok || strings.TrimSpace(e.text) == "" || (e.name != "text" && e.name != "tspan") {
			continue
		}
		size, ratio := 12.0, 0.55
		if v, ok := num(e, "font-size"); ok {
			size = v
		}
		if e.attr["font-family"] == "monospace" {
			ratio = 0.6
		}
		tw := textWidth(e.text, size, ratio)
		left, right := x, x+tw
		switch e.attr["text-anchor"] {
		case "end":
			left, right = x-tw, x
		case "middle":
			left, right = x-tw/2, x+tw/2
		}
		if left < 0 || right > w {
			t.Errorf("text %q spans %.0f to %.0f, outside 0 to %.0f", e.text, left, right, w)
		}
	}
}

func hasClass(e *element, c string) bool {
	return strings.Contains(" "+e.attr["class"]+" ", " "+c+" ")
}

// synthetic is a story with one of each thing the diagram draws.
func synthetic() []ladder.Event {
	seg := func(t float64, dir, label, flags string, dropped, injected bool) ladder.Event {
		return ladder.Event{T: t, Kind: ladder.KindSegment, Dir: dir, Label: label, ClientState: "SYN-SENT", ServerState: "LISTEN",
			Segment: &ladder.Segment{Flags: flags, Dropped: dropped, Injected: injected}}
	}
	return []ladder.Event{
		{Kind: ladder.KindLab, LabInfo: &ladder.LabInfo{Lab: "x", Title: `a <test> & "quotes"`, Mode: "virtual time"}},
		{Kind: ladder.KindHeader, Client: "client A", Server: "server B"},
		{Kind: ladder.KindNote, Text: "a note long enough to be wrapped over more than one line of the narration column, which is only so wide"},
		{Kind: ladder.KindState, Transition: &ladder.Transition{Side: "client", FromState: "CLOSED", ToState: "SYN-SENT", Cause: "app connect"}},
		seg(0, ladder.ToServer, "SYN seq=0", "SYN", false, false),
		seg(1, ladder.ToClient, "SYN+ACK seq=0 ack=1", "SYN|ACK", true, false),
		{T: 60001, Kind: ladder.KindNote, Text: "after a long wait"},
		{T: 60001, Kind: ladder.KindSection, Text: "an old segment"},
		seg(60002, ladder.ToServer, "ACK seq=5 ack=7", "ACK", false, true),
		{T: 60003, Kind: ladder.KindTLS, Dir: ladder.ToClient, Label: "TLS ServerHello", TLS: &ladder.TLS{Message: "ServerHello"}},
		{Kind: ladder.KindClaim, Text: "it held", Outcome: &ladder.Outcome{OK: true}},
		{Kind: ladder.KindClaim, Text: "it failed <badly>", Outcome: &ladder.Outcome{OK: false}},
		{Kind: ladder.KindVerdict, Text: "it failed <badly>", Outcome: &ladder.Outcome{OK: false}, LabInfo: &ladder.LabInfo{Lab: "x"}},
	}
}

// TestSVGDiagram: one arrow per segment and TLS message, the lost one
// stopping at an X, the injected one dashed, the TLS one named; a long
// gap is a break; text is escaped; nothing leaves the picture.
func TestSVGDiagram(t *testing.T) {
	var b bytes.Buffer
	if err := SVG(&b, synthetic()); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	els := parseSVG(t, doc)
	checkInside(t, els)
	arrows, texts := 0, map[string]bool{}
	for _, e := range els {
		texts[strings.TrimSpace(e.text)] = true
		if !hasClass(e, "arrow") {
			continue
		}
		arrows++
		switch {
		case hasClass(e, "dropped") && e.attr["data-dir"] != ladder.ToClient:
			t.Errorf("the lost arrow goes %s", e.attr["data-dir"])
		case hasClass(e, "tls") && e.attr["data-kind"] != "tls":
			t.Errorf("a tls arrow with data-kind %q", e.attr["data-kind"])
		}
	}
	if arrows != 4 {
		t.Errorf("%d arrows, want 4", arrows)
	}
	for _, want := range []string{"lost", "… 60 s …", "ServerHello", "SYN-SENT", "LISTEN", "client A", "server B", "an old segment", "after a long wait", "✘", "FAIL: it failed <badly>"} {
		if !texts[want] {
			t.Errorf("no text %q in the picture", want)
		}
	}
	if !strings.Contains(doc, `class="arrow segment injected"`) || !strings.Contains(doc, `stroke-dasharray="6 4"`) {
		t.Error("the injected segment is not dashed")
	}
	if !strings.Contains(doc, "a &lt;test&gt; &amp; &#34;quotes&#34;") {
		t.Error("the title is not escaped")
	}
}

// TestHTMLPage: the page holds the title, the picture inline, the story,
// each claim with its mark, and the verdict, and loads nothing from
// elsewhere.
func TestHTMLPage(t *testing.T) {
	var b bytes.Buffer
	if err := HTML(&b, synthetic(), Options{Answer: "because."}); err != nil {
		t.Fatal(err)
	}
	page := html.UnescapeString(b.String())
	for _, want := range []string{"<!DOCTYPE html>", `<meta charset="utf-8">`, `<h1>lab x: a <test> & "quotes"</h1>`, "because.", "<svg xmlns=",
		"<h3>an old segment</h3>", "after a long wait", `<span class="ok">✔</span> it held`, `<span class="no">✘</span> it failed <badly>`, "FAIL: it failed <badly>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	for _, bad := range []string{"<script", "src=", `href="http`, "@import", "url("} {
		if strings.Contains(b.String(), bad) {
			t.Errorf("page has %q: not self-contained", bad)
		}
	}
}

// samples are two senders' congestion states: one whose ssthresh is set
// after a loss, one whose ssthresh stays "infinite".
func samples() []ladder.Event {
	var ev []ladder.Event
	for i := range 40 {
		t := float64(i) * 50
		a := &ladder.Sample{Series: "cubic", Cwnd: 14480 + i*1448, InFlight: 10000 + i*1000}
		if i >= 20 {
			a.Cwnd, a.Ssthresh = 30000+(i-20)*700, 30000
		}
		b := &ladder.Sample{Series: "newreno+sack", Cwnd: 14480 + i*2000, Ssthresh: 1 << 30, InFlight: 12000 + i*1500}
		ev = append(ev, ladder.Event{T: t, Kind: ladder.KindSample, Sample: a}, ladder.Event{T: t, Kind: ladder.KindSample, Sample: b})
	}
	return ev
}

// TestSVGPlot: the samples become step lines, one colour per series and
// one style per value, with a legend inside the picture; an ssthresh far
// above every window is left out instead of squashing the lines.
func TestSVGPlot(t *testing.T) {
	var b bytes.Buffer
	if err := SVG(&b, append(synthetic(), samples()...)); err != nil {
		t.Fatal(err)
	}
	els := parseSVG(t, b.String())
	checkInside(t, els)
	lines := map[string]*element{}
	legend := map[string]bool{}
	for _, e := range els {
		if hasClass(e, "plot-line") {
			lines[e.attr["data-series"]+"/"+e.attr["data-metric"]] = e
		}
		if e.name == "text" && len(e.outer) > 0 && strings.Contains(e.outer[len(e.outer)-1], "legend") {
			legend[e.text] = true
		}
		if e.name == "text" && strings.HasSuffix(e.text, "M") {
			t.Errorf("a tick of %q: the infinite ssthresh set the scale", e.text)
		}
	}
	want := []string{"cubic/cwnd", "cubic/ssthresh", "cubic/bytes in flight", "newreno+sack/cwnd", "newreno+sack/bytes in flight"}
	if len(lines) != len(want) {
		t.Errorf("lines %v, want %v", keys(lines), want)
	}
	for _, k := range want {
		if lines[k] == nil {
			t.Errorf("no line %s", k)
		}
	}
	if a, c := lines["cubic/cwnd"], lines["newreno+sack/cwnd"]; a != nil && c != nil && a.attr["stroke"] == c.attr["stroke"] {
		t.Errorf("both series drawn in %s", a.attr["stroke"])
	}
	if l := lines["newreno+sack/cwnd"]; l != nil {
		first, last := pathY(l.attr["d"], true), pathY(l.attr["d"], false)
		if !(last < first) {
			t.Errorf("a growing window should go up the page: y %v to %v", first, last)
		}
	}
	for _, k := range []string{"cubic", "newreno+sack", "cwnd", "ssthresh", "bytes in flight"} {
		if !legend[k] {
			t.Errorf("legend lacks %q (has %v)", k, legend)
		}
	}
}

// TestSVGPlotLegendWraps: many series with long names wrap the legend
// into rows that stay inside the picture.
func TestSVGPlotLegendWraps(t *testing.T) {
	var ev []ladder.Event
	for i := range 9 {
		for j := range 5 {
			ev = append(ev, ladder.Event{T: float64(j), Kind: ladder.KindSample, Sample: &ladder.Sample{Series: fmt.Sprintf("a rather long series name number %d", i), Cwnd: 1000 * (i + j + 1)}})
		}
	}
	var b bytes.Buffer
	if err := SVG(&b, ev); err != nil {
		t.Fatal(err)
	}
	checkInside(t, parseSVG(t, b.String()))
}

func keys(m map[string]*element) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}

// pathY is the y of a path's first or last point.
func pathY(d string, first bool) float64 {
	f := strings.Fields(d)
	if first {
		v, _ := strconv.ParseFloat(f[1], 64)
		return v
	}
	v, _ := strconv.ParseFloat(strings.TrimPrefix(f[len(f)-1], "V"), 64)
	return v
}

// TestWrap: lines stay under the width; a word too long is cut; CJK text
// counts as wide.
func TestWrap(t *testing.T) {
	for _, s := range []string{"one two three four five six seven eight nine ten", "supercalifragilisticexpialidocious", "三次握手的第三个报文段可以携带数据也可以不携带数据"} {
		lines := wrap(s, 60, 10, 0.6)
		if len(lines) < 2 {
			t.Errorf("%q: one line", s)
		}
		for _, l := range lines {
			if textWidth(l, 10, 0.6) > 60 {
				t.Errorf("%q: line %q too wide", s, l)
			}
		}
		if strings.Join(lines, "") != strings.ReplaceAll(s, " ", "") && strings.Join(lines, " ") != s {
			t.Errorf("%q wrapped to %q: text lost", s, lines)
		}
	}
}
