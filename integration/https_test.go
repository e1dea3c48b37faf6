package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"hash"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ustack/internal/waitfor"
	"ustack/tlslite"
	"ustack/tun"
)

// httpsPort is where `ustack serve --https` listens in these tests.
const httpsPort = "443"

// httpsURL is the URL of path on the stack's HTTPS service.
func httpsURL(path string) string { return "https://" + stackAddr + path }

// startHTTPS runs `ustack serve --https 443 --tls-dir DIR` (plus extra
// flags) in ns, with DIR a fresh directory, and returns the server and the
// path of the CA certificate ustack created there. The server must print
// the curl line that tells a visitor how to trust it.
func startHTTPS(t *testing.T, ns *tun.Namespace, extra ...string) (*server, string) {
	t.Helper()
	dir := t.TempDir()
	s := startServe(t, ns, append([]string{"--https", httpsPort, "--tls-dir", dir}, extra...)...)
	ca := filepath.Join(dir, "ca.pem")
	for _, f := range []string{ca, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("ustack serve --tls-dir %s created no %s: %v", dir, filepath.Base(f), err)
		}
	}
	want := "try: curl --cacert " + ca + " " + httpsURL("/")
	if !strings.Contains(s.out.String(), want) {
		t.Errorf("ustack serve --https does not print %q:\n%s", want, s.out)
	}
	return s, ca
}

// runInTo runs a program inside ns with a deadline, its standard output
// going to stdout; it returns the standard error.
func runInTo(t *testing.T, ns *tun.Namespace, timeout time.Duration, stdout io.Writer, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := ns.Command(ctx, name, args...)
	cmd.WaitDelay = time.Second
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: no result within %v: %w", name, timeout, err)
	}
	return stderr.String(), err
}

// TestHTTPSCurl: curl fetches the page over HTTPS and verifies ustack's
// certificate with the CA it created. curl offers TLS 1.3 by default; the
// session falls back to TLS 1.2, which the page reports. Forced to TLS 1.2
// with the RSA key exchange suite, the page names that suite. Without the
// CA curl refuses the server.
func TestHTTPSCurl(t *testing.T) {
	requireRoot(t)
	requireTool(t, "curl")
	ns := newNamespace(t)
	_, ca := startHTTPS(t, ns, "--kex", "any")

	for _, c := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"default", nil, []string{"TLS 1.2, ", "extended master secret true"}},
		{"tls1.2 AES128-GCM-SHA256", []string{"--tlsv1.2", "--ciphers", "AES128-GCM-SHA256"},
			[]string{"TLS 1.2, TLS_RSA_WITH_AES_128_GCM_SHA256, extended master secret true"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"-sS", "-i", "--max-time", "10", "--cacert", ca,
				"-w", "\ncurl: status=%{http_code} verify=%{ssl_verify_result}\n"}, c.flags...)
			args = append(args, httpsURL("/"))
			out, err := runIn(t, ns, 20*time.Second, "curl", args...)
			if err != nil {
				t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			out = strings.ReplaceAll(out, "\r\n", "\n")
			if !strings.HasPrefix(out, "HTTP/1.1 200 OK\n") {
				t.Errorf("status line: %q, want HTTP/1.1 200 OK", strings.SplitN(out, "\n", 2)[0])
			}
			if !strings.Contains(out, "curl: status=200 verify=0") {
				t.Errorf("curl reports no status 200 with a verified certificate:\n%s", out)
			}
			if !strings.Contains(out, "<tr><th>TLS</th><td>TLS 1.2") {
				t.Errorf("the page shows no TLS 1.2 line:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("the page lacks %q:\n%s", w, out)
				}
			}
			if !strings.Contains(out, "X-Ustack-Connection: "+stackAddr+":"+httpsPort+"<->"+hostAddr+":") {
				t.Errorf("no X-Ustack-Connection header naming the connection:\n%s", out)
			}
			if line := grepLine(out, "<tr><th>TLS</th>"); line != "" {
				t.Logf("%s", line)
			}
		})
	}

	t.Run("without the CA", func(t *testing.T) {
		out, err := runIn(t, ns, 20*time.Second, "curl", "-sS", "--max-time", "10", httpsURL("/"))
		// curl's exit status 60: peer certificate cannot be authenticated.
		if code := exitCode(err); code != 60 {
			t.Errorf("curl without --cacert: exit status %d (%v), want 60 (certificate not verified)\n%s", code, err, out)
		}
	})
}

