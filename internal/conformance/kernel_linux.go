package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"ustack/stack/link"
	"ustack/tun"
)

// kernelDev is the TUN device of a kernel target, inside its own namespace.
const kernelDev = "conf0"

// kernelTarget is the kernel's TCP in a fresh network namespace: a TUN
// device without offloads (one packet per read and write, nothing
// coalesced) whose kernel side is TargetAddr; the peer is the host at the
// other end of the device.
type kernelTarget struct {
	ns      *tun.Namespace
	dev     *tun.Device
	backlog int
}

// NewKernel is the Factory of kernel targets (root only). Whatever it
// made is removed again when it fails, and by Close.
func NewKernel(cfg TargetConfig) (Target, error) {
	ns, err := tun.NewNamespace("conformance")
	if err != nil {
		return nil, fmt.Errorf("kernel target: %w", err)
	}
	dev, err := ns.OpenTUN(tun.Config{Name: kernelDev, MTU: MTU, HostAddr: TargetPrefix, NoOffload: true})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("kernel target: %w", err), ns.Close())
	}
	return &kernelTarget{ns: ns, dev: dev, backlog: cfg.Backlog}, nil
}

func (k *kernelTarget) Name() string        { return "kernel" }
func (k *kernelTarget) Link() link.Endpoint { return k.dev }

// Listen makes the socket inside the namespace; a backlog is set by
// calling listen(2) again on the listening socket, which Linux allows.
func (k *kernelTarget) Listen(port uint16) (net.Listener, error) {
	var l net.Listener
	err := k.ns.Do(func() error {
		lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{Enable: false}}
		var err error
		l, err = lc.Listen(context.Background(), "tcp4", netip.AddrPortFrom(TargetAddr, port).String())
		if err != nil || k.backlog <= 0 {
			return err
		}
		rc, err := l.(*net.TCPListener).SyscallConn()
		if err != nil {
			return err
		}
		var lerr error
		if err := rc.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), k.backlog) }); err != nil {
			return err
		}
		return lerr
	})
	if err != nil && l != nil {
		l.Close()
	}
	return l, err
}

// Dial connects from inside the namespace. Go's keepalive default is
// turned off, so that a scenario sees only what it asks for.
func (k *kernelTarget) Dial(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := k.ns.Do(func() error {
		d := net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: false}}
		var err error
		c, err = d.DialContext(ctx, "tcp4", to.String())
		return err
	})
	return c, err
}

// Settle has nothing to wait for: a write to the TUN hands the packet to
// netif_rx, and the softirq that runs the kernel's TCP on it runs before
// write(2) returns (when the writer re-enables bottom halves).
func (k *kernelTarget) Settle(context.Context) error { return nil }

// SetUserTimeout sets TCP_USER_TIMEOUT on the socket of c (in
// milliseconds, as setsockopt(2) takes it).
func (k *kernelTarget) SetUserTimeout(c net.Conn, d time.Duration) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T has no file descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
	})
	return errors.Join(err, serr)
}

// DialWrite makes a socket inside the namespace, starts its connect
// (non-blocking, so that it returns at once), makes it blocking with
// SO_SNDTIMEO = sockTimeout, and has a goroutine write(2) n bytes on it
// while it is in SYN-SENT. stop waits for the write and closes the socket
// abortively.
func (k *kernelTarget) DialWrite(to netip.AddrPort, n int) (<-chan opResult, func(), error) {
	fd := -1
	err := k.ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	closeFD := func() {
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
		unix.Close(fd)
	}
	tv := unix.NsecToTimeval(sockTimeout.Nanoseconds())
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()})
	if !errors.Is(err, unix.EINPROGRESS) {
		closeFD()
		return nil, nil, fmt.Errorf("connect: %v", err)
	}
	if err := errors.Join(unix.SetNonblock(fd, false), unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)); err != nil {
		closeFD()
		return nil, nil, err
	}
	ch, done := make(chan opResult, 1), make(chan struct{})
	go func() {
		defer close(done)
		_, err := unix.Write(fd, make([]byte, n))
		ch <- opResult{err: os.NewSyscallError("write", err), at: time.Now()}
	}()
	return ch, func() { <-done; closeFD() }, nil
}

func (k *kernelTarget) Close() error {
	return errors.Join(k.dev.Close(), k.ns.Close())
}

// kernelSysctls are the settings that decide what the scenarios see; they
// are left at their defaults and reported.
var kernelSysctls = []string{
	"net/ipv4/tcp_timestamps", "net/ipv4/tcp_sack", "net/ipv4/tcp_window_scaling",
	"net/ipv4/tcp_syncookies", "net/ipv4/tcp_abort_on_overflow", "net/ipv4/tcp_invalid_ratelimit",
	"net/ipv4/tcp_challenge_ack_limit", "net/ipv4/tcp_rmem", "net/ipv4/tcp_wmem",
	"net/ipv4/tcp_rfc1337", "net/ipv4/tcp_min_rtt_wlen", "net/core/somaxconn",
}

// KernelInfo describes the kernel target: its release and the sysctls of
// a fresh namespace, one "name = value" per line.
func KernelInfo() (string, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", err
	}
	lines := []string{"kernel " + unix.ByteSliceToString(uts.Release[:])}
	ns, err := tun.NewNamespace("conformance_sysctl")
	if err != nil {
		return "", err
	}
	err = ns.Do(func() error {
		for _, name := range kernelSysctls {
			b, err := os.ReadFile("/proc/sys/" + name)
			v := strings.Join(strings.Fields(string(b)), " ")
			if err != nil {
				v = "unreadable: " + err.Error()
			}
			lines = append(lines, strings.ReplaceAll(name, "/", ".")+" = "+v)
		}
		return nil
	})
	return strings.Join(lines, "\n"), errors.Join(err, ns.Close())
}
