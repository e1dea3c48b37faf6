package lab

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// tcp2Claims are claims each of the labs syn-flood, accept-queue,
// close-wait, flow-control, rst and byte-stream must check and pass (a
// fragment of each), and how many claims each checks at least.
var tcp2Claims = map[string]struct {
	min  int
	want []string
}{
	"syn-flood": {10, []string{"carries a cookie ISN", "cookies sent, 1 validated", "carries data", "goes unanswered while the queue is full", "the queue drains", "gets through"}},
	"accept-queue": {7, []string{"the server drops it: it stays in SYN-RECEIVED", "retransmits its SYN+ACK", "not acknowledged while the queue is full",
		"dropped and counted (listen overflows", "completes the handshake", "reads the request intact"}},
	"close-wait":   {7, []string{"FIN-WAIT-2 → CLOSED, 1m0s after", "stays in CLOSE-WAIT for more than 3h0m0s", "not one segment is sent", "answered with RST", "ended by the RST"}},
	"flow-control": {7, []string{"shrinks to zero", "probes the zero window", "intervals between probes double", "window update", "all intact and in order"}},
	"rst":          {9, []string{"RST+ACK seq=0 ack=x+1", "ECONNREFUSED", "sends RST seq=SND.NXT", "ECONNRESET", "straight to CLOSED", "RST seq=SEG.ACK"}},
	"byte-stream":  {6, []string{"three writes went out as three segments", "one read returned all three", "in three reads", "recovers exactly the three messages"}},
}

// checkTCP2 asserts that out (a lab's text output) passed every claim it
// checked, checked at least min, and among them each of want.
func checkTCP2(t *testing.T, name, out string, min int, want []string) {
	t.Helper()
	var passed []string
	for _, line := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "✔ "); ok {
			passed = append(passed, s)
		}
		if strings.Contains(line, "✘") {
			t.Errorf("%s: a claim failed: %s", name, line)
		}
	}
	if len(passed) < min {
		t.Errorf("%s: %d claims passed, want at least %d:\n%s", name, len(passed), min, out)
	}
	for _, w := range want {
		if !slices.ContainsFunc(passed, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("%s: no passed claim contains %q:\n%s", name, w, out)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(out), "PASS") {
		t.Errorf("%s: no PASS:\n%s", name, out)
	}
}

// TestLabTCP2Claims: each of the six labs checks its story's claims, on
// the wire and in the counters, and they hold.
func TestLabTCP2Claims(t *testing.T) {
	for name, c := range tcp2Claims {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if !Exists(name) {
				t.Fatalf("%s is not registered", name)
			}
			code, out, errs := runLabCmd(t, Options{}, name)
			if code != 0 {
				t.Fatalf("exit %d, %s:\n%s", code, errs, out)
			}
			checkTCP2(t, name, out, c.min, c.want)
		})
	}
}

// TestLabSYNFloodNoCookies: --no-cookies runs only the second half, and
// its claims hold.
func TestLabSYNFloodNoCookies(t *testing.T) {
	code, out, errs := runLabCmd(t, Options{NoCookies: true}, "syn-flood")
	if code != 0 {
		t.Fatalf("exit %d, %s:\n%s", code, errs, out)
	}
	if strings.Contains(out, "SYN cookies are on") || !strings.Contains(out, "SYN cookies are off") || strings.Contains(out, "cookie ISN") {
		t.Errorf("--no-cookies should run only the half without cookies:\n%s", out)
	}
	checkTCP2(t, "syn-flood --no-cookies", out, 5, []string{"dropped and counted", "goes unanswered while the queue is full", "the queue drains", "connects 1m3s after it started"})
}

// TestLabTCP2Chinese: the six labs narrate in Chinese with the textbook's
// terms, and no narration line is left in English.
func TestLabTCP2Chinese(t *testing.T) {
	want := map[string][]string{
		"syn-flood":    {"半连接队列", "SYN cookie", "洪泛"},
		"accept-queue": {"全连接队列", "accept"},
		"close-wait":   {"CLOSE-WAIT", "文件结束"},
		"flow-control": {"零窗口探测", "指数退避", "窗口更新"},
		"rst":          {"半开连接", "异常终止"},
		"byte-stream":  {"字节", "长度前缀"},
	}
	for name, words := range want {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, out, _ := runLabCmd(t, Options{Lang: "zh"}, name)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			for _, w := range words {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
			for _, u := range untranslated(out) {
				t.Errorf("untranslated: %q", u)
			}
		})
	}
}

// untranslated are the narration lines ("<time>ms     text") and claims
// ("  ✔ text") of a lab's output that are still English.
func untranslated(out string) []string {
	ascii := regexp.MustCompile(`^[\x00-\x7f]*$`)
	var en []string
	for _, line := range strings.Split(out, "\n") {
		text := line
		if i := strings.Index(line, "ms     "); i >= 0 && i < 16 {
			text = line[i+7:]
		} else if s, ok := strings.CutPrefix(strings.TrimSpace(line), "✔ "); ok {
			text = s
		} else {
			continue
		}
		if ascii.MatchString(text) && strings.Contains(text, " the ") {
			en = append(en, text)
		}
	}
	return en
}

// TestLabZHTCP2Verbs: each translation of the six labs' and of the IPv6
// story's strings has the English string's verbs, in an order the
// explicit indexes make right.
func TestLabZHTCP2Verbs(t *testing.T) {
	verb := regexp.MustCompile(`%(\[\d+\])?[#0-9.]*[a-zA-Z]`)
	all := maps.Clone(labZHTCP2)
	maps.Copy(all, labZHV6)
	for en, zh := range all {
		e, z := verb.FindAllString(en, -1), verb.FindAllString(zh, -1)
		strip := func(vs []string) []string {
			out := make([]string, len(vs))
			for i, v := range vs {
				out[i] = regexp.MustCompile(`\[\d+\]`).ReplaceAllString(v, "")
			}
			slices.Sort(out)
			return out
		}
		if !slices.Equal(strip(e), strip(z)) {
			t.Errorf("%q: verbs %v, translation %q has %v", en, e, zh, z)
		}
	}
}
