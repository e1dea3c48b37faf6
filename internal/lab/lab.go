// Package lab is `ustack lab`: the textbook stories, each run on the wire
// and checked.
//
// A lab sets up a client and a server (both on ustack over an in-memory
// link in virtual time, or with TUN the server on ustack behind a TUN in a
// fresh namespace and the client on the kernel's TCP), uses link.Impair
// rules to drop or delay the exact packet its story needs, draws the
// conversation as a ladder diagram with narration (or writes it as JSON
// events), and checks its claims. It ends with PASS or FAIL.
//
// ustack itself is never broken on purpose. Where a story needs a TCP that
// misbehaves (a two-way handshake, a closer without TIME-WAIT), the lab
// builds that TCP itself from raw segments (peer.go).
package lab

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"ustack/internal/ladder"
	"ustack/internal/record"
)

// scenario is one story.
type scenario struct {
	name  string
	title string // short title, translated
	desc  string // one line for the list, translated
	// answer is the one-line answer to the lab's question, for the
	// course in docs/labs.md, translated.
	answer string
	// desc6 and answer6, if set, replace desc and answer over IPv6 (-6),
	// for the labs whose story differs there.
	desc6, answer6 string
	mem            func(r *labRun) error
	tun            func(r *labRun) error
	real           bool // the in-memory run is in real time (TLS)
}

