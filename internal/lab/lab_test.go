package lab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"ustack/internal/ladder"
)

// runLabCmd runs a lab (or all of them) as `ustack lab --no-color [flags]
// NAME` would and returns the exit status, the output and the error.
func runLabCmd(t *testing.T, opts Options, name string) (int, string, string) {
	t.Helper()
	if opts.Lang == "" {
		opts.Lang = "en"
	}
	var out bytes.Buffer
	var err error
	if name == "all" {
		err = All(&out, opts)
	} else {
		err = Run(&out, name, opts)
	}
	if err != nil {
		return 1, out.String(), err.Error()
	}
	return 0, out.String(), ""
}

// labFamilies are the address families every lab runs over (-6 for
// IPv6): the server's address, which the story shows, and a prefix of the
// other family's addresses, which it never does.
var labFamilies = []struct {
	name, server, other string
	v6                  bool
}{
	{"ipv4", "198.18.0.2", "2001:2::", false},
	{"ipv6", "2001:2::2", "198.18.", true},
}

// labFamilyClaims are claims a lab must check and pass in one family
// only, in memory: the facts that differ between IPv4 and IPv6 (a
// fragment of each); labFamilyClaimsTUN those of the --tun labs.
var labFamilyClaims = map[string]map[bool][]string{
	"mss-mtu": {
		false: {"it announces MSS 960; the client (MTU 1500, MSS 1460)", "1460 − 12 = 1448 bytes", `ICMP "fragmentation needed"`, "path MTU 1200, MSS 1160"},
		true:  {"it announces MSS 1340; the client (MTU 1500, MSS 1440)", "1440 − 12 = 1428 bytes", `ICMPv6 "Packet Too Big"`, "path MTU 1280, MSS 1220"},
	},
	"syn-flood":  {false: {"MSS index 7 (1460)"}, true: {"MSS index 6 (1440)"}},
	"slow-start": {false: {"(cwnd 14600 = 10 MSS)"}, true: {"(cwnd 14400 = 10 MSS)"}},
}

var labFamilyClaimsTUN = map[string]map[bool][]string{
	"mss-mtu": {
		false: {"ustack's MSS 960 − 12", "the kernel takes the ICMP's MTU: its segments shrink to 800 − 40 − 12 = 748 bytes (748)"},
		true:  {"ustack's MSS 1340 − 12", "the kernel takes the ICMPv6's MTU: its segments shrink to 1280 − 60 − 12 = 1208 bytes (1208)"},
	},
	"syn-flood": {false: {"MSS index 7 (1460)"}, true: {"MSS index 6 (1440)"}},
}

// checkLabRun asserts a lab's text output in a family: it passed, no
// claim failed, it shows the family's addresses and never the other's,
// its mode line says IPv6 exactly with -6, and it checked and passed
// each of want.
func checkLabRun(t *testing.T, out string, v6 bool, want []string) {
	t.Helper()
	if !strings.HasSuffix(strings.TrimSpace(out), "PASS") {
		t.Fatalf("no PASS:\n%s", out)
	}
	if strings.Contains(out, "✘") {
		t.Fatalf("a claim failed yet the lab passed:\n%s", out)
	}
	fam := labFamilies[0]
	if v6 {
		fam = labFamilies[1]
	}
	if !strings.Contains(out, fam.server) || strings.Contains(out, fam.other) {
		t.Errorf("%s: the story should show %s and no address in %s:\n%s", fam.name, fam.server, fam.other, out)
	}
	if v6 != strings.Contains(out, ", over IPv6)") {
		t.Errorf("%s: the mode line should say over IPv6 exactly with -6:\n%s", fam.name, out)
	}
	for _, w := range want {
		if !passedClaim(out, w) {
			t.Errorf("%s: no passed claim contains %q:\n%s", fam.name, w, out)
		}
	}
}

// passedClaim reports whether a ✔ line of out contains w.
func passedClaim(out, w string) bool {
	for _, line := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "✔ "); ok && strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// TestLabInMemory: every scenario passes over the in-memory link, over
// IPv4 and over IPv6 (-6), and tells its family's story.
func TestLabInMemory(t *testing.T) {
	for _, sc := range labScenarios {
		for _, fam := range labFamilies {
			t.Run(sc.name+"/"+fam.name, func(t *testing.T) {
				t.Parallel()
				code, out, errs := runLabCmd(t, Options{IPv6: fam.v6}, sc.name)
				if code != 0 {
					t.Fatalf("exit %d, stderr %q:\n%s", code, errs, out)
				}
				checkLabRun(t, out, fam.v6, labFamilyClaims[sc.name][fam.v6])
			})
		}
	}
}

