package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"ustack/stack"
	"ustack/stack/link"
	"ustack/stack/tcp"
	"ustack/stack/tcp/cc"
	"ustack/tun"
)

// linkFlags are the flags shared by serve and get: the TUN device, the
// addresses, and what is layered on the link.
type linkFlags struct {
	tun       string
	addr      string
	hostAddr  string
	mtu       int
	noOffload bool
	msl       time.Duration
	pcap      string
	trace     bool
	impair    string
	cc        string
}

func (f *linkFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.tun, "tun", tun.DefaultName, "TUN device to create")
	fs.StringVar(&f.addr, "addr", "198.18.0.2", "the stack's own IPv4 address")
	fs.StringVar(&f.hostAddr, "host-addr", "198.18.0.1/30", "address (CIDR) given to the kernel side of the TUN")
	fs.IntVar(&f.mtu, "mtu", 1500, "link MTU")
	fs.BoolVar(&f.noOffload, "no-offload", false, "turn off the TUN's virtio-net offloads (TSO/GRO)")
	fs.DurationVar(&f.msl, "msl", tcp.DefaultMSL, "maximum segment lifetime; TIME-WAIT lasts 2*MSL")
	fs.StringVar(&f.pcap, "pcap", "", "write every packet in and out to `FILE` (pcapng)")
	fs.BoolVar(&f.trace, "trace", false, "print one line per TCP state transition")
	fs.StringVar(&f.cc, "cc", "cubic", "congestion control of every connection: "+strings.Join(cc.Known(), ", ")+" (bbr holds its rate under random loss; it needs the peer to SACK)")
	fs.StringVar(&f.impair, "impair", "", "impair the link: loss=0.05,dup=0.01,reorder=0.02,delay=5ms,corrupt=0.001,rate=10mbit,jitter=1ms")
}

type linkConfig struct {
	addr   netip.Addr
	host   netip.Prefix
	impair link.Spec
}

// validate checks the values and explains how to fix a mistake.
func (f *linkFlags) validate() (linkConfig, error) {
	var lc linkConfig
	a, err := netip.ParseAddr(f.addr)
	if err != nil || !a.Is4() {
		return lc, usageErr("--addr %q is not an IPv4 address (example: --addr 198.18.0.2)", f.addr)
	}
	h, err := netip.ParsePrefix(f.hostAddr)
	if err != nil || !h.Addr().Is4() {
		return lc, usageErr("--host-addr %q is not an IPv4 address with a prefix length (example: --host-addr 198.18.0.1/30)", f.hostAddr)
	}
	if h.Addr() == a {
		return lc, usageErr("--addr and --host-addr are both %v: the stack and the kernel side need different addresses in one prefix (example: --addr 198.18.0.2 --host-addr 198.18.0.1/30)", a)
	}
	if !h.Contains(a) {
		return lc, usageErr("--addr %v is outside --host-addr %v: the kernel routes only that prefix into the TUN; pick an address inside it or widen the prefix", a, h)
	}
	if f.mtu < 576 || f.mtu > 65535 {
		return lc, usageErr("--mtu %d is out of range: use 576 to 65535 (default 1500)", f.mtu)
	}
	if f.msl <= 0 {
		return lc, usageErr("--msl %v must be positive (example: --msl 30s)", f.msl)
	}
	if f.tun == "" || len(f.tun) > 15 || strings.ContainsAny(f.tun, "/ \t") {
		return lc, usageErr("--tun %q is not a valid interface name (1-15 characters, no '/' or spaces)", f.tun)
	}
	if err := cc.Valid(f.cc); err != nil {
		return lc, usageErr("--cc: %v", err)
	}
	spec, err := link.ParseSpec(f.impair)
	if err != nil {
		return lc, usageErr("--impair: %v", err)
	}
	lc.addr, lc.host, lc.impair = a, h, spec
	return lc, nil
}

// netStack is a stack on a TUN device with its decorators.
type netStack struct {
	dev   *tun.Device
	st    *stack.Stack
	pcapF *os.File
	tap   *link.TapEndpoint
}

// openStack creates the TUN device and runs a stack on it.
func openStack(f *linkFlags, lc linkConfig, tcpCfg tcp.Config, stdout io.Writer) (*netStack, error) {
	dev, err := tun.Open(tun.Config{Name: f.tun, MTU: f.mtu, HostAddr: lc.host, NoOffload: f.noOffload})
	if err != nil {
		return nil, err
	}
	ns := &netStack{dev: dev}
	var ep link.Endpoint = dev
	if lc.impair != (link.Spec{}) {
		ep = link.Impair(ep, link.ImpairConfig{In: lc.impair, Out: lc.impair, Seed: time.Now().UnixNano()})
	}
	if f.pcap != "" {
		pf, err := os.Create(f.pcap)
		if err != nil {
			dev.Close()
			return nil, fmt.Errorf("--pcap: %w", err)
		}
		tap, err := link.Tap(ep, pf, link.TapInterface(f.tun, "ustack "+lc.addr.String()))
		if err != nil {
			pf.Close()
			dev.Close()
			return nil, fmt.Errorf("--pcap: %w", err)
		}
		ns.pcapF, ns.tap, ep = pf, tap, tap
	}
	opts := stack.Options{Addr: lc.addr, TCP: tcpCfg}
	tcpCfg.MSL, tcpCfg.CC = f.msl, f.cc
	opts.TCP = tcpCfg
	if f.trace {
		opts.Trace = traceWriter(stdout)
	}
	st, err := stack.New(ep, opts)
	if err != nil {
		ns.close()
		return nil, err
	}
	ns.st = st
	return ns, nil
}

func (ns *netStack) close() {
	if ns.st != nil {
		ns.st.Close() // closes the endpoint chain, and with it the device
	} else {
		ns.dev.Close()
	}
	ns.dev.Close()
	if ns.pcapF != nil {
		ns.pcapF.Close()
	}
}

// traceWriter prints one line per state transition: time, 4-tuple, from,
// to, cause.
func traceWriter(w io.Writer) func(tcp.TraceEvent) {
	return func(e tcp.TraceEvent) {
		fmt.Fprintf(w, "%s trace %v %v -> %v (%s)\n", e.Time.Format("15:04:05.000000"), e.ID, e.From, e.To, e.Cause)
	}
}