// labScenarios in the order of the textbook.
var labScenarios = []scenario{
	{name: "handshake", answer: "Both sides choose an initial sequence number and each must see the other acknowledge it: three segments are the fewest that do that.", title: "the three-way handshake", desc: "SYN, SYN+ACK, ACK: who sends which sequence number, and the states on each side", mem: labHandshake, tun: labHandshakeTUN},
	{name: "close", answer: "Each direction is closed on its own (FIN, ACK), so a close takes four segments, and one side may go on sending while half-closed.", title: "the four-way close", desc: "FIN, ACK, (half-closed data), FIN, ACK: the states of the active and the passive closer", mem: labClose, tun: labCloseTUN},
	{name: "time-wait", answer: "The active closer waits 2*MSL so that it can answer a retransmitted FIN and so that old segments die before the 4-tuple is reused.", title: "why TIME-WAIT lasts 2*MSL", desc: "the last ACK is lost: the FIN comes again and TIME-WAIT answers it; an old segment cannot reach a new connection", mem: labTimeWait, tun: labTimeWaitTUN},
	{name: "stale-syn", answer: "A third segment lets the client reject an old duplicate SYN; with two, the server would open a connection nobody asked for.", title: "why three ways and not two", desc: "an old duplicate SYN arrives late: the client resets it; a two-way handshake would open a bogus connection", mem: labStaleSYN, tun: labStaleSYNTUN},
	{name: "keepalive", answer: "After the idle time, probes numbered SND.NXT-1 ask the peer for an ACK; if the count runs out unanswered, the connection is reset with ETIMEDOUT.", title: "the keepalive timer", desc: "an idle peer is probed after the idle time, then every interval; a dead peer's connection is closed, a live one's survives", mem: labKeepalive, tun: labKeepaliveTUN},
	{name: "syn-flood", answer: "Forged SYNs fill the SYN queue; SYN cookies let the server answer without keeping state, so a real client still connects; without them its SYNs are dropped until the queue drains.", title: "SYN flood and SYN cookies", desc: "spoofed SYNs fill the SYN queue: with SYN cookies a real client still connects, without them its SYN is dropped (--no-cookies: only that half)", mem: labSYNFlood, tun: labSYNFloodTUN},
	{name: "accept-queue", answer: "When the accept queue is full the server drops the handshake's last ACK (as Linux does): the client believes it is connected, its data goes unacknowledged, and the handshake completes only once the application accepts.", title: "a full accept queue", desc: "an application that never calls accept: the last ACK of the handshake is dropped, the SYN+ACK repeated, the client's data unacknowledged until accept", mem: labAcceptQueue, tun: labAcceptQueueTUN},
	{name: "close-wait", answer: "CLOSE-WAIT ends only when the application closes: TCP has no timer for it, so a program that never closes keeps the connection for ever, while the peer has long given up.", title: "an application that never closes: CLOSE-WAIT", desc: "after the peer's FIN the server sits in CLOSE-WAIT for hours; the client left FIN-WAIT-2 by its timeout; the late FIN gets an RST", mem: labCloseWait, tun: labCloseWaitTUN},
	{name: "flow-control", answer: "The receiver's window tells the sender how much buffer is left; at zero the sender probes with exponential backoff until the window opens again.", title: "flow control and the zero window", desc: "a slow reader: the window shrinks to zero, the sender probes with doubling intervals, the window reopens, every byte arrives", mem: labFlowControl, tun: labFlowControlTUN},
	{name: "rst", answer: "A reset says there is no such connection: to a SYN for a closed port (ECONNREFUSED), from an abort (SO_LINGER 0), and to data for a connection the peer has forgotten (ECONNRESET).", title: "resets: refused, aborted, half-open", desc: "RST to a SYN for a closed port, RST instead of FIN with SO_LINGER 0, and RST to data after the server forgot the connection", mem: labRST, tun: labRSTTUN},
	{name: "byte-stream", answer: "TCP carries a stream of bytes, not messages: writes and reads need not match, so an application marks its messages itself, e.g. with a length prefix.", title: "a byte stream has no message boundaries", desc: "three writes read as one, one write read as three, and a length prefix that recovers the messages", mem: labByteStream, tun: labByteStreamTUN},
	{name: "nagle", answer: "Nagle holds a small write while an earlier small segment is unacknowledged, and the peer holds its ACK for the delayed-ACK timer (40 ms) waiting for data to ride on: write-write-read stalls 40 ms; TCP_NODELAY removes the stall.", title: "Nagle's algorithm meets the delayed ACK", desc: "write-write-read: the second small write waits for an ACK the peer delays 40 ms; TCP_NODELAY sends both at once", mem: labNagle, tun: labNagleTUN},
	{name: "slow-start", answer: "cwnd starts at 10 segments and doubles every round trip until the first loss; ssthresh becomes β·flight (0.5 NewReno, 0.7 CUBIC), and congestion avoidance then adds one MSS per round trip (NewReno) or follows the cubic curve.", title: "slow start and congestion avoidance", desc: "a bulk transfer over a bottleneck: 10, 20, 40, 80 segments per round trip, the loss that ends it, then one MSS per RTT (NewReno) or the cubic curve", mem: labSlowStart, tun: labSlowStartTUN},
	{name: "congestion", answer: "Three duplicate ACKs trigger a fast retransmit and fast recovery (PRR), and ssthresh becomes β·flight (0.5 NewReno, 0.7 CUBIC); with SACK every hole is resent in one round trip, without it one per round trip; a timeout instead drops cwnd to 1 MSS and starts slow start again.", title: "fast retransmit, fast recovery and the timeout", desc: "three segments lost mid-transfer: duplicate ACKs, fast retransmit, PRR, β for NewReno and CUBIC, with and without SACK; then a whole window lost and the timeout", mem: labCongestion, tun: labCongestionTUN},
	{name: "mss-mtu", answer: "Each side announces MSS = its MTU − 40 and sends segments no larger than the other announced; a router whose next hop has a smaller MTU drops a DF packet and sends ICMP \"fragmentation needed\" with that MTU, and the sender shrinks its segments at once.", title: "MSS, MTU and path MTU discovery", desc: "a smaller MTU at one end lowers the segment size both use; a router with a smaller MTU sends ICMP \"fragmentation needed\" and the sender shrinks its segments mid-connection", mem: labMSSMTU, tun: labMSSMTUTUN,
		desc6:   "a smaller MTU at one end lowers the segment size both use; a router with a smaller MTU sends ICMPv6 \"Packet Too Big\" and the sender shrinks its segments mid-connection",
		answer6: "Each side announces MSS = its MTU − 60 (40 bytes of IPv6 header, 20 of TCP) and sends segments no larger than the other announced; no router fragments an IPv6 packet: one whose next hop has a smaller MTU drops it and sends ICMPv6 \"Packet Too Big\" with that MTU (RFC 8201), and the sender shrinks its segments at once."},
	{name: "https-rsa", answer: "The client encrypts a random pre-master secret with the server's RSA key; both sides derive the session keys from it and the two randoms.", title: "HTTPS with RSA key exchange", desc: "the eight steps of an HTTPS connection, with the values, and the proof that the derived keys decrypt the records", mem: tlsStory((*labRun).tlsEnvMem, (*labRun).httpsRSA), tun: tlsStory((*labRun).tlsEnvTUN, (*labRun).httpsRSA), real: true},
	{name: "cert-check", answer: "A client accepts a certificate only if it is in date, names the host and chains to a CA it trusts; each failure has its own alert.", title: "certificate checks", desc: "expired, wrong-host and untrusted-CA certificates are refused, each with its reason", mem: tlsStory((*labRun).tlsEnvMem, (*labRun).certCheck), tun: tlsStory((*labRun).tlsEnvTUN, (*labRun).certCheck), real: true},
	{name: "forward-secrecy", answer: "With RSA key exchange the server's private key decrypts a recorded pre-master secret, and so every recorded session; with ECDHE it only signed an ephemeral share, and the erased ephemeral keys take the session keys with them.", title: "forward secrecy: RSA key exchange vs ECDHE", desc: "two recorded sessions, one server key: later the key decrypts the RSA session and not the ECDHE one", mem: tlsStory((*labRun).tlsEnvMem, (*labRun).forwardSecrecy), tun: tlsStory((*labRun).tlsEnvTUN, (*labRun).forwardSecrecy), real: true},
	{name: "resumption", answer: "Client and server already share the session's master secret, so an abbreviated handshake skips the certificate and the key exchange: the server sends ChangeCipherSpec and Finished at once, and data flows after 1 round trip instead of 2.", title: "session resumption: session ID and session ticket", desc: "a full handshake, then one resumed by session ID and one by ticket: which messages disappear, 2 round trips become 1; an unreadable ticket means a full handshake", mem: tlsStory((*labRun).tlsEnvMemDelayed, (*labRun).resumption), tun: tlsStory((*labRun).tlsEnvTUNDelayed, (*labRun).resumption), real: true},
}