// grepLine returns the first line of out containing s.
func grepLine(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// TestHTTPSOpenSSL: openssl s_client verifies ustack's chain against its
// CA and completes a TLS 1.2 handshake with the RSA key exchange and the
// extended master secret (RFC 7627), then fetches the page over it. Once
// the client asks for AES128-GCM-SHA256, once the server (--kex rsa)
// chooses from openssl's default offer.
func TestHTTPSOpenSSL(t *testing.T) {
	requireRoot(t)
	requireTool(t, "openssl")
	ns := newNamespace(t)
	_, ca := startHTTPS(t, ns, "--kex", "rsa")
	req := "GET / HTTP/1.1\r\nHost: " + stackAddr + "\r\nConnection: close\r\n\r\n"

	for _, c := range []struct {
		name  string
		flags []string
	}{
		{"-cipher AES128-GCM-SHA256", []string{"-cipher", "AES128-GCM-SHA256"}},
		{"default offer", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			// -ign_eof: send the request, then wait for the server to
			// close rather than quitting at the end of stdin.
			args := append([]string{"s_client", "-connect", net.JoinHostPort(stackAddr, httpsPort), "-CAfile", ca,
				"-verify_return_error", "-ign_eof"}, c.flags...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := ns.Command(ctx, "openssl", args...)
			cmd.WaitDelay = time.Second
			cmd.Stdin = strings.NewReader(req)
			b, err := cmd.CombinedOutput()
			out := strings.ReplaceAll(string(b), "\r\n", "\n")
			if err != nil {
				t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			for _, w := range []string{
				"Verify return code: 0 (ok)",
				"Protocol  : TLSv1.2",
				"New, TLSv1.2, Cipher is AES128-GCM-SHA256",
				"Extended master secret: yes",
				"HTTP/1.1 200 OK",
				"TLS 1.2, TLS_RSA_WITH_AES_128_GCM_SHA256, extended master secret true",
			} {
				if !strings.Contains(out, w) {
					t.Errorf("openssl s_client output lacks %q:\n%s", w, out)
				}
			}
			t.Logf("%s; %s; %s", grepLine(out, "Cipher is"), grepLine(out, "Verify return code"), grepLine(out, "Extended master secret"))
		})
	}
}

// wrkResult is what the tests read from wrk's report.
type wrkResult struct {
	requests     int
	reqPerSec    float64
	latencyAvg   time.Duration
	latencyMax   time.Duration
	p99          time.Duration
	socketErrors string // the "Socket errors" line, if any
	non2xx       string // the "Non-2xx or 3xx responses" line, if any
}

var (
	wrkLatencyRE = regexp.MustCompile(`(?m)^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)\s`)
	wrkP99RE     = regexp.MustCompile(`(?m)^\s*99%\s+(\S+)\s*$`)
	wrkReqsRE    = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	wrkRateRE    = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)\s*$`)
	wrkSockRE    = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$`)
)

// parseWrk reads wrk's report (run with --latency).
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkLatencyRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Latency line")
	}
	var err error
	if r.latencyAvg, err = time.ParseDuration(m[1]); err != nil {
		return r, fmt.Errorf("latency average %q: %v", m[1], err)
	}
	if r.latencyMax, err = time.ParseDuration(m[3]); err != nil {
		return r, fmt.Errorf("latency maximum %q: %v", m[3], err)
	}
	if m := wrkP99RE.FindStringSubmatch(out); m != nil {
		r.p99, _ = time.ParseDuration(m[1])
	}
	if m = wrkReqsRE.FindStringSubmatch(out); m == nil {
		return r, fmt.Errorf("no request count")
	}
	r.requests, _ = strconv.Atoi(m[1])
	if m = wrkRateRE.FindStringSubmatch(out); m == nil {
		return r, fmt.Errorf("no Requests/sec line")
	}
	r.reqPerSec, _ = strconv.ParseFloat(m[1], 64)
	r.socketErrors = grepLine(out, "Socket errors")
	r.non2xx = grepLine(out, "Non-2xx")
	return r, nil
}

