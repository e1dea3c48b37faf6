package main

import (
	"errors"
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
	addr6     string
	hostAddr6 string
	mtu       int
	noOffload bool
	msl       time.Duration
	pcap      string
	trace     bool
	impair    string
	cc        string
	queues    int
}

func (f *linkFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.tun, "tun", tun.DefaultName, "TUN device to create")
	fs.StringVar(&f.addr, "addr", "198.18.0.2", "the stack's own IPv4 address")
	fs.StringVar(&f.hostAddr, "host-addr", "198.18.0.1/30", "address (CIDR) given to the kernel side of the TUN")
	fs.StringVar(&f.addr6, "addr6", defaultAddr6, "the stack's own IPv6 address; none: IPv4 only")
	fs.StringVar(&f.hostAddr6, "host-addr6", "2001:2::1/64", "IPv6 address (CIDR) given to the kernel side of the TUN")
	fs.IntVar(&f.mtu, "mtu", 1500, "link MTU")
	fs.BoolVar(&f.noOffload, "no-offload", false, "turn off the TUN's virtio-net offloads (TSO/GRO)")
	fs.DurationVar(&f.msl, "msl", tcp.DefaultMSL, "maximum segment lifetime; TIME-WAIT lasts 2*MSL")
	fs.StringVar(&f.pcap, "pcap", "", "write every packet in and out to `FILE` (pcapng)")
	fs.BoolVar(&f.trace, "trace", false, "print one line per TCP state transition")
	fs.StringVar(&f.cc, "cc", "cubic", "congestion control of every connection: "+strings.Join(cc.Known(), ", ")+" (bbr holds its rate under random loss; it needs the peer to SACK)")
	fs.StringVar(&f.impair, "impair", "", "impair the link: loss=0.05,dup=0.01,reorder=0.02,delay=5ms,corrupt=0.001,rate=10mbit,jitter=1ms")
	fs.IntVar(&f.queues, "queues", 1, fmt.Sprintf("`N` queues on the TUN (IFF_MULTI_QUEUE, 1 to %d), a reader goroutine each: the kernel spreads flows over them, so the stack uses N cores", tun.MaxQueues))
}

// defaultAddr6 is in 2001:2::/48, the IPv6 benchmarking range (RFC 5180
// §8), as 198.18.0.0/15 is IPv4's (RFC 2544).
const defaultAddr6 = "2001:2::2"

// minMTU6 is IPv6's minimum link MTU (RFC 8200 §5); Linux turns IPv6 off
// on a device with a smaller one.
const minMTU6 = tun.MinMTU6

type linkConfig struct {
	addr   netip.Addr
	host   netip.Prefix
	addr6  netip.Addr   // invalid: IPv6 off
	host6  netip.Prefix // invalid: IPv6 off
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
	if lc.addr6, lc.host6, err = f.validate6(); err != nil {
		return lc, err
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
	if err := f.validateQueues(); err != nil {
		return lc, err
	}
	lc.addr, lc.host, lc.impair = a, h, spec
	return lc, nil
}

// validateQueues checks --queues: in range, and alone (the capture and the
// impairments wrap one endpoint, which would leave the other queues unread).
func (f *linkFlags) validateQueues() error {
	if f.queues < 1 || f.queues > tun.MaxQueues {
		return usageErr("--queues %d is out of range: use 1 to %d (one reader goroutine per queue; about as many as the machine's cores)", f.queues, tun.MaxQueues)
	}
	if f.queues > 1 && (f.pcap != "" || f.impair != "") {
		return usageErr("--queues %d does not combine with --pcap or --impair, which wrap a single queue: use --queues 1 with them", f.queues)
	}
	return nil
}

// validate6 checks --addr6 and --host-addr6 as validate does their IPv4
// counterparts; --addr6 none (or empty) turns IPv6 off.
func (f *linkFlags) validate6() (netip.Addr, netip.Prefix, error) {
	if f.addr6 == "" || f.addr6 == "none" {
		return netip.Addr{}, netip.Prefix{}, nil
	}
	a, err := netip.ParseAddr(f.addr6)
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return a, netip.Prefix{}, usageErr("--addr6 %q is not an IPv6 address (example: --addr6 %s; --addr6 none for IPv4 only)", f.addr6, defaultAddr6)
	}
	if !a.IsGlobalUnicast() {
		return a, netip.Prefix{}, usageErr("--addr6 %v is not a global or unique-local unicast address (example: --addr6 %s)", a, defaultAddr6)
	}
	h, err := netip.ParsePrefix(f.hostAddr6)
	if err != nil || !h.Addr().Is6() || h.Addr().Is4In6() {
		return a, h, usageErr("--host-addr6 %q is not an IPv6 address with a prefix length (example: --host-addr6 2001:2::1/64)", f.hostAddr6)
	}
	if !h.Addr().IsGlobalUnicast() {
		return a, h, usageErr("--host-addr6 %v is not a global or unique-local unicast address (example: --host-addr6 2001:2::1/64)", h)
	}
	if h.Addr() == a {
		return a, h, usageErr("--addr6 and --host-addr6 are both %v: the stack and the kernel side need different addresses in one prefix (example: --addr6 2001:2::2 --host-addr6 2001:2::1/64)", a)
	}
	if !h.Contains(a) {
		return a, h, usageErr("--addr6 %v is outside --host-addr6 %v: the kernel routes only that prefix into the TUN; pick an address inside it or widen the prefix", a, h)
	}
	return a, h, nil
}