// descIn is the scenario's one-line description in a run with opts.
func (s scenario) descIn(opts Options) string {
	if opts.IPv6 && s.desc6 != "" {
		return s.desc6
	}
	return s.desc
}

// answerIn is the scenario's answer in a run with opts.
func (s scenario) answerIn(opts Options) string {
	if opts.IPv6 && s.answer6 != "" {
		return s.answer6
	}
	return s.answer
}

// nameWidth is the longest scenario name, for the list's column.
func nameWidth() int {
	n := 0
	for _, s := range labScenarios {
		n = max(n, len(s.name))
	}
	return n
}

func byName(name string) (scenario, bool) {
	for _, s := range labScenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

// Exists reports whether name is a scenario.
func Exists(name string) bool {
	_, ok := byName(name)
	return ok
}

// Options are the settings of a run.
type Options struct {
	TUN   bool   // the server behind a TUN, the client on the kernel's TCP (root)
	Lang  string // "en" or "zh"
	Color bool
	JSON  bool // write the events as JSON lines instead of drawing the ladder
	// Break (the hidden --break, for the tests that show a lab can fail)
	// replaces one end of the in-memory labs by a TCP the lab builds from
	// raw segments that breaks the protocol on purpose: one of Breaks.
	Break string
	// NoCookies runs only the no-SYN-cookie half of the syn-flood lab.
	NoCookies bool
	// SVG and HTML, if set, are where to draw the story as a picture and
	// as a page (internal/picture): a file for one lab; for All a
	// directory, where each lab writes NAME.svg or NAME.html and All an
	// index.html.
	SVG, HTML string
	// IPv6 runs the labs over IPv6 (-6): 2001:2::1 and 2001:2::2 instead
	// of 198.18.0.1 and 198.18.0.2.
	IPv6 bool
}

// Breaks are the values Options.Break accepts.
var Breaks = []string{breakSkipTimeWait, breakTwoWay}

const (
	breakSkipTimeWait = "skip-time-wait"
	breakTwoWay       = "two-way-handshake"
)

// newSink is where a run's events go.
func newSink(w io.Writer, opts Options) ladder.Sink {
	if opts.JSON {
		return ladder.NewJSON(w)
	}
	return ladder.NewText(w, opts.Color)
}

// List writes the scenarios (one event each with JSON).
func List(w io.Writer, opts Options) {
	if opts.JSON {
		sink := ladder.NewJSON(w)
		for _, s := range labScenarios {
			sink.Emit(ladder.Event{Kind: ladder.KindScenario, Text: labT(opts.Lang, s.descIn(opts)), LabInfo: &ladder.LabInfo{Lab: s.name, Title: labT(opts.Lang, s.title)}})
		}
		return
	}
	fmt.Fprintln(w, labT(opts.Lang, "Scenarios (ustack lab NAME; ustack lab all runs every one):"))
	for _, s := range labScenarios {
		fmt.Fprintf(w, "  %-*s %s\n", nameWidth(), s.name, labT(opts.Lang, s.descIn(opts)))
	}
	fmt.Fprintln(w, labT(opts.Lang, "Flags: -6 (over IPv6), --tun (root: the kernel's TCP through a TUN), --lang zh, --no-color, --json, --svg FILE (a picture), --html FILE (a page)."))
}

// Run runs one scenario and writes its story, claims and verdict to w; the
// error says which claim failed first.
func Run(w io.Writer, name string, opts Options) error {
	sc, ok := byName(name)
	if !ok {
		return fmt.Errorf("unknown scenario %q", name)
	}
	if err := checkBreak(opts); err != nil {
		return err
	}
	pic := newPictures(opts)
	ok, what := runLab(w, newSink(w, opts), sc, opts, pic)
	if err := writePictures(pic, sc, opts, opts.SVG, opts.HTML); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("lab %s: FAIL: %s", sc.name, what)
	}
	return nil
}

