package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario is one behaviour, scripted.
type Scenario struct {
	Name string
	// About says what is probed and, where known, what Linux does.
	About  string
	Config TargetConfig
	// Listen makes the target listen on ListenPort before the script runs.
	Listen bool
	Steps  []Step
}

// budget bounds one scenario on one target.
const budget = 8 * time.Second

// Outcome is what one target did in a scenario: one line per observation
// (and per dial result), then the error that stopped the script, if any.
type Outcome struct {
	Lines []string
	// NotOffered says why the target cannot play the scenario (a socket
	// control it lacks); empty if it can.
	NotOffered string
}

// String joins the lines with " ; ".
func (o Outcome) String() string {
	if o.NotOffered != "" {
		return "not offered: " + o.NotOffered
	}
	return strings.Join(o.Lines, " ; ")
}

// Play runs sc against a fresh target from newTarget. The error is the
// harness's (no target); what the target does, failures of its socket
// calls included, is in the Outcome.
func Play(sc Scenario, newTarget Factory) (Outcome, error) {
	t, err := newTarget(sc.Config)
	if err != nil {
		return Outcome{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	r := &Run{ctx: ctx, target: t, start: time.Now(), socks: map[int]net.Conn{}, ops: map[int]pendingOp{}}
	r.w = newWire(t.Link())
	defer func() {
		r.abortAll()
		err = errors.Join(err, t.Close())
		r.w.stop()
	}()
	r.useFlow(0)
	if sc.Listen {
		if r.lis, err = t.Listen(ListenPort); err != nil {
			return Outcome{}, fmt.Errorf("%s: listen: %w", t.Name(), err)
		}
	}
	for _, st := range sc.Steps {
		if err := st.do(r); err != nil {
			r.record("stopped at %q: %v", st.Doc, err)
			break
		}
		if r.notOffered != "" {
			break
		}
		if ctx.Err() != nil {
			r.record("stopped at %q: scenario over its %v budget", st.Doc, budget)
			break
		}
	}
	return Outcome{Lines: r.lines, NotOffered: r.notOffered}, nil
}

// Verdicts of a comparison.
const (
	Same       = "same"
	Differs    = "DIFFERS"
	NotOffered = "not offered"
)

// Result is one scenario on both targets.
type Result struct {
	Scenario       Scenario
	Kernel, Ustack Outcome
	Verdict        string
}

// Compare plays sc on both targets and compares the outcomes line by line.
func Compare(sc Scenario, kernel, ustack Factory) (Result, error) {
	res := Result{Scenario: sc}
	var err error
	if res.Kernel, err = Play(sc, kernel); err != nil {
		return res, fmt.Errorf("%s on the kernel: %w", sc.Name, err)
	}
	if res.Ustack, err = Play(sc, ustack); err != nil {
		return res, fmt.Errorf("%s on ustack: %w", sc.Name, err)
	}
	switch {
	case res.Kernel.NotOffered != "" || res.Ustack.NotOffered != "":
		res.Verdict = NotOffered
	case slices.EqualFunc(res.Kernel.Lines, res.Ustack.Lines, sameLine):
		res.Verdict = Same
	default:
		res.Verdict = Differs
	}
	return res, nil
}

// Table renders results as a Markdown table, then the reasons of the
// known differences among them; known maps a scenario name to the reason
// its difference is accepted.
func Table(results []Result, known map[string]string) string {
	var b, reasons strings.Builder
	b.WriteString("| scenario | kernel | ustack | verdict |\n| --- | --- | --- | --- |\n")
	for _, r := range results {
		v := r.Verdict
		if reason, ok := known[r.Scenario.Name]; ok && v == Differs {
			v += " (known)"
			fmt.Fprintf(&reasons, "- %s: %s\n", r.Scenario.Name, reason)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Scenario.Name, cell(r.Kernel), cell(r.Ustack), v)
	}
	if reasons.Len() > 0 {
		b.WriteString("\nKnown differences:\n\n" + reasons.String())
	}
	return b.String()
}

func cell(o Outcome) string {
	return strings.ReplaceAll(o.String(), "|", `\|`)
}

// Listing renders the scenarios: name, what it probes, and its steps on
// one line.
func Listing(scs []Scenario) string {
	var b strings.Builder
	for _, sc := range scs {
		var steps []string
		if sc.Listen {
			l := fmt.Sprintf("listen on %d", ListenPort)
			if sc.Config.Backlog > 0 {
				l += fmt.Sprintf(" (backlog %d)", sc.Config.Backlog)
			}
			steps = append(steps, l)
		}
		for _, st := range sc.Steps {
			steps = append(steps, st.Doc)
		}
		fmt.Fprintf(&b, "**%s**: %s\n\n    %s\n\n", sc.Name, sc.About, strings.Join(steps, " · "))
	}
	return b.String()
}

// roughRe matches a delay written by roughly ("~400ms").
var roughRe = regexp.MustCompile(`~(\d+)ms`)

// sameLine compares two outcome lines. Delays, rounded to 100 ms by
// roughly, may fall on either side of a rounding boundary on either target
// (a timer of 450 ms reads ~400ms or ~500ms with a few ms of jitter), so
// two delays match when they are at most one step apart; everything else
// must be equal.
func sameLine(a, b string) bool {
	if a == b {
		return true
	}
	if roughRe.ReplaceAllString(a, "~") != roughRe.ReplaceAllString(b, "~") {
		return false
	}
	da, db := roughRe.FindAllStringSubmatch(a, -1), roughRe.FindAllStringSubmatch(b, -1)
	for i := range da {
		x, _ := strconv.Atoi(da[i][1])
		y, _ := strconv.Atoi(db[i][1])
		if x-y > 100 || y-x > 100 {
			return false
		}
	}
	return true
}
