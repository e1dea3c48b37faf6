package picture

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strings"

	"ustack/internal/ladder"
)

// The geometry of the diagram, in pixels. Time flows down; the client's
// lifeline is on the left, the server's on the right, each side's states
// beside its lifeline, the narration in a column on the far right.
const (
	width    = 1200.0
	timeX    = 8.0   // the left edge of the time stamps
	cliX     = 210.0 // the client's lifeline
	srvX     = 650.0 // the server's lifeline
	notesX   = 800.0 // the left edge of the narration
	notesW   = 390.0
	topY     = 96.0 // where the lifelines' story starts
	noteSize = 11.0
	noteLine = 13.5
	// Time on the page: pxPerMs of height for each millisecond between
	// two events, at most idleMs worth; a longer gap is drawn as a break.
	pxPerMs = 0.1
	idleMs  = 300.0
	breakH  = 28.0
	arrowH  = 36.0 // an arrow's row: label, then a drop of arrowDrop
	arrowDr = 14.0
	stateH  = 20.0
	secH    = 32.0
)

// Colours.
const (
	colData     = "#1f5fa8"
	colControl  = "#1a7f37"
	colTLS      = "#8e24aa"
	colInjected = "#c2185b"
	colLost     = "#d32f2f"
	colState    = "#8a5a00"
	colStateBg  = "#fff4cc"
	colNote     = "#666666"
	colBand     = "#e8eef6"
	colLine     = "#9aa5b1"
)

// layout is the diagram being drawn: its elements, and the cursor.
type layout struct {
	b      bytes.Buffer
	y      float64 // where the next row of the lifelines starts
	noteY  float64 // where the next note may start
	lastT  float64
	begun  bool
	breaks [][2]float64 // the lifelines are interrupted there
	cli    string       // each side's state as drawn last
	srv    string
}

// SVG writes the story the events tell as a standalone SVG document: the
// sequence diagram and, if the story has congestion samples, their plot
// under it.
func SVG(w io.Writer, events []ladder.Event) error {
	_, err := io.WriteString(w, svgDoc(parse(events), true))
	return err
}

// svgDoc renders the whole document; claims adds the claims and the
// verdict under the diagram (a page lists them itself).
func svgDoc(s story, claims bool) string {
	l := &layout{y: topY, noteY: topY}
	l.initialStates(s.flow)
	for _, e := range s.flow {
		l.event(e)
	}
	bottom := math.Max(l.y, l.noteY) + 16
	if claims {
		l.verdict(s, &bottom)
	}
	var plotSVG string
	if len(s.samples) > 0 {
		var h float64
		plotSVG, h = plotSamples(s.samples, bottom+10)
		bottom += 10 + h
	}
	height := math.Ceil(bottom + 12)
	var out strings.Builder
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&out, "<title>%s</title>\n", esc(s.heading))
	fmt.Fprintf(&out, `<rect x="0" y="0" width="%.0f" height="%.0f" fill="#ffffff"/>`+"\n", width, height)
	out.WriteString(heading(s))
	out.WriteString(lifelines(s, l.breaks, math.Max(l.y, l.noteY)+4))
	out.Write(l.b.Bytes())
	out.WriteString(plotSVG)
	out.WriteString("</svg>\n")
	return out.String()
}

// heading draws the title, the mode, and the lifelines' titles.
func heading(s story) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<text x="%.1f" y="24" font-size="16" font-weight="bold" fill="#111111">%s</text>`+"\n", timeX, esc(fit(s.heading, width-2*timeX, 16, 0.6)))
	if s.mode != "" {
		fmt.Fprintf(&b, `<text x="%.1f" y="42" font-size="11" fill="%s">%s</text>`+"\n", timeX, colNote, esc(fit(s.mode, width-2*timeX, 11, 0.55)))
	}
	for _, c := range []struct {
		x    float64
		name string
	}{{cliX, s.client}, {srvX, s.server}} {
		name := fit(c.name, 390, 12, 0.6)
		w := textWidth(name, 12, 0.6) + 16
		fmt.Fprintf(&b, `<rect x="%.1f" y="54" width="%.1f" height="24" rx="4" fill="#f3f5f8" stroke="#44505c"/>`+"\n", c.x-w/2, w)
		fmt.Fprintf(&b, `<text x="%.1f" y="70" text-anchor="middle" font-weight="bold" fill="#111111">%s</text>`+"\n", c.x, esc(name))
	}
	return b.String()
}

// lifelines draws the two vertical lines from the titles to bottom,
// interrupted by the breaks, each marked with two slashes.
func lifelines(s story, breaks [][2]float64, bottom float64) string {
	var b strings.Builder
	for _, x := range []float64{cliX, srvX} {
		y := 78.0
		for _, br := range append(breaks, [2]float64{bottom, bottom}) {
			if br[0] > y {
				fmt.Fprintf(&b, `<line class="lifeline" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`+"\n", x, y, x, br[0], colLine)
			}
			if br[1] > br[0] {
				for _, d := range []float64{-3, 3} {
					fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`+"\n", x-6, br[0]+d+4, x+6, br[0]+d-4+(br[1]-br[0])/2, colLine)
				}
			}
			y = br[1]
		}
	}
	return b.String()
}

