package tun

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	wgtun "golang.zx2c4.com/wireguard/tun"

	"ustack/stack/link"
)

// Defaults for Config fields left zero.
const (
	DefaultName = "ustack0"
	DefaultMTU  = 1500
)

// Config describes the device Open creates.
type Config struct {
	// Name of the interface (at most 15 bytes). Default DefaultName.
	Name string
	// MTU of the link, 68..65535. Default DefaultMTU.
	MTU int
	// HostAddr is the address (and prefix) of the kernel side, e.g.
	// 198.18.0.1/30. The kernel routes the rest of the prefix into the device.
	HostAddr netip.Prefix
	// HostAddr6, if set, is the kernel side's IPv6 address and prefix, e.g.
	// 2001:2::1/64: the kernel routes the rest of the prefix into the
	// device too. Unset, IPv6 is off on the device (see configureIPv6).
	HostAddr6 netip.Prefix
	// NoOffload turns off the virtio-net header and with it checksum offload,
	// TSO splitting on read and GRO coalescing on write: one packet per read
	// and per write, and BatchSize 1.
	NoOffload bool
	// Queues is the number of queues, 1 to MaxQueues (0 means 1). With
	// more than one the device is opened with IFF_MULTI_QUEUE, once per
	// queue: the kernel spreads flows over the queues (by flow hash, then
	// to the queue a flow's packets were last written on), and Queues
	// returns each as an endpoint of its own, to be read by a goroutine
	// of its own.
	Queues int
}

// MaxQueues is the most queues Open makes: link.MaxQueues, the stack's
// limit (Linux's TUN allows 256, MAX_TAP_QUEUES).
const MaxQueues = link.MaxQueues

// virtioNetHdrLen is sizeof(struct virtio_net_hdr) in
// include/uapi/linux/virtio_net.h, which wireguard writes in front of each
// packet on Write when offloads are on (its own constant is unexported).
const virtioNetHdrLen = 10

// Write buffers: wireguard's GRO refuses to coalesce unless
// cap(buf) - 2*offset >= coalesced length, and a coalesced packet is at most
// 64 KiB.
const (
	writeOffset = 16 // >= virtioNetHdrLen, as wireguard requires; a multiple of 8
	writeBufCap = 2*writeOffset + link.MaxPacket
)

// writeOffset >= virtioNetHdrLen, checked by the compiler: a negative
// constant does not convert to uint.
const _ = uint(writeOffset - virtioNetHdrLen)

// Device is a TUN device adapted to link.Endpoint. ReadBatch and WriteBatch
// may be called concurrently with each other; calls of the same kind are
// serialized. Its reads and writes are those of its first queue; with
// more than one (Config.Queues), Queues returns them all, each a
// link.Endpoint that may be read and written concurrently with the others.
type Device struct {
	*Queue  // the first queue: ReadBatch, WriteBatch, ReadOffload, WriteOffload
	queues  []*Queue
	nl      *netlink.Handle // bound to the namespace the device lives in
	name    string
	index   int
	mtu     int
	batch   int
	offload bool
	host    netip.Prefix
	host6   netip.Prefix

	closeOnce sync.Once
	closeErr  error
}

var (
	_ link.Endpoint   = (*Device)(nil)
	_ link.MultiQueue = (*Device)(nil)
	_ link.Offloader  = (*Queue)(nil)
)

// Stats counts what went through a Device (Each lists the same, with the
// drops by reason).
type Stats struct {
	RxPackets uint64 // packets handed to ReadBatch callers
	RxSplits  uint64 // super-packets split into segments (ReadBatch with offloads)
	RxSuper   uint64 // super-packets handed over whole (ReadOffload)
	RxDropped uint64 // packets dropped on read: malformed virtio header, too many segments, caller buffer too small
	TxPackets uint64 // packets handed to the kernel (before GRO coalescing)
	TxErrors  uint64 // writes in which the kernel refused some packets
	TxSuper   uint64 // TSO packets written whole for the kernel to cut (WriteOffload)
}

