package main

import (
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
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
	udpEcho                     int
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
		if tlsCfg, err = serverTLS(f.tlsDir, validAddrs(lc.addr, lc.addr6), kex, stdout, stderr); err != nil {
			return err
		}
	}
	tcpCfg := tcp.Config{KeepAlive: true, KeepIdle: f.keepIdle, KeepInterval: f.keepIntvl, KeepCount: f.keepCount}
	ns, err := openStack(&f.linkFlags, lc, tcpCfg, stdout, stderr)
	if err != nil {
		return err
	}
	defer ns.close()
	srv, err := f.start(ns, lc, tlsCfg, stdout)
	if err != nil {
		return err
	}
	udp, err := f.startUDP(ns, lc, stdout)
	if err != nil {
		srv.Close()
		return err
	}
	if f.https != 0 {
		f.printTry(lc.addr, ns.addr6, stdout)
	}
	kernel := lc.host.String()
	if ns.addr6.IsValid() {
		kernel += " and " + ns.host6.String()
	} else {
		kernel += ", IPv6 off"
	}
	queues := ""
	if n := ns.dev.NumQueues(); n > 1 {
		queues = fmt.Sprintf(", %d queues", n)
	}
	// The signals are caught before "ready" is printed: whoever waits
	// for that line may signal at once (a test that finished in 60 ms did,
	// and the default action killed the process before it stopped).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	fmt.Fprintf(stdout, "ready: ustack %s on %s (kernel side %s, mtu %d, offload %v%s)\n", ns.addrs(lc.addr), ns.dev.Name(), kernel, f.mtu, ns.dev.Offload(), queues)
	got := <-sig
	fmt.Fprintf(stdout, "stopping on %v: closing every connection before removing %s\n", got, ns.dev.Name())
	udp.stop()
	st := srv.Stop(drainTime)
	fmt.Fprintf(stdout, "stopped: closed %d connections on the wire, %d of them aborted with RST (not done within %v), in %v\n",
		st.Closed, st.Aborted, drainTime, st.Took.Round(time.Millisecond))
	if qs := ns.st.Stats().Queues; len(qs) > 1 {
		fmt.Fprintln(stdout, queueLine(qs))
	}
	if ns.addr6.IsValid() {
		fmt.Fprintln(stdout, ip6Line(ns.st))
	}
	return nil
}

// ip6Line sums up what the IPv6 layer took in: the packets, the fragments
// it held for reassembly, and the ones it dropped, in all and by reason
// (those counted at least once):
// "ip6: received 900, frag_held 300, dropped 500 (frag_no_memory 200, too_many_ext_headers 300)".
func ip6Line(st *stack.Stack) string {
	var in, held, dropped uint64
	var reasons []string
	st.Each(func(name string, v uint64) {
		n, ok := strings.CutPrefix(name, "ip6.")
		switch {
		case !ok:
		case n == "received":
			in = v
		case n == "frag_held":
			held = v
		case n == "dropped":
			dropped = v
		case strings.HasPrefix(n, "drop_") && v > 0:
			reasons = append(reasons, fmt.Sprintf("%s %d", strings.TrimPrefix(n, "drop_"), v))
		}
	})
	line := fmt.Sprintf("ip6: received %d, frag_held %d, dropped %d", in, held, dropped)
	if len(reasons) > 0 {
		line += " (" + strings.Join(reasons, ", ") + ")"
	}
	return line
}

// queueLine says how the packets split over the queues:
// "queues: 0 rx 1200 tx 1300, 1 rx 1100 tx 1250 (packets)".
func queueLine(qs []stack.QueueStats) string {
	parts := make([]string, len(qs))
	for i, q := range qs {
		parts[i] = fmt.Sprintf("%d rx %d tx %d", i, q.RxPackets, q.TxPackets)
	}
	return "queues: " + strings.Join(parts, ", ") + " (packets)"
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
	fs.IntVar(&f.udpEcho, "udp-echo", 0, "UDP echo service (RFC 862) on `PORT`, on every address of the stack")
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

// checkPorts checks that each TCP service asked for has a port of its own
// (UDP echo may share one: UDP ports are another space).
func (f *serveFlags) checkPorts() error {
	if f.udpEcho < 0 || f.udpEcho > 65535 {
		return usageErr("--udp-echo %d is not a port (1-65535)", f.udpEcho)
	}
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
	if len(seen) == 0 && f.udpEcho == 0 {
		return usageErr("no service to run: give at least one of --echo, --discard, --source, --http, --https, --udp-echo (example: --echo 7 --http 80)")
	}
	return nil
}

// start runs each TCP service asked for on its port of the stack, on all
// its addresses (both families when it has IPv6).
func (f *serveFlags) start(ns *netStack, lc linkConfig, tlsCfg *tlslite.Config, stdout io.Writer) (*services.Server, error) {
	st := ns.st
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
		fmt.Fprintf(stdout, "listening: %s on %s\n", s.name, ns.addrPorts(lc.addr, s.port))
	}
	return srv, nil
}

// serverTLS loads or creates the TLS directory (a CA and an RSA-2048 leaf
// for addrs) and returns the server configuration. A loaded certificate
// that does not name every address gets a warning on warn: clients
// checking it at that address refuse it. SSLKEYLOGFILE, if set, receives
// the session keys in NSS format.
func serverTLS(dir string, addrs []netip.Addr, kex tlslite.KeyExchange, stdout, warn io.Writer) (*tlslite.Config, error) {
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = net.IP(a.AsSlice())
	}
	d, err := tlslite.LoadOrCreateDir(dir, ips, nil)
	if err != nil {
		return nil, fmt.Errorf("--tls-dir %s: %w", dir, err)
	}
	if d.Created {
		fmt.Fprintf(stdout, "tls: created a CA and an RSA-2048 certificate for %s in %s\n", joinAddrs(addrs), dir)
	} else {
		fmt.Fprintf(stdout, "tls: using the certificate in %s\n", dir)
		if missing := missingSANs(d.Certificate.Leaf, addrs); len(missing) > 0 {
			fmt.Fprintf(warn, "tls: warning: the certificate in %s does not name %s, so clients reaching the stack there refuse it; remove %s (its three files) and serve creates a new CA and certificate for %s\n",
				dir, joinAddrs(missing), dir, joinAddrs(addrs))
		}
	}
	cfg := &tlslite.Config{Certificates: []tlslite.Certificate{d.Certificate}, KeyExchange: kex}
	if kl, err := keyLog(); err != nil {
		return nil, err
	} else if kl != nil {
		cfg.KeyLogWriter = kl
	}
	return cfg, nil
}

// missingSANs lists the addresses among addrs that leaf has no IP address
// (subject alternative name) for.
func missingSANs(leaf *x509.Certificate, addrs []netip.Addr) []netip.Addr {
	if leaf == nil {
		return nil
	}
	var missing []netip.Addr
	for _, a := range addrs {
		found := false
		for _, ip := range leaf.IPAddresses {
			if b, ok := netip.AddrFromSlice(ip); ok && b.Unmap() == a {
				found = true
			}
		}
		if !found {
			missing = append(missing, a)
		}
	}
	return missing
}

// validAddrs lists those of addrs that are set.
func validAddrs(addrs ...netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, " and ")
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