func checkBreak(opts Options) error {
	if opts.Break != "" && opts.TUN {
		return errors.New("--break breaks the in-memory labs only (run it without --tun)")
	}
	return nil
}

// All runs every scenario and writes a summary.
func All(w io.Writer, opts Options) error {
	if err := checkBreak(opts); err != nil {
		return err
	}
	type result struct {
		name, what string
		ok         bool
	}
	sink := newSink(w, opts)
	var res []result
	idx, err := newPictureDirs(opts)
	if err != nil {
		return err
	}
	for _, sc := range labScenarios {
		pic := newPictures(opts)
		ok, what := runLab(w, sink, sc, opts, pic)
		res = append(res, result{sc.name, what, ok})
		if err := idx.add(pic, sc, opts, ok); err != nil {
			return err
		}
		if !opts.JSON {
			fmt.Fprintln(w)
		}
	}
	failed := 0
	for _, r := range res {
		if !r.ok {
			failed++
		}
	}
	if opts.JSON {
		sink.Emit(ladder.Event{Kind: ladder.KindSummary, Outcome: &ladder.Outcome{OK: failed == 0, Passed: len(res) - failed, Failed: failed}})
	} else {
		fmt.Fprintln(w, labT(opts.Lang, "Summary:"))
		for _, r := range res {
			mark := "PASS"
			if !r.ok {
				mark = "FAIL: " + r.what
			}
			fmt.Fprintf(w, "  %-*s %s\n", nameWidth(), r.name, mark)
		}
	}
	if err := idx.write(opts); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("lab all: %d of %d scenarios failed", failed, len(res))
	}
	if !opts.JSON {
		fmt.Fprintf(w, labT(opts.Lang, "all %d scenarios PASS")+"\n", len(res))
	}
	return nil
}

