package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"ustack/internal/ladder"
	"ustack/tun"
)

// demoLine is one event of `ustack demo`'s ladder: a packet or TLS message
// (an arrow between the columns), a state transition of the server, or a
// narration note.
type demoLine struct {
	n  int           // line number in the output, from 1
	at time.Duration // time since the demo started
	// An arrow: its direction and label, and the states drawn beside it
	// (the kernel client's are inferred and marked "~").
	arrow    bool
	segment  bool // a TCP segment, not a TLS message
	toServer bool
	label    string
	cli, srv string
	// A server state transition.
	from, to string
	// Anything else: a note.
	text string
}

func (l demoLine) String() string {
	switch {
	case l.arrow && l.toServer:
		return fmt.Sprintf("line %d: %s ── %s ──▶ %s", l.n, l.cli, l.label, l.srv)
	case l.arrow:
		return fmt.Sprintf("line %d: %s ◀── %s ── %s", l.n, l.cli, l.label, l.srv)
	case l.to != "":
		return fmt.Sprintf("line %d: server: %s → %s", l.n, l.from, l.to)
	}
	return fmt.Sprintf("line %d: %s", l.n, l.text)
}

// demoMSLRE finds how long the demo says TIME-WAIT lasts, in its note.
var demoMSLRE = regexp.MustCompile(`2\*MSL = (\S+)$`)

// parseDemo decodes the JSON events of `ustack demo --json` (one object a
// line, docs/events.md) into the ladder's lines, and returns the
// namespace its title names.
func parseDemo(t *testing.T, out string) (lines []demoLine, namespace string) {
	t.Helper()
	for i, raw := range strings.Split(strings.TrimSpace(out), "\n") {
		var e ladder.Event
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			t.Fatalf("line %d of the demo is not a JSON event: %v: %q", i+1, err, raw)
		}
		l := demoLine{n: i + 1, at: time.Duration(e.T * float64(time.Millisecond))}
		switch e.Kind {
		case ladder.KindTitle:
			namespace = e.Namespace
			continue
		case ladder.KindSegment, ladder.KindTLS:
			l.arrow, l.toServer, l.label, l.cli, l.srv = true, e.Dir == ladder.ToServer, e.Label, e.ClientState, e.ServerState
			l.segment = e.Kind == ladder.KindSegment
		case ladder.KindState:
			if e.Transition == nil || e.Side != "server" {
				continue
			}
			l.from, l.to = e.FromState, e.ToState
		case ladder.KindNote:
			l.text = e.Text
		default:
			continue
		}
		lines = append(lines, l)
	}
	return lines, namespace
}

// demoStep is one thing the ladder must show. It is looked for after the
// step named in after (the previous step if empty), so that steps whose
// relative order the two sides do not fix (a server state change and a
// client segment that arrive in the same batch) are not forced into one.
type demoStep struct {
	name  string
	after string
	match func(demoLine) bool
}

func toServer(label string) func(demoLine) bool {
	return func(l demoLine) bool { return l.arrow && l.toServer && l.label == label }
}

func toServerPrefix(prefix string) func(demoLine) bool {
	return func(l demoLine) bool { return l.arrow && l.toServer && strings.HasPrefix(l.label, prefix) }
}

func toClient(label string) func(demoLine) bool {
	return func(l demoLine) bool { return l.arrow && !l.toServer && l.label == label }
}

func toClientPrefix(prefix string) func(demoLine) bool {
	return func(l demoLine) bool { return l.arrow && !l.toServer && strings.HasPrefix(l.label, prefix) }
}

func serverState(from, to string) func(demoLine) bool {
	return func(l demoLine) bool { return l.from == from && l.to == to }
}

func noteRE(re string) func(demoLine) bool {
	r := regexp.MustCompile(re)
	return func(l demoLine) bool { return l.text != "" && r.MatchString(l.text) }
}

