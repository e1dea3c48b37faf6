package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"ustack/internal/services"
	"ustack/stack"
	"ustack/stack/tcp"
	"ustack/tlslite"
)

type serveFlags struct {
	linkFlags
	sockFlags
	echo, discard, source, http int
	https                       int
	tlsDir, kex                 string
	keepIdle, keepIntvl         time.Duration
	keepCount                   int
}

// drainTime bounds how long serve waits, when it stops, for its
// connections' FINs to be acknowledged before it resets the rest.
const drainTime = 2 * time.Second

func cmdServe(args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	if err := f.parse(args, stderr); err != nil {
		return err
	}
	lc, err := f.validate()
	if err != nil {
		return err
	}
	kex, ok := tlslite.ParseKeyExchange(f.kex)
	if !ok {
		return usageErr("--kex %q: use rsa, ecdhe or any", f.kex)
	}
	var tlsCfg *tlslite.Config
	if f.https != 0 {
		if tlsCfg, err = serverTLS(f.tlsDir, lc.addr, kex, stdout); err != nil {
			return err
		}
	}
	tcpCfg := tcp.Config{KeepAlive: true, KeepIdle: f.keepIdle, KeepInterval: f.keepIntvl, KeepCount: f.keepCount}
	ns, err := openStack(&f.linkFlags, lc, tcpCfg, stdout)
	if err != nil {
		return err
	}
	defer ns.close()
	srv, err := f.start(ns.st, lc, tlsCfg, stdout)
	if err != nil {
		return err
	}
	if f.https != 0 {
		u := fmt.Sprintf("https://%v/", lc.addr)
		if f.https != 443 {
			u = fmt.Sprintf("https://%v:%d/", lc.addr, f.https)
		}
		fmt.Fprintf(stdout, "try: curl --cacert %s %s\n", filepath.Join(f.tlsDir, "ca.pem"), u)
	}
	fmt.Fprintf(stdout, "ready: ustack %v on %s (kernel side %v, mtu %d, offload %v)\n", lc.addr, ns.dev.Name(), lc.host, f.mtu, ns.dev.Offload())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	got := <-sig
	fmt.Fprintf(stdout, "stopping on %v: closing every connection before removing %s\n", got, ns.dev.Name())
	st := srv.Stop(drainTime)
	fmt.Fprintf(stdout, "stopped: closed %d connections on the wire, %d of them aborted with RST (not done within %v), in %v\n",
		st.Closed, st.Aborted, drainTime, st.Took.Round(time.Millisecond))
	return nil
}

// parse registers serve's flags and parses args.
func (f *serveFlags) parse(args []string, stderr io.Writer) error {
	fs := newFlagSet("serve", "Usage: ustack serve [flags]\n\nRun services on a TUN device until SIGINT or SIGTERM. Needs CAP_NET_ADMIN.\n\n", stderr)
	f.linkFlags.register(fs)
	f.sockFlags.register(fs)
	fs.IntVar(&f.echo, "echo", 0, "echo service (RFC 862) on `PORT`")
	fs.IntVar(&f.discard, "discard", 0, "discard service (RFC 863) on `PORT`")
	fs.IntVar(&f.source, "source", 0, "endless byte stream on `PORT` until the peer closes")
	fs.IntVar(&f.http, "http", 0, "plain HTTP/1.1 on `PORT`: a page showing the visitor's connection")
	fs.IntVar(&f.https, "https", 0, "HTTPS (tlslite + net/http) on `PORT`: the same page, with the TLS session")
	fs.StringVar(&f.tlsDir, "tls-dir", "ustack-tls", "`DIR` with ca.pem, cert.pem, key.pem: used if present, else created")
	fs.StringVar(&f.kex, "kex", "any", "TLS key exchange: rsa, ecdhe, or any (prefers ECDHE when offered)")
	fs.DurationVar(&f.keepIdle, "keepalive-idle", tcp.DefaultKeepIdle, "keepalive idle time")
	fs.DurationVar(&f.keepIntvl, "keepalive-interval", tcp.DefaultKeepInterval, "keepalive probe interval")
	fs.IntVar(&f.keepCount, "keepalive-count", tcp.DefaultKeepCount, "unanswered keepalive probes before abort")
	if err := parseFlags(fs, args, "serve"); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q: serve takes only flags (see 'ustack serve -h')", fs.Arg(0))
	}
	return nil
}