// labClaim is one checked statement.
type labClaim struct {
	ok   bool
	text string
}

// runLab runs one scenario and prints its claims and verdict; pic, if
// not nil, keeps every event for the pictures. It reports whether every
// claim held, and if not the first that failed.
func runLab(w io.Writer, sink ladder.Sink, sc scenario, opts Options, pic *ladder.Recorder) (bool, string) {
	r := newLabRun(w, sink, opts, sc.name)
	if pic != nil {
		r.pic, r.sink = pic, ladder.Tee(sink, pic)
	}
	fn := sc.mem
	if opts.TUN {
		fn = sc.tun
	}
	r.title(sc)
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
	return r.verdict()
}

// newLabRun is the state of a run of lab name with opts.
func newLabRun(w io.Writer, sink ladder.Sink, opts Options, name string) *labRun {
	return &labRun{w: w, sink: sink, opts: opts, name: name, fam: opts.family()}
}

// title starts a scenario's story: its name, title and how it runs.
func (r *labRun) title(sc scenario) {
	mode := r.T("in-memory: both ends on ustack, virtual time")
	if sc.real {
		mode = r.T("in-memory: both ends on ustack, real time")
	}
	if r.opts.TUN {
		mode = r.T("--tun: the server on ustack behind a TUN, the client on the kernel's TCP, real time")
	}
	if r.fam.v6 {
		mode += r.T(", over IPv6")
	}
	broken := ""
	switch r.opts.Break {
	case breakSkipTimeWait:
		broken = r.T("(broken on purpose, --break skip-time-wait: the client is a TCP the lab builds from raw segments, and it skips TIME-WAIT)")
	case breakTwoWay:
		broken = r.T("(broken on purpose, --break two-way-handshake: the stale-syn server is a TCP the lab builds from raw segments, and a SYN alone opens its connections)")
	}
	r.emitOwn(ladder.Event{Kind: ladder.KindLab, Text: broken, LabInfo: &ladder.LabInfo{Lab: sc.name, Title: r.T(sc.title), Mode: mode, Break: r.opts.Break}})
	if r.opts.JSON {
		return
	}
	fmt.Fprintln(r.w, r.paint(ladder.Bold, fmt.Sprintf("━━ lab %s: %s ━━", sc.name, r.T(sc.title))))
	fmt.Fprintf(r.w, "   (%s)\n", mode)
	if broken != "" {
		fmt.Fprintf(r.w, "   %s\n", broken)
	}
}

// verdict writes the claims and PASS or FAIL; it reports whether every
// claim held, and if not the first that failed.
func (r *labRun) verdict() (bool, string) {
	first := ""
	for _, c := range r.claims {
		if !c.ok && first == "" {
			first = c.text
		}
	}
	if len(r.claims) == 0 {
		first = r.T("no claim was checked")
	}
	for _, c := range r.claims {
		r.emitOwn(ladder.Event{T: r.stamp(), Kind: ladder.KindClaim, Text: c.text, Outcome: &ladder.Outcome{OK: c.ok}})
	}
	r.emitOwn(ladder.Event{T: r.stamp(), Kind: ladder.KindVerdict, Text: first, Outcome: &ladder.Outcome{OK: first == ""}, LabInfo: &ladder.LabInfo{Lab: r.name}})
	if r.opts.JSON {
		return first == "", first
	}
	fmt.Fprintln(r.w)
	fmt.Fprintln(r.w, r.T("claims:"))
	for _, c := range r.claims {
		mark := r.paint(ladder.Green, "✔")
		if !c.ok {
			mark = r.paint(ladder.Red, "✘")
		}
		fmt.Fprintf(r.w, "  %s %s\n", mark, c.text)
	}
	if first != "" {
		fmt.Fprintln(r.w, r.paint(ladder.Red+ladder.Bold, "FAIL: "+first))
		return false, first
	}
	fmt.Fprintln(r.w, r.paint(ladder.Green+ladder.Bold, "PASS"))
	return true, ""
}