// demoSteps is the story `ustack demo` tells, in the order the two sides
// guarantee: each step is caused by the one it follows.
var demoSteps = []demoStep{
	{name: "SYN", match: toServer("SYN seq=0")},
	{name: "server LISTEN -> SYN-RECEIVED", match: serverState("LISTEN", "SYN-RECEIVED")},
	{name: "SYN+ACK", match: toClient("SYN+ACK seq=0 ack=1")},
	{name: "ACK of the SYN+ACK", match: toServer("ACK seq=1 ack=1")},
	{name: "server SYN-RECEIVED -> ESTABLISHED", match: serverState("SYN-RECEIVED", "ESTABLISHED")},
	{name: "ClientHello", match: toServer("TLS ClientHello")},
	{name: "client random", match: noteRE(`^client random [0-9a-f]{16}…$`)},
	{name: "ServerHello", match: toClient("TLS ServerHello")},
	{name: "server random and the RSA suite", match: noteRE(`^server random [0-9a-f]{16}…, TLS_RSA_WITH_AES_128_GCM_SHA256$`)},
	{name: "Certificate", match: toClient("TLS Certificate")},
	{name: "certificate details", match: noteRE(`^(198\.18\.0\.2|2001:2::2), RSA public key \(2048 bits\), signed by `)},
	{name: "ServerHelloDone", match: toClient("TLS ServerHelloDone")},
	{name: "ClientKeyExchange", match: toServer("TLS ClientKeyExchange")},
	{name: "encrypted pre-master secret", match: noteRE(`^pre-master secret encrypted with the server's public key \(256 bytes\) [0-9a-f]{16}…$`)},
	{name: "master secret", match: noteRE(`^both sides: master secret = PRF\(pre-master, client random \+ server random\) = [0-9a-f]{16}…$`)},
	{name: "client ChangeCipherSpec", match: toServer("TLS ChangeCipherSpec")},
	{name: "client Finished", match: toServer("TLS Finished")},
	{name: "server ChangeCipherSpec", match: toClient("TLS ChangeCipherSpec")},
	{name: "server Finished", match: toClient("TLS Finished")},
	{name: "encrypted request", match: toServerPrefix("TLS encrypted request, ")},
	{name: "encrypted response", match: toClientPrefix("TLS encrypted response, ")},
	{name: "close_notify", match: toClient("TLS alert close_notify (encrypted)")},
	{name: "server ESTABLISHED -> FIN-WAIT-1", match: serverState("ESTABLISHED", "FIN-WAIT-1")},
	{name: "server's FIN (client to CLOSE-WAIT)", match: func(l demoLine) bool {
		return toClientPrefix("FIN+ACK ")(l) && l.cli == "~CLOSE-WAIT" && l.srv == "FIN-WAIT-1"
	}},
	{name: "client's ACK of it", match: func(l demoLine) bool {
		return toServerPrefix("ACK ")(l) && !strings.Contains(l.label, "len=")
	}},
	{name: "server FIN-WAIT-1 -> FIN-WAIT-2", match: serverState("FIN-WAIT-1", "FIN-WAIT-2")},
	{name: "client's FIN (client to LAST-ACK)", after: "client's ACK of it", match: func(l demoLine) bool {
		return toServerPrefix("FIN+ACK ")(l) && l.cli == "~LAST-ACK"
	}},
	{name: "server FIN-WAIT-2 -> TIME-WAIT", match: serverState("FIN-WAIT-2", "TIME-WAIT")},
	{name: "server's ACK of it (client CLOSED)", match: func(l demoLine) bool {
		return toClientPrefix("ACK ")(l) && !strings.Contains(l.label, "len=") && l.cli == "~CLOSED" && l.srv == "TIME-WAIT"
	}},
	{name: "server TIME-WAIT -> CLOSED", match: serverState("TIME-WAIT", "CLOSED")},
	{name: "done", match: noteRE(`^done: every connection is CLOSED$`)},
}

// findDemoSteps locates each step in lines and returns their indexes (-1
// for a step not found, and for every step after it), reporting what is
// missing.
func findDemoSteps(t *testing.T, lines []demoLine) map[string]int {
	t.Helper()
	at := map[string]int{}
	prev := ""
	for _, s := range demoSteps {
		from := 0
		after := s.after
		if after == "" {
			after = prev
		}
		if after != "" {
			i, ok := at[after]
			if !ok || i < 0 {
				at[s.name] = -1
				prev = s.name
				continue
			}
			from = i + 1
		}
		at[s.name] = -1
		for i := from; i < len(lines); i++ {
			if s.match(lines[i]) {
				at[s.name] = i
				break
			}
		}
		if at[s.name] < 0 {
			where := "at the start"
			if after != "" {
				where = "after " + after + " (" + lines[at[after]].String() + ")"
			}
			t.Errorf("the ladder shows no %s %s", s.name, where)
		}
		prev = s.name
	}
	return at
}

