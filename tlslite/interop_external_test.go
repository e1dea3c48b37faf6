package tlslite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"ustack/internal/waitfor"
)

// proc is an external process bounded by a context, whose combined output
// can be waited on.
type proc struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stdin  io.WriteCloser
	mu     sync.Mutex
	out    bytes.Buffer
	grew   chan struct{}
	done   chan struct{}
	err    error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.Write(b)
	select {
	case p.grew <- struct{}{}:
	default:
	}
	return len(b), nil
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startProc runs name args with a hard timeout.
func startProc(t *testing.T, timeout time.Duration, stdin bool, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	p := &proc{cancel: cancel, grew: make(chan struct{}, 1), done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.WaitDelay = time.Second
	if stdin {
		var err error
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output())
		}
	})
	return p
}

// waitFor waits until the output matches re, the process exits or the
// deadline passes.
func (p *proc) waitFor(t *testing.T, re string, d time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if m := rx.FindStringSubmatch(p.output()); m != nil {
			return m
		}
		select {
		case <-p.grew:
		case <-p.done:
			if m := rx.FindStringSubmatch(p.output()); m != nil {
				return m
			}
			t.Fatalf("%s exited (%v) without printing %q", p.cmd.Path, p.err, re)
		case <-deadline.C:
			t.Fatalf("timeout waiting for %q from %s", re, p.cmd.Path)
		}
	}
}

func (p *proc) wait(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit", p.cmd.Path)
	}
	return p.output()
}

// startHTTPS serves net/http over tlslite on 127.0.0.1:0.
func startHTTPS(t *testing.T, cfg *Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", r.URL.Path)
	})}
	go srv.Serve(NewListener(l, cfg))
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

var opensslNames = map[uint16]string{
	TLS_RSA_WITH_AES_128_GCM_SHA256:       "AES128-GCM-SHA256",
	TLS_RSA_WITH_AES_256_GCM_SHA384:       "AES256-GCM-SHA384",
	TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
	TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
}

