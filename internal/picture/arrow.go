package picture

import (
	"fmt"
	"math"
	"strings"

	"ustack/internal/ladder"
)

// arrowStyle is how one segment or TLS message is drawn.
type arrowStyle struct {
	color, dash, label, class string
	bold                      bool
}

// styleOf: TLS messages in purple, labelled by the message's name; TCP
// segments with the ladder's label, SYN, FIN and RST in green, the rest in
// blue; injected segments dashed, in magenta.
func styleOf(e ladder.Event) arrowStyle {
	s := arrowStyle{color: colData, label: e.Label, class: "arrow segment"}
	switch {
	case e.Kind == ladder.KindTLS && e.TLS != nil:
		s.color, s.class, s.bold = colTLS, "arrow tls", true
		switch e.TLS.Message {
		case "Alert":
			s.label = strings.TrimPrefix(e.Label, "TLS ")
		case "ApplicationData":
			s.label, s.bold = fmt.Sprintf("ApplicationData, %d bytes", e.TLS.Bytes), false
		default:
			s.label = e.TLS.Message
		}
	case e.Kind == ladder.KindTLS:
		s.color, s.class = colTLS, "arrow tls"
	case e.Segment != nil && e.Segment.Injected:
		s.color, s.dash, s.class = colInjected, "6 4", "arrow segment injected"
	case e.Segment != nil && hasControl(e.Segment.Flags):
		s.color = colControl
	}
	if e.Segment != nil && e.Segment.Dropped {
		s.class += " dropped"
	}
	return s
}

func hasControl(flags string) bool {
	for _, f := range strings.Split(flags, "|") {
		if f == "SYN" || f == "FIN" || f == "RST" {
			return true
		}
	}
	return false
}

// arrow draws a segment or a TLS message as a sloped arrow from its
// sender's lifeline down to its receiver's, labelled above its middle; a
// lost segment stops halfway at an X. The states beside it are written
// where they changed.
func (l *layout) arrow(e ladder.Event) {
	st := styleOf(e)
	top := l.row(arrowH)
	toServer := e.Dir == ladder.ToServer
	x1, x2 := cliX, srvX
	if !toServer {
		x1, x2 = srvX, cliX
	}
	y1, y2 := top+16, top+16+arrowDr
	dropped := e.Segment != nil && e.Segment.Dropped
	dash := ""
	if st.dash != "" {
		dash = fmt.Sprintf(` stroke-dasharray="%s"`, st.dash)
	}
	fmt.Fprintf(&l.b, `<g class="%s" data-kind="%s" data-dir="%s" data-t="%g">`, st.class, e.Kind, e.Dir, e.T)
	fmt.Fprintf(&l.b, `<title>%s</title>`, esc(e.Label))
	fmt.Fprintf(&l.b, `<text x="%.1f" y="%.1f" font-family="monospace" font-size="10" fill="%s">%s</text>`, timeX, y1+4, colNote, esc(stamp(e.T)))
	weight := ""
	if st.bold {
		weight = ` font-weight="bold"`
	}
	fmt.Fprintf(&l.b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-family="monospace" font-size="11"%s fill="%s">%s</text>`,
		(cliX+srvX)/2, top+11, weight, st.color, esc(fit(st.label, srvX-cliX-24, 11, 0.6)))
	if dropped {
		xm, ym := (x1+x2)/2, (y1+y2)/2
		fmt.Fprintf(&l.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.6"%s/>`, x1, y1, xm, ym, st.color, dash)
		for _, d := range []float64{-1, 1} {
			fmt.Fprintf(&l.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2.4"/>`, xm-6, ym-6*d, xm+6, ym+6*d, colLost)
		}
		fmt.Fprintf(&l.b, `<text x="%.1f" y="%.1f" font-size="11" font-weight="bold" fill="%s">lost</text>`, xm+10, ym+14, colLost)
	} else {
		l.b.WriteString(arrowLine(x1, y1, x2, y2, st.color, dash))
	}
	l.b.WriteString("</g>\n")
	cy, sy := y1, y2
	if !toServer {
		cy, sy = y2, y1
	}
	if e.ClientState != l.cli {
		l.state(true, e.ClientState, "client: "+e.ClientState, cy+4)
	}
	if e.ServerState != l.srv {
		l.state(false, e.ServerState, "server: "+e.ServerState, sy+4)
	}
}

// arrowLine is a line from (x1, y1) to (x2, y2) ending in a filled head.
func arrowLine(x1, y1, x2, y2 float64, color, dash string) string {
	dx, dy := x2-x1, y2-y1
	n := math.Hypot(dx, dy)
	ux, uy := dx/n, dy/n
	bx, by := x2-10*ux, y2-10*uy // the head's base
	px, py := -uy*4.5, ux*4.5
	return fmt.Sprintf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.6"%s/>`+
		`<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`,
		x1, y1, bx+2*ux, by+2*uy, color, dash, x2, y2, bx+px, by+py, bx-px, by-py, color)
}

// verdict writes the claims, each with ✔ or ✘, and PASS or FAIL under the
// diagram, and moves *bottom below them.
func (l *layout) verdict(s story, bottom *float64) {
	if len(s.claims) == 0 && s.verdict == nil {
		return
	}
	y := *bottom + 10
	for _, c := range s.claims {
		mark, color := "✔", colControl
		if c.Outcome == nil || !c.OK {
			mark, color = "✘", colLost
		}
		for i, line := range wrap(c.Text, width-2*timeX-24, 12, 0.55) {
			y += 16
			if i == 0 {
				fmt.Fprintf(&l.b, `<text class="claim" x="%.1f" y="%.1f" font-weight="bold" fill="%s">%s</text>`, timeX, y, color, mark)
			}
			fmt.Fprintf(&l.b, `<text x="%.1f" y="%.1f" fill="#222222">%s</text>`+"\n", timeX+20, y, esc(line))
		}
	}
	if s.verdict != nil {
		y += 24
		text, color := "PASS", colControl
		if s.verdict.Outcome == nil || !s.verdict.OK {
			text, color = "FAIL: "+s.verdict.Text, colLost
		}
		fmt.Fprintf(&l.b, `<text class="verdict" x="%.1f" y="%.1f" font-size="15" font-weight="bold" fill="%s">%s</text>`+"\n", timeX, y, color, esc(fit(text, width-2*timeX, 15, 0.6)))
	}
	*bottom = y + 8
}