// TestLabTUN: every scenario passes against the kernel's TCP through a TUN
// (root only; CI promises root), over IPv4 and over IPv6 (-6); the two
// families of a lab run side by side, each in its own namespace.
func TestLabTUN(t *testing.T) {
	if os.Geteuid() != 0 {
		why := "lab --tun needs root (a network namespace and a TUN device)"
		if os.Getenv("CI") != "" {
			t.Fatal(why + " (CI is set, so this is a failure)")
		}
		t.Skip(why)
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no /dev/net/tun: %v", err)
		}
		t.Skipf("no /dev/net/tun: %v", err)
	}
	for _, sc := range labScenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, fam := range labFamilies {
				t.Run(fam.name, func(t *testing.T) {
					t.Parallel()
					code, out, errs := runLabCmd(t, Options{TUN: true, IPv6: fam.v6}, sc.name)
					if code != 0 {
						t.Fatalf("exit %d, stderr %q:\n%s", code, errs, out)
					}
					if !strings.Contains(out, "network namespace ustack-lab-") {
						t.Fatalf("no namespace in the story:\n%s", out)
					}
					checkLabRun(t, out, fam.v6, labFamilyClaimsTUN[sc.name][fam.v6])
				})
			}
		})
	}
}

// TestLabBrokenStackFails: with one end replaced by the lab's own TCP
// that breaks the protocol on purpose (--break), the matching labs fail,
// exit status 1, naming the claim: they check something.
func TestLabBrokenStackFails(t *testing.T) {
	cases := []struct {
		brk, lab, claim string
	}{
		{"skip-time-wait", "time-wait", "acknowledges the repeated FIN again"},
		{"skip-time-wait", "close", "the passive side (server) reaches CLOSED first"},
		{"two-way-handshake", "stale-syn", "no connection is established"},
	}
	for _, tc := range cases {
		t.Run(tc.lab+"/"+tc.brk, func(t *testing.T) {
			code, out, errs := runLabCmd(t, Options{Break: tc.brk}, tc.lab)
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, out)
			}
			if !strings.Contains(out, "FAIL: ") || !strings.Contains(out, tc.claim) || !strings.Contains(errs, "FAIL") {
				t.Fatalf("no FAIL naming %q:\n%s\nstderr: %s", tc.claim, out, errs)
			}
		})
	}
	// The old segment reaches the new connection when TIME-WAIT is skipped.
	_, out, _ := runLabCmd(t, Options{Break: breakSkipTimeWait}, "time-wait")
	if !strings.Contains(out, "✘ the old segment does not reach the new connection") {
		t.Fatalf("with TIME-WAIT skipped the old segment should corrupt the new connection:\n%s", out)
	}
}

// TestLabChinese: --lang zh narrates with the textbook's terms.
func TestLabChinese(t *testing.T) {
	want := map[string][]string{
		"handshake":  {"三次握手", "初始序号", "PASS"},
		"close":      {"四次挥手", "TIME_WAIT", "2MSL", "半关闭", "PASS"},
		"time-wait":  {"TIME_WAIT", "2MSL", "已失效的报文段", "PASS"},
		"stale-syn":  {"三次握手", "两次握手", "PASS"},
		"keepalive":  {"保活计时器", "PASS"},
		"nagle":      {"Nagle 算法", "推迟确认", "PASS"},
		"slow-start": {"慢开始", "拥塞窗口", "慢开始门限", "拥塞避免", "PASS"},
		"congestion": {"快重传", "重复确认", "超时重传", "PASS"},
		"mss-mtu":    {"MSS", "MTU", "需要分片", "PASS"},
		"https-rsa":  {"预主密钥", "会话密钥", "客户随机数", "服务器随机数", "PASS"},
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
		})
	}
}

// TestLabIPv6Chinese: over IPv6 the mss-mtu lab tells IPv6's story in
// Chinese too (分组过大 is ICMPv6's Packet Too Big), with no line left in
// English, and the list describes it so.
func TestLabIPv6Chinese(t *testing.T) {
	code, out, _ := runLabCmd(t, Options{Lang: "zh", IPv6: true}, "mss-mtu")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, w := range []string{"，经 IPv6)", "MSS 1500 − 60 = 1440（IPv6 首部 40 字节", "ICMPv6“分组过大”", "路径 MTU 1280，MSS 1220", "PASS"} {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in:\n%s", w, out)
		}
	}
	for _, u := range untranslated(out) {
		t.Errorf("untranslated: %q", u)
	}
	var list bytes.Buffer
	List(&list, Options{Lang: "zh", IPv6: true})
	if !strings.Contains(list.String(), "ICMPv6“分组过大”") || !strings.Contains(list.String(), "-6（经 IPv6）") {
		t.Errorf("the -6 list should describe mss-mtu's IPv6 story and name -6:\n%s", list.String())
	}
}

