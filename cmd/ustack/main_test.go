package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ustack/internal/browsertest"
	"ustack/tlslite"
)

// TestDemoInMemoryTellsTheStory: the no-root demo shows the handshake, the
// response, the close and TIME-WAIT ending in CLOSED, in that order.
func TestDemoInMemoryTellsTheStory(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--in-memory"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := out.String()
	if !strings.Contains(s, `response: "HTTP/1.1 200 OK", body "hello from ustack, over TLS 1.2\n"`) {
		t.Fatalf("no response in the demo:\n%s", s)
	}
	steps := []string{
		"in-memory link",
		"── SYN seq=0", "server: LISTEN →", "SYN+ACK seq=0 ack=1", "client: SYN-SENT → ESTABLISHED",
		"server: SYN-RECEIVED →",
		"TLS ClientHello", "client random", "TLS ServerHello", "server random", "TLS Certificate", "RSA public key",
		"TLS ServerHelloDone", "TLS ClientKeyExchange", "encrypted with the server's public key",
		"server decrypted the pre-master secret", "master secret = PRF", "session keys",
		"TLS ChangeCipherSpec", "TLS Finished", "TLS ChangeCipherSpec", "TLS Finished",
		"TLS encrypted request", "TLS encrypted response", "close_notify",
		"server: ESTABLISHED →", "FIN-WAIT-1", "client: ESTABLISHED → CLOSE-WAIT",
		"client: CLOSE-WAIT → LAST-ACK", "server: FIN-WAIT-2 →", "TIME-WAIT",
		"server: TIME-WAIT →", "CLOSED", "done",
	}
	pos := 0
	for _, step := range steps {
		i := strings.Index(s[pos:], step)
		if i < 0 {
			t.Fatalf("demo output lacks %q after position %d:\n%s", step, pos, s)
		}
		pos += i + len(step)
	}
}

