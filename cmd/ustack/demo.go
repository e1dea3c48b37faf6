package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"ustack/internal/ladder"
	"ustack/internal/picture"
	"ustack/internal/waitfor"
	"ustack/stack"
	"ustack/stack/link"
	"ustack/stack/tcp"
	"ustack/tlslite"
	"ustack/tun"
)

// demoMSL is short so that TIME-WAIT's 2*MSL fits in the demo.
const demoMSL = 1 * time.Second

func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "Usage: ustack demo [-6] [--svg FILE] [--html FILE] [--json] [--pcap FILE] [--in-memory]\n\nThe whole story in one command: a server on ustack, a client, every packet and\nstate on a ladder diagram. As root it runs in a fresh network namespace with a\nTUN device and the kernel's TCP as the client; otherwise both ends are ustack\nover an in-memory link.\n\n", stderr)
	pcap := fs.String("pcap", "", "also write every packet to `FILE` (pcapng)")
	inMemory := fs.Bool("in-memory", false, "tell the story over an in-memory link even as root")
	jsonOut := fs.Bool("json", false, "write the events as JSON lines (docs/events.md) instead of the ladder")
	svgOut := fs.String("svg", "", "also draw the story as an SVG sequence diagram in `FILE`")
	htmlOut := fs.String("html", "", "also write the story as a self-contained HTML page in `FILE`")
	v6 := fs.Bool("6", false, "tell it over IPv6 (server 2001:2::2, client 2001:2::1)")
	if err := parseFlags(fs, args, "demo"); err != nil {
		return err
	}
	var sink ladder.Sink = ladder.NewText(stdout, isTerminal(stdout))
	if *jsonOut {
		sink = ladder.NewJSON(stdout)
	}
	var pic *ladder.Recorder
	if *svgOut != "" || *htmlOut != "" {
		pic = ladder.NewRecorder()
		sink = ladder.Tee(sink, pic)
	}
	addrs := demoAddrs4
	if *v6 {
		addrs = demoAddrs6
	}
	err := addrs.demoRun(sink, *pcap, *inMemory)
	if pic != nil {
		// A demo that could not finish is drawn too, as far as it got.
		if perr := picture.WriteFiles(pic.Events(), *svgOut, *htmlOut, picture.Options{}); err == nil {
			err = perr
		}
	}
	return err
}

// demoAddrs are the addresses of one telling of the story: the server's,
// on ustack, and the client's.
type demoAddrs struct {
	server netip.AddrPort
	client netip.Addr
}

var (
	demoAddrs4 = demoAddrs{netip.MustParseAddrPort("198.18.0.2:443"), netip.MustParseAddr("198.18.0.1")}
	demoAddrs6 = demoAddrs{netip.MustParseAddrPort("[2001:2::2]:443"), netip.MustParseAddr("2001:2::1")}
)

// demoRun tells the story over a TUN as root, else in memory.
func (a demoAddrs) demoRun(sink ladder.Sink, pcap string, inMemory bool) error {
	if !inMemory && os.Geteuid() == 0 {
		if _, err := os.Stat("/dev/net/tun"); err == nil {
			return a.demoTUN(sink, pcap)
		}
	}
	why := "not running as root"
	if os.Geteuid() == 0 {
		why = "asked for --in-memory"
	}
	sink.Emit(ladder.Event{Kind: ladder.KindTitle, Text: fmt.Sprintf("ustack demo over an in-memory link, both ends on ustack (%s; run as root for the TUN and the kernel's TCP)", why)})
	return a.demoMemory(sink, pcap)
}

// pcapPending bounds the capture bytes waiting for the disk: a Tap writes
// through a link.AsyncWriter so that a slow disk never holds up the stack's
// output and timers (and the capture's timestamps with them).
const pcapPending = 64 << 20

// withPcap layers a pcapng tap on ep if a file was asked for.
func withPcap(ep link.Endpoint, file string) (link.Endpoint, func(), error) {
	if file == "" {
		return ep, func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, nil, fmt.Errorf("--pcap: %w", err)
	}
	aw := link.NewAsyncWriter(f, pcapPending)
	tap, err := link.Tap(ep, aw, link.TapInterface("demo", "ustack demo"))
	if err != nil {
		aw.Close()
		f.Close()
		return nil, nil, err
	}
	return tap, func() { aw.Close(); f.Close() }, nil
}

// demoStack starts a stack of address addr on ep. A stack that takes no
// IPv6 address yet makes demo -6 fail, saying so.
func demoStack(ep link.Endpoint, addr netip.Addr, trace func(tcp.TraceEvent)) (*stack.Stack, error) {
	st, err := stack.New(ep, stack.Options{Addrs: []netip.Addr{addr}, TCP: tcp.Config{MSL: demoMSL}, Trace: trace})
	if err != nil && addr.Is6() {
		return nil, fmt.Errorf("demo -6: the stack does not take the IPv6 address %v: %w", addr, err)
	}
	return st, err
}

// demoServe starts the server's stack on ep, seen by l and, if a file is
// asked for, a pcap, and listens on the server's port. closeSrv closes the
// stack, then the pcap.
func (a demoAddrs) demoServe(ep link.Endpoint, l *ladder.Ladder, pcap string) (srv *stack.Stack, ln *stack.Listener, closeSrv func(), err error) {
	sep, closePcap, err := withPcap(ladder.Observe(ep, l), pcap)
	if err != nil {
		return nil, nil, nil, err
	}
	srv, err = demoStack(sep, a.server.Addr(), l.State)
	if err != nil {
		closePcap()
		return nil, nil, nil, err
	}
	if ln, err = srv.ListenTCP(a.server.Port()); err != nil {
		srv.Close()
		closePcap()
		return nil, nil, nil, err
	}
	return srv, ln, func() { srv.Close(); closePcap() }, nil
}

