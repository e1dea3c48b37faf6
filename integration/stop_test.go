package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"ustack/internal/waitfor"
	"ustack/tun"
)

// bgCurl is a curl download running in the background.
type bgCurl struct {
	name, out string
	done      chan struct{}
	err       error
	output    string
	ended     time.Time
}

// startCurl downloads url into out inside ns, at most 20 MB/s (so that the
// file stays small) and for at most 60 s.
func startCurl(t *testing.T, ns *tun.Namespace, name, out string, args ...string) *bgCurl {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	full := append([]string{"-sS", "--max-time", "60", "--limit-rate", "20M", "-o", out}, args...)
	cmd := ns.Command(ctx, "curl", full...)
	cmd.WaitDelay = time.Second
	var b strings.Builder
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting curl: %v", err)
	}
	c := &bgCurl{name: name, out: out, done: make(chan struct{})}
	go func() {
		defer cancel()
		c.err = cmd.Wait()
		c.ended, c.output = time.Now(), b.String()
		close(c.done)
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

// size is how much curl has written so far.
func (c *bgCurl) size() int64 {
	fi, err := os.Stat(c.out)
	if err != nil {
		return 0
	}
	return fi.Size()
}

var stoppedRE = regexp.MustCompile(`^stopped: closed (\d+) connections on the wire, (\d+) of them aborted`)

// TestStopEndsEveryConnection: SIGTERM to serve while curl downloads a
// large /bytes/N over --http and over --https and an echo client idles:
// serve closes every connection on the wire before it removes its device,
// so both curls end at once with an error (the body is cut short, not a
// hang until their 60 s timeout), the echo client reads EOF, the trace
// shows each connection's FIN acknowledged, and serve reports the three
// connections it closed.
func TestStopEndsEveryConnection(t *testing.T) {
	requireRoot(t)
	requireTool(t, "curl")
	ns := newNamespace(t)
	s, ca := startHTTPS(t, ns, "--http", httpPort, "--echo", echoPort)
	d := newDialer(t, ns, 1)
	dir := t.TempDir()
	const big = "/bytes/17179869184" // 16 GiB: at 20 MB/s, a download in progress
	curls := []*bgCurl{
		startCurl(t, ns, "http", filepath.Join(dir, "http.out"), "http://"+stackAddr+big),
		startCurl(t, ns, "https", filepath.Join(dir, "https.out"), "--cacert", ca, httpsURL(big)),
	}
	for _, c := range curls {
		waitfor.Condf(t, 20*time.Second, func() string {
			return fmt.Sprintf("curl over %s to download 1 MiB (has %d bytes)", c.name, c.size())
		}, func() bool { return c.size() >= mib })
	}
	echo := d.mustDial(t, echoAddr())
	defer echo.Close()
	echoOnce(t, echo, "before the stop")
	echoEnd := make(chan error, 1)
	go func() {
		echo.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := io.Copy(io.Discard, echo)
		echoEnd <- err
	}()

	sigterm := time.Now()
	s.stop() // SIGTERM; waits for the exit and checks that the device is gone
	for _, c := range curls {
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("curl over %s still runs 20 s after SIGTERM", c.name)
		}
		took := c.ended.Sub(sigterm)
		t.Logf("curl over %s: ended %v after SIGTERM with exit status %d, %d bytes: %s", c.name, took.Round(time.Millisecond), exitCode(c.err), c.size(), strings.TrimSpace(c.output))
		if code := exitCode(c.err); code == 0 || code == 28 {
			t.Errorf("curl over %s: exit status %d, want an error for the body cut short (28 would be its own timeout)", c.name, code)
		}
		if took > 5*time.Second {
			t.Errorf("curl over %s ended %v after SIGTERM, want promptly (the drain bound is 2 s)", c.name, took)
		}
	}
	select {
	case err := <-echoEnd:
		if err != nil {
			t.Errorf("echo client: %v, want EOF (the service's FIN)", err)
		}
		t.Logf("echo client: EOF %v after SIGTERM", time.Since(sigterm).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("echo client still waits 20 s after SIGTERM")
	}
	checkStopReport(t, s, 3)
}

// checkStopReport checks serve's line on stopping: want connections
// closed, none aborted, each FIN acknowledged in the trace.
func checkStopReport(t *testing.T, s *server, want int) {
	t.Helper()
	_, line, err := s.out.wait(0, time.Second, stoppedRE.MatchString)
	if err != nil {
		t.Fatalf("serve printed no 'stopped: closed N connections' line: %v", err)
	}
	t.Logf("serve: %s", line)
	m := stoppedRE.FindStringSubmatch(line)
	closed, _ := strconv.Atoi(m[1])
	aborted, _ := strconv.Atoi(m[2])
	if closed != want || aborted != 0 {
		t.Errorf("serve closed %d connections (%d aborted), want %d, none aborted", closed, aborted, want)
	}
	if n := countTrace(s, "FIN-WAIT-1", "FIN-WAIT-2"); n != want {
		t.Errorf("trace shows %d FIN-WAIT-1 -> FIN-WAIT-2 (our FIN acknowledged), want %d", n, want)
	}
}