// TestServeFlagErrors: command-line mistakes exit 2 and say how to fix them.
func TestServeFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "no service to run"},
		{[]string{"serve", "--echo", "7", "--addr", "nonsense"}, "--addr \"nonsense\" is not an IPv4 address"},
		{[]string{"serve", "--echo", "7", "--addr", "10.0.0.9"}, "outside --host-addr"},
		{[]string{"serve", "--echo", "7", "--http", "7"}, "both use port 7"},
		{[]string{"serve", "--echo", "70000"}, "is not a port"},
		{[]string{"serve", "--echo", "7", "--impair", "lose=0.1"}, "unknown key"},
		{[]string{"serve", "--echo", "7", "--mtu", "20"}, "--mtu 20 is out of range"},
		{[]string{"serve", "--echo", "7", "--cc", "bbrr"}, `--cc: unknown congestion control "bbrr" (known: bbr, cubic, newreno, reno)`},
		{[]string{"serve", "--bogus"}, "flag provided but not defined"},
		{[]string{"serve", "--echo", "7", "--backlog", "0"}, "--backlog 0 is out of range: use 1 to 65535"},
		{[]string{"serve", "--echo", "7", "--user-timeout", "-1s"}, "--user-timeout -1s must not be negative"},
		{[]string{"serve", "--echo", "7", "--linger", "5"}, "want whole seconds from 0 to 24h, like 0 or 5s"},
		{[]string{"serve", "--echo", "7", "--linger", "1.5s"}, "want whole seconds"},
		{[]string{"nosuch"}, "unknown command"},
		{[]string{"get"}, "missing URL"},
		{[]string{"get", "ftp://x/"}, "is not an http:// or https:// URL"},
		{[]string{"get", "http://example.org/"}, "give the server as an IPv4 address or an IPv6 address in brackets"},
		{[]string{"get", "http://[fe80::1%25eth0]/"}, "give the server as an IPv4 address or an IPv6 address in brackets"},
		{[]string{"serve", "--echo", "7", "--addr6", "198.18.0.9"}, `--addr6 "198.18.0.9" is not an IPv6 address (example: --addr6 2001:2::2; --addr6 none for IPv4 only)`},
		{[]string{"serve", "--echo", "7", "--addr6", "::ffff:198.18.0.9"}, "is not an IPv6 address"},
		{[]string{"serve", "--echo", "7", "--addr6", "fe80::2"}, "--addr6 fe80::2 is not a global or unique-local unicast address"},
		{[]string{"serve", "--echo", "7", "--addr6", "2001:2:0:1::2"}, "--addr6 2001:2:0:1::2 is outside --host-addr6 2001:2::1/64"},
		{[]string{"serve", "--echo", "7", "--addr6", "2001:2::1"}, "--addr6 and --host-addr6 are both 2001:2::1"},
		{[]string{"serve", "--echo", "7", "--host-addr6", "2001:2::1"}, `--host-addr6 "2001:2::1" is not an IPv6 address with a prefix length`},
		{[]string{"serve", "--echo", "7", "--host-addr6", "198.18.0.1/30"}, "is not an IPv6 address with a prefix length"},
		{[]string{"serve", "--udp-echo", "65536"}, "--udp-echo 65536 is not a port"},
		{[]string{"serve", "--echo", "7", "--queues", "0"}, "--queues 0 is out of range: use 1 to 64"},
		{[]string{"serve", "--echo", "7", "--queues", "65"}, "--queues 65 is out of range: use 1 to 64"},
		{[]string{"serve", "--echo", "7", "--queues", "2", "--pcap", "x.pcapng"}, "--queues 2 does not combine with --pcap or --impair"},
		{[]string{"get", "http://198.18.0.1/", "--queues", "2", "--impair", "loss=0.01"}, "--queues 2 does not combine with --pcap or --impair"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("ustack %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}

// TestBenchFlagErrors: mistakes are caught before anything is created,
// with or without root.
func TestBenchFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--only", "nonsense"}, `unknown metric "nonsense"`},
		{[]string{"bench", "--duration", "10ms"}, "at least 1s"},
		{[]string{"bench", "--conns", "20000"}, "at most 15000"},
		{[]string{"bench", "extra"}, `unexpected argument "extra"`},
		{[]string{"bench", "client"}, "want a mode"},
		{[]string{"bench", "client", "upload"}, "--addr is required"},
		{[]string{"bench", "client", "nosuch", "--addr", "198.18.0.2:7"}, `unknown mode "nosuch"`},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}

// TestLabListAndUsage: no scenario lists them; an unknown one is a usage
// error (exit 2) that lists them too; a failing lab exits 1.
func TestLabListAndUsage(t *testing.T) {
	lab := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"lab", "--no-color"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, _ := lab()
	if code != 0 || !strings.Contains(out, "handshake") || !strings.Contains(out, "cert-check") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	code, _, errs := lab("no-such-lab")
	if code != 2 || !strings.Contains(errs, "unknown scenario") || !strings.Contains(errs, "handshake") {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	for _, args := range [][]string{{"--lang", "fr", "handshake"}, {"--break", "nonsense", "close"}, {"--tun", "--break", "skip-time-wait", "close"}, {"close", "handshake"}} {
		if code, _, _ := lab(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	code, out, errs = lab("--break", "two-way-handshake", "stale-syn")
	if code != 1 || !strings.Contains(errs, "lab stale-syn: FAIL: no connection is established") || !strings.Contains(out, "FAIL: ") {
		t.Fatalf("a failing lab: exit %d, stderr %q:\n%s", code, errs, out)
	}
}

// TestDemoPictures: demo --svg --html (in memory) draws the whole HTTPS
// story: one arrow per segment and TLS message of the JSON events, the
// TCP handshake, the TLS messages and the close, and a page around it.
func TestDemoPictures(t *testing.T) {
	dir := t.TempDir()
	svgFile, htmlFile := filepath.Join(dir, "demo.svg"), filepath.Join(dir, "demo.html")
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--in-memory", "--json", "--svg", svgFile, "--html", htmlFile}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	arrows := strings.Count(out.String(), `"kind":"segment"`) + strings.Count(out.String(), `"kind":"tls"`)
	svg, err := os.ReadFile(svgFile)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(svg))
	drawn := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("demo.svg is not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Local == "class" && strings.HasPrefix(a.Value, "arrow ") {
					drawn++
				}
			}
		}
	}
	if drawn != arrows || arrows < 20 {
		t.Errorf("%d arrows drawn, %d segment and tls events", drawn, arrows)
	}
	pos := 0
	for _, step := range []string{"SYN seq=0", "SYN+ACK seq=0 ack=1", ">ClientHello<", ">ServerHello<", ">Certificate<", ">ClientKeyExchange<", ">ChangeCipherSpec<", ">Finished<", "ApplicationData", "FIN+ACK", "TIME-WAIT", "CLOSED"} {
		i := strings.Index(string(svg[pos:]), step)
		if i < 0 {
			t.Fatalf("demo.svg lacks %q after position %d", step, pos)
		}
		pos += i + len(step)
	}
	page, err := os.ReadFile(htmlFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte("<svg xmlns=")) || !bytes.Contains(page, []byte("done: every connection is CLOSED")) {
		t.Errorf("demo.html lacks the picture or the story")
	}
}

