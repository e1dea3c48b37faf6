package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"ustack/tun"
)

// The serve rows: `ustack serve` itself, the CLI a user runs, as a
// subprocess in the client namespace (where it creates its TUN), reached
// by the same wrk runs as http_rps, http_conn_per_s and https_rps. The
// kernel and gVisor have no `ustack serve`: their columns are the bench
// server's figures (the same net/http handler with the bench page), so the
// ratio reads "ustack serve against the kernel's Go server".

// serveMetrics maps each serve metric to the measurement it repeats.
var serveMetrics = []struct {
	name string
	run  func(b *bench, ctx context.Context, env *benchEnv) (map[string]float64, error)
	from string // the metric of run's result
}{
	{"serve_http_rps", (*bench).measureHTTP, "http_rps"},
	{"serve_conn_per_s", (*bench).measureHTTPConn, "http_conn_per_s"},
	{"serve_https_rps", (*bench).measureHTTPS, "https_rps"},
}

// measureServe runs the serve rows asked for on one stack.
func (b *bench) measureServe(ctx context.Context, stack string, _ int) (map[string]float64, error) {
	var env *benchEnv
	var err error
	if stack == stackUstack {
		env, err = b.serveEnv(ctx)
	} else {
		env, err = b.env(stack, 0, 0)
	}
	if err != nil {
		return nil, err
	}
	defer env.Close()
	out := map[string]float64{}
	for _, m := range serveMetrics {
		if b.p.Only != nil && !b.p.Only[m.name] {
			continue
		}
		vals, err := m.run(b, ctx, env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		out[m.name] = vals[m.from]
	}
	return out, nil
}

// measureServe6 is serve_http_ipv6_rps: on ustack, the wrk run of
// serve_http_rps against serve's IPv6 address (serve takes 2001:2::2 by
// default, with 2001:2::1/64 on the kernel's side of its TUN); on the
// others, http_rps in an IPv6 environment.
func (b *bench) measureServe6(ctx context.Context, stack string, round int) (map[string]float64, error) {
	if stack != stackUstack {
		return onEnv6((*bench).measureHTTP, "http_rps", "serve_http_ipv6_rps")(b, ctx, stack, round)
	}
	env, err := b.serveEnv(ctx)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	env.addr = benchServerAddr6
	vals, err := b.measureHTTP(ctx, env)
	if err != nil {
		return nil, err
	}
	return map[string]float64{"serve_http_ipv6_rps": vals["http_rps"]}, nil
}

// serveAddrArgs are serve's flags for the bench's addresses and link.
func serveAddrArgs() []string {
	return []string{
		"--tun", "bench0", "--mtu", strconv.Itoa(benchMTU),
		"--addr", benchServerAddr.String(),
		"--host-addr", fmt.Sprintf("%v/%d", benchClientAddr, benchPrefixLen),
		"--addr6", benchServerAddr6.String(),
		"--host-addr6", netip.PrefixFrom(benchClientAddr6, benchPrefixLen6).String(),
	}
}

// serveEnv starts `ustack serve --http 80 --https 443` in a fresh client
// namespace, waits for its "ready:" line, and checks over HTTPS, trusting
// the CA serve wrote, that the page is serve's. Close stops it with
// SIGTERM (by its PID) and waits for it.
func (b *bench) serveEnv(ctx context.Context) (env *benchEnv, err error) {
	env = &benchEnv{stack: stackUstack, addr: benchServerAddr}
	defer func() {
		if err != nil {
			env.Close()
			env = nil
		}
	}()
	if env.client, err = tun.NewNamespace("bench_client"); err != nil {
		return nil, err
	}
	env.onClose(func() { env.client.Close() })
	if err := setSysctl(env.client, "net/ipv4/ip_local_port_range", "1024 65535"); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ustack-bench-serve-tls-")
	if err != nil {
		return nil, err
	}
	env.onClose(func() { os.RemoveAll(dir) })
	exe, err := benchExe()
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve"}, serveAddrArgs()...)
	args = append(args, "--http", strconv.Itoa(benchPortHTTP), "--https", strconv.Itoa(benchPortHTTPS),
		"--tls-dir", dir, "--kex", "rsa", "--backlog", "4096", "--cc", kernelCC())
	args = append(args, b.serveArgs...) // the queues rows' --queues
	h, err := startHelper(ctx, env.client, exe, args...)
	if err != nil {
		return nil, err
	}
	log := &serveOutput{}
	env.onClose(func() { stopServe(h, log, b) })
	if err := waitReady(h, log, 10*time.Second); err != nil {
		return nil, err
	}
	if err := checkServePage(env.client, filepath.Join(dir, "ca.pem")); err != nil {
		return nil, err
	}
	return env, nil
}

// serveOutput is what serve printed; all is complete once done is closed.
type serveOutput struct {
	ready, done chan struct{}
	all         strings.Builder
}

// waitReady reads serve's stdout in the background, to the end, and waits
// for its "ready:" line.
func waitReady(h *helper, l *serveOutput, within time.Duration) error {
	l.ready, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(h.stdout)
		seen := false
		for sc.Scan() {
			l.all.WriteString(sc.Text() + "\n")
			if !seen && strings.HasPrefix(sc.Text(), "ready:") {
				seen = true
				close(l.ready)
			}
		}
	}()
	select {
	case <-l.ready:
		return nil
	case <-l.done:
		werr := h.cmd.Wait()
		return fmt.Errorf("ustack serve exited before it was ready (%v): %s", werr, strings.TrimSpace(h.stderr.String()))
	case <-time.After(within):
		return fmt.Errorf("ustack serve: no \"ready:\" line within %v: %s", within, strings.TrimSpace(h.stderr.String()))
	}
}