// TestHTTPSWrk: wrk drives 32 keep-alive HTTPS connections from 2 threads
// for 10 s. Every request must succeed (no socket errors, timeouts or
// non-2xx answers) and none may stall: the rate stays above a low floor
// and the slowest request takes well under wrk's 2 s timeout.
func TestHTTPSWrk(t *testing.T) {
	requireRoot(t)
	requireTool(t, "wrk", "curl")
	ns := newNamespace(t)
	_, ca := startHTTPS(t, ns)
	const (
		minRate    = 100             // requests/s
		maxLatency = 1 * time.Second // the slowest request
	)
	// wrk does not verify the certificate.
	out, err := runIn(t, ns, 40*time.Second, "wrk", "-t2", "-c32", "-d10s", "--latency", httpsURL("/"))
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	t.Logf("wrk -t2 -c32 -d10s:\n%s", out)
	r, err := parseWrk(out)
	if err != nil {
		t.Fatalf("reading wrk's report: %v\n%s", err, out)
	}
	// wrk prints the line only when there were socket errors; accept it
	// anyway if every count is zero.
	if m := wrkSockRE.FindStringSubmatch(r.socketErrors); r.socketErrors != "" && (m == nil || m[1]+m[2]+m[3]+m[4] != "0000") {
		t.Errorf("wrk: %s", r.socketErrors)
	}
	if r.non2xx != "" {
		t.Errorf("wrk: %s", r.non2xx)
	}
	if r.requests == 0 || r.reqPerSec < minRate {
		t.Errorf("wrk: %d requests, %.0f requests/s; want at least %d/s", r.requests, r.reqPerSec, minRate)
	}
	if r.latencyMax > maxLatency {
		t.Errorf("wrk: the slowest request took %v (average %v): a stall (want < %v)", r.latencyMax, r.latencyAvg, maxLatency)
	}
	t.Logf("HTTPS through ustack: %.0f requests/s (%d in 10 s), latency average %v, p99 %v, max %v", r.reqPerSec, r.requests, r.latencyAvg, r.p99, r.latencyMax)

	// The server still answers afterwards.
	if out, err := runIn(t, ns, 20*time.Second, "curl", "-sS", "--max-time", "10", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", httpsURL("/")); err != nil || out != "200" {
		t.Errorf("curl after wrk: %v %s", err, out)
	}
}

// bytesPatternSHA256 is the SHA-256 of what /bytes/n serves: byte k is
// k mod 251.
func bytesPatternSHA256(n int64) [32]byte {
	var buf [251 * 256]byte
	for i := range buf {
		buf[i] = byte(i % 251)
	}
	h := sha256.New()
	for n > 0 {
		k := min(n, int64(len(buf)))
		h.Write(buf[:k])
		n -= k
	}
	return [32]byte(h.Sum(nil))
}

// countingHash hashes and counts what is written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// fetchBytes downloads /bytes/size with curl (verifying the certificate)
// and checks the SHA-256 of what arrived against the pattern's. curl gives
// up if less than 1 byte/s arrives for 15 s (a stall) or at timeout.
func fetchBytes(t *testing.T, ns *tun.Namespace, ca string, size int64, timeout time.Duration) transferResult {
	t.Helper()
	want := bytesPatternSHA256(size)
	got := &countingHash{h: sha256.New()}
	start := time.Now()
	url := httpsURL(fmt.Sprintf("/bytes/%d", size))
	stderr, err := runInTo(t, ns, timeout+10*time.Second, got, "curl", "-sS", "--fail", "--cacert", ca,
		"--max-time", strconv.Itoa(int(timeout.Seconds())), "--speed-limit", "1", "--speed-time", "15", url)
	res := transferResult{bytes: got.n, elapsed: time.Since(start), sent: want}
	got.h.Sum(res.received[:0])
	if err != nil {
		t.Fatalf("curl %s: %v after %d of %d bytes in %v\n%s", url, err, got.n, size, res.elapsed.Round(time.Millisecond), stderr)
	}
	if got.n != size {
		t.Fatalf("curl %s: %d bytes, want %d", url, got.n, size)
	}
	if res.received != want {
		t.Fatalf("curl %s: sha256 %x, want %x (the pattern's)", url, res.received, want)
	}
	return res
}

// TestHTTPSDownload: 100 MiB over HTTPS (curl, certificate verified), each
// byte as /bytes/N promises (SHA-256 of the pattern); then again with 2%
// loss each way on ustack's link. With RACK-TLP the lossy run takes a few
// seconds (about 40 MB/s); before it, about 30 s (3-4 MB/s, nearly all of
// it waiting for retransmission timeouts), hence the generous deadline.
func TestHTTPSDownload(t *testing.T) {
	requireRoot(t)
	requireTool(t, "curl")
	const size = 100 * mib
	t.Run("clean", func(t *testing.T) {
		ns := newNamespace(t)
		_, ca := startHTTPS(t, ns)
		res := fetchBytes(t, ns, ca, size, 60*time.Second)
		t.Logf("HTTPS download: %v", res)
	})
	t.Run("loss=0.02", func(t *testing.T) {
		ns := newNamespace(t)
		_, ca := startHTTPS(t, ns, "--impair", "loss=0.02")
		res := fetchBytes(t, ns, ca, size, 150*time.Second)
		t.Logf("HTTPS download with 2%% loss: %v", res)
	})
}

// The addresses of `ustack get` in TestGetHTTPS: its own TUN, separate
// from the serve tests' (it runs as a client, the server is the kernel's).
const (
	getTLSAddr = "198.18.1.2"
	getTLSHost = "198.18.1.1"
	getTLSDev  = devPrefix + "g1"
)