// TestOpenSSLClient: openssl s_client against tlslite (net/http) for each
// suite, with -reconnect resumption by ticket and by session ID.
func TestOpenSSLClient(t *testing.T) {
	openssl := needBinary(t, "openssl")
	p := pki(t)
	addr := startHTTPS(t, serverConfig(t))
	for _, suite := range allSuites {
		for _, ticket := range []bool{true, false} {
			name := opensslNames[suite] + map[bool]string{true: "/ticket", false: "/sessionID"}[ticket]
			t.Run(name, func(t *testing.T) {
				args := []string{"s_client", "-connect", addr, "-CAfile", p.caPath, "-verify_return_error",
					"-servername", "localhost", "-cipher", opensslNames[suite], "-reconnect", "-ign_eof"}
				if !ticket {
					args = append(args, "-no_ticket")
				}
				pr := startProc(t, 20*time.Second, true, openssl, args...)
				pr.waitFor(t, `Reused, TLSv1\.2[\s\S]*Reused, TLSv1\.2[\s\S]*Reused, TLSv1\.2[\s\S]*Reused, TLSv1\.2[\s\S]*Reused, TLSv1\.2`, 15*time.Second)
				io.WriteString(pr.stdin, "GET /openssl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
				pr.waitFor(t, `hello /openssl`, 10*time.Second)
				out := pr.wait(t, 10*time.Second)
				for _, want := range []string{
					"New, TLSv1.2, Cipher is " + opensslNames[suite],
					"Extended master secret: yes",
					"Secure Renegotiation IS supported",
					"Verify return code: 0 (ok)",
					"HTTP/1.1 200 OK",
				} {
					if !strings.Contains(out, want) {
						t.Errorf("s_client output lacks %q", want)
					}
				}
				if n := strings.Count(out, "Reused, TLSv1.2"); n != 5 {
					t.Errorf("%d resumed connections, want 5", n)
				}
			})
		}
	}
}

// TestOpenSSLRenegotiationRefused: s_client's "R" asks to renegotiate; the
// server answers no_renegotiation (RFC 5746 §4.4) and keeps serving.
// OpenSSL treats that warning as fatal, so its connection ends; a fresh
// connection then works.
func TestOpenSSLRenegotiationRefused(t *testing.T) {
	openssl := needBinary(t, "openssl")
	p := pki(t)
	cfg := serverConfig(t)
	refused := make(chan struct{}, 4)
	cfg.Observer = func(e Event) {
		if a, ok := e.(AlertEvent); ok && a.Sent() && a.Alert == AlertNoRenegotiation {
			refused <- struct{}{}
		}
	}
	addr := startHTTPS(t, cfg)
	// No -ign_eof: it disables s_client's command letters.
	pr := startProc(t, 20*time.Second, true, openssl, "s_client", "-connect", addr, "-CAfile", p.caPath,
		"-servername", "localhost")
	io.WriteString(pr.stdin, "GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
	pr.waitFor(t, `hello /first`, 10*time.Second)
	io.WriteString(pr.stdin, "R\n")
	pr.waitFor(t, `RENEGOTIATING`, 10*time.Second)
	select {
	case <-refused:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not send no_renegotiation")
	}
	pr.stdin.Close()
	pr.wait(t, 10*time.Second)
	// The server still serves.
	pr2 := startProc(t, 20*time.Second, true, openssl, "s_client", "-connect", addr, "-CAfile", p.caPath,
		"-servername", "localhost")
	io.WriteString(pr2.stdin, "GET /second HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
	pr2.waitFor(t, `hello /second`, 10*time.Second)
}

// TestOpenSSLServer: tlslite client against openssl s_server -www for each
// suite; the second connection resumes (ticket, and session ID with
// -no_ticket).
func TestOpenSSLServer(t *testing.T) {
	openssl := needBinary(t, "openssl")
	p := pki(t)
	for _, suite := range allSuites {
		for _, ticket := range []bool{true, false} {
			name := opensslNames[suite] + map[bool]string{true: "/ticket", false: "/sessionID"}[ticket]
			t.Run(name, func(t *testing.T) {
				args := []string{"s_server", "-accept", "127.0.0.1:0", "-cert", p.certPath, "-key", p.keyPath,
					"-tls1_2", "-cipher", opensslNames[suite], "-www"}
				if !ticket {
					args = append(args, "-no_ticket")
				}
				srv := startProc(t, 30*time.Second, false, openssl, args...)
				addr := srv.waitFor(t, `ACCEPT (127\.0\.0\.1:\d+)`, 10*time.Second)[1]
				cfg := clientConfig(t)
				cfg.ClientSessionCache = NewLRUClientSessionCache(4)
				cfg.SessionTicketsDisabled = !ticket
				for i := 0; i < 2; i++ {
					d := &Dialer{Config: cfg}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					c, err := d.DialContext(ctx, "tcp", addr)
					cancel()
					if err != nil {
						t.Fatalf("conn %d: %v", i, err)
					}
					st := c.(*Conn).ConnectionState()
					if st.CipherSuite != suite || !st.ExtendedMasterSecret || !st.SecureRenegotiation {
						t.Fatalf("state %+v", st)
					}
					if st.DidResume != (i == 1) || (i == 1 && st.ResumedWithTicket != ticket) {
						t.Fatalf("conn %d: DidResume %v ticket %v", i, st.DidResume, st.ResumedWithTicket)
					}
					c.SetDeadline(time.Now().Add(10 * time.Second))
					io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
					body, err := io.ReadAll(c)
					c.Close()
					if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("read: %v", err)
					}
					if !bytes.Contains(body, []byte("200 ok")) && !bytes.Contains(body, []byte("200 OK")) {
						t.Fatalf("body: %q", body)
					}
					if i == 1 && !bytes.Contains(body, []byte("Reused")) {
						t.Fatalf("s_server does not report reuse: %q", body)
					}
				}
			})
		}
	}
}

// TestCurl: curl's defaults (TLS 1.3 offered, negotiated down to 1.2) and
// RSA key exchange suites get 200 from net/http on tlslite.
func TestCurl(t *testing.T) {
	curl := needBinary(t, "curl")
	p := pki(t)
	addr := startHTTPS(t, serverConfig(t))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"default", nil, "ECDHE-RSA-AES128-GCM-SHA256"},
		{"AES128-GCM-SHA256", []string{"--tlsv1.2", "--ciphers", "AES128-GCM-SHA256"}, "AES128-GCM-SHA256"},
		{"AES256-GCM-SHA384", []string{"--tlsv1.2", "--ciphers", "AES256-GCM-SHA384"}, "AES256-GCM-SHA384"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-sS", "-v", "--cacert", p.caPath, "-w", "\nstatus=%{http_code}\n",
				"https://localhost:" + port(addr) + "/curl", "--resolve", "localhost:" + port(addr) + ":127.0.0.1"}, tc.args...)
			out := startProc(t, 20*time.Second, false, curl, args...).wait(t, 20*time.Second)
			for _, want := range []string{"status=200", "hello /curl", "SSL connection using TLSv1.2 / " + tc.want, "ALPN: server accepted http/1.1"} {
				if !strings.Contains(out, want) {
					t.Errorf("curl output lacks %q", want)
				}
			}
		})
	}
}