// demoMemory runs server and client on two ustack stacks joined by a Pipe.
func (a demoAddrs) demoMemory(sink ladder.Sink, pcap string) error {
	ea, eb := link.Pipe(1500)
	l := ladder.New(sink, time.Now, a.server.String())
	srv, ln, closeSrv, err := a.demoServe(eb, l, pcap)
	if err != nil {
		ea.Close()
		return err
	}
	defer closeSrv()
	cli, err := demoStack(ea, a.client, l.State)
	if err != nil {
		return err
	}
	defer cli.Close()
	dial := func(ctx context.Context) (net.Conn, error) { return cli.DialTCP(ctx, a.server) }
	return a.demoStory(l, ln, dial, srv, false)
}

// demoTUN runs the server on ustack behind a TUN in a fresh namespace and the
// client on the kernel's TCP in that namespace.
func (a demoAddrs) demoTUN(sink ladder.Sink, pcap string) error {
	ns, err := tun.NewNamespace("demo")
	if err != nil {
		return err
	}
	defer ns.Close()
	sink.Emit(ladder.Event{Kind: ladder.KindTitle, Namespace: ns.Name(),
		Text: fmt.Sprintf("ustack demo in network namespace %s: server on ustack %v behind TUN ustack0, client on the kernel's TCP at %v", ns.Name(), a.server, a.client)})
	cfg := tun.Config{Name: "ustack0", MTU: 1500, HostAddr: netip.PrefixFrom(demoAddrs4.client, 30)}
	if a.client.Is6() {
		cfg.HostAddr6 = netip.PrefixFrom(a.client, 64)
	}
	dev, err := ns.OpenTUN(cfg)
	if err != nil {
		return err
	}
	defer dev.Close()
	l := ladder.New(sink, time.Now, a.server.String())
	l.InferClient()
	srv, ln, closeSrv, err := a.demoServe(dev, l, pcap)
	if err != nil {
		return err
	}
	defer closeSrv()
	dial := func(ctx context.Context) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, "tcp", a.server.String())
			return err
		})
		return c, err
	}
	return a.demoStory(l, ln, dial, srv, true)
}

// demoStory serves one page over HTTPS (RSA key exchange), fetches it with
// Go's crypto/tls, and waits for the server's TIME-WAIT to end.
func (a demoAddrs) demoStory(l *ladder.Ladder, ln *stack.Listener, dial func(context.Context) (net.Conn, error), srv *stack.Stack, kernelClient bool) error {
	l.Note("making a CA and an RSA-2048 server certificate for %v", a.server.Addr())
	dir, err := os.MkdirTemp("", "ustack-demo-tls-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d, err := tlslite.LoadOrCreateDir(dir, []net.IP{net.IP(a.server.Addr().AsSlice())}, nil)
	if err != nil {
		return err
	}
	scfg := &tlslite.Config{Certificates: []tlslite.Certificate{d.Certificate}, KeyExchange: tlslite.KeyExchangeRSA, Observer: l.ObserveTLS}
	if kl, err := keyLog(); err != nil {
		return err
	} else if kl != nil {
		scfg.KeyLogWriter = kl
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "hello from ustack, over TLS 1.2\n")
	})}
	go hs.Serve(tlslite.NewListener(ln, scfg))
	defer hs.Close()
	client := "client (ustack TCP, Go crypto/tls)"
	if kernelClient {
		client = "client (kernel TCP, Go crypto/tls)"
	}
	l.Header(client, "server (ustack "+a.server.String()+", tlslite)")
	l.Note("TCP three-way handshake: SYN, SYN+ACK, ACK")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := dial(ctx)
	if err != nil {
		return fmt.Errorf("demo: dial: %w", err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	// The client offers only the RSA key exchange, so that the pre-master
	// secret travels encrypted with the server's public key.
	c := tls.Client(raw, &tls.Config{
		RootCAs: d.Roots, ServerName: a.server.Addr().String(),
		MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
	})
	if err := c.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("demo: TLS handshake: %w", err)
	}
	l.Note("handshake done: from here on every record is AES-128-GCM with the derived keys")
	// The client reads until the server closes: the server does the active
	// close and so holds TIME-WAIT.
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+a.server.String()+"\r\nConnection: close\r\n\r\n"); err != nil {
		return fmt.Errorf("demo: sending the request: %w", err)
	}
	resp, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("demo: reading the response: %w", err)
	}
	raw.Close()
	status, _, _ := strings.Cut(string(resp), "\r\n")
	_, body, _ := strings.Cut(string(resp), "\r\n\r\n")
	l.Note("client decrypted the response: %q, body %q", status, body)
	l.Note("the server closed first, so it is the side that waits in TIME-WAIT, for 2*MSL = %v", 2*demoMSL)
	if !waitfor.Within(2*demoMSL+3*time.Second, func() bool { return srv.Stats().TCPConns == 0 }) {
		return errors.New("demo: the server's connection did not reach CLOSED after 2*MSL")
	}
	l.Note("done: every connection is CLOSED")
	return nil
}