// TestDemo runs `ustack demo --json` as root, so over a TUN device with the
// kernel's TCP as the client, with --pcap and SSLKEYLOGFILE. Its ladder
// must tell the whole story in order (TCP handshake, the TLS 1.2 RSA
// handshake with randoms and the encrypted pre-master secret, the
// encrypted request and response, close_notify, the four-segment close
// with the states on both sides, and TIME-WAIT lasting 2*MSL), within 15 s;
// the capture and the key log must decrypt in tshark to the HTTP request;
// and the demo must remove its namespace. It runs inside a test namespace
// too, in case it sends anything before entering its own.
func TestDemo(t *testing.T) {
	requireRoot(t)
	requireTool(t, "tshark")
	ns := newNamespace(t)
	dir := t.TempDir()
	pcap, keys := filepath.Join(dir, "demo.pcapng"), filepath.Join(dir, "demo.keys")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, ustackBin, "demo", "--json", "--pcap", pcap)
	cmd.Env = append(os.Environ(), "SSLKEYLOGFILE="+keys)
	cmd.WaitDelay = time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	out := stdout.String()
	t.Logf("ustack demo took %v:\n%s", elapsed.Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("ustack demo: %v\nstderr:\n%s", err, stderr.String())
	}
	if elapsed > 15*time.Second {
		t.Errorf("ustack demo took %v, want under 15 s", elapsed.Round(time.Millisecond))
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("ustack demo writes colour codes to a pipe")
	}

	lines, namespace := parseDemo(t, out)
	// Its own namespace is gone.
	if namespace == "" {
		t.Errorf("ustack demo does not say which namespace it runs in (want a title event with a namespace)")
	} else {
		demoNetnsGone(t, namespace)
	}
	at := findDemoSteps(t, lines)
	if !strings.Contains(out, "198.18.0.2, RSA public key") {
		t.Errorf("the certificate on the ladder is not for 198.18.0.2")
	}

	// TIME-WAIT lasts 2*MSL, as the demo says.
	if tw, cl := at["server FIN-WAIT-2 -> TIME-WAIT"], at["server TIME-WAIT -> CLOSED"]; tw >= 0 && cl >= 0 {
		var msl2 time.Duration
		for _, l := range lines {
			if m := demoMSLRE.FindStringSubmatch(l.text); m != nil {
				msl2, _ = time.ParseDuration(m[1])
			}
		}
		if msl2 <= 0 {
			t.Errorf("the demo does not say how long TIME-WAIT lasts (a note ending in 2*MSL = D)")
		} else if d := lines[cl].at - lines[tw].at; d < msl2-5*time.Millisecond || d > msl2+time.Second {
			t.Errorf("TIME-WAIT lasted %v, want 2*MSL = %v", d, msl2)
		} else {
			t.Logf("TIME-WAIT lasted %v (2*MSL = %v)", d.Round(time.Millisecond), msl2)
		}
	}

	// The key log holds this session: its client random and master
	// secret begin as the ladder shows them.
	kl, err := os.ReadFile(keys)
	if err != nil {
		t.Fatalf("SSLKEYLOGFILE: %v", err)
	}
	f := strings.Fields(string(kl))
	if len(f) != 3 || f[0] != "CLIENT_RANDOM" || len(f[1]) != 64 || len(f[2]) != 96 {
		t.Errorf("key log: want one line CLIENT_RANDOM <32 bytes> <48 bytes>, got:\n%s", kl)
	} else {
		for _, c := range []struct{ step, prefix, value string }{
			{"client random", "client random ", f[1]},
			{"master secret", "= ", f[2]},
		} {
			if i := at[c.step]; i >= 0 && !strings.Contains(lines[i].text, c.prefix+c.value[:16]+"…") {
				t.Errorf("the ladder's %s (%s) is not the key log's %s", c.step, lines[i].text, c.value)
			}
		}
	}

	// Every packet on the ladder is in the capture and vice versa.
	pkts := mustReadPcapng(t, pcap)
	drawn := 0
	for _, l := range lines {
		if l.segment {
			drawn++
		}
	}
	if drawn != len(pkts) {
		t.Errorf("the ladder draws %d packets, the capture holds %d", drawn, len(pkts))
	}

	// tshark decrypts the capture with the key log down to the request.
	uri, err := runTshark(t, "-r", pcap, "-o", "tls.keylog_file:"+keys, "-Y", "http.request", "-T", "fields", "-e", "http.request.uri")
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, uri)
	}
	if strings.TrimSpace(uri) != "/" {
		t.Errorf("tshark decrypts the HTTP request URIs %q, want just \"/\"", uri)
	}
	body, err := runTshark(t, "-r", pcap, "-o", "tls.keylog_file:"+keys, "-Y", "http.response", "-T", "fields", "-e", "http.response.code")
	if err != nil || strings.TrimSpace(body) != "200" {
		t.Errorf("tshark decrypts responses with codes %q (%v), want just 200", body, err)
	}
}

// demoNetnsGone checks that the demo removed its namespace: no name under
// /run/netns, none in `ip netns list`, nothing tun.Leftovers finds for the
// demo's process. A namespace left behind is deleted.
func demoNetnsGone(t *testing.T, name string) {
	t.Helper()
	if !strings.HasPrefix(name, tun.NamespacePrefix) {
		t.Errorf("the demo's namespace %q is not named %s...", name, tun.NamespacePrefix)
		return
	}
	left := false
	if _, err := os.Stat(filepath.Join("/run/netns", name)); err == nil {
		t.Errorf("the demo left its namespace behind: /run/netns/%s", name)
		left = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output(); err != nil {
		t.Errorf("ip netns list: %v", err)
	} else if strings.Contains(string(out), name) {
		t.Errorf("ip netns list still shows the demo's namespace %s", name)
		left = true
	}
	// ustack-<purpose>-<pid>-<n>
	if parts := strings.Split(strings.TrimPrefix(name, tun.NamespacePrefix), "-"); len(parts) == 3 {
		if pid, err := strconv.Atoi(parts[1]); err == nil {
			if l, err := tun.Leftovers(pid, ""); err != nil || len(l) > 0 {
				t.Errorf("the demo (pid %d) left behind: %v %v", pid, l, err)
			}
		}
	}
	if left {
		exec.CommandContext(ctx, "ip", "netns", "del", name).Run()
	}
}