// Open creates a TUN device in the network namespace of the calling thread
// (see Namespace.OpenTUN for another namespace), with cfg.Queues queues,
// assigns cfg.HostAddr to its kernel side, sets the MTU and brings the
// link up. It needs CAP_NET_ADMIN. On error nothing it created remains.
func Open(cfg Config) (*Device, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	// Everything below must see one network namespace: the thread's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("creating TUN device %q: opening netlink: %w", cfg.Name, err)
	}
	if err := preflight(nl, cfg); err != nil {
		nl.Close()
		return nil, err
	}
	multi := cfg.Queues > 1
	fd, err := createTUN(cfg.Name, !cfg.NoOffload, multi, true)
	if err != nil {
		nl.Close()
		return nil, err
	}
	d := &Device{nl: nl, name: cfg.Name, mtu: cfg.MTU, host: cfg.HostAddr, host6: cfg.HostAddr6}
	q, err := d.newQueue(fd, 0)
	if err != nil {
		// wireguard has wrapped fd in an *os.File (whose finalizer will close
		// it) or not: don't risk a double close; delete the link instead.
		if l, lerr := nl.LinkByName(cfg.Name); lerr == nil {
			_ = nl.LinkDel(l)
		}
		nl.Close()
		return nil, fmt.Errorf("creating TUN device %q: %w", cfg.Name, err)
	}
	d.Queue, d.queues = q, []*Queue{q}
	d.batch = q.dev.BatchSize()
	d.offload = !cfg.NoOffload && d.batch > 1 && q.file != nil
	q.initReadBuffers()
	for i := 1; i < cfg.Queues; i++ {
		if err := d.attachQueue(cfg, i); err != nil {
			_ = d.Close()
			return nil, err
		}
	}
	if err := d.configure(); err != nil {
		_ = d.Close()
		return nil, err
	}
	return d, nil
}

// newQueue wraps fd, a /dev/net/tun descriptor attached to the device, as
// its queue idx.
func (d *Device) newQueue(fd, idx int) (*Queue, error) {
	dev, _, err := wgtun.CreateUnmonitoredTUNFromFD(fd)
	if err != nil {
		return nil, err
	}
	q := &Queue{d: d, idx: idx, dev: dev, cnt: newCounters()}
	if nt, ok := dev.(interface{ File() *os.File }); ok {
		q.file = nt.File()
		if err := q.wv.init(q.file); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// attachQueue opens queue idx of a multi-queue device: /dev/net/tun once
// more, attached to the device by name (IFF_MULTI_QUEUE, without
// IFF_TUN_EXCL), with the first queue's offloads.
func (d *Device) attachQueue(cfg Config, idx int) error {
	fd, err := createTUN(cfg.Name, !cfg.NoOffload, true, false)
	if err != nil {
		return fmt.Errorf("opening queue %d of %d: %w", idx+1, cfg.Queues, err)
	}
	q, err := d.newQueue(fd, idx)
	if err != nil {
		return fmt.Errorf("creating TUN device %q: queue %d of %d: %w", cfg.Name, idx+1, cfg.Queues, err)
	}
	d.queues = append(d.queues, q)
	if q.dev.BatchSize() != d.batch || (d.offload && q.file == nil) {
		return fmt.Errorf("creating TUN device %q: queue %d of %d came without the offloads of the first", cfg.Name, idx+1, cfg.Queues)
	}
	q.initReadBuffers()
	return nil
}

// Queues implements link.MultiQueue: the device itself when it has one
// queue, else each queue.
func (d *Device) Queues() []link.Endpoint {
	if len(d.queues) == 1 {
		return []link.Endpoint{d}
	}
	eps := make([]link.Endpoint, len(d.queues))
	for i, q := range d.queues {
		eps[i] = q
	}
	return eps
}

// NumQueues is the number of queues.
func (d *Device) NumQueues() int { return len(d.queues) }

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	switch {
	case len(cfg.Name) >= unix.IFNAMSIZ || strings.ContainsAny(cfg.Name, "/ \t\n:%"):
		return cfg, fmt.Errorf("TUN device name %q: must be 1 to %d bytes without '/', ':', '%%' or spaces", cfg.Name, unix.IFNAMSIZ-1)
	case cfg.MTU < 68 || cfg.MTU > link.MaxPacket:
		return cfg, fmt.Errorf("TUN device %q: MTU %d out of range 68..%d", cfg.Name, cfg.MTU, link.MaxPacket)
	case !cfg.HostAddr.IsValid() || !cfg.HostAddr.Addr().Is4():
		return cfg, fmt.Errorf("TUN device %q: host address %v: need an IPv4 address with prefix, e.g. 198.18.0.1/30", cfg.Name, cfg.HostAddr)
	case cfg.HostAddr.Bits() > 31:
		return cfg, fmt.Errorf("TUN device %q: host address %v: a /32 leaves no address for the stack; use e.g. %v/30", cfg.Name, cfg.HostAddr, cfg.HostAddr.Addr())
	case cfg.Queues < 0 || cfg.Queues > MaxQueues:
		return cfg, fmt.Errorf("TUN device %q: %d queues: use 1 to %d", cfg.Name, cfg.Queues, MaxQueues)
	}
	return cfg, checkHostAddr6(cfg)
}

const capHint = "needs CAP_NET_ADMIN (run as root, or grant it: sudo setcap cap_net_admin+ep ./ustack)"

// preflight checks, before anything is created, that the name is free and
// that the host address clashes with no address on another interface.
func preflight(nl *netlink.Handle, cfg Config) error {
	if l, err := nl.LinkByName(cfg.Name); err == nil {
		a := l.Attrs()
		return wrapf(os.ErrExist, "creating TUN device %q: a network interface with that name already exists (%s, index %d); choose another name (--tun) or remove it (ip link del %s)",
			cfg.Name, l.Type(), a.Index, cfg.Name)
	}
	addrs, err := listAddrs(nl)
	if err != nil {
		return fmt.Errorf("creating TUN device %q: listing addresses: %w", cfg.Name, err)
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, _ := a.Mask.Size()
		p := netip.PrefixFrom(ip, ones)
		for _, h := range []struct {
			host netip.Prefix
			flag string
		}{{cfg.HostAddr, "--host-addr"}, {cfg.HostAddr6, "--host-addr6"}} {
			if err := clash(nl, cfg.Name, h.host, h.flag, p, a.LinkIndex); err != nil {
				return err
			}
		}
	}
	return nil
}

// clash reports whether host, the kernel side's address to be, is already
// p, an address of another interface, or overlaps its prefix (loopback
// aside): the kernel would then not know which interface reaches the
// stack.
func clash(nl *netlink.Handle, dev string, host netip.Prefix, flag string, p netip.Prefix, index int) error {
	if !host.IsValid() || host.Addr().Is4() != p.Addr().Is4() {
		return nil
	}
	ifname := linkName(nl, index)
	if p.Addr() == host.Addr() {
		return wrapf(syscall.EADDRINUSE, "creating TUN device %q: host address %v is already assigned to interface %q (%v); choose another host address (%s) or remove it (ip addr del %v dev %s)",
			dev, host.Addr(), ifname, p, flag, p, ifname)
	}
	if p.Overlaps(host.Masked()) && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
		return wrapf(syscall.EADDRINUSE, "creating TUN device %q: host prefix %v overlaps %v on interface %q, so the kernel would not know which interface reaches the stack; choose a non-overlapping host address (%s)",
			dev, host.Masked(), p, ifname, flag)
	}
	return nil
}