// TestLabPictureFlags: lab --svg FILE --html FILE NAME writes both; with
// -6 (before or after the name) the story runs over IPv6, and the help
// names -6 with one dash.
func TestLabPictureFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		addr string
	}{
		{[]string{"--svg", "SVG", "handshake", "--html", "HTML"}, "198.18.0.2"},
		{[]string{"-6", "--svg", "SVG", "handshake", "--html", "HTML"}, "2001:2::2"},
		{[]string{"--svg", "SVG", "handshake", "-6", "--html", "HTML"}, "2001:2::2"},
	} {
		dir := t.TempDir()
		svgFile, htmlFile := filepath.Join(dir, "hs.svg"), filepath.Join(dir, "hs.html")
		args := []string{"lab", "--no-color"}
		for _, a := range c.args {
			args = append(args, strings.NewReplacer("SVG", svgFile, "HTML", htmlFile).Replace(a))
		}
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, errb.String())
		}
		if !strings.Contains(out.String(), "client (ustack ") || !strings.Contains(out.String(), c.addr) {
			t.Errorf("%v: the ladder does not show %s:\n%s", c.args, c.addr, out.String())
		}
		for _, f := range []string{svgFile, htmlFile} {
			b, err := os.ReadFile(f)
			if err != nil || !bytes.Contains(b, []byte("SYN+ACK seq=0 ack=1")) || !bytes.Contains(b, []byte(c.addr)) {
				t.Errorf("%v: %s: %v, or no SYN+ACK or no %s in it", c.args, f, err, c.addr)
			}
		}
	}
	var out, errb bytes.Buffer
	run([]string{"lab", "--help"}, &out, &errb)
	if !strings.Contains(errb.String(), "\n  -6\trun over IPv6") {
		t.Errorf("lab --help should list -6:\n%s", errb.String())
	}
}

// TestIPv6Flags: --addr6 none (or empty) turns IPv6 off; the defaults are
// 2001:2::2 in 2001:2::1/64; a UDP echo alone is a service, and may share
// a TCP service's port number.
func TestIPv6Flags(t *testing.T) {
	parse := func(args ...string) (linkConfig, error) {
		var f serveFlags
		if err := f.parse(args, io.Discard); err != nil {
			return linkConfig{}, err
		}
		return f.validate()
	}
	lc, err := parse("--echo", "7")
	if err != nil || lc.addr6 != netip.MustParseAddr("2001:2::2") || lc.host6 != netip.MustParsePrefix("2001:2::1/64") {
		t.Errorf("defaults: %v %v, %v", lc.addr6, lc.host6, err)
	}
	for _, off := range []string{"none", ""} {
		lc, err := parse("--echo", "7", "--addr6", off, "--host-addr6", "nonsense")
		if err != nil || lc.addr6.IsValid() || lc.host6.IsValid() {
			t.Errorf("--addr6 %q: %v %v, %v; want IPv6 off, --host-addr6 ignored", off, lc.addr6, lc.host6, err)
		}
	}
	if _, err := parse("--udp-echo", "7", "--echo", "7"); err != nil {
		t.Errorf("--udp-echo 7 --echo 7: %v", err)
	}
}

// TestGetTargetIPv6: get takes IPv6 URLs, the address in brackets.
func TestGetTargetIPv6(t *testing.T) {
	for _, c := range []struct {
		url, ip string
		port    int
	}{
		{"http://[2001:2::1]/", "2001:2::1", 80},
		{"https://[2001:2::1]/x", "2001:2::1", 443},
		{"http://[2001:2::1]:8080/", "2001:2::1", 8080},
		{"http://[::ffff:198.18.0.1]:8080/", "198.18.0.1", 8080},
		{"http://198.18.0.1:8080/", "198.18.0.1", 8080},
	} {
		_, ip, port, err := getTarget(c.url)
		if err != nil || ip != netip.MustParseAddr(c.ip) || port != c.port {
			t.Errorf("getTarget(%s) = %v, %d, %v; want %s, %d", c.url, ip, port, err, c.ip, c.port)
		}
	}
}