// labRun is the state of one scenario run: output, language, claims, and
// the world it runs in.
type labRun struct {
	w      io.Writer
	sink   ladder.Sink
	opts   Options
	name   string
	fam    labFamily // the run's addresses, IPv4's or IPv6's
	claims []labClaim
	pic    *ladder.Recorder // the events for the pictures, if asked for
	l      *ladder.Ladder
	rec    record.Recorder
	vw     *labVWorld // the in-memory world, if any
	tw     *labTWorld // the --tun world, if any

	quiet      bool // draw no TCP segments or states (the TLS labs draw TLS messages)
	bmu        sync.Mutex
	burstAt    time.Time // drawing of packet bursts: see burst
	burstN     int
	burstReset bool
}

func (r *labRun) paint(c, s string) string { return ladder.Paint(r.opts.Color, c, s) }

// T translates an English message (a format string) into the run's language.
func (r *labRun) T(s string) string { return labT(r.opts.Lang, s) }

func labT(lang, s string) string {
	if lang == "zh" {
		if t, ok := labZH[s]; ok {
			return t
		}
	}
	return s
}

// newLadder starts the run's ladder on a clock.
func (r *labRun) newLadder(now func() time.Time) {
	r.l = ladder.New(r.sink, now, r.fam.server.String())
}

// stamp is the time on the ladder, for the events written after it.
func (r *labRun) stamp() float64 {
	if r.l == nil {
		return 0
	}
	return r.l.Elapsed()
}

// say prints a narration line on the ladder (or plainly before it exists).
func (r *labRun) say(format string, args ...any) {
	msg := fmt.Sprintf(r.T(format), args...)
	r.bmu.Lock()
	r.burstReset = true
	r.bmu.Unlock()
	if r.l != nil {
		r.l.Note("%s", msg)
		return
	}
	r.emitOwn(ladder.Event{Kind: ladder.KindNote, Text: msg})
	if !r.opts.JSON {
		fmt.Fprintf(r.w, "   %s\n", msg)
	}
}

// emitOwn hands an event the lab writes itself (not the ladder) to the
// sink with JSON; when drawing text, which the caller prints, only to the
// pictures' recorder.
func (r *labRun) emitOwn(e ladder.Event) {
	switch {
	case r.opts.JSON:
		r.sink.Emit(e)
	case r.pic != nil:
		r.pic.Emit(e)
	}
}

// check records a claim.
func (r *labRun) check(ok bool, format string, args ...any) bool {
	r.claims = append(r.claims, labClaim{ok: ok, text: fmt.Sprintf(r.T(format), args...)})
	return ok
}

// section prints a heading inside the story.
func (r *labRun) section(format string, args ...any) {
	// Through the sink, which the text ladder draws under its lock: with
	// --tun the stack's goroutines draw packets at the same time.
	r.sink.Emit(ladder.Event{T: r.stamp(), Kind: ladder.KindSection, Text: fmt.Sprintf(r.T(format), args...)})
}

// sample records one point of a sender's congestion state for the plots
// (series names the sender: "cubic", "newreno+sack"); the text ladder does
// not draw it.
func (r *labRun) sample(series string, cwnd, ssthresh, inFlight int) {
	r.sink.Emit(ladder.Event{T: r.stamp(), Kind: ladder.KindSample, Sample: &ladder.Sample{Series: series, Cwnd: cwnd, Ssthresh: ssthresh, InFlight: inFlight}})
}
