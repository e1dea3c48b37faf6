package main

// ustack lab: the textbook stories, each run on the wire and checked.
//
// A lab sets up a client and a server (both on ustack over an in-memory
// link in virtual time, or with --tun the server on ustack behind a TUN in
// a fresh namespace and the client on the kernel's TCP), uses link.Impair
// rules to drop or delay the exact packet its story needs, draws the
// conversation as a ladder diagram with narration, and checks its claims.
// It ends with PASS or FAIL; the exit status says the same.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// labScenario is one story.
type labScenario struct {
	name  string
	title string // short title, translated
	desc  string // one line for the list, translated
	mem   func(r *labRun) error
	tun   func(r *labRun) error
	real  bool // the in-memory run is in real time (TLS)
}

// labScenarios in the order of the textbook.
var labScenarios = []labScenario{
	{name: "handshake", title: "the three-way handshake", desc: "SYN, SYN+ACK, ACK: who sends which sequence number, and the states on each side", mem: labHandshake, tun: labHandshakeTUN},
	{name: "close", title: "the four-way close", desc: "FIN, ACK, (half-closed data), FIN, ACK: the states of the active and the passive closer", mem: labClose, tun: labCloseTUN},
	{name: "time-wait", title: "why TIME-WAIT lasts 2*MSL", desc: "the last ACK is lost: the FIN comes again and TIME-WAIT answers it; an old segment cannot reach a new connection", mem: labTimeWait, tun: labTimeWaitTUN},
	{name: "stale-syn", title: "why three ways and not two", desc: "an old duplicate SYN arrives late: the client resets it; a two-way handshake would open a bogus connection", mem: labStaleSYN, tun: labStaleSYNTUN},
	{name: "keepalive", title: "the keepalive timer", desc: "an idle peer is probed after the idle time, then every interval; a dead peer's connection is closed, a live one's survives", mem: labKeepalive, tun: labKeepaliveTUN},
	{name: "https-rsa", title: "HTTPS with RSA key exchange", desc: "the eight steps of an HTTPS connection, with the values, and the proof that the derived keys decrypt the records", mem: labHTTPSRSA, tun: labHTTPSRSATUN, real: true},
	{name: "cert-check", title: "certificate checks", desc: "expired, wrong-host and untrusted-CA certificates are refused, each with its reason", mem: labCertCheck, tun: labCertCheckTUN, real: true},
}

func labByName(name string) (labScenario, bool) {
	for _, s := range labScenarios {
		if s.name == name {
			return s, true
		}
	}
	return labScenario{}, false
}

// labOptions are the settings of a run.
type labOptions struct {
	tun   bool
	lang  string // "en" or "zh"
	color bool
	// brk breaks the stack on purpose (hidden flag --break, for the tests
	// that show a lab can fail): "skip-time-wait" or "two-way-handshake".
	brk string
}

// labBreaks are the values --break accepts.
var labBreaks = []string{"skip-time-wait", "two-way-handshake"}

