package lab

import (
	"bytes"
	"context"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ustack/internal/browsertest"
	"ustack/internal/ladder"
	"ustack/internal/picture"
)

var updateLabDoc = flag.Bool("update-labs-doc", false, "rewrite docs/labs.md and docs/labs/*.svg from in-memory runs of the labs")

var (
	labDocPath   = filepath.Join("..", "..", "docs", "labs.md")
	labDocPicDir = filepath.Join("..", "..", "docs", "labs")
)

// labDocBroken is the failing run the course shows, and its picture.
const labDocBroken = "time-wait-broken"

// TestLabDoc: docs/labs.md, the course, has a part for every registered
// lab with its picture in docs/labs; -update-labs-doc rewrites both from
// in-memory runs. The pictures of the labs in virtual time must be what a
// run draws now, byte for byte; the TLS labs run in real time with fresh
// keys, so theirs need only be there and be SVG.
func TestLabDoc(t *testing.T) {
	if *updateLabDoc {
		writeLabDoc(t)
	}
	doc, err := os.ReadFile(labDocPath)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/lab -run TestLabDoc -update-labs-doc)", err)
	}
	for _, sc := range labScenarios {
		if !bytes.Contains(doc, []byte("\n## "+sc.name+": ")) || !bytes.Contains(doc, []byte("(labs/"+sc.name+".svg)")) {
			t.Errorf("docs/labs.md lacks lab %s or its picture (run go test ./internal/lab -run TestLabDoc -update-labs-doc)", sc.name)
		}
		if sc.real {
			checkDocPicture(t, sc.name, nil)
			continue
		}
		ev, _ := labEvents(t, sc, Options{})
		checkDocPicture(t, sc.name, ev)
	}
	sc, _ := byName("time-wait")
	ev, _ := labEvents(t, sc, Options{Break: breakSkipTimeWait})
	checkDocPicture(t, labDocBroken, ev)
}

// checkDocPicture: docs/labs/NAME.svg is SVG and, given the events of a
// fresh run, exactly their picture.
func checkDocPicture(t *testing.T, name string, ev []ladder.Event) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(labDocPicDir, name+".svg"))
	if err != nil {
		t.Errorf("%v (run go test ./internal/lab -run TestLabDoc -update-labs-doc)", err)
		return
	}
	if svgArrows(t, got) == 0 {
		t.Errorf("docs/labs/%s.svg has no arrow", name)
	}
	if ev == nil {
		return
	}
	var want bytes.Buffer
	picture.SVG(&want, ev)
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("docs/labs/%s.svg is not what the lab draws now (run go test ./internal/lab -run TestLabDoc -update-labs-doc)", name)
	}
}