// TestServerTLSNamesBothFamilies: the certificate serve creates names the
// IPv4 and the IPv6 address; one loaded from a directory that lacks the
// IPv6 address is used, with a warning that says how to get a new one.
func TestServerTLSNamesBothFamilies(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("2001:2::2")
	dir := filepath.Join(t.TempDir(), "tls")
	var out, warn bytes.Buffer
	cfg, err := serverTLS(dir, []netip.Addr{v4, v6}, tlslite.KeyExchangeAny, &out, &warn)
	if err != nil {
		t.Fatal(err)
	}
	var sans []string
	for _, ip := range cfg.Certificates[0].Leaf.IPAddresses {
		sans = append(sans, ip.String())
	}
	if strings.Join(sans, " ") != "198.18.0.2 2001:2::2" || warn.Len() != 0 {
		t.Errorf("IP SANs %v, warnings %q; want 198.18.0.2 2001:2::2 and none", sans, warn.String())
	}
	if !strings.Contains(out.String(), "certificate for 198.18.0.2 and 2001:2::2") {
		t.Errorf("stdout: %q", out.String())
	}

	old := filepath.Join(t.TempDir(), "old")
	if _, err := tlslite.LoadOrCreateDir(old, []net.IP{net.IP(v4.AsSlice())}, nil); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if _, err := serverTLS(old, []netip.Addr{v4, v6}, tlslite.KeyExchangeAny, &out, &warn); err != nil {
		t.Fatal(err)
	}
	if w := warn.String(); !strings.Contains(w, "does not name 2001:2::2,") || !strings.Contains(w, "remove "+old) {
		t.Errorf("warning for a certificate without the IPv6 address: %q", w)
	}
}

// TestDemoIPv6InMemory: demo -6 tells the story between 2001:2::1 and
// [2001:2::2]:443, the ladder drawing the IPv6 segments; skipped while
// the stack takes no IPv6 address (demo -6 then says so and fails).
func TestDemoIPv6InMemory(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"demo", "-6", "--in-memory"}, &out, &errb)
	if code != 0 && strings.Contains(errb.String(), "demo -6: the stack does not take the IPv6 address 2001:2::2") {
		t.Skipf("skipped until IPv6 is wired into stack.Stack: %s", strings.TrimSpace(errb.String()))
	}
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := out.String()
	pos := 0
	for _, step := range []string{"[2001:2::2]:443", "── SYN seq=0", "SYN+ACK seq=0 ack=1", "TLS ClientHello", "TLS Finished", "TIME-WAIT", "server: TIME-WAIT →", "done"} {
		i := strings.Index(s[pos:], step)
		if i < 0 {
			t.Fatalf("demo -6 output lacks %q after position %d:\n%s", step, pos, s)
		}
		pos += i + len(step)
	}
}

// TestDemoHTMLInChromium: demo --html (in memory), opened in headless
// Chromium, shows the picture and the story. A window tall enough for the
// whole page shows about 1900 colours, 27000 dark pixels, 9000 of the state
// labels' yellow and 185000 that are not white; the page without its
// picture, about 220 colours, 19000 dark, no yellow and 60000 not white;
// an empty page, white alone.
func TestDemoHTMLInChromium(t *testing.T) {
	bin := browsertest.Chromium(t)
	page := filepath.Join(t.TempDir(), "demo.html")
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--in-memory", "--html", page}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := browsertest.Measure(browsertest.Screenshot(t, bin, page, 1280, 2400))
	t.Logf("screenshot: %d colours, %d dark pixels, %d yellow, %d not white", s.Colours, s.Dark, s.Pill, s.NonWhite)
	if s.Colours < 500 || s.Dark < 15000 || s.Pill < 3000 || s.NonWhite < 100000 {
		t.Errorf("the screenshot looks blank or lacks the picture: %d colours, %d dark pixels, %d pixels of the state labels' yellow, %d not white", s.Colours, s.Dark, s.Pill, s.NonWhite)
	}
}