// validate checks every flag and explains how to fix a mistake.
func (f *serveFlags) validate() (linkConfig, error) {
	lc, err := f.linkFlags.validate()
	if err != nil {
		return lc, err
	}
	if err := f.sockFlags.validate(); err != nil {
		return lc, err
	}
	if err := f.checkPorts(); err != nil {
		return lc, err
	}
	if f.keepIdle <= 0 || f.keepIntvl <= 0 || f.keepCount <= 0 {
		return lc, usageErr("--keepalive-idle, --keepalive-interval and --keepalive-count must be positive")
	}
	return lc, nil
}

// checkPorts checks that each service asked for has a port of its own.
func (f *serveFlags) checkPorts() error {
	ports := map[string]int{"--echo": f.echo, "--discard": f.discard, "--source": f.source, "--http": f.http, "--https": f.https}
	seen := map[int]string{}
	for name, p := range ports {
		if p < 0 || p > 65535 {
			return usageErr("%s %d is not a port (1-65535)", name, p)
		}
		if p == 0 {
			continue
		}
		if other, ok := seen[p]; ok {
			return usageErr("%s and %s both use port %d: give each service its own port", other, name, p)
		}
		seen[p] = name
	}
	if len(seen) == 0 {
		return usageErr("no service to run: give at least one of --echo, --discard, --source, --http, --https (example: --echo 7 --http 80)")
	}
	return nil
}

// start runs each service asked for on its port of st.
func (f *serveFlags) start(st *stack.Stack, lc linkConfig, tlsCfg *tlslite.Config, stdout io.Writer) (*services.Server, error) {
	srv := &services.Server{Setup: f.setup}
	httpsServe := func(l net.Listener) { srv.HTTP(tlslite.NewListener(l, tlsCfg), "") }
	plainServe := func(l net.Listener) { srv.HTTP(l, "") }
	for _, s := range []struct {
		port  int
		serve func(net.Listener)
		name  string
	}{
		{f.echo, srv.Handle(services.Echo), "echo"},
		{f.discard, srv.Handle(services.Discard), "discard"},
		{f.source, srv.Handle(services.Source), "source"},
		{f.http, plainServe, "http"},
		{f.https, httpsServe, "https"},
	} {
		if s.port == 0 {
			continue
		}
		l, err := f.listenConfig().Listen(st, uint16(s.port))
		if err != nil {
			srv.Close()
			return nil, err
		}
		srv.Go(l, s.serve)
		fmt.Fprintf(stdout, "listening: %s on %v:%d\n", s.name, lc.addr, s.port)
	}
	return srv, nil
}

// serverTLS loads or creates the TLS directory (a CA and an RSA-2048 leaf
// for addr) and returns the server configuration. SSLKEYLOGFILE, if set,
// receives the session keys in NSS format.
func serverTLS(dir string, addr netip.Addr, kex tlslite.KeyExchange, stdout io.Writer) (*tlslite.Config, error) {
	d, err := tlslite.LoadOrCreateDir(dir, []net.IP{net.IP(addr.AsSlice())}, nil)
	if err != nil {
		return nil, fmt.Errorf("--tls-dir %s: %w", dir, err)
	}
	if d.Created {
		fmt.Fprintf(stdout, "tls: created a CA and an RSA-2048 certificate for %v in %s\n", addr, dir)
	} else {
		fmt.Fprintf(stdout, "tls: using the certificate in %s\n", dir)
	}
	cfg := &tlslite.Config{Certificates: []tlslite.Certificate{d.Certificate}, KeyExchange: kex}
	if kl, err := keyLog(); err != nil {
		return nil, err
	} else if kl != nil {
		cfg.KeyLogWriter = kl
	}
	return cfg, nil
}

// keyLog opens $SSLKEYLOGFILE for appending, if set.
func keyLog() (io.Writer, error) {
	name := os.Getenv("SSLKEYLOGFILE")
	if name == "" {
		return nil, nil
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("SSLKEYLOGFILE: %w", err)
	}
	return f, nil
}