// writeLabDoc runs every lab in memory and writes the course and the
// pictures.
func writeLabDoc(t *testing.T) {
	if err := os.MkdirAll(labDocPicDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(labDocIntro)
	fmt.Fprintf(&b, "This file and the pictures in docs/labs/ are generated from commit %s: `go test ./internal/lab -run TestLabDoc -update-labs-doc`.\n", labDocCommit())
	for _, sc := range labScenarios {
		ev, ok := labEvents(t, sc, Options{})
		if !ok {
			t.Fatalf("lab %s failed: %s", sc.name, claimsMarkdown(ev))
		}
		writeDocPicture(t, sc.name, ev)
		fmt.Fprintf(&b, "\n## %s: %s\n\n**Answer:** %s\n\n", sc.name, sc.title, sc.answer)
		if n := labDocNotes[sc.name]; n != "" {
			b.WriteString(n + "\n\n")
		}
		fmt.Fprintf(&b, "Prove it: `ustack lab %s` (`--svg %s.svg` for the picture, `--tun` against the kernel's TCP).\n\n", sc.name, sc.name)
		fmt.Fprintf(&b, "[![lab %s](labs/%s.svg)](labs/%s.svg)\n\n", sc.name, sc.name, sc.name)
		if sc.real {
			b.WriteString("(This lab runs in real time with fresh keys: its picture and its values differ on every run.)\n\n")
		}
		b.WriteString("Checked in that run:\n\n" + claimsMarkdown(ev))
	}
	sc, _ := byName("time-wait")
	ev, _ := labEvents(t, sc, Options{Break: breakSkipTimeWait})
	writeDocPicture(t, labDocBroken, ev)
	b.WriteString(labDocOutro + fmt.Sprintf("[![a lab that fails](labs/%s.svg)](labs/%s.svg)\n\n", labDocBroken, labDocBroken) + claimsMarkdown(ev))
	if err := os.WriteFile(labDocPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeDocPicture(t *testing.T, name string, ev []ladder.Event) {
	var svg bytes.Buffer
	if err := picture.SVG(&svg, ev); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(labDocPicDir, name+".svg"), svg.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// claimsMarkdown lists a run's claims, each with ✔ or ✘, and its verdict.
func claimsMarkdown(ev []ladder.Event) string {
	var b strings.Builder
	for _, e := range ev {
		switch {
		case e.Kind == ladder.KindClaim && e.Outcome != nil && e.OK:
			b.WriteString("- ✔ " + e.Text + "\n")
		case e.Kind == ladder.KindClaim:
			b.WriteString("- ✘ " + e.Text + "\n")
		case e.Kind == ladder.KindVerdict && e.Outcome != nil && e.OK:
			b.WriteString("\n**PASS**\n")
		case e.Kind == ladder.KindVerdict:
			b.WriteString("\n**FAIL**: " + e.Text + "\n")
		}
	}
	return b.String()
}

// labDocCommit is the commit the course is generated from.
func labDocCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "(unknown: git was not available)"
	}
	return strings.TrimSpace(string(out))
}

const labDocIntro = `# ustack lab: the textbook, live

A short course in TCP and HTTPS. Each part asks a textbook question, gives
the answer in one line, and names the command that proves it on the wire:
` + "`ustack lab`" + ` runs the story, draws the conversation as a ladder diagram (the
client on the left, the server on the right, the states of each side beside
them; sequence numbers relative to each side's initial sequence number
unless said otherwise), and checks what the textbook claims. Each lab ends
with PASS or FAIL and the exit status says the same. The picture of each
part is the lab's own, drawn by ` + "`--svg`" + ` from the run that checked the claims
listed under it.

    ustack lab                  list the scenarios
    ustack lab NAME             run one
    ustack lab all              run every one and print a summary
    ustack lab --tun NAME       the server on ustack behind a TUN in a fresh network
                                namespace, the client on the kernel's TCP (root)
    ustack lab -6 NAME          over IPv6: the client at 2001:2::1, the server at
                                2001:2::2, in memory or with --tun; mss-mtu then
                                announces MSS = MTU − 60, and its router sends
                                ICMPv6 Packet Too Big (RFC 8201)
    ustack lab --lang zh NAME   narrate in Chinese (三次握手, 四次挥手, TIME_WAIT, 2MSL,
                                保活计时器, 预主密钥, 会话密钥)
    ustack lab --no-color NAME  plain text
    ustack lab --json NAME      JSON events instead of the ladder (docs/events.md)
    ustack lab --svg FILE NAME  also draw the story as an SVG sequence diagram
    ustack lab --html FILE NAME also write a self-contained HTML page: the picture,
                                the narration, the claims and the verdict
    ustack lab all --svg DIR --html DIR
                                one DIR/NAME.svg and DIR/NAME.html per lab, and
                                an index.html in the --html directory

` + "`ustack demo --svg FILE --html FILE`" + ` draws the demo's whole HTTPS story the same
way. In a picture time flows down: each segment is a sloped arrow from its
sender to its receiver labelled with its flags, seq, ack and len, TLS
messages are purple and named, a segment the lab drops stops halfway at an
X, one it injects is dashed, a long idle gap is cut short by a break such
as "… 60 s …", the narration runs down the right, and the congestion labs
add a plot of cwnd, ssthresh and bytes in flight under the diagram.

The in-memory labs run two ustack stacks over an in-memory link in virtual
time, so 2*MSL (60 s) and keepalive's idle time take no wall time, and their
TCP output is the same on every run; the TLS labs run in real time and draw
fresh keys. ` + "`link.Impair`" + ` rules drop (or delay) exactly the packet a story
needs; old duplicates are written into the link as raw packets. With --tun
the same stories run in real time with short timers against Linux; the
kernel's states, which ustack cannot see, are inferred from its packets and
marked with ~.

The tests (internal/lab/lab_test.go) run every lab in memory and, as root,
with --tun, each over IPv4 and over IPv6, and show that the labs check something: with the hidden,
test-only flag ` + "`--break skip-time-wait`" + ` the client is a TCP the lab
builds itself from raw segments, which goes to CLOSED at once instead of
waiting in TIME-WAIT, and with ` + "`--break two-way-handshake`" + ` the
stale-syn lab's server is such a TCP that opens a connection on a SYN alone:
the time-wait, close and stale-syn labs then FAIL. ustack itself is never
broken on purpose.

`

const labDocOutro = `
## A lab that fails

With a client that skips TIME-WAIT (a TCP the lab builds from raw segments,
behind a test-only switch), the time-wait lab shows what TIME-WAIT is for:
the repeated FIN meets an RST, the new connection reuses the 4-tuple, and
the old segment's bytes are read as new data (after which the two ends, out
of step, ACK each other in a storm). The lab fails, exit status 1:
` + "`ustack lab --break skip-time-wait time-wait`" + `.

`

// TestLabDocPicturesRender: the course's pictures render outside a
// browser. rsvg-convert (librsvg) draws docs/labs/congestion.svg, with its
// plot, and https-rsa.svg, with its TLS messages, as PNGs of the size the
// SVG gives, with text, the state labels' yellow and a fair share of
// pixels that are not the white background. Rendered now they show about
// 1100 to 3400 colours, 8600 to 25000 dark pixels, 1700 to 3500 yellow and
// 7 to 12% not white; https-rsa.svg with only its background, or only its
// title, shows at most 280 colours, 1700 dark, no yellow and 0.6% not
// white, and without its text 80 dark pixels.
func TestLabDocPicturesRender(t *testing.T) {
	bin := browsertest.Program(t, "librsvg2-bin", "rsvg-convert")
	dir := t.TempDir()
	for _, name := range []string{"congestion", "https-rsa"} {
		svg := filepath.Join(labDocPicDir, name+".svg")
		w, h := svgSize(t, svg)
		pngFile := filepath.Join(dir, name+".png")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := exec.CommandContext(ctx, bin, "-f", "png", "-o", pngFile, svg).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("rsvg-convert %s.svg: %v\n%s", name, err, out)
			continue
		}
		img := browsertest.DecodePNG(t, pngFile)
		s := browsertest.Measure(img)
		b := img.Bounds()
		t.Logf("%s.png: %dx%d, %d colours, %d dark pixels, %d yellow, %d not white", name, b.Dx(), b.Dy(), s.Colours, s.Dark, s.Pill, s.NonWhite)
		if b.Dx() != w || b.Dy() != h || w < 1000 || h < 1000 {
			t.Errorf("%s.png is %dx%d, the SVG %dx%d: both should be the same and at least 1000x1000", name, b.Dx(), b.Dy(), w, h)
		}
		if s.Colours < 500 || s.Dark < 4000 || s.Pill < 1000 || s.NonWhite < w*h/20 {
			t.Errorf("%s.png looks blank: %d colours, %d dark pixels, %d pixels of the state labels' yellow, %d of %d not white (want 500, 4000, 1000 and 5%%)", name, s.Colours, s.Dark, s.Pill, s.NonWhite, w*h)
		}
	}
}

// svgSize is the width and height, in pixels, of the SVG file path's root
// element.
func svgSize(t *testing.T, path string) (w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("%s: no root element: %v", filepath.Base(path), err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				switch a.Name.Local {
				case "width":
					w, _ = strconv.Atoi(a.Value)
				case "height":
					h, _ = strconv.Atoi(a.Value)
				}
			}
			if se.Name.Local != "svg" || w <= 0 || h <= 0 {
				t.Fatalf("%s: the root is <%s width=%d height=%d>, not an SVG with a size in pixels", filepath.Base(path), se.Name.Local, w, h)
			}
			return w, h
		}
	}
}