func cmdLab(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ustack lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	useTUN := fs.Bool("tun", false, "run against the kernel's TCP through a TUN in a fresh network namespace (root)")
	lang := fs.String("lang", "en", "narration language: en or zh")
	noColor := fs.Bool("no-color", false, "plain text even on a terminal")
	brk := fs.String("break", "", "")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: ustack lab [flags] [SCENARIO|all]\n\nThe textbook stories, each run on the wire, drawn as a ladder diagram and\nchecked. Without a scenario, list them.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "break" {
				return // hidden: for the tests that break the stack on purpose
			}
			fmt.Fprintf(stderr, "  --%s\t%s (default %q)\n", f.Name, f.Usage, f.DefValue)
		})
	}
	// Flags may come before or after the scenario name.
	var names []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageErr("%v (see 'ustack lab -h')", err)
		}
		if fs.NArg() == 0 {
			break
		}
		names = append(names, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *lang != "en" && *lang != "zh" {
		return usageErr("--lang %q: choose en or zh", *lang)
	}
	if *brk != "" && !contains(labBreaks, *brk) {
		return usageErr("--break %q: choose one of %s", *brk, strings.Join(labBreaks, ", "))
	}
	opts := labOptions{tun: *useTUN, lang: *lang, color: !*noColor && isTerminal(stdout), brk: *brk}
	if len(names) == 0 {
		labList(stdout, opts.lang)
		return nil
	}
	if len(names) > 1 {
		labList(stderr, opts.lang)
		return usageErr("one scenario at a time (or all), got %s", strings.Join(names, " "))
	}
	if opts.tun {
		if os.Geteuid() != 0 {
			return errors.New("lab --tun needs root: it creates a network namespace and a TUN device (run without --tun for the in-memory version)")
		}
		if _, err := os.Stat("/dev/net/tun"); err != nil {
			return fmt.Errorf("lab --tun: %w", err)
		}
	}
	if names[0] == "all" {
		return labAll(stdout, opts)
	}
	sc, ok := labByName(names[0])
	if !ok {
		labList(stderr, opts.lang)
		return usageErr("unknown scenario %q", names[0])
	}
	if ok, what := runLab(stdout, sc, opts); !ok {
		return fmt.Errorf("lab %s: FAIL: %s", sc.name, what)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func labList(w io.Writer, lang string) {
	fmt.Fprintln(w, labT(lang, "Scenarios (ustack lab NAME; ustack lab all runs every one):"))
	for _, s := range labScenarios {
		fmt.Fprintf(w, "  %-11s %s\n", s.name, labT(lang, s.desc))
	}
	fmt.Fprintln(w, labT(lang, "Flags: --tun (root: the kernel's TCP through a TUN), --lang zh, --no-color."))
}

func labAll(stdout io.Writer, opts labOptions) error {
	type result struct {
		name, what string
		ok         bool
		took       time.Duration
	}
	var res []result
	for _, sc := range labScenarios {
		start := time.Now()
		ok, what := runLab(stdout, sc, opts)
		res = append(res, result{sc.name, what, ok, time.Since(start)})
		fmt.Fprintln(stdout)
	}
	fmt.Fprintln(stdout, labT(opts.lang, "Summary:"))
	failed := 0
	for _, r := range res {
		mark := "PASS"
		if !r.ok {
			mark = "FAIL: " + r.what
			failed++
		}
		fmt.Fprintf(stdout, "  %-11s %s\n", r.name, mark)
	}
	if failed > 0 {
		return fmt.Errorf("lab all: %d of %d scenarios failed", failed, len(res))
	}
	fmt.Fprintf(stdout, labT(opts.lang, "all %d scenarios PASS")+"\n", len(res))
	return nil
}

// labClaim is one checked statement.
type labClaim struct {
	ok   bool
	text string
}

// runLab runs one scenario and prints its claims and verdict. It reports
// whether every claim held, and if not the first that failed.
func runLab(w io.Writer, sc labScenario, opts labOptions) (bool, string) {
	r := &labRun{w: w, opts: opts, name: sc.name}
	mode := r.T("in-memory: both ends on ustack, virtual time")
	if sc.real {
		mode = r.T("in-memory: both ends on ustack, real time")
	}
	fn := sc.mem
	if opts.tun {
		mode = r.T("--tun: the server on ustack behind a TUN, the client on the kernel's TCP, real time")
		fn = sc.tun
	}
	title := fmt.Sprintf("━━ lab %s: %s ━━", sc.name, r.T(sc.title))
	fmt.Fprintln(w, r.paint(cBold, title))
	fmt.Fprintf(w, "   (%s)\n", mode)
	if opts.brk != "" {
		fmt.Fprintf(w, "   "+r.T("(the stack is broken on purpose: --break %s)")+"\n", opts.brk)
	}
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return fn(r)
	}()
	if err != nil {
		r.check(false, "the story ran to its end (%v)", err)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, r.T("claims:"))
	first := ""
	for _, c := range r.claims {
		mark := r.paint(cGreen, "✔")
		if !c.ok {
			mark = r.paint(cRed, "✘")
			if first == "" {
				first = c.text
			}
		}
		fmt.Fprintf(w, "  %s %s\n", mark, c.text)
	}
	if len(r.claims) == 0 {
		first = r.T("no claim was checked")
	}
	if first != "" {
		fmt.Fprintln(w, r.paint(cRed+cBold, "FAIL: "+first))
		return false, first
	}
	fmt.Fprintln(w, r.paint(cGreen+cBold, "PASS"))
	return true, ""
}

const cRed = "\x1b[31m"

// labRun is the state of one scenario run: output, language, claims, and
// the world it runs in.
type labRun struct {
	w      io.Writer
	opts   labOptions
	name   string
	claims []labClaim
	l      *ladder
	rec    labRecorder
	vw     *labVWorld // the in-memory world, if any
	tw     *labTWorld // the --tun world, if any

	quiet      bool // draw no TCP segments or states (the TLS labs draw TLS messages)
	bmu        sync.Mutex
	burstAt    time.Time // drawing of packet bursts: see burst
	burstN     int
	burstReset bool
}

func (r *labRun) paint(c, s string) string {
	if !r.opts.color {
		return s
	}
	return c + s + cReset
}

// T translates an English message (a format string) into the run's language.
func (r *labRun) T(s string) string { return labT(r.opts.lang, s) }

func labT(lang, s string) string {
	if lang == "zh" {
		if t, ok := labZH[s]; ok {
			return t
		}
	}
	return s
}

// say prints a narration line on the ladder (or plainly before it exists).
func (r *labRun) say(format string, args ...any) {
	msg := fmt.Sprintf(r.T(format), args...)
	r.bmu.Lock()
	r.burstReset = true
	r.bmu.Unlock()
	if r.l != nil {
		r.l.note("%s", msg)
		return
	}
	fmt.Fprintf(r.w, "   %s\n", msg)
}

// check records a claim.
func (r *labRun) check(ok bool, format string, args ...any) bool {
	r.claims = append(r.claims, labClaim{ok: ok, text: fmt.Sprintf(r.T(format), args...)})
	return ok
}

// section prints a heading inside the story.
func (r *labRun) section(format string, args ...any) {
	fmt.Fprintf(r.w, "\n%s\n", r.paint(cBold, "── "+fmt.Sprintf(r.T(format), args...)))
}