// event draws one event of the flow.
func (l *layout) event(e ladder.Event) {
	l.advance(e.T)
	switch e.Kind {
	case ladder.KindNote:
		l.note(e.Text)
	case ladder.KindSection:
		l.section(e.Text)
	case ladder.KindState:
		if e.Transition != nil {
			l.state(e.Side == "client", e.ToState, e.FromState+" → "+e.ToState+" ("+e.Cause+")", l.row(stateH)+14)
		}
	case ladder.KindSegment, ladder.KindTLS:
		l.arrow(e)
	}
}

// row takes h of height for the lifelines, after the notes before it,
// and returns its top.
func (l *layout) row(h float64) float64 {
	top := math.Max(l.y, l.noteY)
	l.y = top + h
	return top
}

// advance moves the cursor down as time passed since the last event: a
// little for a short gap, a break marker for a long one.
func (l *layout) advance(t float64) {
	if !l.begun {
		l.lastT, l.begun = t, true
		return
	}
	dt := t - l.lastT
	l.lastT = t
	switch {
	case dt <= 0:
	case dt > idleMs:
		top := l.row(breakH)
		l.breaks = append(l.breaks, [2]float64{top + 2, top + breakH - 2})
		fmt.Fprintf(&l.b, `<text class="break" x="%.1f" y="%.1f" text-anchor="middle" font-style="italic" fill="%s">… %s …</text>`+"\n", (cliX+srvX)/2, top+breakH/2+4, colNote, esc(span(dt)))
	default:
		l.y += dt * pxPerMs
	}
}

// note writes a narration line in the column on the right, from the
// cursor on, wrapped.
func (l *layout) note(text string) {
	top := math.Max(l.y, l.noteY)
	lines := wrap(text, notesW, noteSize, 0.6)
	fmt.Fprintf(&l.b, `<text class="note" x="%.1f" y="%.1f" font-size="%.0f" fill="%s">`, notesX, top+noteSize, noteSize, colNote)
	for i, s := range lines {
		dy := 0.0
		if i > 0 {
			dy = noteLine
		}
		fmt.Fprintf(&l.b, `<tspan x="%.1f" dy="%.1f">%s</tspan>`, notesX, dy, esc(s))
	}
	l.b.WriteString("</text>\n")
	l.noteY = top + float64(len(lines))*noteLine + 3
}

// section draws a heading as a band across the picture.
func (l *layout) section(text string) {
	top := l.row(secH) + 4
	fmt.Fprintf(&l.b, `<rect class="section" x="0" y="%.1f" width="%.0f" height="22" fill="%s"/>`+"\n", top, width, colBand)
	fmt.Fprintf(&l.b, `<text x="%.1f" y="%.1f" font-size="13" font-weight="bold" fill="#223344">%s</text>`+"\n", timeX, top+16, esc(fit(text, width-2*timeX, 13, 0.6)))
	l.noteY = l.y
}

// state writes a side's state beside its lifeline (client: left of it,
// server: right of it) at baseline y, with a tick on the lifeline.
func (l *layout) state(client bool, st, tip string, y float64) {
	if st == "" {
		return
	}
	if client {
		l.cli = st
	} else {
		l.srv = st
	}
	w := textWidth(st, 11, 0.6) + 10
	x, anchor := cliX-8-w, "end"
	tx, lx := cliX-13, cliX
	if !client {
		x, anchor, tx, lx = srvX+8, "start", srvX+13, srvX
	}
	fmt.Fprintf(&l.b, `<g class="state"><title>%s</title><rect x="%.1f" y="%.1f" width="%.1f" height="16" rx="3" fill="%s"/>`, esc(tip), x, y-12, w, colStateBg)
	fmt.Fprintf(&l.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`, lx-5, y-4, lx+5, y-4, colState)
	fmt.Fprintf(&l.b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-family="monospace" font-size="11" font-weight="bold" fill="%s">%s</text></g>`+"\n", tx, y, anchor, colState, esc(st))
}

// initialStates writes each side's first state at the top of its
// lifeline: where its first transition starts from, or the state beside
// its first arrow.
func (l *layout) initialStates(flow []ladder.Event) {
	var cli, srv string
	for _, e := range flow {
		switch {
		case e.Kind == ladder.KindState && e.Transition != nil && e.Side == "client" && cli == "":
			cli = e.FromState
		case e.Kind == ladder.KindState && e.Transition != nil && e.Side == "server" && srv == "":
			srv = e.FromState
		case e.Kind == ladder.KindSegment || e.Kind == ladder.KindTLS:
			if cli == "" {
				cli = e.ClientState
			}
			if srv == "" {
				srv = e.ServerState
			}
		}
		if cli != "" && srv != "" {
			break
		}
	}
	if cli == "" && srv == "" {
		return
	}
	y := l.row(stateH) + 14
	l.state(true, cli, "client: "+cli, y)
	l.state(false, srv, "server: "+srv, y)
}