// kernelHTTPSServer serves body over Go's crypto/tls on the kernel side of
// ns at addr with the given certificate; what its TLS layer logs (handshake
// errors, such as the alert a refusing client sends) goes to the returned
// buffer.
func kernelHTTPSServer(t *testing.T, ns *tun.Namespace, addr string, cert tlslite.Certificate, body string) *syncBuffer {
	t.Helper()
	certPEM, keyPEM := cert.EncodePEM()
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l := listenIn(t, ns, addr)
	logs := &syncBuffer{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, body)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{kp}},
		ErrorLog:  log.New(logs, "", 0),
	}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return logs
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestGetHTTPS: `ustack get` (tlslite over ustack's TCP) fetches a page
// from Go's crypto/tls server on the kernel side, verifying its certificate
// against the CA given with --cacert. It refuses, with a non-zero status
// and the reason on stderr, an expired certificate, one issued for another
// address, and one from a CA it was not given; it tells the server why
// with the matching alert (RFC 5246 §7.2.2).
func TestGetHTTPS(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	ip := net.ParseIP(getTLSHost)
	ca, err := tlslite.NewCA("ustack integration CA", nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlslite.NewCA("some other CA", nil)
	if err != nil {
		t.Fatal(err)
	}
	good, err := ca.Issue([]net.IP{ip}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := ca.Issue([]net.IP{ip}, nil, &tlslite.CertOptions{
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	wrongHost, err := ca.Issue([]net.IP{net.ParseIP("198.18.1.9")}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeCA := func(name string, c *tlslite.CA) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pemCert(c), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile, otherFile := writeCA("ca.pem", ca), writeCA("other.pem", other)

	const body = "hello over TLS from the kernel side\n"
	goodLog := kernelHTTPSServer(t, ns, net.JoinHostPort(getTLSHost, "8443"), good, body)
	expiredLog := kernelHTTPSServer(t, ns, net.JoinHostPort(getTLSHost, "8444"), expired, body)
	wrongLog := kernelHTTPSServer(t, ns, net.JoinHostPort(getTLSHost, "8445"), wrongHost, body)

	get := func(t *testing.T, port, cacert string) (int, string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := ns.Command(ctx, ustackBin, "get", "https://"+getTLSHost+":"+port+"/page", "--cacert", cacert,
			"--tun", getTLSDev, "--addr", getTLSAddr, "--host-addr", getTLSHost+"/30", "--timeout", "30s")
		cmd.WaitDelay = time.Second
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("ustack get: still running after 60 s\nstderr:\n%s", stderr.String())
		}
		code := exitCode(err)
		if code < 0 {
			t.Fatalf("ustack get: %v", err)
		}
		if out, err := runIn(t, ns, 10*time.Second, "ip", "-o", "link", "show", "dev", getTLSDev); err == nil {
			t.Errorf("TUN device %s still exists after ustack get exited:\n%s", getTLSDev, out)
		}
		return code, stdout.String(), stderr.String()
	}

	t.Run("verified", func(t *testing.T) {
		code, stdout, stderr := get(t, "8443", caFile)
		if code != 0 || stdout != body {
			t.Errorf("ustack get: exit %d, printed %q; want 0 and %q\nstderr:\n%s\nserver log:\n%s", code, stdout, body, stderr, goodLog)
		}
	})
	for _, c := range []struct {
		name, port, cacert string
		want               string      // on ustack get's stderr
		alert              string      // in the server's log of the failed handshake
		log                *syncBuffer // that log
	}{
		{"expired", "8444", caFile, "expired", "expired certificate", expiredLog},
		{"wrong host", "8445", caFile, "not valid for the requested host", "bad certificate", wrongLog},
		{"unknown authority", "8443", otherFile, "unknown authority", "unknown certificate authority", goodLog},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := get(t, c.port, c.cacert)
			t.Logf("exit %d: %s", code, strings.TrimSpace(stderr))
			if code == 0 {
				t.Errorf("ustack get accepted the certificate (exit 0)")
			}
			if stdout != "" {
				t.Errorf("ustack get printed %q despite refusing the certificate", stdout)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr does not name the reason %q:\n%s", c.want, stderr)
			}
			// The server learns why from the client's alert.
			// The server logs after its handshake fails.
			if !waitfor.Within(5*time.Second, func() bool { return strings.Contains(c.log.String(), c.alert) }) {
				t.Errorf("the server's log does not show the alert %q:\n%s", c.alert, c.log)
			}
		})
	}
}

// pemCert encodes a CA's certificate as PEM, as a --cacert file.
func pemCert(c *tlslite.CA) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}