// TestLabList: the list names every scenario.
func TestLabList(t *testing.T) {
	var out bytes.Buffer
	List(&out, Options{Lang: "en"})
	for _, sc := range labScenarios {
		if !strings.Contains(out.String(), sc.name) {
			t.Errorf("list lacks %s:\n%s", sc.name, out.String())
		}
	}
	if err := Run(&out, "no-such-lab", Options{}); err == nil || !strings.Contains(err.Error(), "unknown scenario") {
		t.Errorf("an unknown scenario: %v", err)
	}
}

// labDocNotes say more about each lab in docs/labs.md (doc_test.go), in
// a paragraph after its answer.
var labDocNotes = map[string]string{
	"handshake":  "SYN seq=x; SYN+ACK seq=y ack=x+1; ACK seq=x+1 ack=y+1 (RFC 9293 §3.5). The claims check the absolute numbers and the states of both sides.",
	"close":      "The client closes first (FIN seq=u); the server acknowledges (ack=u+1), goes on sending while half-closed, then closes (FIN seq=w); the client's last ACK carries ack=w+1 and seq=u+1, because its FIN took a sequence number. The passive side is CLOSED first; the active side waits 2*MSL in TIME-WAIT.",
	"time-wait":  "The client's last ACK is dropped. The server, in LAST-ACK, retransmits its FIN; the client, still in TIME-WAIT, acknowledges it again and restarts 2*MSL, so the server closes cleanly. Then the client connects again from the same port while a copy of its first request, delayed in the network, arrives late: because TIME-WAIT holds the 4-tuple, the new connection gets another port and the old segment is refused. (With `--break skip-time-wait`, whose client skips TIME-WAIT, the repeated FIN meets an RST, the new connection reuses the 4-tuple, and the old bytes are read as the new connection's data.) Timestamps are off, so that PAWS does not stand in for TIME-WAIT.",
	"stale-syn":  "An old duplicate SYN reaches the server, which answers SYN+ACK; the client never sent it and answers RST; the server goes back to LISTEN. On a second port, where the server is a TCP the lab builds from raw segments with a two-way handshake, the same SYN alone gives the server's application a connection nobody asked for.",
	"keepalive":  "The server enables keepalive (idle 10 s, interval 5 s, 3 probes; RFC 1122 §4.2.3.6 says 2 h, and Linux uses 75 s and 9). A live client answers each probe (an ACK with seq=SND.NXT−1) and the connection survives; once the client's host is dead, three probes go unanswered, one interval apart, and the connection is closed with ETIMEDOUT.",
	"https-rsa":  "The eight steps of an HTTPS connection with RSA key exchange, with their values, and the proof: the encrypted pre-master secret decrypts with the server's private key to the client's; both sides hold the same master secret; PRF(master, \"key expansion\", server random + client random) gives the session keys; and the AES-GCM records captured on the link decrypt with them to the HTTP request and response. The tlslite client offers RFC 7627's extended master secret, so the master secret is derived from the pre-master secret and the hash of the handshake (which contains both randoms).",
	"cert-check": "The client trusts one CA. A valid certificate is accepted; an expired one, one for another host and one from another CA are refused, each with its reason and the alert the client sends.",
}

// TestLabJSON: with JSON every line is one event: the lab, the ladder's
// segments and states with relative numbers, the claims and the verdict.
func TestLabJSON(t *testing.T) {
	code, out, errs := runLabCmd(t, Options{JSON: true}, "handshake")
	if code != 0 {
		t.Fatalf("exit %d, %s:\n%s", code, errs, out)
	}
	var ev []ladder.Event
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e ladder.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		ev = append(ev, e)
	}
	if ev[0].Kind != ladder.KindLab || ev[0].LabInfo == nil || ev[0].Lab != "handshake" {
		t.Errorf("first event %+v", ev[0])
	}
	last := ev[len(ev)-1]
	if last.Kind != ladder.KindVerdict || last.Outcome == nil || !last.OK || last.Lab != "handshake" {
		t.Errorf("last event %+v", last)
	}
	var segs []string
	claims := 0
	for _, e := range ev {
		switch e.Kind {
		case ladder.KindSegment:
			segs = append(segs, fmt.Sprintf("%s %s %d %d", e.Dir, e.Segment.Flags, e.Seq, e.Ack))
		case ladder.KindClaim:
			claims++
			if !e.OK {
				t.Errorf("claim failed: %s", e.Text)
			}
		}
	}
	want := []string{"to_server SYN 0 0", "to_client SYN|ACK 0 1", "to_server ACK 1 1"}
	if strings.Join(segs, "; ") != strings.Join(want, "; ") || claims < 5 {
		t.Errorf("segments %q (want %q), %d claims", segs, want, claims)
	}
	code, out, _ = runLabCmd(t, Options{JSON: true, Break: breakTwoWay}, "stale-syn")
	if code != 1 || !strings.Contains(out, `"kind":"verdict"`) || !strings.Contains(out, `"ok":false`) {
		t.Errorf("a failing lab's JSON: exit %d:\n%s", code, out)
	}
}