// wrappedError is a message that names its cause in its own words, and
// still matches it with errors.Is.
type wrappedError struct {
	msg   string
	cause error
}

func (e *wrappedError) Error() string { return e.msg }
func (e *wrappedError) Unwrap() error { return e.cause }

func wrapf(cause error, format string, args ...any) error {
	return &wrappedError{msg: fmt.Sprintf(format, args...), cause: cause}
}

func listAddrs(nl *netlink.Handle) ([]netlink.Addr, error) {
	var err error
	for range 5 {
		var addrs []netlink.Addr
		addrs, err = nl.AddrList(nil, netlink.FAMILY_ALL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return addrs, err
		}
	}
	return nil, err
}

func linkName(nl *netlink.Handle, index int) string {
	if l, err := nl.LinkByIndex(index); err == nil {
		return l.Attrs().Name
	}
	return fmt.Sprintf("index %d", index)
}

// createTUN opens /dev/net/tun and creates the interface, refusing to attach
// to an existing one (IFF_TUN_EXCL) when excl; with multi, the interface is
// a multi-queue one (IFF_MULTI_QUEUE) and, without excl, fd becomes one
// more queue of it. The fd is blocking; wireguard makes it non-blocking and
// hands it to the runtime poller.
func createTUN(name string, vnetHdr, multi, excl bool) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			return -1, fmt.Errorf("creating TUN device %q: /dev/net/tun: %w: load the tun module (modprobe tun), or in a container pass the device in (--device /dev/net/tun)", name, err)
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
			return -1, fmt.Errorf("creating TUN device %q: opening /dev/net/tun: %w: needs read-write access to /dev/net/tun and CAP_NET_ADMIN (run as root, or chmod 0666 /dev/net/tun and sudo setcap cap_net_admin+ep ./ustack)", name, err)
		}
		return -1, fmt.Errorf("creating TUN device %q: opening /dev/net/tun: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("creating TUN device %q: %w", name, err)
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if excl {
		flags |= unix.IFF_TUN_EXCL
	}
	if vnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	if multi {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.EPERM):
			return -1, fmt.Errorf("creating TUN device %q: %w: %s", name, err, capHint)
		case excl && (errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST)):
			return -1, wrapf(os.ErrExist, "creating TUN device %q: a network interface with that name already exists; choose another name (--tun) or remove it (ip link del %s)", name, name)
		case multi && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.E2BIG) || errors.Is(err, unix.EBUSY)):
			// tun_set_iff: EINVAL without multi-queue support (before
			// Linux 3.8) or for a mismatch of flags, E2BIG beyond
			// MAX_TAP_QUEUES (256) queues.
			return -1, fmt.Errorf("creating TUN device %q: the kernel refused a multi-queue TUN (TUNSETIFF with IFF_MULTI_QUEUE: %w): it needs Linux 3.8 or later and at most 256 queues; run with one queue (--queues 1)", name, err)
		}
		return -1, fmt.Errorf("creating TUN device %q: TUNSETIFF: %w", name, err)
	}
	return fd, nil
}

