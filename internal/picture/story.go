// Package picture draws the story of a demo or a lab, as its ladder.Events
// tell it, as a standalone SVG sequence diagram (with a plot of the
// congestion samples, if any) and as a self-contained HTML page.
package picture

import (
	"encoding/xml"
	"fmt"
	"strings"

	"ustack/internal/ladder"
)

// story is what the events tell, sorted for drawing.
type story struct {
	heading string // "lab handshake: the three-way handshake", or the demo's title
	lab     string // the lab's name, if any
	mode    string // how it ran (and, with --break, what is broken)
	client  string // the lifelines' titles
	server  string
	flow    []ladder.Event // segment, tls, state, note, section: drawn in order
	claims  []ladder.Event
	verdict *ladder.Event
	samples []ladder.Event
}

// parse sorts the events of one story.
func parse(events []ladder.Event) story {
	s := story{client: "client", server: "server"}
	header := false
	for _, e := range events {
		switch e.Kind {
		case ladder.KindTitle:
			s.heading = e.Text
		case ladder.KindLab:
			if e.LabInfo != nil {
				s.lab = e.Lab
				s.heading = "lab " + e.Lab + ": " + e.Title
				s.mode = strings.TrimSpace(e.Mode + " " + e.Text)
			}
		case ladder.KindHeader:
			if !header {
				s.client, s.server, header = e.Client, e.Server, true
			}
		case ladder.KindSegment, ladder.KindTLS, ladder.KindState, ladder.KindNote, ladder.KindSection:
			s.flow = append(s.flow, e)
		case ladder.KindClaim:
			s.claims = append(s.claims, e)
		case ladder.KindVerdict:
			v := e
			s.verdict = &v
		case ladder.KindSample:
			if e.Sample != nil {
				s.samples = append(s.samples, e)
			}
		}
	}
	return s
}

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// textWidth estimates the width of s in a font of the given size: ratio
// of the size for most characters (0.6 for monospace, 0.55 for
// sans-serif), the full size for CJK, which is drawn square.
func textWidth(s string, size, ratio float64) float64 {
	w := 0.0
	for _, r := range s {
		if r >= 0x2E80 {
			w += size
		} else {
			w += size * ratio
		}
	}
	return w
}

// wrap breaks s into lines no wider than max, between words where it can,
// anywhere in a word too long for a line (CJK text has no spaces).
func wrap(s string, max, size, ratio float64) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		cand := word
		if line != "" {
			cand = line + " " + word
		}
		if textWidth(cand, size, ratio) <= max {
			line = cand
			continue
		}
		if line != "" {
			lines = append(lines, line)
		}
		line = ""
		for _, r := range word {
			if line != "" && textWidth(line+string(r), size, ratio) > max {
				lines = append(lines, line)
				line = ""
			}
			line += string(r)
		}
	}
	if line != "" || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}

// fit shortens s to at most max wide, ending it with "…".
func fit(s string, max, size, ratio float64) string {
	if textWidth(s, size, ratio) <= max {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && textWidth(string(r)+"…", size, ratio) > max {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

// stamp renders a time on the ladder: "12.345 ms", "60.012 s".
func stamp(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.3f s", ms/1000)
	}
	return fmt.Sprintf("%.3f ms", ms)
}

// span renders an idle gap: "60 s", "1.5 s", "350 ms".
func span(ms float64) string {
	switch {
	case ms >= 10000:
		return fmt.Sprintf("%.0f s", ms/1000)
	case ms >= 1000:
		return fmt.Sprintf("%.3g s", ms/1000)
	}
	return fmt.Sprintf("%.0f ms", ms)
}
