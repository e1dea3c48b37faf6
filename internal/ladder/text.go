package ladder

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// Terminal colours.
const (
	Reset   = "\x1b[0m"
	Red     = "\x1b[31m"
	Blue    = "\x1b[34m"
	Green   = "\x1b[32m"
	Yellow  = "\x1b[33m"
	Dim     = "\x1b[2m"
	Bold    = "\x1b[1m"
	Magenta = "\x1b[35m"
)

// width is the room between the two columns of states.
const width = 46

// Text draws events as the human ladder diagram: each line with its time,
// arrows between a client column and a server column, and the states of
// each side beside them.
type Text struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
}

// NewText draws on w, in colour if color is set.
func NewText(w io.Writer, color bool) *Text { return &Text{w: w, color: color} }

// Paint wraps s in colour c if color is set.
func Paint(color bool, c, s string) string {
	if !color {
		return s
	}
	return c + s + Reset
}

func (t *Text) paint(c, s string) string { return Paint(t.color, c, s) }

func stamp(ms float64) string { return fmt.Sprintf("%8.3fms", ms) }

// Emit draws one ladder event (header, segment, tls, state, note,
// section); other kinds are the caller's to print.
func (t *Text) Emit(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Kind {
	case KindTitle:
		fmt.Fprintln(t.w, e.Text)
	case KindHeader:
		fmt.Fprintf(t.w, "%10s  %-16s %-*s %s\n", "time", t.paint(Bold, e.Client), width, "", t.paint(Bold, e.Server))
	case KindSection:
		fmt.Fprintf(t.w, "\n%s\n", t.paint(Bold, "── "+e.Text))
	case KindNote:
		fmt.Fprintf(t.w, "%s  %s\n", stamp(e.T), t.paint(Dim, "   "+e.Text))
	case KindSegment, KindTLS:
		t.arrow(e)
	case KindState:
		to := t.paint(Yellow+Bold, e.ToState)
		if e.Side == "server" {
			fmt.Fprintf(t.w, "%s  %-14s %*s %s\n", stamp(e.T), "", width, t.paint(Dim, "server: "+e.FromState+" → "), to)
		} else {
			fmt.Fprintf(t.w, "%s  %s\n", stamp(e.T), t.paint(Dim, "client: "+e.FromState+" → ")+to)
		}
	}
}

// arrow draws a message from the client (to_server) or to it.
func (t *Text) arrow(e Event) {
	label := e.Label
	pad := width - len([]rune(label)) - 4
	if pad < 2 {
		pad = 2
	}
	var a string
	if e.Dir == ToServer {
		a = "── " + label + " " + strings.Repeat("─", pad) + "▶"
	} else {
		a = "◀" + strings.Repeat("─", pad) + " " + label + " ──"
	}
	fmt.Fprintf(t.w, "%s  %-14s %s %s\n", stamp(e.T), t.paint(Yellow, e.ClientState), t.paint(arrowColor(e), a), t.paint(Yellow, e.ServerState))
}

// arrowColor: TLS in magenta (bold but for application data), injected
// segments bold magenta, SYN, FIN and RST bold green, the rest blue.
func arrowColor(e Event) string {
	switch {
	case e.TLS != nil && e.TLS.Message == "ApplicationData":
		return Magenta
	case e.TLS != nil:
		return Magenta + Bold
	case e.Segment != nil && e.Segment.Injected:
		return Magenta + Bold
	case e.Segment != nil && hasControl(e.Segment.Flags):
		return Green + Bold
	}
	return Blue
}

func hasControl(flags string) bool {
	for _, f := range strings.Split(flags, "|") {
		if f == "SYN" || f == "FIN" || f == "RST" {
			return true
		}
	}
	return false
}