// configure sets the kernel side up: IPv6 (off, or on with HostAddr6 and
// nothing of its own; see configureIPv6), MTU, address, link up.
func (d *Device) configure() error {
	l, err := d.nl.LinkByName(d.name)
	if err != nil {
		return fmt.Errorf("configuring TUN device %q: %w", d.name, err)
	}
	d.index = l.Attrs().Index
	if err := d.configureIPv6(l); err != nil {
		return err
	}
	if err := d.step(fmt.Sprintf("setting MTU %d", d.mtu), d.nl.LinkSetMTU(l, d.mtu)); err != nil {
		return err
	}
	ipnet := &net.IPNet{IP: d.host.Addr().AsSlice(), Mask: net.CIDRMask(d.host.Bits(), 32)}
	if err := d.step(fmt.Sprintf("adding address %v", d.host), d.nl.AddrAdd(l, &netlink.Addr{IPNet: ipnet})); err != nil {
		return err
	}
	if err := d.step("setting link up", d.nl.LinkSetUp(l)); err != nil {
		return err
	}
	if err := d.checkRoute6(); err != nil {
		return err
	}
	return d.waitLocal6()
}

// step words a failed configuration step, with a hint for EPERM.
func (d *Device) step(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("configuring TUN device %q: %s: %w: %s", d.name, what, err, capHint)
	}
	return fmt.Errorf("configuring TUN device %q: %s: %w", d.name, what, err)
}

// Name is the interface name.
func (d *Device) Name() string { return d.name }

// Index is the interface index in the device's namespace.
func (d *Device) Index() int { return d.index }

// HostAddr is the kernel side's address.
func (d *Device) HostAddr() netip.Prefix { return d.host }

// HostAddr6 is the kernel side's IPv6 address (invalid if IPv6 is off).
func (d *Device) HostAddr6() netip.Prefix { return d.host6 }

// Offload reports whether the virtio-net header and offloads are in use.
func (d *Device) Offload() bool { return d.offload }

// MTU implements link.Endpoint.
func (d *Device) MTU() int { return d.mtu }

// BatchSize implements link.Endpoint: 128 with offloads, else 1. With
// offloads, ReadBatch given BatchSize buffers never has to keep packets of a
// split super-packet for a later call.
func (d *Device) BatchSize() int { return d.batch }

// Close implements link.Endpoint: it closes the device, every queue, which
// the kernel then removes with its address and routes, and makes sure the
// interface is gone. Blocked ReadBatch calls return net.ErrClosed.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		var err error
		for _, q := range d.queues {
			err = errors.Join(err, q.Close())
		}
		// A TUN device without IFF_PERSIST disappears with its last file
		// descriptor. Delete it in case it lingers (persisted by someone).
		if l, lerr := d.nl.LinkByIndex(d.index); lerr == nil && l.Attrs().Name == d.name {
			if derr := d.nl.LinkDel(l); derr != nil {
				err = errors.Join(err, fmt.Errorf("tun: deleting %s: %w", d.name, derr))
			}
		}
		d.nl.Close()
		d.closeErr = err
	})
	return d.closeErr
}
