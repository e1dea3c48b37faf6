package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"time"

	"ustack/stack/tcp"
	"ustack/tlslite"
)

func cmdGet(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("get", "Usage: ustack get URL [flags]\n\nFetch URL with ustack as the client, through a TUN device. The server is on\nthe kernel side (usually the --host-addr address). Needs CAP_NET_ADMIN.\n\n", stderr)
	var f linkFlags
	f.register(fs)
	var timeout time.Duration
	var cacert string
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	fs.StringVar(&cacert, "cacert", "", "CA certificate `FILE` (PEM) to verify an https server with")
	// Accept the URL before or after the flags.
	var rawURL string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		rawURL, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args, "get"); err != nil {
		return err
	}
	if rawURL == "" && fs.NArg() > 0 {
		rawURL = fs.Arg(0)
	}
	if rawURL == "" {
		return usageErr("missing URL (example: ustack get http://198.18.0.1:8080/)")
	}
	u, ip, port, err := getTarget(rawURL)
	if err != nil {
		return err
	}
	tlsCfg, err := getTLS(u, cacert)
	if err != nil {
		return err
	}
	lc, err := f.validate()
	if err != nil {
		return err
	}
	ns, err := openStack(&f, lc, tcp.Config{}, stderr, stderr)
	if err != nil {
		return err
	}
	defer ns.close()
	if ip.Is6() && !ns.addr6.IsValid() {
		return fmt.Errorf("GET %s: the stack has no IPv6 address (--addr6 none, or IPv6 off as said above)", u)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dialTCP := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return ns.st.DialTCP(ctx, netip.AddrPortFrom(ip, uint16(port)))
	}
	tr := &http.Transport{DialContext: dialTCP, DisableKeepAlives: true}
	if tlsCfg != nil {
		d := &tlslite.Dialer{Config: tlsCfg, Dial: dialTCP}
		tr.DialTLSContext = d.DialContext
	}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		var ce *tlslite.CertificateError
		if errors.As(err, &ce) {
			return fmt.Errorf("GET %s: the server's certificate was refused: %v", u, ce)
		}
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		return fmt.Errorf("GET %s: reading body: %w", u, err)
	}
	if resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

// getTarget reads the URL: the server's IP address (IPv4, or IPv6 in
// brackets as RFC 3986 §3.2.2 writes it) and port. The stack chooses the
// source address of the same family (RFC 6724).
func getTarget(rawURL string) (*url.URL, netip.Addr, int, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, netip.Addr{}, 0, usageErr("%q is not an http:// or https:// URL (example: http://198.18.0.1:8080/ or http://[2001:2::1]:8080/)", rawURL)
	}
	host := u.Hostname()
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return nil, netip.Addr{}, 0, usageErr("%q: give the server as an IPv4 address or an IPv6 address in brackets (ustack resolves no names; example: http://[2001:2::1]:8080/)", host)
	}
	ip = ip.Unmap()
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		port, _ = strconv.Atoi(p)
	}
	return u, ip, port, nil
}

// getTLS is the client's TLS configuration for an https:// URL (nil for
// http://), trusting --cacert if given.
func getTLS(u *url.URL, cacert string) (*tlslite.Config, error) {
	if u.Scheme != "https" {
		if cacert != "" {
			return nil, usageErr("--cacert is for https:// URLs")
		}
		return nil, nil
	}
	cfg := &tlslite.Config{ServerName: u.Hostname()}
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return nil, usageErr("--cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageErr("--cacert %s holds no PEM certificate", cacert)
		}
		cfg.RootCAs = pool
	}
	kl, err := keyLog()
	if err != nil {
		return nil, err
	}
	if kl != nil {
		cfg.KeyLogWriter = kl
	}
	return cfg, nil
}