// netStack is a stack on a TUN device with its decorators.
type netStack struct {
	dev   *tun.Device
	st    *stack.Stack
	pcapF *os.File
	pcapW *link.AsyncWriter // drains the capture into pcapF off the stack's write path
	tap   *link.TapEndpoint
	// addr6 and host6 are the IPv6 addresses in use: invalid when IPv6 is
	// off (--addr6 none, a kernel without IPv6, a stack that refused it).
	addr6 netip.Addr
	host6 netip.Prefix
}

// openStack creates the TUN device and runs a stack on it. Where the
// kernel or the stack cannot do IPv6, it says so on notes in one line and
// runs IPv4 only.
func openStack(f *linkFlags, lc linkConfig, tcpCfg tcp.Config, stdout, notes io.Writer) (*netStack, error) {
	ns := &netStack{addr6: lc.addr6, host6: lc.host6}
	if ns.addr6.IsValid() && f.mtu < minMTU6 {
		fmt.Fprintf(notes, "ipv6: off: --mtu %d is below IPv6's minimum link MTU of %d (RFC 8200 §5); running IPv4 only\n", f.mtu, minMTU6)
		ns.addr6, ns.host6 = netip.Addr{}, netip.Prefix{}
	}
	cfg := tun.Config{Name: f.tun, MTU: f.mtu, HostAddr: lc.host, HostAddr6: ns.host6, NoOffload: f.noOffload, Queues: f.queues}
	dev, err := tun.Open(cfg)
	if errors.Is(err, tun.ErrIPv6Disabled) {
		fmt.Fprintf(notes, "ipv6: off: %v; running IPv4 only\n", err)
		ns.addr6, ns.host6, cfg.HostAddr6 = netip.Addr{}, netip.Prefix{}, netip.Prefix{}
		dev, err = tun.Open(cfg)
	}
	if err != nil {
		return nil, err
	}
	ns.dev = dev
	ep, err := ns.decorate(f, lc, dev)
	if err != nil {
		return nil, err
	}
	tcpCfg.MSL, tcpCfg.CC = f.msl, f.cc
	opts := stack.Options{Addr: lc.addr, TCP: tcpCfg}
	if f.trace {
		opts.Trace = traceWriter(stdout)
	}
	st, err := ns.newStack(ep, opts, notes)
	if err != nil {
		ns.close()
		return nil, err
	}
	ns.st = st
	return ns, nil
}

// decorate layers the impairments and the pcap tap asked for on dev.
func (ns *netStack) decorate(f *linkFlags, lc linkConfig, dev *tun.Device) (link.Endpoint, error) {
	var ep link.Endpoint = dev
	if lc.impair != (link.Spec{}) {
		ep = link.Impair(ep, link.ImpairConfig{In: lc.impair, Out: lc.impair, Seed: time.Now().UnixNano()})
	}
	if f.pcap == "" {
		return ep, nil
	}
	pf, err := os.Create(f.pcap)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("--pcap: %w", err)
	}
	aw := link.NewAsyncWriter(pf, pcapPending)
	tap, err := link.Tap(ep, aw, link.TapInterface(f.tun, "ustack "+lc.addr.String()))
	if err != nil {
		aw.Close()
		pf.Close()
		dev.Close()
		return nil, fmt.Errorf("--pcap: %w", err)
	}
	ns.pcapF, ns.pcapW, ns.tap = pf, aw, tap
	return tap, nil
}

// newStack starts the stack with the IPv6 address too, if there is one.
// A stack without an IPv6 layer refuses it in New (before it starts
// anything): then it runs IPv4 only and says why on notes.
func (ns *netStack) newStack(ep link.Endpoint, opts stack.Options, notes io.Writer) (*stack.Stack, error) {
	if !ns.addr6.IsValid() {
		return stack.New(ep, opts)
	}
	opts6 := opts
	opts6.Addrs = []netip.Addr{ns.addr6}
	st, err6 := stack.New(ep, opts6)
	if err6 == nil {
		return st, nil
	}
	st, err := stack.New(ep, opts)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(notes, "ipv6: off: the stack refused %v (%v); running IPv4 only\n", ns.addr6, err6)
	ns.addr6 = netip.Addr{}
	return st, nil
}

// addrs names the stack's addresses: "198.18.0.2" or "198.18.0.2 and
// 2001:2::2".
func (ns *netStack) addrs(v4 netip.Addr) string {
	if ns.addr6.IsValid() {
		return fmt.Sprintf("%v and %v", v4, ns.addr6)
	}
	return v4.String()
}

func (ns *netStack) close() {
	if ns.st != nil {
		ns.st.Close() // closes the endpoint chain, and with it the device
	} else {
		ns.dev.Close()
	}
	ns.dev.Close()
	if ns.pcapF != nil {
		ns.pcapW.Close()
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