// TestGnuTLSRSA: gnutls-cli restricted to RSA key exchange.
func TestGnuTLSRSA(t *testing.T) {
	gnutls := needBinary(t, "gnutls-cli")
	p := pki(t)
	addr := startHTTPS(t, serverConfig(t))
	pr := startProc(t, 20*time.Second, true, gnutls, "--x509cafile", p.caPath, "--priority", "NORMAL:-KX-ALL:+RSA",
		"-p", port(addr), "127.0.0.1")
	pr.waitFor(t, `Handshake was completed`, 10*time.Second)
	io.WriteString(pr.stdin, "GET /gnutls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
	pr.waitFor(t, `hello /gnutls`, 10*time.Second)
	pr.stdin.Close()
	out := pr.wait(t, 10*time.Second)
	if !strings.Contains(out, "(TLS1.2-X.509)-(RSA)-(AES-128-GCM)") {
		t.Errorf("gnutls-cli did not use RSA key exchange")
	}
}

// TestTsharkDecrypts: a key log lets tshark decrypt a captured
// conversation and find the HTTP request.
func TestTsharkDecrypts(t *testing.T) {
	tshark := needBinary(t, "tshark")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("capturing on lo needs root")
		}
		t.Skip("capturing on lo needs root")
	}
	dir := t.TempDir()
	keylog := filepath.Join(dir, "keys.log")
	kf, err := os.Create(keylog)
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	cfg := serverConfig(t)
	cfg.KeyLogWriter = kf
	cfg.KeyExchange = KeyExchangeECDHE // forward secret: only the key log helps
	addr := startHTTPS(t, cfg)
	pcap := filepath.Join(dir, "cap.pcapng")
	// -l flushes each packet's line at once: tshark's stdout is a pipe here,
	// and block buffering would hold back the very lines waited on below.
	capt := startProc(t, 40*time.Second, false, tshark, "-l", "-i", "lo", "-f", "tcp port "+port(addr), "-w", pcap, "-P")
	capt.waitFor(t, `Capturing on`, 15*time.Second)
	// The capture is live once a probe connection's SYN shows up; a probe
	// goes out at most every 100ms until then.
	var probed time.Time
	waitfor.Cond(t, 15*time.Second, "tshark to see a probe connection", func() bool {
		if strings.Contains(capt.output(), "[SYN]") {
			return true
		}
		if time.Since(probed) >= 100*time.Millisecond {
			probed = time.Now()
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
			}
		}
		return false
	})
	ccfg := clientConfig(t)
	var clientPort string // the conversation's own port, to tell its FINs from the probes'
	var portMu sync.Mutex
	d := &Dialer{Config: ccfg}
	tr := &http.Transport{DialTLSContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, a)
		if err == nil {
			portMu.Lock()
			clientPort = port(c.LocalAddr().String())
			portMu.Unlock()
		}
		return c, err
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get("https://localhost:" + port(addr) + "/secret-path")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/secret-path") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	tr.CloseIdleConnections()
	// Stop the capture once it has seen the conversation end: both FINs, or
	// the client's FIN and the RST its kernel sends when the server's
	// close_notify reaches a socket that is already closed.
	portMu.Lock()
	cp := clientPort
	portMu.Unlock()
	fins := func() int {
		n := 0
		for _, line := range strings.Split(capt.output(), "\n") {
			if (strings.Contains(line, "FIN") || strings.Contains(line, "RST")) && strings.Contains(line, " "+cp+" ") {
				n++
			}
		}
		return n
	}
	waitfor.Cond(t, 10*time.Second, "tshark to see the connection close", func() bool { return fins() >= 2 })
	capt.cmd.Process.Signal(os.Interrupt)
	capt.wait(t, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tshark, "-r", pcap, "-o", "tls.keylog_file:"+keylog, "-Y", "http",
		"-T", "fields", "-e", "http.request.uri").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "/secret-path") {
		t.Fatalf("tshark did not decrypt the request:\n%s", out)
	}
	// Without the key log nothing is visible.
	out2, _ := exec.CommandContext(ctx, tshark, "-r", pcap, "-Y", "http").CombinedOutput()
	if strings.Contains(string(out2), "secret-path") {
		t.Fatalf("request visible without keys")
	}
}