// stopServe sends SIGTERM to serve's PID and waits for it to exit (killing
// it after 10 s); its last lines go to the step's notes.
func stopServe(h *helper, l *serveOutput, b *bench) {
	h.stdin.Close()
	if h.cmd.Process == nil || h.cmd.ProcessState != nil { // never started, or waited for
		return
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() {
		if l.done != nil {
			<-l.done
		}
		exited <- h.cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			b.note("ustack serve exited with %v: %s", err, strings.TrimSpace(h.stderr.String()))
		}
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-exited
		b.note("ustack serve did not stop within 10 s of SIGTERM: killed")
	}
	b.queueSplit = nil
	for line := range strings.SplitSeq(l.all.String(), "\n") {
		if strings.HasPrefix(line, "stopped:") {
			b.note("ustack serve %s", line)
		}
		if strings.HasPrefix(line, "queues:") {
			b.queueSplit = parseQueueSplit(line)
		}
	}
}

// checkServePage fetches / over HTTPS from inside ns, trusting only the CA
// in caFile, with the bench's suite (RSA key exchange), and checks that
// serve's connection page came back.
func checkServePage(ns *tun.Namespace, caFile string) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("serve's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return errors.New("serve's CA: no certificate in " + caFile)
	}
	var c net.Conn
	addr := net.JoinHostPort(benchServerAddr.String(), strconv.Itoa(benchPortHTTPS))
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 5*time.Second)
		return err
	}); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, &tls.Config{
		RootCAs:      pool,
		ServerName:   benchServerAddr.String(),
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
	})
	if _, err := io.WriteString(tc, "GET / HTTP/1.1\r\nHost: "+benchServerAddr.String()+"\r\nConnection: close\r\n\r\n"); err != nil {
		return fmt.Errorf("serve over HTTPS (trusting its CA): %w", err)
	}
	body, err := io.ReadAll(tc)
	if err != nil {
		return fmt.Errorf("serve over HTTPS: %w", err)
	}
	if !strings.HasPrefix(string(body), "HTTP/1.1 200") || !strings.Contains(string(body), "Hello from ustack") {
		return fmt.Errorf("serve over HTTPS: not its connection page: %.200q", body)
	}
	return nil
}
